//! syncstack: the services behind Firefox Sync in one binary.
//!
//! This crate is glue: it parses the command line, loads the layered configuration,
//! starts logging and hands explicit settings to the service crates. It holds no protocol
//! logic of its own.

mod backends;
mod cli;
mod commands;
mod config;
mod http;
mod secret;
mod serve;

use clap::Parser;
use cli::{Cli, Command, TokenCommand};
use config::{FlagOverrides, LogFormat, Settings};

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
    // A server logs what it does; a one-shot command only warnings, so its output stays
    // readable. RUST_LOG overrides both.
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    init_logging(settings.log_format, default_level);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(settings, cli.command)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("syncstack: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => serve::run(settings).await,
        Command::Token {
            command:
                TokenCommand::Mint {
                    uid,
                    node,
                    duration,
                },
        } => commands::token::mint(&settings, uid, node, duration),
        Command::Accounts { command } => commands::accounts::run(&settings, command).await,
        Command::Nodes { command } => commands::nodes::run(&settings, command).await,
        Command::Purge { grace_secs, limit } => {
            commands::purge::run(&settings, grace_secs, limit).await
        }
        Command::Client(args) => commands::client::run(args).await,
        Command::Pair(args) => commands::pair::run(args).await,
        Command::Settings {
            command: command @ cli::SettingsCommand::Pki { .. },
        } => commands::settings::run(&settings, command),
        Command::Settings { command } => commands::settings_client::run(&settings, command).await,
        Command::DefaultConfig => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
