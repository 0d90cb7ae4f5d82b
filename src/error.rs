//! One error type that knows its client code (`extensions.code` of `api.md`).
//! Internal errors are logged (inside the request's span, so with its
//! request id) and reach the client only as a generic message.

use async_graphql::ErrorExtensions;
use sea_orm::DbErr;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug)]
pub enum AppError {
    /// `UNAUTHENTICATED`: no token, bad signature, expired, revoked.
    Unauthenticated(&'static str),
    /// `FORBIDDEN`: signed in, but role or ownership does not allow it.
    Forbidden(&'static str),
    /// `BAD_USER_INPUT` with `extensions.field`.
    BadInput {
        field: &'static str,
        message: String,
    },
    /// `NOT_FOUND`: missing, or the caller may not know it exists.
    NotFound(&'static str),
    /// `CONFLICT`: taken, expired, a refused transition, a duplicate.
    Conflict(String),
    /// `RATE_LIMITED` with `extensions.retryAfter` in seconds.
    RateLimited { retry_after_secs: u64 },
    /// `MARKET_REQUIRED`: the consumer has not chosen a market.
    MarketRequired,
    /// `PAYMENT_ERROR`: the payment provider refused or failed.
    Payment(String),
    /// `INTERNAL_SERVER_ERROR`: logged in full, shown generically.
    Internal(String),
}

impl AppError {
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        AppError::BadInput {
            field,
            message: message.into(),
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        AppError::Internal(err.to_string())
    }

    /// The message a client sees. Deliberately not `Display`: that would
    /// let async-graphql's blanket `From<T: Display>` swallow the code.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated(m) | AppError::Forbidden(m) => (*m).to_string(),
            AppError::BadInput { message, .. } => message.clone(),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::Conflict(m) | AppError::Payment(m) => m.clone(),
            AppError::RateLimited { retry_after_secs } => {
                format!("too many attempts; try again in {retry_after_secs} seconds")
            }
            AppError::MarketRequired => "choose a market first".into(),
            AppError::Internal(_) => "internal error".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::BadInput { .. } => "BAD_USER_INPUT",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::Conflict(_) => "CONFLICT",
            AppError::RateLimited { .. } => "RATE_LIMITED",
            AppError::MarketRequired => "MARKET_REQUIRED",
            AppError::Payment(_) => "PAYMENT_ERROR",
            AppError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// Database errors are internal unless a caller maps a named constraint
/// first (see [`on_constraint`]); their text never reaches a client.
impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        AppError::Internal(format!("database: {err}"))
    }
}

/// True when `err` is a violation of the constraint, unique index or
/// overlap trigger called `name`. Both databases name it in the message:
/// PostgreSQL quotes the constraint, SQLite the index (expression indexes)
/// or the trigger's `RAISE(ABORT, name)`.
pub fn is_constraint(err: &DbErr, name: &str) -> bool {
    err.to_string().contains(name)
}

/// Maps one named constraint violation to a client error; anything else stays
/// internal.
pub fn on_constraint(name: &str, mapped: AppError) -> impl FnOnce(DbErr) -> AppError + '_ {
    move |err| {
        if is_constraint(&err, name) {
            mapped
        } else {
            AppError::from(err)
        }
    }
}

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
