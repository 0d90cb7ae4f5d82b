//! The command line: `serve` (default), `migrate`, `create-admin`,
//! `export-schema`. Every flag can also come from the environment.

use std::io::Read;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings, SettingsArgs};

#[derive(Debug, Parser)]
#[command(name = "maestro-hub", version, about = "Maestro Hub GraphQL server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pending migrations, then serve (the default).
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Create an admin account (the only way one comes to exist).
    CreateAdmin {
        #[arg(long, env = "ADMIN_EMAIL")]
        email: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Fill the database with realistic demo coaches, reviews and packages.
    SeedDemo {
        #[arg(long, default_value_t = 50)]
        coaches: usize,
        /// Average reviews per coach.
        #[arg(long, default_value_t = 20)]
        reviews_per_coach: usize,
        /// The same seed gives the same data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Write the GraphQL schema (SDL) to a file.
    ExportSchema {
        #[arg(long, default_value = "schema.graphql")]
        out: PathBuf,
    },
}

/// What the server logs without `RUST_LOG`: its own `info` lines (one
/// access line per request among them), each migration as it is applied,
/// and only warnings of the database layers.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=info";

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer, fmt};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colours only on a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let lines = match format {
        LogFormat::Json => fmt::layer().json().flatten_event(true).boxed(),
        LogFormat::Pretty => fmt::layer().with_ansi(ansi).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(crate::telemetry::ErrorEvents)
        .try_init();
}

/// Runs the CLI; the error is printed by `main`, which exits non-zero.
pub async fn run(cli: Cli) -> Result<(), String> {
    if let Some(Command::ExportSchema { out }) = &cli.command {
        std::fs::write(out, crate::graphql::sdl()).map_err(|e| format!("writing {out:?}: {e}"))?;
        println!("wrote {}", out.display());
        return Ok(());
    }
    let settings = Settings::from_args(cli.settings).map_err(|e| e.to_string())?;
    // Held until the command ends: dropping it sends what is still queued.
    let _error_tracking = crate::telemetry::init(&settings);
    init_tracing(settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let db = crate::db::connect(&settings.database_url, 2)
                .await
                .map_err(|e| format!("database: {e}"))?;
            crate::app::migrate(&db, &settings.database_url)
                .await
                .map_err(|e| format!("migration failed: {e}"))?;
            println!("migrations applied");
            Ok(())
        }
        Command::CreateAdmin {
            email,
            password_stdin,
        } => create_admin(settings, &email, password_stdin).await,
        Command::SeedDemo {
            coaches,
            reviews_per_coach,
            seed,
        } => {
            let db = crate::app::connect_and_migrate(&settings)
                .await
                .map_err(|e| e.to_string())?;
            let reference = crate::domain::reference::ReferenceData::load(&db)
                .await
                .map_err(|e| e.message())?;
            let started = std::time::Instant::now();
            let r = crate::seed::seed_demo(&db, &reference, coaches, reviews_per_coach, seed)
                .await
                .map_err(|e| match e {
                    crate::error::AppError::Internal(d) => d,
                    other => other.message(),
                })?;
            println!(
                "seeded {} coaches, {} reviews, {} parents in {:.1?}",
                r.coaches,
                r.reviews,
                r.consumers,
                started.elapsed()
            );
            Ok(())
        }
        Command::ExportSchema { .. } => Ok(()),
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let addr = settings.bind_addr;
    let db = crate::app::connect_and_migrate(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let app = crate::app::build(settings, db)
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "Maestro Hub listening (GraphQL at /graphql, playground at /playground)");
    crate::app::serve(app, listener, crate::app::shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

async fn create_admin(settings: Settings, email: &str, password_stdin: bool) -> Result<(), String> {
    let db = crate::app::connect_and_migrate(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let (password, generated) = if password_stdin {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| format!("reading the password: {e}"))?;
        (input.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (crate::domain::auth::generate_password(), true)
    };
    let user = crate::domain::auth::create_admin(&db, email, &password)
        .await
        .map_err(|e| match e {
            crate::error::AppError::Internal(_) => "could not create the admin".to_string(),
            other => other.message(),
        })?;
    println!("admin created: {} ({})", user.email, user.id);
    if generated {
        println!("password (shown once, store it now): {password}");
    }
    Ok(())
}
