//! Text from the database made safe and short for the screen.

/// Replaces control characters (escape sequences included) so database text cannot drive the terminal, and cuts
/// to `width` characters with an ellipsis.
pub fn clean(s: &str, width: usize) -> String {
    let mut out = String::with_capacity(s.len().min(width * 4));
    for (count, c) in s.chars().enumerate() {
        if count + 1 > width {
            out.pop();
            out.push('…');
            return out;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// Pads or cuts to exactly `width` characters.
pub fn fit(s: &str, width: usize) -> String {
    let mut t = clean(s, width);
    let n = t.chars().count();
    t.extend(std::iter::repeat_n(' ', width.saturating_sub(n)));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_from_the_database_are_neutralised_and_long_text_cut() {
        assert_eq!(clean("ok\x1b[2J\r\n", 20), "ok?[2J??");
        assert_eq!(clean("abcdef", 4), "abc…");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(clean(&"x".repeat(10_000), 8).chars().count(), 8);
    }
}
