//! The subcommands, each wiring config, source and model for one use.

pub mod demo;
pub mod docs;
pub mod replay;
pub mod snapshot;
pub mod watch;

use std::path::Path;

use color_eyre::eyre::{Result, WrapErr};

use crate::config::Config;

/// The config file given on the command line, else `config.toml` in the user's config directory when there
/// is one, else the defaults of the reference schema.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    if let Some(p) = path {
        return Ok(Config::load(p)?);
    }
    match crate::config::config_dir().map(|d| d.join("config.toml")) {
        Some(found) if found.is_file() => {
            tracing::info!(path = %found.display(), "config file");
            Ok(Config::load(&found)?)
        }
        _ => Ok(Config::default()),
    }
}

/// Sends logs to a file when one is given; never to the terminal.
pub fn init_logging(path: Option<&Path>) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .wrap_err_with(|| format!("cannot open log file {}; check --log-file", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCKTOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    Ok(())
}
