//! Optional error tracking. With `SENTRY_DSN` set, every `error`-level log
//! event (an internal error, a panic, a job giving up) is also sent to
//! Sentry, tagged with the request id and GraphQL operation name of the
//! request it happened in. Nothing personal goes with it: no user id,
//! client IP, request body or other log fields, only the event's message
//! and `error` text, in which anything that looks like an email address is
//! masked. Events are sent in the background by the `sentry` crate's own
//! transport; a Sentry that is down never slows a request.

use std::fmt::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::Settings;

/// Starts the Sentry client when a DSN is configured. Keep the guard for
/// the life of the process: dropping it flushes what is queued.
pub fn init(settings: &Settings) -> Option<sentry::ClientInitGuard> {
    let dsn = settings.sentry_dsn.as_ref()?;
    let dsn = String::from_utf8_lossy(dsn.expose()).parse().ok()?;
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = Some(
        format!(
            "maestro-hub@{}+{}",
            env!("CARGO_PKG_VERSION"),
            crate::GIT_REVISION
        )
        .into(),
    );
    let environment = if settings.is_production() {
        "production"
    } else {
        "development"
    };
    options.environment = Some(environment.into());
    options.send_default_pii = false;
    Some(sentry::init(options))
}

/// The `tracing` layer that turns error events into Sentry events. Without
/// an initialised client, capturing does nothing.
pub struct ErrorEvents;

/// What a request's span knows that an error report may carry.
#[derive(Default, Clone)]
struct RequestTags {
    request_id: Option<String>,
    operation: Option<String>,
}

impl Visit for RequestTags {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "request_id" if !value.is_empty() => self.request_id = Some(value.to_string()),
            "operation" => self.operation = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "request_id" | "operation") {
            self.record_str(field, &format!("{value:?}"));
        }
    }
}

/// The event's message and its `error` field; every other field is left out.
#[derive(Default)]
struct Message {
    message: String,
    error: Option<String>,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "error" => self.error = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "message" | "error") {
            self.record_str(field, &format!("{value:?}"));
        }
    }
}

/// Masks every word with an `@` in it (email addresses).
pub fn mask_personal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.contains('@') {
            out.push_str("[email]");
        } else {
            let _ = out.write_str(word);
        }
    }
    out
}

impl<S> Layer<S> for ErrorEvents
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "request" {
            return;
        }
        if let Some(span) = ctx.span(id) {
            let mut tags = RequestTags::default();
            attrs.record(&mut tags);
            span.extensions_mut().insert(tags);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(tags) = span.extensions_mut().get_mut::<RequestTags>()
        {
            values.record(tags);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR || sentry::Hub::current().client().is_none() {
            return;
        }
        let mut message = Message::default();
        event.record(&mut message);
        let tags = ctx
            .event_scope(event)
            .and_then(|scope| {
                scope
                    .into_iter()
                    .find_map(|span| span.extensions().get::<RequestTags>().cloned())
            })
            .unwrap_or_default();
        let text = match &message.error {
            Some(error) => format!("{}: {}", message.message, error),
            None => message.message,
        };
        let mut report = sentry::protocol::Event {
            level: sentry::Level::Error,
            message: Some(mask_personal(&text)),
            logger: Some(event.metadata().target().to_string()),
            ..Default::default()
        };
        if let Some(id) = tags.request_id {
            report.tags.insert("request_id".into(), id);
        }
        if let Some(op) = tags.operation {
            report.tags.insert("operation".into(), op);
        }
        sentry::capture_event(report);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn email_addresses_are_masked() {
        assert_eq!(
            super::mask_personal("duplicate key (email)=(ann@example.com) exists"),
            "duplicate key [email] exists"
        );
    }
}
