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
//! No dependencies, no allocation when decoding: text and blobs borrow from the buffer.

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
}
