//! The terminal's output for a 16-colour terminal (`TERM=xterm`, `linux`, `vt100`). crossterm writes even the
//! 16 ANSI colours as 256-colour codes (`ESC[38;5;1m`), which such a terminal may not understand; this writer
//! rewrites them on the way out to the classic codes (`ESC[31m`, bright ones `ESC[91m`, backgrounds `4x` and
//! `10x`). Anything else passes through untouched. crossterm writes an escape sequence in several pieces, so a
//! control sequence is held until its final byte.

use std::io::{self, Write};

/// Rewrites 256-colour codes of the 16 ANSI colours to the classic ones when `active`.
#[derive(Debug)]
pub struct Sgr16<W: Write> {
    inner: W,
    active: bool,
    /// A control sequence begun (`ESC` or `ESC [` and its parameters), waiting for its final byte.
    pending: Vec<u8>,
}

impl<W: Write> Sgr16<W> {
    pub fn new(inner: W, active: bool) -> Self {
        Self {
            inner,
            active,
            pending: Vec::new(),
        }
    }

    /// A complete control sequence, rewritten when it sets colours.
    fn finish(&mut self) -> io::Result<()> {
        let seq = std::mem::take(&mut self.pending);
        match rewrite(&seq) {
            Some(out) => self.inner.write_all(&out),
            None => self.inner.write_all(&seq),
        }
    }
}

/// `ESC [ params m` with every `38;5;n` and `48;5;n` (n < 16) as `3x`/`9x` and `4x`/`10x`; `None` when there
/// is nothing to change.
fn rewrite(seq: &[u8]) -> Option<Vec<u8>> {
    let params = seq.strip_prefix(b"\x1b[")?.strip_suffix(b"m")?;
    let params = std::str::from_utf8(params).ok()?;
    let parts: Vec<&str> = params.split(';').collect();
    let mut out: Vec<String> = Vec::with_capacity(parts.len());
    let mut changed = false;
    let mut i = 0;
    while i < parts.len() {
        let ground = match parts[i] {
            "38" => Some(30),
            "48" => Some(40),
            _ => None,
        };
        let n = parts.get(i + 2).and_then(|n| n.parse::<u8>().ok());
        match (ground, parts.get(i + 1), n) {
            (Some(base), Some(&"5"), Some(n)) if n < 16 => {
                let code = if n < 8 {
                    base + u16::from(n)
                } else {
                    base + 60 + u16::from(n - 8)
                };
                out.push(code.to_string());
                changed = true;
                i += 3;
            }
            _ => {
                out.push(parts[i].to_owned());
                i += 1;
            }
        }
    }
    changed.then(|| format!("\x1b[{}m", out.join(";")).into_bytes())
}

impl<W: Write> Write for Sgr16<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.active {
            return self.inner.write(buf);
        }
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            if self.pending.is_empty() {
                if b == 0x1b {
                    self.inner.write_all(&buf[start..i])?;
                    self.pending.push(b);
                    start = i + 1;
                }
                continue;
            }
            self.pending.push(b);
            start = i + 1;
            let done = match self.pending.len() {
                // ESC then anything but `[`: not a control sequence; pass it on.
                2 => b != b'[',
                // A CSI ends at its final byte.
                _ => (0x40..=0x7e).contains(&b),
            };
            if done {
                self.finish()?;
            }
        }
        self.inner.write_all(&buf[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let seq = std::mem::take(&mut self.pending);
            self.inner.write_all(&seq)?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(active: bool, pieces: &[&[u8]]) -> Vec<u8> {
        let mut w = Sgr16::new(Vec::new(), active);
        for p in pieces {
            w.write_all(p).expect("write");
        }
        w.flush().expect("flush");
        w.inner
    }

    #[test]
    fn sixteen_colours_get_the_classic_codes_even_when_written_in_pieces() {
        assert_eq!(through(true, &[b"a\x1b[38;5;1mb"]), b"a\x1b[31mb");
        assert_eq!(
            through(true, &[b"\x1b[", b"38;5;", b"9", b"m", b"x"]),
            b"\x1b[91mx"
        );
        assert_eq!(
            through(true, &[b"\x1b[38;5;3;48;5;12m"]),
            b"\x1b[33;104m".to_vec()
        );
        // Other sequences, and a colour above 15, pass as they are.
        assert_eq!(through(true, &[b"\x1b[2;5H\x1b[1m"]), b"\x1b[2;5H\x1b[1m");
        assert_eq!(through(true, &[b"\x1b[38;5;196m"]), b"\x1b[38;5;196m");
        assert_eq!(through(true, &[b"\x1b7\x1b[0m"]), b"\x1b7\x1b[0m");
        // Not active: untouched.
        assert_eq!(through(false, &[b"\x1b[38;5;1m"]), b"\x1b[38;5;1m");
    }
}
