//! syncstack: the services behind Firefox Sync in one binary.
//!
//! This crate is glue: it parses the command line, loads the layered configuration,
//! starts logging and hands explicit settings to the service crates. It holds no protocol
//! logic of its own.

mod config;
mod secret;
mod serve;
mod storage;
mod token;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use config::{FlagOverrides, LogFormat, Service, Settings};

/// The services behind Firefox Sync, self-hosted: one binary, SQLite by default.
#[derive(Debug, Parser)]
#[command(name = "syncstack", version, about)]
struct Cli {
    /// Configuration file (TOML); see `syncstack default-config`.
    #[arg(long, global = true, env = "SYNCSTACK_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    common: CommonFlags,
    #[command(subcommand)]
    command: Command,
}

/// Flags shared by every command.
#[derive(Debug, Args)]
struct CommonFlags {
    /// Data directory (database, generated secret). Default ./syncstack-data.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Address to listen on. Default 127.0.0.1:8000.
    #[arg(long, global = true)]
    listen: Option<std::net::SocketAddr>,
    /// The URL clients use to reach this node, which tokens must name. Default http://<listen>.
    #[arg(long, global = true)]
    public_url: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the services (a storage node on SQLite by default).
    Serve {
        /// Address of the Prometheus metrics listener (off by default).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Services to run, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',')]
        services: Option<Vec<Service>>,
    },
    /// Work with storage-node tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print the commented reference configuration.
    DefaultConfig,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Mint a token that a storage node with the same master secret accepts.
    Mint {
        /// The user's numeric id.
        #[arg(long)]
        uid: u64,
        /// The node URL the token is for. Default: this node's public URL.
        #[arg(long)]
        node: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        duration: u64,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut flags = FlagOverrides {
        data_dir: cli.common.data_dir.clone(),
        listen: cli.common.listen,
        public_url: cli.common.public_url.clone(),
        log_format: cli.common.log_format,
        ..FlagOverrides::default()
    };
    if let Command::Serve {
        metrics_listen,
        services,
    } = &cli.command
    {
        flags.metrics_listen = *metrics_listen;
        flags.services = services.clone();
    }
    let settings = match Settings::load(cli.config.as_deref(), flags) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("syncstack: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    let result = match cli.command {
        Command::Serve { .. } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(serve::run(settings))),
        Command::Token {
            command:
                TokenCommand::Mint {
                    uid,
                    node,
                    duration,
                },
        } => token::mint(&settings, uid, node, duration),
        Command::DefaultConfig => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("syncstack: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
