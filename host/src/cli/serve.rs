//! `roster serve CONFIG` runs a node; `roster serve token create` makes an
//! API token; `roster approve RUN` / `roster reject RUN` decide on a plan
//! that waits, as the API's routes do (docs/service.md).

use super::Global;
use crate::error::Failure;
use crate::serve::config::ServeConfig;
use crate::serve::db::{Role, ServiceDb, cli_actor};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Serve {
    /// The service configuration (TOML): the database, and each pipeline's
    /// schedule, approval mode and notifications.
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: Option<ServeAction>,
}

#[derive(clap::Subcommand, Debug)]
enum ServeAction {
    /// API tokens.
    #[command(subcommand)]
    Token(TokenAction),
    /// People who sign in to the web console with a name and a password.
    #[command(subcommand)]
    User(UserAction),
    /// The API's OpenAPI document on stdout (as `GET /api/v1/openapi.json`).
    Openapi,
    /// Check the configuration and every pipeline it names, and show when
    /// each runs next; starts nothing, touches no database.
    Check {
        /// The service configuration.
        config: PathBuf,
    },
}

/// Who gets which role: a token's or a console user's.
#[derive(clap::Args, Debug)]
struct Grant {
    /// The service configuration (for its database).
    config: PathBuf,
    /// What it may do: viewer reads; operator also runs, pauses, approves
    /// and stages links; admin also reads the audit log.
    #[arg(long, value_parser = ["viewer", "operator", "admin"])]
    role: String,
    /// Its name, shown in the audit log (`token:NAME`, `user:NAME`).
    #[arg(long)]
    name: String,
}

#[derive(clap::Subcommand, Debug)]
enum TokenAction {
    /// Make a token and print it (once: only its hash is kept).
    Create(Grant),
    /// Delete a token: the API refuses it from now on and the console
    /// sessions signed in with it end.
    Delete {
        /// The service configuration (for its database).
        config: PathBuf,
        /// The token's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(clap::Subcommand, Debug)]
enum UserAction {
    /// Add a console user; the password (at least 12 characters) is read
    /// from the first line of standard input, never from the command line.
    Create {
        #[command(flatten)]
        grant: Grant,
        /// Read the password from standard input (required: a password on
        /// the command line would show in the process list and the shell's
        /// history).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Delete a console user: their sessions end.
    Delete {
        /// The service configuration (for its database).
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct Decide {
    /// The service configuration (for its database).
    config: PathBuf,
    /// The run whose plan waits (`GET /api/v1/approvals`).
    run: i64,
    /// Why, for the audit log.
    #[arg(long)]
    comment: Option<String>,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub(super) json: bool,
}

impl Serve {
    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        match (self.action, self.config) {
            (Some(ServeAction::Token(TokenAction::Create(g))), _) => {
                create_token(&g.config, &g.role, &g.name).await
            }
            (Some(ServeAction::Token(TokenAction::Delete { config, name })), _) => {
                let (db, _) = database(&config).await?;
                match db.delete_token(&name).await {
                    Ok(true) => {
                        eprintln!("token `{name}` deleted; its console sessions ended");
                        Ok(ExitCode::SUCCESS)
                    }
                    Ok(false) => Err(Failure::Input(format!("no token named `{name}`"))),
                    Err(e) => Err(Failure::Input(format!("cannot delete the token: {e}"))),
                }
            }
            (Some(ServeAction::User(action)), _) => user(action).await,
            (Some(ServeAction::Check { config }), _) => check(&config),
            (Some(ServeAction::Openapi), _) => {
                print!("{}", crate::serve::api::openapi_json());
                Ok(ExitCode::SUCCESS)
            }
            (None, Some(config)) => {
                let config = ServeConfig::load(&config)?;
                crate::serve::node::serve(config, global.cache_dir()).await?;
                Ok(ExitCode::SUCCESS)
            }
            (None, None) => Err(Failure::Input(
                "roster serve CONFIG: name the service configuration (docs/service.md)".into(),
            )),
        }
    }
}

fn check(path: &std::path::Path) -> Result<ExitCode, Failure> {
    let config = ServeConfig::load(path)?;
    let now = chrono::Utc::now();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "{}: node {}, API on {scheme}://{}, {} worker(s), a node silent {} s is dead",
        path.display(),
        config.node,
        config.listen,
        config.workers,
        config.heartbeat.as_secs() * u64::from(config.missed_heartbeats)
    );
    for (name, served) in &config.pipelines {
        let next = served
            .schedule
            .next(now)
            .map(crate::serve::schedule::shown)
            .unwrap_or_else(|| "never".into());
        let ranks = match served.pipeline.ranks {
            1 => String::new(),
            n => format!(", {n} ranks"),
        };
        let notify = match served.notify.is_empty() {
            true => "nobody".to_string(),
            false => served.notify.join(", "),
        };
        println!(
            "  {name}: {}, next {next}; approval {}{ranks}; notifies {notify}",
            served.schedule,
            served.approval.as_str()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn database(config: &std::path::Path) -> Result<(ServiceDb, String), Failure> {
    let (url, queue) = ServeConfig::database_only(config)?;
    let db = ServiceDb::open(&url)
        .await
        .map_err(|e| Failure::Input(format!("{e:#}")))?;
    Ok((db, queue))
}

async fn user(action: UserAction) -> Result<ExitCode, Failure> {
    match action {
        UserAction::Create {
            grant: Grant { config, role, name },
            ..
        } => {
            let role =
                Role::parse(&role).ok_or_else(|| Failure::Input(format!("--role {role}")))?;
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Failure::Input(format!("cannot read the password: {e}")))?;
            let phc = crate::serve::password::hash(line.trim_end_matches(['\r', '\n']))
                .map_err(Failure::Input)?;
            let (db, _) = database(&config).await?;
            db.create_user(&name, role, &phc)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
                        Failure::Input(format!("a user named `{name}` exists already"))
                    }
                    _ => Failure::Input(format!("cannot store the user: {e}")),
                })?;
            eprintln!("user `{name}` ({}) made", role.as_str());
        }
        UserAction::Delete { config, name } => {
            let (db, _) = database(&config).await?;
            match db.delete_user(&name).await {
                Ok(true) => eprintln!("user `{name}` deleted; their console sessions ended"),
                Ok(false) => return Err(Failure::Input(format!("no user named `{name}`"))),
                Err(e) => return Err(Failure::Input(format!("cannot delete the user: {e}"))),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_token(
    config: &std::path::Path,
    role: &str,
    name: &str,
) -> Result<ExitCode, Failure> {
    let role = Role::parse(role).ok_or_else(|| Failure::Input(format!("--role {role}")))?;
    let (db, _) = database(config).await?;
    let token = crate::serve::token::generate()
        .map_err(|e| Failure::Input(format!("no randomness from the system: {e}")))?;
    db.create_token(name, role, &crate::serve::token::hash(&token))
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
                Failure::Input(format!("a token named `{name}` exists already"))
            }
            _ => Failure::Input(format!("cannot store the token: {e}")),
        })?;
    // The one place the token is shown: on stdout, for a script to keep.
    println!("{token}");
    eprintln!(
        "token `{name}` ({}) made; it is not shown again",
        role.as_str()
    );
    Ok(ExitCode::SUCCESS)
}

impl Decide {
    pub async fn run(self, approve: bool) -> Result<ExitCode, Failure> {
        let (db, queue) = database(&self.config).await?;
        let decided = crate::serve::approve::decide(
            &db,
            &queue,
            self.run,
            approve,
            &cli_actor(),
            self.comment.as_deref(),
        )
        .await
        .map_err(|e| Failure::Input(e.to_string()))?;
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&decided).unwrap_or_default()
            );
        } else if approve {
            eprintln!(
                "approved plan {} of {} (run {}): a node applies it if the pipeline still plans exactly it",
                decided.plan_id, decided.pipeline, decided.run
            );
        } else {
            eprintln!(
                "rejected plan {} of {} (run {})",
                decided.plan_id, decided.pipeline, decided.run
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
