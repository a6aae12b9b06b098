//! Themes: roles (what a thing *is*: escalated, stale, selected…) mapped to styles. Render code names roles,
//! never colours. Theme files live in `themes/`; the shipped ones are built in, and `--theme PATH` reads another.
//!
//! Under `NO_COLOR` or `--no-color` the monochrome theme is used and every colour is `Reset` in the buffer
//! itself, so bold, reverse and underline survive (crossterm's own NO_COLOR handling would drop them too).
//! Without `COLORTERM=truecolor`/`24bit` (the usual case over SSH), `#rrggbb` becomes the nearest of the 256
//! indexed colours.

use std::collections::BTreeMap;
use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The shipped themes: name and file contents.
pub const BUILT_IN: [(&str, &str); 4] = [
    ("default", include_str!("../themes/default.toml")),
    ("light", include_str!("../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../themes/high-contrast.toml"),
    ),
    ("monochrome", include_str!("../themes/monochrome.toml")),
];

/// Every role the screen uses; each theme must define them all.
pub const ROLES: [&str; 14] = [
    "header",
    "banner",
    "ok",
    "contended",
    "escalated",
    "expired",
    "stale",
    "selected",
    "sparkline",
    "dim",
    "border",
    "title",
    "key",
    "note",
];

/// A theme that could not be used. One line, naming the file, the line or role, and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error(
        "unknown theme {0:?}: use one of default, light, high-contrast, monochrome, a theme in ~/.config/locktop/themes/, or a path to a .toml file"
    )]
    Unknown(String),
    #[error("cannot read theme file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("theme {name}: line {line}: {message}; see themes/default.toml for the format")]
    Parse {
        name: String,
        line: usize,
        message: String,
    },
    #[error("theme {name}: role {role:?} is missing; every theme defines {roles}")]
    MissingRole {
        name: String,
        role: &'static str,
        roles: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    roles: BTreeMap<String, RoleSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RoleSpec {
    fg: Option<ColorSpec>,
    bg: Option<ColorSpec>,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    reverse: bool,
}

#[derive(Debug)]
struct ColorSpec(Color);

impl<'de> Deserialize<'de> for ColorSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_color(&text).map(ColorSpec).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad colour {text:?}: use a name like \"red\" or \"bright_blue\", \"reset\", \"#rrggbb\" or 0-255"
            ))
        })
    }
}

fn parse_color(text: &str) -> Option<Color> {
    let t = text.trim().to_ascii_lowercase();
    Some(match t.as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "white" | "gray" | "grey" => Color::Gray,
        "bright_black" | "dark_gray" | "dark_grey" => Color::DarkGray,
        "bright_red" => Color::LightRed,
        "bright_green" => Color::LightGreen,
        "bright_yellow" => Color::LightYellow,
        "bright_blue" => Color::LightBlue,
        "bright_magenta" => Color::LightMagenta,
        "bright_cyan" => Color::LightCyan,
        "bright_white" => Color::White,
        hex if hex.starts_with('#') && hex.len() == 7 => {
            let n = u32::from_str_radix(&hex[1..], 16).ok()?;
            Color::Rgb((n >> 16) as u8, (n >> 8) as u8, n as u8)
        }
        index => Color::Indexed(index.parse().ok()?),
    })
}

/// How many colours the terminal can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    /// No colour at all (`NO_COLOR`, `--no-color`).
    None,
    /// 16 or 256 indexed colours: RGB is approximated.
    Indexed,
    /// 24-bit colour (`COLORTERM=truecolor` or `24bit`, and not GNU screen).
    TrueColor,
}

impl ColorDepth {
    /// From the environment: `COLORTERM` says truecolor; GNU screen (`TERM=screen*`) garbles RGB.
    pub fn detect(no_color: bool) -> Self {
        if no_color {
            return Self::None;
        }
        let colorterm = std::env::var("COLORTERM").unwrap_or_default();
        let term = std::env::var("TERM").unwrap_or_default();
        if (colorterm == "truecolor" || colorterm == "24bit") && !term.starts_with("screen") {
            Self::TrueColor
        } else {
            Self::Indexed
        }
    }
}

/// Styles by role.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub header: Style,
    pub banner: Style,
    pub ok: Style,
    pub contended: Style,
    pub escalated: Style,
    pub expired: Style,
    pub stale: Style,
    pub selected: Style,
    pub sparkline: Style,
    pub dim: Style,
    pub border: Style,
    pub title: Style,
    pub key: Style,
    pub note: Style,
}

impl Theme {
    /// A theme by name — the user's `themes/NAME.toml` in the config directory first (so a user can restyle a
    /// built-in one), then the built-in themes — or a theme file by path; monochrome whenever there is no colour.
    pub fn load(name_or_path: &str, depth: ColorDepth) -> Result<Self, ThemeError> {
        if depth == ColorDepth::None {
            return Self::parse("monochrome", BUILT_IN[3].1, depth);
        }
        let is_path = Path::new(name_or_path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
            || name_or_path.contains('/');
        let user = crate::config::config_dir()
            .map(|d| d.join("themes").join(format!("{name_or_path}.toml")))
            .filter(|p| !is_path && p.is_file());
        if let Some(user) = user {
            let text = std::fs::read_to_string(&user).map_err(|e| ThemeError::Read {
                path: user.display().to_string(),
                reason: e.to_string(),
            })?;
            return Self::parse(&user.display().to_string(), &text, depth);
        }
        if let Some((name, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(name, text, depth);
        }
        let path = Path::new(name_or_path);
        if is_path {
            let text = std::fs::read_to_string(path).map_err(|e| ThemeError::Read {
                path: name_or_path.to_owned(),
                reason: e.to_string(),
            })?;
            return Self::parse(name_or_path, &text, depth);
        }
        Err(ThemeError::Unknown(name_or_path.to_owned()))
    }

    /// Parses theme text; every role must be present.
    pub fn parse(name: &str, text: &str, depth: ColorDepth) -> Result<Self, ThemeError> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            ThemeError::Parse {
                name: name.to_owned(),
                line,
                message: e.message().replace('\n', " "),
            }
        })?;
        let style = |role: &'static str| -> Result<Style, ThemeError> {
            let spec = file
                .roles
                .get(role)
                .ok_or_else(|| ThemeError::MissingRole {
                    name: name.to_owned(),
                    role,
                    roles: ROLES.join(", "),
                })?;
            Ok(spec_style(spec, depth))
        };
        if let Some(unknown) = file.roles.keys().find(|k| !ROLES.contains(&k.as_str())) {
            return Err(ThemeError::Parse {
                name: name.to_owned(),
                line: text
                    .lines()
                    .position(|l| l.trim_start().starts_with(unknown.as_str()))
                    .map_or(1, |i| i + 1),
                message: format!("unknown role {unknown:?}"),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            header: style("header")?,
            banner: style("banner")?,
            ok: style("ok")?,
            contended: style("contended")?,
            escalated: style("escalated")?,
            expired: style("expired")?,
            stale: style("stale")?,
            selected: style("selected")?,
            sparkline: style("sparkline")?,
            dim: style("dim")?,
            border: style("border")?,
            title: style("title")?,
            key: style("key")?,
            note: style("note")?,
        })
    }
}

fn spec_style(spec: &RoleSpec, depth: ColorDepth) -> Style {
    let color = |c: &Option<ColorSpec>| c.as_ref().map(|c| adapt(c.0, depth));
    let mut style = Style::default();
    if let Some(fg) = color(&spec.fg) {
        style = style.fg(fg);
    }
    if let Some(bg) = color(&spec.bg) {
        style = style.bg(bg);
    }
    for (on, m) in [
        (spec.bold, Modifier::BOLD),
        (spec.dim, Modifier::DIM),
        (spec.italic, Modifier::ITALIC),
        (spec.underline, Modifier::UNDERLINED),
        (spec.reverse, Modifier::REVERSED),
    ] {
        if on {
            style = style.add_modifier(m);
        }
    }
    style
}

/// A colour the terminal can show.
fn adapt(c: Color, depth: ColorDepth) -> Color {
    match (c, depth) {
        (_, ColorDepth::None) => Color::Reset,
        (Color::Rgb(r, g, b), ColorDepth::Indexed) => {
            let level = |v: u8| (u16::from(v) * 5 / 255) as u8;
            Color::Indexed(16 + 36 * level(r) + 6 * level(g) + level(b))
        }
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_theme_parses_and_defines_every_role() {
        for (name, text) in BUILT_IN {
            let theme =
                Theme::parse(name, text, ColorDepth::TrueColor).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(theme.name, name);
        }
        for entry in
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/themes")).expect("themes dir")
        {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            let names: Vec<&str> = text
                .lines()
                .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
                .filter(|k| !k.is_empty() && !k.starts_with('#'))
                .collect();
            for role in ROLES {
                assert!(names.contains(&role), "{} lacks {role}", path.display());
            }
        }
    }

    #[test]
    fn without_colour_every_colour_is_reset_and_emphasis_stays() {
        let t = Theme::load("default", ColorDepth::None).expect("monochrome");
        assert_eq!(t.name, "monochrome");
        for s in [t.escalated, t.selected, t.banner] {
            assert!(
                s.fg.is_none_or(|c| c == Color::Reset) && s.bg.is_none_or(|c| c == Color::Reset)
            );
        }
        assert!(t.selected.add_modifier.contains(Modifier::REVERSED));
        assert!(t.escalated.add_modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn rgb_becomes_an_indexed_colour_without_truecolor() {
        let t = Theme::parse("x", BUILT_IN[1].1, ColorDepth::Indexed).expect("light");
        assert!(
            matches!(t.contended.fg, Some(Color::Indexed(_))),
            "{:?}",
            t.contended.fg
        );
        let t = Theme::parse("x", BUILT_IN[1].1, ColorDepth::TrueColor).expect("light");
        assert_eq!(t.contended.fg, Some(Color::Rgb(0x8a, 0x5a, 0x00)));
    }

    #[test]
    fn a_bad_colour_or_a_missing_role_is_refused_with_line_and_name() {
        let bad = BUILT_IN[0].1.replace("fg = \"green\"", "fg = \"greem\"");
        let e = Theme::parse("mine", &bad, ColorDepth::Indexed)
            .expect_err("bad colour")
            .to_string();
        assert!(e.contains("greem") && e.contains("line 7"), "{e}");
        let missing = BUILT_IN[0].1.replace("note = { fg = \"yellow\" }", "");
        let e = Theme::parse("mine", &missing, ColorDepth::Indexed)
            .expect_err("missing")
            .to_string();
        assert!(e.contains("\"note\""), "{e}");
        assert!(matches!(
            Theme::load("solarized", ColorDepth::Indexed),
            Err(ThemeError::Unknown(_))
        ));
    }
}
