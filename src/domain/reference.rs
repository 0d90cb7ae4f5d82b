//! Markets and categories: reference data seeded by migration and cached in
//! memory, because every search result and user names one.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};

use crate::error::AppResult;
use entity::{categories, markets};

#[derive(Clone, Default)]
pub struct ReferenceData {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    markets: Vec<markets::Model>,
    categories: Vec<categories::Model>,
    market_by_id: HashMap<String, usize>,
    category_by_id: HashMap<String, usize>,
}

impl ReferenceData {
    pub async fn load(db: &DatabaseConnection) -> AppResult<Self> {
        let markets = markets::Entity::find()
            .order_by_asc(markets::Column::Code)
            .all(db)
            .await?;
        let categories = categories::Entity::find()
            .order_by_asc(categories::Column::Name)
            .all(db)
            .await?;
        let market_by_id = markets
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        let category_by_id = categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        Ok(ReferenceData {
            inner: Arc::new(Inner {
                markets,
                categories,
                market_by_id,
                category_by_id,
            }),
        })
    }

    pub fn markets(&self) -> &[markets::Model] {
        &self.inner.markets
    }

    pub fn categories(&self) -> &[categories::Model] {
        &self.inner.categories
    }

    pub fn market(&self, id: &str) -> Option<&markets::Model> {
        self.inner
            .market_by_id
            .get(id)
            .map(|&i| &self.inner.markets[i])
    }

    pub fn market_by_code(&self, code: &str) -> Option<&markets::Model> {
        let code = code.trim();
        self.inner
            .markets
            .iter()
            .find(|m| m.code.eq_ignore_ascii_case(code))
    }

    pub fn category(&self, id: &str) -> Option<&categories::Model> {
        self.inner
            .category_by_id
            .get(id)
            .map(|&i| &self.inner.categories[i])
    }

    /// A category's position in [`Self::categories`] (a compact id for indexes).
    pub fn category_position(&self, slug: &str) -> Option<u16> {
        self.inner
            .categories
            .iter()
            .position(|c| c.slug == slug)
            .and_then(|p| u16::try_from(p).ok())
    }

    pub fn category_position_by_id(&self, id: &str) -> Option<u16> {
        self.inner
            .category_by_id
            .get(id)
            .and_then(|&p| u16::try_from(p).ok())
    }

    pub fn category_by_slug(&self, slug: &str) -> Option<&categories::Model> {
        self.inner.categories.iter().find(|c| c.slug == slug)
    }
}
