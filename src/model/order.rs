//! Name order as people read it: digit runs compare as numbers, so `profile-2` comes before `profile-10` and
//! numeric profile ids (`7`, `42`, `1001`) sort by value.

use std::cmp::Ordering;

/// Compares two names with their digit runs taken as numbers; ties (`07` vs `7`) fall back to plain order so
/// the result is a total order consistent with equality.
pub fn natural_cmp(left: &str, right: &str) -> Ordering {
    let (mut x, mut y) = (left, right);
    loop {
        match (x.chars().next(), y.chars().next()) {
            (None, None) => return left.cmp(right),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (nx, rx) = split_digits(x);
                let (ny, ry) = split_digits(y);
                let (tx, ty) = (nx.trim_start_matches('0'), ny.trim_start_matches('0'));
                let by_value = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                (x, y) = (rx, ry);
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                (x, y) = (&x[c.len_utf8()..], &y[d.len_utf8()..]);
            }
        }
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;
    use std::cmp::Ordering;

    #[test]
    fn digit_runs_sort_by_value_and_text_by_characters() {
        let mut names = vec![
            "profile-10",
            "profile-2",
            "42",
            "7",
            "profile-1",
            "1001",
            "beta",
            "alpha-9",
            "alpha-10",
            "profile-2b",
            "profile-2a",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "7",
                "42",
                "1001",
                "alpha-9",
                "alpha-10",
                "beta",
                "profile-1",
                "profile-2",
                "profile-2a",
                "profile-2b",
                "profile-10"
            ]
        );
    }

    #[test]
    fn leading_zeros_and_huge_numbers_stay_a_total_order() {
        assert_eq!(natural_cmp("007", "7"), Ordering::Less);
        assert_eq!(natural_cmp("7", "007"), Ordering::Greater);
        assert_eq!(natural_cmp("x7", "x7"), Ordering::Equal);
        let huge = "123456789012345678901234567890";
        assert_eq!(natural_cmp(huge, "9"), Ordering::Greater);
        assert_eq!(natural_cmp("é2", "é10"), Ordering::Less);
        assert_eq!(natural_cmp("", "a"), Ordering::Less);
    }
}
