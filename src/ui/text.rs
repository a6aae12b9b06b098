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

    #[test]
    fn escape_sequences_from_the_database_are_neutralised_and_long_text_cut() {
        assert_eq!(clean("ok\x1b[2J\r\n", 20), "ok?[2J??");
        assert_eq!(clean("abcdef", 4), "abc…");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(clean(&"x".repeat(10_000), 8).chars().count(), 8);
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
}
