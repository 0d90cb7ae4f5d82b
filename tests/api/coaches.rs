//! Coach profiles: validation, the review flow and who may do each step,
//! suspension, the bio sanitiser, private fields and slots.

use serde_json::{Value, json};

use crate::helpers::{UPSERT, code, field, profile_input, spawn_app};

fn with(mut input: Value, key: &str, value: Value) -> Value {
    input[key] = value;
    input
}

#[tokio::test]
async fn every_profile_validation_rule() {
    let app = spawn_app().await;
    let p = app.register("v@example.com", "COACH", Some("US")).await;
    let t = p["accessToken"].as_str();
    let base = profile_input("America/New_York");
    let long_bio = "x".repeat(5001);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("displayName", json!("A"), "display name too short"),
        (
            "displayName",
            json!("x".repeat(81)),
            "display name too long",
        ),
        ("displayName", json!("<b>Maya</b>"), "markup in a name"),
        ("headline", json!("Hi"), "headline too short"),
        ("headline", json!("x".repeat(151)), "headline too long"),
        ("bio", json!(long_bio), "bio over 5,000 characters"),
        (
            "categorySlugs",
            json!(["no-such-thing"]),
            "unknown category",
        ),
        ("categorySlugs", json!([]), "no category"),
        ("hourlyRateMinor", json!(0), "zero rate"),
        ("hourlyRateMinor", json!(-100), "negative rate"),
        ("hourlyRateMinor", json!(100_000_000), "absurd rate"),
        ("sessionDurations", json!([50]), "odd duration"),
        ("sessionDurations", json!([]), "no duration"),
        ("timezone", json!("Mars/Olympus"), "unknown zone"),
        (
            "meetingUrl",
            json!("http://meet.example.com/x"),
            "plain http",
        ),
        ("meetingUrl", json!("javascript:alert(1)"), "script URL"),
    ];
    for (key, value, why) in cases {
        let v = app
            .gql_as(
                t,
                UPSERT,
                json!({ "input": with(base.clone(), key, value) }),
            )
            .await;
        assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{why}: {v}");
        assert_eq!(field(&v), Some(key), "{why}");
    }
    // Nothing was stored by the refusals.
    let v = app.gql_as(t, "{ myCoachProfile { id } }", json!({})).await;
    assert!(v["data"]["myCoachProfile"].is_null(), "{v}");
    let v = app.gql_as(t, UPSERT, json!({ "input": base })).await;
    assert_eq!(v["data"]["upsertCoachProfile"]["status"], "DRAFT", "{v}");
}

#[tokio::test]
async fn every_availability_rule() {
    let app = spawn_app().await;
    let (t, _) = app
        .draft_coach("a@example.com", "GB", profile_input("Europe/London"))
        .await;
    let set = "mutation($r: [AvailabilityRuleInput!]!) { setAvailability(rules: $r) { availability { weekday startTime endTime } } }";
    let rule = |w: i32, s: &str, e: &str| json!({ "weekday": w, "startTime": s, "endTime": e });
    let cases = vec![
        (json!([rule(0, "09:00", "10:00")]), "weekday", "weekday 0"),
        (json!([rule(8, "09:00", "10:00")]), "weekday", "weekday 8"),
        (
            json!([rule(1, "09:10", "10:00")]),
            "startTime",
            "off the 15-minute grid",
        ),
        (json!([rule(1, "9:00", "10:00")]), "startTime", "not HH:MM"),
        (
            json!([rule(1, "10:00", "09:00")]),
            "endTime",
            "ends before it starts",
        ),
        (json!([rule(1, "10:00", "10:00")]), "endTime", "empty rule"),
        (
            json!([rule(2, "09:00", "11:00"), rule(2, "10:45", "12:00")]),
            "rules",
            "overlap",
        ),
    ];
    for (rules, f, why) in cases {
        let v = app.gql_as(Some(&t), set, json!({ "r": rules })).await;
        assert_eq!(
            (code(&v), field(&v)),
            (Some("BAD_USER_INPUT"), Some(f)),
            "{why}: {v}"
        );
    }
    let many: Vec<Value> = (0..51)
        .map(|i| {
            rule(
                1 + i % 7,
                &format!("{:02}:00", i / 7),
                &format!("{:02}:30", i / 7),
            )
        })
        .collect();
    let v = app.gql_as(Some(&t), set, json!({ "r": many })).await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("rules")),
        "51 rules"
    );
    let v = app
        .gql_as(Some(&t), set, json!({ "r": [rule(5, "16:00", "18:00"), rule(1, "09:00", "12:00"), rule(1, "12:00", "13:30")] }))
        .await;
    let got = &v["data"]["setAvailability"]["availability"];
    assert_eq!(got.as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(
        got[0],
        json!({ "weekday": 1, "startTime": "09:00", "endTime": "12:00" })
    );
    // Replacing with an empty set clears them.
    let v = app.gql_as(Some(&t), set, json!({ "r": [] })).await;
    assert_eq!(v["data"]["setAvailability"]["availability"], json!([]));
}

#[tokio::test]
async fn the_status_flow_and_who_may_do_each_step() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let consumer = app
        .register("parent@example.com", "CONSUMER", Some("US"))
        .await;
    let ct = consumer["accessToken"].as_str();

    // A consumer has no coach profile; a coach needs a market first.
    let v = app
        .gql_as(
            ct,
            UPSERT,
            json!({ "input": profile_input("America/Chicago") }),
        )
        .await;
    assert_eq!(code(&v), Some("FORBIDDEN"));
    let nomarket = app.register("nomarket@example.com", "COACH", None).await;
    let v = app
        .gql_as(
            nomarket["accessToken"].as_str(),
            UPSERT,
            json!({ "input": profile_input("UTC") }),
        )
        .await;
    assert_eq!(code(&v), Some("MARKET_REQUIRED"));

    let (coach, id) = app
        .draft_coach("c@example.com", "US", profile_input("America/Chicago"))
        .await;
    let get = "query($id: ID!) { coach(id: $id) { id status } }";
    // A draft is invisible to the public, visible to its owner and admins.
    assert!(app.gql(get, json!({ "id": id })).await["data"]["coach"].is_null());
    assert_eq!(
        app.gql_as(Some(&coach), get, json!({ "id": id })).await["data"]["coach"]["status"],
        "DRAFT"
    );
    assert_eq!(
        app.gql_as(Some(&admin), get, json!({ "id": id })).await["data"]["coach"]["status"],
        "DRAFT"
    );

    let publish = "mutation { publishCoachProfile(published: true) { published } }";
    assert_eq!(
        code(&app.gql_as(Some(&coach), publish, json!({})).await),
        Some("CONFLICT"),
        "no publishing before approval"
    );
    let approve = "mutation($id: ID!) { approveCoach(coachId: $id) { status } }";
    assert_eq!(
        code(&app.gql_as(Some(&admin), approve, json!({ "id": id })).await),
        Some("CONFLICT"),
        "not submitted yet"
    );

    let v = app
        .gql_as(
            Some(&coach),
            "mutation { submitCoachProfile { status } }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["submitCoachProfile"]["status"], "PENDING_REVIEW");
    assert_eq!(
        code(&app.gql_as(ct, approve, json!({ "id": id })).await),
        Some("FORBIDDEN"),
        "consumer approves"
    );
    assert_eq!(
        code(&app.gql_as(Some(&coach), approve, json!({ "id": id })).await),
        Some("FORBIDDEN"),
        "coach approves"
    );
    assert_eq!(
        code(&app.gql(approve, json!({ "id": id })).await),
        Some("UNAUTHENTICATED")
    );

    // Rejected, then resubmitted, then approved and published.
    let reject = "mutation($id: ID!, $r: String!) { rejectCoach(coachId: $id, reason: $r) { status rejectionReason } }";
    let v = app
        .gql_as(
            Some(&admin),
            reject,
            json!({ "id": id, "r": "Please add a real photo" }),
        )
        .await;
    assert_eq!(v["data"]["rejectCoach"]["status"], "REJECTED", "{v}");
    assert_eq!(
        v["data"]["rejectCoach"]["rejectionReason"],
        "Please add a real photo"
    );
    let v = app
        .gql_as(
            Some(&coach),
            "mutation { submitCoachProfile { status } }",
            json!({}),
        )
        .await;
    assert_eq!(
        v["data"]["submitCoachProfile"]["status"], "PENDING_REVIEW",
        "a rejected coach can resubmit"
    );
    let v = app
        .gql_as(
            Some(&coach),
            "mutation { submitCoachProfile { status } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&v), Some("CONFLICT"), "already pending");
    assert_eq!(
        app.gql_as(Some(&admin), approve, json!({ "id": id })).await["data"]["approveCoach"]["status"],
        "APPROVED"
    );
    assert_eq!(
        code(&app.gql_as(Some(&admin), approve, json!({ "id": id })).await),
        Some("CONFLICT"),
        "approved twice"
    );
    assert!(
        app.gql(get, json!({ "id": id })).await["data"]["coach"].is_null(),
        "approved but unpublished"
    );
    assert_eq!(
        app.gql_as(Some(&coach), publish, json!({})).await["data"]["publishCoachProfile"]["published"],
        true
    );
    assert_eq!(
        app.gql(get, json!({ "id": id })).await["data"]["coach"]["status"],
        "APPROVED"
    );

    for action in ["coach.submitted", "coach.approved", "coach.rejected"] {
        assert!(app.audit_count(action).await >= 1, "{action} audited");
    }
    let v = app
        .gql_as(
            Some(&admin),
            "{ adminCoaches(status: APPROVED) { totalCount nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["adminCoaches"]["totalCount"], 1, "{v}");
    assert_eq!(
        code(
            &app.gql_as(Some(&coach), "{ adminCoaches { totalCount } }", json!({}))
                .await
        ),
        Some("FORBIDDEN")
    );
}

#[tokio::test]
async fn suspension_cuts_off_tokens_and_search() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let rules = json!([{ "weekday": 1, "startTime": "09:00", "endTime": "12:00" }]);
    let (coach, id) = app
        .public_coach(
            &admin,
            "s@example.com",
            "GB",
            profile_input("Europe/London"),
            rules,
        )
        .await;
    let search = "{ searchCoaches(filter: { marketCode: \"GB\" }) { totalCount } }";
    assert_eq!(
        app.gql(search, json!({})).await["data"]["searchCoaches"]["totalCount"],
        1
    );

    let me = app.gql_as(Some(&coach), "{ me { id } }", json!({})).await;
    let user_id = me["data"]["me"]["id"].as_str().unwrap().to_string();
    let suspend = "mutation($u: ID!, $r: String!) { suspendUser(userId: $u, reason: $r) { id } }";
    assert_eq!(
        code(
            &app.gql_as(Some(&coach), suspend, json!({ "u": user_id, "r": "spam" }))
                .await
        ),
        Some("FORBIDDEN")
    );
    let v = app
        .gql_as(
            Some(&admin),
            suspend,
            json!({ "u": user_id, "r": "Fake credentials" }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");

    assert_eq!(
        code(&app.gql_as(Some(&coach), "{ me { id } }", json!({})).await),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        app.gql(search, json!({})).await["data"]["searchCoaches"]["totalCount"],
        0
    );
    assert!(
        app.gql(
            "query($id: ID!) { coach(id: $id) { id } }",
            json!({ "id": id })
        )
        .await["data"]["coach"]
            .is_null()
    );
    assert_eq!(
        code(&app.login("s@example.com", crate::helpers::PASSWORD).await),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(app.audit_count("user.suspended").await, 1);
    let v = app
        .gql_as(
            Some(&admin),
            "{ adminUsers(query: \"s@ex\", role: COACH) { totalCount nodes { email } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        v["data"]["adminUsers"]["nodes"][0]["email"], "s@example.com",
        "{v}"
    );
}

#[tokio::test]
async fn hostile_bios_are_sanitised_and_private_fields_stay_private() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let bio = r#"<p onclick="steal()">Hello</p><script>alert(document.cookie)</script><img src=x onerror=alert(1)><a href="javascript:alert(1)">click</a><iframe src="https://evil.example"></iframe><b>Bold</b>"#;
    let input = with(profile_input("Europe/London"), "bio", json!(bio));
    let (coach, id) = app
        .public_coach(
            &admin,
            "h@example.com",
            "GB",
            input,
            json!([{ "weekday": 2, "startTime": "10:00", "endTime": "12:00" }]),
        )
        .await;
    let q = "query($id: ID!) { coach(id: $id) { bio meetingUrl } }";
    let public = app.gql(q, json!({ "id": id })).await;
    let got = public["data"]["coach"]["bio"].as_str().unwrap();
    assert_eq!(got, "<p>Hello</p>click<b>Bold</b>");
    for bad in [
        "script",
        "onerror",
        "onclick",
        "javascript:",
        "iframe",
        "<img",
        "<a",
    ] {
        assert!(!got.contains(bad), "{bad} survived: {got}");
    }
    assert!(
        public["data"]["coach"]["meetingUrl"].is_null(),
        "public sees no meeting URL"
    );
    let stranger = app.register("x@example.com", "CONSUMER", Some("GB")).await;
    let v = app
        .gql_as(stranger["accessToken"].as_str(), q, json!({ "id": id }))
        .await;
    assert!(v["data"]["coach"]["meetingUrl"].is_null());
    let own = app.gql_as(Some(&coach), q, json!({ "id": id })).await;
    assert_eq!(
        own["data"]["coach"]["meetingUrl"],
        "https://meet.example.com/maya"
    );
    let adm = app.gql_as(Some(&admin), q, json!({ "id": id })).await;
    assert_eq!(
        adm["data"]["coach"]["meetingUrl"],
        "https://meet.example.com/maya"
    );
}

const SLOTS: &str = "query($c: ID!, $f: DateTime!, $t: DateTime!, $d: Int!) {
    availableSlots(coachId: $c, from: $f, to: $t, durationMinutes: $d) { startAt endAt } }";

fn starts(v: &Value) -> Vec<String> {
    v["data"]["availableSlots"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|s| s["startAt"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn slots_across_daylight_saving_and_half_hour_offsets() {
    // The changes of clock looked at lie up to two years ahead.
    let app = crate::helpers::spawn_app_with(|a| a.limits.booking_horizon_days = 1000).await;
    let admin = app.admin_token().await;

    // New York, spring forward on Sunday 2027-03-14: 02:00-03:00 local does not exist.
    let ny = with(
        profile_input("America/New_York"),
        "sessionDurations",
        json!([60]),
    );
    let (_, ny_id) = app
        .public_coach(
            &admin,
            "ny@example.com",
            "US",
            ny,
            json!([{ "weekday": 7, "startTime": "01:00", "endTime": "04:00" }]),
        )
        .await;
    let v = app
        .gql(SLOTS, json!({ "c": ny_id, "f": "2027-03-14T00:00:00Z", "t": "2027-03-15T00:00:00Z", "d": 60 }))
        .await;
    // 01:00 EST, 01:30 EST, 03:00 EDT (03:30 would end after 04:00).
    assert_eq!(
        starts(&v),
        [
            "2027-03-14T06:00:00Z",
            "2027-03-14T06:30:00Z",
            "2027-03-14T07:00:00Z"
        ]
    );
    assert_eq!(
        v["data"]["availableSlots"][0]["endAt"],
        "2027-03-14T07:00:00Z"
    );

    // London, fall back on Sunday 2027-10-31: 01:00-02:00 happens twice, offered once (BST).
    let (_, ldn_id) = app
        .public_coach(
            &admin,
            "ldn@example.com",
            "GB",
            profile_input("Europe/London"),
            json!([{ "weekday": 7, "startTime": "00:30", "endTime": "02:30" }]),
        )
        .await;
    let v = app
        .gql(SLOTS, json!({ "c": ldn_id, "f": "2027-10-30T12:00:00+00:00", "t": "2027-11-01T00:00:00Z", "d": 30 }))
        .await;
    assert_eq!(
        starts(&v),
        [
            "2027-10-30T23:30:00Z",
            "2027-10-31T00:00:00Z",
            "2027-10-31T00:30:00Z",
            "2027-10-31T02:00:00Z"
        ]
    );

    // Kolkata (+05:30): Monday 09:00-10:30 IST with 45-minute sessions.
    let ind = with(
        profile_input("Asia/Kolkata"),
        "sessionDurations",
        json!([45]),
    );
    let (_, in_id) = app
        .public_coach(
            &admin,
            "in@example.com",
            "IN",
            ind,
            json!([{ "weekday": 1, "startTime": "09:00", "endTime": "10:30" }]),
        )
        .await;
    let v = app
        .gql(SLOTS, json!({ "c": in_id, "f": "2027-01-04T00:00:00+05:30", "t": "2027-01-05T00:00:00+05:30", "d": 45 }))
        .await;
    assert_eq!(starts(&v), ["2027-01-04T03:30:00Z", "2027-01-04T04:00:00Z"]);

    // Refusals: a duration not offered, a range over 31 days, an inverted range.
    let v = app.gql(SLOTS, json!({ "c": in_id, "f": "2027-01-04T00:00:00Z", "t": "2027-01-05T00:00:00Z", "d": 60 })).await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("durationMinutes"))
    );
    let v = app.gql(SLOTS, json!({ "c": in_id, "f": "2027-01-01T00:00:00Z", "t": "2027-02-01T00:00:01Z", "d": 45 })).await;
    assert_eq!((code(&v), field(&v)), (Some("BAD_USER_INPUT"), Some("to")));
    let v = app.gql(SLOTS, json!({ "c": in_id, "f": "2027-01-05T00:00:00Z", "t": "2027-01-04T00:00:00Z", "d": 45 })).await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"));
    let v = app
        .gql(
            SLOTS,
            json!({ "c": in_id, "f": "2027-01-04", "t": "2027-01-05T00:00:00Z", "d": 45 }),
        )
        .await;
    assert_eq!(
        code(&v),
        Some("BAD_USER_INPUT"),
        "a date without time and offset"
    );
    let v = app.gql(SLOTS, json!({ "c": "nope", "f": "2027-01-04T00:00:00Z", "t": "2027-01-05T00:00:00Z", "d": 45 })).await;
    assert_eq!(code(&v), Some("NOT_FOUND"));
}

#[tokio::test]
async fn slots_respect_minimum_notice() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let all_week: Vec<Value> = (1..=7)
        .map(|d| json!({ "weekday": d, "startTime": "00:00", "endTime": "24:00" }))
        .collect();
    let (_, id) = app
        .public_coach(
            &admin,
            "n@example.com",
            "US",
            profile_input("UTC"),
            json!(all_week),
        )
        .await;
    let now = chrono::Utc::now();
    let v = app
        .gql(SLOTS, json!({ "c": id, "f": now.to_rfc3339(), "t": (now + chrono::Duration::hours(6)).to_rfc3339(), "d": 30 }))
        .await;
    let first = chrono::DateTime::parse_from_rfc3339(&starts(&v)[0]).unwrap();
    assert!(
        first >= now + chrono::Duration::minutes(60),
        "first slot {first} is within the 60-minute notice"
    );
    assert!(first < now + chrono::Duration::minutes(91));
}
