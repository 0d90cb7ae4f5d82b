//! Sign-in, sessions and tokens.
//!
//! Access tokens are short-lived HS256 JWTs whose every claim is required and
//! checked, including a per-user session version: bumping the version (password
//! change, reset, suspension) kills every earlier token at once. Refresh tokens
//! are random, stored as SHA-256, and rotate on each use; presenting a spent one
//! revokes its whole family, because only a thief would hold a spent token.

use std::sync::Arc;

use argon2::{
    Algorithm as ArgonAlgorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version,
};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::audit::{self, Entry, action};
use crate::domain::context::DomainCtx;
use crate::domain::types::{Email, Password, Role, parse_name};
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult, on_constraint};
use entity::{sessions, users};

pub const ISSUER: &str = "maestro-hub";
pub const AUDIENCE: &str = "maestro-hub-api";
/// The default lifetime of an access token (`ACCESS_TOKEN_TTL_SECONDS`).
pub const ACCESS_TOKEN_TTL: Duration = Duration::minutes(15);
pub const REFRESH_TOKEN_TTL: Duration = Duration::days(30);
/// Clock skew allowed when checking `exp` (the contract allows at most 30 s).
pub const LEEWAY_SECS: u64 = 5;

const INVALID_CREDENTIALS: &str = "invalid email or password";
const INVALID_TOKEN: &str = "invalid or expired token";
const INVALID_REFRESH: &str = "invalid or expired refresh token";

/// The claims of an access token. Every field is required: a token missing
/// one does not deserialise and is refused.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
    /// The user's session version when the token was issued.
    pub sv: i32,
    /// The session family (one sign-in and its refreshes) the token was
    /// issued for; a logout of that session ends the sockets opened with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Keys, hashing parameters and the dummy hash that keeps failed logins for
/// unknown emails as slow as those for wrong passwords.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    dummy_hash: String,
    /// How long an access token lives; a token claiming longer is refused.
    ttl: Duration,
}

/// argon2id with m=19 MiB, t=2, p=1 (OWASP's first recommended set).
fn argon2() -> AppResult<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(AppError::internal)?;
    Ok(Argon2::new(
        ArgonAlgorithm::Argon2id,
        Version::V0x13,
        params,
    ))
}

/// Hashes on the blocking pool: argon2 takes tens of milliseconds of CPU.
pub async fn hash_password(password: &Password) -> AppResult<String> {
    let pw = password.expose().to_string();
    tokio::task::spawn_blocking(move || {
        argon2()?
            .hash_password(pw.as_bytes())
            .map(|h| h.to_string())
            .map_err(AppError::internal)
    })
    .await
    .map_err(AppError::internal)?
}

pub(crate) async fn verify_password(password: &str, hash: &str) -> AppResult<bool> {
    let (pw, hash) = (password.to_string(), hash.to_string());
    tokio::task::spawn_blocking(move || {
        Ok(argon2()?
            .verify_password(pw.as_bytes(), hash.as_str())
            .is_ok())
    })
    .await
    .map_err(AppError::internal)?
}

pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What a successful sign-in returns.
pub struct Tokens {
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub user: users::Model,
}

/// The signed-in caller, as checked against the database for this request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: String,
    pub role: Role,
    pub user: users::Model,
    /// The token's session version, family and expiry (unix seconds).
    pub token_version: i32,
    pub session_family: Option<String>,
    pub token_expires_at: i64,
}

impl Auth {
    pub async fn new(secret: &[u8], ttl: std::time::Duration) -> AppResult<Arc<Self>> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Suffix guarantees every class the policy asks for, whatever the random part holds.
        let dummy = Password::parse("password", &format!("Dummy-{}-Aa1", random_token()))?;
        Ok(Arc::new(Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            dummy_hash: hash_password(&dummy).await?,
            ttl: Duration::from_std(ttl).unwrap_or(ACCESS_TOKEN_TTL),
        }))
    }

    pub fn issue_access_token(
        &self,
        user: &users::Model,
        family_id: &str,
    ) -> AppResult<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let exp = now + self.ttl;
        let claims = Claims {
            sub: user.id.clone(),
            role: user.role.clone(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: uuid::Uuid::new_v4().to_string(),
            sv: user.session_version,
            sid: Some(family_id.to_string()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AppError::internal)?;
        Ok((token, exp))
    }

    /// Checks signature, algorithm and every claim. The database check
    /// (session version, suspension) is [`authenticate`]'s.
    pub fn verify_access_token(&self, token: &str) -> AppResult<Claims> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AppError::Unauthenticated(INVALID_TOKEN))?;
        let claims = data.claims;
        let now = Utc::now().timestamp();
        // A lifetime longer than ours was not issued by us as it stands.
        let lifetime_too_long = claims.exp - claims.iat > self.ttl.num_seconds();
        if claims.iat > now + LEEWAY_SECS as i64 || claims.jti.is_empty() || lifetime_too_long {
            return Err(AppError::Unauthenticated(INVALID_TOKEN));
        }
        Ok(claims)
    }
}

/// Resolves a bearer token to the current user, refusing tokens of a
/// suspended user or from before the user's last session-version bump.
pub async fn authenticate(
    db: &DatabaseConnection,
    auth: &Auth,
    token: &str,
) -> AppResult<CurrentUser> {
    let claims = auth.verify_access_token(token)?;
    let user = users::Entity::find_by_id(claims.sub.clone())
        .one(db)
        .await?
        .ok_or(AppError::Unauthenticated(INVALID_TOKEN))?;
    if user.session_version != claims.sv || user.suspended_at.is_some() || user.role != claims.role
    {
        return Err(AppError::Unauthenticated(INVALID_TOKEN));
    }
    let role = Role::parse(&user.role).ok_or_else(|| AppError::internal("unknown role"))?;
    Ok(CurrentUser {
        id: user.id.clone(),
        role,
        user,
        token_version: claims.sv,
        session_family: claims.sid,
        token_expires_at: claims.exp,
    })
}

pub async fn find_user_by_email<C: ConnectionTrait>(
    db: &C,
    email: &Email,
) -> AppResult<Option<users::Model>> {
    Ok(users::Entity::find()
        .filter(Expr::expr(Func::lower(Expr::col(users::Column::Email))).eq(email.as_str()))
        .one(db)
        .await?)
}

/// Creates a session row (a new refresh token) inside `db`'s transaction.
async fn start_session<C: ConnectionTrait>(
    db: &C,
    user: &users::Model,
    family_id: Option<String>,
    ip: Option<&str>,
) -> AppResult<NewSession> {
    let token = random_token();
    let now = Utc::now();
    let family_id = family_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    sessions::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user.id.clone()),
        family_id: Set(family_id.clone()),
        token_hash: Set(hash_refresh_token(&token)),
        session_version: Set(user.session_version),
        created_at: Set(now),
        expires_at: Set(now + REFRESH_TOKEN_TTL),
        used_at: Set(None),
        revoked_at: Set(None),
        ip: Set(ip.map(str::to_string)),
    }
    .insert(db)
    .await?;
    Ok(NewSession { token, family_id })
}

/// A refresh token just made, and the session family it belongs to.
struct NewSession {
    token: String,
    family_id: String,
}

fn tokens(auth: &Auth, user: users::Model, session: NewSession) -> AppResult<Tokens> {
    let (access_token, access_token_expires_at) =
        auth.issue_access_token(&user, &session.family_id)?;
    Ok(Tokens {
        access_token,
        access_token_expires_at,
        refresh_token: session.token,
        user,
    })
}

/// Inserts an account; an email already taken (in any letter case) is
/// `CONFLICT`, also when two inserts race past an earlier check.
async fn insert_user<C: ConnectionTrait>(
    db: &C,
    email: &Email,
    password_hash: String,
    name: String,
    role: Role,
    market_id: Option<String>,
    email_verified: bool,
) -> AppResult<users::Model> {
    let now = Utc::now();
    users::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        email: Set(email.as_str().to_string()),
        password_hash: Set(password_hash),
        name: Set(name),
        role: Set(role.as_str().to_string()),
        email_verified: Set(email_verified),
        market_id: Set(market_id),
        timezone: Set(None),
        session_version: Set(0),
        suspended_at: Set(None),
        suspension_reason: Set(None),
        deleted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(on_constraint(
        "users_email_lower_key",
        AppError::Conflict("an account with this email already exists".into()),
    ))
}

pub struct RegisterInput<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub market_code: Option<&'a str>,
}

/// Creates a user and an audit entry in one transaction, and signs them in.
pub async fn register(
    ctx: &DomainCtx,
    input: RegisterInput<'_>,
    ip: Option<&str>,
) -> AppResult<Tokens> {
    let (db, reference) = (&ctx.db, &ctx.reference);
    if input.role == Role::Admin {
        return Err(AppError::bad_input(
            "role",
            "an admin account cannot be registered",
        ));
    }
    let email = Email::parse(input.email)?;
    let password = Password::parse("password", input.password)?;
    let name = parse_name("name", input.name)?;
    let market_id = match input.market_code {
        Some(code) => Some(
            reference
                .market_by_code(code)
                .ok_or_else(|| AppError::bad_input("marketCode", "unknown market"))?
                .id
                .clone(),
        ),
        None => None,
    };
    if find_user_by_email(db, &email).await?.is_some() {
        return Err(AppError::Conflict(
            "an account with this email already exists".into(),
        ));
    }
    let password_hash = hash_password(&password).await?;
    let mut uow = UnitOfWork::begin(ctx).await?;
    let txn = uow.db();
    // Two registrations racing past the check above meet the unique index.
    let user = insert_user(
        txn,
        &email,
        password_hash,
        name,
        input.role,
        market_id,
        false,
    )
    .await?;
    audit::record(
        txn,
        Entry {
            action: action::REGISTERED,
            actor_id: Some(&user.id),
            target_type: Some("user"),
            target_id: Some(&user.id),
            ip,
            detail: Some(serde_json::json!({ "role": user.role })),
        },
    )
    .await?;
    let refresh = start_session(txn, &user, None, ip).await?;
    crate::domain::account::send_verification(ctx, &mut uow, &user).await?;
    uow.commit().await?;
    tokens(&ctx.auth, user, refresh)
}

/// Signs in. An unknown email and a wrong password give the same error after
/// the same argon2 work; both are audited.
pub async fn login(
    ctx: &DomainCtx,
    email: &str,
    password: &str,
    ip: Option<&str>,
) -> AppResult<Tokens> {
    let (db, auth) = (&ctx.db, &*ctx.auth);
    let user = match Email::parse(email) {
        Ok(email) => find_user_by_email(db, &email).await?,
        Err(_) => None,
    };
    let hash = user
        .as_ref()
        .map_or(auth.dummy_hash.as_str(), |u| u.password_hash.as_str());
    // Over-long input is refused after the same work, not before it.
    let password_ok = verify_password(password, hash).await? && password.len() <= 1024;
    match user {
        Some(user) if password_ok && user.suspended_at.is_none() => {
            let uow = UnitOfWork::begin(ctx).await?;
            let txn = uow.db();
            audit::record(
                txn,
                Entry {
                    action: action::LOGIN_SUCCEEDED,
                    actor_id: Some(&user.id),
                    target_type: Some("user"),
                    target_id: Some(&user.id),
                    ip,
                    detail: None,
                },
            )
            .await?;
            let refresh = start_session(txn, &user, None, ip).await?;
            uow.commit().await?;
            tokens(auth, user, refresh)
        }
        user => {
            let normalised = email.trim().to_lowercase();
            let reason = match &user {
                None => "unknown_email",
                Some(u) if u.suspended_at.is_some() && password_ok => "suspended",
                Some(_) => "wrong_password",
            };
            audit::record_alone(
                ctx,
                Entry {
                    action: action::LOGIN_FAILED,
                    actor_id: user.as_ref().map(|u| u.id.as_str()),
                    target_type: Some("user"),
                    target_id: user.as_ref().map(|u| u.id.as_str()),
                    ip,
                    detail: Some(serde_json::json!({
                        "email": normalised.chars().take(254).collect::<String>(),
                        "reason": reason,
                    })),
                },
            )
            .await?;
            Err(AppError::Unauthenticated(INVALID_CREDENTIALS))
        }
    }
}

/// Rotates a refresh token. The spend is a conditional update, so of two
/// concurrent uses of one token exactly one wins; the other is treated as
/// reuse and revokes the family.
pub async fn refresh(ctx: &DomainCtx, refresh_token: &str, ip: Option<&str>) -> AppResult<Tokens> {
    let db = &ctx.db;
    let hash = hash_refresh_token(refresh_token);
    let Some(session) = sessions::Entity::find()
        .filter(sessions::Column::TokenHash.eq(hash))
        .one(db)
        .await?
    else {
        return Err(AppError::Unauthenticated(INVALID_REFRESH));
    };
    let now = Utc::now();
    let mut uow = UnitOfWork::begin(ctx).await?;
    let spent = sessions::Entity::update_many()
        .col_expr(sessions::Column::UsedAt, Expr::value(now))
        .filter(sessions::Column::Id.eq(session.id.clone()))
        .filter(sessions::Column::UsedAt.is_null())
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(uow.db())
        .await?;
    if spent.rows_affected != 1 {
        if session.revoked_at.is_none() || session.used_at.is_some() {
            // Only a thief holds a spent token: the whole sign-in ends,
            // sockets opened with it included.
            uow.session_family_ended(&session.user_id, &session.family_id);
            let txn = uow.db();
            revoke_family(txn, &session.family_id, now).await?;
            audit::record(
                txn,
                Entry {
                    action: action::REFRESH_REUSED,
                    actor_id: None,
                    target_type: Some("user"),
                    target_id: Some(&session.user_id),
                    ip,
                    detail: Some(serde_json::json!({ "family": session.family_id })),
                },
            )
            .await?;
        }
        uow.commit().await?;
        return Err(AppError::Unauthenticated(INVALID_REFRESH));
    }
    let txn = uow.db();
    let user = users::Entity::find_by_id(session.user_id.clone())
        .one(txn)
        .await?
        .ok_or(AppError::Unauthenticated(INVALID_REFRESH))?;
    if session.expires_at <= now
        || session.session_version != user.session_version
        || user.suspended_at.is_some()
    {
        // Commit the spend: a dead token stays dead.
        uow.commit().await?;
        return Err(AppError::Unauthenticated(INVALID_REFRESH));
    }
    let token = start_session(txn, &user, Some(session.family_id.clone()), ip).await?;
    uow.commit().await?;
    tokens(&ctx.auth, user, token)
}

async fn revoke_family<C: ConnectionTrait>(
    db: &C,
    family_id: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .filter(sessions::Column::FamilyId.eq(family_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Ends the session the refresh token belongs to (its whole family), if it
/// is the caller's. Always succeeds, so it says nothing about other tokens.
pub async fn logout(
    ctx: &DomainCtx,
    user: &CurrentUser,
    refresh_token: &str,
    push_token: Option<&str>,
    ip: Option<&str>,
) -> AppResult<()> {
    let push_token = push_token
        .map(crate::domain::push::parse_token)
        .transpose()?;
    let hash = hash_refresh_token(refresh_token);
    let session = sessions::Entity::find()
        .filter(sessions::Column::TokenHash.eq(hash))
        .filter(sessions::Column::UserId.eq(user.id.clone()))
        .one(&ctx.db)
        .await?;
    if session.is_none() && push_token.is_some() {
        let uow = UnitOfWork::begin(ctx).await?;
        if let Some(token) = push_token {
            crate::domain::push::drop_device(&uow, &user.id, token).await?;
        }
        uow.commit().await?;
    }
    if let Some(session) = session {
        let mut uow = UnitOfWork::begin(ctx).await?;
        if let Some(token) = push_token {
            crate::domain::push::drop_device(&uow, &user.id, token).await?;
        }
        uow.session_family_ended(&user.id, &session.family_id);
        let txn = uow.db();
        revoke_family(txn, &session.family_id, Utc::now()).await?;
        audit::record(
            txn,
            Entry {
                action: action::LOGGED_OUT,
                actor_id: Some(&user.id),
                target_type: Some("user"),
                target_id: Some(&user.id),
                ip,
                detail: None,
            },
        )
        .await?;
        uow.commit().await?;
    }
    Ok(())
}

/// Bumps the session version and revokes every refresh token of the user
/// (password change, reset, suspension); returns the new version, the
/// lowest one still valid. The caller tells its unit of work
/// ([`UnitOfWork::sessions_ended`]) so open sockets close.
pub async fn end_all_sessions<C: ConnectionTrait>(db: &C, user_id: &str) -> AppResult<i32> {
    let now = Utc::now();
    users::Entity::update_many()
        .col_expr(
            users::Column::SessionVersion,
            Expr::col(users::Column::SessionVersion).add(1),
        )
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    let user = users::Entity::find_by_id(user_id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    Ok(user.session_version)
}

pub async fn change_password(
    ctx: &DomainCtx,
    user: &CurrentUser,
    current_password: &str,
    new_password: &str,
    ip: Option<&str>,
) -> AppResult<()> {
    if !verify_password(current_password, &user.user.password_hash).await? {
        return Err(AppError::bad_input(
            "currentPassword",
            "current password is incorrect",
        ));
    }
    let new_password = Password::parse("newPassword", new_password)?;
    if new_password.expose() == current_password {
        return Err(AppError::bad_input(
            "newPassword",
            "choose a password different from the current one",
        ));
    }
    let hash = hash_password(&new_password).await?;
    let mut uow = UnitOfWork::begin(ctx).await?;
    let txn = uow.db();
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(hash))
        .filter(users::Column::Id.eq(user.id.clone()))
        .exec(txn)
        .await?;
    let valid = end_all_sessions(txn, &user.id).await?;
    audit::record(
        txn,
        Entry {
            action: action::PASSWORD_CHANGED,
            actor_id: Some(&user.id),
            target_type: Some("user"),
            target_id: Some(&user.id),
            ip,
            detail: None,
        },
    )
    .await?;
    uow.sessions_ended(&user.id, valid);
    uow.commit().await?;
    Ok(())
}

pub async fn set_market(
    ctx: &DomainCtx,
    user: &CurrentUser,
    market_code: &str,
) -> AppResult<users::Model> {
    let market = ctx
        .reference
        .market_by_code(market_code)
        .ok_or_else(|| AppError::bad_input("marketCode", "unknown market"))?;
    let mut model: users::ActiveModel = user.user.clone().into();
    model.market_id = Set(Some(market.id.clone()));
    model.updated_at = Set(Utc::now());
    let uow = UnitOfWork::begin(ctx).await?;
    let changed = model.update(uow.db()).await?;
    uow.commit().await?;
    Ok(changed)
}

pub async fn update_profile(
    ctx: &DomainCtx,
    user: &CurrentUser,
    name: Option<&str>,
    timezone: Option<&str>,
) -> AppResult<users::Model> {
    let mut model: users::ActiveModel = user.user.clone().into();
    if let Some(name) = name {
        model.name = Set(parse_name("name", name)?);
    }
    if let Some(tz) = timezone {
        let tz = tz.trim();
        if tz.parse::<chrono_tz::Tz>().is_err() || tz.len() > 64 {
            return Err(AppError::bad_input(
                "timezone",
                "an IANA time zone name, e.g. Europe/London",
            ));
        }
        model.timezone = Set(Some(tz.to_string()));
    }
    model.updated_at = Set(Utc::now());
    let uow = UnitOfWork::begin(ctx).await?;
    let changed = model.update(uow.db()).await?;
    uow.commit().await?;
    Ok(changed)
}

/// Creates an admin (the only way one comes to exist). Returns the user.
pub async fn create_admin(
    db: &DatabaseConnection,
    email: &str,
    password: &str,
) -> AppResult<users::Model> {
    let email = Email::parse(email)?;
    let password = Password::parse("password", password)?;
    if find_user_by_email(db, &email).await?.is_some() {
        return Err(AppError::Conflict(
            "an account with this email already exists".into(),
        ));
    }
    let hash = hash_password(&password).await?;
    let txn = crate::db::begin(db).await?;
    let user = insert_user(
        &txn,
        &email,
        hash,
        "Administrator".into(),
        Role::Admin,
        None,
        true,
    )
    .await?;
    audit::record(
        &txn,
        Entry {
            action: action::ADMIN_CREATED,
            actor_id: None,
            target_type: Some("user"),
            target_id: Some(&user.id),
            ip: None,
            detail: Some(serde_json::json!({ "via": "cli" })),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}

/// Whether the token behind `user` has expired or its session was ended by
/// this process: no database, so it can be asked before every message.
pub fn session_ended_here(ctx: &DomainCtx, user: &CurrentUser) -> bool {
    ctx.revocations
        .is_revoked(&user.id, user.token_version, user.session_family.as_deref())
        || Utc::now().timestamp() >= user.token_expires_at
}

/// Whether the token behind `user` still stands, as the database says now:
/// the account, its session version, and (for tokens that name one) its
/// session family not logged out. Open sockets ask this every few seconds.
pub async fn still_signed_in(ctx: &DomainCtx, user: &CurrentUser) -> AppResult<bool> {
    if session_ended_here(ctx, user) {
        return Ok(false);
    }
    let Some(now) = users::Entity::find_by_id(user.id.clone())
        .one(&ctx.db)
        .await?
    else {
        return Ok(false);
    };
    if now.session_version != user.token_version || now.suspended_at.is_some() {
        return Ok(false);
    }
    if let Some(family) = &user.session_family {
        let live = sessions::Entity::find()
            .filter(sessions::Column::FamilyId.eq(family.clone()))
            .filter(sessions::Column::RevokedAt.is_null())
            .one(&ctx.db)
            .await?;
        return Ok(live.is_some());
    }
    Ok(true)
}

/// Deletes refresh tokens that expired long ago (a spent token is kept
/// until then, to detect reuse).
pub async fn purge_expired_sessions(ctx: &DomainCtx) -> AppResult<u64> {
    let cutoff = Utc::now() - Duration::days(7);
    let uow = UnitOfWork::begin(ctx).await?;
    let gone = sessions::Entity::delete_many()
        .filter(sessions::Column::ExpiresAt.lt(cutoff))
        .exec(uow.db())
        .await?
        .rows_affected;
    uow.commit().await?;
    Ok(gone)
}

/// A strong random password for `create-admin` when none is given.
pub fn generate_password() -> String {
    // 24 URL-safe characters plus a fixed mix guarantees every class.
    format!("{}Aa9", &random_token()[..24])
}
