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

pub use crate::config::ColorSetting;

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
    /// The 16 ANSI colours (`TERM=xterm`, `vt100`, `linux`, `screen`): indexed and RGB colours become the
    /// nearest of them.
    Ansi16,
    /// 256 indexed colours (`TERM=*-256color`): RGB is approximated.
    Indexed,
    /// 24-bit colour (`COLORTERM=truecolor` or `24bit`, and not GNU screen).
    TrueColor,
}

impl ColorDepth {
    /// From the environment, unless the config says: `COLORTERM=truecolor` (not under GNU screen, which garbles
    /// RGB) gives RGB, a `TERM` naming 256 colours gives 256, any other gives the 16 ANSI colours.
    pub fn detect(no_color: bool, setting: ColorSetting) -> Self {
        Self::from_env(
            no_color,
            setting,
            &std::env::var("TERM").unwrap_or_default(),
            &std::env::var("COLORTERM").unwrap_or_default(),
        )
    }

    /// [`Self::detect`] for given `TERM` and `COLORTERM` values.
    pub fn from_env(no_color: bool, setting: ColorSetting, term: &str, colorterm: &str) -> Self {
        if no_color {
            return Self::None;
        }
        match setting {
            ColorSetting::None => Self::None,
            ColorSetting::Ansi16 => Self::Ansi16,
            ColorSetting::Indexed => Self::Indexed,
            ColorSetting::TrueColor => Self::TrueColor,
            ColorSetting::Auto => {
                if (colorterm == "truecolor" || colorterm == "24bit") && !term.starts_with("screen")
                {
                    Self::TrueColor
                } else if term.contains("256color")
                    || colorterm == "truecolor"
                    || colorterm == "24bit"
                {
                    Self::Indexed
                } else {
                    Self::Ansi16
                }
            }
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
        (Color::Rgb(r, g, b), ColorDepth::Ansi16) => nearest_ansi(r, g, b),
        (Color::Indexed(index), ColorDepth::Ansi16) => {
            let (red, green, blue) = indexed_rgb(index);
            nearest_ansi(red, green, blue)
        }
        (other, _) => other,
    }
}

/// The RGB of one of the 256 indexed colours (the xterm palette).
fn indexed_rgb(i: u8) -> (u8, u8, u8) {
    const BASE: [(u8, u8, u8); 16] = [
        (0, 0, 0),
        (205, 0, 0),
        (0, 205, 0),
        (205, 205, 0),
        (0, 0, 238),
        (205, 0, 205),
        (0, 205, 205),
        (229, 229, 229),
        (127, 127, 127),
        (255, 0, 0),
        (0, 255, 0),
        (255, 255, 0),
        (92, 92, 255),
        (255, 0, 255),
        (0, 255, 255),
        (255, 255, 255),
    ];
    match i {
        0..16 => BASE[usize::from(i)],
        16..232 => {
            let n = i - 16;
            let step = |v: u8| if v == 0 { 0 } else { 55 + 40 * v };
            (step(n / 36), step((n / 6) % 6), step(n % 6))
        }
        _ => {
            let v = 8 + 10 * (i - 232);
            (v, v, v)
        }
    }
}

/// The nearest of the 16 ANSI colours to an RGB colour.
fn nearest_ansi(r: u8, g: u8, b: u8) -> Color {
    const ANSI: [Color; 16] = [
        Color::Black,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::Gray,
        Color::DarkGray,
        Color::LightRed,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
        Color::White,
    ];
    let distance = |i: u8| {
        let (r2, g2, b2) = indexed_rgb(i);
        let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2);
        d(r, r2) + d(g, g2) + d(b, b2)
    };
    (0..16_u8)
        .min_by_key(|i| distance(*i))
        .map_or(Color::Reset, |i| ANSI[usize::from(i)])
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
    fn colour_depth_follows_term_and_colorterm_and_the_config_wins() {
        let at = |term, colorterm| ColorDepth::from_env(false, ColorSetting::Auto, term, colorterm);
        assert_eq!(at("xterm", ""), ColorDepth::Ansi16);
        assert_eq!(at("xterm-256color", ""), ColorDepth::Indexed);
        assert_eq!(at("xterm-256color", "truecolor"), ColorDepth::TrueColor);
        assert_eq!(at("screen", "truecolor"), ColorDepth::Indexed);
        assert_eq!(
            ColorDepth::from_env(false, ColorSetting::TrueColor, "xterm", ""),
            ColorDepth::TrueColor
        );
        assert_eq!(
            ColorDepth::from_env(true, ColorSetting::TrueColor, "xterm", ""),
            ColorDepth::None
        );
        // Under 16 colours no theme's style uses an indexed or RGB colour.
        for (name, text) in BUILT_IN {
            let t = Theme::parse(name, text, ColorDepth::Ansi16).expect("theme");
            for s in [
                t.contended,
                t.escalated,
                t.selected,
                t.banner,
                t.stale,
                t.dim,
            ] {
                for c in [s.fg, s.bg].into_iter().flatten() {
                    assert!(
                        !matches!(c, Color::Rgb(..) | Color::Indexed(_)),
                        "{name}: {c:?}"
                    );
                }
            }
        }
        assert_eq!(nearest_ansi(0xd0, 0x10, 0x10), Color::Red);
        assert_eq!(
            adapt(Color::Indexed(196), ColorDepth::Ansi16),
            Color::LightRed
        );
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
