//! One error type that knows its client code (`extensions.code` of `api.md`).
//! Internal errors are logged (inside the request's span, so with its
//! request id) and reach the client only as a generic message. How an
//! error is put into a GraphQL response lives with the API
//! (`graphql::errors`); this type knows nothing of it.

use sea_orm::{DbErr, RuntimeErr};

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

/// The driver's own report of a failed statement, if that is what `err` is.
fn database_error(err: &DbErr) -> Option<&dyn sea_orm::sqlx::error::DatabaseError> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match &**e {
                sea_orm::sqlx::Error::Database(db) => Some(&**db),
                _ => None,
            }
        }
        _ => None,
    }
}

/// True when `err` is a violation of the constraint, unique index or
/// overlap rule called `name`.
///
/// PostgreSQL reports the constraint's name, and that is what is compared.
/// SQLite reports no name for a trigger's `RAISE(ABORT, name)` or a unique
/// expression index (`UNIQUE constraint failed: index 'name'`); there the
/// name can only be found in the message, so it is matched there.
pub fn is_constraint(err: &DbErr, name: &str) -> bool {
    let Some(db) = database_error(err) else {
        return false;
    };
    if let Some(constraint) = db.constraint() {
        return constraint == name;
    }
    db.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
        .is_some_and(|_| db.message().contains(name))
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
