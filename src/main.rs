//! The command line: `run` the bot, or `check-config` without connecting anywhere.

use anyhow::Context;
use clap::{Parser, Subcommand};
use mentionbridge::config::Config;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mentionbridge",
    version,
    about = "Social mentions as support tickets in Slack"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config, check credentials once, then run until SIGTERM or Ctrl-C.
    Run {
        #[arg(long, default_value = "bot-config.toml", env = "MENTIONBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Validate the config file and environment without connecting to anything.
    CheckConfig {
        #[arg(long, default_value = "bot-config.toml", env = "MENTIONBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Operate on stores: `store copy --from <sled dir> --to <postgres url>`.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Write every ticket (and, as JSON lines, the audit log) for a spreadsheet or an
    /// archive. Stop the bot first: the store is opened exclusively.
    Export {
        #[arg(long, default_value = "bot-config.toml", env = "MENTIONBRIDGE_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Where to write; standard output when absent.
        #[arg(long)]
        output: Option<PathBuf>,
        /// One person's data only, for an access request (with `--platform`): their
        /// tickets, each as exported and whole as stored, and their audit trails, as JSON
        /// lines.
        #[arg(long, requires = "platform")]
        author: Option<String>,
        /// The network `--author` is on: mastodon, bluesky, x, or another's name.
        #[arg(long, requires = "author")]
        platform: Option<String>,
    },
    /// Erase one person on request: the text and identity of every ticket of theirs on
    /// one network, open ones too, keeping only keyed hashes (so their posts are still
    /// recognised) and recording the erasure. Stop the bot first when the store is sled.
    Erase {
        #[arg(long, default_value = "bot-config.toml", env = "MENTIONBRIDGE_CONFIG")]
        config: PathBuf,
        /// mastodon, bluesky, x, or another network's name.
        #[arg(long)]
        platform: String,
        /// Their handle on that network (with or without the leading @).
        #[arg(long)]
        author: String,
    },
    /// Bring a PostgreSQL store's schema up to date (every replica also does this when it
    /// starts); prints the versions applied. Nothing to do for sled.
    Migrate {
        #[arg(long, default_value = "bot-config.toml", env = "MENTIONBRIDGE_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy a sled store (stop the bot first) into an empty PostgreSQL database: every
    /// ticket, the audit log, cards, cursors, source state and unsent jobs.
    Copy {
        /// The sled store's directory (`[store] path`).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL URL (postgres://user:password@host/db). Prefer
        /// `--to "$DATABASE_URL"` (or the variable alone) over a password on the line.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        to: String,
        /// TLS to PostgreSQL: require, prefer or disable.
        #[arg(long, default_value = "prefer")]
        tls: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// Tickets then audit entries, one JSON object per line.
    Jsonl,
    /// One row per ticket (RFC 4180).
    Csv,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MENTIONBRIDGE_LOG")
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(
                        "info,sled=warn,slack_morphism=warn,rustls=warn",
                    )
                })
                // serenity's websocket warns with the whole frame it could not read,
                // interaction tokens included: whatever the operator asks for.
                .add_directive(
                    "serenity::gateway::ws=error"
                        .parse()
                        .expect("a valid directive"),
                ),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: OK", config.display());
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::ExitCode::from(2)
            }
        },
        Command::Store {
            command: StoreCommand::Copy { from, to, tls },
        } => match copy(&from, &to, &tls) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Export {
            config,
            format,
            output,
            author,
            platform,
        } => match export(
            &config,
            format,
            output.as_deref(),
            author.as_deref().zip(platform.as_deref()),
        ) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Erase {
            config,
            platform,
            author,
        } => match erase(&config, &platform, &author) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Migrate { config } => match migrate(&config) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return std::process::ExitCode::from(2);
                }
            };
            match run(cfg) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn copy(from: &std::path::Path, to: &str, tls: &str) -> anyhow::Result<()> {
    let tls = match tls {
        "require" => mentionbridge::config::PgTls::Require,
        "prefer" => mentionbridge::config::PgTls::Prefer,
        "disable" => mentionbridge::config::PgTls::Disable,
        other => anyhow::bail!("--tls {other}: expected require, prefer or disable"),
    };
    let pg = mentionbridge::config::PostgresConfig::from_url(to, tls)
        .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let copied = runtime()?.block_on(mentionbridge::store::copy(from, &pg))?;
    println!(
        "copied {} into {}: {} tickets, {} audit entries, {} pending and {} failed jobs, {} cards, {} dedupe keys, {} cursors, {} source states, {} remembered events, {} incidents",
        from.display(),
        pg.describe(),
        copied.tickets,
        copied.audit,
        copied.jobs,
        copied.failed_jobs,
        copied.cards,
        copied.dedupe_keys,
        copied.cursors,
        copied.state,
        copied.seen_events,
        copied.incidents
    );
    Ok(())
}

/// A store for a command run beside (not inside) the bot: a sled store the bot holds
/// is refused with what to do.
async fn open_for_command(
    store_config: &mentionbridge::config::StoreConfig,
    routes: mentionbridge::domain::routes::Routes,
    doing: &str,
) -> anyhow::Result<mentionbridge::ports::SharedStore> {
    use mentionbridge::ports::StoreError;
    match mentionbridge::store::open(store_config, routes).await {
        Err(StoreError::Open { path, .. }) => anyhow::bail!(
            "the store at {path} is in use (is the bot running on it?): stop the bot first, then {doing} again; nothing was changed"
        ),
        other => Ok(other?),
    }
}

fn erase(
    config: &std::path::Path,
    platform: &str,
    handle: &str,
) -> anyhow::Result<std::process::ExitCode> {
    use mentionbridge::app::privacy;
    let Some(author) = privacy::author_of(platform, handle) else {
        eprintln!("erase: --platform and --author must name a network and a handle");
        return Ok(std::process::ExitCode::from(2));
    };
    // The configured routes: an open ticket rewritten keeps its deadlines as the bot has them.
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(std::process::ExitCode::from(2));
        }
    };
    let rt = runtime()?;
    let done = rt.block_on(async {
        let store = open_for_command(&cfg.store, cfg.routes.clone(), "erase").await?;
        let now = mentionbridge::app::clock::from_env().now();
        anyhow::Ok(privacy::erase(store.as_ref(), &author, now).await?)
    })?;
    // Sled keeps superseded records in its files until it cleans them: rewritten into
    // fresh files, the erased data is gone from the disk too. (PostgreSQL's autovacuum
    // reclaims the old row versions.)
    drop(rt);
    if let mentionbridge::config::StoreConfig::Sled { path } = &cfg.store {
        if done.tickets > 0 || done.notes > 0 {
            mentionbridge::store::compact_sled(path).with_context(|| {
                format!("erased, but {} could not be compacted", path.display())
            })?;
        }
    }
    println!("{}", privacy::erased_line(&done, platform, handle));
    if done.tickets == 0 && done.notes == 0 {
        eprintln!(
            "erase: nothing is stored about {handle} on {platform}; check the handle as the \
             network shows it and --platform (mastodon, bluesky, x, or the network a webhook \
             names)"
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn export(
    config: &std::path::Path,
    format: ExportFormat,
    output: Option<&std::path::Path>,
    person: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let store_config = Config::store_of(config)?;
    // The store's reads are async (a networked backend waits on them); so is the export.
    let rt = runtime()?;
    // Exports read; the routes new tickets are stamped with do not matter here.
    let store = rt.block_on(mentionbridge::store::open(
        &store_config,
        Default::default(),
    ))?;
    let mut out: Box<dyn std::io::Write + Send> = match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    // A page at a time, so a store of any size exports in bounded memory.
    let page = mentionbridge::reports::EXPORT_PAGE;
    if let Some((handle, platform)) = person {
        let author = mentionbridge::app::privacy::author_of(platform, handle)
            .context("--platform and --author must name a network and a handle")?;
        return rt.block_on(async {
            let tickets = mentionbridge::app::privacy::tickets_of(store.as_ref(), &author).await?;
            mentionbridge::reports::export_person_jsonl(
                store.as_ref(),
                &author,
                &tickets,
                &mut out,
            )
            .await?;
            anyhow::Ok(())
        });
    }
    rt.block_on(async {
        match format {
            ExportFormat::Jsonl => {
                mentionbridge::reports::export_jsonl_from(store.as_ref(), page, &mut out).await
            }
            ExportFormat::Csv => {
                mentionbridge::reports::export_csv_from(store.as_ref(), page, &mut out).await
            }
        }
    })?;
    Ok(())
}

fn migrate(config: &std::path::Path) -> anyhow::Result<()> {
    use mentionbridge::config::StoreConfig;
    match Config::store_of(config)? {
        StoreConfig::Sled { path } => {
            println!("{}: a sled store has no schema to migrate", path.display());
        }
        StoreConfig::Postgres(pg) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let applied = rt.block_on(mentionbridge::store::postgres::migrate(&pg))?;
            if applied.is_empty() {
                println!("{}: the schema is up to date", pg.describe());
            } else {
                let versions: Vec<String> = applied.iter().map(i64::to_string).collect();
                println!("{}: applied {}", pg.describe(), versions.join(", "));
            }
        }
    }
    Ok(())
}

fn run(config: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        mentionbridge::app::run(config, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
