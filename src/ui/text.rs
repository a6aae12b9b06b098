//! Text made safe and short for a terminal. Every piece of database text reaches the screen, the snapshot
//! table, the replay summary and the log through [`sanitize`]: control characters (C0, DEL and C1, whose 0x9B
//! is CSI on some terminals), bidi controls that would reorder what follows, and other invisible formatting are
//! shown as visible escapes (`^[`, `<U+202E>`), never passed raw. Widths are terminal cells, measured as
//! ratatui measures them (`unicode-width`): a CJK character or an emoji takes two, a combining mark none.
//!
//! Under a locale that is not UTF-8 every character that is not ASCII becomes an ASCII stand-in ([`ascii`]),
//! so that every byte written is ASCII.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar;

/// The mark of a cut.
pub const ELLIPSIS: char = '…';

/// Whether `c` must not reach a terminal as it is: control characters, bidi controls (U+202A–U+202E,
/// U+2066–U+2069, the marks U+200E, U+200F, U+061C), and invisible formatting (zero-width spaces and joiners,
/// word joiners and invisible operators, the byte-order mark, the soft hyphen, interlinear annotations, tags).
pub fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// `s` with every [`unsafe_char`] made visible: C0 controls and DEL in caret notation (`^[`, `^?`), the rest as
/// `<U+XXXX>`. Borrowed when there is nothing to escape (the usual case).
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_safe(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_safe(out: &mut String, c: char) {
    match c {
        '\0'..='\u{1F}' => {
            out.push('^');
            out.push(char::from(c as u8 + b'@'));
        }
        '\u{7F}' => out.push_str("^?"),
        c if unsafe_char(c) => {
            let _ = write!(out, "<U+{:04X}>", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Cells a character takes on a terminal (0 for a combining mark).
fn cells(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Cells `s` takes once sanitised.
pub fn width(s: &str) -> usize {
    sanitize(s).chars().map(cells).sum()
}

/// Sanitised, and cut to at most `width` cells with an ellipsis at the end.
pub fn clean(s: &str, width: usize) -> String {
    let safe = sanitize(s);
    if safe.chars().map(cells).sum::<usize>() <= width {
        return safe.into_owned();
    }
    let mut out = String::with_capacity(width * 4);
    let mut used = 0;
    for c in safe.chars() {
        if used + cells(c) + 1 > width {
            break;
        }
        used += cells(c);
        out.push(c);
    }
    if width > 0 {
        out.push(ELLIPSIS);
    }
    out
}

/// Sanitised, cut or padded to exactly `width` cells.
pub fn fit(s: &str, width: usize) -> String {
    pad(clean(s, width), width)
}

/// Sanitised, and cut to at most `width` cells in the middle, keeping both ends (`aaaaaaaa…0001`): for tokens
/// whose end tells them apart (UUIDs, worker names).
pub fn middle(s: &str, width: usize) -> String {
    let safe = sanitize(s);
    let total: usize = safe.chars().map(cells).sum();
    if total <= width {
        return safe.into_owned();
    }
    if width < 3 {
        return clean(&safe, width);
    }
    let room = width - 1;
    let tail_room = room / 2;
    let head_room = room - tail_room;
    let mut head = String::new();
    let mut used = 0;
    for c in safe.chars() {
        if used + cells(c) > head_room {
            break;
        }
        used += cells(c);
        head.push(c);
    }
    let mut tail: Vec<char> = Vec::new();
    let mut used_tail = 0;
    for c in safe.chars().rev() {
        if used_tail + cells(c) > tail_room + (head_room - used) {
            break;
        }
        used_tail += cells(c);
        tail.push(c);
    }
    head.push(ELLIPSIS);
    head.extend(tail.iter().rev());
    head
}

/// [`middle`], padded to exactly `width` cells.
pub fn fit_middle(s: &str, width: usize) -> String {
    pad(middle(s, width), width)
}

/// Sanitised, and broken into lines of at most `width` cells (anywhere: tokens have no spaces to break at).
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = vec![String::new()];
    let mut used = 0;
    for c in sanitize(s).chars() {
        if used + cells(c) > width && used > 0 {
            lines.push(String::new());
            used = 0;
        }
        used += cells(c);
        if let Some(l) = lines.last_mut() {
            l.push(c);
        }
    }
    lines
}

/// `s` padded with spaces on the right to `width` cells.
pub fn pad(mut s: String, width: usize) -> String {
    let n: usize = s.chars().map(cells).sum();
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(n)));
    s
}

/// `s` padded with spaces on the left to `width` cells.
pub fn pad_left(s: &str, width: usize) -> String {
    let n: usize = s.chars().map(cells).sum();
    let mut out: String = std::iter::repeat_n(' ', width.saturating_sub(n)).collect();
    out.push_str(s);
    out
}

/// The ASCII stand-in for a character a non-UTF-8 terminal cannot show: box drawing as `+-|`, bars and dots
/// as ASCII marks, arrows as `^v<>`, anything else as `?`.
pub fn ascii_char(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    match c {
        '─' | '━' | '═' | '╌' | '▃' | '–' | '—' => '-',
        '│' | '┃' | '║' | '╎' | '▏' => '|',
        '╭' | '╮' | '╯' | '╰' | '┌' | '┐' | '└' | '┘' | '├' | '┤' | '┬' | '┴' | '┼' | '▅' | '✓' => {
            '+'
        }
        '…' => '~',
        '·' | '•' | '▁' => '.',
        '▂' => ':',
        '▄' => '=',
        '▆' => '*',
        '▇' => '#',
        '█' => '@',
        '↑' | '▲' => '^',
        '↓' | '▼' => 'v',
        '←' => '<',
        '→' => '>',
        '✗' | '×' => 'x',
        '‼' => '!',
        _ => '?',
    }
}

/// `s` in ASCII only (see [`ascii_char`]); a wide character's second cell becomes a space, so columns stay.
pub fn ascii(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match cells(c) {
            0 => {}
            2 => {
                out.push(ascii_char(c));
                out.push(' ');
            }
            _ => out.push(ascii_char(c)),
        }
    }
    Cow::Owned(out)
}

/// `s` in ASCII only when `ascii`, else as it is.
pub fn ascii_if(s: &str, ascii_only: bool) -> Cow<'_, str> {
    if ascii_only {
        ascii(s)
    } else {
        Cow::Borrowed(s)
    }
}

/// "1 row", "2 rows": a count with its noun.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// How long a wait has lasted, for the screen: `~` marks an upper bound (PostgreSQL 13 has no
/// `pg_locks.waitstart`), `?` an unknown.
pub fn waited(wv: &crate::model::WaitView, now: chrono::DateTime<chrono::Utc>) -> String {
    match wv.waiting_for(now) {
        Some(d) if wv.wait.waitstart_approx => format!("~{}", crate::model::human_duration(d)),
        Some(d) => crate::model::human_duration(d),
        None => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escape_sequences_and_bidi_controls_are_shown_not_obeyed() {
        assert_eq!(clean("ok\x1b[2J\r\n", 20), "ok^[[2J^M^J");
        assert_eq!(sanitize("a\u{202E}b"), "a<U+202E>b");
        assert_eq!(sanitize("x\u{9B}31m"), "x<U+009B>31m");
        assert_eq!(sanitize("zw\u{200B}j"), "zw<U+200B>j");
        assert_eq!(sanitize("del\u{7F}"), "del^?");
        assert!(matches!(sanitize("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn text_is_cut_and_padded_by_cells_not_characters() {
        assert_eq!(clean("abcdef", 4), "abc…");
        assert_eq!(clean("abcd", 4), "abcd");
        assert_eq!(fit("ab", 4), "ab  ");
        // Two cells each: three fit in six, a fourth would not.
        assert_eq!(clean("中文字符", 6), "中文…");
        assert_eq!(width(&fit("中文字符", 6)), 6);
        assert_eq!(width(&fit("中文字符", 5)), 5);
        // A combining mark takes no cell: "é" in two code points is one cell.
        assert_eq!(width("e\u{301}x"), 2);
        assert_eq!(fit("e\u{301}", 2), "e\u{301} ");
        assert_eq!(width(&clean(&"x".repeat(10_000), 8)), 8);
    }

    #[test]
    fn a_middle_cut_keeps_both_ends() {
        let uuid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeee0001";
        assert_eq!(middle(uuid, 14), "aaaaaaa…ee0001");
        assert_eq!(middle("short", 14), "short");
        assert_eq!(width(&fit_middle(uuid, 14)), 14);
        assert_eq!(middle("中文字符中文字符", 7), "中…字符");
    }

    #[test]
    fn a_token_wraps_whole_by_cells() {
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("中文字", 3), ["中", "文", "字"]);
        assert_eq!(wrap("", 3), [""]);
    }

    #[test]
    fn ascii_stands_in_for_everything_else_and_keeps_columns() {
        assert_eq!(ascii("╭─ ✓ ok · ▁█ …"), "+- + ok . .@ ~");
        assert_eq!(ascii("中x"), "? x");
        assert!(ascii("🙂 é").is_ascii());
    }

    #[test]
    fn counts_read_as_words() {
        assert_eq!(super::count(1_u32, "row"), "1 row");
        assert_eq!(super::count(0_u32, "row"), "0 rows");
        assert_eq!(
            super::count(246_u64, "failed acquisition"),
            "246 failed acquisitions"
        );
    }

    proptest! {
        #[test]
        fn any_text_fits_its_cells_and_nothing_unsafe_gets_through(s in any::<String>(), w in 0_usize..40) {
            for out in [fit(&s, w), fit_middle(&s, w)] {
                prop_assert_eq!(width(&out), w, "{:?} -> {:?}", s, out);
                prop_assert!(!out.chars().any(unsafe_char), "{:?}", out);
            }
            prop_assert!(width(&clean(&s, w)) <= w);
            prop_assert!(ascii(&fit(&s, w)).is_ascii());
        }
    }
}
