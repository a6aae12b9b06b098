//! Lease rows as the array reads bring them, decoded without a copy per value: every text of a read in one
//! buffer, each row's texts as spans of it.
//!
//! A read of the mirror brings tens of thousands of rows a poll (at 50,000 profiles, 20,000 renewals a
//! second), and most of them are renewals whose profile, key and owner the mirror has already: decoding each
//! into three `String`s (and each value through sqlx's per-element decoding) was a third of the poll. The
//! arrays come in PostgreSQL's binary format on a direct connection, which is read here directly; the text
//! format (behind a pooler's simple protocol) goes through sqlx as before.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{Row as _, ValueRef as _};

use super::text::Lossy;
use crate::model::LeaseRow;

/// Which of the optional lease columns the table maps (the reads then carry their arrays).
#[derive(Debug, Clone, Copy, Default)]
pub struct Optional {
    pub acquired_at: bool,
    pub contention_count: bool,
    pub contended_since: bool,
    pub last_contended_at: bool,
}

/// A range of [`PackedRows::text`]; `None` for a null.
type Span = Option<(u32, u32)>;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Packed {
    group: Span,
    key: Span,
    owner: Span,
    expires_at: Stamp,
    acquired_at: Stamp,
    contention_count: Option<i64>,
    contended_since: Stamp,
    last_contended_at: Stamp,
}

/// A time in 8 bytes: microseconds since the Unix epoch, or [`Stamp::NONE`]. No time chrono can hold is
/// `i64::MIN` microseconds, so none is lost or confused; and none orders before every time. A read's times
/// stay stamps from the wire to the mirror's rows: making a `DateTime` of each (its calendar date) and
/// back, four times a row for 20,000 rows a poll, was a large part of decoding a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(pub(crate) i64);

impl Default for Stamp {
    fn default() -> Self {
        Self::NONE
    }
}

impl Stamp {
    pub const NONE: Self = Self(i64::MIN);

    /// Chrono's earliest and latest times in microseconds (-262143-01-02 00:00 and +262142-12-31
    /// 23:59:59.999999), as constants: each time decoded is kept within them, and chrono's own take a
    /// calendar date's arithmetic each time.
    const EARLIEST: i64 = -8_334_601_228_800_000_000;
    const LATEST: i64 = 8_210_266_876_799_999_999;

    pub fn of(t: Option<DateTime<Utc>>) -> Self {
        t.map_or(Self::NONE, |t| Self(t.timestamp_micros()))
    }

    /// The time; chrono's latest (`infinity`, which has nanoseconds past the last microsecond) exactly.
    pub fn get(self) -> Option<DateTime<Utc>> {
        if self == Self::NONE {
            None
        } else if self.0 == Self::LATEST {
            Some(DateTime::<Utc>::MAX_UTC)
        } else {
            DateTime::from_timestamp_micros(self.0)
        }
    }

    /// PostgreSQL's binary time (microseconds since 2000-01-01 00:00 UTC), as [`time`] reads it: within
    /// chrono's range, `infinity` its latest time.
    fn from_postgres(micros: i64) -> Self {
        const POSTGRES_EPOCH_US: i64 = 946_684_800_000_000;
        let (earliest, latest) = (Self::EARLIEST, Self::LATEST);
        Self(match micros {
            i64::MAX => latest,
            i64::MIN => earliest,
            us => us
                .checked_add(POSTGRES_EPOCH_US)
                .map_or(if us > 0 { latest } else { earliest }, |t| {
                    t.clamp(earliest, latest)
                }),
        })
    }
}

/// Lease rows whose texts live in one buffer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackedRows {
    text: String,
    rows: Vec<Packed>,
}

/// A lease row borrowed from where it was decoded (a [`PackedRows`], or a [`LeaseRow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef<'a> {
    pub group: Option<&'a str>,
    pub key: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub expires_at: Stamp,
    pub acquired_at: Stamp,
    pub contention_count: Option<i64>,
    pub contended_since: Stamp,
    pub last_contended_at: Stamp,
}

impl<'a> From<&'a LeaseRow> for RowRef<'a> {
    fn from(r: &'a LeaseRow) -> Self {
        Self {
            group: r.group.as_deref(),
            key: r.key.as_deref(),
            owner: r.owner.as_deref(),
            expires_at: Stamp::of(r.expires_at),
            acquired_at: Stamp::of(r.acquired_at),
            contention_count: r.contention_count,
            contended_since: Stamp::of(r.contended_since),
            last_contended_at: Stamp::of(r.last_contended_at),
        }
    }
}

impl RowRef<'_> {
    /// The row with its own texts.
    pub fn to_row(&self) -> LeaseRow {
        LeaseRow {
            group: self.group.map(Arc::from),
            key: self.key.map(Arc::from),
            owner: self.owner.map(Arc::from),
            expires_at: self.expires_at.get(),
            acquired_at: self.acquired_at.get(),
            contention_count: self.contention_count,
            contended_since: self.contended_since.get(),
            last_contended_at: self.last_contended_at.get(),
        }
    }
}

impl PackedRows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = RowRef<'_>> {
        let text = |span: Span| span.map(|(from, to)| &self.text[from as usize..to as usize]);
        self.rows.iter().map(move |r| RowRef {
            group: text(r.group),
            key: text(r.key),
            owner: text(r.owner),
            expires_at: r.expires_at,
            acquired_at: r.acquired_at,
            contention_count: r.contention_count,
            contended_since: r.contended_since,
            last_contended_at: r.last_contended_at,
        })
    }

    /// Rows decoded otherwise, packed.
    pub fn of(rows: &[LeaseRow]) -> Self {
        let mut packed = Self::default();
        for r in rows {
            let row = Packed {
                group: packed.push(r.group.as_deref()),
                key: packed.push(r.key.as_deref()),
                owner: packed.push(r.owner.as_deref()),
                expires_at: Stamp::of(r.expires_at),
                acquired_at: Stamp::of(r.acquired_at),
                contention_count: r.contention_count,
                contended_since: Stamp::of(r.contended_since),
                last_contended_at: Stamp::of(r.last_contended_at),
            };
            packed.rows.push(row);
        }
        packed
    }

    fn push(&mut self, text: Option<&str>) -> Span {
        let text = text?;
        let from = self.text.len();
        self.text.push_str(text);
        Some((from as u32, self.text.len() as u32))
    }

    /// The lease rows of an array read's one row (`group`, `key`, `owner`, `expires_at` and, as the table
    /// has them, `acquired_at`, `contention_count`, `contended_since`, `last_contended_at`: parallel arrays).
    /// A null `group` array is no rows.
    pub fn decode(row: &PgRow, has: Optional) -> Result<Self, sqlx::Error> {
        let mut packed = Self::default();
        packed.append(row, has)?;
        Ok(packed)
    }

    /// Adds the lease rows of one more row of arrays (a read of every row comes in several, so that no
    /// message, and no buffer of the connection's, holds the whole table).
    pub fn append(&mut self, row: &PgRow, has: Optional) -> Result<(), sqlx::Error> {
        let Some(groups) = texts(row, "group", &mut self.text)? else {
            return Ok(());
        };
        let keys = texts(row, "key", &mut self.text)?.unwrap_or_default();
        let owners = texts(row, "owner", &mut self.text)?.unwrap_or_default();
        let expires = times(row, "expires_at", true)?;
        let acquired = times(row, "acquired_at", has.acquired_at)?;
        let since = times(row, "contended_since", has.contended_since)?;
        let last = times(row, "last_contended_at", has.last_contended_at)?;
        let counts = counts(row, "contention_count", has.contention_count)?;
        let at = |v: &[Stamp], i: usize| v.get(i).copied().unwrap_or(Stamp::NONE);
        self.rows
            .extend(groups.iter().enumerate().map(|(i, group)| Packed {
                group: *group,
                key: keys.get(i).copied().flatten(),
                owner: owners.get(i).copied().flatten(),
                expires_at: at(&expires, i),
                acquired_at: at(&acquired, i),
                contention_count: counts.get(i).copied().flatten(),
                contended_since: at(&since, i),
                last_contended_at: at(&last, i),
            }));
        Ok(())
    }
}

/// The elements of a one-dimensional array in PostgreSQL's binary format (`array_send`): each as its bytes,
/// or `None` for a null; an empty array has no dimension.
fn elements(mut buf: &[u8]) -> Result<Vec<Option<&[u8]>>, String> {
    fn int(buf: &mut &[u8]) -> Result<i32, String> {
        let (head, rest) = buf
            .split_first_chunk::<4>()
            .ok_or("an array ends before its header does")?;
        *buf = rest;
        Ok(i32::from_be_bytes(*head))
    }
    let dims = int(&mut buf)?;
    let _nulls = int(&mut buf)?;
    let _element_type = int(&mut buf)?;
    if dims == 0 {
        return Ok(Vec::new());
    }
    if dims != 1 {
        return Err(format!("an array of {dims} dimensions, not one"));
    }
    let len = usize::try_from(int(&mut buf)?).map_err(|_| "a negative array length")?;
    let _lower = int(&mut buf)?;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let size = int(&mut buf)?;
        if size < 0 {
            out.push(None);
            continue;
        }
        let (value, rest) = buf
            .split_at_checked(size as usize)
            .ok_or("an array ends inside an element")?;
        out.push(Some(value));
        buf = rest;
    }
    Ok(out)
}

fn undecodable(column: &str, why: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: why.to_string().into(),
    }
}

/// A `text[]` column's elements, appended to `text` (lossily, as every text from the database), as spans.
fn texts(row: &PgRow, column: &str, text: &mut String) -> Result<Option<Vec<Span>>, sqlx::Error> {
    let value = row.try_get_raw(column)?;
    if value.is_null() {
        return Ok(None);
    }
    let mut push = |bytes: &[u8]| {
        let from = text.len();
        text.push_str(&String::from_utf8_lossy(bytes));
        Some((from as u32, text.len() as u32))
    };
    if value.format() == PgValueFormat::Text {
        let decoded: Vec<Option<Lossy>> = row.try_get(column)?;
        return Ok(Some(
            decoded
                .iter()
                .map(|v| v.as_ref().and_then(|v| push(v.0.as_bytes())))
                .collect(),
        ));
    }
    let bytes = value.as_bytes().map_err(|e| undecodable(column, e))?;
    let elements = elements(bytes).map_err(|e| undecodable(column, e))?;
    Ok(Some(
        elements
            .into_iter()
            .map(|e| e.and_then(&mut push))
            .collect(),
    ))
}

/// A `timestamptz[]` column's elements (none when the table has no such column). `infinity` and
/// `-infinity` are the latest and earliest times there are: a row that never expires, or always has.
fn times(row: &PgRow, column: &str, present: bool) -> Result<Vec<Stamp>, sqlx::Error> {
    Ok(eights::<Time, _>(row, column, present, |b| {
        Stamp::from_postgres(i64::from_be_bytes(b))
    })?
    .into_iter()
    .map(|t| t.unwrap_or(Stamp::NONE))
    .collect())
}

/// An `int8[]` column's elements (none when the table has no such column).
fn counts(row: &PgRow, column: &str, present: bool) -> Result<Vec<Option<i64>>, sqlx::Error> {
    eights::<i64, _>(row, column, present, i64::from_be_bytes)
}

/// The elements of an array of an 8-byte type (none when the table has no such column): from their bytes in
/// the binary format, through sqlx's decoding of `S` in the text format.
fn eights<S, T>(
    row: &PgRow,
    column: &str,
    present: bool,
    from: impl Fn([u8; 8]) -> T,
) -> Result<Vec<Option<T>>, sqlx::Error>
where
    S: for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + sqlx::postgres::PgHasArrayType
        + Into<T>,
{
    if !present {
        return Ok(Vec::new());
    }
    let value = row.try_get_raw(column)?;
    if value.is_null() {
        return Ok(Vec::new());
    }
    if value.format() == PgValueFormat::Text {
        let decoded: Vec<Option<S>> = row.try_get(column)?;
        return Ok(decoded.into_iter().map(|v| v.map(Into::into)).collect());
    }
    let bytes = value.as_bytes().map_err(|e| undecodable(column, e))?;
    let elements = elements(bytes).map_err(|e| undecodable(column, e))?;
    elements
        .into_iter()
        .map(|e| {
            e.map(|b| {
                b.try_into()
                    .map(&from)
                    .map_err(|_| undecodable(column, "a value of other than 8 bytes"))
            })
            .transpose()
        })
        .collect()
}

/// PostgreSQL's binary time: microseconds since 2000-01-01 00:00 UTC.
fn time(micros: i64) -> DateTime<Utc> {
    const POSTGRES_EPOCH_US: i64 = 946_684_800_000_000;
    match micros {
        i64::MAX => DateTime::<Utc>::MAX_UTC,
        i64::MIN => DateTime::<Utc>::MIN_UTC,
        us => us
            .checked_add(POSTGRES_EPOCH_US)
            .and_then(DateTime::from_timestamp_micros)
            .unwrap_or(if us > 0 {
                DateTime::<Utc>::MAX_UTC
            } else {
                DateTime::<Utc>::MIN_UTC
            }),
    }
}

/// A `timestamptz` decoded as [`time`] does (`infinity` the latest time there is), for the reads that decode
/// rows with sqlx (its own decoding panics on `infinity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub DateTime<Utc>);

impl From<Time> for DateTime<Utc> {
    fn from(t: Time) -> Self {
        t.0
    }
}

impl From<Time> for Stamp {
    fn from(t: Time) -> Self {
        Self::of(Some(t.0))
    }
}

impl sqlx::Type<sqlx::Postgres> for Time {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <DateTime<Utc> as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl sqlx::postgres::PgHasArrayType for Time {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        <DateTime<Utc> as sqlx::postgres::PgHasArrayType>::array_type_info()
    }

    fn array_compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <DateTime<Utc> as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Time {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        if value.format() == PgValueFormat::Binary {
            let bytes: [u8; 8] = value.as_bytes()?.try_into()?;
            return Ok(Self(time(i64::from_be_bytes(bytes))));
        }
        Ok(Self(match value.as_str()? {
            "infinity" => DateTime::<Utc>::MAX_UTC,
            "-infinity" => DateTime::<Utc>::MIN_UTC,
            _ => <DateTime<Utc> as sqlx::Decode<sqlx::Postgres>>::decode(value)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `array_send`'s bytes for a one-dimensional array of `elements`.
    fn array(elements: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        let has_null = elements.iter().any(Option::is_none);
        for n in [1, i32::from(has_null), 25, elements.len() as i32, 1] {
            out.extend(n.to_be_bytes());
        }
        for e in elements {
            match e {
                Some(b) => {
                    out.extend((b.len() as i32).to_be_bytes());
                    out.extend(*b);
                }
                None => out.extend((-1_i32).to_be_bytes()),
            }
        }
        out
    }

    #[test]
    fn a_binary_array_gives_its_elements_and_nulls() {
        let bytes = array(&[Some(b"p1"), None, Some(b""), Some(b"S\xffX")]);
        assert_eq!(
            elements(&bytes).expect("parses"),
            vec![Some(&b"p1"[..]), None, Some(&b""[..]), Some(&b"S\xffX"[..])]
        );
        // An empty array has no dimension.
        assert_eq!(
            elements(&[0; 12]).expect("parses"),
            Vec::<Option<&[u8]>>::new()
        );
    }

    #[test]
    fn a_cut_or_strange_array_is_an_error_not_a_panic() {
        let bytes = array(&[Some(b"profile")]);
        for cut in 0..bytes.len() {
            assert!(elements(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut two = bytes.clone();
        two[3] = 2;
        assert!(elements(&two).is_err());
        let mut negative = bytes;
        negative[12..16].copy_from_slice(&(-3_i32).to_be_bytes());
        assert!(elements(&negative).is_err());
    }

    #[test]
    fn binary_times_are_exact_and_infinity_is_the_end_of_time() {
        assert_eq!(
            time(0),
            DateTime::from_timestamp(946_684_800, 0).expect("t")
        );
        assert_eq!(
            time(-1),
            DateTime::from_timestamp_micros(946_684_799_999_999).expect("t")
        );
        assert_eq!(time(i64::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(time(i64::MIN), DateTime::<Utc>::MIN_UTC);
        assert_eq!(time(i64::MAX - 1), DateTime::<Utc>::MAX_UTC);
        assert_eq!(Stamp::EARLIEST, DateTime::<Utc>::MIN_UTC.timestamp_micros());
        assert_eq!(Stamp::LATEST, DateTime::<Utc>::MAX_UTC.timestamp_micros());
        // The mirror's stamps read the same times.
        for us in [
            0,
            -1,
            5,
            i64::MAX,
            i64::MIN,
            i64::MAX - 1,
            i64::MIN + 1,
            1 << 62,
            -(1 << 62),
        ] {
            assert_eq!(Stamp::from_postgres(us).get(), Some(time(us)), "{us}");
        }
    }

    #[test]
    fn rows_given_one_by_one_come_back_as_given() {
        let row = LeaseRow {
            group: Some("p1".into()),
            key: None,
            owner: Some("w".into()),
            expires_at: Some(time(5)),
            acquired_at: None,
            contention_count: Some(3),
            contended_since: None,
            last_contended_at: Some(time(1)),
        };
        let packed = PackedRows::of(&[row.clone(), row.clone()]);
        let back: Vec<LeaseRow> = packed.iter().map(|r| r.to_row()).collect();
        assert_eq!(back, vec![row.clone(), row]);
    }
}
