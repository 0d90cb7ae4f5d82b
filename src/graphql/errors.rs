//! How an [`AppError`] appears in a GraphQL response: its message, and its
//! code (with `field` or `retryAfter` where it has one) in `extensions`.
//! Internal errors are logged here, inside the request's span.

use async_graphql::ErrorExtensions;

use crate::error::AppError;

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.extend()
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        if let AppError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
        async_graphql::Error::new(self.message()).extend_with(|_, e| {
            e.set("code", self.code());
            match self {
                AppError::BadInput { field, .. } => e.set("field", *field),
                AppError::RateLimited { retry_after_secs } => {
                    e.set("retryAfter", *retry_after_secs)
                }
                _ => {}
            }
        })
    }
}

/// Gives every error of a response an `extensions.code`, over HTTP and
/// WebSocket alike. An error the resolvers raised carries its code already
/// (an [`AppError`]). One without a code is either the client's input, as
/// the engine judged it before running anything (syntax, validation, limits)
/// or while reading an argument, and is `BAD_USER_INPUT`; or it escaped
/// `AppError` inside a resolver (a `?` on some other error), and then it is
/// ours: logged in full and answered as a generic `INTERNAL_SERVER_ERROR`,
/// so no SQL text or internal name reaches the client.
pub struct ErrorCodes;

impl async_graphql::extensions::ExtensionFactory for ErrorCodes {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(ErrorCodes)
    }
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for ErrorCodes {
    async fn request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextRequest<'_>,
    ) -> async_graphql::Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        stream: futures_util::stream::BoxStream<'s, async_graphql::Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures_util::stream::BoxStream<'s, async_graphql::Response> {
        use futures_util::StreamExt;
        next.run(ctx, stream).map(with_codes).boxed()
    }
}

/// Errors the engine raises while coercing an argument start so; they come
/// without a source, unlike anything a resolver's `?` produced.
fn is_argument_error(err: &async_graphql::ServerError) -> bool {
    err.source.is_none()
        && (err.message.starts_with("Failed to parse")
            || err.message.starts_with("Invalid value for argument"))
}

pub fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    for err in &mut response.errors {
        let has_code = err
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if err.path.is_empty() || is_argument_error(err) {
            "BAD_USER_INPUT"
        } else {
            tracing::error!(error = %err.message, path = ?err.path, "internal error without a code");
            err.message = "internal error".into();
            "INTERNAL_SERVER_ERROR"
        };
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    response
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        /// A resolver whose database error escaped `AppError`.
        async fn leaky(&self) -> async_graphql::Result<i32> {
            Err(sea_orm::DbErr::Custom(
                "relation \"payments\" does not exist: SELECT secret FROM payments".into(),
            )
            .into())
        }

        async fn mapped(&self) -> async_graphql::Result<i32> {
            Err(AppError::Conflict("taken".into()).into())
        }

        async fn echo(&self, n: i32) -> i32 {
            n
        }
    }

    fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(ErrorCodes)
            .finish()
    }

    fn code(r: &async_graphql::Response) -> String {
        r.errors[0]
            .extensions
            .as_ref()
            .unwrap()
            .get("code")
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn an_uncoded_resolver_error_is_internal_and_generic() {
        let r = schema().execute("{ leaky }").await;
        assert_eq!(code(&r), "\"INTERNAL_SERVER_ERROR\"");
        assert_eq!(r.errors[0].message, "internal error");
        let body = serde_json::to_string(&r).unwrap();
        assert!(
            !body.contains("SELECT") && !body.contains("payments"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn coded_and_input_errors_keep_their_meaning() {
        let r = schema().execute("{ mapped }").await;
        assert_eq!(code(&r), "\"CONFLICT\"");
        assert_eq!(r.errors[0].message, "taken");
        let r = schema().execute("{ nope }").await;
        assert_eq!(code(&r), "\"BAD_USER_INPUT\"");
        let r = schema().execute("{ echo(n: \"x\") }").await;
        assert_eq!(code(&r), "\"BAD_USER_INPUT\"");
        let r = schema()
            .execute(
                async_graphql::Request::new("query($n: Int!) { echo(n: $n) }").variables(
                    async_graphql::Variables::from_json(serde_json::json!({"n": "x"})),
                ),
            )
            .await;
        assert_eq!(code(&r), "\"BAD_USER_INPUT\"");
    }
}
