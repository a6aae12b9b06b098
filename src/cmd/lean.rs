//! The terminal backend: ratatui's diff of changed cells, written in as few bytes as the terminal allows. Over
//! SSH during an incident every byte counts, and most frames change a few short runs (countdowns, a
//! sparkline's newest bar), where crossterm's backend spends most of its bytes on absolute moves
//! (`ESC[row;colH`) and on resetting and setting colours around each run.
//!
//! - The cursor position is tracked, and each move is the cheapest of: none, reprinting the few cells between
//!   (when they are known and already in the current colours), a relative move (`ESC[nC`, `ESC[nD`, `ESC[nB`,
//!   `ESC[nA`, `ESC M` a row up, line feeds, carriage return), a column (`ESC[nG`) or an absolute position.
//! - Colours and attributes are tracked across frames: a change is one `ESC[…m` with only what differs (or a
//!   reset and what is wanted, when shorter), never a reset at the end of a frame. The 16 ANSI colours use
//!   their classic codes (`31`, `91`), which every terminal knows.
//! - Showing or hiding the cursor is written only when it changes.
//!
//! Anything that can leave the terminal's state unknown (a clear, a resize, a suspend, which makes a new
//! backend) drops what is tracked, so the next frame starts from known ground.

use std::io::{self, Write};

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::{Buffer, Cell};
use ratatui::layout::{Position, Size};
use ratatui::style::{Color, Modifier};
use unicode_width::UnicodeWidthStr;

/// Colours and attributes: what an SGR sequence sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Pen {
    fg: Color,
    bg: Color,
    modifier: Modifier,
}

/// The attributes that show on a blank: it looks the same in any foreground colour, bold or not, and so on.
const SHOWN_ON_BLANK: Modifier = Modifier::UNDERLINED
    .union(Modifier::REVERSED)
    .union(Modifier::CROSSED_OUT);

impl Pen {
    /// A cell's colours and attributes.
    fn of(cell: &Cell) -> Self {
        Self {
            fg: cell.fg,
            bg: cell.bg,
            modifier: cell.modifier,
        }
    }

    /// Whether writing `symbol` in this pen needs a colour change from `current` (a blank looks the same in
    /// any pen that shows the same on it).
    fn needs_change_from(self, current: Option<Pen>, symbol: &str) -> bool {
        current.is_none_or(|p| p != self && (symbol != " " || p.on_blank() != self.on_blank()))
    }

    /// The colours of a blank in this pen as it looks: only its background, unless an attribute shows on it.
    fn on_blank(self) -> Self {
        if self.modifier.intersects(SHOWN_ON_BLANK) {
            self
        } else {
            Self {
                fg: Color::Reset,
                bg: self.bg,
                modifier: Modifier::empty(),
            }
        }
    }
}

/// What is known of one cell on the terminal: its width, its colours, and its bytes when short (the shadow of a
/// screen is copied to price a frame's writing in two orders: this keeps it a plain copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    bytes: [u8; 8],
    /// How many of `bytes` hold the symbol; 0 when it is longer (then it is never reprinted).
    len: u8,
    width: u8,
    pen: Pen,
}

impl Known {
    /// A cell as it looks: a blank keeps only the colours that show on it, so that a blank in another
    /// foreground colour (a styled line's padding) counts as unchanged.
    fn new(symbol: &str, pen: Pen) -> Self {
        let pen = if symbol == " " { pen.on_blank() } else { pen };
        let mut bytes = [0; 8];
        let len = if symbol.len() <= bytes.len() {
            bytes[..symbol.len()].copy_from_slice(symbol.as_bytes());
            symbol.len() as u8
        } else {
            0
        };
        Self {
            bytes,
            len,
            width: symbol.width().min(2) as u8,
            pen,
        }
    }

    /// Its bytes, when kept.
    fn symbol(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.bytes[..usize::from(self.len)])
    }
}

/// Frames with at most this many changed cells are also priced in a greedy nearest-first order: its cost grows
/// with the square of the cells (about 5 ms at 160 in a release build, 1 ms at 50); a bigger change, such as a
/// whole screen's redraw, is priced in the two cheap orders only.
const NEAREST_MAX: usize = 160;

/// Groups past which a frame's cells are not priced in every order of them (see [`Track::route`]): the
/// orders grow with 2 to the power of the groups.
const ROUTED_GROUPS_MAX: usize = 10;

/// The bytes of a move past which the next run of a colour starts a group of its own (see
/// [`Track::by_place`]): more than a line feed and a backspace, or than `ESC M` and one.
const NEAR: usize = 3;

/// A changed cell: its column, row, and what it is to show.
type Change = (u16, u16, Cell);

/// A frame's cells of one colouring, in runs of cells side by side on a row.
type Group<'c> = (Pen, Vec<Vec<&'c Change>>);

/// The cell after `cell` at `(x, y)` on its row (after both halves of a wide one).
fn after(x: u16, y: u16, cell: &Cell) -> (u16, u16) {
    (x + cell.symbol().width().max(1) as u16, y)
}

/// The cells of `groups` in the order of `route`: each group, and whether its runs go forwards (0) or
/// backwards (1).
fn in_order<'c>(groups: &[Group<'c>], route: &[(usize, usize)]) -> Vec<&'c Change> {
    let mut order = Vec::new();
    for (g, w) in route {
        let runs = &groups[*g].1;
        let mut ahead = runs.iter();
        let mut back = runs.iter().rev();
        let runs: &mut dyn Iterator<Item = _> = if *w == 0 { &mut ahead } else { &mut back };
        for run in runs {
            order.extend(run.iter().copied());
        }
    }
    order
}

/// `cells` (in row order) grouped by colours, in the order the colours first come.
fn groups_of<'c>(cells: &[&'c Change]) -> Vec<Group<'c>> {
    let mut groups: Vec<Group<'c>> = Vec::new();
    for cell in cells {
        let pen = Pen::of(&cell.2);
        let group = if let Some(g) = groups.iter().position(|(p, _)| *p == pen) {
            g
        } else {
            groups.push((pen, Vec::new()));
            groups.len() - 1
        };
        let runs = &mut groups[group].1;
        match runs.last_mut() {
            Some(run)
                if run
                    .last()
                    .is_some_and(|(x, y, c)| after(*x, *y, c) == (cell.0, cell.1)) =>
            {
                run.push(cell);
            }
            _ => runs.push(vec![cell]),
        }
    }
    groups
}

/// A ratatui backend that writes the fewest bytes it can; see the module's documentation.
#[derive(Debug)]
pub struct Lean<W: Write> {
    out: W,
    /// The screen's size is fixed (else asked of the terminal at each frame).
    fixed: bool,
    hidden: Option<bool>,
    track: Track,
}

/// What is known of the terminal's state, and the bytes that change it. Cloned to price another order of
/// writing a frame's cells.
#[derive(Debug, Clone, Default)]
struct Track {
    size: Option<Size>,
    /// Where the cursor is, when known (after writing the last column it is not: terminals differ).
    cursor: Option<(u16, u16)>,
    /// The terminal's colours and attributes, when known.
    pen: Option<Pen>,
    /// What each cell holds, row by row, when known (reprinting a short gap can beat moving over it).
    shadow: Vec<Option<Known>>,
    /// The right half of a wide character that a narrow one just overwrote: terminals blank it (some in the
    /// current colours), while ratatui, whose buffer has it blank already, does not redraw it.
    orphan: Option<(u16, u16)>,
}

impl<W: Write> Lean<W> {
    /// A backend on `out`, which asks the terminal its size.
    pub fn new(out: W) -> Self {
        Self {
            out,
            fixed: false,
            hidden: None,
            track: Track::default(),
        }
    }

    /// A backend on `out` for a screen of a fixed size (benchmarks and tests: no terminal to ask).
    pub fn with_size(out: W, width: u16, height: u16) -> Self {
        let mut lean = Self::new(out);
        lean.fixed = true;
        lean.track.resized(Size { width, height });
        lean
    }
}

impl Track {
    fn resized(&mut self, size: Size) {
        if self.size != Some(size) {
            self.size = Some(size);
            self.shadow = vec![None; usize::from(size.width) * usize::from(size.height)];
            self.cursor = None;
        }
    }

    fn index(&self, x: u16, y: u16) -> Option<usize> {
        let size = self.size?;
        (x < size.width && y < size.height)
            .then(|| usize::from(y) * usize::from(size.width) + usize::from(x))
    }

    /// Forgets what the screen holds (after a clear, it is blank in the default colours).
    fn forget(&mut self, blank: bool) {
        let cell = blank.then(|| Known::new(" ", Pen::default()));
        self.shadow.fill(cell);
    }

    /// The bytes that move the cursor from where it is to `(x, y)`: the cheapest way.
    fn moves(&self, x: u16, y: u16) -> Vec<u8> {
        self.moves_from(self.cursor, x, y)
    }

    /// The bytes that move the cursor from `cursor` (not known: `None`) to `(x, y)`: the cheapest way.
    fn moves_from(&self, cursor: Option<(u16, u16)>, x: u16, y: u16) -> Vec<u8> {
        let absolute = cup(x, y);
        let Some((cx, cy)) = cursor else {
            return absolute;
        };
        if (cx, cy) == (x, y) {
            return Vec::new();
        }
        let mut best = absolute;
        // Vertically first (line feeds keep the column in raw mode), then along the row.
        let vertical: Vec<u8> = match y.cmp(&cy) {
            std::cmp::Ordering::Equal => Vec::new(),
            std::cmp::Ordering::Greater => {
                let down = y - cy;
                let feeds = vec![b'\n'; usize::from(down)];
                let csi = csi(down, b'B');
                if feeds.len() <= csi.len() { feeds } else { csi }
            }
            // A reverse index (`ESC M`) goes up a row and scrolls only from the top margin, which is the
            // screen's first row here (a scrolling region is never left set): a byte less than `ESC[A`.
            std::cmp::Ordering::Less if cy - y == 1 => b"\x1bM".to_vec(),
            std::cmp::Ordering::Less => csi(cy - y, b'A'),
        };
        for horizontal in self.along_row(cx, x, y, y == cy) {
            if vertical.len() + horizontal.len() < best.len() {
                best = vertical.iter().chain(&horizontal).copied().collect();
            }
        }
        best
    }

    /// Ways to go from column `cx` to `x` on row `y`: relative (backspaces for a step or two), by column, from
    /// the row's start, and (on the cursor's own row) by reprinting the cells between when that is shorter.
    fn along_row(&self, cx: u16, x: u16, y: u16, same_row: bool) -> Vec<Vec<u8>> {
        let mut ways = vec![cha(x)];
        match x.cmp(&cx) {
            std::cmp::Ordering::Equal => ways.push(Vec::new()),
            std::cmp::Ordering::Greater => {
                ways.push(csi(x - cx, b'C'));
                if same_row && let Some(gap) = self.reprint(cx, x, y) {
                    ways.push(gap);
                }
            }
            std::cmp::Ordering::Less => {
                ways.push(csi(cx - x, b'D'));
                if cx - x <= 2 {
                    ways.push(vec![0x08; usize::from(cx - x)]);
                }
            }
        }
        let mut from_start = vec![b'\r'];
        if x > 0 {
            from_start.extend(csi(x, b'C'));
        }
        ways.push(from_start);
        ways
    }

    /// The cells from `from` up to `to` on row `y`, as they are, when all are known, one cell wide, and in the
    /// current colours (so reprinting them changes nothing but the cursor).
    fn reprint(&self, from: u16, to: u16, y: u16) -> Option<Vec<u8>> {
        if to - from > 4 {
            return None;
        }
        let pen = self.pen?;
        let mut out = Vec::new();
        for x in from..to {
            let known = self.shadow.get(self.index(x, y)?)?.as_ref()?;
            let looks = if known.symbol() == Some(b" ") {
                pen.on_blank()
            } else {
                pen
            };
            if known.pen != looks || known.width != 1 {
                return None;
            }
            out.extend_from_slice(known.symbol()?);
        }
        Some(out)
    }

    /// A blank in the default colours where a wide character's right half was, unless the next cell written
    /// is that one.
    fn settle_orphan(&mut self, out: &mut Vec<u8>, next: Option<(u16, u16)>) {
        if let Some((x, y)) = self.orphan.take()
            && next != Some((x, y))
        {
            self.write_cell(out, x, y, &Cell::EMPTY);
        }
    }

    fn write_cell(&mut self, out: &mut Vec<u8>, x: u16, y: u16, cell: &Cell) {
        self.settle_orphan(out, Some((x, y)));
        let symbol = cell.symbol();
        let width = symbol.width().max(1) as u16;
        // The last cell this one covers was a wide character's left half: its right half is orphaned.
        let orphans = self
            .index(x + width - 1, y)
            .and_then(|i| self.shadow[i].as_ref())
            .is_some_and(|k| k.width > 1);
        // Writing over a wide character's right half blanks the whole character on the terminal.
        if x > 0
            && let Some(left) = self.index(x - 1, y)
            && self.shadow[left].as_ref().is_some_and(|k| k.width > 1)
        {
            self.shadow[left] = None;
        }
        out.extend(self.moves(x, y));
        let pen = Pen::of(cell);
        if pen.needs_change_from(self.pen, symbol) {
            out.extend(sgr(self.pen, pen));
            self.pen = Some(pen);
        }
        out.extend_from_slice(symbol.as_bytes());
        if orphans && self.index(x + width, y).is_some() {
            self.orphan = Some((x + width, y));
        }
        if let Some(i) = self.index(x, y) {
            self.shadow[i] = Some(Known::new(symbol, pen));
            // The cell a wide character covers holds nothing that can be reprinted alone.
            if width > 1
                && let Some(next) = self.index(x + 1, y)
            {
                self.shadow[next] = None;
            }
        }
        let end = x.saturating_add(width);
        // At the last column the cursor waits to wrap, and terminals differ in what a move does from there.
        self.cursor = self.size.filter(|s| end < s.width).map(|_| (end, y));
    }

    /// Row `y` as it must look after this frame: what the screen holds, with `cells`' changes on it; `None`
    /// when a cell of it is not known, or is wide.
    fn wanted_row(&self, y: u16, cells: &[(u16, u16, Cell)]) -> Option<Vec<Known>> {
        let width = self.size?.width;
        let mut row: Vec<Option<Known>> = (0..width)
            .map(|x| self.index(x, y).and_then(|i| self.shadow[i]))
            .collect();
        for (x, cy, cell) in cells {
            // A frame drawn for a larger screen than the one last known (the terminal shrank between the
            // frame and the draw) has cells past its edge: they are not on this row.
            if *cy == y
                && let Some(at) = row.get_mut(usize::from(*x))
            {
                *at = Some(Known::new(cell.symbol(), Pen::of(cell)));
            }
        }
        row.into_iter()
            .map(|k| k.filter(|k| k.width == 1 && k.len > 0))
            .collect()
    }

    /// Where deleting one cell of row `y` (the rest of the row moving left) explains at least four of its
    /// changes: a sparkline taking a new sample. The longest such stretch's first column.
    fn shift_at(&self, y: u16, wanted: &[Known]) -> Option<u16> {
        let shown: Vec<Known> = (0..wanted.len() as u16)
            .map(|x| self.index(x, y).and_then(|i| self.shadow[i]))
            .collect::<Option<Vec<Known>>>()?;
        let mut best: Option<(u16, usize)> = None;
        let mut start: Option<(u16, usize)> = None;
        for x in 0..wanted.len().saturating_sub(1) {
            if wanted[x] == shown[x + 1] {
                let (a, changes) = start.get_or_insert((x as u16, 0));
                if wanted[x] != shown[x] {
                    *changes += 1;
                }
                let run = (*a, *changes);
                if best.is_none_or(|(_, c)| run.1 > c) {
                    best = Some(run);
                }
            } else {
                start = None;
            }
        }
        best.filter(|(_, changes)| *changes >= 4).map(|(a, _)| a)
    }

    /// Deletes the cell at `(x, y)` (`ESC[P`): the rest of the row moves one cell left, the last is unknown.
    fn delete_cell(&mut self, out: &mut Vec<u8>, x: u16, y: u16) {
        out.extend(self.moves(x, y));
        out.extend_from_slice(b"\x1b[P");
        let (Some(first), Some(size)) = (self.index(x, y), self.size) else {
            return;
        };
        let last = first + usize::from(size.width - x) - 1;
        self.shadow.copy_within(first + 1..=last, first);
        self.shadow[last] = None;
        self.cursor = Some((x, y));
    }

    /// The cells of row `y` that differ from `wanted` on the screen as now known.
    fn differences(&self, y: u16, wanted: &[Known]) -> Vec<(u16, u16, Cell)> {
        wanted
            .iter()
            .enumerate()
            .filter(|(x, k)| self.index(*x as u16, y).and_then(|i| self.shadow[i]) != Some(**k))
            .map(|(x, k)| {
                let mut cell = Cell::default();
                cell.set_symbol(std::str::from_utf8(k.symbol().unwrap_or(b" ")).unwrap_or(" "));
                cell.fg = k.pen.fg;
                cell.bg = k.pen.bg;
                cell.modifier = k.pen.modifier;
                (x as u16, y, cell)
            })
            .collect()
    }

    /// The screen's row `y` as known, when every cell of it is (and one cell wide).
    fn shown_row(&self, y: u16) -> Option<Vec<Known>> {
        let width = self.size?.width;
        (0..width)
            .map(|x| {
                self.index(x, y)
                    .and_then(|i| self.shadow[i])
                    .filter(|k| k.width == 1 && k.len > 0)
            })
            .collect()
    }

    /// Lines that moved up or down by one (a lock wait that went or came, and the tree below it moved): the
    /// terminal moves them itself when that costs fewer bytes than rewriting them. Deleting (`ESC[M`) or
    /// inserting (`ESC[L`) a line inside a scrolling region (`ESC[top;bottomr`) shifts just that band.
    fn shift_lines(&mut self, out: &mut Vec<u8>, cells: &mut Vec<(u16, u16, Cell)>) {
        let Some(size) = self.size else {
            return;
        };
        let mut changed: Vec<u16> = cells.iter().map(|(_, y, _)| *y).collect();
        changed.dedup();
        if changed.len() < 2 {
            return;
        }
        let wanted: Vec<Option<Vec<Known>>> = (0..size.height)
            .map(|y| self.wanted_row(y, cells))
            .collect();
        let shown: Vec<Option<Vec<Known>>> = (0..size.height).map(|y| self.shown_row(y)).collect();
        // How many cells of the line wanted at `f` differ from the line shown at `t` (all, when either is
        // not known).
        let apart = |f: u16, t: u16| match (&wanted[usize::from(f)], &shown[usize::from(t)]) {
            (Some(w), Some(s)) => w.iter().zip(s).filter(|(a, b)| a != b).count(),
            _ => usize::from(size.width) + 1,
        };
        // A line is better moved than rewritten in place when it is closer to the one shown next to it: the
        // same, or with a few cells changed (a lock wait's seconds ticking as its line moves).
        let closer =
            |f: u16, t: u16| apart(f, t) <= usize::from(size.width) && apart(f, t) < apart(f, f);
        let as_close =
            |f: u16, t: u16| apart(f, t) <= usize::from(size.width) && apart(f, t) <= apart(f, f);
        // The longest band of changed lines each like the one below (deleted) or above (inserted).
        let mut best: Option<(u16, u16, bool)> = None;
        for up in [true, false] {
            let mut y = 0;
            while y + 1 < size.height {
                let (from, to) = if up { (y, y + 1) } else { (y + 1, y) };
                if closer(from, to) {
                    let start = y;
                    while y + 1 < size.height && {
                        let (f, t) = if up { (y, y + 1) } else { (y + 1, y) };
                        as_close(f, t)
                    } {
                        y += 1;
                    }
                    let len = y - start;
                    if len >= 2 && best.is_none_or(|(a, b, _)| len > b - a) {
                        best = Some((start, y, up));
                    }
                }
                y += 1;
            }
        }
        let Some((top, bottom, up)) = best else {
            return;
        };
        // Every line of the band must be known as it is to be: the lines moved, and the one made blank.
        if (top..=bottom).any(|y| wanted[usize::from(y)].is_none()) {
            return;
        }
        let band: Vec<&(u16, u16, Cell)> = cells
            .iter()
            .filter(|(_, y, _)| (top..=bottom).contains(y))
            .collect();
        let plain = self.clone().write_all(&band).len();
        let mut moved = self.clone();
        // The line made blank takes the current background: the default one (the foreground and attributes
        // that do not show on a blank may stay).
        let mut bytes = Vec::new();
        if moved.pen.is_none_or(|p| p.on_blank() != Pen::default()) {
            bytes.extend(sgr(moved.pen, Pen::default()));
            moved.pen = Some(Pen::default());
        }
        bytes.extend(format!("\x1b[{};{}r", top + 1, bottom + 1).into_bytes());
        // Setting the region moves the cursor: home on xterm, to the region's top on others. An absolute move
        // then is right on both.
        moved.cursor = None;
        bytes.extend(moved.moves(0, top));
        bytes.extend_from_slice(if up { b"\x1b[M" } else { b"\x1b[L" });
        bytes.extend_from_slice(b"\x1b[r");
        // Resetting it sends the cursor home everywhere.
        moved.cursor = Some((0, 0));
        let width = usize::from(size.width);
        let first = usize::from(top) * width;
        let last = (usize::from(bottom) + 1) * width;
        let blank = Some(Known::new(" ", Pen::default()));
        if up {
            moved.shadow.copy_within(first + width..last, first);
            moved.shadow[last - width..last].fill(blank);
        } else {
            moved.shadow.copy_within(first..last - width, first + width);
            moved.shadow[first..first + width].fill(blank);
        }
        let mut rest = Vec::new();
        for y in top..=bottom {
            if let Some(row) = &wanted[usize::from(y)] {
                rest.extend(moved.differences(y, row));
            }
        }
        bytes.extend(moved.write_all(&rest.iter().collect::<Vec<_>>()));
        if bytes.len() < plain {
            *self = moved;
            out.extend(bytes);
            cells.retain(|(_, y, _)| !(top..=bottom).contains(y));
        }
    }

    /// Rows whose change is mostly their content moved one cell left are shifted on the terminal when that
    /// costs fewer bytes than writing their changed cells; `cells` then holds what is left to write.
    fn shift_rows(&mut self, out: &mut Vec<u8>, cells: &mut Vec<(u16, u16, Cell)>) {
        let mut rows: Vec<u16> = cells.iter().map(|(_, y, _)| *y).collect();
        rows.dedup();
        for y in rows {
            let Some(wanted) = self.wanted_row(y, cells) else {
                continue;
            };
            let Some(a) = self.shift_at(y, &wanted) else {
                continue;
            };
            let row: Vec<&(u16, u16, Cell)> = cells.iter().filter(|(_, cy, _)| *cy == y).collect();
            let plain = self.clone().write_all(&row).len();
            let mut shifted = self.clone();
            let mut bytes = Vec::new();
            shifted.delete_cell(&mut bytes, a, y);
            let rest = shifted.differences(y, &wanted);
            bytes.extend(shifted.write_all(&rest.iter().collect::<Vec<_>>()));
            if bytes.len() < plain {
                *self = shifted;
                out.extend(bytes);
                cells.retain(|(_, cy, _)| *cy != y);
            }
        }
    }

    /// The bytes of `cells` written in this order, the state moving along. A long run of blanks (a line that
    /// got shorter) is erased in place (`ESC[nX`) rather than written.
    fn write_all(&mut self, cells: &[&(u16, u16, Cell)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < cells.len() {
            let (x, y, cell) = cells[i];
            let (width, taken, pen) = self.blank_run(&cells[i..]);
            let erase = csi(width, b'X');
            // Written one by one, the blanks cost a byte each and a move over each gap between them.
            let gaps = usize::from(width) - taken;
            if erase.len() + 4 < taken + 3 * gaps.min(taken) {
                self.settle_orphan(&mut out, Some((*x, *y)));
                out.extend(self.moves(*x, *y));
                if self.pen != Some(pen) {
                    out.extend(sgr(self.pen, pen));
                    self.pen = Some(pen);
                }
                out.extend(erase);
                for dx in 0..width {
                    if let Some(j) = self.index(x + dx, *y) {
                        self.shadow[j] = Some(Known::new(" ", pen));
                    }
                }
                // Erasing leaves the cursor where it was.
                self.cursor = Some((*x, *y));
                i += taken;
            } else {
                self.write_cell(&mut out, *x, *y, cell);
                i += 1;
            }
        }
        self.settle_orphan(&mut out, None);
        out
    }

    /// `cells` in the order a greedy walk takes them: next, always the one cheapest to reach and colour from
    /// where the last left the cursor and the pen (the row order breaking ties). Where a frame's changes are
    /// scattered in a few colours (a clock, countdowns, a lock wait's seconds), this joins what is near.
    fn nearest_first<'c>(&self, cells: &[&'c (u16, u16, Cell)]) -> Vec<&'c (u16, u16, Cell)> {
        let mut walk = self.clone();
        let mut left: Vec<&'c (u16, u16, Cell)> = cells.to_vec();
        let mut order = Vec::with_capacity(cells.len());
        let mut sink = Vec::new();
        while !left.is_empty() {
            let cost = |c: &(u16, u16, Cell)| {
                let (x, y, cell) = c;
                let pen = Pen::of(cell);
                let colour = if pen.needs_change_from(walk.pen, cell.symbol()) {
                    sgr(walk.pen, pen).len()
                } else {
                    0
                };
                walk.moves(*x, *y).len() + colour
            };
            let (i, _) = left
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| cost(c))
                .expect("a cell left");
            let next = left.remove(i);
            let (x, y, cell) = next;
            sink.clear();
            walk.write_cell(&mut sink, *x, *y, cell);
            order.push(next);
        }
        order
    }

    /// `groups` (a frame's cells grouped by colours, see [`groups_of`]) with each colour's runs cut where the
    /// next is far from the last (a move dearer than [`NEAR`] bytes) into groups of their own: a colour used
    /// in two places of the screen need not be written in one go. `None` where nothing is cut, or past
    /// [`ROUTED_GROUPS_MAX`] groups.
    fn by_place<'c>(&self, groups: &[Group<'c>]) -> Option<Vec<Group<'c>>> {
        let mut places: Vec<Group<'c>> = Vec::new();
        for (pen, runs) in groups {
            let mut group: Vec<Vec<&'c Change>> = Vec::new();
            for run in runs {
                let far = group.last().is_some_and(|last: &Vec<&Change>| {
                    self.moves_from(self.exit(last), run[0].0, run[0].1).len() > NEAR
                });
                if far {
                    places.push((*pen, std::mem::take(&mut group)));
                }
                group.push(run.clone());
            }
            places.push((*pen, group));
            if places.len() > ROUTED_GROUPS_MAX {
                return None;
            }
        }
        (places.len() > groups.len()).then_some(places)
    }

    /// Where writing a run leaves the cursor: not known past the last column.
    fn exit(&self, run: &[&Change]) -> Option<(u16, u16)> {
        let width = self.size.map_or(u16::MAX, |s| s.width);
        run.last()
            .map(|(x, y, cell)| after(*x, *y, cell))
            .filter(|(x, _)| *x < width)
    }

    /// The cells of `groups` in the order of the groups, and of each group's runs (forwards or backwards),
    /// that costs the fewest bytes of moves and colour changes from where the cursor and the colours are:
    /// every order weighed (`None` past [`ROUTED_GROUPS_MAX`] groups). Where a frame's changes are spread in
    /// a few colours, this can start near the cursor in the colours it is in, where the greedy walk takes
    /// the cheapest first step and the grouping by colour the first colour of the screen.
    fn route<'c>(&self, groups: &[Group<'c>]) -> Option<Vec<&'c Change>> {
        if groups.len() > ROUTED_GROUPS_MAX {
            return None;
        }
        let exit = |run: &[&Change]| self.exit(run);
        let moves = |from: Option<(u16, u16)>, to: &(u16, u16, Cell)| {
            self.moves_from(from, to.0, to.1).len()
        };
        let colour = |from: Option<Pen>, to: Pen| {
            if from == Some(to) {
                0
            } else {
                sgr(from, to).len()
            }
        };
        // For each group, forwards (0) and backwards (1): the moves within, and its first and last run.
        let ways: Vec<[(usize, usize, usize); 2]> = groups
            .iter()
            .map(|(_, runs)| {
                let within = |order: &mut dyn Iterator<Item = &Vec<&(u16, u16, Cell)>>| {
                    let mut bytes = 0;
                    let mut at: Option<Option<(u16, u16)>> = None;
                    for run in order {
                        if let Some(from) = at {
                            bytes += moves(from, run[0]);
                        }
                        at = Some(exit(run));
                    }
                    bytes
                };
                let last = runs.len() - 1;
                [
                    (within(&mut runs.iter()), 0, last),
                    (within(&mut runs.iter().rev()), last, 0),
                ]
            })
            .collect();
        let k = groups.len();
        // From each group written one way to each other written either way: the move from its last run to
        // the other's first, the change of colours, and the moves within the other.
        let step: Vec<Vec<usize>> = (0..2 * k)
            .map(|from| {
                let (pen, runs) = &groups[from / 2];
                let exit = exit(&runs[ways[from / 2][from % 2].2]);
                (0..2 * k)
                    .map(|to| {
                        let (to_pen, to_runs) = &groups[to / 2];
                        let (within, first, _) = ways[to / 2][to % 2];
                        moves(exit, to_runs[first][0]) + colour(Some(*pen), *to_pen) + within
                    })
                    .collect()
            })
            .collect();
        let full = (1_usize << k) - 1;
        // The least bytes to have written the groups in `mask`, the last being `g` in way `w`, and whence.
        let mut least = vec![[[usize::MAX; 2]; ROUTED_GROUPS_MAX]; full + 1];
        let mut whence = vec![[[(0_usize, 0_usize); 2]; ROUTED_GROUPS_MAX]; full + 1];
        for (g, (pen, runs)) in groups.iter().enumerate() {
            for (w, (within, first, _)) in ways[g].iter().enumerate() {
                least[1 << g][g][w] =
                    moves(self.cursor, runs[*first][0]) + colour(self.pen, *pen) + within;
            }
        }
        for mask in 1..=full {
            for g in (0..k).filter(|g| mask & (1 << g) != 0) {
                for w in 0..2 {
                    let here = least[mask][g][w];
                    if here == usize::MAX {
                        continue;
                    }
                    for h in (0..k).filter(|h| mask & (1 << h) == 0) {
                        for v in 0..2 {
                            let bytes = here + step[2 * g + w][2 * h + v];
                            let next = mask | 1 << h;
                            if bytes < least[next][h][v] {
                                least[next][h][v] = bytes;
                                whence[next][h][v] = (g, w);
                            }
                        }
                    }
                }
            }
        }
        let (mut g, mut w) = (0..k)
            .flat_map(|g| [(g, 0), (g, 1)])
            .min_by_key(|(g, w)| least[full][*g][*w])?;
        let mut mask = full;
        let mut route = Vec::with_capacity(k);
        while mask != 0 {
            route.push((g, w));
            let before = whence[mask][g][w];
            mask &= !(1 << g);
            (g, w) = before;
        }
        route.reverse();
        Some(in_order(groups, &route))
    }

    /// The blanks that `cells` begin with on one row, in one foreground colour on the default background
    /// without attributes (what erasing gives, on terminals that erase in the current colours and on those
    /// that do not alike): the width from the first to the last of them, how many of `cells` they are, and
    /// their colours. The cells between, which are not to change, must be such blanks on the screen already.
    /// Every cell covered must be known to be one cell wide (erasing part of a wide character is left to
    /// plain writes).
    fn blank_run(&self, cells: &[&(u16, u16, Cell)]) -> (u16, usize, Pen) {
        let Some((x0, y0, first)) = cells.first() else {
            return (0, 0, Pen::default());
        };
        // Erased in the current pen when it looks the same on a blank (no colour change), else in the cell's.
        let pen = match self.pen {
            Some(p) if p.on_blank() == Pen::of(first).on_blank() => p,
            _ => Pen::of(first),
        };
        if first.symbol() != " " || pen.on_blank() != Pen::default() {
            return (0, 0, pen);
        }
        let blank = Known::new(" ", pen);
        let (mut taken, mut width) = (0, 0);
        let mut x = *x0;
        while let Some(known) = self.index(x, *y0).and_then(|j| self.shadow[j]) {
            if known.width != 1 {
                break;
            }
            match cells.get(taken) {
                Some((cx, cy, cell)) if (*cx, *cy) == (x, *y0) => {
                    let same = cell.symbol() == " " && Known::new(" ", Pen::of(cell)) == blank;
                    if !same {
                        break;
                    }
                    taken += 1;
                    width = x - x0 + 1;
                }
                _ if known == blank => {}
                _ => break,
            }
            x += 1;
        }
        (width, taken, pen)
    }
}

/// A lower bound on the bytes any backend that moves the cursor with control characters, `CSI` sequences,
/// SGR sequences and reprinting must send for a run of frames, each drawn over the last, in any order: for
/// each frame, each changed cell's own bytes and the moves to each run of changed cells, each from the end
/// of another run or (the first) from where the last frame left the cursor: the end of its last run, as
/// moving it on would cost more (see [`least_moves`] and [`least_move`]; before the first frame, anywhere);
/// and the changes of colours and attributes the changed cells need, each priced at its shortest SGR
/// sequence, with the colours one frame leaves the terminal in carried into the next (see [`walks`]); or,
/// where greater, the moves and colour changes priced together (see [`Floor::bytes`]). A yardstick for the
/// benchmarks. It leaves out the terminal's own moves of text (scrolling, deleting a character), with which
/// this backend can beat it, and tricks that leave the terminal changed after locktop exits or that no
/// backend here uses: tab stops set anew, the saved cursor (`ESC 7`, `ESC 8`).
#[derive(Debug, Clone)]
pub struct Floor {
    /// The frames' cells and moves so far.
    bytes: usize,
    /// Where the frames so far can have left the cursor, each with the fewest bytes of moves that leave it
    /// there (`None`: anywhere, as before the first frame).
    places: Vec<(Option<(u16, u16)>, usize)>,
    /// The colours the terminal can be in after the frames so far, each with the fewest bytes of SGR that
    /// leave it there (`None`: any colours, as before the first frame, whose are not known).
    pens: Vec<(Option<Pen>, usize)>,
    /// Where the cursor and in what colours the terminal can be after the frames so far, each with the
    /// fewest bytes of moves and SGR together that leave it so (see [`joint_routes`]).
    joint: Vec<Joint>,
}

impl Default for Floor {
    fn default() -> Self {
        Self {
            bytes: 0,
            places: vec![(None, 0)],
            pens: vec![(None, 0)],
            joint: vec![(None, Colours::Any, 0)],
        }
    }
}

impl Floor {
    /// Counts the change from `prev` to `next`, drawn after the frames counted so far.
    pub fn frame(&mut self, prev: &Buffer, next: &Buffer) {
        // Each run's start and the cell after its end.
        let mut runs: Vec<Run> = Vec::new();
        let mut pens: Vec<Pen> = Vec::new();
        let mut stretches: Vec<Stretch> = Vec::new();
        for (x, y, cell) in prev.diff(next) {
            // A cell that only changed in what does not show (a blank's foreground colour) need not be sent.
            let was = &prev[(x, y)];
            if Known::new(was.symbol(), Pen::of(was)) == Known::new(cell.symbol(), Pen::of(cell)) {
                continue;
            }
            let end = after(x, y, cell);
            match runs.last_mut() {
                Some((_, last)) if *last == (x, y) => *last = end,
                _ => runs.push(((x, y), end)),
            }
            // A blank shows alike in many colours: leaving it out keeps the bound below any real writing.
            let pen = Pen::of(cell);
            if cell.symbol() != " " && !pens.iter().any(|p| same_look(*p, pen)) {
                pens.push(pen);
            }
            Stretch::extend(&mut stretches, (x, y), end, cell);
            self.bytes += cell.symbol().len();
        }
        if !runs.is_empty() {
            self.places = routes(&self.places, &runs);
            self.joint = joint_routes(&self.joint, &stretches);
        }
        self.pens = walks(&self.pens, &pens);
    }

    /// The bytes counted so far: the cells, and the greater of two bounds on the moves and colour changes,
    /// each below what any backend writes (so the greater is too). One prices the moves and the colours
    /// apart, each at its least; the other prices them together along every route through a frame's
    /// stretches, which catches a route whose cheapest moves need dear colour changes (past
    /// [`ROUTED_MAX`] stretches, the least route as far as [`least_tour`] finds it).
    pub fn bytes(&self) -> usize {
        let places = self.places.iter().map(|(_, b)| *b).min();
        let pens = self.pens.iter().map(|(_, b)| *b).min();
        let apart = places.unwrap_or(0) + pens.unwrap_or(0);
        let joint = self.joint.iter().map(|(.., b)| *b).min().unwrap_or(0);
        self.bytes + apart.max(joint)
    }
}

/// The floor of one frame drawn over another, from colours not known (see [`Floor`]).
pub fn floor_bytes(prev: &Buffer, next: &Buffer) -> usize {
    let mut floor = Floor::default();
    floor.frame(prev, next);
    floor.bytes()
}

/// Whether two pens write alike (the same SGR parameters, as the named and the indexed red).
fn same_look(a: Pen, b: Pen) -> bool {
    a == b || sgr(None, a) == sgr(None, b)
}

/// The fewest bytes of SGR that take the terminal from `from` to `to`. One sequence is never dearer than two
/// in a row (their parameters joined are one sequence, three bytes shorter), and [`sgr`] is the shortest
/// one.
fn sgr_cost(from: Option<Pen>, to: Pen) -> usize {
    match from {
        Some(from) if same_look(from, to) => 0,
        None => 0,
        from => sgr(from, to).len(),
    }
}

/// Frames with more colours than this are priced as though each change cost `ESC[m` (the shortest SGR
/// sequence) and left the colours free; the walks through them grow with 2 to the power of their count.
const WALKED_MAX: usize = 8;

/// The colours the terminal can end a frame in, with the fewest bytes of SGR that leave it there: from each
/// of `starts`, the cheapest walk through every one of `needed` (the changed cells' colours), for each
/// colour it can end on. A walk that ends on a colour no cell needs costs more than one that stops on the
/// last needed one (one sequence is never dearer than two), so none is kept.
fn walks(starts: &[(Option<Pen>, usize)], needed: &[Pen]) -> Vec<(Option<Pen>, usize)> {
    let k = needed.len();
    let least_start = starts.iter().map(|(_, b)| *b).min().unwrap_or(0);
    if k == 0 {
        return starts.to_vec();
    }
    if k > WALKED_MAX {
        return vec![(None, least_start + 3 * (k - 1))];
    }
    let between: Vec<Vec<usize>> = needed
        .iter()
        .map(|a| needed.iter().map(|b| sgr_cost(Some(*a), *b)).collect())
        .collect();
    let mut ends: Vec<usize> = vec![usize::MAX; k];
    for (start, base) in starts {
        let first: Vec<usize> = needed
            .iter()
            .map(|pen| base + sgr_cost(*start, *pen))
            .collect();
        let least = every_order(&first, |from, to| between[from][to]);
        for (end, least) in ends.iter_mut().zip(least) {
            *end = (*end).min(least);
        }
    }
    needed.iter().map(|p| Some(*p)).zip(ends).collect()
}

/// A run of changed cells: where it starts, and the cell after its end (column, row).
type Run = ((u16, u16), (u16, u16));

/// Where a frame's moves through `runs` can leave the cursor, each with the fewest bytes of moves that leave
/// it there (after the frames before, which left it at one of `starts`): for each run's end, a cheapest
/// assignment of a predecessor to each run (the end of another, or for one of them the cursor's start),
/// that end being the one left over. A route through the runs is one such assignment, so none is cheaper.
/// Past [`FORCED_MAX`] runs, every end costs the cheapest assignment with any end left over (see
/// [`least_moves`]).
fn routes(
    starts: &[(Option<(u16, u16)>, usize)],
    runs: &[Run],
) -> Vec<(Option<(u16, u16)>, usize)> {
    // The bytes of the cheapest start, and for each other what it costs beyond: only one run is reached from
    // the cursor, its move priced from the cheapest of where the cursor can be with what that costs beyond.
    let base = starts.iter().map(|(_, b)| *b).min().unwrap_or(0);
    let from_cursor = |start: (u16, u16)| {
        starts
            .iter()
            .map(|(at, b)| b - base + at.map_or(0, |at| least_move(at, start)))
            .min()
            .unwrap_or(0)
    };
    let n = runs.len();
    if n > FORCED_MAX {
        let least = base + least_moves(runs, &from_cursor);
        return runs.iter().map(|(_, end)| (Some(*end), least)).collect();
    }
    let (cursor, between) = run_moves(runs, &from_cursor);
    runs.iter()
        .enumerate()
        .map(|(last, (_, end))| (Some(*end), base + assigned(&cursor, &between, Some(last))))
        .collect()
}

/// Where the cursor (`None`: anywhere) and in what colours a run of frames can leave the terminal, with
/// the fewest bytes of moves and SGR that leave it so.
type Joint = (Option<(u16, u16)>, Colours, usize);

/// What the terminal's colours are known to be, for the floor: one pen, one of the pens that show a blank
/// as this one does (after writing blanks), or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colours {
    Any,
    Exact(Pen),
    Showing(Pen),
}

/// The fewest bytes of SGR from colours known as `from` to colours that are `to`: a change from one pen to
/// another costs at least `ESC[m`, and from one the other shows a blank alike, nothing.
fn recolour(from: Colours, to: Colours) -> usize {
    match (from, to) {
        (Colours::Any, _) | (_, Colours::Any) => 0,
        (Colours::Exact(a), Colours::Exact(b)) => sgr_cost(Some(a), b),
        (Colours::Exact(p) | Colours::Showing(p), Colours::Showing(blank))
        | (Colours::Showing(blank), Colours::Exact(p)) => {
            if p.on_blank() == blank.on_blank() {
                0
            } else {
                3
            }
        }
    }
}

/// A run of changed cells side by side on a row whose cells that are not blank are in one colouring: where
/// it starts, the cell after its end, the colours its first cell needs and those its writing leaves.
#[derive(Debug, Clone, Copy)]
struct Stretch {
    start: (u16, u16),
    end: (u16, u16),
    first: Colours,
    last: Colours,
}

impl Stretch {
    /// Adds the changed `cell` at `at`, whose cell after is `end`, to the last of `stretches` or a new one.
    /// Blanks after a cell that is not blank can be written in its colours, or in others that show them
    /// alike, which cost a change that no later change saves: the stretch leaves the colours of its cells
    /// that are not blank, or, of blanks only, colours that show its last blank.
    fn extend(stretches: &mut Vec<Stretch>, at: (u16, u16), end: (u16, u16), cell: &Cell) {
        let pen = Pen::of(cell);
        let colours = if cell.symbol() == " " {
            Colours::Showing(pen.on_blank())
        } else {
            Colours::Exact(pen)
        };
        if let Some(last) = stretches.last_mut().filter(|s| s.end == at) {
            let joins = match (last.last, colours) {
                (Colours::Exact(a), Colours::Exact(b)) => same_look(a, b),
                _ => true,
            };
            if joins {
                last.end = end;
                if let Colours::Exact(_) = colours {
                    // The first cell not blank is what the stretch needs first (blanks before it can be
                    // written in its colours), and what it leaves.
                    if !matches!(last.first, Colours::Exact(_)) {
                        last.first = colours;
                    }
                    last.last = colours;
                } else if !matches!(last.last, Colours::Exact(_)) {
                    last.last = colours;
                }
                return;
            }
        }
        stretches.push(Stretch {
            start: at,
            end,
            first: colours,
            last: colours,
        });
    }
}

/// Where the cursor and in what colours a frame's stretches (see [`Stretch`]) can leave the terminal, each
/// with the fewest bytes of moves and SGR together that leave it so, after the frames before left it at one
/// of `starts`: every order of the stretches, up to [`ROUTED_MAX`], each reached from the one before at the
/// move from its end and the change from the colours it leaves to those it needs first; past that, the
/// least route by branch and bound (see [`least_tour`]) or, for each end, as [`routes`] with those prices
/// where that is more.
fn joint_routes(starts: &[Joint], stretches: &[Stretch]) -> Vec<Joint> {
    let base = starts.iter().map(|(.., b)| *b).min().unwrap_or(0);
    let n = stretches.len();
    let cursor: Vec<i64> = stretches
        .iter()
        .map(|s| {
            starts
                .iter()
                .map(|(at, colours, b)| {
                    b - base
                        + at.map_or(0, |at| least_move(at, s.start))
                        + recolour(*colours, s.first)
                })
                .min()
                .unwrap_or(0) as i64
        })
        .collect();
    let between = |from: usize, to: usize| {
        if from == to {
            NEVER
        } else {
            let (a, b) = (&stretches[from], &stretches[to]);
            (least_move(a.end, b.start) + recolour(a.last, b.first)) as i64
        }
    };
    let ends = |least: usize| {
        stretches
            .iter()
            .map(|s| (Some(s.end), s.last, base + least))
            .collect()
    };
    if n > ASSIGNED_MAX {
        // Each stretch's cheapest predecessor alone.
        let least: i64 = (0..n)
            .map(|to| {
                (0..n)
                    .map(|from| between(from, to))
                    .min()
                    .unwrap_or(0)
                    .min(cursor[to])
            })
            .sum();
        return ends(usize::try_from(least).unwrap_or(0));
    }
    let matrix: Vec<Vec<i64>> = (0..n)
        .map(|from| (0..n).map(|to| between(from, to)).collect())
        .collect();
    if n <= ROUTED_MAX {
        let first: Vec<usize> = cursor.iter().map(|c| *c as usize).collect();
        let least = every_order(&first, |from, to| matrix[from][to] as usize);
        return stretches
            .iter()
            .zip(least)
            .map(|(s, least)| (Some(s.end), s.last, base + least))
            .collect();
    }
    let assigned = |last: Option<usize>| assigned(&cursor, &matrix, last);
    // A route is one of the assignments (loops allowed), so the least route is no less: the tighter bound.
    let least = if n <= TOURED_MAX {
        least_tour(&cursor, &matrix, BRANCHED_MAX)
    } else {
        assigned(None)
    };
    if n > FORCED_MAX {
        return ends(least);
    }
    // A route that ends at a stretch is a route: it costs at least the least of all.
    stretches
        .iter()
        .enumerate()
        .map(|(last, s)| (Some(s.end), s.last, base + assigned(Some(last)).max(least)))
        .collect()
}

/// Stretches up to which [`joint_routes`] weighs every order of them (the orders grow with 2 to the power
/// of the stretches); past it, it looks for the least route by branch and bound.
const ROUTED_MAX: usize = 12;

/// Stretches up to which [`joint_routes`] looks for the least route by branch and bound (see
/// [`least_tour`]); past it, one assignment (the time of each grows with the cube of the stretches).
const TOURED_MAX: usize = 100;

/// Runs past which [`routes`] prices one assignment, not one for each end (their time grows with the fourth
/// power of the runs).
const FORCED_MAX: usize = 40;

/// A cost no assignment takes when it can help it.
const NEVER: i64 = u32::MAX as i64;

/// The fewest bytes of moves that can take the cursor to the start of each of `runs` (start, and the cell
/// after the end) when each run is reached from the end of another, or (one of them) from the cursor, which
/// costs `from_cursor(start)`. A cheapest assignment of a predecessor to each run, each end used once at
/// most, any one left over. Past [`ASSIGNED_MAX`] runs (a whole screen's redraw), each run's cheapest
/// predecessor alone, the one that gains most by being reached from the cursor taken as the first.
fn least_moves(runs: &[Run], from_cursor: &dyn Fn((u16, u16)) -> usize) -> usize {
    let n = runs.len();
    if n > ASSIGNED_MAX {
        let moves: Vec<(usize, usize)> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let others = runs.iter().enumerate().filter(|(j, _)| *j != i);
                let least = others
                    .map(|(_, (_, end))| least_move(*end, run.0))
                    .min()
                    .unwrap_or(0);
                (least, from_cursor(run.0))
            })
            .collect();
        let gain = moves.iter().map(|(l, c)| l.saturating_sub(*c)).max();
        return moves.iter().map(|(l, _)| l).sum::<usize>() - gain.unwrap_or(0);
    }
    let (cursor, between) = run_moves(runs, from_cursor);
    assigned(&cursor, &between, None)
}

/// The rows of [`assigned`] for `runs`: the move from the cursor to each run's start (`from_cursor`), and
/// from each run's end to each other's start ([`NEVER`] to its own).
fn run_moves(runs: &[Run], from_cursor: &dyn Fn((u16, u16)) -> usize) -> (Vec<i64>, Vec<Vec<i64>>) {
    let cursor = runs
        .iter()
        .map(|(start, _)| from_cursor(*start) as i64)
        .collect();
    let between = runs
        .iter()
        .enumerate()
        .map(|(from, (_, end))| {
            runs.iter()
                .enumerate()
                .map(|(to, (start, _))| {
                    if from == to {
                        NEVER
                    } else {
                        least_move(*end, *start) as i64
                    }
                })
                .collect()
        })
        .collect();
    (cursor, between)
}

/// The cheapest assignment of a predecessor to each of `n` runs (`cursor.len()`): the end of another
/// (`between[from][to]`, [`NEVER`] for itself) or, for one of them, where the cursor is (`cursor[to]`); the
/// end left over is `last`, or any (and then, as the bound allows, the cursor may be left over too, all the
/// runs following each other in loops). Rows: the runs' ends and the cursor; columns: the runs, and one
/// that takes the end left over.
fn assigned(cursor: &[i64], between: &[Vec<i64>], last: Option<usize>) -> usize {
    let n = cursor.len();
    usize::try_from(assignment(n + 1, following(cursor, between, last))).unwrap_or(0)
}

/// The rows and columns of [`assigned`]: what it costs to reach run `to` from the end of run `from`, or from
/// the cursor (row `cursor.len()`), or to leave `from`'s end over (column `cursor.len()`: only `last`'s, or
/// any).
fn following<'a>(
    cursor: &'a [i64],
    between: &'a [Vec<i64>],
    last: Option<usize>,
) -> impl Fn(usize, usize) -> i64 + 'a {
    let n = cursor.len();
    move |from, to| match (from, to) {
        (from, to) if to == n => match last {
            Some(last) if from != last => NEVER,
            _ => 0,
        },
        (from, to) if from == n => cursor[to],
        (from, to) => between[from][to],
    }
}

/// For each of `first.len()` places, the least cost of visiting every place once and ending there,
/// starting at any place `i` for `first[i]` and going from `a` to `b` for `step(a, b)`: every order weighed
/// (Held and Karp; the time grows with 2 to the power of the places).
fn every_order(first: &[usize], step: impl Fn(usize, usize) -> usize) -> Vec<usize> {
    let n = first.len();
    let full = (1_usize << n) - 1;
    // The least cost of having visited the places in `mask`, the last being `last`.
    let mut least = vec![vec![usize::MAX; n]; full + 1];
    for (place, cost) in first.iter().enumerate() {
        least[1 << place][place] = *cost;
    }
    for mask in 1..=full {
        for last in (0..n).filter(|l| mask & (1 << l) != 0) {
            let here = least[mask][last];
            if here == usize::MAX {
                continue;
            }
            for next in (0..n).filter(|t| mask & (1 << t) == 0) {
                let to = &mut least[mask | 1 << next][next];
                *to = (*to).min(here + step(last, next));
            }
        }
    }
    least.swap_remove(full)
}

/// Runs past which [`least_moves`] does not solve the assignment (its time grows with the cube of the runs).
const ASSIGNED_MAX: usize = 400;

/// The least total of `cost(row, column)` over the ways of giving each of `m` rows its own column (the
/// Hungarian method, with potentials: O(m³)).
fn assignment(m: usize, cost: impl Fn(usize, usize) -> i64) -> i64 {
    assign(m, cost).0
}

/// The least total of `cost(row, column)` over the ways of giving each of `m` rows its own column, and each
/// row's column in one such way (see [`assignment`]).
fn assign(m: usize, cost: impl Fn(usize, usize) -> i64) -> (i64, Vec<usize>) {
    // 1-based, with row and column 0 as the method's sentinels.
    let (mut u, mut v) = (vec![0_i64; m + 1], vec![0_i64; m + 1]);
    let (mut owner, mut way) = (vec![0_usize; m + 1], vec![0_usize; m + 1]);
    for row in 1..=m {
        owner[0] = row;
        let mut column = 0;
        let mut least = vec![i64::MAX; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[column] = true;
            let (r, mut delta, mut next) = (owner[column], i64::MAX, 0);
            for j in 1..=m {
                if !used[j] {
                    let reduced = cost(r - 1, j - 1) - u[r] - v[j];
                    if reduced < least[j] {
                        least[j] = reduced;
                        way[j] = column;
                    }
                    if least[j] < delta {
                        delta = least[j];
                        next = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    least[j] -= delta;
                }
            }
            column = next;
            if owner[column] == 0 {
                break;
            }
        }
        while column != 0 {
            let previous = way[column];
            owner[column] = owner[previous];
            column = previous;
        }
    }
    let mut columns = vec![0; m];
    for j in 1..=m {
        columns[owner[j] - 1] = j - 1;
    }
    let total = (1..=m).map(|j| cost(owner[j] - 1, j - 1)).sum();
    (total, columns)
}

/// Assignments [`least_tour`] solves for [`joint_routes`] before it settles for the least bound of its
/// branches still open. The demo's pile-up has frames of 30 to 90 stretches; most of those under 40 are
/// settled exactly within this.
const BRANCHED_MAX: usize = 2000;

/// A lower bound on the least cost of visiting each of `cursor.len()` places once, from the cursor (`cursor[to]`
/// to the first), going from one to the next for `between[from][to]`, ending at any: the least route itself
/// when it is found within `budget` assignments, else the least bound of the branches still open.
/// Branch and bound over assignments (Carpaneto and Toth): the places and the cursor are rows and columns,
/// every place's end may go back to the cursor for nothing, and a cheapest assignment is a route when its
/// pairs close one loop. When they close more, the loop with the fewest pairs not yet kept is broken: each
/// branch bars one of those pairs and keeps those before it, so every route is in exactly one branch, and no
/// branch's assignment is cheaper than the one it was split from.
fn least_tour(cursor: &[i64], between: &[Vec<i64>], budget: usize) -> usize {
    let n = cursor.len();
    let m = n + 1;
    let base = following(cursor, between, None);
    // Kept pairs and barred pairs, and the cheapest assignment that keeps and bars them.
    let solve = |kept: &[(usize, usize)], barred: &[(usize, usize)]| {
        let mut cost: Vec<Vec<i64>> = (0..m)
            .map(|f| (0..m).map(|t| base(f, t)).collect())
            .collect();
        for &(from, to) in barred {
            cost[from][to] = NEVER;
        }
        for &(from, to) in kept {
            for (k, row) in cost.iter_mut().enumerate() {
                if k != from {
                    row[to] = NEVER;
                }
            }
            for (k, c) in cost[from].iter_mut().enumerate() {
                if k != to {
                    *c = NEVER;
                }
            }
        }
        assign(m, |f, t| cost[f][t])
    };
    let mut branches: Vec<Branch> = Vec::new();
    let mut open = std::collections::BinaryHeap::new();
    // A route leaves the cursor: it is not left over.
    let cursor_used = vec![(n, n)];
    let (root, columns) = solve(&[], &cursor_used);
    branches.push(Branch {
        barred: cursor_used,
        columns,
        ..Branch::default()
    });
    open.push(std::cmp::Reverse((root, 0)));
    let mut solved = 1;
    while let Some(std::cmp::Reverse((bound, id))) = open.pop() {
        let Branch {
            kept,
            barred,
            columns,
        } = std::mem::take(&mut branches[id]);
        let loops = loops_of(&columns);
        if loops.len() == 1 || solved >= budget {
            return usize::try_from(bound).unwrap_or(0);
        }
        let free = |l: &Vec<(usize, usize)>| -> Vec<(usize, usize)> {
            l.iter().filter(|p| !kept.contains(p)).copied().collect()
        };
        let broken = loops
            .iter()
            .map(free)
            .min_by_key(Vec::len)
            .unwrap_or_default();
        for (i, pair) in broken.iter().enumerate() {
            let kept: Vec<(usize, usize)> = kept.iter().chain(&broken[..i]).copied().collect();
            let barred: Vec<(usize, usize)> = barred.iter().chain([pair]).copied().collect();
            let (total, columns) = solve(&kept, &barred);
            solved += 1;
            if total < NEVER {
                open.push(std::cmp::Reverse((total, branches.len())));
                branches.push(Branch {
                    kept,
                    barred,
                    columns,
                });
            }
        }
    }
    usize::try_from(root).unwrap_or(0)
}

/// A branch of [`least_tour`]'s search: the pairs that every route in it keeps and those it bars, and the
/// cheapest assignment that keeps and bars them (each row's column).
#[derive(Debug, Default)]
struct Branch {
    kept: Vec<(usize, usize)>,
    barred: Vec<(usize, usize)>,
    columns: Vec<usize>,
}

/// The loops an assignment's pairs (each row's column, rows and columns the same places) close, each as its
/// pairs.
fn loops_of(columns: &[usize]) -> Vec<Vec<(usize, usize)>> {
    let mut seen = vec![false; columns.len()];
    let mut loops = Vec::new();
    for start in 0..columns.len() {
        let mut pairs = Vec::new();
        let mut at = start;
        while !seen[at] {
            seen[at] = true;
            pairs.push((at, columns[at]));
            at = columns[at];
        }
        if !pairs.is_empty() {
            loops.push(pairs);
        }
    }
    loops
}

/// The fewest bytes that can move the cursor from `from` to `to` (columns and rows, 0-based) with the moves
/// of a backend that leaves the terminal's tab stops as they are (every eight columns) and keeps no saved
/// cursor: down by line feeds, `ESC[nB` or `ESC[rowd`; up by `ESC M` (two bytes a row), `ESC[nA` or
/// `ESC[rowd`; along the row by reprinting cells (a byte each, at best), tabs, backspaces, `ESC[nC`,
/// `ESC[nD`, `ESC[colG`, or a carriage return and then to the right; to the next row's first column by a
/// wrap (a byte at best); or anywhere by `ESC[row;colH`.
pub fn least_move(from: (u16, u16), to: (u16, u16)) -> usize {
    if from == to {
        return 0;
    }
    let digits = |n: u16| n.to_string().len();
    let csi = |n: u16| csi(n, b'A').len();
    // To the right on the row: reprinting, `ESC[nC`, `ESC[colG`, or tabs to the last stop before `x` and the
    // rest of the way by reprinting or `ESC[nC`.
    let right = |cx: u16, x: u16| {
        let (gap, stop) = (x - cx, x / 8 * 8);
        let tabs = if stop > cx {
            let rest = x - stop;
            usize::from(stop / 8 - cx / 8)
                + if rest == 0 {
                    0
                } else {
                    usize::from(rest).min(csi(rest))
                }
        } else {
            usize::MAX
        };
        usize::from(gap).min(csi(gap)).min(csi(x + 1)).min(tabs)
    };
    let across = match to.0.cmp(&from.0) {
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => right(from.0, to.0),
        std::cmp::Ordering::Less => {
            let back = from.0 - to.0;
            let home = 1 + if to.0 == 0 { 0 } else { right(0, to.0) };
            usize::from(back)
                .min(csi(back))
                .min(csi(to.0 + 1))
                .min(home)
        }
    };
    let row = csi(to.1 + 1);
    let down = match to.1.cmp(&from.1) {
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => usize::from(to.1 - from.1).min(csi(to.1 - from.1)).min(row),
        std::cmp::Ordering::Less => (2 * usize::from(from.1 - to.1))
            .min(csi(from.1 - to.1))
            .min(row),
    };
    let absolute = 3
        + if to.1 > 0 { digits(to.1 + 1) } else { 0 }
        + if to.0 > 0 { 1 + digits(to.0 + 1) } else { 0 };
    let wrap = if to.0 == 0 && from.1.checked_add(1) == Some(to.1) {
        1
    } else {
        usize::MAX
    };
    (down + across).min(absolute).min(wrap)
}

/// `ESC [ n letter`, with `n` left out when it is 1.
fn csi(n: u16, letter: u8) -> Vec<u8> {
    let mut out = b"\x1b[".to_vec();
    if n != 1 {
        out.extend(n.to_string().bytes());
    }
    out.push(letter);
    out
}

/// The absolute position, 0-based in, 1-based out (`ESC[row;colH`; a 1 left out, which ECMA-48 reads as the
/// default: `ESC[rowH` for the first column, `ESC[;colH` on the first row, `ESC[H` for both).
fn cup(x: u16, y: u16) -> Vec<u8> {
    let mut out = b"\x1b[".to_vec();
    if y > 0 {
        out.extend((y + 1).to_string().bytes());
    }
    if x > 0 {
        out.extend(format!(";{}", x + 1).bytes());
    }
    out.push(b'H');
    out
}

/// The column on the cursor's row (`ESC[colG`).
fn cha(x: u16) -> Vec<u8> {
    csi(x + 1, b'G')
}

/// The SGR parameters of a colour as foreground (`base` 30) or background (`base` 40).
fn color(c: Color, base: u8) -> String {
    let classic = |n: u8| {
        if n < 8 {
            (base + n).to_string()
        } else {
            (base + 60 + n - 8).to_string()
        }
    };
    match c {
        Color::Reset => (base + 9).to_string(),
        Color::Black => classic(0),
        Color::Red => classic(1),
        Color::Green => classic(2),
        Color::Yellow => classic(3),
        Color::Blue => classic(4),
        Color::Magenta => classic(5),
        Color::Cyan => classic(6),
        Color::Gray => classic(7),
        Color::DarkGray => classic(8),
        Color::LightRed => classic(9),
        Color::LightGreen => classic(10),
        Color::LightYellow => classic(11),
        Color::LightBlue => classic(12),
        Color::LightMagenta => classic(13),
        Color::LightCyan => classic(14),
        Color::White => classic(15),
        Color::Indexed(n) if n < 16 => classic(n),
        Color::Indexed(n) => format!("{}8;5;{n}", base / 10),
        Color::Rgb(r, g, b) => format!("{}8;2;{r};{g};{b}", base / 10),
    }
}

/// The attributes and their SGR codes on, and off.
const ATTRIBUTES: [(Modifier, &str, &str); 9] = [
    (Modifier::BOLD, "1", "22"),
    (Modifier::DIM, "2", "22"),
    (Modifier::ITALIC, "3", "23"),
    (Modifier::UNDERLINED, "4", "24"),
    (Modifier::SLOW_BLINK, "5", "25"),
    (Modifier::RAPID_BLINK, "6", "25"),
    (Modifier::REVERSED, "7", "27"),
    (Modifier::HIDDEN, "8", "28"),
    (Modifier::CROSSED_OUT, "9", "29"),
];

/// The one SGR sequence from `from` (unknown: `None`) to `to`: only what differs, or a reset and what is
/// wanted, whichever is shorter. The reset is an empty first parameter, which ECMA-48 reads as 0: `ESC[m`,
/// `ESC[;1;31m`.
fn sgr(from: Option<Pen>, to: Pen) -> Vec<u8> {
    let whole = {
        let mut params = vec![String::new()];
        params.extend(
            ATTRIBUTES
                .iter()
                .filter(|(m, ..)| to.modifier.contains(*m))
                .map(|(_, on, _)| (*on).to_owned()),
        );
        if to.fg != Color::Reset {
            params.push(color(to.fg, 30));
        }
        if to.bg != Color::Reset {
            params.push(color(to.bg, 40));
        }
        params
    };
    let params = match from {
        None => whole,
        Some(from) => {
            let mut params: Vec<String> = Vec::new();
            let removed = from.modifier - to.modifier;
            let mut off: Vec<&str> = ATTRIBUTES
                .iter()
                .filter(|(m, ..)| removed.contains(*m))
                .map(|(.., off)| *off)
                .collect();
            off.dedup();
            params.extend(off.iter().map(|s| (*s).to_owned()));
            // `22` ends bold and dim both, `25` both blinks: one that stays is set again.
            params.extend(
                ATTRIBUTES
                    .iter()
                    .filter(|(m, _, m_off)| {
                        to.modifier.contains(*m)
                            && (!from.modifier.contains(*m) || off.contains(m_off))
                    })
                    .map(|(_, on, _)| (*on).to_owned()),
            );
            if from.fg != to.fg {
                params.push(color(to.fg, 30));
            }
            if from.bg != to.bg {
                params.push(color(to.bg, 40));
            }
            let diff_len: usize = params.iter().map(|p| p.len() + 1).sum();
            let whole_len: usize = whole.iter().map(|p| p.len() + 1).sum();
            if whole_len < diff_len { whole } else { params }
        }
    };
    format!("\x1b[{}m", params.join(";")).into_bytes()
}

impl<W: Write> Backend for Lean<W> {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        if !self.fixed {
            let size = Backend::size(self)?;
            self.track.resized(size);
        }
        // A cell the terminal already shows as wanted (ratatui's diff also has cells whose change does not
        // show, such as a blank's foreground colour) is left alone.
        let track = &self.track;
        let mut cells: Vec<(u16, u16, Cell)> = content
            .filter(|(x, y, c)| {
                let wanted = Known::new(c.symbol(), Pen::of(c));
                let shown = track.index(*x, *y).and_then(|i| track.shadow[i]);
                wanted.len == 0 || shown != Some(wanted)
            })
            .map(|(x, y, c)| (x, y, c.clone()))
            .collect();
        let mut shifts = Vec::new();
        self.track.shift_lines(&mut shifts, &mut cells);
        self.track.shift_rows(&mut shifts, &mut cells);
        self.out.write_all(&shifts)?;
        let in_rows: Vec<&(u16, u16, Cell)> = cells.iter().collect();
        let groups = groups_of(&in_rows);
        let bytes = if groups.len() > 1 || (cells.len() > 1 && cells.len() <= NEAREST_MAX) {
            // The same cells grouped by colours (in the order the colours first come), which can save an SGR
            // sequence per run where two colours alternate along the rows (a countdown and a sparkline).
            let forwards: Vec<(usize, usize)> = (0..groups.len()).map(|g| (g, 0)).collect();
            let by_pen = in_order(&groups, &forwards);
            // Each order priced on a copy of the state; the shortest is written.
            let mut orders = vec![in_rows.clone(), by_pen];
            if cells.len() <= NEAREST_MAX {
                orders.push(self.track.nearest_first(&in_rows));
                orders.extend(self.track.route(&groups));
                let places = self.track.by_place(&groups);
                orders.extend(places.and_then(|places| self.track.route(&places)));
            }
            let (track, bytes) = orders
                .iter()
                .map(|order| {
                    let mut track = self.track.clone();
                    let bytes = track.write_all(order);
                    (track, bytes)
                })
                .min_by_key(|(_, bytes)| bytes.len())
                .expect("an order");
            self.track = track;
            bytes
        } else {
            self.track.write_all(&in_rows)
        };
        self.out.write_all(&bytes)
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        if self.hidden != Some(true) {
            self.out.write_all(b"\x1b[?25l")?;
            self.hidden = Some(true);
        }
        Ok(())
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        if self.hidden != Some(false) {
            self.out.write_all(b"\x1b[?25h")?;
            self.hidden = Some(false);
        }
        Ok(())
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        if let Some((x, y)) = self.track.cursor {
            return Ok(Position { x, y });
        }
        self.out.flush()?;
        crossterm::cursor::position()
            .map(|(x, y)| Position { x, y })
            .map_err(io::Error::other)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        let Position { x, y } = position.into();
        let moves = self.track.moves(x, y);
        self.out.write_all(&moves)?;
        self.track.cursor = Some((x, y));
        Ok(())
    }

    fn clear(&mut self) -> io::Result<()> {
        self.clear_region(ClearType::All)
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        if !self.fixed {
            let size = Backend::size(self)?;
            self.track.resized(size);
        }
        // Erasing fills with the current background: the default one first.
        if self.track.pen != Some(Pen::default()) {
            self.out.write_all(b"\x1b[m")?;
            self.track.pen = Some(Pen::default());
        }
        let (code, whole) = match clear_type {
            ClearType::All => ("2J", true),
            ClearType::AfterCursor => ("J", false),
            ClearType::BeforeCursor => ("1J", false),
            ClearType::CurrentLine => ("2K", false),
            ClearType::UntilNewLine => ("K", false),
        };
        write!(self.out, "\x1b[{code}")?;
        // Erasing does not move the cursor.
        self.track.forget(whole);
        Ok(())
    }

    fn size(&self) -> io::Result<Size> {
        match self.track.size {
            Some(size) if self.fixed => Ok(size),
            _ => {
                let (width, height) = crossterm::terminal::size()?;
                Ok(Size { width, height })
            }
        }
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        let crossterm::terminal::WindowSize {
            columns,
            rows,
            width,
            height,
        } = crossterm::terminal::window_size()?;
        Ok(WindowSize {
            columns_rows: Size {
                width: columns,
                height: rows,
            },
            pixels: Size { width, height },
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ratatui::layout::Rect;
    use ratatui::style::Style;

    const W: u16 = 40;
    const H: u16 = 5;

    fn vt_color(c: Color) -> vt100::Color {
        match c {
            Color::Reset => vt100::Color::Default,
            Color::Indexed(n) => vt100::Color::Idx(n),
            Color::Rgb(r, g, b) => vt100::Color::Rgb(r, g, b),
            Color::Red => vt100::Color::Idx(1),
            Color::Yellow => vt100::Color::Idx(3),
            Color::LightGreen => vt100::Color::Idx(10),
            Color::DarkGray => vt100::Color::Idx(8),
            other => panic!("not generated: {other:?}"),
        }
    }

    /// Every cell of `buf` as the terminal shows it after `bytes`.
    fn assert_shows(parser: &vt100::Parser, buf: &Buffer) {
        assert_shows_size(parser, buf, W, H);
    }

    fn assert_shows_size(parser: &vt100::Parser, buf: &Buffer, w: u16, h: u16) {
        let screen = parser.screen();
        for y in 0..h {
            for x in 0..w {
                let want = &buf[(x, y)];
                let have = screen.cell(y, x).expect("cell");
                if have.is_wide_continuation() {
                    continue;
                }
                let symbol = if have.contents().is_empty() {
                    " "
                } else {
                    have.contents()
                };
                let at = format!("at ({x}, {y})");
                assert_eq!(symbol, want.symbol(), "{at}");
                let m = want.modifier;
                if symbol == " " && !m.intersects(SHOWN_ON_BLANK) {
                    // A blank shows its background only, and nothing that shows on a blank.
                    assert_eq!(have.bgcolor(), vt_color(want.bg), "{at}");
                    assert!(!have.underline() && !have.inverse(), "{at}");
                    continue;
                }
                assert_eq!(have.fgcolor(), vt_color(want.fg), "{at}");
                assert_eq!(have.bgcolor(), vt_color(want.bg), "{at}");
                assert_eq!(have.bold(), m.contains(Modifier::BOLD), "bold {at}");
                assert_eq!(have.dim(), m.contains(Modifier::DIM), "dim {at}");
                assert_eq!(have.italic(), m.contains(Modifier::ITALIC), "italic {at}");
                assert_eq!(
                    have.underline(),
                    m.contains(Modifier::UNDERLINED),
                    "underline {at}"
                );
                assert_eq!(
                    have.inverse(),
                    m.contains(Modifier::REVERSED),
                    "reverse {at}"
                );
            }
        }
    }

    fn style() -> impl Strategy<Value = Style> {
        let colors = prop_oneof![
            Just(Color::Reset),
            Just(Color::Red),
            Just(Color::LightGreen),
            Just(Color::DarkGray),
            Just(Color::Indexed(244)),
            Just(Color::Rgb(1, 2, 3)),
        ];
        let modifiers = prop_oneof![
            Just(Modifier::empty()),
            Just(Modifier::BOLD),
            Just(Modifier::DIM),
            // (Not bold and dim at once: vt100, like many terminals, keeps one intensity.)
            Just(Modifier::BOLD | Modifier::UNDERLINED),
            Just(Modifier::REVERSED | Modifier::UNDERLINED),
            Just(Modifier::ITALIC),
        ];
        (colors.clone(), colors, modifiers)
            .prop_map(|(fg, bg, m)| Style::default().fg(fg).bg(bg).add_modifier(m))
    }

    /// A frame: for each row, pieces of text with a style each; mostly like the last frame, as a dashboard's.
    fn frames() -> impl Strategy<Value = Vec<Vec<Vec<(String, Style)>>>> {
        let piece = (
            prop_oneof![
                Just(" ".to_owned()),
                Just("ab".to_owned()),
                Just("12s".to_owned()),
                Just("─".to_owned()),
                Just("界".to_owned()),
                Just("x".to_owned()),
                // A long line that the next frame may shorten: blanks to erase.
                Just("a long line of text that ends".to_owned()),
            ],
            style(),
        );
        let row = proptest::collection::vec(piece, 0..8);
        let frame = proptest::collection::vec(row, H as usize);
        proptest::collection::vec(frame, 1..6)
    }

    fn buffer(frame: &[Vec<(String, Style)>]) -> Buffer {
        let mut buf = Buffer::empty(Rect::new(0, 0, W, H));
        for (y, row) in frame.iter().enumerate() {
            let mut x = 0;
            for (text, style) in row {
                if x >= W {
                    break;
                }
                let (next, _) = buf.set_stringn(x, y as u16, text, usize::from(W - x), *style);
                x = next;
            }
        }
        buf
    }

    proptest! {
        #[test]
        fn what_the_terminal_shows_is_every_frame_exactly(frames in frames(), reveal in 0..3_u8) {
            let mut lean = Lean::with_size(Vec::new(), W, H);
            if reveal % 2 == 0 {
                // Known to be blank (as the dashboard starts), or not known at all.
                lean.clear().expect("clear");
            }
            let mut parser = vt100::Parser::new(H, W, 0);
            let mut shown = Buffer::empty(Rect::new(0, 0, W, H));
            for (i, frame) in frames.iter().enumerate() {
                let next = buffer(frame);
                lean.draw(shown.diff(&next).into_iter()).expect("draw");
                if i as u8 == reveal {
                    // A cursor shown and placed between frames must not confuse the tracking.
                    lean.show_cursor().expect("show");
                    lean.set_cursor_position(Position { x: 3, y: 1 }).expect("move");
                    lean.hide_cursor().expect("hide");
                }
                let bytes = std::mem::take(&mut lean.out);
                parser.process(&bytes);
                eprintln!("frame {i}: {:?}", String::from_utf8_lossy(&bytes));
                assert_shows(&parser, &next);
                shown = next;
            }
        }
    }

    proptest! {
        #[test]
        fn rows_that_move_left_like_a_sparkline_show_exactly(
            start in 0..30_u16,
            samples in proptest::collection::vec((0..3_usize, style()), 1..40),
        ) {
            // A bordered row whose sparkline, from `start` to the border, takes one sample per frame.
            let bars = ["·", "█", "▄"];
            let mut lean = Lean::with_size(Vec::new(), W, 2);
            lean.clear().expect("clear");
            let mut parser = vt100::Parser::new(2, W, 0);
            let area = Rect::new(0, 0, W, 2);
            let mut shown = Buffer::empty(area);
            let mut line: Vec<(usize, Style)> = Vec::new();
            for sample in samples {
                line.push(sample);
                let mut next = Buffer::empty(area);
                next.set_string(0, 0, "row", Style::default());
                next.set_string(W - 1, 0, "│", Style::default().fg(Color::DarkGray));
                let room = usize::from(W - 1 - start);
                for (i, (bar, style)) in line.iter().rev().take(room).rev().enumerate() {
                    next.set_string(start + i as u16 + (room - line.len().min(room)) as u16, 0, bars[*bar], *style);
                }
                next.set_string(0, 1, "below", Style::default());
                lean.draw(shown.diff(&next).into_iter()).expect("draw");
                let bytes = std::mem::take(&mut lean.out);
                parser.process(&bytes);
                assert_shows_size(&parser, &next, W, 2);
                shown = next;
            }
        }
    }

    proptest! {
        #[test]
        fn lines_that_go_and_come_in_a_pane_show_exactly(
            lines in proptest::collection::vec((0..6_usize, style()), 3..12),
            edits in proptest::collection::vec((any::<bool>(), 0..12_usize, 0..6_usize), 1..8),
        ) {
            // A bordered pane of up to 12 lines where a line goes or comes each frame, the rest moving.
            let texts = ["pid 1 holds", "└─ pid 2 waits 3s on row a/B", "└─ pid 3 waits", "x", "", "pid 4 (idle) holds"];
            let mut lean = Lean::with_size(Vec::new(), W, 16);
            lean.clear().expect("clear");
            let mut parser = vt100::Parser::new(16, W, 0);
            let area = Rect::new(0, 0, W, 16);
            let mut shown = Buffer::empty(area);
            let mut pane = lines;
            for (insert, at, text) in std::iter::once((false, usize::MAX, 0)).chain(edits) {
                if at != usize::MAX {
                    let at = at.min(pane.len());
                    if insert || pane.len() < 2 {
                        pane.insert(at, (text, Style::default()));
                    } else {
                        pane.remove(at.min(pane.len() - 1));
                    }
                    pane.truncate(12);
                    // Now and then a line also changes as the others move (a lock wait's seconds ticking).
                    let len = pane.len();
                    if at % 3 == 0 && let Some(line) = pane.get_mut((at / 3) % len) {
                        line.0 = (line.0 + 1) % texts.len();
                    }
                }
                let mut next = Buffer::empty(area);
                next.set_string(0, 0, "header", Style::default());
                for (i, (t, style)) in pane.iter().enumerate() {
                    let y = 2 + i as u16;
                    next.set_string(0, y, "│", Style::default());
                    next.set_style(Rect::new(1, y, W - 2, 1), *style);
                    next.set_stringn(1, y, texts[*t], usize::from(W - 2), *style);
                    next.set_string(W - 1, y, "│", Style::default());
                }
                next.set_string(0, 15, "footer", Style::default());
                lean.draw(shown.diff(&next).into_iter()).expect("draw");
                let bytes = std::mem::take(&mut lean.out);
                parser.process(&bytes);
                assert_shows_size(&parser, &next, W, 16);
                shown = next;
            }
        }
    }

    #[test]
    fn a_line_gone_from_a_pane_moves_the_lines_below_it_up() {
        let a = pane(&[
            "pid 1 dead-1-owner (idle in transaction)  holds",
            "└─ pid 2 dead-1-rival1 waits 1s on row dead-1/MSFT (entry_locks, transactionid), ShareLock",
            "pid 3 scheduler-a (idle)  holds",
            "└─ pid 4 scheduler-b waits 23s on advisory 4242, ExclusiveLock",
            "└─ pid 5 scheduler-c waits 23s on advisory (7,1), ExclusiveLock",
            "",
        ]);
        let b = pane(&[
            "pid 1 dead-1-owner (idle in transaction)  holds",
            "pid 3 scheduler-a (idle)  holds",
            "└─ pid 4 scheduler-b waits 23s on advisory 4242, ExclusiveLock",
            "└─ pid 5 scheduler-c waits 23s on advisory (7,1), ExclusiveLock",
            "",
            "",
        ]);
        let bytes = second_frame(&a, &b);
        assert!(bytes.contains("\x1b[M"), "{bytes:?}");
        assert!(bytes.len() < 40, "{} bytes: {bytes:?}", bytes.len());
    }

    #[test]
    fn a_frame_for_a_larger_screen_than_the_one_known_is_drawn_without_a_panic() {
        // The terminal shrank to 40 columns after the frame was made for 70: its cells past column 40,
        // on several lines, reach the backend (the next frame is made for the new size).
        let mut lean = Lean::with_size(Vec::new(), 40, 10);
        lean.clear().expect("clear");
        let area = Rect::new(0, 0, 70, 10);
        let frame = |fill: &str, first: u16| {
            let mut b = Buffer::empty(area);
            for y in 0..10 {
                let line = format!("{} {}", y + first, fill.repeat(66));
                b.set_string(0, y, line, Style::default());
            }
            b
        };
        let (a, b) = (frame("x", 0), frame("y", 1));
        lean.draw(Buffer::empty(area).diff(&a).into_iter())
            .expect("draw");
        lean.draw(a.diff(&b).into_iter()).expect("draw");
        assert!(!lean.out.is_empty());
    }

    #[test]
    fn a_sparkline_taking_a_sample_is_one_deleted_cell_and_the_new_bar() {
        let mut lean = Lean::with_size(Vec::new(), 40, 3);
        lean.clear().expect("clear");
        let area = Rect::new(0, 0, 40, 3);
        let frame = |bars: &str| {
            let mut b = Buffer::empty(area);
            b.set_string(20, 1, bars, Style::default().fg(Color::Yellow));
            b.set_string(39, 1, "│", Style::default());
            b
        };
        let a = frame("█··█··█··█··█··█··█");
        lean.draw(Buffer::empty(area).diff(&a).into_iter())
            .expect("draw");
        lean.out.clear();
        let b = frame("··█··█··█··█··█··█·");
        lean.draw(a.diff(&b).into_iter()).expect("draw");
        let bytes = String::from_utf8_lossy(&lean.out).into_owned();
        assert!(bytes.contains("\x1b[P"), "{bytes:?}");
        assert!(bytes.len() < 30, "{} bytes: {bytes:?}", bytes.len());
    }

    #[test]
    fn a_countdown_costs_its_digits_and_a_short_relative_move() {
        let mut lean = Lean::with_size(Vec::new(), 80, 24);
        let mut a = Buffer::empty(Rect::new(0, 0, 80, 24));
        let dim = Style::default().fg(Color::DarkGray);
        a.set_string(60, 20, "12s", dim);
        a.set_string(60, 21, "29s", dim);
        lean.draw(Buffer::empty(a.area).diff(&a).into_iter())
            .expect("draw");
        lean.out.clear();
        let mut b = a.clone();
        b.set_string(60, 20, "11s", dim);
        b.set_string(60, 21, "28s", dim);
        lean.draw(a.diff(&b).into_iter()).expect("draw");
        // From after "29s", the digit on its own row first: two backspaces; then up one (`ESC M`) and a
        // backspace to the digit above (3 bytes, where `ESC[21;62H` takes 8). In the order of the rows, it
        // would be `ESC M`, two backspaces, then a line feed and a backspace: a byte more.
        assert_eq!(String::from_utf8_lossy(&lean.out), "\x08\x088\x1bM\x081");
    }

    #[test]
    fn a_frame_weighs_every_order_of_its_colours_from_the_cursor() {
        // The cursor is after a plain digit; a frame changes a plain clock far up, and two red cells just
        // below the cursor.
        let area = Rect::new(0, 0, 80, 24);
        let red = Style::default().fg(Color::Red);
        let frame = |clock: &str, digit: &str, bars: &str| {
            let mut f = Buffer::empty(area);
            f.set_string(56, 0, clock, Style::default());
            f.set_string(77, 6, digit, Style::default());
            f.set_string(77, 7, bars, red);
            f.set_string(77, 8, bars, red);
            f
        };
        let frames = [
            frame("1", "5", "x"),
            frame("1", "6", "x"),
            frame("2", "6", "y"),
        ];
        // The red cells first, from where the cursor is, then the clock: 21 bytes. The clock first (the
        // nearest step, and the order of the rows) takes 23.
        assert_eq!(last_of(&frames), "\n\x08\x1b[31my\n\x08y\x1b[;57H\x1b[m2");
    }

    #[test]
    fn a_colour_used_in_two_places_can_be_written_in_two_goes() {
        // A plain clock at the top, a plain column of seconds and, beside its top, a red mark.
        let area = Rect::new(0, 0, 80, 24);
        let red = Style::default().fg(Color::Red);
        let frame = |second: u8, mark: &str| {
            let mut f = Buffer::empty(area);
            f.set_string(56, 0, second.to_string(), Style::default());
            for y in 10..14 {
                f.set_string(60, y, second.to_string(), Style::default());
            }
            f.set_string(63, 10, mark, red);
            f
        };
        let frames = [frame(1, "x"), frame(2, "y")];
        // The first frame ended after the red mark: the second starts there, in red, then goes down the
        // column in plain and takes the clock last (26 bytes). With the plain cells in one group, the clock
        // and the column go together, and the two frames end elsewhere: 35.
        assert_eq!(
            last_of(&frames),
            "\x08y\x1b[4D\x1b[m2\n\x082\n\x082\n\x082\x1b[;57H2"
        );
    }

    #[test]
    fn the_least_move_is_the_cheapest_of_the_terminals_moves() {
        // Down a row and back a column: a line feed and a backspace.
        assert_eq!(least_move((61, 20), (60, 21)), 2);
        // Along the row to the right: `ESC[80C`; a few columns on, over a tab stop: a tab and a cell reprinted.
        assert_eq!(least_move((10, 3), (90, 3)), 5);
        assert_eq!(least_move((5, 3), (9, 3)), 2);
        // Back to the first column: a carriage return; of the next row: a wrap, at best.
        assert_eq!(least_move((50, 3), (0, 3)), 1);
        assert_eq!(least_move((50, 3), (0, 4)), 1);
        // Up one row: `ESC M`; up five and over a tab stop: `ESC[5A`, a tab and a cell reprinted; to the
        // first row: `ESC[d` (or `ESC[;2H`), a carriage return and a cell reprinted.
        assert_eq!(least_move((5, 9), (5, 8)), 2);
        assert_eq!(least_move((5, 9), (9, 4)), 6);
        assert_eq!(least_move((5, 9), (1, 0)), 5);
        // Down twelve rows and left eighty columns: `ESC[23;11H`.
        assert_eq!(least_move((90, 10), (10, 22)), 8);
        assert_eq!(least_move((7, 7), (7, 7)), 0);
    }

    #[test]
    fn the_assignment_is_the_cheapest_of_all_the_ways_to_pair_rows_and_columns() {
        let costs = [[4, 1, 3, 9], [2, 0, 5, 9], [3, 2, 2, 9], [9, 9, 9, 1]];
        let cost = |r: usize, c: usize| costs[r][c];
        // Every permutation of four, priced: the method must find the least (1 + 2 + 2 + 1).
        let mut least = i64::MAX;
        for a in 0..4 {
            for b in (0..4).filter(|b| *b != a) {
                for c in (0..4).filter(|c| *c != a && *c != b) {
                    let d = 6 - a - b - c;
                    least = least.min(cost(0, a) + cost(1, b) + cost(2, c) + cost(3, d));
                }
            }
        }
        assert_eq!(least, 6);
        assert_eq!(assignment(4, cost), least);
        assert_eq!(assignment(1, |_, _| 7), 7);
    }

    #[test]
    fn the_floor_of_a_column_of_countdowns_is_a_digit_and_two_bytes_of_move_a_row() {
        let area = Rect::new(0, 0, 80, 24);
        let column = |second: u8| {
            let mut f = Buffer::empty(area);
            for y in 5..10 {
                f.set_string(60, y, format!("2{second}s"), Style::default());
            }
            f
        };
        let (a, b) = (column(9), column(8));
        // Five digits; the first run reached for nothing, each other from the end of the one above (a line
        // feed and a backspace).
        assert_eq!(floor_bytes(&a, &b), 5 + 4 * 2);
        // What this backend writes: the five digits, the line feeds and backspaces between, and the move to
        // the first from where the last frame left the cursor (after the column's last row: up four rows and
        // back two columns).
        let bytes = second_frame(&a, &b);
        assert_eq!(bytes, "\x1b[4A\x08\x088\n\x088\n\x088\n\x088\n\x088");
        assert!(floor_bytes(&a, &b) <= bytes.len());
        // A red cell far up and left: written first, from anywhere in any colours; then the column's top
        // (`ESC[6;61H`), in the plain colours (`ESC[m`), and down the column as before.
        let mut c = b.clone();
        c.set_string(10, 1, "x", Style::default().fg(Color::Red));
        assert_eq!(floor_bytes(&a, &c), 6 + (7 + 4 * 2) + 3);
        let bytes = second_frame(&a, &c);
        assert!(floor_bytes(&a, &c) <= bytes.len(), "{bytes:?}");
    }

    #[test]
    fn the_floor_of_frames_in_a_row_carries_the_colours_and_the_cursor_from_one_to_the_next() {
        // Two cells side by side tick each second, a plain digit and a bold red one.
        let area = Rect::new(0, 0, 80, 24);
        let frame = |second: u8| {
            let mut f = Buffer::empty(area);
            f.set_string(10, 0, second.to_string(), Style::default());
            let red = Style::default().fg(Color::Red).add_modifier(Modifier::BOLD);
            f.set_string(11, 0, second.to_string(), red);
            f
        };
        let frames: Vec<Buffer> = (0..5).map(frame).collect();
        let mut floor = Floor::default();
        let mut apart = 0;
        for pair in frames.windows(2) {
            floor.frame(&pair[0], &pair[1]);
            apart += floor_bytes(&pair[0], &pair[1]);
        }
        // Frame by frame, each is two digits and, from anywhere in any colours, at best: the red digit,
        // two backspaces and `ESC[m` to the plain one. 7 bytes a frame.
        assert_eq!(apart, 4 * 7);
        // In a row, each frame after the first starts where the last left the cursor and in the colours it
        // left. Ending on the plain digit, the next frame goes from it to the red one (a backspace, the
        // plain digit, `ESC[1;31m`); ending on the red one, back (a backspace, the red digit, two
        // backspaces, `ESC[m`). From the first frame on, they alternate: 7 (or 5), then 8, 6, 8 (or 6).
        assert_eq!(floor.bytes(), 4 * 2 + 5 + 8 + 6 + 8);
        let mut lean = Lean::with_size(Vec::new(), 80, 24);
        lean.clear().expect("clear");
        lean.draw(Buffer::empty(area).diff(&frames[0]).into_iter())
            .expect("draw");
        lean.out.clear();
        for pair in frames.windows(2) {
            lean.draw(pair[0].diff(&pair[1]).into_iter()).expect("draw");
        }
        assert!(
            floor.bytes() <= lean.out.len(),
            "{:?}",
            String::from_utf8_lossy(&lean.out)
        );
    }

    #[test]
    fn the_floor_only_grows_from_frame_to_frame_through_a_frame_of_many_runs() {
        // Two clocks tick far apart for a while; then one frame changes every other cell of two rows (more
        // runs than are priced for each end, in fewer bytes than the frames before), as a redraw of a pane
        // does.
        let area = Rect::new(0, 0, 80, 24);
        let frame = |second: u8, pane: bool| {
            let mut f = Buffer::empty(area);
            f.set_string(70, 0, format!("{second:02}"), Style::default());
            f.set_string(5, 20, format!("{second:02}"), Style::default());
            let red = Style::default().fg(Color::Red);
            for y in 5..7 {
                for x in (0..70).step_by(3) {
                    f.set_string(x, y, if pane { "x" } else { "o" }, red);
                }
            }
            f
        };
        let frames: Vec<Buffer> = (0..60).map(|s| frame(s, s == 50)).collect();
        let mut lean = Lean::with_size(Vec::new(), 80, 24);
        lean.clear().expect("clear");
        lean.draw(Buffer::empty(area).diff(&frames[0]).into_iter())
            .expect("draw");
        lean.out.clear();
        let mut floor = Floor::default();
        let mut last = 0;
        for pair in frames.windows(2) {
            lean.draw(pair[0].diff(&pair[1]).into_iter()).expect("draw");
            floor.frame(&pair[0], &pair[1]);
            assert!(floor.bytes() >= last, "{} after {last}", floor.bytes());
            last = floor.bytes();
        }
        assert!(
            floor.bytes() <= lean.out.len(),
            "{} > {}",
            floor.bytes(),
            lean.out.len()
        );
    }

    proptest! {
        #[test]
        fn the_least_route_by_branch_and_bound_is_the_least_of_every_order(
            n in 2..8_usize,
            costs in proptest::collection::vec(0..30_i64, 64),
            budget in 1..40_usize,
        ) {
            let cursor: Vec<i64> = costs[..n].to_vec();
            let between: Vec<Vec<i64>> = (0..n)
                .map(|from| {
                    (0..n)
                        .map(|to| if from == to { NEVER } else { costs[8 + from * n + to] })
                        .collect()
                })
                .collect();
            let first: Vec<usize> = cursor.iter().map(|c| *c as usize).collect();
            let routes = every_order(&first, |from, to| between[from][to] as usize);
            let least = routes.into_iter().min().expect("a route");
            prop_assert_eq!(least_tour(&cursor, &between, usize::MAX), least);
            // Cut short, it is a bound: no more than the least route, no less than the loops allow, and
            // no less for more assignments solved.
            let short = least_tour(&cursor, &between, budget);
            prop_assert!(short <= least, "{} > {}", short, least);
            prop_assert!(short >= assigned(&cursor, &between, None));
            prop_assert!(least_tour(&cursor, &between, budget + 1) >= short);
        }
    }

    #[test]
    fn past_twelve_stretches_the_floor_is_the_least_route_through_them_not_loops() {
        // Two columns of seven countdowns, each row's colour the other's in the next row and across: the
        // cheapest moves (down each column) change colours every row, and loops through the stretches of
        // one colour cost less than any route.
        let area = Rect::new(0, 0, 80, 24);
        let frame = |digits: &str| {
            let mut f = Buffer::empty(area);
            for (i, y) in (2..9_u16).enumerate() {
                let (red, green) = (
                    Style::default().fg(Color::Red),
                    Style::default().fg(Color::Green),
                );
                let (a, b) = if i % 2 == 0 {
                    (red, green)
                } else {
                    (green, red)
                };
                f.set_string(5, y, digits, a);
                f.set_string(60, y, digits, b);
            }
            f
        };
        let (prev, next) = (frame("00"), frame("11"));
        let mut stretches = Vec::new();
        for (x, y, cell) in prev.diff(&next) {
            Stretch::extend(&mut stretches, (x, y), after(x, y, cell), cell);
        }
        assert_eq!(stretches.len(), 14);
        let step = |from: usize, to: usize| {
            let (a, b) = (&stretches[from], &stretches[to]);
            least_move(a.end, b.start) + recolour(a.last, b.first)
        };
        let between: Vec<Vec<i64>> = (0..14)
            .map(|from| {
                (0..14)
                    .map(|to| {
                        if from == to {
                            NEVER
                        } else {
                            step(from, to) as i64
                        }
                    })
                    .collect()
            })
            .collect();
        let routes = every_order(&[0; 14], |from, to| between[from][to] as usize);
        let least = routes.into_iter().min().expect("a route");
        assert!(
            assigned(&[0; 14], &between, None) < least,
            "loops are no cheaper here"
        );
        // 28 digits, and the least route.
        assert_eq!(floor_bytes(&prev, &next), 28 + least);
    }

    #[test]
    fn the_floor_prices_a_blank_in_any_colours_that_show_it_alike() {
        let plain = Pen::default();
        let red = Pen {
            fg: Color::Red,
            ..plain
        };
        let on_blue = Pen {
            bg: Color::Blue,
            ..plain
        };
        let blank = |pen: Pen| Colours::Showing(pen.on_blank());
        // A blank shows alike in red and plain: no change from red; on blue, at least `ESC[m`.
        assert_eq!(recolour(Colours::Exact(red), blank(plain)), 0);
        assert_eq!(recolour(Colours::Exact(red), blank(on_blue)), 3);
        // After blanks, the colours are any that show them: red text after plain blanks may need none.
        assert_eq!(recolour(blank(plain), Colours::Exact(red)), 0);
        assert_eq!(recolour(blank(on_blue), Colours::Exact(red)), 3);
        assert_eq!(recolour(Colours::Exact(plain), Colours::Exact(red)), 5);
        assert_eq!(recolour(Colours::Any, Colours::Exact(red)), 0);
        // A stretch of a blank, red text and a blank needs red first and leaves red.
        let mut stretches = Vec::new();
        let cell = |symbol: &'static str, pen: Pen| {
            let mut c = Cell::new(symbol);
            c.fg = pen.fg;
            c.bg = pen.bg;
            c
        };
        Stretch::extend(&mut stretches, (3, 1), (4, 1), &cell(" ", plain));
        Stretch::extend(&mut stretches, (4, 1), (5, 1), &cell("x", red));
        Stretch::extend(&mut stretches, (5, 1), (6, 1), &cell(" ", on_blue));
        Stretch::extend(&mut stretches, (6, 1), (7, 1), &cell("y", plain));
        assert_eq!(stretches.len(), 2);
        assert_eq!(stretches[0].first, Colours::Exact(red));
        assert_eq!(stretches[0].last, Colours::Exact(red));
        assert_eq!((stretches[0].start, stretches[0].end), ((3, 1), (6, 1)));
        assert_eq!(stretches[1].first, Colours::Exact(plain));
    }

    proptest! {
        #[test]
        fn the_floor_of_frames_in_a_row_is_below_what_the_backend_writes(
            spots in proptest::collection::btree_set(0..6_u16, 1..5),
            frames in proptest::collection::vec(proptest::collection::vec((0..6_usize, style(), style()), 5), 2..8),
        ) {
            // A few places in distinct rows and columns (no line moves, no last column) each take a short
            // text in two colours, blanks among it, each frame.
            let texts = ["1", "23", " 4", "  ", "x ", "56"];
            let area = Rect::new(0, 0, W, 8);
            let buffers: Vec<Buffer> = frames
                .iter()
                .map(|cells| {
                    let mut f = Buffer::empty(area);
                    for (spot, (text, first, second)) in spots.iter().zip(cells) {
                        let (x, y) = (3 + spot * 6, 1 + *spot);
                        let (a, b) = texts[*text].split_at(1);
                        f.set_string(x, y, a, *first);
                        f.set_string(x + 1, y, b, *second);
                    }
                    f
                })
                .collect();
            let mut lean = Lean::with_size(Vec::new(), W, 8);
            lean.clear().expect("clear");
            lean.out.clear();
            let mut floor = Floor::default();
            let mut shown = Buffer::empty(area);
            for next in &buffers {
                lean.draw(shown.diff(next).into_iter()).expect("draw");
                floor.frame(&shown, next);
                shown = next.clone();
            }
            // The first frame is drawn over a screen known blank: the floor counts its cells alike.
            prop_assert!(floor.bytes() <= lean.out.len(), "{} > {}", floor.bytes(), lean.out.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn the_floor_of_a_frame_of_many_stretches_is_below_what_the_backend_writes(
            spots in proptest::collection::btree_set((0..10_u16, 0..12_u16), 13..30),
            colours in proptest::collection::vec(style(), 40),
            second in 0..9_u8,
        ) {
            // Countdowns at places on a grid, each in its own colours: past twelve stretches, where the
            // floor looks for the least route by branch and bound.
            let area = Rect::new(0, 0, 80, 24);
            let frame = |second: u8| {
                let mut f = Buffer::empty(area);
                for ((x, y), style) in spots.iter().zip(&colours) {
                    f.set_string(x * 7, y * 2, format!("{second:02}"), *style);
                }
                f
            };
            let (prev, next) = (frame(second), frame(second + 1));
            let mut lean = Lean::with_size(Vec::new(), 80, 24);
            lean.clear().expect("clear");
            lean.draw(Buffer::empty(area).diff(&prev).into_iter()).expect("draw");
            lean.out.clear();
            lean.draw(prev.diff(&next).into_iter()).expect("draw");
            let floor = floor_bytes(&prev, &next);
            prop_assert!(floor <= lean.out.len(), "{} > {}", floor, lean.out.len());
        }
    }

    #[test]
    fn a_line_that_gets_shorter_is_erased_in_place() {
        let mut lean = Lean::with_size(Vec::new(), 80, 24);
        lean.clear().expect("clear");
        let mut parser = vt100::Parser::new(24, 80, 0);
        let mut a = Buffer::empty(Rect::new(0, 0, 80, 24));
        a.set_string(
            2,
            5,
            "pid 4586 scheduler-b waits 3s on advisory 4242, ExclusiveLock",
            Style::default(),
        );
        lean.draw(Buffer::empty(a.area).diff(&a).into_iter())
            .expect("draw");
        parser.process(&std::mem::take(&mut lean.out));
        let mut b = Buffer::empty(a.area);
        b.set_string(2, 5, "pid 4586 scheduler-b", Style::default());
        lean.draw(a.diff(&b).into_iter()).expect("draw");
        let bytes = std::mem::take(&mut lean.out);
        parser.process(&bytes);
        assert_shows_size(&parser, &b, 80, 24);
        // On the cursor's row: to the first cell that changes, then erase through the last.
        assert_eq!(String::from_utf8_lossy(&bytes), "\x1b[24G\x1b[40X");
    }

    #[test]
    fn lines_that_move_while_their_seconds_tick_are_moved_by_the_terminal() {
        let a = pane(&[
            "pid 1 dead-1-owner (idle in transaction)  holds",
            "└─ pid 2 dead-1-rival1 waits 1s on row dead-1/MSFT (entry_locks, transactionid), ShareLock",
            "pid 3 scheduler-a (idle)  holds",
            "└─ pid 4 scheduler-b waits 23s on advisory 4242, ExclusiveLock",
            "└─ pid 5 scheduler-c waits 23s on advisory (7,1), ExclusiveLock",
        ]);
        let b = pane(&[
            "pid 1 dead-1-owner (idle in transaction)  holds",
            "pid 3 scheduler-a (idle)  holds",
            "└─ pid 4 scheduler-b waits 24s on advisory 4242, ExclusiveLock",
            "└─ pid 5 scheduler-c waits 24s on advisory (7,1), ExclusiveLock",
            "",
        ]);
        let bytes = second_frame(&a, &b);
        assert!(bytes.contains("\x1b[M"), "{bytes:?}");
        assert!(!bytes.contains("scheduler"), "rewritten: {bytes:?}");
        assert!(bytes.len() < 60, "{} bytes: {bytes:?}", bytes.len());
    }

    #[test]
    fn a_styled_lines_padding_is_not_written_where_the_screen_is_blank_already() {
        // A lock wait comes into a pane in bold yellow, its style over the whole line: the padding after its
        // text looks like the blank line the terminal inserted, so only the text and the borders are written.
        let area = Rect::new(0, 0, 180, 8);
        let pane = |lines: &[(&str, Style)]| {
            let mut b = Buffer::empty(area);
            for (i, (l, style)) in lines.iter().enumerate() {
                let y = 1 + i as u16;
                b.set_string(0, y, "│", Style::default());
                b.set_style(Rect::new(1, y, 178, 1), *style);
                b.set_string(1, y, l, *style);
                b.set_string(179, y, "│", Style::default());
            }
            b
        };
        let plain = Style::default();
        let waiting = Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD);
        let a = pane(&[
            ("pid 1 dead-1-owner (idle in transaction)  holds", plain),
            (
                "└─ pid 2 dead-1-rival1 waits 1s on row dead-1/MSFT (entry_locks, transactionid), ShareLock",
                waiting,
            ),
            ("pid 3 scheduler-a (idle)  holds", plain),
            (
                "└─ pid 4 scheduler-b waits 23s on advisory 4242, ExclusiveLock",
                waiting,
            ),
            ("", plain),
        ]);
        let b = pane(&[
            ("pid 1 dead-1-owner (idle in transaction)  holds", plain),
            (
                "└─ pid 2 dead-1-rival1 waits 1s on row dead-1/MSFT (entry_locks, transactionid), ShareLock",
                waiting,
            ),
            (
                "   └─ pid 5 dead-1-rival0 waits 0s on row dead-1/MSFT (entry_locks, tuple), ExclusiveLock",
                waiting,
            ),
            ("pid 3 scheduler-a (idle)  holds", plain),
            (
                "└─ pid 4 scheduler-b waits 23s on advisory 4242, ExclusiveLock",
                waiting,
            ),
        ]);
        let bytes = second_frame(&a, &b);
        assert!(bytes.contains("\x1b[L"), "{bytes:?}");
        assert!(!bytes.contains("    "), "padding written: {bytes:?}");
        assert!(bytes.len() < 140, "{} bytes: {bytes:?}", bytes.len());
    }

    #[test]
    fn a_styled_line_written_over_blanks_writes_only_its_text() {
        // The last lock wait of a pane has gone; another comes in its place, styled over the whole line: only
        // its text is written, not the padding that already shows blank.
        let area = Rect::new(0, 0, 180, 4);
        let waiting = Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD);
        let line = |text: Option<&str>| {
            let mut b = Buffer::empty(area);
            b.set_string(0, 1, "│", Style::default());
            if let Some(text) = text {
                b.set_style(Rect::new(1, 1, 178, 1), waiting);
                b.set_string(1, 1, text, waiting);
            }
            b.set_string(179, 1, "│", Style::default());
            b
        };
        let gone = line(None);
        let come = line(Some(
            "   └─ pid 4 dead-1-rival0 waits 0s on row dead-1/MSFT (entry_locks, tuple), ExclusiveLock",
        ));
        let bytes = second_frame(&gone, &come);
        assert!(!bytes.contains('X') && !bytes.contains("  └"), "{bytes:?}");
        assert!(bytes.len() < 110, "{} bytes: {bytes:?}", bytes.len());
    }

    /// A bordered pane of 120×12 with `lines` from its third row.
    fn pane(lines: &[&str]) -> Buffer {
        let mut b = Buffer::empty(Rect::new(0, 0, 120, 12));
        for (i, l) in lines.iter().enumerate() {
            b.set_string(0, 2 + i as u16, format!("│{l:<118}│"), Style::default());
        }
        b
    }

    /// What a backend writes for `b` after drawing `a` on a blank screen; the terminal then shows `b` exactly.
    /// What the backend writes for the last of `frames`, drawn one after another on a screen cleared (each
    /// checked on a terminal).
    fn last_of(frames: &[Buffer]) -> String {
        let area = frames[0].area;
        let mut lean = Lean::with_size(Vec::new(), area.width, area.height);
        lean.clear().expect("clear");
        let mut parser = vt100::Parser::new(area.height, area.width, 0);
        let mut shown = Buffer::empty(area);
        for next in frames {
            lean.out.clear();
            lean.draw(shown.diff(next).into_iter()).expect("draw");
            parser.process(&lean.out);
            assert_shows_size(&parser, next, area.width, area.height);
            shown = next.clone();
        }
        String::from_utf8_lossy(&lean.out).into_owned()
    }

    fn second_frame(a: &Buffer, b: &Buffer) -> String {
        last_of(&[a.clone(), b.clone()])
    }

    #[test]
    fn blanks_in_a_colour_are_erased_too() {
        let mut lean = Lean::with_size(Vec::new(), 80, 4);
        lean.clear().expect("clear");
        let area = Rect::new(0, 0, 80, 4);
        let mut a = Buffer::empty(area);
        a.set_string(
            1,
            1,
            "└─ pid 15466 dead-1-rival0 waits 0s on row dead-1/MSFT (entry_locks, tuple)",
            Style::default(),
        );
        lean.draw(Buffer::empty(area).diff(&a).into_iter())
            .expect("draw");
        lean.out.clear();
        let mut b = Buffer::empty(area);
        let cyan = Style::default().fg(Color::Cyan);
        b.set_style(Rect::new(1, 1, 78, 1), cyan);
        b.set_string(1, 1, "pid 15472 scheduler-a (idle)  holds", cyan);
        lean.draw(a.diff(&b).into_iter()).expect("draw");
        let bytes = String::from_utf8_lossy(&lean.out).into_owned();
        assert!(
            bytes.contains('X') && bytes.len() < 80,
            "{} bytes: {bytes:?}",
            bytes.len()
        );
    }

    #[test]
    fn a_parameter_that_is_the_default_is_left_out_and_the_terminal_reads_it_so() {
        assert_eq!(cup(0, 0), b"\x1b[H");
        assert_eq!(cup(56, 0), b"\x1b[;57H");
        assert_eq!(cup(0, 4), b"\x1b[5H");
        assert_eq!(cup(94, 4), b"\x1b[5;95H");
        let red = Pen {
            fg: Color::Red,
            ..Pen::default()
        };
        let underlined = Pen {
            modifier: Modifier::UNDERLINED,
            ..Pen::default()
        };
        let bold_red = Pen {
            modifier: Modifier::BOLD,
            ..red
        };
        let mut bytes = cup(9, 2);
        for (pen, text) in [(bold_red, "BR"), (underlined, "U"), (Pen::default(), "N")] {
            bytes.extend(sgr(None, pen));
            bytes.extend(text.bytes());
        }
        bytes.extend(cup(4, 0));
        bytes.extend(sgr(Some(Pen::default()), red));
        bytes.push(b'x');
        bytes.extend(cup(0, 0));
        bytes.push(b'Z');
        assert!(
            bytes.windows(3).any(|w| w == b"[;1") && bytes.windows(2).any(|w| w == b"[m"),
            "{bytes:?}"
        );
        let mut parser = vt100::Parser::new(6, 40, 0);
        parser.process(&bytes);
        let screen = parser.screen();
        let cell = |x: u16, y: u16| screen.cell(y, x).expect("cell");
        assert_eq!(screen.contents(), "Z   x\n\n         BRUN");
        assert!(cell(9, 2).bold() && cell(9, 2).fgcolor() == vt100::Color::Idx(1));
        let u = cell(11, 2);
        assert!(u.underline() && !u.bold() && u.fgcolor() == vt100::Color::Default);
        let n = cell(12, 2);
        assert!(!n.underline() && !n.bold() && n.fgcolor() == vt100::Color::Default);
        assert!(!cell(4, 0).bold() && cell(4, 0).fgcolor() == vt100::Color::Idx(1));
    }

    #[test]
    fn an_sgr_change_is_one_sequence_with_only_what_differs() {
        let plain = Pen::default();
        let bold_red = Pen {
            fg: Color::Red,
            modifier: Modifier::BOLD | Modifier::DIM,
            ..plain
        };
        assert_eq!(sgr(None, bold_red), b"\x1b[;1;2;31m");
        assert_eq!(sgr(Some(plain), bold_red), b"\x1b[1;2;31m");
        // Dim goes: 22 ends bold too, so bold is set again.
        let bold = Pen {
            modifier: Modifier::BOLD,
            ..bold_red
        };
        assert_eq!(sgr(Some(bold_red), bold), b"\x1b[22;1m");
        assert_eq!(sgr(Some(bold_red), plain), b"\x1b[m");
        let grey = Pen {
            fg: Color::Indexed(244),
            ..plain
        };
        assert_eq!(sgr(Some(plain), grey), b"\x1b[38;5;244m");
    }
}
