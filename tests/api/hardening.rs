//! Attacks by one client that must cost it, not the server: fragment and
//! list fan-out, calendar squatting, dates beyond the horizon, stretched
//! tokens, and framework errors without a code.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bookings::{BOOK, at, consumer, hold, iso, open_coach};
use crate::helpers::{code, field, spawn_app, spawn_app_with};

/// Seven levels of ten spreads each: 10^7 fields once expanded.
fn fragment_bomb() -> String {
    let mut q = String::from("query { ...F0 }\n");
    for level in 0..7 {
        let spreads: String = (0..10).map(|_| format!("...F{} ", level + 1)).collect();
        q.push_str(&format!("fragment F{level} on Query {{ {spreads} }}\n"));
    }
    q.push_str("fragment F7 on Query { __typename }\n");
    q
}

#[tokio::test]
async fn a_fragment_tree_is_refused_before_it_runs() {
    let app = spawn_app().await;
    let q = fragment_bomb();
    assert!(q.len() < 1000, "{} bytes", q.len());
    let started = Instant::now();
    let v = app.gql(&q, json!({})).await;
    let took = started.elapsed();
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    assert!(v["data"].is_null());
    assert!(
        took < Duration::from_millis(500),
        "refused in {took:?}, not after running it"
    );
    // The server is still all there.
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
}

#[tokio::test]
async fn list_sizes_count_toward_the_cost() {
    let app = spawn_app().await;
    let one = "searchCoaches(first: 100) { nodes { bio reviews(first: 100) { nodes { comment rating } } } }";
    let aliases: String = (0..20).map(|i| format!("a{i}: {one} ")).collect();
    let v = app.gql(&format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("costs"),
        "{v}"
    );
    // The same through a variable: `first` is read from the request.
    let v = app
        .gql(
            "query($n: Int) { searchCoaches(first: $n) { nodes { bio reviews(first: $n) { nodes { comment } } } } }",
            json!({ "n": 100 }),
        )
        .await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    // A size left to the variable's default counts as that default.
    let v = app
        .gql(
            "query($n: Int = 100) { searchCoaches(first: $n) { nodes { bio reviews(first: $n) { nodes { comment } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    // A real page passes.
    let v = app
        .gql(
            "{ searchCoaches(first: 20) { nodes { bio reviews(first: 3) { nodes { comment } } } } }",
            json!({}),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
}

#[tokio::test]
async fn a_batch_spends_the_budget_per_operation() {
    let app = spawn_app().await;
    // A batch spends the HTTP-wide budget per operation.
    let batch: Vec<Value> = (0..10)
        .map(|_| json!({ "query": "{ markets { code } }" }))
        .collect();
    let mut refused = false;
    for _ in 0..12 {
        if app.post(Value::Array(batch.clone()), None).await.status() == 429 {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "120 operations in batches of 10 exceed 100 a minute"
    );
}

/// The saved playground operations: the booking flow, a coach page, the
/// admin lists. Each is valid against the schema and costs a small part of
/// the limits.
#[tokio::test]
async fn every_saved_playground_operation_is_well_inside_the_limits() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/playground/operations.graphql"
    ))
    .unwrap();
    let limits = &app.state.settings.limits;
    let mut seen = 0;
    for (name, query) in split_operations(&file) {
        if query.starts_with("subscription") {
            continue;
        }
        let doc = async_graphql::parser::parse_query(&query).unwrap();
        // Variables the operation declares, filled with harmless values.
        let mut vars = serde_json::Map::new();
        for (_, op) in doc.operations.iter() {
            for d in &op.node.variable_definitions {
                let ty = d.node.var_type.node.to_string();
                let value = match ty.trim_end_matches('!') {
                    "Int" => json!(20),
                    "DateTime" => json!(iso(at(2, 9))),
                    "RegisterInput" => {
                        json!({ "email": "saved@example.com", "password": "Choose-a-Strong-1", "name": "A Parent", "role": "CONSUMER", "marketCode": "US" })
                    }
                    "CoachSearchFilter" => json!({ "marketCode": "US" }),
                    "PushPlatform" => json!("IOS"),
                    "[NotificationPreferenceInput!]" => {
                        json!([{ "kind": "REMINDER", "channel": "PUSH", "enabled": true }])
                    }
                    _ => json!("x"),
                };
                vars.insert(d.node.name.node.to_string(), value);
            }
        }
        let variables = async_graphql::Variables::from_json(Value::Object(vars.clone()));
        let cost = maestro_hub::graphql::cost::measure(&doc, &variables).unwrap();
        assert!(
            cost.cost * 10 <= limits.graphql_max_cost
                && cost.fields * 10 <= limits.graphql_max_fields,
            "{name}: {cost:?} against {} / {}",
            limits.graphql_max_cost,
            limits.graphql_max_fields
        );
        let v = app.gql_as(Some(&admin), &query, Value::Object(vars)).await;
        for e in v["errors"].as_array().into_iter().flatten() {
            // An error of the document itself has no path; one of a field
            // (an unknown id, a role check) has one and is fine here.
            assert!(!e["path"].is_null(), "{name} is not valid: {v}");
        }
        seen += 1;
    }
    assert!(seen >= 30, "{seen} saved operations");
}

/// The operations of a document as written: each starts at a line that
/// begins with its keyword and ends where its braces close.
fn split_operations(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<&str>, i32)> = None;
    for line in text.lines() {
        if current.is_none() {
            let mut words = line.split_whitespace();
            if let (Some("query" | "mutation" | "subscription"), Some(name)) =
                (words.next(), words.next())
            {
                let name = name.split(['(', '{']).next().unwrap_or(name).to_string();
                current = Some((name, Vec::new(), 0));
            } else {
                continue;
            }
        }
        let Some((_, lines, depth)) = current.as_mut() else {
            continue;
        };
        lines.push(line);
        let code = line.split('#').next().unwrap_or("");
        *depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
        if *depth <= 0 && code.contains('}') {
            let (name, lines, _) = current.take().unwrap();
            out.push((name, lines.join("\n")));
        }
    }
    out
}

#[tokio::test]
async fn unpaid_bookings_count_toward_the_cap() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    for day in 2..5 {
        let h = hold(&app, &parent, &coach, at(day, 9), 60).await;
        let b = app
            .gql_as(
                Some(&parent),
                BOOK,
                json!({ "h": h["data"]["createHold"]["id"] }),
            )
            .await;
        assert_eq!(b["data"]["bookHold"]["status"], "PENDING_PAYMENT", "{b}");
    }
    // Three unpaid bookings keep three slots: no fourth, hold or booking.
    let v = hold(&app, &parent, &coach, at(6, 9), 60).await;
    assert_eq!(code(&v), Some("CONFLICT"), "{v}");
    let booked = <entity::bookings::Entity as sea_orm::EntityTrait>::find();
    let n = sea_orm::PaginatorTrait::count(booked, &app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn holds_and_slots_stop_at_the_booking_horizon() {
    let app = spawn_app_with(|a| a.limits.booking_horizon_days = 30).await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let far = hold(&app, &parent, &coach, at(40, 9), 60).await;
    assert_eq!(code(&far), Some("BAD_USER_INPUT"), "{far}");
    assert_eq!(field(&far), Some("startAt"));
    let v = app
        .gql_as(
            Some(&parent),
            crate::bookings::HOLD,
            json!({ "c": coach, "s": "2099-01-01T09:00:00Z", "d": 60 }),
        )
        .await;
    assert_eq!(field(&v), Some("startAt"), "{v}");
    // A year past 9999 is not a date-time this API takes.
    let v = app
        .gql_as(
            Some(&parent),
            crate::bookings::HOLD,
            json!({ "c": coach, "s": "+10000-01-01T08:00:00Z", "d": 60 }),
        )
        .await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    // Slots: none past the horizon, those before it as usual.
    let slots = app
        .gql(
            "query($c: ID!, $f: DateTime!, $t: DateTime!) { availableSlots(coachId: $c, from: $f, to: $t, durationMinutes: 60) { startAt } }",
            json!({ "c": coach, "f": iso(at(25, 0)), "t": iso(at(35, 0)) }),
        )
        .await;
    let starts: Vec<String> = slots["data"]["availableSlots"]
        .as_array()
        .unwrap_or_else(|| panic!("{slots}"))
        .iter()
        .map(|s| s["startAt"].as_str().unwrap().to_string())
        .collect();
    assert!(!starts.is_empty());
    let horizon = chrono::Utc::now() + chrono::Duration::days(30);
    assert!(
        starts
            .iter()
            .all(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap() <= horizon),
        "{starts:?}"
    );
    // Every instant answered is RFC 3339 with a four-digit year.
    assert!(starts.iter().all(|s| s.len() == 20 && s.ends_with('Z')));
}

#[tokio::test]
async fn book_hold_checks_the_market_again() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let h = hold(&app, &parent, &coach, at(2, 9), 60).await;
    let v = app
        .gql_as(
            Some(&parent),
            "mutation { setMarket(marketCode: \"GB\") { id } }",
            json!({}),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let b = app
        .gql_as(
            Some(&parent),
            BOOK,
            json!({ "h": h["data"]["createHold"]["id"] }),
        )
        .await;
    assert_eq!(code(&b), Some("BAD_USER_INPUT"), "{b}");
    assert_eq!(field(&b), Some("holdId"));
}

#[tokio::test]
async fn framework_errors_are_json_with_a_code() {
    let app = spawn_app().await;
    let big = "x".repeat(70 * 1024);
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(format!("{{\"query\":\"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let v: Value = res.json().await.unwrap();
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    let res = app
        .client
        .put(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert!(res.headers().get("allow").is_some());
    let v: Value = res.json().await.unwrap();
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
}

#[tokio::test]
async fn a_token_claiming_a_longer_life_is_refused() {
    let app = spawn_app().await;
    let p = app.register("long@example.com", "CONSUMER", None).await;
    let id = p["user"]["id"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| {
        json!({ "sub": id, "role": "CONSUMER", "iat": now, "exp": exp,
                "iss": "maestro-hub", "aud": "maestro-hub-api", "jti": "j-1", "sv": 0 })
    };
    let sign = |c: &Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            c,
            &jsonwebtoken::EncodingKey::from_secret(app.jwt_secret.as_bytes()),
        )
        .unwrap()
    };
    let me = "{ me { id } }";
    let ok = app
        .gql_as(Some(&sign(&claims(now + 900))), me, json!({}))
        .await;
    assert!(ok["errors"].is_null(), "{ok}");
    let stretched = app
        .gql_as(Some(&sign(&claims(now + 365 * 86_400))), me, json!({}))
        .await;
    assert_eq!(code(&stretched), Some("UNAUTHENTICATED"), "{stretched}");
}

#[tokio::test]
async fn a_coachs_account_id_is_not_public() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let q = "query($c: ID!) { coach(id: $c) { id userId } }";
    let public = app.gql(q, json!({ "c": coach })).await;
    assert!(public["data"]["coach"]["userId"].is_null(), "{public}");
    let own = app.gql_as(Some(&token), q, json!({ "c": coach })).await;
    assert!(own["data"]["coach"]["userId"].is_string(), "{own}");
    let by_admin = app.gql_as(Some(&admin), q, json!({ "c": coach })).await;
    assert!(
        by_admin["data"]["coach"]["userId"].is_string(),
        "{by_admin}"
    );
}

/// Reads until the server closes the socket (or `wait` passes): true when
/// it was closed.
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_headers_are_cut_off_while_health_checks_answer() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(|a| {
        a.limits.header_read_timeout_seconds = 1;
        a.limits.max_connections_per_ip = 1000;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for i in 0..200 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            // Half a request line, then nothing.
            s.write_all(b"GET /healthz HT").await.unwrap();
        } // The others send nothing at all, like an idle kept-alive client.
        slow.push(s);
    }
    let started = Instant::now();
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(500));
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(3)).await,
            "connection {i} still open"
        );
    }
}

#[tokio::test]
async fn connections_per_client_are_capped() {
    let app = spawn_app_with(|a| a.limits.max_connections_per_ip = 5).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(1)).await,
        "the sixth connection is closed at once"
    );
    // Those held are served, and once they close others get in again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let h = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(h.status(), 200);
}
