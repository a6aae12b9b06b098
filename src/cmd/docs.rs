//! Shell completions and the man page, generated from the clap definitions so they never drift from the
//! options the binary really takes.

use std::io::Write;

use clap::CommandFactory;
use color_eyre::eyre::Result;

use crate::cli::Cli;

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "locktop", &mut script);
    script
}

/// The man page, in roff.
pub fn man() -> Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    Ok(page)
}

/// Prints generated text; a reader that stops early (`| head`) is not an error.
pub fn print(text: &[u8]) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}
