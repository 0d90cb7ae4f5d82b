//! Open-loop load for `bench/holds`: `createHold` at a fixed rate, each
//! request sent at its scheduled time whether or not earlier ones have
//! answered, each by the next consumer in turn on the next distinct slot,
//! and each hold released by a follow-up request. Latency is measured from
//! the scheduled time (so a stalled server cannot hide queued requests).
//!
//! Environment: URL (the GraphQL endpoint), WORK (tokens.txt, coaches.txt),
//! BASE_DAY (unix seconds of the first slot), RATE (holds per second),
//! DURATION (seconds), RELEASE (1, the default: release each hold; 0: keep
//! them, so every request is a hold; then each consumer may take three, and
//! slots never repeat). Prints one JSON object. It runs on one thread:
//! it shares the machine's two cores with the server and the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

#[derive(Default)]
struct Tally {
    hold_ms: Vec<f64>,
    release_ms: Vec<f64>,
    won: u64,
    conflict: u64,
    refused: u64,
    failed: u64,
    errors: Vec<String>,
}

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn iso(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: String,
) -> Result<serde_json::Value, String> {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let bytes = r.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = env("URL");
    let work = env("WORK");
    let base_day: i64 = env("BASE_DAY").parse().expect("BASE_DAY");
    let rate: f64 = env("RATE").parse().expect("RATE");
    let duration: f64 = env("DURATION").parse().expect("DURATION");
    let release = std::env::var("RELEASE").map_or(true, |v| v != "0");
    let tokens = Arc::new(lines(&format!("{work}/tokens.txt")));
    let coaches = Arc::new(lines(&format!("{work}/coaches.txt")));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let total = (rate * duration) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, url, tokens, coaches, tally) = (
            client.clone(),
            url.clone(),
            tokens.clone(),
            coaches.clone(),
            tally.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let token = &tokens[(i as usize) % tokens.len()];
            let coach = &coaches[(i as usize) % coaches.len()];
            // Distinct 30-minute slots per coach over 14 days (then again:
            // each hold is released at once).
            let step = (i as usize / coaches.len()) % (14 * 48);
            let start_at = iso(base_day + step as i64 * 1800);
            let body = serde_json::json!({
                "query": "mutation($c: ID!, $s: DateTime!) { createHold(coachId: $c, startAt: $s, durationMinutes: 30) { id } }",
                "variables": { "c": coach, "s": start_at },
            })
            .to_string();
            let answer = post(&client, &url, token, body).await;
            let hold_ms = due.elapsed().as_secs_f64() * 1000.0;
            let mut t = tally.lock().await;
            t.hold_ms.push(hold_ms);
            let id = match answer {
                Ok(v) => match v["data"]["createHold"]["id"].as_str() {
                    Some(id) => {
                        t.won += 1;
                        id.to_string()
                    }
                    None => {
                        let code = v["errors"][0]["extensions"]["code"].as_str().unwrap_or("?").to_string();
                        match code.as_str() {
                            "CONFLICT" => t.conflict += 1,
                            "INTERNAL_SERVER_ERROR" | "?" => t.failed += 1,
                            _ => t.refused += 1,
                        }
                        if t.errors.len() < 5 {
                            t.errors.push(v["errors"][0]["message"].to_string());
                        }
                        return;
                    }
                },
                Err(e) => {
                    t.failed += 1;
                    if t.errors.len() < 5 {
                        t.errors.push(e);
                    }
                    return;
                }
            };
            drop(t);
            if !release {
                return;
            }
            let sent = Instant::now();
            let body = serde_json::json!({
                "query": "mutation($h: ID!) { releaseHold(holdId: $h) }",
                "variables": { "h": id },
            })
            .to_string();
            let released = post(&client, &url, token, body).await;
            let mut t = tally.lock().await;
            t.release_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
            if !matches!(&released, Ok(v) if v["data"]["releaseHold"] == true) {
                t.failed += 1;
            }
        }));
    }
    let sent_for = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut t = tally.lock().await;
    t.hold_ms.sort_by(f64::total_cmp);
    t.release_ms.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "rate": rate,
        "release": release,
        "scheduled": total,
        "sent_in_s": sent_for,
        "finished_in_s": elapsed,
        "won": t.won,
        "conflict": t.conflict,
        "refused": t.refused,
        "failed": t.failed,
        "errors": t.errors,
        "hold_ms": {
            "p50": percentile(&t.hold_ms, 50.0),
            "p90": percentile(&t.hold_ms, 90.0),
            "p99": percentile(&t.hold_ms, 99.0),
            "p999": percentile(&t.hold_ms, 99.9),
            "max": t.hold_ms.last().copied().unwrap_or(f64::NAN),
        },
        "release_ms": {
            "p50": percentile(&t.release_ms, 50.0),
            "p99": percentile(&t.release_ms, 99.0),
        },
        "cpu_s": cpu_seconds(),
    });
    println!("{out}");
}
