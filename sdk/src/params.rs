//! [`Param`] and [`Params`]: Rust values packed straight into the wire encoding, for
//! [`Writer`](crate::sql::Writer).

use strata_wire::{Encoder, ValueRef};

use crate::Value;

/// One value that packs into the wire encoding without becoming a [`Value`] first.
///
/// Implemented for the integer types up to `i64`/`u32`, `bool` (1 or 0), `f64`, `f32`, `str`,
/// `String`, `[u8]`, `Vec<u8>`, [`Value`], [`ValueRef`], `Option<T>` (NULL for `None`) and
/// references to any of them. Implement it for your own types to push them through a
/// [`Writer`](crate::sql::Writer).
pub trait Param {
    /// Appends the value to `enc`.
    fn encode(&self, enc: &mut Encoder);
}

/// The parameters of one execution of a statement: one row pushed into a
/// [`Writer`](crate::sql::Writer).
///
/// Implemented for tuples of up to 12 [`Param`]s, for arrays, slices and `Vec`s of one
/// [`Param`] type (such as `Vec<Value>`), for `()` (no parameters), and for references to any
/// of them.
pub trait Params {
    /// How many values [`encode`](Params::encode) appends.
    fn columns(&self) -> usize;
    /// Appends the values to `enc`, in order.
    fn encode(&self, enc: &mut Encoder);
}

macro_rules! integer_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            #[inline]
            fn encode(&self, enc: &mut Encoder) {
                enc.integer(i64::from(*self));
            }
        }
    )*};
}
integer_param!(i64, i32, i16, i8, u32, u16, u8, bool);

impl Param for f64 {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        enc.real(*self);
    }
}

impl Param for f32 {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        enc.real(f64::from(*self));
    }
}

impl Param for str {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        enc.text(self);
    }
}

impl Param for String {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        enc.text(self);
    }
}

impl Param for [u8] {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        enc.blob(self);
    }
}

impl Param for Vec<u8> {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        enc.blob(self);
    }
}

impl Param for Value {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        enc.value(self.as_value_ref());
    }
}

impl Param for ValueRef<'_> {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        enc.value(*self);
    }
}

impl<T: Param> Param for Option<T> {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Some(v) => v.encode(enc),
            None => enc.null(),
        }
    }
}

impl<T: Param + ?Sized> Param for &T {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        (**self).encode(enc);
    }
}

impl<T: Param + ?Sized> Param for Box<T> {
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        (**self).encode(enc);
    }
}

impl Params for () {
    fn columns(&self) -> usize {
        0
    }
    fn encode(&self, _: &mut Encoder) {}
}

macro_rules! tuple_params {
    ($(($n:expr; $($t:ident $i:tt),+))*) => {$(
        impl<$($t: Param),+> Params for ($($t,)+) {
            #[inline]
            fn columns(&self) -> usize {
                $n
            }
            #[inline]
            fn encode(&self, enc: &mut Encoder) {
                $(self.$i.encode(enc);)+
            }
        }
    )*};
}
tuple_params! {
    (1; A 0)
    (2; A 0, B 1)
    (3; A 0, B 1, C 2)
    (4; A 0, B 1, C 2, D 3)
    (5; A 0, B 1, C 2, D 3, E 4)
    (6; A 0, B 1, C 2, D 3, E 4, F 5)
    (7; A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
    (9; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8)
    (10; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9)
    (11; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10)
    (12; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11)
}

impl<T: Param> Params for [T] {
    fn columns(&self) -> usize {
        self.len()
    }
    fn encode(&self, enc: &mut Encoder) {
        for v in self {
            v.encode(enc);
        }
    }
}

impl<T: Param, const N: usize> Params for [T; N] {
    fn columns(&self) -> usize {
        N
    }
    fn encode(&self, enc: &mut Encoder) {
        self.as_slice().encode(enc);
    }
}

impl<T: Param> Params for Vec<T> {
    fn columns(&self) -> usize {
        self.len()
    }
    fn encode(&self, enc: &mut Encoder) {
        self.as_slice().encode(enc);
    }
}

impl<P: Params + ?Sized> Params for &P {
    #[inline]
    fn columns(&self) -> usize {
        (**self).columns()
    }
    #[inline]
    fn encode(&self, enc: &mut Encoder) {
        (**self).encode(enc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_wire::Decoder;

    fn packed(p: impl Params) -> (usize, Vec<u8>) {
        let mut enc = Encoder::new();
        p.encode(&mut enc);
        (p.columns(), enc.take())
    }

    fn values(bytes: &[u8]) -> Vec<ValueRef<'_>> {
        let mut d = Decoder::new(bytes);
        std::iter::from_fn(|| d.next_value().unwrap()).collect()
    }

    #[test]
    fn tuples_pack_in_order() {
        let first = String::from("Élodie");
        let (n, bytes) = packed((
            &first,
            "Brontë",
            17i64,
            None::<&str>,
            2.5f64,
            true,
            &b"\x00\xff"[..],
        ));
        assert_eq!(n, 7);
        assert_eq!(
            values(&bytes),
            [
                ValueRef::Text("Élodie"),
                ValueRef::Text("Brontë"),
                ValueRef::Integer(17),
                ValueRef::Null,
                ValueRef::Real(2.5),
                ValueRef::Integer(1),
                ValueRef::Blob(&[0, 255]),
            ]
        );
    }

    #[test]
    fn packing_matches_the_wire_crate() {
        let (_, bytes) = packed((1i32, "ab"));
        let mut enc = Encoder::new();
        enc.integer(1);
        enc.text("ab");
        assert_eq!(bytes, enc.as_bytes());
    }

    #[test]
    fn values_slices_and_unit_pack() {
        let row = vec![
            Value::Integer(1),
            Value::Null,
            Value::from("x"),
            Value::Blob(vec![7]),
        ];
        let (n, bytes) = packed(&row);
        assert_eq!(n, 4);
        assert_eq!(
            values(&bytes),
            [
                ValueRef::Integer(1),
                ValueRef::Null,
                ValueRef::Text("x"),
                ValueRef::Blob(&[7])
            ]
        );
        assert_eq!(packed([1u8, 2]).0, 2);
        assert_eq!(packed(()), (0, vec![]));
        assert_eq!(
            values(&packed((Some(Some(3u16)), Box::new(-1i8), vec![1u8])).1),
            [
                ValueRef::Integer(3),
                ValueRef::Integer(-1),
                ValueRef::Blob(&[1])
            ]
        );
    }
}
