//! The `locktop` binary: parses the command line, runs the subcommand, and turns any error into one line on
//! stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::Parser;
use locktop::cli::{Cli, Command};
use locktop::cmd;

fn main() -> ExitCode {
    // Installed first: its panic hook is the one the terminal-restoring hook chains to.
    let _ = color_eyre::install();
    let cli = Cli::parse();
    let result = cmd::init_logging(cli.common.log_file.as_deref()).and_then(|()| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async {
            match &cli.command {
                Some(Command::Snapshot(args)) => cmd::snapshot::run(&cli.common, args).await,
                Some(Command::Watch(args)) => cmd::watch::run(&cli.common, args).await,
                Some(Command::Demo(args)) => cmd::demo::run(&cli.common, args).await,
                None => cmd::watch::run(&cli.common, &locktop::cli::WatchArgs::default()).await,
            }
        })
    });
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("locktop: {}", chain.join(": "));
            tracing::error!(error = %chain.join(": "), "exiting on error");
            ExitCode::FAILURE
        }
    }
}
