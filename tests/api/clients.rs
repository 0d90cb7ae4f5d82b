//! GraphQL over HTTP as stock clients send it (urql's `GET` for queries,
//! Apollo's and urql's automatic persisted queries), and the access line
//! every request leaves in the log.

use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::{PASSWORD, code, log_lines, spawn_app};

const MARKETS: &str = "query Markets { markets { code currency } }";

fn sha(q: &str) -> String {
    hex::encode(sha2::Sha256::digest(q.as_bytes()))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url(&format!("/graphql?query={}", enc(MARKETS))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("cache-control").is_none(), "public answer");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["markets"].as_array().unwrap().len(), 3, "{v}");

    // Variables and the spec's media type.
    let q = "query($m: String!) { sponsorshipPlans(marketCode: $m) { durationDays } }";
    let r = app
        .client
        .get(app.url(&format!(
            "/graphql?query={}&variables={}",
            enc(q),
            enc(&json!({ "m": "GB" }).to_string())
        )))
        .header("accept", "application/graphql-response+json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/graphql-response+json"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["sponsorshipPlans"].as_array().unwrap().len(), 2);

    // A mutation over GET changes nothing: 405, Allow: POST, a JSON error.
    let m = "mutation { logout(refreshToken: \"x\") }";
    for url in [
        format!("/graphql?query={}", enc(m)),
        format!(
            "/graphql?query={}&operationName=Out",
            enc("query In { markets { code } } mutation Out { logout(refreshToken: \"x\") }")
        ),
    ] {
        let r = app.client.get(app.url(&url)).send().await.unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "POST");
        let v: Value = r.json().await.unwrap();
        assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    }

    // Signed in: never cached.
    let token = app
        .register("parent@example.com", "CONSUMER", Some("US"))
        .await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .client
        .get(app.url(&format!("/graphql?query={}", enc("{ me { email } }"))))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["me"]["email"], "parent@example.com");
}

#[tokio::test]
async fn automatic_persisted_queries_miss_then_hit() {
    let app = spawn_app().await;
    let hash = sha(MARKETS);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    // The hash alone, first: not known yet.
    let v = app
        .post(
            json!({ "extensions": ext, "operationName": "Markets" }),
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(code(&v), Some("PERSISTED_QUERY_NOT_FOUND"), "{v}");
    assert_eq!(v["errors"][0]["message"], "PersistedQueryNotFound");
    // A wrong hash is refused and not stored.
    let v = app
        .post(
            json!({ "query": "{ categories { slug } }", "extensions": ext }),
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    // With the query: runs, and is remembered.
    let v = app
        .post(json!({ "query": MARKETS, "extensions": ext }), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(v["data"]["markets"].as_array().unwrap().len(), 3, "{v}");
    let v = app
        .post(json!({ "extensions": ext }), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(v["data"]["markets"].as_array().unwrap().len(), 3, "{v}");
    // Apollo sends hashed queries as GET.
    let r = app
        .client
        .get(app.url(&format!(
            "/graphql?operationName=Markets&extensions={}",
            enc(&ext.to_string())
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["markets"].as_array().unwrap().len(), 3, "{v}");
    // A persisted mutation is still refused over GET.
    let m = "mutation { logout(refreshToken: \"x\") }";
    let mext = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha(m) } });
    app.post(json!({ "query": m, "extensions": mext }), None)
        .await;
    let r = app
        .client
        .get(app.url(&format!("/graphql?extensions={}", enc(&mext.to_string()))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn every_request_leaves_one_access_line_and_no_secret_is_ever_logged() {
    let app = spawn_app().await;
    let login = app
        .register("parent@example.com", "CONSUMER", Some("US"))
        .await;
    let token = login["accessToken"].as_str().unwrap().to_string();
    let user_id = login["user"]["id"].as_str().unwrap().to_string();
    let request_id = uuid::Uuid::now_v7().to_string();
    let r = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .header("x-request-id", &request_id)
        // No operationName: the name comes from the document.
        .json(&json!({ "query": "query Me { me { email } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let mut found = None;
    for _ in 0..50 {
        found = log_lines().into_iter().find(|l| {
            l["fields"]["message"] == "request" && l["span"]["request_id"] == request_id.as_str()
        });
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let line = found.expect("an access line for the request");
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["status"], 200, "{line}");
    assert!(line["fields"]["latency_ms"].as_f64().is_some(), "{line}");
    let span = &line["span"];
    assert_eq!(span["method"], "POST", "{line}");
    assert_eq!(span["path"], "/graphql");
    assert_eq!(span["operation"], "Me");
    assert_eq!(span["operation_type"], "query");
    assert_eq!(span["user_id"], user_id.as_str());
    assert_eq!(span["client_ip"], "127.0.0.1");

    // Nothing this run has logged holds an access token, a bearer header
    // or a password (the dev mailbox's own lines carry its links by
    // design: development only, never with an email key).
    let raw = String::from_utf8_lossy(&crate::helpers::logs().lock().unwrap()).to_string();
    for l in raw.lines() {
        if l.contains("email (development: logged, not sent)") {
            continue;
        }
        assert!(!l.contains(&token), "a token in the log: {l}");
        assert!(!l.contains("eyJ"), "a JWT in the log: {l}");
        assert!(!l.contains("Bearer "), "an auth header in the log: {l}");
        assert!(!l.contains(PASSWORD), "a password in the log: {l}");
    }
}

#[tokio::test]
async fn the_root_leads_to_the_playground() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "/playground");
}
