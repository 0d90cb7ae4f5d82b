//! Assembles the roots and applies the query limits of `api.md`.

use async_graphql::{MergedObject, MergedSubscription, Schema};

use crate::graphql::admin::{AdminFiguresQuery, AdminMutation, AdminQuery};
use crate::graphql::auth::{AuthMutation, AuthQuery};
use crate::graphql::booking::{BookingMutation, BookingQuery, BookingSubscription};
use crate::graphql::coach::{CoachMutation, CoachQuery};
use crate::graphql::commerce::{CommerceMutation, CommerceQuery};
use crate::graphql::notifications::{NotificationMutation, NotificationQuery};
use crate::graphql::privacy::PrivacyMutation;
use crate::graphql::problems::ProblemsQuery;
use crate::graphql::reference::ReferenceQuery;
use crate::graphql::reviews::ReviewMutation;
use crate::state::AppState;

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    AuthQuery,
    ReferenceQuery,
    CoachQuery,
    BookingQuery,
    AdminQuery,
    ProblemsQuery,
    CommerceQuery,
    AdminFiguresQuery,
    NotificationQuery,
);

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    AuthMutation,
    CoachMutation,
    BookingMutation,
    AdminMutation,
    CommerceMutation,
    ReviewMutation,
    PrivacyMutation,
    NotificationMutation,
);

#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(BookingSubscription);

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

pub const MAX_DEPTH: usize = 12;
pub const MAX_COMPLEXITY: usize = 1000;
pub const MAX_BATCH: usize = 10;
pub const MAX_DIRECTIVES: usize = 5;

fn builder() -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .limit_directives(MAX_DIRECTIVES)
    .limit_recursive_depth(32)
    .extension(crate::graphql::errors::ErrorCodes)
}

/// The schema the server runs. Production hides the schema: no
/// introspection and no "did you mean" suggestions.
pub fn build_schema(state: AppState) -> AppSchema {
    let production = state.settings.is_production();
    let limits = &state.settings.limits;
    let cost = crate::graphql::cost::CostLimit {
        max_cost: limits.graphql_max_cost,
        max_fields: limits.graphql_max_fields,
    };
    let mut b = builder().extension(cost).data(state);
    if production {
        b = b.disable_introspection().disable_suggestions();
    }
    b.finish()
}

/// The SDL written to `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
