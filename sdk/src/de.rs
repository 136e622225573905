//! Rows straight from the packed encoding into Rust types through serde.
//!
//! A row decodes into:
//! - a struct (or a map), by column name: each column whose name matches a field fills it;
//!   other columns are skipped; a missing `Option` field is `None`. Which column fills which
//!   field is worked out once per result (the [`Plan`]), not per row;
//! - a tuple (or a tuple struct, a `Vec`, an array), by position; a tuple's length must equal
//!   the number of columns;
//! - a single value (`i64`, `String`, `Option<f64>`, [`Value`](crate::Value), ...) when the
//!   result has exactly one column.
//!
//! Values decode with no intermediate [`Value`](crate::Value): integers into any integer type
//! that holds them (and `bool`, nonzero is true), reals (and integers) into `f64`/`f32`, text
//! into `String`/`char`/unit-variant enums (by variant name), blobs (and text) into byte
//! buffers or `Vec<u8>`, NULL into `Option::None` or `()`.

use std::collections::VecDeque;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, SeqDeserializer, StrDeserializer};
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, Expected, MapAccess, SeqAccess, Visitor,
};
use strata_wire::{Decoder, ValueRef};

use crate::{Error, Result};

/// Which field of the target struct each column fills, worked out on the first row.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// The identity (address, length) of the `fields` list the keys were worked out for.
    fields: Option<(usize, usize)>,
    /// Per column, the field name it fills, or `None` when the struct has no such field.
    keys: Vec<Option<&'static str>>,
}

impl Plan {
    fn prepare(&mut self, columns: &[String], fields: &'static [&'static str]) {
        let id = (fields.as_ptr() as usize, fields.len());
        if self.fields != Some(id) {
            self.keys = columns
                .iter()
                .map(|c| fields.iter().copied().find(|f| f == c))
                .collect();
            self.fields = Some(id);
        }
    }
}

/// Decodes `count` rows of `columns.len()` values from `data`, appending them to `out`.
///
/// Rows decoded before a failing one are kept in `out`; `first_row` is the 1-based number of
/// the first row in the whole result, for messages.
pub(crate) fn decode_rows<T: DeserializeOwned>(
    data: &[u8],
    count: u32,
    columns: &[String],
    plan: &mut Plan,
    first_row: u64,
    out: &mut VecDeque<T>,
) -> Result<()> {
    let mut dec = Decoder::new(data);
    for i in 0..u64::from(count) {
        let row = first_row + i;
        let mut de = RowDe {
            dec: &mut dec,
            columns,
            plan,
            taken: 0,
        };
        let value = T::deserialize(&mut de)
            .and_then(|v| de.skip_rest().map(|()| v))
            .map_err(|e| row_error(e, row, columns))?;
        out.push_back(value);
    }
    if !dec.is_done() {
        return Err(Error::decode(format!(
            "the host sent more values than {count} rows of {} columns",
            columns.len()
        )));
    }
    Ok(())
}

fn row_error(e: Error, row: u64, columns: &[String]) -> Error {
    let hint = e.message().starts_with("missing field");
    let e = e.context(format_args!("row {row}"));
    if hint {
        let names = columns
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!("{} (the query's columns are {names})", e.message());
        Error::decode(message)
    } else {
        e
    }
}

fn in_column(e: Error, column: &str) -> Error {
    e.context(format_args!("column `{column}`"))
}

/// How a value shows in a type-mismatch message.
struct Found<'a>(ValueRef<'a>);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const QUOTE_CHARS: usize = 40;
        match self.0 {
            ValueRef::Null => f.write_str("NULL"),
            ValueRef::Integer(i) => write!(f, "integer {i}"),
            ValueRef::Real(r) => write!(f, "real {r:?}"),
            ValueRef::Text(s) => match s.char_indices().nth(QUOTE_CHARS) {
                Some((cut, _)) => write!(f, "text {:?}...", &s[..cut]),
                None => write!(f, "text {s:?}"),
            },
            ValueRef::Blob(b) => write!(f, "a blob of {} bytes", b.len()),
        }
    }
}

fn mismatch<T>(found: ValueRef<'_>, expected: &dyn Expected) -> Result<T> {
    let hint = if matches!(found, ValueRef::Null) {
        " (use an Option for a column that may be NULL)"
    } else {
        ""
    };
    Err(Error::decode(format!(
        "expected {expected}, found {}{hint}",
        Found(found)
    )))
}

/// The deserializer of one row.
struct RowDe<'a, 'de> {
    dec: &'a mut Decoder<'de>,
    columns: &'a [String],
    plan: &'a mut Plan,
    /// Values of the row read so far.
    taken: usize,
}

impl<'a, 'de> RowDe<'a, 'de> {
    /// The next value of the row and its column name; `None` after the last column.
    fn next(&mut self) -> Result<Option<(ValueRef<'de>, &'a str)>> {
        let columns = self.columns;
        let Some(name) = columns.get(self.taken) else {
            return Ok(None);
        };
        let value = self
            .dec
            .next_value()
            .map_err(|e| Error::decode(e.to_string()))?
            .ok_or_else(|| Error::decode("the host sent fewer values than its rows hold"))?;
        self.taken += 1;
        Ok(Some((value, name)))
    }

    fn skip_rest(&mut self) -> Result<()> {
        while self.next()?.is_some() {}
        Ok(())
    }

    fn remaining(&self) -> usize {
        self.columns.len() - self.taken
    }

    /// The only value of a one-column row, for a target that is a single value.
    fn single(&mut self, expected: &dyn Expected) -> Result<(ValueRef<'de>, &'a str)> {
        if self.columns.len() != 1 {
            return Err(Error::decode(format!(
                "the query returns {} columns but {expected} takes one; \
                 decode rows into a tuple or a struct",
                self.columns.len()
            )));
        }
        self.next()?
            .ok_or_else(|| Error::decode("the row was already read"))
    }
}

macro_rules! single_value {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value> {
            let (value, column) = self.single(&visitor)?;
            ValueDe(value)
                .$method($($arg,)* visitor)
                .map_err(|e| in_column(e, column))
        }
    )*};
}

impl<'de> Deserializer<'de> for &mut RowDe<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.columns.len() == 1 {
            let (value, column) = self.single(&visitor)?;
            ValueDe(value)
                .deserialize_any(visitor)
                .map_err(|e| in_column(e, column))
        } else {
            self.deserialize_map(visitor)
        }
    }

    single_value! {
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.columns.len() == 1 {
            // `Option<String>` of a one-column query: `None` for NULL.
            let (value, column) = self.single(&visitor)?;
            ValueDe(value)
                .deserialize_option(visitor)
                .map_err(|e| in_column(e, column))
        } else {
            // A row is never NULL: `Option<(i64, String)>` reads it as `Some`.
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(RowSeq(self))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        if len != self.columns.len() {
            return Err(Error::decode(format!(
                "the query returns {} columns but {} has {len} fields",
                self.columns.len(),
                &visitor as &dyn Expected
            )));
        }
        visitor.visit_seq(RowSeq(self))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_map(RowMap {
            de: self,
            by_field: false,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.plan.prepare(self.columns, fields);
        visitor.visit_map(RowMap {
            de: self,
            by_field: true,
        })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.skip_rest()?;
        visitor.visit_unit()
    }
}

/// A row as a sequence, by position.
struct RowSeq<'r, 'a, 'de>(&'r mut RowDe<'a, 'de>);

impl<'de> SeqAccess<'de> for RowSeq<'_, '_, 'de> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        match self.0.next()? {
            None => Ok(None),
            Some((value, column)) => seed
                .deserialize(ValueDe(value))
                .map(Some)
                .map_err(|e| in_column(e, column)),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.remaining())
    }
}

/// A row as a map from column names (or, for a struct, the field each column fills) to values.
struct RowMap<'r, 'a, 'de> {
    de: &'r mut RowDe<'a, 'de>,
    /// Whether keys come from the [`Plan`] (a struct) rather than the column names (a map).
    by_field: bool,
}

impl<'de> MapAccess<'de> for RowMap<'_, '_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        loop {
            let i = self.de.taken;
            let Some(column) = self.de.columns.get(i) else {
                return Ok(None);
            };
            if !self.by_field {
                return seed.deserialize(StrDeserializer::new(column)).map(Some);
            }
            match self.de.plan.keys[i] {
                Some(field) => {
                    return seed
                        .deserialize(BorrowedStrDeserializer::new(field))
                        .map(Some);
                }
                // A column the struct has no field for: skip its value.
                None => {
                    self.de.next()?;
                }
            }
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value> {
        let (value, column) = self
            .de
            .next()?
            .ok_or_else(|| Error::decode("a value was asked for after the last column"))?;
        seed.deserialize(ValueDe(value))
            .map_err(|e| in_column(e, column))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.de.remaining())
    }
}

/// The deserializer of one value.
struct ValueDe<'de>(ValueRef<'de>);

macro_rules! integer {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            match self.0 {
                ValueRef::Integer(i) => visitor.visit_i64(i),
                other => mismatch(other, &visitor),
            }
        }
    )*};
}

macro_rules! real {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            match self.0 {
                ValueRef::Real(r) => visitor.visit_f64(r),
                ValueRef::Integer(i) => visitor.visit_f64(i as f64),
                other => mismatch(other, &visitor),
            }
        }
    )*};
}

macro_rules! text {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            match self.0 {
                ValueRef::Text(s) => visitor.visit_borrowed_str(s),
                other => mismatch(other, &visitor),
            }
        }
    )*};
}

macro_rules! bytes {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            match self.0 {
                ValueRef::Blob(b) => visitor.visit_borrowed_bytes(b),
                ValueRef::Text(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
                other => mismatch(other, &visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for ValueDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.0 {
            ValueRef::Null => visitor.visit_unit(),
            ValueRef::Integer(i) => visitor.visit_i64(i),
            ValueRef::Real(r) => visitor.visit_f64(r),
            ValueRef::Text(s) => visitor.visit_borrowed_str(s),
            ValueRef::Blob(b) => visitor.visit_borrowed_bytes(b),
        }
    }

    integer!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128);
    integer!(deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);
    real!(deserialize_f32 deserialize_f64);
    text!(deserialize_str deserialize_string deserialize_identifier);
    bytes!(deserialize_bytes deserialize_byte_buf);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.0 {
            ValueRef::Integer(i) => visitor.visit_bool(i != 0),
            other => mismatch(other, &visitor),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if let ValueRef::Text(s) = self.0 {
            let mut chars = s.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                return visitor.visit_char(c);
            }
        }
        mismatch(self.0, &visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.0 {
            ValueRef::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.0 {
            ValueRef::Null => visitor.visit_unit(),
            other => mismatch(other, &visitor),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        // `Vec<u8>` asks for a sequence of `u8`.
        let bytes = match self.0 {
            ValueRef::Blob(b) => b,
            ValueRef::Text(s) => s.as_bytes(),
            other => return mismatch(other, &visitor),
        };
        let mut seq = SeqDeserializer::<_, Error>::new(bytes.iter().copied());
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        mismatch(self.0, &visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        mismatch(self.0, &visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        mismatch(self.0, &visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        mismatch(self.0, &visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        // A unit variant, stored as its name.
        match self.0 {
            ValueRef::Text(s) => visitor.visit_enum(BorrowedStrDeserializer::<Error>::new(s)),
            other => mismatch(other, &visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};

    use serde::Deserialize;
    use strata_wire::Encoder;

    use super::*;
    use crate::{ErrorKind, Value};

    /// Packs rows of values the way the host does.
    fn pack(rows: &[&[ValueRef<'_>]]) -> (Vec<u8>, u32) {
        let mut enc = Encoder::new();
        for row in rows {
            for v in *row {
                enc.value(*v);
            }
        }
        (enc.take(), rows.len() as u32)
    }

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn decode<T: DeserializeOwned>(names: &[&str], rows: &[&[ValueRef<'_>]]) -> Result<Vec<T>> {
        let (data, count) = pack(rows);
        let mut out = VecDeque::new();
        decode_rows(
            &data,
            count,
            &cols(names),
            &mut Plan::default(),
            1,
            &mut out,
        )?;
        Ok(out.into())
    }

    use ValueRef::{Blob, Integer, Null, Real, Text};

    #[derive(Debug, Deserialize, PartialEq)]
    struct Person {
        id: i64,
        full_name: String,
        nickname: Option<String>,
    }

    #[test]
    fn structs_decode_by_column_name() {
        let rows: Vec<Person> = decode(
            &["full_name", "ignored", "id", "nickname"],
            &[
                &[Text("Ada Lovelace"), Real(1.0), Integer(1), Null],
                &[Text("Zoë Brontë"), Null, Integer(2), Text("Zo")],
            ],
        )
        .unwrap();
        assert_eq!(
            rows,
            [
                Person {
                    id: 1,
                    full_name: "Ada Lovelace".into(),
                    nickname: None
                },
                Person {
                    id: 2,
                    full_name: "Zoë Brontë".into(),
                    nickname: Some("Zo".into())
                },
            ]
        );
    }

    #[test]
    fn a_missing_option_field_is_none_and_a_missing_field_is_named() {
        let rows: Vec<Person> =
            decode(&["id", "full_name"], &[&[Integer(3), Text("Søren")]]).unwrap();
        assert_eq!(rows[0].nickname, None);

        let e = decode::<Person>(&["id", "name"], &[&[Integer(3), Text("Søren")]]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert_eq!(
            e.message(),
            "row 1: missing field `full_name` (the query's columns are `id`, `name`)"
        );
    }

    #[test]
    fn renamed_and_aliased_fields_match_columns() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Renamed {
            #[serde(rename = "id")]
            key: i64,
            #[serde(alias = "full_name")]
            name: String,
            #[serde(default)]
            score: f64,
        }
        let rows: Vec<Renamed> = decode(
            &["full_name", "id"],
            &[&[Text("Ñuño"), Integer(9)], &[Text("Łukasz"), Integer(10)]],
        )
        .unwrap();
        assert_eq!(
            rows,
            [
                Renamed {
                    key: 9,
                    name: "Ñuño".into(),
                    score: 0.0
                },
                Renamed {
                    key: 10,
                    name: "Łukasz".into(),
                    score: 0.0
                }
            ]
        );
    }

    #[test]
    fn tuples_decode_by_position() {
        let rows: Vec<(i64, Option<String>, f64, Vec<u8>)> = decode(
            &["a", "b", "c", "d"],
            &[
                &[Integer(-4), Text("x"), Real(0.25), Blob(&[1, 2])],
                &[Integer(i64::MAX), Null, Integer(3), Text("hi")],
            ],
        )
        .unwrap();
        assert_eq!(
            rows,
            [
                (-4, Some("x".into()), 0.25, vec![1, 2]),
                (i64::MAX, None, 3.0, b"hi".to_vec())
            ]
        );
        let e = decode::<(i64, String)>(&["a"], &[&[Integer(1)]]).unwrap_err();
        assert_eq!(
            e.message(),
            "row 1: the query returns 1 columns but a tuple of size 2 has 2 fields"
        );
    }

    #[test]
    fn single_columns_decode_as_their_value() {
        assert_eq!(decode::<i64>(&["n"], &[&[Integer(5)]]).unwrap(), [5]);
        assert_eq!(
            decode::<Option<String>>(&["n"], &[&[Null], &[Text("é")]]).unwrap(),
            [None, Some("é".into())]
        );
        assert_eq!(
            decode::<bool>(&["b"], &[&[Integer(0)], &[Integer(2)]]).unwrap(),
            [false, true]
        );
        assert_eq!(decode::<char>(&["c"], &[&[Text("ß")]]).unwrap(), ['ß']);
        let e = decode::<i64>(&["a", "b"], &[&[Integer(1), Integer(2)]]).unwrap_err();
        assert_eq!(
            e.message(),
            "row 1: the query returns 2 columns but i64 takes one; \
             decode rows into a tuple or a struct"
        );
    }

    #[test]
    fn every_value_type_decodes_into_value_and_maps() {
        let rows: Vec<Vec<Value>> = decode(
            &["a", "b", "c", "d", "e"],
            &[&[Null, Integer(1), Real(1.5), Text("t"), Blob(&[0])]],
        )
        .unwrap();
        assert_eq!(
            rows[0],
            [
                Value::Null,
                Value::Integer(1),
                Value::Real(1.5),
                Value::Text("t".into()),
                Value::Blob(vec![0])
            ]
        );
        let maps: Vec<BTreeMap<String, Value>> =
            decode(&["x", "y"], &[&[Integer(1), Text("z")]]).unwrap();
        assert_eq!(maps[0]["x"], Value::Integer(1));
        assert_eq!(maps[0]["y"], Value::Text("z".into()));
        let one: Vec<Value> = decode(&["x"], &[&[Real(2.0)]]).unwrap();
        assert_eq!(one, [Value::Real(2.0)]);
    }

    #[test]
    fn type_mismatches_name_the_row_and_column() {
        let e = decode::<Person>(
            &["id", "full_name"],
            &[&[Integer(1), Text("a")], &[Text("seven"), Text("b")]],
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert_eq!(
            e.message(),
            "row 2: column `id`: expected i64, found text \"seven\""
        );

        let e = decode::<Person>(&["id", "full_name"], &[&[Integer(1), Null]]).unwrap_err();
        assert_eq!(
            e.message(),
            "row 1: column `full_name`: expected a string, found NULL \
             (use an Option for a column that may be NULL)"
        );

        let e = decode::<(u8,)>(&["small"], &[&[Integer(300)]]).unwrap_err();
        assert_eq!(
            e.message(),
            "row 1: column `small`: invalid value: integer `300`, expected u8"
        );

        let e = decode::<(String,)>(&["b"], &[&[Blob(&[1, 2, 3])]]).unwrap_err();
        assert_eq!(
            e.message(),
            "row 1: column `b`: expected a string, found a blob of 3 bytes"
        );

        let e = decode::<(i64,)>(&["r"], &[&[Real(1.5)]]).unwrap_err();
        assert_eq!(
            e.message(),
            "row 1: column `r`: expected i64, found real 1.5"
        );
    }

    #[test]
    fn enums_decode_from_their_variant_name() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Status {
            Active,
            Gone,
        }
        assert_eq!(
            decode::<(Status,)>(&["s"], &[&[Text("gone")], &[Text("active")]]).unwrap(),
            [(Status::Gone,), (Status::Active,)]
        );
        assert!(decode::<(Status,)>(&["s"], &[&[Text("other")]]).is_err());
    }

    #[test]
    fn the_plan_is_kept_across_rows_and_batches() {
        let columns = cols(&["id", "extra", "full_name"]);
        let mut plan = Plan::default();
        let mut out = VecDeque::<Person>::new();
        for batch in 0..2 {
            let (data, count) = pack(&[
                &[Integer(batch), Integer(0), Text("a")],
                &[Integer(batch + 10), Null, Text("b")],
            ]);
            decode_rows(&data, count, &columns, &mut plan, 1, &mut out).unwrap();
            assert_eq!(plan.keys, [Some("id"), None, Some("full_name")]);
        }
        assert_eq!(out.iter().map(|p| p.id).collect::<Vec<_>>(), [0, 10, 1, 11]);
    }

    #[test]
    fn damaged_batches_are_errors() {
        let (mut data, count) = pack(&[&[Integer(1), Text("a")]]);
        data.pop();
        let e = decode_rows::<(i64, String)>(
            &data,
            count,
            &cols(&["a", "b"]),
            &mut Plan::default(),
            1,
            &mut VecDeque::new(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.message().contains("end inside the value"), "{e}");

        let (data, _) = pack(&[&[Integer(1)], &[Integer(2)]]);
        let e = decode_rows::<(i64,)>(
            &data,
            1,
            &cols(&["a"]),
            &mut Plan::default(),
            1,
            &mut VecDeque::new(),
        )
        .unwrap_err();
        assert!(e.message().contains("more values"), "{e}");
    }
}
