//! `searchCoaches`: filters, sorts, relevance, keyset paging under change,
//! hostile strings, and the statement count that proves there is no N+1.

use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};
use serde_json::{Value, json};

use crate::helpers::{TestApp, code, field, spawn_app};

#[derive(Clone)]
struct Spec {
    name: &'static str,
    market: &'static str,
    category: &'static str,
    rate: i64,
    ratings: Vec<i16>,
    sponsored: bool,
}

fn spec(name: &'static str) -> Spec {
    Spec {
        name,
        market: "US",
        category: "math",
        rate: 5000,
        ratings: vec![],
        sponsored: false,
    }
}

/// Inserts an approved, published coach straight into the database (the
/// API path is covered in `coaches.rs`; here volume matters).
async fn insert(app: &TestApp, s: Spec) -> String {
    let db = &app.state.domain.db;
    let now = Utc::now();
    let market = app
        .state
        .domain
        .reference
        .market_by_code(s.market)
        .unwrap()
        .clone();
    let category = app
        .state
        .domain
        .reference
        .category_by_slug(s.category)
        .unwrap()
        .clone();
    let user_id = uuid::Uuid::now_v7().to_string();
    entity::users::ActiveModel {
        id: Set(user_id.clone()),
        email: Set(format!("{}@example.com", uuid::Uuid::new_v4().simple())),
        password_hash: Set("!".into()),
        name: Set(s.name.into()),
        role: Set("COACH".into()),
        email_verified: Set(true),
        market_id: Set(Some(market.id.clone())),
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
    .unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    entity::coach_profiles::ActiveModel {
        id: Set(id.clone()),
        user_id: Set(user_id.clone()),
        market_id: Set(market.id.clone()),
        display_name: Set(s.name.into()),
        headline: Set(format!("{} coach", category.name)),
        bio: Set("<p>Calm and structured.</p>".into()),
        hourly_rate_minor: Set(s.rate),
        currency: Set(market.currency.clone()),
        session_durations: Set("[60]".into()),
        timezone: Set("UTC".into()),
        meeting_url: Set(None),
        status: Set("APPROVED".into()),
        published: Set(true),
        rejection_reason: Set(None),
        payouts_enabled: Set(true),
        stripe_account_id: Set(None),
        payouts_updated_s: Set(0),
        rating_count: Set(0),
        rating_sum: Set(0),
        rating_score: Set(maestro_hub::domain::review::rating_score(0, 0)),
        sponsored_until: Set(s.sponsored.then(|| now + Duration::days(7))),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    entity::coach_categories::ActiveModel {
        coach_id: Set(id.clone()),
        category_id: Set(category.id.clone()),
    }
    .insert(db)
    .await
    .unwrap();
    for r in s.ratings {
        entity::reviews::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            coach_id: Set(id.clone()),
            consumer_id: Set(user_id.clone()),
            booking_id: Set(None),
            rating: Set(r),
            comment: Set("Good".into()),
            coach_response: Set(None),
            hidden: Set(false),
            hidden_reason: Set(None),
            hidden_at: Set(None),
            responded_at: Set(None),
            created_at: Set(now),
        }
        .insert(db)
        .await
        .unwrap();
    }
    maestro_hub::domain::review::refresh_rating(db, &id)
        .await
        .unwrap();
    // Written behind the app's back: tell the search index.
    app.state.domain.listings.invalidate();
    id
}

const SEARCH: &str = "query($f: CoachSearchFilter, $s: CoachSort, $n: Int, $a: String) {
    searchCoaches(filter: $f, sort: $s, first: $n, after: $a) {
        totalCount pageInfo { hasNextPage endCursor } nodes { id displayName isSponsored ratingAverage } } }";

async fn names(app: &TestApp, filter: Value, sort: &str) -> Vec<String> {
    let v = app
        .gql(SEARCH, json!({ "f": filter, "s": sort, "n": 100 }))
        .await;
    v["data"]["searchCoaches"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|n| n["displayName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn filters() {
    let app = spawn_app().await;
    insert(
        &app,
        Spec {
            market: "GB",
            category: "piano",
            rate: 3000,
            ratings: vec![5, 5, 4],
            ..spec("Alice Keys")
        },
    )
    .await;
    insert(
        &app,
        Spec {
            market: "GB",
            category: "math",
            rate: 6000,
            ratings: vec![3, 3],
            ..spec("Bob Numbers")
        },
    )
    .await;
    insert(
        &app,
        Spec {
            market: "US",
            category: "piano",
            rate: 9000,
            ..spec("Cara 100% Piano")
        },
    )
    .await;
    insert(
        &app,
        Spec {
            market: "IN",
            category: "chess",
            rate: 90000,
            ..spec("Dev O'Brien_Chess")
        },
    )
    .await;
    // Not public: never listed.
    let hidden = insert(
        &app,
        Spec {
            market: "GB",
            category: "piano",
            ..spec("Hidden Draft")
        },
    )
    .await;
    let mut m: entity::coach_profiles::ActiveModel =
        maestro_hub::domain::coach::get(&app.state.domain.db, &hidden)
            .await
            .unwrap()
            .into();
    m.status = Set("DRAFT".into());
    m.update(&app.state.domain.db).await.unwrap();
    app.state.domain.listings.invalidate();

    let mut all = names(&app, json!({}), "NEWEST").await;
    all.sort();
    assert_eq!(
        all,
        [
            "Alice Keys",
            "Bob Numbers",
            "Cara 100% Piano",
            "Dev O'Brien_Chess"
        ]
    );
    assert_eq!(
        names(&app, json!({ "marketCode": "GB" }), "NEWEST").await,
        ["Bob Numbers", "Alice Keys"]
    );
    assert_eq!(
        names(
            &app,
            json!({ "marketCode": "gb", "categorySlug": "piano" }),
            "NEWEST"
        )
        .await,
        ["Alice Keys"]
    );
    assert_eq!(
        names(&app, json!({ "minRating": 4.5 }), "NEWEST").await,
        ["Alice Keys"]
    );
    assert_eq!(
        names(
            &app,
            json!({ "marketCode": "GB", "maxHourlyRateMinor": 6000 }),
            "PRICE_LOW"
        )
        .await,
        ["Alice Keys", "Bob Numbers"]
    );
    assert_eq!(
        names(&app, json!({ "query": "KEYS" }), "NEWEST").await,
        ["Alice Keys"]
    );
    assert_eq!(
        names(&app, json!({ "query": "piano coach" }), "RATING").await,
        ["Alice Keys", "Cara 100% Piano"],
        "headline"
    );

    // Wildcards and quotes are plain characters.
    assert_eq!(
        names(&app, json!({ "query": "%" }), "NEWEST").await,
        ["Cara 100% Piano"]
    );
    assert_eq!(
        names(&app, json!({ "query": "_" }), "NEWEST").await,
        ["Dev O'Brien_Chess"]
    );
    assert_eq!(
        names(&app, json!({ "query": "o'brien" }), "NEWEST").await,
        ["Dev O'Brien_Chess"]
    );
    for hostile in ["\\", "\"", "'; DROP TABLE users; --", "%_%", "🎹"] {
        assert!(
            names(&app, json!({ "query": hostile }), "NEWEST")
                .await
                .is_empty(),
            "{hostile:?}"
        );
    }
    assert_eq!(
        names(&app, json!({}), "NEWEST").await.len(),
        4,
        "nothing was harmed"
    );
    let v = app
        .gql(SEARCH, json!({ "f": { "query": "a\u{0}b" } }))
        .await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("query")),
        "NUL byte: {v}"
    );

    for (filter, f) in [
        (json!({ "marketCode": "FR" }), "marketCode"),
        (json!({ "categorySlug": "astrology" }), "categorySlug"),
        (json!({ "minRating": 6.0 }), "minRating"),
        (json!({ "maxHourlyRateMinor": 0 }), "maxHourlyRateMinor"),
        (json!({ "query": "x".repeat(101) }), "query"),
    ] {
        let v = app.gql(SEARCH, json!({ "f": filter })).await;
        assert_eq!(
            (code(&v), field(&v)),
            (Some("BAD_USER_INPUT"), Some(f)),
            "{v}"
        );
    }
    for n in [0, 101, -1] {
        let v = app.gql(SEARCH, json!({ "n": n })).await;
        assert_eq!(
            (code(&v), field(&v)),
            (Some("BAD_USER_INPUT"), Some("first"))
        );
    }
}

#[tokio::test]
async fn every_sort_and_relevance() {
    let app = spawn_app().await;
    let fifty: Vec<i16> = std::iter::repeat_n(5, 40)
        .chain(std::iter::repeat_n(4, 10))
        .collect();
    insert(
        &app,
        Spec {
            rate: 7000,
            ratings: vec![5],
            ..spec("One Five")
        },
    )
    .await;
    insert(
        &app,
        Spec {
            rate: 3000,
            ratings: fifty,
            ..spec("Fifty 4.8")
        },
    )
    .await;
    insert(
        &app,
        Spec {
            rate: 5000,
            ratings: vec![2, 3],
            sponsored: true,
            ..spec("Sponsored Low")
        },
    )
    .await;
    insert(
        &app,
        Spec {
            rate: 9000,
            ..spec("Newcomer")
        },
    )
    .await;

    assert_eq!(
        names(&app, json!({}), "RELEVANCE").await,
        ["Sponsored Low", "Fifty 4.8", "One Five", "Newcomer"],
        "sponsored first, then damped rating (one 5-star does not beat fifty 4.8s)"
    );
    assert_eq!(
        names(&app, json!({}), "RATING").await,
        ["Fifty 4.8", "One Five", "Newcomer", "Sponsored Low"]
    );
    assert_eq!(
        names(&app, json!({ "marketCode": "US" }), "PRICE_LOW").await,
        ["Fifty 4.8", "Sponsored Low", "One Five", "Newcomer"]
    );
    assert_eq!(
        names(&app, json!({ "marketCode": "US" }), "PRICE_HIGH").await,
        ["Newcomer", "One Five", "Sponsored Low", "Fifty 4.8"]
    );
    assert_eq!(
        names(&app, json!({}), "NEWEST").await,
        ["Newcomer", "Sponsored Low", "Fifty 4.8", "One Five"]
    );
    // The default sort is RELEVANCE.
    let v = app
        .gql(
            "{ searchCoaches { nodes { displayName isSponsored } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        v["data"]["searchCoaches"]["nodes"][0]["displayName"],
        "Sponsored Low"
    );
    assert_eq!(v["data"]["searchCoaches"]["nodes"][0]["isSponsored"], true);
    assert_eq!(v["data"]["searchCoaches"]["nodes"][1]["isSponsored"], false);
}

#[tokio::test]
async fn cursor_paging_neither_skips_nor_repeats_while_data_changes() {
    let app = spawn_app().await;
    // Ties on every sort key but the id, to exercise the tie-break.
    for (i, name) in ["A", "B", "C", "D", "E", "F", "G"].iter().enumerate() {
        let ratings = if i % 2 == 0 { vec![5, 4] } else { vec![] };
        insert(
            &app,
            Spec {
                rate: 1000 * (1 + (i as i64 % 3)),
                ratings,
                sponsored: i == 3,
                ..spec(name)
            },
        )
        .await;
    }
    // Every coach is in the US: the price sorts need a market.
    let us = json!({ "marketCode": "US" });
    for sort in ["RELEVANCE", "RATING", "PRICE_LOW", "PRICE_HIGH", "NEWEST"] {
        let expected = names(&app, us.clone(), sort).await;
        let mut seen: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let v = app
                .gql(SEARCH, json!({ "f": us, "s": sort, "n": 2, "a": after }))
                .await;
            let conn = &v["data"]["searchCoaches"];
            assert!(conn["totalCount"].as_u64().unwrap() >= 7, "{v}");
            for n in conn["nodes"].as_array().unwrap() {
                seen.push(n["displayName"].as_str().unwrap().to_string());
            }
            pages += 1;
            // Data changes between pages: a new coach appears that sorts
            // anywhere, and must not disturb the listing of the others.
            insert(
                &app,
                Spec {
                    rate: 1000 + pages * 500,
                    ratings: vec![4],
                    ..spec("Late")
                },
            )
            .await;
            if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_string());
        }
        let originals: Vec<&String> = seen.iter().filter(|n| n.as_str() != "Late").collect();
        let want: Vec<&String> = expected.iter().filter(|n| n.as_str() != "Late").collect();
        assert_eq!(originals, want, "{sort}: no skip, no repeat");
    }

    // A cursor belongs to its sort.
    let v = app
        .gql(SEARCH, json!({ "f": us, "s": "PRICE_LOW", "n": 1 }))
        .await;
    let cursor = v["data"]["searchCoaches"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap();
    for other in ["PRICE_HIGH", "RATING", "RELEVANCE", "NEWEST"] {
        let v = app
            .gql(SEARCH, json!({ "f": us, "s": other, "a": cursor }))
            .await;
        assert_eq!(
            (code(&v), field(&v)),
            (Some("BAD_USER_INPUT"), Some("after")),
            "{other}"
        );
    }
    let v = app.gql(SEARCH, json!({ "a": "bm9wZQ" })).await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"));
}

const FULL_PAGE: &str = "query($n: Int) { searchCoaches(first: $n) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node {
        id displayName headline bio hourlyRate { amountMinor currency } sessionDurations timezone
        status isSponsored ratingAverage ratingCount payoutsEnabled
        market { code currency } categories { slug name }
        packages { name sessionCount price { amountMinor currency } }
        availability { weekday startTime endTime }
        reviews(first: 3) { totalCount nodes { rating comment authorName createdAt } }
    } } } }";

#[tokio::test]
async fn a_page_of_50_runs_as_few_statements_as_a_page_of_5() {
    let app = spawn_app().await;
    // No background refresh of an old index may run inside a measurement.
    app.state
        .domain
        .listings
        .set_max_age(std::time::Duration::from_secs(3600));
    let report =
        maestro_hub::seed::seed_demo(&app.state.domain.db, &app.state.domain.reference, 60, 5, 7)
            .await
            .unwrap();
    assert!(report.reviews > 100);
    app.state.domain.listings.invalidate();
    // The first search loads the index (two statements, then again only
    // after a change); measure pages after that.
    app.gql("{ searchCoaches(first: 1) { totalCount } }", json!({}))
        .await;
    // The counter is process-wide and background jobs (the sweep, the
    // outbox worker's poll) may add to one measurement: each page size
    // counts its quietest of three runs.
    let mut counts = Vec::new();
    for n in [5, 50] {
        let mut used = u64::MAX;
        let mut v = Value::Null;
        for _ in 0..3 {
            let before = app.statements();
            v = app.gql(FULL_PAGE, json!({ "n": n })).await;
            used = used.min(app.statements() - before);
        }
        assert!(v["errors"].is_null(), "{v}");
        let edges = v["data"]["searchCoaches"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), n);
        let reviews: usize = edges
            .iter()
            .map(|e| e["node"]["reviews"]["nodes"].as_array().unwrap().len())
            .sum();
        assert!(reviews > 0, "reviews were really loaded");
        assert!(
            edges
                .iter()
                .all(|e| !e["node"]["categories"].as_array().unwrap().is_empty())
        );
        counts.push(used);
    }
    assert_eq!(
        counts[0], counts[1],
        "statements for 5 vs 50 coaches: {counts:?}"
    );
    assert!(counts[1] <= 6, "at most 6 statements, ran {}", counts[1]);
    // The index is a cache: a change shows at once after invalidation.
    let before = app.gql("{ searchCoaches { totalCount } }", json!({})).await["data"]["searchCoaches"]["totalCount"].as_u64().unwrap();
    insert(&app, spec("One More")).await;
    let after = app.gql("{ searchCoaches { totalCount } }", json!({})).await["data"]["searchCoaches"]["totalCount"].as_u64().unwrap();
    let db_count = sea_orm::PaginatorTrait::count(
        <entity::coach_profiles::Entity as sea_orm::EntityTrait>::find(),
        &app.state.domain.db,
    )
    .await
    .unwrap();
    assert_eq!(after, before + 1, "db has {db_count}");
}

/// A search page comes from the in-memory index: once it is loaded, a page
/// of cards runs no statement at all.
#[tokio::test]
async fn a_page_of_cards_runs_no_statement() {
    let app = spawn_app().await;
    // No background refresh of an old index may run inside a measurement.
    app.state
        .domain
        .listings
        .set_max_age(std::time::Duration::from_secs(3600));
    for i in 0..30 {
        let name: &'static str = Box::leak(format!("Card Coach {i:02}").into_boxed_str());
        insert(&app, spec(name)).await;
    }
    let query = "{ searchCoaches(first: 25) { totalCount edges { cursor node {
        id displayName headline hourlyRate { amountMinor currency } ratingAverage
        ratingCount isSponsored market { code currency } categories { slug name } } } } }";
    // On PostgreSQL the rows written above also reach the index as change
    // notifications, which may arrive after the first search and mark
    // coaches stale once more (that reload is the index doing its job);
    // once they have all been heard, a page runs nothing.
    let mut ran = Vec::new();
    for _ in 0..50 {
        app.gql(query, json!({})).await;
        let before = app.statements();
        let v = app.gql(query, json!({})).await;
        assert!(v["errors"].is_null(), "{v}");
        assert_eq!(
            v["data"]["searchCoaches"]["edges"]
                .as_array()
                .unwrap()
                .len(),
            25
        );
        ran.push(app.statements() - before);
        if ran.last() == Some(&0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ran.last(), Some(&0), "statements per page: {ran:?}");
}

/// Polls `names` under `filter` until `done` holds, for up to five seconds.
async fn eventually(app: &TestApp, filter: Value, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = names(app, filter.clone(), "NEWEST").await;
        if done(&seen) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    seen
}

/// A listing changed behind this instance's back (by another instance, or
/// by hand) leaves search within moments on PostgreSQL: the database
/// announces the change. The index's age cannot be the reason here: it is
/// set to an hour.
#[tokio::test]
async fn another_writers_change_reaches_search_at_once_on_postgres() {
    let app = spawn_app().await;
    let db = &app.state.domain.db;
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        // SQLite is written by one server process, which tells its own index
        // (a_listing_changed_outside_a_resolver_leaves_search_at_once).
        crate::helpers::skip(
            "another_writers_change_reaches_search_at_once_on_postgres",
            "only PostgreSQL announces other writers' changes",
        );
        return;
    }
    app.state
        .domain
        .listings
        .set_max_age(std::time::Duration::from_secs(3600));
    let id = insert(&app, spec("Quiet Change")).await;
    insert(&app, spec("Stays Listed")).await;
    assert!(
        names(&app, json!({}), "NEWEST")
            .await
            .contains(&"Quiet Change".to_string())
    );
    let loads = app.state.domain.listings.loads();

    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "UPDATE coach_profiles SET published = false WHERE id = $1",
        [id.into()],
    ))
    .await
    .unwrap();
    let seen = eventually(&app, json!({}), |n| !n.iter().any(|n| n == "Quiet Change")).await;
    assert_eq!(seen, ["Stays Listed"]);
    // Only the changed coach was read again.
    let now = app.state.domain.listings.loads();
    assert_eq!(now.full, loads.full, "{loads:?} -> {now:?}");
    assert!(now.partial > loads.partial, "{loads:?} -> {now:?}");

    // A category change is announced too.
    db.execute_raw(sea_orm::Statement::from_string(
        sea_orm::DatabaseBackend::Postgres,
        "DELETE FROM coach_categories",
    ))
    .await
    .unwrap();
    let seen = eventually(
        &app,
        json!({ "categorySlug": "math" }),
        <[String]>::is_empty,
    )
    .await;
    assert!(seen.is_empty(), "{seen:?}");
}

/// An index older than its maximum age is refreshed in the background:
/// the safety net for a lost notification, or an SQLite file written by
/// another process.
#[tokio::test]
async fn an_old_index_refreshes_itself() {
    let app = spawn_app().await;
    let id = insert(&app, spec("Goes Quiet")).await;
    assert_eq!(names(&app, json!({}), "NEWEST").await, ["Goes Quiet"]);
    app.state
        .domain
        .listings
        .set_max_age(std::time::Duration::ZERO);
    let mut m: entity::coach_profiles::ActiveModel =
        maestro_hub::domain::coach::get(&app.state.domain.db, &id)
            .await
            .unwrap()
            .into();
    m.published = Set(false);
    m.update(&app.state.domain.db).await.unwrap();
    let seen = eventually(&app, json!({}), <[String]>::is_empty).await;
    assert!(seen.is_empty(), "{seen:?}");
}

/// A change made through the API shows on the very next search, from any
/// request, and only that coach is read again.
#[tokio::test]
async fn own_changes_show_at_once_and_reload_one_coach() {
    let app = spawn_app().await;
    // No background refresh of an old index may run between the counts.
    app.state
        .domain
        .listings
        .set_max_age(std::time::Duration::from_secs(3600));
    let admin = app.admin_token().await;
    insert(&app, spec("Already Listed")).await;
    let (token, _) = app
        .public_coach(
            &admin,
            "maya@example.com",
            "US",
            crate::helpers::profile_input("America/New_York"),
            json!([]),
        )
        .await;
    assert_eq!(
        names(&app, json!({}), "NEWEST").await,
        ["Maya Rivers", "Already Listed"]
    );
    let loads = app.state.domain.listings.loads();
    let v = app
        .gql_as(
            Some(&token),
            "mutation { publishCoachProfile(published: false) { published } }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["publishCoachProfile"]["published"], false, "{v}");
    assert_eq!(names(&app, json!({}), "NEWEST").await, ["Already Listed"]);
    let now = app.state.domain.listings.loads();
    assert_eq!(now.full, loads.full, "{loads:?} -> {now:?}");
    assert!(now.partial > loads.partial, "{loads:?} -> {now:?}");
}

/// Changes announced while the listener was away are lost; when it is
/// back, everything loaded before is read again.
#[tokio::test]
async fn a_listener_that_reconnects_catches_up() {
    let app = spawn_app().await;
    let db = &app.state.domain.db;
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        crate::helpers::skip(
            "a_listener_that_reconnects_catches_up",
            "SQLite has no listener",
        );
        return;
    }
    let listings = &app.state.domain.listings;
    listings.set_max_age(std::time::Duration::from_secs(3600));
    let id = insert(&app, spec("Missed Change")).await;
    insert(&app, spec("Stays Listed")).await;
    assert_eq!(names(&app, json!({}), "NEWEST").await.len(), 2);

    let sql = |text: &str| {
        sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Postgres, text.to_string())
    };
    db.execute_raw(sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    ))
    .await
    .unwrap();
    let until = |want: bool| async move {
        for _ in 0..250 {
            if listings.is_listening() == want {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    };
    assert!(until(false).await, "the listener noticed");
    db.execute_raw(sql(&format!(
        "UPDATE coach_profiles SET published = false WHERE id = '{id}'"
    )))
    .await
    .unwrap();
    assert!(until(true).await, "the listener is back");
    let seen = eventually(&app, json!({}), |n| n.len() == 1).await;
    assert_eq!(seen, ["Stays Listed"]);
}

/// A change made by domain code outside any resolver (as a job or a
/// webhook makes it) leaves search at once, on SQLite too, where nothing
/// but the writing code can tell the index.
#[tokio::test]
async fn a_listing_changed_outside_a_resolver_leaves_search_at_once() {
    let app = spawn_app().await;
    // Neither the background refresh nor (on PostgreSQL) the listener may
    // be what makes the change show: the index is old-proof for an hour.
    app.state
        .domain
        .listings
        .set_max_age(std::time::Duration::from_secs(3600));
    let admin = app.admin_token().await;
    insert(&app, spec("Already Listed")).await;
    let (token, _) = app
        .public_coach(
            &admin,
            "maya@example.com",
            "US",
            crate::helpers::profile_input("America/New_York"),
            json!([]),
        )
        .await;
    assert_eq!(
        names(&app, json!({}), "NEWEST").await,
        ["Maya Rivers", "Already Listed"]
    );
    let ctx = &app.state.domain;
    let coach = maestro_hub::domain::auth::authenticate(&ctx.db, &ctx.auth, &token)
        .await
        .unwrap();
    maestro_hub::domain::coach::publish(ctx, &coach, false)
        .await
        .unwrap();
    assert_eq!(names(&app, json!({}), "NEWEST").await, ["Already Listed"]);

    // A suspension, likewise.
    let admin_user = maestro_hub::domain::auth::authenticate(&ctx.db, &ctx.auth, &admin)
        .await
        .unwrap();
    let (token, _) = app
        .public_coach(
            &admin,
            "sam@example.com",
            "US",
            crate::helpers::profile_input("America/New_York"),
            json!([]),
        )
        .await;
    let sam = maestro_hub::domain::auth::authenticate(&ctx.db, &ctx.auth, &token)
        .await
        .unwrap();
    assert_eq!(names(&app, json!({}), "NEWEST").await.len(), 2);
    maestro_hub::domain::admin::suspend_user(ctx, &admin_user, &sam.id, "Fake reviews", None)
        .await
        .unwrap();
    assert_eq!(names(&app, json!({}), "NEWEST").await, ["Already Listed"]);
}

/// A text query also finds a category's coaches, ranks name and headline
/// matches above bio matches, and ignores letter case and accents.
#[tokio::test]
async fn text_search_finds_categories_ranks_where_it_matched_and_ignores_accents() {
    let app = spawn_app().await;
    let db = &app.state.domain.db;
    let bio_only = insert(
        &app,
        Spec {
            ratings: vec![5; 20],
            ..spec("Dana Bio")
        },
    )
    .await;
    insert(&app, spec("Ezra Piano")).await;
    let fay = insert(
        &app,
        Spec {
            category: "piano",
            ..spec("Fay Keys")
        },
    )
    .await;
    insert(&app, spec("Zoë Lund")).await;
    // Dana (well rated) mentions the piano only in her bio; her headline
    // is about maths.
    db.execute_unprepared(&format!(
        "UPDATE coach_profiles SET bio = '<p>I also accompany on piano.</p>' WHERE id = '{bio_only}'"
    ))
    .await
    .unwrap();
    // Fay's own words never say "piano": only her category does.
    db.execute_unprepared(&format!(
        "UPDATE coach_profiles SET headline = 'Patient lessons for beginners' WHERE id = '{fay}'"
    ))
    .await
    .unwrap();
    app.state.domain.listings.invalidate();

    let found = names(&app, json!({ "query": "piano" }), "RELEVANCE").await;
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        found.last().map(String::as_str),
        Some("Dana Bio"),
        "a bio match ranks below name, headline and category matches, even rated higher: {found:?}"
    );
    assert!(
        found.contains(&"Fay Keys".to_string()),
        "found through her category: {found:?}"
    );
    // The category's slug and name alike, in any case.
    assert!(
        names(&app, json!({ "query": "PIANO" }), "NEWEST")
            .await
            .contains(&"Fay Keys".to_string())
    );
    for q in ["zoe", "ZOË", "Zoe Lund", "zoë"] {
        assert_eq!(
            names(&app, json!({ "query": q }), "NEWEST").await,
            ["Zoë Lund"],
            "{q}"
        );
    }
}

/// Prices are compared within one currency: a price filter or sort needs a
/// market, given or the caller's own.
#[tokio::test]
async fn prices_are_never_compared_across_currencies() {
    let app = spawn_app().await;
    insert(
        &app,
        Spec {
            rate: 4000,
            ..spec("Dollar Coach")
        },
    )
    .await;
    insert(
        &app,
        Spec {
            market: "IN",
            rate: 150_000,
            ..spec("Rupee Coach")
        },
    )
    .await;
    insert(
        &app,
        Spec {
            market: "GB",
            rate: 3000,
            ..spec("Pound Coach")
        },
    )
    .await;

    for (filter, sort) in [
        (json!({ "maxHourlyRateMinor": 5000 }), "RELEVANCE"),
        (json!({}), "PRICE_LOW"),
        (json!({}), "PRICE_HIGH"),
    ] {
        let v = app
            .gql(SEARCH, json!({ "f": filter, "s": sort, "n": 10 }))
            .await;
        assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
        assert_eq!(field(&v), Some("marketCode"), "{v}");
    }
    assert_eq!(
        names(&app, json!({ "marketCode": "IN" }), "PRICE_LOW").await,
        ["Rupee Coach"]
    );
    // Signed in, the caller's market applies.
    let parent = app
        .register("parent@example.com", "CONSUMER", Some("GB"))
        .await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let v = app
        .gql_as(
            Some(&parent),
            SEARCH,
            json!({ "f": { "maxHourlyRateMinor": 200_000 }, "s": "PRICE_HIGH", "n": 10 }),
        )
        .await;
    let found: Vec<&str> = v["data"]["searchCoaches"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|n| n["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["Pound Coach"]);
    // Without a price, every market is still searched.
    assert_eq!(names(&app, json!({}), "NEWEST").await.len(), 3);
}

/// RATING sorts by the damped score, which each coach shows.
#[tokio::test]
async fn the_rating_sort_shows_the_figure_it_sorts_by() {
    let app = spawn_app().await;
    insert(
        &app,
        Spec {
            ratings: vec![5],
            ..spec("One Five")
        },
    )
    .await;
    insert(
        &app,
        Spec {
            ratings: std::iter::repeat_n(5, 40)
                .chain(std::iter::repeat_n(4, 10))
                .collect(),
            ..spec("Fifty 4.8")
        },
    )
    .await;
    insert(&app, spec("Newcomer")).await;
    let v = app
        .gql(
            "{ searchCoaches(sort: RATING) { nodes { displayName ratingScore ratingAverage } } }",
            json!({}),
        )
        .await;
    let nodes = v["data"]["searchCoaches"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"));
    let got: Vec<(&str, f64)> = nodes
        .iter()
        .map(|n| {
            (
                n["displayName"].as_str().unwrap(),
                n["ratingScore"].as_f64().unwrap(),
            )
        })
        .collect();
    // (10 * 4.0 + 240) / 60 = 4.67; (40 + 5) / 11 = 4.09; no reviews: 4.0.
    assert_eq!(
        got,
        [("Fifty 4.8", 4.67), ("One Five", 4.09), ("Newcomer", 4.0)]
    );
    assert_eq!(
        nodes[1]["ratingAverage"], 5.0,
        "the plain average is shown beside it"
    );
    let sdl = maestro_hub::graphql::sdl();
    assert!(
        sdl.contains("By the damped rating, `Coach.ratingScore`"),
        "the sort says what it sorts by"
    );
}

const COACH_PAGE: &str = "query($id: ID!) { coach(id: $id) {
    id displayName headline bio hourlyRate { amountMinor currency } ratingScore ratingAverage ratingCount
    market { code currency } categories { slug name }
    availability { weekday startTime endTime }
    packages { id name sessionCount price { amountMinor currency } }
    reviews(first: 20) { totalCount nodes { rating comment authorName createdAt } } } }";

/// A public coach's page is served from the search index: at most one
/// statement (the reviews, and none while their shared cache is warm),
/// and a coach's own changes to availability and packages show at once.
#[tokio::test]
async fn a_coach_page_runs_at_most_one_statement_and_shows_changes_at_once() {
    let app = spawn_app().await;
    app.state
        .domain
        .listings
        .set_max_age(std::time::Duration::from_secs(3600));
    let admin = app.admin_token().await;
    let (coach_token, coach) = crate::bookings::open_coach(&app, &admin, "coach@example.com").await;
    crate::packages::create_package(
        &app,
        &coach_token,
        crate::packages::package_input("Five lessons", 5, 25_000, 90),
    )
    .await;
    let page = |v: &Value| v["data"]["coach"].clone();
    let mut ran = Vec::new();
    for _ in 0..50 {
        app.gql(COACH_PAGE, json!({ "id": coach })).await;
        // The review cache is shared for a few seconds: let it lapse so
        // the measured page pays for its reviews once.
        tokio::time::sleep(std::time::Duration::from_millis(5_100)).await;
        let before = app.statements();
        let v = app.gql(COACH_PAGE, json!({ "id": coach })).await;
        assert!(v["errors"].is_null(), "{v}");
        assert_eq!(page(&v)["packages"][0]["name"], "Five lessons", "{v}");
        assert!(
            !page(&v)["availability"].as_array().unwrap().is_empty(),
            "{v}"
        );
        ran.push(app.statements() - before);
        if ran.last() <= Some(&1) {
            break;
        }
    }
    assert!(ran.last() <= Some(&1), "statements per coach page: {ran:?}");
    let before = app.statements();
    app.gql(COACH_PAGE, json!({ "id": coach })).await;
    assert_eq!(app.statements() - before, 0, "a warm page runs nothing");

    // The coach's changes reach the page at once.
    let v = app
        .gql_as(
            Some(&coach_token),
            "mutation($r: [AvailabilityRuleInput!]!) { setAvailability(rules: $r) { id } }",
            json!({ "r": [{ "weekday": 2, "startTime": "10:00", "endTime": "12:00" }] }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    crate::packages::create_package(
        &app,
        &coach_token,
        crate::packages::package_input("Ten lessons", 10, 45_000, 120),
    )
    .await;
    let v = app.gql(COACH_PAGE, json!({ "id": coach })).await;
    assert_eq!(
        page(&v)["availability"],
        json!([{ "weekday": 2, "startTime": "10:00", "endTime": "12:00" }])
    );
    let shown = page(&v);
    let names: Vec<&str> = shown["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Five lessons", "Ten lessons"], "cheapest first");
    // A coach who is not public is still shown to their owner only.
    let v = app
        .gql_as(
            Some(&coach_token),
            "mutation { publishCoachProfile(published: false) { published } }",
            json!({}),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    assert!(app.gql(COACH_PAGE, json!({ "id": coach })).await["data"]["coach"].is_null());
    let own = app
        .gql_as(Some(&coach_token), COACH_PAGE, json!({ "id": coach }))
        .await;
    assert_eq!(own["data"]["coach"]["id"], coach.as_str(), "{own}");
}
