//! The packed row encoding of `strata:migrate/sql` (`packed-rows` in `sdk/wit/strata.wit`):
//! values back to back, each a tag byte and its payload. Both the host (strata-engine) and the
//! guest SDK encode and decode through this crate, so the two sides cannot drift apart.
//!
//! | tag | value   | payload                                   |
//! |-----|---------|-------------------------------------------|
//! | 0   | null    | none                                      |
//! | 1   | integer | 8 bytes, little-endian two's complement   |
//! | 2   | real    | 8 bytes, little-endian IEEE 754           |
//! | 3   | text    | 4-byte little-endian length, UTF-8 bytes  |
//! | 4   | blob    | 4-byte little-endian length, bytes        |
//!
//! The same rows may be laid out by column instead ([`COLUMNS`]), which a Python guest reads and
//! writes a column at a time; [`Values`] reads either layout in row order.
//!
//! No dependencies; decoding borrows text and blobs from the buffer (the column layout allocates
//! one small entry per column).

#![forbid(unsafe_code)]

use std::fmt;

/// Tag of a null.
pub const NULL: u8 = 0;
/// Tag of an integer.
pub const INTEGER: u8 = 1;
/// Tag of a real.
pub const REAL: u8 = 2;
/// Tag of a text.
pub const TEXT: u8 = 3;
/// Tag of a blob.
pub const BLOB: u8 = 4;

/// A decoded value, borrowing text and blobs from the buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// Appends values to a buffer.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        Encoder {
            buf: Vec::with_capacity(bytes),
        }
    }

    pub fn null(&mut self) {
        self.buf.push(NULL);
    }

    pub fn integer(&mut self, v: i64) {
        self.buf.push(INTEGER);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn real(&mut self, v: f64) {
        self.buf.push(REAL);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a text. Panics if it is 4 GiB or longer, which no SQLite value can be.
    pub fn text(&mut self, v: &str) {
        self.bytes(TEXT, v.as_bytes());
    }

    /// Appends a blob. Panics if it is 4 GiB or longer, which no SQLite value can be.
    pub fn blob(&mut self, v: &[u8]) {
        self.bytes(BLOB, v);
    }

    fn bytes(&mut self, tag: u8, v: &[u8]) {
        let len = u32::try_from(v.len()).expect("a SQLite value is shorter than 4 GiB");
        self.buf.push(tag);
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(v);
    }

    /// Appends any value.
    pub fn value(&mut self, v: ValueRef<'_>) {
        match v {
            ValueRef::Null => self.null(),
            ValueRef::Integer(i) => self.integer(i),
            ValueRef::Real(f) => self.real(f),
            ValueRef::Text(t) => self.text(t),
            ValueRef::Blob(b) => self.blob(b),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets the content, keeping the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the encoded bytes, leaving the encoder empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Why a buffer does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends inside a value that starts at this offset.
    Truncated { at: usize },
    /// An unknown tag at this offset.
    BadTag { tag: u8, at: usize },
    /// A text value at this offset is not UTF-8.
    BadUtf8 { at: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { at } => {
                write!(f, "packed rows end inside the value at byte {at}")
            }
            DecodeError::BadTag { tag, at } => {
                write!(f, "packed rows have an unknown tag {tag} at byte {at}")
            }
            DecodeError::BadUtf8 { at } => {
                write!(f, "packed rows have a text that is not UTF-8 at byte {at}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads values one after another from a buffer.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Decoder { data, pos: 0 }
    }

    /// Whether every value was read.
    pub fn is_done(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next value, `None` at the end.
    pub fn next_value(&mut self) -> Result<Option<ValueRef<'a>>, DecodeError> {
        let at = self.pos;
        let Some(&tag) = self.data.get(at) else {
            return Ok(None);
        };
        let body = at + 1;
        let v = match tag {
            NULL => {
                self.pos = body;
                ValueRef::Null
            }
            INTEGER => ValueRef::Integer(i64::from_le_bytes(self.fixed(at, body)?)),
            REAL => ValueRef::Real(f64::from_le_bytes(self.fixed(at, body)?)),
            TEXT => {
                let bytes = self.sized(at, body)?;
                ValueRef::Text(std::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8 { at })?)
            }
            BLOB => ValueRef::Blob(self.sized(at, body)?),
            tag => return Err(DecodeError::BadTag { tag, at }),
        };
        Ok(Some(v))
    }

    fn fixed(&mut self, at: usize, body: usize) -> Result<[u8; 8], DecodeError> {
        let bytes = self
            .data
            .get(body..body + 8)
            .ok_or(DecodeError::Truncated { at })?;
        self.pos = body + 8;
        Ok(bytes.try_into().expect("8 bytes"))
    }

    fn sized(&mut self, at: usize, body: usize) -> Result<&'a [u8], DecodeError> {
        let len = self
            .data
            .get(body..body + 4)
            .ok_or(DecodeError::Truncated { at })?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let start = body + 4;
        let bytes = self
            .data
            .get(
                start
                    ..start
                        .checked_add(len)
                        .ok_or(DecodeError::Truncated { at })?,
            )
            .ok_or(DecodeError::Truncated { at })?;
        self.pos = start + len;
        Ok(bytes)
    }
}

/// The first byte of packed rows laid out by column (`data` of `packed-rows`): the layout a guest
/// whose language handles a column at a time faster than a value at a time (Python) reads and
/// writes. A guest asks a cursor for it by setting [`COLUMNS_FLAG`] in `next-packed`'s
/// `max-rows`; `execute-packed` accepts either layout (the row layout never starts with this
/// byte, which is no value's tag).
///
/// After this byte: the number of columns and of rows (4 bytes little-endian each), then one
/// block per column, each a tag and its payload:
///
/// | tag  | column                   | payload                                              |
/// |------|--------------------------|------------------------------------------------------|
/// | 1    | every value an integer   | 8 bytes little-endian per row                        |
/// | 2    | every value a real       | 8 bytes little-endian IEEE 754 per row               |
/// | 3    | every value a text       | 4-byte length, the texts' UTF-8 joined by NUL bytes (no text holds a NUL) |
/// | 0x81 | anything else            | 4-byte length, the column's values in the row encoding |
pub const COLUMNS: u8 = 0x80;
/// The tag of a column block holding values in the row encoding (see [`COLUMNS`]).
pub const VALUES: u8 = 0x81;
/// Set in `next-packed`'s `max-rows` (no count anyone asks for), it asks for the rows laid out
/// by column ([`COLUMNS`]); the rest of `max-rows` is the count.
pub const COLUMNS_FLAG: u32 = 1 << 31;
/// At most this many rows come back from one `next` or `next-packed` call, whatever
/// `max-rows` asks for: the most an SDK asks for (so that no count reaches [`COLUMNS_FLAG`]).
pub const MAX_ROWS_PER_CALL: u32 = 100_000;

/// Lays out `count` rows of `columns` values, encoded row after row in `rows`, by column
/// ([`COLUMNS`]): what a host sends a guest that set [`COLUMNS_FLAG`].
pub fn to_columns(rows: &[u8], columns: u32, count: u32) -> Result<Vec<u8>, DecodeError> {
    let width = columns as usize;
    let mut values = Vec::with_capacity(width.saturating_mul(count as usize).min(1 << 20));
    let mut d = Decoder::new(rows);
    for _ in 0..(count as usize).saturating_mul(width) {
        values.push(
            d.next_value()?
                .ok_or(DecodeError::Truncated { at: rows.len() })?,
        );
    }
    if !d.is_done() {
        return Err(DecodeError::Truncated { at: d.pos });
    }
    let mut out = Vec::with_capacity(rows.len() + 9 + 5 * width);
    out.push(COLUMNS);
    out.extend_from_slice(&columns.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for c in 0..width {
        let column = || values.iter().skip(c).step_by(width);
        if column().all(|v| matches!(v, ValueRef::Integer(_))) {
            out.push(INTEGER);
            for v in column() {
                if let ValueRef::Integer(i) = v {
                    out.extend_from_slice(&i.to_le_bytes());
                }
            }
        } else if column().all(|v| matches!(v, ValueRef::Real(_))) {
            out.push(REAL);
            for v in column() {
                if let ValueRef::Real(f) = v {
                    out.extend_from_slice(&f.to_le_bytes());
                }
            }
        } else if column().all(|v| matches!(v, ValueRef::Text(t) if !t.contains('\0'))) {
            let len: usize = column()
                .map(|v| match v {
                    ValueRef::Text(t) => t.len() + 1,
                    _ => 0,
                })
                .sum();
            out.push(TEXT);
            out.extend_from_slice(&block_len(len.saturating_sub(1))?.to_le_bytes());
            for (i, v) in column().enumerate() {
                if let ValueRef::Text(t) = v {
                    if i > 0 {
                        out.push(0);
                    }
                    out.extend_from_slice(t.as_bytes());
                }
            }
        } else {
            let mut e = Encoder::new();
            for v in column() {
                e.value(*v);
            }
            out.push(VALUES);
            out.extend_from_slice(&block_len(e.len())?.to_le_bytes());
            out.extend_from_slice(e.as_bytes());
        }
    }
    Ok(out)
}

/// A column block's length, which must fit its 4 bytes.
fn block_len(len: usize) -> Result<u32, DecodeError> {
    u32::try_from(len).map_err(|_| DecodeError::Truncated { at: 0 })
}

/// Reads the values of packed rows in row order, whichever layout they have: row after row, or
/// by column ([`COLUMNS`]). What a host reads `execute-packed`'s rows with.
#[derive(Debug, Clone)]
pub enum Values<'a> {
    Rows(Decoder<'a>),
    Columns(ColumnDecoder<'a>),
    /// A layout that does not parse: the error, reported by the first read.
    Bad(DecodeError),
}

impl<'a> Values<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        if data.first() == Some(&COLUMNS) {
            match ColumnDecoder::new(data) {
                Ok(c) => Values::Columns(c),
                Err(e) => Values::Bad(e),
            }
        } else {
            Values::Rows(Decoder::new(data))
        }
    }

    /// The next value, in row order; `None` at the end.
    pub fn next_value(&mut self) -> Result<Option<ValueRef<'a>>, DecodeError> {
        match self {
            Values::Rows(d) => d.next_value(),
            Values::Columns(c) => c.next_value(),
            Values::Bad(e) => Err(e.clone()),
        }
    }

    /// Whether every value was read.
    pub fn is_done(&self) -> bool {
        match self {
            Values::Rows(d) => d.is_done(),
            Values::Columns(c) => c.is_done(),
            Values::Bad(_) => false,
        }
    }
}

/// One column block of the [`COLUMNS`] layout, being read.
#[derive(Debug, Clone)]
enum Column<'a> {
    Integers(&'a [u8]),
    Reals(&'a [u8]),
    Texts(std::str::Split<'a, char>),
    Values(Decoder<'a>),
}

/// Reads packed rows laid out by column ([`COLUMNS`]), in row order. Every block is checked
/// when it is made: its length, its UTF-8, its number of values.
#[derive(Debug, Clone)]
pub struct ColumnDecoder<'a> {
    columns: Vec<Column<'a>>,
    /// Values left to read.
    left: usize,
    /// The column of the next value.
    next: usize,
}

impl<'a> ColumnDecoder<'a> {
    pub fn new(data: &'a [u8]) -> Result<Self, DecodeError> {
        let u32_at = |at: usize| -> Result<u32, DecodeError> {
            let b = data
                .get(at..at.checked_add(4).ok_or(DecodeError::Truncated { at })?)
                .ok_or(DecodeError::Truncated { at })?;
            Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
        };
        match data.first() {
            Some(&COLUMNS) => {}
            Some(&tag) => return Err(DecodeError::BadTag { tag, at: 0 }),
            None => return Err(DecodeError::Truncated { at: 0 }),
        }
        let width = u32_at(1)? as usize;
        let count = u32_at(5)? as usize;
        let mut pos = 9;
        let mut columns = Vec::with_capacity(width.min(4096));
        for _ in 0..width {
            let at = pos;
            let tag = *data.get(at).ok_or(DecodeError::Truncated { at })?;
            let sized = |len: usize, start: usize| -> Result<&'a [u8], DecodeError> {
                data.get(
                    start
                        ..start
                            .checked_add(len)
                            .ok_or(DecodeError::Truncated { at })?,
                )
                .ok_or(DecodeError::Truncated { at })
            };
            let column = match tag {
                INTEGER | REAL => {
                    let len = count.checked_mul(8).ok_or(DecodeError::Truncated { at })?;
                    let block = sized(len, at + 1)?;
                    pos = at + 1 + len;
                    if tag == INTEGER {
                        Column::Integers(block)
                    } else {
                        Column::Reals(block)
                    }
                }
                TEXT | VALUES => {
                    let len = u32_at(at + 1)? as usize;
                    let block = sized(len, at + 5)?;
                    pos = at + 5 + len;
                    if tag == TEXT {
                        let text =
                            std::str::from_utf8(block).map_err(|_| DecodeError::BadUtf8 { at })?;
                        let values = if count == 0 {
                            0
                        } else {
                            text.matches('\0').count() + 1
                        };
                        if values != count {
                            return Err(DecodeError::Truncated { at });
                        }
                        Column::Texts(text.split('\0'))
                    } else {
                        let mut d = Decoder::new(block);
                        for _ in 0..count {
                            d.next_value()?.ok_or(DecodeError::Truncated { at })?;
                        }
                        if !d.is_done() {
                            return Err(DecodeError::Truncated { at });
                        }
                        Column::Values(Decoder::new(block))
                    }
                }
                tag => return Err(DecodeError::BadTag { tag, at }),
            };
            columns.push(column);
        }
        if pos != data.len() {
            return Err(DecodeError::Truncated { at: pos });
        }
        let left = if width == 0 { 0 } else { count * width };
        Ok(ColumnDecoder {
            columns,
            left,
            next: 0,
        })
    }

    /// The next value, in row order; `None` at the end.
    pub fn next_value(&mut self) -> Result<Option<ValueRef<'a>>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        let width = self.columns.len();
        let column = &mut self.columns[self.next];
        let v = match column {
            Column::Integers(b) | Column::Reals(b) => {
                let (head, rest) = b
                    .split_at_checked(8)
                    .ok_or(DecodeError::Truncated { at: 0 })?;
                *b = rest;
                let bytes: [u8; 8] = head.try_into().expect("8 bytes");
                match column {
                    Column::Integers(_) => ValueRef::Integer(i64::from_le_bytes(bytes)),
                    _ => ValueRef::Real(f64::from_le_bytes(bytes)),
                }
            }
            Column::Texts(t) => ValueRef::Text(t.next().unwrap_or_default()),
            Column::Values(d) => d.next_value()?.unwrap_or(ValueRef::Null),
        };
        self.left -= 1;
        self.next = (self.next + 1) % width;
        Ok(Some(v))
    }

    /// Whether every value was read.
    pub fn is_done(&self) -> bool {
        self.left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        let values = [
            ValueRef::Null,
            ValueRef::Integer(i64::MIN),
            ValueRef::Integer(42),
            ValueRef::Real(-0.5),
            ValueRef::Text(""),
            ValueRef::Text("Ada Lovelace ✓"),
            ValueRef::Blob(&[0, 255, 7]),
        ];
        let mut e = Encoder::new();
        for v in values {
            e.value(v);
        }
        let mut d = Decoder::new(e.as_bytes());
        for v in values {
            assert_eq!(d.next_value().unwrap(), Some(v));
        }
        assert_eq!(d.next_value().unwrap(), None);
        assert!(d.is_done());
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let mut e = Encoder::new();
        e.integer(1);
        e.text("ab");
        assert_eq!(
            e.as_bytes(),
            [1, 1, 0, 0, 0, 0, 0, 0, 0, 3, 2, 0, 0, 0, b'a', b'b']
        );
    }

    #[test]
    fn damaged_buffers_are_errors_not_panics() {
        assert_eq!(
            Decoder::new(&[9]).next_value(),
            Err(DecodeError::BadTag { tag: 9, at: 0 })
        );
        assert_eq!(
            Decoder::new(&[1, 0, 0]).next_value(),
            Err(DecodeError::Truncated { at: 0 })
        );
        assert_eq!(
            Decoder::new(&[3, 5, 0, 0, 0, b'a']).next_value(),
            Err(DecodeError::Truncated { at: 0 })
        );
        assert_eq!(
            Decoder::new(&[3, 255, 255, 255, 255]).next_value(),
            Err(DecodeError::Truncated { at: 0 })
        );
        assert_eq!(
            Decoder::new(&[3, 1, 0, 0, 0, 0xff]).next_value(),
            Err(DecodeError::BadUtf8 { at: 0 })
        );
    }

    /// Rows of every kind of column: all integers, all reals, all texts (empty ones too), texts
    /// holding a NUL, mixed values.
    fn sample() -> (Vec<ValueRef<'static>>, u32, u32) {
        let rows: [[ValueRef<'static>; 5]; 3] = [
            [
                ValueRef::Integer(i64::MIN),
                ValueRef::Real(-0.5),
                ValueRef::Text(""),
                ValueRef::Text("a\0b"),
                ValueRef::Null,
            ],
            [
                ValueRef::Integer(7),
                ValueRef::Real(f64::INFINITY),
                ValueRef::Text("Ada Lovelace ✓"),
                ValueRef::Text("c"),
                ValueRef::Blob(&[0, 255]),
            ],
            [
                ValueRef::Integer(i64::MAX),
                ValueRef::Real(0.0),
                ValueRef::Text(""),
                ValueRef::Text(""),
                ValueRef::Integer(3),
            ],
        ];
        (rows.iter().flatten().copied().collect(), 5, 3)
    }

    /// `values` in the row layout.
    fn encoded(values: &[ValueRef<'_>]) -> Encoder {
        let mut e = Encoder::new();
        for v in values {
            e.value(*v);
        }
        e
    }

    #[test]
    fn rows_laid_out_by_column_read_back_in_row_order() {
        let (values, columns, count) = sample();
        let e = encoded(&values);
        let by_column = to_columns(e.as_bytes(), columns, count).unwrap();
        assert_eq!(by_column[0], COLUMNS);
        // Integers, reals and texts as blocks; a text with a NUL and a mixed column as values.
        let mut d = Values::new(&by_column);
        assert!(matches!(d, Values::Columns(_)));
        for v in &values {
            assert_eq!(d.next_value().unwrap(), Some(*v));
        }
        assert_eq!(d.next_value().unwrap(), None);
        assert!(d.is_done());
        // The row layout reads through the same door.
        let mut d = Values::new(e.as_bytes());
        for v in &values {
            assert_eq!(d.next_value().unwrap(), Some(*v));
        }
        assert!(d.is_done());
        // No rows.
        let empty = to_columns(&[], 2, 0).unwrap();
        let mut d = Values::new(&empty);
        assert_eq!(d.next_value().unwrap(), None);
        assert!(d.is_done());
    }

    #[test]
    fn the_column_layout_is_the_documented_one() {
        let mut e = Encoder::new();
        e.integer(1);
        e.text("ab");
        e.integer(2);
        e.text("");
        let c = to_columns(e.as_bytes(), 2, 2).unwrap();
        let mut want = vec![0x80, 2, 0, 0, 0, 2, 0, 0, 0, 1];
        want.extend_from_slice(&1i64.to_le_bytes());
        want.extend_from_slice(&2i64.to_le_bytes());
        want.extend_from_slice(&[3, 3, 0, 0, 0, b'a', b'b', 0]);
        assert_eq!(c, want);
    }

    #[test]
    fn damaged_column_layouts_are_errors_not_panics() {
        let (values, columns, count) = sample();
        let e = encoded(&values);
        let good = to_columns(e.as_bytes(), columns, count).unwrap();
        // Every truncation, and every single byte changed, is an error or reads values; never
        // a panic, and never more values than the header promises.
        for cut in 0..good.len() {
            assert!(ColumnDecoder::new(&good[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..good.len() {
            for byte in [0u8, 1, 3, 0x7f, 0x81, 0xff] {
                let mut bad = good.clone();
                bad[at] = byte;
                let mut d = Values::new(&bad);
                let mut read = 0;
                while let Ok(Some(_)) = d.next_value() {
                    read += 1;
                    assert!(read <= 15, "byte {at} = {byte}");
                }
            }
        }
        // A text block whose NULs do not make `count` texts.
        let mut bad = vec![0x80, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 0, 0, 0, b'a'];
        assert_eq!(
            ColumnDecoder::new(&bad).err(),
            Some(DecodeError::Truncated { at: 9 })
        );
        bad[10] = 2;
        bad.push(0xff);
        assert!(matches!(
            ColumnDecoder::new(&bad),
            Err(DecodeError::BadUtf8 { .. })
        ));
        assert_eq!(
            Values::new(&[0x80, 1, 0, 0, 0, 1, 0, 0, 0, 9]).next_value(),
            Err(DecodeError::BadTag { tag: 9, at: 9 })
        );
    }
}
