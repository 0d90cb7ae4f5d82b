//! Production refuses to start on weak or missing settings; development
//! needs none.

use std::process::Command;

use maestro_hub::config::{Settings, SettingsArgs};

use crate::helpers::{default_args, random_secret};

fn production() -> SettingsArgs {
    let mut a = default_args("postgres://app@db.internal/maestro");
    a.app_env = "production".into();
    a.jwt_secret = Some(random_secret());
    a.cors_allowed_origins = "https://app.maestrohub.example".into();
    a.stripe_secret_key = Some("sk_live_placeholder_for_config_checks".into());
    a.stripe_webhook_secret = Some("whsec_placeholder_for_config_checks".into());
    a.resend_api_key = Some("re_placeholder_for_config_checks".into());
    a.email_from = Some("Maestro Hub <hello@maestrohub.example>".into());
    a
}

fn refusal(a: SettingsArgs) -> String {
    match Settings::from_args(a) {
        Ok(_) => panic!("settings accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn production_accepts_strong_settings() {
    let s = Settings::from_args(production()).expect("valid production settings");
    assert!(s.is_production());
    assert!(
        !s.playground_enabled,
        "playground off by default in production"
    );
}

#[test]
fn every_production_refusal() {
    let mut a = production();
    a.jwt_secret = None;
    assert!(refusal(a).contains("JWT_SECRET"));

    let mut a = production();
    a.jwt_secret = Some("x7Kq2mP9".into());
    assert!(refusal(a).contains("JWT_SECRET"), "short");

    for placeholder in [
        "changeme-changeme-changeme-changeme",
        "your-secret-key-goes-here-1234567890",
        "super-secret-jwt-key-for-development!",
    ] {
        let mut a = production();
        a.jwt_secret = Some(placeholder.into());
        assert!(refusal(a).contains("JWT_SECRET"), "{placeholder}");
    }
    let mut a = production();
    a.jwt_secret = Some("a".repeat(64));
    assert!(refusal(a).contains("JWT_SECRET"), "repetitive");

    let mut a = production();
    a.stripe_secret_key = None;
    assert!(
        refusal(a).contains("STRIPE_SECRET_KEY"),
        "the development payment provider is refused"
    );

    let mut a = production();
    a.resend_api_key = None;
    assert!(refusal(a).contains("RESEND_API_KEY"), "emails must be sent");
    let mut a = production();
    a.email_from = None;
    assert!(refusal(a).contains("EMAIL_FROM"));

    let mut a = production();
    a.database_url = "sqlite://maestro-hub.db?mode=rwc".into();
    assert!(refusal(a).contains("DATABASE_URL"));

    let mut a = production();
    a.cors_allowed_origins = "*".into();
    assert!(refusal(a).contains("CORS_ALLOWED_ORIGINS"));
    let mut a = production();
    a.cors_allowed_origins = " , ".into();
    assert!(refusal(a).contains("CORS_ALLOWED_ORIGINS"));
}

#[test]
fn development_needs_no_variables_and_generates_a_secret() {
    let mut a = default_args("sqlite://maestro-hub.db?mode=rwc");
    a.jwt_secret = None;
    let one = Settings::from_args(a.clone()).unwrap();
    let two = Settings::from_args(a).unwrap();
    assert!(one.jwt_secret.expose().len() >= 32);
    assert_ne!(
        one.jwt_secret.expose(),
        two.jwt_secret.expose(),
        "never a constant"
    );
    assert!(one.playground_enabled);
}

#[test]
fn the_binary_refuses_to_start_in_production_without_secrets() {
    let out = Command::new(env!("CARGO_BIN_EXE_maestro-hub"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "production")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_maestro-hub"))
        .arg("serve")
        .env_clear()
        .env("APP_ENV", "production")
        .env("JWT_SECRET", random_secret())
        .env("CORS_ALLOWED_ORIGINS", "https://app.example")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn production_hides_metrics_on_the_main_port_without_a_token() {
    use maestro_hub::config::MainPortMetrics;
    let s = Settings::from_args(production()).unwrap();
    assert!(matches!(s.metrics_on_main_port(), MainPortMetrics::Hidden));
    let mut a = production();
    a.metrics_token = Some(random_secret());
    let s = Settings::from_args(a).unwrap();
    assert!(matches!(
        s.metrics_on_main_port(),
        MainPortMetrics::WithToken(_)
    ));
    let mut a = production();
    a.metrics_addr = Some("127.0.0.1:9100".parse().unwrap());
    let s = Settings::from_args(a).unwrap();
    assert!(matches!(s.metrics_on_main_port(), MainPortMetrics::Hidden));
    let s = Settings::from_args(default_args("sqlite::memory:")).unwrap();
    assert!(matches!(s.metrics_on_main_port(), MainPortMetrics::Open));
}
