//! Deserialising types written as JSON strings without allocating an intermediate `String`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// Deserialises a string-encoded value by handing the borrowed (or transient) text to `parse`.
pub(crate) fn from_str_with<'de, D, T, F>(
    d: D,
    expecting: &'static str,
    parse: F,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    struct StrVisitor<T, F> {
        expecting: &'static str,
        parse: F,
        out: PhantomData<T>,
    }

    impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for StrVisitor<T, F> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }

    d.deserialize_str(StrVisitor {
        expecting,
        parse,
        out: PhantomData,
    })
}
