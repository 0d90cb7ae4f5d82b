//! Admin CSV exports: `GET /admin/exports/bookings.csv?from=&to=` and
//! `payments.csv`. An admin's bearer token (401 without a valid one, 403
//! for any other role); streamed row by row from a database cursor through
//! a small bounded channel, so a year of rows is never held in memory and
//! a client that stops reading stops the query. Every cell is safe to open
//! in a spreadsheet: one that starts with `=`, `+`, `-`, `@`, a tab, CR or
//! LF is prefixed with `'`. Amounts are minor units beside their currency.
//! Each export is audited.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sea_orm::{FromQueryResult, Statement};
use tokio::sync::mpsc;

use crate::domain::admin::check_range;
use crate::domain::audit::{Entry, action};
use crate::domain::review::placeholder;
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::graphql::AuthState;
use crate::http::graphql::{auth_state, error_body};
use crate::http::router::HttpState;

/// How far apart `from` and `to` may be (two years).
const MAX_RANGE_DAYS: i64 = 731;
/// Rows per chunk sent to the client.
const ROWS_PER_CHUNK: usize = 500;
/// Chunks waiting for a slow client before the query waits too.
const CHUNKS_BUFFERED: usize = 4;
/// A client that takes no chunk for this long is given up on, and the
/// query (and its connection) released.
const STALLED_CLIENT: std::time::Duration = std::time::Duration::from_secs(30);

/// A cell as a spreadsheet will read it: never as a formula.
pub fn safe(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(FromQueryResult)]
struct BookingRow {
    id: String,
    created_at: DateTime<Utc>,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    status: String,
    coach_id: String,
    coach_name: String,
    consumer_id: String,
    consumer_name: String,
    price_minor: i64,
    currency: String,
    platform_fee_minor: i64,
    coach_payout_minor: i64,
    refunded_minor: i64,
    package_purchase_id: Option<String>,
    cancelled_by: Option<String>,
    cancellation_reason: Option<String>,
}

const BOOKING_HEADER: [&str; 17] = [
    "booking_id",
    "created_at",
    "start_at",
    "end_at",
    "status",
    "coach_id",
    "coach_name",
    "consumer_id",
    "consumer_name",
    "price_minor",
    "currency",
    "platform_fee_minor",
    "coach_payout_minor",
    "refunded_minor",
    "package_purchase_id",
    "cancelled_by",
    "cancellation_reason",
];

impl BookingRow {
    fn cells(self) -> Vec<String> {
        vec![
            self.id,
            time(self.created_at),
            time(self.start_at),
            time(self.end_at),
            self.status,
            self.coach_id,
            self.coach_name,
            self.consumer_id,
            self.consumer_name,
            self.price_minor.to_string(),
            self.currency,
            self.platform_fee_minor.to_string(),
            self.coach_payout_minor.to_string(),
            self.refunded_minor.to_string(),
            self.package_purchase_id.unwrap_or_default(),
            self.cancelled_by.unwrap_or_default(),
            self.cancellation_reason.unwrap_or_default(),
        ]
    }
}

#[derive(FromQueryResult)]
struct PaymentRow {
    id: String,
    created_at: DateTime<Utc>,
    purpose: String,
    booking_id: Option<String>,
    package_purchase_id: Option<String>,
    sponsorship_id: Option<String>,
    status: String,
    amount_minor: i64,
    currency: String,
    refunded_minor: i64,
    provider: String,
    provider_ref: Option<String>,
    disputed: bool,
}

const PAYMENT_HEADER: [&str; 13] = [
    "payment_id",
    "created_at",
    "purpose",
    "booking_id",
    "package_purchase_id",
    "sponsorship_id",
    "status",
    "amount_minor",
    "currency",
    "refunded_minor",
    "provider",
    "provider_ref",
    "disputed",
];

impl PaymentRow {
    fn cells(self) -> Vec<String> {
        vec![
            self.id,
            time(self.created_at),
            self.purpose,
            self.booking_id.unwrap_or_default(),
            self.package_purchase_id.unwrap_or_default(),
            self.sponsorship_id.unwrap_or_default(),
            self.status,
            self.amount_minor.to_string(),
            self.currency,
            self.refunded_minor.to_string(),
            self.provider,
            self.provider_ref.unwrap_or_default(),
            self.disputed.to_string(),
        ]
    }
}

/// CSV text of some records, every cell made safe.
fn encode<I: IntoIterator<Item = Vec<String>>>(records: I) -> Result<Bytes, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(64 * 1024));
    for r in records {
        w.write_record(r.iter().map(|c| safe(c).into_owned()))?;
    }
    w.flush()?;
    Ok(Bytes::from(
        w.into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?,
    ))
}

fn bad(field: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": "BAD_USER_INPUT", "field": field } }]
    });
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A half-open time range.
type Range = (DateTime<Utc>, DateTime<Utc>);
/// Which parameter is wrong, and why.
type Refusal = (&'static str, String);

/// The `from` and `to` of a request.
fn parse_range(q: &HashMap<String, String>) -> Result<Range, Refusal> {
    let at = |name: &'static str| {
        let raw = q
            .get(name)
            .ok_or((name, "required: an RFC 3339 date-time".to_string()))?;
        DateTime::parse_from_rfc3339(raw.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| (name, "not an RFC 3339 date-time".to_string()))
    };
    let (from, to) = (at("from")?, at("to")?);
    check_range(from, to, MAX_RANGE_DAYS).map_err(|_| {
        (
            "to",
            format!("must be after from, at most {MAX_RANGE_DAYS} days"),
        )
    })?;
    Ok((from, to))
}

#[derive(Clone, Copy)]
enum Export {
    Bookings,
    Payments,
}

impl Export {
    fn name(self) -> &'static str {
        match self {
            Export::Bookings => "bookings",
            Export::Payments => "payments",
        }
    }
}

pub async fn bookings(
    State(http): State<HttpState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    export(http, headers, q, Export::Bookings).await
}

pub async fn payments(
    State(http): State<HttpState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    export(http, headers, q, Export::Payments).await
}

async fn export(
    http: HttpState,
    headers: HeaderMap,
    q: HashMap<String, String>,
    kind: Export,
) -> Response {
    let state = &http.state;
    let admin = match auth_state(state, &headers).await {
        AuthState::User(u) if u.role == Role::Admin => u,
        AuthState::User(_) => {
            return error_body(StatusCode::FORBIDDEN, "FORBIDDEN", "admins only");
        }
        AuthState::Unchecked => {
            return error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "INTERNAL_SERVER_ERROR",
                "internal error",
            );
        }
        _ => {
            let mut r = error_body(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "an admin's bearer token is required",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    let (from, to) = match parse_range(&q) {
        Ok(r) => r,
        Err((field, why)) => return bad(field, &why),
    };
    // A cursor holds a database connection while it streams: a few
    // exports at a time, never the pool.
    let Ok(permit) = http.exports.clone().try_acquire_owned() else {
        let mut r = error_body(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "other exports are running; try again shortly",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        r.extensions_mut()
            .insert(crate::http::middleware::RefusedBy(
                crate::metrics::Limit::Exports,
            ));
        return r;
    };
    let audited = async {
        let uow = UnitOfWork::begin(&state.domain).await?;
        uow.audit(Entry {
            action: action::EXPORT_DOWNLOADED,
            actor_id: Some(&admin.id),
            target_type: Some("export"),
            target_id: Some(kind.name()),
            ip: None,
            detail: Some(serde_json::json!({ "from": from, "to": to })),
        })
        .await?;
        uow.commit().await
    };
    if let Err(e) = audited.await {
        tracing::error!(error = ?e, "export could not be audited");
        return error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "internal error",
        );
    }

    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_BUFFERED);
    let db = state.domain.db.clone();
    tokio::spawn(async move {
        let _permit = permit;
        if let Err(e) = produce(&db, kind, from, to, &tx).await {
            tracing::error!(error = %e, export = kind.name(), "export failed mid-way");
            // An error in the body aborts the response, so the client sees
            // a failed download, never a file that merely looks complete.
            let _ = tx
                .send(Err(std::io::Error::other("the export failed")))
                .await;
        }
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let filename = format!(
        "attachment; filename=\"{}-{}-{}.csv\"",
        kind.name(),
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    );
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&filename) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Runs the query and sends the CSV in chunks; stops when the client goes.
async fn produce(
    db: &sea_orm::DatabaseConnection,
    kind: Export,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), String> {
    // False when the client went away or stopped reading.
    let send = |chunk: Bytes| async move {
        matches!(
            tokio::time::timeout(STALLED_CLIENT, tx.send(Ok(chunk))).await,
            Ok(Ok(()))
        )
    };
    let backend = db.get_database_backend();
    let (p1, p2) = (placeholder(backend, 1), placeholder(backend, 2));
    let (header, sql) = match kind {
        Export::Bookings => (
            BOOKING_HEADER.as_slice(),
            format!(
                "SELECT b.id, b.created_at, b.start_at, b.end_at, b.status, b.coach_id,
                        c.display_name AS coach_name, b.consumer_id, u.name AS consumer_name,
                        b.price_minor, b.currency, b.platform_fee_minor, b.coach_payout_minor,
                        b.refunded_minor, b.package_purchase_id, b.cancelled_by,
                        b.cancellation_reason
                 FROM bookings b
                 JOIN coach_profiles c ON c.id = b.coach_id
                 JOIN users u ON u.id = b.consumer_id
                 WHERE b.created_at >= {p1} AND b.created_at < {p2}
                 ORDER BY b.created_at, b.id"
            ),
        ),
        Export::Payments => (
            PAYMENT_HEADER.as_slice(),
            format!(
                "SELECT id, created_at, purpose, booking_id, package_purchase_id, sponsorship_id,
                        status, amount_minor, currency, refunded_minor, provider, provider_ref,
                        disputed
                 FROM payments
                 WHERE created_at >= {p1} AND created_at < {p2}
                 ORDER BY created_at, id"
            ),
        ),
    };
    let first =
        encode([header.iter().map(|h| h.to_string()).collect()]).map_err(|e| e.to_string())?;
    if !send(first).await {
        return Ok(());
    }
    let stmt = Statement::from_sql_and_values(backend, sql, [from.into(), to.into()]);
    let mut batch: Vec<Vec<String>> = Vec::with_capacity(ROWS_PER_CHUNK);
    macro_rules! pump {
        ($row:ty) => {{
            let mut rows = <$row>::find_by_statement(stmt)
                .stream(db)
                .await
                .map_err(|e| e.to_string())?;
            while let Some(r) = rows.try_next().await.map_err(|e| e.to_string())? {
                batch.push(r.cells());
                if batch.len() == ROWS_PER_CHUNK {
                    let chunk = encode(batch.drain(..)).map_err(|e| e.to_string())?;
                    if !send(chunk).await {
                        return Ok(());
                    }
                }
            }
        }};
    }
    match kind {
        Export::Bookings => pump!(BookingRow),
        Export::Payments => pump!(PaymentRow),
    }
    if !batch.is_empty() {
        let chunk = encode(batch.drain(..)).map_err(|e| e.to_string())?;
        send(chunk).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused() {
        for (raw, out) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("\nx", "'\nx"),
            ("Ann", "Ann"),
            ("", ""),
        ] {
            assert_eq!(safe(raw), out);
        }
    }

    #[test]
    fn cells_are_quoted_as_csv() {
        let b = encode([vec![
            "a,b".to_string(),
            "=1".to_string(),
            "say \"hi\"".to_string(),
        ]])
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            "\"a,b\",'=1,\"say \"\"hi\"\"\"\n"
        );
    }
}
