//! What each GraphQL request carries: the client IP and who is calling.

use std::net::IpAddr;

use async_graphql::Context;

use crate::domain::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Authentication outcome for one request, decided before execution.
#[derive(Debug, Clone)]
pub enum AuthState {
    Anonymous,
    /// A token was sent but refused; fields that need a user say
    /// `UNAUTHENTICATED`, public fields still answer.
    Invalid,
    /// The token could not be checked (the database did not answer):
    /// fields that need a user fail as internal errors, never as
    /// `UNAUTHENTICATED`, which would make an app sign its user out.
    Unchecked,
    User(Box<CurrentUser>),
}

#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub ip: Option<IpAddr>,
    pub auth: AuthState,
}

impl RequestCtx {
    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}

/// Typed access to the context without `unwrap`: a missing piece is an
/// internal error, never a panic or a leaked message.
pub trait CtxExt {
    fn state(&self) -> AppResult<&AppState>;
    fn request(&self) -> AppResult<&RequestCtx>;
    fn current_user(&self) -> AppResult<&CurrentUser>;
}

impl CtxExt for Context<'_> {
    fn state(&self) -> AppResult<&AppState> {
        self.data_opt::<AppState>()
            .ok_or_else(|| AppError::internal("AppState missing from schema data"))
    }

    fn request(&self) -> AppResult<&RequestCtx> {
        self.data_opt::<RequestCtx>()
            .ok_or_else(|| AppError::internal("RequestCtx missing from request data"))
    }

    fn current_user(&self) -> AppResult<&CurrentUser> {
        match &self.request()?.auth {
            AuthState::User(u) => Ok(u),
            AuthState::Anonymous => Err(AppError::Unauthenticated("sign in first")),
            AuthState::Invalid => Err(AppError::Unauthenticated("invalid or expired token")),
            AuthState::Unchecked => Err(AppError::internal(
                "the sign-in could not be checked (the database did not answer)",
            )),
        }
    }
}
