//! The `locktop` binary: parses the command line, runs the subcommand, and turns any error into one line on
//! stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use locktop::cli::{Cli, Command};
use locktop::cmd;

/// No transparent huge pages for this process (the flag holds across the re-execution that scrubs passwords).
/// mimalloc asks for them on its arenas (`madvise`), and a huge page is resident whole however little of it
/// is in use: at 50,000 profiles they were half of the resident memory (90 of 170 MB) for a heap of 70 MB.
/// Best effort: a kernel without the flag leaves things as they were. Children (hooks, the demo's server)
/// inherit it, to no harm.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

/// The variable that sets mimalloc's purge delay, and the delay locktop runs with (none).
const PURGE_DELAY: (&str, &str) = ("MIMALLOC_PURGE_DELAY", "0");

/// Runs the program again, once, with mimalloc told to give freed memory back at once. By default it keeps
/// freed pages for a second before it does, and a poll each second frees and allocates again within that
/// second, so they were never given back: at 50,000 profiles, 126–154 MB resident for a heap of 67 MB, and
/// 97–100 MB without the delay, for the same CPU. mimalloc reads its options from the environment as it
/// starts, before `main`; setting one from within takes an `unsafe` call, which this crate forbids. An
/// operator's own setting is kept, and a failed re-execution leaves the program running as it was. The
/// system-malloc build has nothing to set (and heaptrack, which follows it, loses a program that re-executes).
fn reexec_with_allocator_options() {
    if cfg!(feature = "system-alloc") || std::env::var_os(PURGE_DELAY.0).is_some() {
        return;
    }
    let _ = cmd::scrub::reexec(std::env::args_os().skip(1), PURGE_DELAY);
}

/// mimalloc, not glibc's malloc: at 50,000 profiles the per-poll churn (rows decoded, boards rebuilt) left
/// glibc's heap at four times the live data.
#[cfg(not(any(feature = "heap-stats", feature = "system-alloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A measurement build counts the live heap in the same allocator: RSS alone does not tell live data from
/// what the allocator keeps.
#[cfg(feature = "heap-stats")]
#[global_allocator]
static ALLOCATOR: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

/// Logs the live heap and its peak each second, at `locktop::heap=debug`.
#[cfg(feature = "heap-stats")]
fn log_heap() {
    let _ = std::thread::Builder::new()
        .name("heap-stats".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                tracing::debug!(
                    target: "locktop::heap",
                    live_kb = ALLOCATOR.allocated() / 1024,
                    peak_kb = ALLOCATOR.max_allocated() / 1024,
                    "heap"
                );
            }
        });
}

fn main() -> ExitCode {
    no_huge_pages();
    reexec_with_allocator_options();
    // Before anything else: a password on the command line leaves the process's arguments at once.
    cmd::scrub::reexec_without_secrets();
    // Installed first: its panic hook is the one the terminal-restoring hook chains to.
    let _ = color_eyre::install();
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let handed_over = cmd::scrub::handed_over();
    if !handed_over.is_empty() {
        // With the DSNs the command line kept, wherever they were given.
        for own in [
            match &mut cli.command {
                Some(Command::Snapshot(args)) => Some(&mut args.connection.dsn),
                Some(Command::Serve(args)) => Some(&mut args.connection.dsn),
                Some(Command::Watch { connection, .. }) => Some(&mut connection.dsn),
                _ => None,
            },
            Some(&mut cli.connection.dsn),
        ]
        .into_iter()
        .flatten()
        .filter(|d| !d.is_empty())
        {
            own.extend(handed_over.iter().cloned());
        }
        if cli.connection.dsn.is_empty() {
            cli.connection.dsn = handed_over;
        }
    }
    // Headless, `serve` logs to stderr (a service manager's journal) unless told a file; the others never
    // write logs on the terminal they draw on.
    let to_stderr = matches!(cli.command, Some(Command::Serve(_)));
    let result = cmd::init_logging(cli.common.log_file.as_deref(), to_stderr).and_then(|()| {
        #[cfg(feature = "heap-stats")]
        log_heap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async {
            match &cli.command {
                Some(Command::Snapshot(args)) => {
                    let connection = args.connection.or(&cli.connection);
                    cmd::snapshot::run(&cli.common, &connection, args).await
                }
                Some(Command::Watch { connection, args }) => {
                    let connection = connection.or(&cli.connection);
                    cmd::watch::run(&cli.common, &connection, args).await
                }
                Some(Command::Serve(args)) => {
                    let connection = args.connection.or(&cli.connection);
                    cmd::serve::run(&cli.common, &connection, args).await
                }
                Some(Command::Demo(args)) => cmd::demo::run(&cli.common, args).await,
                Some(Command::Completions { shell }) => {
                    cmd::docs::print(&cmd::docs::completions(*shell))
                }
                Some(Command::Replay(args)) => cmd::replay::run(args).await,
                Some(Command::Man) => cmd::docs::man().and_then(|page| cmd::docs::print(&page)),
                None => cmd::watch::run(&cli.common, &cli.connection, &cli.watch).await,
            }
        })
    });
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            // Every error leaves through here: no password it might quote gets out.
            let text = locktop::source::conninfo::redact(&chain.join(": "));
            eprintln!("locktop: {text}");
            if !to_stderr {
                tracing::error!(error = %text, "exiting on error");
            }
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as clap prints them; a usage error becomes one line on stderr, with clap's tip
/// when it has one, and status 1 (2 means "escalated" to `snapshot`'s callers).
fn usage_error(e: &clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    eprintln!("locktop: {}; see locktop --help", parts.join("; "));
    ExitCode::FAILURE
}
