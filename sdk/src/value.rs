//! [`Value`]: conversions from Rust types, accessors, and its serde `Deserialize`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use strata_wire::ValueRef;

/// A SQLite value, owned: what [`sql::execute`](crate::sql::execute) and
/// [`params!`](crate::params) take, and what any column can be read into.
///
/// Converts `From` the integer types up to `i64`/`u32`, `bool` (1 or 0), `f64`, `f32`, `&str`,
/// `String`, `&[u8]`, `Vec<u8>` (a blob) and `Option<T>` (NULL for `None`). Implements
/// `serde::Deserialize`, so a `Value` field, tuple element or `Vec<Value>` row accepts any
/// column.
pub use crate::bindings::sql_api::Value;

impl Value {
    /// Borrows the value as the packed encoding's [`ValueRef`].
    pub fn as_value_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }

    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, if this is a real or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Real(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is a blob.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(b) => Some(b),
            _ => None,
        }
    }
}

impl From<ValueRef<'_>> for Value {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            /// An integer.
            fn from(v: $t) -> Self {
                Value::Integer(i64::from(v))
            }
        }
    )*};
}
from_integer!(i64, i32, i16, i8, u32, u16, u8);

impl From<bool> for Value {
    /// SQLite's boolean: the integer 1 or 0.
    fn from(v: bool) -> Self {
        Value::Integer(i64::from(v))
    }
}

impl From<f64> for Value {
    /// A real.
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<f32> for Value {
    /// A real.
    fn from(v: f32) -> Self {
        Value::Real(f64::from(v))
    }
}

impl From<&str> for Value {
    /// A text.
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<&String> for Value {
    /// A text.
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<String> for Value {
    /// A text.
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&[u8]> for Value {
    /// A blob.
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    /// A blob.
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl From<&Value> for Value {
    fn from(v: &Value) -> Self {
        v.clone()
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    /// NULL for `None`.
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl<'de> Deserialize<'de> for Value {
    /// Any SQL value: a column of any type can be read into a `Value`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SQL value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"an integer below 2^63"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Real(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Blob(v.to_vec()))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Blob(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_values_convert() {
        assert_eq!(Value::from(7i64), Value::Integer(7));
        assert_eq!(Value::from(-7i32), Value::Integer(-7));
        assert_eq!(Value::from(u32::MAX), Value::Integer(4_294_967_295));
        assert_eq!(Value::from(true), Value::Integer(1));
        assert_eq!(Value::from(false), Value::Integer(0));
        assert_eq!(Value::from(1.5f64), Value::Real(1.5));
        assert_eq!(Value::from("Zoë"), Value::Text("Zoë".into()));
        assert_eq!(Value::from(String::from("a")), Value::Text("a".into()));
        assert_eq!(Value::from(vec![1u8, 2]), Value::Blob(vec![1, 2]));
        assert_eq!(Value::from(&[3u8][..]), Value::Blob(vec![3]));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(Some("x")), Value::Text("x".into()));
    }

    #[test]
    fn accessors_and_value_refs() {
        let text = Value::from("Søren");
        assert_eq!(text.as_str(), Some("Søren"));
        assert_eq!(text.as_i64(), None);
        assert_eq!(text.as_value_ref(), ValueRef::Text("Søren"));
        assert_eq!(Value::from(ValueRef::Blob(&[9])), Value::Blob(vec![9]));
        assert_eq!(Value::Integer(2).as_f64(), Some(2.0));
        assert!(Value::Null.is_null());
        assert_eq!(Value::Blob(vec![1]).as_bytes(), Some(&[1u8][..]));
    }

    #[test]
    fn the_params_macro_builds_a_slice() {
        let name = String::from("Łukasz");
        let params: &[Value] = crate::params![1, name.as_str(), None::<f64>, 2.5, true];
        assert_eq!(
            params,
            [
                Value::Integer(1),
                Value::Text("Łukasz".into()),
                Value::Null,
                Value::Real(2.5),
                Value::Integer(1)
            ]
        );
        let none: &[Value] = crate::params![];
        assert!(none.is_empty());
    }
}
