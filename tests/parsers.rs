//! The config, theme and recording readers take whatever a file holds: random text, mutated valid files and
//! grammar-shaped nonsense never panic, and every refusal is one line with a line number inside the file.

use std::time::Duration;

use locktop::config::{Config, parse_duration};
use locktop::recording;
use locktop::theme::{BUILT_IN, ColorDepth, ROLES, Theme};
use proptest::prelude::*;

const DEFAULT_CONFIG: &str = "[lease]\ntable = \"public.entry_locks\"\ngroup = \"profile_id\"\nkey = \"symbol\"\n\
owner = \"owner_token\"\nexpires_at = \"expires_at\"\nacquired_at = \"acquired_at\"\n\
contention_count = \"contention_count\"\ncontended_since = \"contended_since\"\n\
last_contended_at = \"last_contended_at\"\n\n[thresholds]\nttl = \"30s\"\nescalate_after = \"90s\"\n";

/// Applies character-level edits (delete, insert, replace) to a text.
fn mutate(text: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(at, op, c) in edits {
        if chars.is_empty() {
            chars.push(c);
            continue;
        }
        let at = at % chars.len();
        match op % 3 {
            0 => {
                chars.remove(at);
            }
            1 => chars.insert(at, c),
            _ => chars[at] = c,
        }
    }
    chars.into_iter().collect()
}

fn assert_config_outcome(text: &str) {
    if let Err((line, message)) = Config::parse(text) {
        assert!(
            line >= 1 && line <= text.lines().count() + 1,
            "line {line} of {text:?}"
        );
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{message:?}"
        );
    }
}

fn assert_theme_outcome(text: &str) {
    for depth in [ColorDepth::None, ColorDepth::Indexed, ColorDepth::TrueColor] {
        if let Err(e) = Theme::parse("fuzz", text, depth) {
            let message = e.to_string();
            assert!(!message.contains('\n'), "{message:?}");
        }
    }
}

/// Characters that matter to TOML, and some that do not.
fn toml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '[', ']', '=', '"', '\'', '\n', '#', '{', '}', ',', '.', '\\', ' ', 'e', 's', 'm', '0',
            '9'
        ]),
        any::<char>(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,6}(ms|s|m|h|d|x| s|)".prop_map(|d| format!("\"{d}\"")),
        any::<String>().prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("true".to_owned()),
        Just("[1, \"a\"]".to_owned()),
        Just("{ fg = \"red\" }".to_owned()),
        "[ -~]{0,12}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "table",
            "group",
            "key",
            "owner",
            "expires_at",
            "acquired_at",
            "contention_count",
            "contended_since",
            "last_contended_at",
            "ttl",
            "escalate_after",
            "fg",
            "bg",
            "bold",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(ROLES.to_vec()).prop_map(str::to_owned),
        "[a-z_]{1,10}",
    ]
}

fn section() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "[lease]",
        "[thresholds]",
        "[roles]",
        "[other]",
        "",
        "[[lease]]",
    ])
    .prop_map(str::to_owned)
}

/// Lines shaped like the files: sections and `key = value` pairs in any order.
fn grammar_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            section(),
            (key(), value()).prop_map(|(k, v)| format!("{k} = {v}"))
        ],
        0..16,
    )
    .prop_map(|lines| lines.join("\n"))
}

/// A small valid recording: a header, a poll with a lease row and a wait, a failed poll.
const RECORDING: &str = concat!(
    r#"{"locktop_recording":1,"version":"0.1.0","target":"u@h:5432/db","interval_ms":1000,"ttl_s":30.0,"#,
    r#""escalate_after_s":90.0,"queries":false,"started_at":"2026-11-23T12:00:00Z"}"#,
    "\n",
    r#"{"snapshot":{"server_now":"2026-11-23T12:00:01Z","poll_ms":1.5,"leases":[{"group":"p1","key":"BTC","#,
    r#""owner":"w1","expires_at":"2026-11-23T12:00:30Z","acquired_at":null,"contention_count":3,"#,
    r#""contended_since":"2026-11-23T12:00:00Z","last_contended_at":"2026-11-23T12:00:01Z"}],"summaries":[],"#,
    r#""sessions":[],"waits":[{"pid":7,"blocked_by":[6],"locktype":"advisory","mode":"ExclusiveLock","#,
    r#""relation":null,"relation_oid":null,"tuple":null,"advisory_key":5,"transactionid":null,"#,
    r#""waitstart":null,"lease_row":null}],"visibility":"full","lease_error":null},"#,
    r#""statuses":{"p1":"contended"},"alerts":[]}"#,
    "\n",
    r#"{"error":"connection lost","statuses":{},"alerts":[]}"#,
    "\n",
);

fn assert_recording_outcome(text: &[u8]) {
    match recording::read(text) {
        Ok(r) => {
            if let Some(d) = r.damage {
                assert!(d.line >= 2, "{d:?}");
                assert!(!d.reason.contains('\n'), "{d:?}");
            }
        }
        Err(e) => assert!(!e.contains('\n'), "{e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_or_mutated_recordings_are_read_or_refused_without_a_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), toml_char()), 1..8),
        cut in 0..RECORDING.len(),
    ) {
        assert_recording_outcome(&bytes);
        assert_recording_outcome(mutate(RECORDING, &edits).as_bytes());
        assert_recording_outcome(&RECORDING.as_bytes()[..cut]);
    }

    #[test]
    fn any_text_is_parsed_or_refused_without_a_panic(text in prop::collection::vec(toml_char(), 0..400)) {
        let text: String = text.into_iter().collect();
        assert_config_outcome(&text);
        assert_theme_outcome(&text);
    }

    #[test]
    fn grammar_shaped_files_are_parsed_or_refused_with_their_line(text in grammar_text()) {
        assert_config_outcome(&text);
        assert_theme_outcome(&text);
    }

    #[test]
    fn mutated_valid_files_are_parsed_or_refused_with_their_line(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), toml_char()), 1..8),
        theme in 0..BUILT_IN.len(),
    ) {
        assert_config_outcome(&mutate(DEFAULT_CONFIG, &edits));
        assert_theme_outcome(&mutate(BUILT_IN[theme].1, &edits));
    }

    #[test]
    fn durations_never_panic_and_numbers_with_units_read_exactly(text in any::<String>(), ms in 1_u64..10_000_000) {
        let _ = parse_duration(&text);
        prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        prop_assert_eq!(parse_duration(&format!("{ms}s")), Ok(Duration::from_secs(ms)));
    }
}

#[test]
fn the_shipped_files_parse_so_mutations_start_from_valid_text() {
    let r = recording::read(RECORDING.as_bytes()).expect("the sample recording reads");
    assert_eq!((r.polls.len(), r.damage), (2, None));
    assert!(Config::parse(DEFAULT_CONFIG).is_ok());
    for (name, text) in BUILT_IN {
        assert!(
            Theme::parse(name, text, ColorDepth::Indexed).is_ok(),
            "{name}"
        );
    }
}
