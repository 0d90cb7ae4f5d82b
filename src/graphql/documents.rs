//! Parsed documents, remembered by their text. The app sends the same few
//! operations over and over; parsing one (async-graphql's pest parser) cost
//! more CPU than serving a whole coach page from the index, and each
//! request needed the document three times (its name for the logs, the
//! cost limit, the engine). A bounded map: at most [`CAPACITY`] documents
//! of at most [`MAX_QUERY_BYTES`] each (a few MiB at worst; longer texts
//! are parsed every time), emptied when full, so a client sending
//! ever-new documents only costs itself their parsing.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use async_graphql::parser::types::ExecutableDocument;

pub const CAPACITY: usize = 256;
pub const MAX_QUERY_BYTES: usize = 4 * 1024;

type Cache = Mutex<HashMap<Box<str>, Arc<ExecutableDocument>>>;

static DOCUMENTS: LazyLock<Cache> = LazyLock::new(Default::default);

/// The document of `query`, parsed once per text (errors are not kept).
pub fn parse(query: &str) -> async_graphql::parser::Result<Arc<ExecutableDocument>> {
    if query.len() > MAX_QUERY_BYTES {
        return async_graphql::parser::parse_query(query).map(Arc::new);
    }
    if let Some(doc) = DOCUMENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(query)
    {
        return Ok(doc.clone());
    }
    let doc = Arc::new(async_graphql::parser::parse_query(query)?);
    let mut map = DOCUMENTS.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= CAPACITY {
        map.clear();
    }
    map.insert(query.into(), doc.clone());
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_is_parsed_once_and_the_map_stays_bounded() {
        let a = parse("{ __typename }").unwrap();
        let b = parse("{ __typename }").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        for n in 0..(CAPACITY * 2) {
            parse(&format!("query Q{n} {{ __typename }}")).unwrap();
        }
        assert!(DOCUMENTS.lock().unwrap().len() <= CAPACITY);
        assert!(parse("{ broken").is_err());
    }
}
