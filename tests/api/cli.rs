//! `create-admin` is the only way to an admin account, and the admin can
//! sign in with the password it set or printed.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::{code, spawn_app};

fn create_admin(
    database_url: &str,
    email: &str,
    stdin_password: Option<&str>,
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maestro-hub"));
    cmd.args(["create-admin", "--email", email])
        .env_clear()
        .env("DATABASE_URL", database_url)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin_password.is_some() {
        cmd.arg("--password-stdin");
    }
    let mut child = cmd.spawn().unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(p) = stdin_password {
            writeln!(stdin, "{p}").unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn create_admin_then_sign_in_as_admin() {
    let app = spawn_app().await;
    let out = create_admin(
        &app.database_url,
        "root@example.com",
        Some("Admin-Chosen-Pass-9"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("Admin-Chosen-Pass-9"),
        "a given password is never echoed"
    );
    let v = app.login("root@example.com", "Admin-Chosen-Pass-9").await;
    assert_eq!(v["data"]["login"]["user"]["role"], "ADMIN", "{v}");
    assert_eq!(app.audit_count("admin.created").await, 1);

    // A weak password is refused; an existing email too.
    let out = create_admin(&app.database_url, "weak@example.com", Some("password"));
    assert!(!out.status.success());
    let out = create_admin(
        &app.database_url,
        "ROOT@example.com",
        Some("Another-Admin-Pass-9"),
    );
    assert!(!out.status.success());
}

#[tokio::test]
async fn create_admin_generates_and_prints_a_strong_password_once() {
    let app = spawn_app().await;
    let out = create_admin(&app.database_url, "gen@example.com", None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let password = stdout
        .lines()
        .find_map(|l| {
            l.split_once("password (shown once, store it now): ")
                .map(|(_, p)| p.trim().to_string())
        })
        .expect("printed password");
    assert!(password.len() >= 20);
    let v = app.login("gen@example.com", &password).await;
    assert_eq!(v["data"]["login"]["user"]["role"], "ADMIN", "{v}");
    assert_eq!(
        code(&app.login("gen@example.com", "Wrong-Password-1").await),
        Some("UNAUTHENTICATED")
    );
}

/// Without `RUST_LOG`, applying migrations is logged at `info`, one line
/// per migration.
#[tokio::test]
async fn migration_progress_is_logged_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_maestro-hub"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", &url)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    let logged = String::from_utf8_lossy(&out.stdout);
    let applied = logged.matches("has been applied").count();
    assert!(applied >= 9, "{logged}");
    assert!(logged.contains("INFO"), "{logged}");
}
