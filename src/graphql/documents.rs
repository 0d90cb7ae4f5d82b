//! Parsed documents, remembered by their text. The app sends the same few
//! operations over and over; parsing one (async-graphql's pest parser) cost
//! more CPU than serving a whole coach page from the index. Only documents
//! that passed the cost limit are remembered ([`remember`], called by it),
//! and only small ones (at most [`MAX_QUERY_BYTES`] of text and
//! [`MAX_FIELDS`] field selections, so an entry stays within some tens of
//! KiB), at most [`CAPACITY`] of them: the map is emptied when full (the old
//! entries freed outside the lock), so a client sending ever-new documents
//! costs itself their parsing and the others a re-parse each.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use async_graphql::parser::types::ExecutableDocument;

pub const CAPACITY: usize = 256;
pub const MAX_QUERY_BYTES: usize = 4 * 1024;
pub const MAX_FIELDS: usize = 200;

type Cache = Mutex<HashMap<Box<str>, Arc<ExecutableDocument>>>;

static DOCUMENTS: LazyLock<Cache> = LazyLock::new(Default::default);

/// The document of `query`: the remembered one, or parsed now.
pub fn parse(query: &str) -> async_graphql::parser::Result<Arc<ExecutableDocument>> {
    if query.len() <= MAX_QUERY_BYTES
        && let Some(doc) = DOCUMENTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(query)
    {
        return Ok(doc.clone());
    }
    async_graphql::parser::parse_query(query).map(Arc::new)
}

/// Keeps `doc`, the document of `query` that passed the cost limit with
/// `fields` field selections, for the next requests with the same text.
pub fn remember(query: &str, doc: Arc<ExecutableDocument>, fields: usize) {
    if query.len() > MAX_QUERY_BYTES || fields > MAX_FIELDS {
        return;
    }
    let mut map = DOCUMENTS.lock().unwrap_or_else(|e| e.into_inner());
    if map.contains_key(query) {
        return;
    }
    let old = (map.len() >= CAPACITY).then(|| std::mem::take(&mut *map));
    map.insert(query.into(), doc);
    drop(map);
    drop(old);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_text_is_not_parsed_again_and_the_map_stays_bounded() {
        let text = "{ __typename remembered: __typename }";
        let a = parse(text).unwrap();
        assert!(
            !Arc::ptr_eq(&a, &parse(text).unwrap()),
            "not before remember"
        );
        remember(text, a.clone(), 2);
        assert!(Arc::ptr_eq(&a, &parse(text).unwrap()));
        for n in 0..(CAPACITY * 2) {
            let t = format!("query Q{n} {{ __typename }}");
            remember(&t, parse(&t).unwrap(), 1);
        }
        assert!(DOCUMENTS.lock().unwrap().len() <= CAPACITY);
        let big = "{ __typename }";
        remember(big, parse(big).unwrap(), MAX_FIELDS + 1);
        assert!(!DOCUMENTS.lock().unwrap().contains_key(big));
        assert!(parse("{ broken").is_err());
    }
}
