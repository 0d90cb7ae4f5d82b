//! What a request really costs, counted before anything runs.
//!
//! async-graphql's own complexity counts each field once: it ignores list
//! sizes, and a spread fragment costs nothing however often it is used, so
//! a few hundred bytes of nested fragments could expand into millions of
//! field resolutions. This counts the document as it will be executed:
//!
//! - every selected field costs 1, `__typename` included;
//! - a list field multiplies what it selects by its `first` argument (a
//!   variable is read from the request), by the default page size where a
//!   connection has none, and by a fixed estimate for short lists;
//! - a fragment spread costs what its fragment costs, each time it is
//!   spread (computed once per fragment, so counting stays linear in the
//!   document even when the expansion is exponential).
//!
//! Two limits: the total cost (`GRAPHQL_MAX_COST`) and the number of field
//! selections once every fragment is expanded (`GRAPHQL_MAX_FIELDS`). A
//! refused request is answered `BAD_USER_INPUT` after parsing, before
//! validation and execution.

use std::collections::HashMap;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, ServerError, ServerResult, Value, Variables};

use crate::domain::search::{DEFAULT_PAGE, MAX_PAGE};

/// Connection fields: without `first` they return a default page.
const CONNECTIONS: [&str; 6] = [
    "searchCoaches",
    "myBookings",
    "adminCoaches",
    "adminUsers",
    "reviews",
    "auditLog",
];

/// Lists without paging, with how many items they hold at most in
/// practice (a coach has at most 5 categories, 50 availability rules...).
const SHORT_LISTS: [(&str, u64); 9] = [
    ("adminSponsorships", 100),
    ("availability", 50),
    ("categories", 10),
    ("markets", 10),
    ("myPackagePurchases", 100),
    ("mySponsorships", 100),
    ("packages", 20),
    ("sessionDurations", 5),
    ("sponsorshipPlans", 10),
];

/// `availableSlots` offers at most one start per 30 minutes.
const SLOTS_PER_DAY: u64 = 48;

/// Fragments spread inside fragments deeper than this are refused.
const MAX_FRAGMENT_NESTING: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    /// Fields resolved, list sizes included.
    pub cost: u64,
    /// Field selections with every fragment expanded (list sizes not
    /// counted).
    pub fields: u64,
}

impl Cost {
    fn add(self, other: Cost) -> Cost {
        Cost {
            cost: self.cost.saturating_add(other.cost),
            fields: self.fields.saturating_add(other.fields),
        }
    }
}

struct Counter<'a> {
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    fragments: HashMap<Name, Cost>,
    visiting: Vec<Name>,
}

/// A whole number from a constant (an argument, with its variables read).
fn as_count(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

impl Counter<'_> {
    fn multiplier(&self, field: &async_graphql::parser::types::Field) -> u64 {
        let name = field.name.node.as_str();
        let first = field
            .arguments
            .iter()
            .find(|(k, _)| k.node.as_str() == "first")
            .and_then(|(_, v)| {
                let value = v
                    .node
                    .clone()
                    .into_const_with(|name| self.variables.get(&name).cloned().ok_or(()))
                    .ok()?;
                as_count(&value)
            });
        match first {
            Some(n) => return n.max(1),
            // Present but not a number we can read: assume the largest page.
            None if field
                .arguments
                .iter()
                .any(|(k, _)| k.node.as_str() == "first") =>
            {
                return MAX_PAGE;
            }
            None => {}
        }
        if CONNECTIONS.contains(&name) {
            return DEFAULT_PAGE;
        }
        if name == "availableSlots" {
            return self.slot_days(field) * SLOTS_PER_DAY;
        }
        SHORT_LISTS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(1, |(_, size)| *size)
    }

    /// Days between `from` and `to` of `availableSlots` (1 to 31; the
    /// longest range when they cannot be read).
    fn slot_days(&self, field: &async_graphql::parser::types::Field) -> u64 {
        let instant = |arg: &str| {
            let (_, v) = field
                .arguments
                .iter()
                .find(|(k, _)| k.node.as_str() == arg)?;
            let value = v
                .node
                .clone()
                .into_const_with(|name| self.variables.get(&name).cloned().ok_or(()))
                .ok()?;
            match value {
                Value::String(s) => chrono::DateTime::parse_from_rfc3339(&s).ok(),
                _ => None,
            }
        };
        match (instant("from"), instant("to")) {
            (Some(from), Some(to)) => {
                let days = (to - from).num_hours().div_euclid(24) + 1;
                days.clamp(1, crate::domain::availability::MAX_RANGE_DAYS) as u64
            }
            _ => crate::domain::availability::MAX_RANGE_DAYS as u64,
        }
    }

    fn selection_set(&mut self, set: &SelectionSet) -> Result<Cost, String> {
        let mut total = Cost::default();
        for item in &set.items {
            let c = match &item.node {
                Selection::Field(f) => {
                    let children = self.selection_set(&f.node.selection_set.node)?;
                    let m = self.multiplier(&f.node);
                    Cost {
                        cost: m.saturating_mul(children.cost).saturating_add(1),
                        fields: children.fields.saturating_add(1),
                    }
                }
                Selection::InlineFragment(f) => self.selection_set(&f.node.selection_set.node)?,
                Selection::FragmentSpread(s) => self.fragment(&s.node.fragment_name.node)?,
            };
            total = total.add(c);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &Name) -> Result<Cost, String> {
        if let Some(c) = self.fragments.get(name) {
            return Ok(*c);
        }
        if self.visiting.contains(name) {
            return Err(format!("fragment `{name}` spreads itself"));
        }
        if self.visiting.len() >= MAX_FRAGMENT_NESTING {
            return Err("fragments are nested too deeply".into());
        }
        let Some(def) = self.doc.fragments.get(name) else {
            // Validation reports the unknown fragment.
            return Ok(Cost::default());
        };
        self.visiting.push(name.clone());
        let c = self.selection_set(&def.node.selection_set.node);
        self.visiting.pop();
        let c = c?;
        self.fragments.insert(name.clone(), c);
        Ok(c)
    }
}

/// The cost of the document's costliest operation.
pub fn measure(doc: &ExecutableDocument, variables: &Variables) -> Result<Cost, String> {
    let mut worst = Cost::default();
    for (_, op) in doc.operations.iter() {
        // A variable the request leaves out takes its declared default.
        let mut vars = variables.clone();
        for d in &op.node.variable_definitions {
            if !vars.contains_key(&d.node.name.node)
                && let Some(default) = &d.node.default_value
            {
                vars.insert(d.node.name.node.clone(), default.node.clone());
            }
        }
        // Fragment costs depend on the variables: counted afresh per operation.
        let mut counter = Counter {
            doc,
            variables: &vars,
            fragments: HashMap::new(),
            visiting: Vec::new(),
        };
        let c = counter.selection_set(&op.node.selection_set.node)?;
        worst = Cost {
            cost: worst.cost.max(c.cost),
            fields: worst.fields.max(c.fields),
        };
    }
    Ok(worst)
}

#[derive(Debug, Clone, Copy)]
pub struct CostLimit {
    pub max_cost: u64,
    pub max_fields: u64,
}

impl ExtensionFactory for CostLimit {
    fn create(&self) -> std::sync::Arc<dyn Extension> {
        std::sync::Arc::new(*self)
    }
}

fn refuse(message: String) -> ServerError {
    let mut err = ServerError::new(message, None);
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", "BAD_USER_INPUT");
    err
}

#[async_trait::async_trait]
impl Extension for CostLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Measured on our own parse, before the engine's: its depth check
        // walks every spread fragment again, without memoising, so a
        // fragment tree would cost seconds before any limit looked at it.
        // A document that does not parse is left to the engine to report.
        if let Ok(doc) = crate::graphql::documents::parse(query) {
            let fields = self.check(&doc, variables)?;
            crate::graphql::documents::remember(query, doc, fields);
        }
        next.run(ctx, query, variables).await
    }
}

impl CostLimit {
    /// The document's field selections, when within the limits.
    fn check(&self, doc: &ExecutableDocument, variables: &Variables) -> ServerResult<usize> {
        let c = measure(doc, variables).map_err(refuse)?;
        if c.fields > self.max_fields {
            return Err(refuse(format!(
                "the query is too complex: it selects {} fields once its fragments are expanded (the limit is {})",
                c.fields, self.max_fields
            )));
        }
        if c.cost > self.max_cost {
            return Err(refuse(format!(
                "the query is too complex: it costs {}, list sizes included (the limit is {})",
                c.cost, self.max_cost
            )));
        }
        Ok(usize::try_from(c.fields).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost_of(q: &str) -> Cost {
        let doc = async_graphql::parser::parse_query(q).unwrap();
        measure(&doc, &Variables::default()).unwrap()
    }

    #[test]
    fn fields_lists_and_fragments() {
        assert_eq!(cost_of("{ me { id } }"), Cost { cost: 2, fields: 2 });
        assert_eq!(cost_of("{ __typename }"), Cost { cost: 1, fields: 1 });
        // A connection without `first` is a default page.
        let c = cost_of("{ searchCoaches { nodes { id } } }");
        assert_eq!(c.cost, 1 + 20 * 2);
        let c =
            cost_of("{ searchCoaches(first: 5) { nodes { reviews(first: 2) { nodes { id } } } } }");
        assert_eq!(c.cost, 1 + 5 * (1 + (1 + 2 * 2)));
        // A fragment costs what it holds, every time it is spread.
        let c = cost_of("{ ...A ...A } fragment A on Query { me { id } }");
        assert_eq!(c, Cost { cost: 4, fields: 4 });
    }

    #[test]
    fn an_exponential_fragment_tree_is_counted_in_linear_time() {
        let mut q = String::from("query { ...F0 }\n");
        for level in 0..7 {
            let spreads: String = (0..10).map(|_| format!("...F{} ", level + 1)).collect();
            q.push_str(&format!("fragment F{level} on Query {{ {spreads} }}\n"));
        }
        q.push_str("fragment F7 on Query { __typename }\n");
        let started = std::time::Instant::now();
        let c = cost_of(&q);
        assert_eq!(c.fields, 10_000_000);
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
    }

    #[test]
    fn defaults_and_unreadable_sizes_count_in_full() {
        let c = cost_of("query($n: Int = 100) { searchCoaches(first: $n) { nodes { id } } }");
        assert_eq!(c.cost, 1 + 100 * 2);
        let c = cost_of("query($n: Int) { searchCoaches(first: $n) { nodes { id } } }");
        assert_eq!(c.cost, 1 + 100 * 2, "an unknown size is the largest page");
        let c = cost_of(
            "{ availableSlots(coachId: \"c\", from: \"a\", to: \"b\", durationMinutes: 60) { startAt } }",
        );
        assert_eq!(c.cost, 1 + 31 * 48);
    }

    #[test]
    fn a_fragment_that_spreads_itself_is_refused() {
        let doc =
            async_graphql::parser::parse_query("{ ...A } fragment A on Query { ...A }").unwrap();
        assert!(measure(&doc, &Variables::default()).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_document_is_measured_without_panic(raw in "[{}a-z .:(),0-9$]{0,200}") {
            if let Ok(doc) = async_graphql::parser::parse_query(&raw) {
                let _ = measure(&doc, &Variables::default());
            }
        }
    }
}
