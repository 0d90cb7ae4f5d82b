//! Dataloaders: one per foreign key a listed coach exposes, so a page of N
//! coaches costs one statement per nested field, not N.
//!
//! Loaders are made per request (their cache must not outlive it). The
//! batch delay is 1 ms on purpose: tokio's timer cannot wait less, and every
//! sibling in a list registers its key within one poll of the list, well
//! inside that window, so each nested field becomes exactly one batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    Statement,
};

use crate::domain::review::{ReviewRow, false_literal, placeholder};
use crate::error::AppError;
use entity::{availability_rules, coach_categories, packages};

pub const BATCH_DELAY: Duration = Duration::from_millis(1);

/// All loaders of one request.
pub struct Loaders {
    pub categories: DataLoader<CategoryIdsByCoach>,
    pub packages: DataLoader<PackagesByCoach>,
    pub reviews: DataLoader<ReviewsByCoach>,
    pub availability: DataLoader<RulesByCoach>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection) -> Self {
        Loaders {
            categories: DataLoader::new(CategoryIdsByCoach(db.clone()), tokio::spawn)
                .delay(BATCH_DELAY),
            packages: DataLoader::new(PackagesByCoach(db.clone()), tokio::spawn).delay(BATCH_DELAY),
            reviews: DataLoader::new(ReviewsByCoach(db.clone()), tokio::spawn).delay(BATCH_DELAY),
            availability: DataLoader::new(RulesByCoach(db.clone()), tokio::spawn)
                .delay(BATCH_DELAY),
        }
    }
}

/// Loader errors are shared between waiters, hence `Arc`.
pub type LoadError = Arc<AppError>;

fn err(e: sea_orm::DbErr) -> LoadError {
    Arc::new(AppError::from(e))
}

pub struct CategoryIdsByCoach(DatabaseConnection);

impl Loader<String> for CategoryIdsByCoach {
    type Value = Vec<String>;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Vec<String>>, LoadError> {
        let rows = coach_categories::Entity::find()
            .filter(coach_categories::Column::CoachId.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await
            .map_err(err)?;
        let mut out: HashMap<String, Vec<String>> =
            keys.iter().map(|k| (k.clone(), vec![])).collect();
        for r in rows {
            out.entry(r.coach_id).or_default().push(r.category_id);
        }
        Ok(out)
    }
}

pub struct PackagesByCoach(DatabaseConnection);

impl Loader<String> for PackagesByCoach {
    type Value = Vec<packages::Model>;
    type Error = LoadError;

    /// Active packages, cheapest first.
    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<packages::Model>>, LoadError> {
        let rows = packages::Entity::find()
            .filter(packages::Column::CoachId.is_in(keys.iter().cloned()))
            .filter(packages::Column::Active.eq(true))
            .order_by_asc(packages::Column::PriceMinor)
            .order_by_asc(packages::Column::Id)
            .all(&self.0)
            .await
            .map_err(err)?;
        let mut out: HashMap<String, Vec<packages::Model>> =
            keys.iter().map(|k| (k.clone(), vec![])).collect();
        for r in rows {
            out.entry(r.coach_id.clone()).or_default().push(r);
        }
        Ok(out)
    }
}

pub struct RulesByCoach(DatabaseConnection);

impl Loader<String> for RulesByCoach {
    type Value = Vec<availability_rules::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<availability_rules::Model>>, LoadError> {
        let rows = availability_rules::Entity::find()
            .filter(availability_rules::Column::CoachId.is_in(keys.iter().cloned()))
            .order_by_asc(availability_rules::Column::Weekday)
            .order_by_asc(availability_rules::Column::StartMinute)
            .all(&self.0)
            .await
            .map_err(err)?;
        let mut out: HashMap<String, Vec<availability_rules::Model>> =
            keys.iter().map(|k| (k.clone(), vec![])).collect();
        for r in rows {
            out.entry(r.coach_id.clone()).or_default().push(r);
        }
        Ok(out)
    }
}

/// The newest `first` visible reviews of a coach.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReviewKey {
    pub coach_id: String,
    pub first: u32,
}

pub struct ReviewsByCoach(DatabaseConnection);

impl Loader<ReviewKey> for ReviewsByCoach {
    type Value = Vec<ReviewRow>;
    type Error = LoadError;

    /// One statement per distinct `first` (in practice one): a window
    /// function keeps the newest `first` rows of each coach.
    async fn load(
        &self,
        keys: &[ReviewKey],
    ) -> Result<HashMap<ReviewKey, Vec<ReviewRow>>, LoadError> {
        let backend = self.0.get_database_backend();
        let mut by_first: HashMap<u32, Vec<&ReviewKey>> = HashMap::new();
        for k in keys {
            by_first.entry(k.first).or_default().push(k);
        }
        let mut out: HashMap<ReviewKey, Vec<ReviewRow>> =
            keys.iter().map(|k| (k.clone(), vec![])).collect();
        for (first, group) in by_first {
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(group.len() + 1);
            let mut marks = Vec::with_capacity(group.len());
            for k in &group {
                values.push(k.coach_id.clone().into());
                marks.push(placeholder(backend, values.len()));
            }
            values.push(i64::from(first).into());
            let limit = placeholder(backend, values.len());
            let sql = format!(
                "SELECT id, coach_id, rating, comment, coach_response, created_at, author_name FROM (
                   SELECT r.id, r.coach_id, r.rating, r.comment, r.coach_response, r.created_at,
                          u.name AS author_name,
                          ROW_NUMBER() OVER (PARTITION BY r.coach_id ORDER BY r.id DESC) AS rn
                   FROM reviews r JOIN users u ON u.id = r.consumer_id
                   WHERE r.coach_id IN ({}) AND r.hidden = {}
                 ) ranked WHERE rn <= {limit} ORDER BY coach_id, id DESC",
                marks.join(", "),
                false_literal(backend),
            );
            let rows =
                ReviewRow::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
                    .all(&self.0)
                    .await
                    .map_err(err)?;
            for r in rows {
                out.entry(ReviewKey {
                    coach_id: r.coach_id.clone(),
                    first,
                })
                .or_default()
                .push(r);
            }
        }
        Ok(out)
    }
}
