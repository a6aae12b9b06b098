//! The README's screenshots, from the real render code and the view tests' fixed data.
//!
//! `cargo run --example screenshots [-- OUT_DIR]` (default `screenshots/`) draws each screen into a ratatui
//! `TestBackend`, writes the buffer as an SVG with one glyph per cell in DejaVu Sans Mono, and turns it into a
//! PNG with `rsvg-convert`. Needs Debian's `librsvg2-bin` and `fonts-dejavu-core`.

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use locktop::app::{Action, App};
use locktop::theme::{ColorDepth, Theme};
use locktop::ui::{self, Glyphs};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

/// Font size in px; DejaVu Sans Mono advances 0.602 em per glyph, and its box-drawing glyphs fill 1.164 em
/// from top to bottom, so a cell of that height joins the borders without gaps.
const FONT_PX: f64 = 15.0;
const CELL_W: f64 = FONT_PX * 0.602;
const CELL_H: f64 = FONT_PX * 1.164;
/// Baseline within a cell. DejaVu's descent is 0.236 em, which puts the underscore on the cell's bottom edge,
/// where a reversed row's background ends; raising every row by the same 0.06 em keeps the box-drawing joins.
const BASELINE: f64 = CELL_H - FONT_PX * 0.296;
const MARGIN: f64 = 12.0;

/// A dark terminal palette (the 16 ANSI colours as xterm shows them), the default foreground and background.
const ANSI: [(u8, u8, u8); 16] = [
    (0x1d, 0x1f, 0x21),
    (0xcc, 0x34, 0x2b),
    (0x19, 0x8f, 0x44),
    (0xcf, 0xa4, 0x2d),
    (0x3b, 0x75, 0xe0),
    (0xa3, 0x6a, 0xc7),
    (0x39, 0xa0, 0xb5),
    (0xc5, 0xc8, 0xc6),
    (0x66, 0x69, 0x6d),
    (0xf2, 0x5a, 0x51),
    (0x4c, 0xc7, 0x6f),
    (0xf5, 0xcb, 0x4e),
    (0x6a, 0x9c, 0xf5),
    (0xc6, 0x8f, 0xe8),
    (0x6c, 0xd3, 0xe6),
    (0xff, 0xff, 0xff),
];
const FOREGROUND: (u8, u8, u8) = (0xd8, 0xda, 0xd9);
const BACKGROUND: (u8, u8, u8) = (0x16, 0x18, 0x1b);

fn rgb(color: Color, default: (u8, u8, u8)) -> (u8, u8, u8) {
    let ansi = |i: usize| ANSI[i];
    match color {
        Color::Reset => default,
        Color::Black => ansi(0),
        Color::Red => ansi(1),
        Color::Green => ansi(2),
        Color::Yellow => ansi(3),
        Color::Blue => ansi(4),
        Color::Magenta => ansi(5),
        Color::Cyan => ansi(6),
        Color::Gray => ansi(7),
        Color::DarkGray => ansi(8),
        Color::LightRed => ansi(9),
        Color::LightGreen => ansi(10),
        Color::LightYellow => ansi(11),
        Color::LightBlue => ansi(12),
        Color::LightMagenta => ansi(13),
        Color::LightCyan => ansi(14),
        Color::White => ansi(15),
        Color::Rgb(r, g, b) => (r, g, b),
        Color::Indexed(i) => indexed(i),
    }
}

/// xterm's 256-colour palette: the 16 ANSI colours, a 6×6×6 cube, then 24 greys.
fn indexed(i: u8) -> (u8, u8, u8) {
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    match i {
        0..=15 => ANSI[usize::from(i)],
        16..=231 => {
            let n = usize::from(i - 16);
            (LEVELS[n / 36], LEVELS[n / 6 % 6], LEVELS[n % 6])
        }
        232..=255 => {
            let v = 8 + 10 * (i - 232);
            (v, v, v)
        }
    }
}

fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The buffer as an SVG: background runs as rectangles, then every cell's glyph at its own position, so wide
/// fallback glyphs cannot push the columns apart.
fn svg(buffer: &Buffer) -> String {
    let area = buffer.area;
    let width = f64::from(area.width) * CELL_W + 2.0 * MARGIN;
    let height = f64::from(area.height) * CELL_H + 2.0 * MARGIN;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="DejaVu Sans Mono" font-size="{FONT_PX}px">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" rx="8" fill="{}"/>"#,
        hex(BACKGROUND)
    );
    for y in 0..area.height {
        let top = MARGIN + f64::from(y) * CELL_H;
        let mut run: Option<(u16, (u8, u8, u8))> = None;
        for x in 0..=area.width {
            let bg = (x < area.width).then(|| {
                let cell = &buffer[(x, y)];
                let (fg, bg) = (rgb(cell.fg, FOREGROUND), rgb(cell.bg, BACKGROUND));
                if cell.modifier.contains(Modifier::REVERSED) {
                    fg
                } else {
                    bg
                }
            });
            if let Some((start, color)) = run
                && bg != Some(color)
            {
                if color != BACKGROUND {
                    let _ = writeln!(
                        out,
                        r#"<rect x="{:.2}" y="{top:.2}" width="{:.2}" height="{CELL_H:.2}" fill="{}"/>"#,
                        MARGIN + f64::from(start) * CELL_W,
                        f64::from(x - start) * CELL_W + 0.3,
                        hex(color)
                    );
                }
                run = None;
            }
            if run.is_none() {
                run = bg.map(|c| (x, c));
            }
        }
        for x in 0..area.width {
            let cell = &buffer[(x, y)];
            let symbol = cell.symbol();
            if symbol.trim().is_empty() {
                continue;
            }
            let mut fg = rgb(cell.fg, FOREGROUND);
            if cell.modifier.contains(Modifier::REVERSED) {
                fg = rgb(cell.bg, BACKGROUND);
            }
            let mut attrs = String::new();
            if cell.modifier.contains(Modifier::BOLD) {
                attrs.push_str(r#" font-weight="bold""#);
            }
            if cell.modifier.contains(Modifier::ITALIC) {
                attrs.push_str(r#" font-style="italic""#);
            }
            if cell.modifier.contains(Modifier::DIM) {
                attrs.push_str(r#" opacity="0.6""#);
            }
            if cell.modifier.contains(Modifier::UNDERLINED) {
                attrs.push_str(r#" text-decoration="underline""#);
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.2}" y="{:.2}" fill="{}"{attrs}>{}</text>"#,
                MARGIN + f64::from(x) * CELL_W,
                top + BASELINE,
                hex(fg),
                escape(symbol)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// One screen of the README.
struct Shot {
    file: &'static str,
    theme: Theme,
    app: App,
    /// Columns and rows.
    size: (u16, u16),
}

fn shots() -> Result<Vec<Shot>, String> {
    let theme = |name: &str, depth| Theme::load(name, depth).map_err(|e| e.to_string());
    let default = theme("default", ColorDepth::Indexed)?;

    let dashboard = fixtures::incident_over_time();

    let mut detail = fixtures::incident_over_time();
    detail.apply(Action::ToggleDetail);

    let mut locks = fixtures::incident_over_time();
    locks.apply(Action::SwitchPane);
    locks.apply(Action::ToggleQueries);

    let mut help = fixtures::incident_over_time();
    help.apply(Action::ToggleHelp);

    let mut alerts = fixtures::incident_over_time();
    alerts.apply(Action::ToggleAlerts);

    let mut fleet = fixtures::app_showing(fixtures::two_targets());
    fleet.service = Some(fixtures::service_view());

    Ok(vec![
        Shot {
            file: "dashboard.png",
            theme: default.clone(),
            app: dashboard,
            size: (120, 40),
        },
        Shot {
            file: "detail.png",
            theme: default.clone(),
            app: detail,
            size: (120, 40),
        },
        Shot {
            file: "locks.png",
            theme: default.clone(),
            app: locks,
            size: (120, 40),
        },
        Shot {
            file: "help.png",
            theme: default.clone(),
            app: help,
            size: (120, 40),
        },
        Shot {
            file: "fleet.png",
            theme: default.clone(),
            app: fleet,
            size: (120, 40),
        },
        Shot {
            file: "monochrome.png",
            theme: theme("monochrome", ColorDepth::None)?,
            app: fixtures::incident_over_time(),
            size: (120, 40),
        },
        Shot {
            file: "small.png",
            theme: default.clone(),
            app: fixtures::incident_over_time(),
            size: (80, 24),
        },
        Shot {
            file: "alerts.png",
            theme: default.clone(),
            app: alerts,
            size: (120, 40),
        },
    ])
}

fn render(shot: &mut Shot) -> Result<Buffer, String> {
    let (w, h) = shot.size;
    let mut terminal = Terminal::new(TestBackend::new(w, h)).map_err(|e| e.to_string())?;
    terminal
        .draw(|f| ui::draw(f, &mut shot.app, &shot.theme, Glyphs { unicode: true }))
        .map_err(|e| e.to_string())?;
    Ok(terminal.backend().buffer().clone())
}

fn to_png(svg_text: &str, png: &Path) -> Result<(), String> {
    let mut child = Command::new("rsvg-convert")
        .args(["--format", "png", "--zoom", "2", "--output"])
        .arg(png)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run rsvg-convert ({e}); install it: apt-get install librsvg2-bin fonts-dejavu-core")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(svg_text.as_bytes())
            .map_err(|e| format!("writing to rsvg-convert: {e}"))?;
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "rsvg-convert failed ({status}) for {}",
            png.display()
        ))
    }
}

fn font_installed() -> bool {
    Command::new("fc-list")
        .arg("DejaVu Sans Mono")
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

fn run() -> Result<(), String> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("screenshots"), PathBuf::from);
    if !font_installed() {
        return Err(
            "the font DejaVu Sans Mono is not installed; install it: apt-get install fonts-dejavu-core".into(),
        );
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    // Every frame is drawn before the (slow) conversions, so none ages into "stale" while the others convert.
    let mut frames = Vec::new();
    for mut shot in shots()? {
        frames.push((shot.file, render(&mut shot)?));
    }
    for (file, buffer) in frames {
        let png = out.join(file);
        to_png(&svg(&buffer), &png)?;
        println!("wrote {}", png.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("screenshots: {e}");
            ExitCode::FAILURE
        }
    }
}
