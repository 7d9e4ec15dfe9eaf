//! Canonical JSON for signed records: one byte string per value, so a
//! signature covers exactly one meaning.
//!
//! The encoding is serde_json's compact output with object keys sorted by
//! their UTF-8 bytes, integers only (no floats) and at most
//! [`MAX_JSON_DEPTH`] nested arrays or objects.

use serde::Serialize;
use serde_json::Value;

/// Deepest nesting of arrays and objects accepted in either direction; signed
/// records are shallow, and a bound keeps recursion safe on hostile input.
pub const MAX_JSON_DEPTH: usize = 32;

/// Errors from writing or parsing canonical JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// The value could not be turned into JSON (for example a map with
    /// non-string keys, or an integer beyond 64 bits).
    #[error("value cannot be represented as JSON: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The input is not JSON at all (syntax error, invalid UTF-8, trailing
    /// data).
    #[error("input is not valid JSON: {0}")]
    Parse(#[source] serde_json::Error),
    /// A number is not an integer in the `i64` or `u64` range; floats have no
    /// single canonical spelling, so signed records may not contain them.
    #[error("number {number} at {path} is not a 64-bit integer")]
    NotAnInteger {
        /// The number as serde_json prints it.
        number: String,
        /// JSON-pointer-like location of the number.
        path: String,
    },
    /// Arrays and objects are nested deeper than [`MAX_JSON_DEPTH`].
    #[error("nesting deeper than {max} levels at {path}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Location where the limit was exceeded.
        path: String,
    },
    /// The input is longer than the caller's limit.
    #[error("input is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The caller's limit.
        max: usize,
    },
    /// The input is valid JSON but not in canonical form (whitespace, key
    /// order, duplicate keys, escapes or number spelling differ).
    #[error("JSON is not canonical: first difference at byte {offset}")]
    NotCanonical {
        /// Byte offset of the first difference from the canonical encoding.
        offset: usize,
    },
}

/// Serialises `value` as canonical JSON.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(value).map_err(CanonicalError::Serialize)?;
    to_canonical_value(&value)
}

/// Encodes a JSON value as canonical JSON.
pub fn to_canonical_value(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::new();
    let mut path = String::new();
    write_value(&mut out, value, 0, &mut path)?;
    Ok(out)
}

/// Parses bytes that must already be canonical JSON.
///
/// The input is decoded and re-encoded, and the two must be byte-identical,
/// so duplicate or reordered keys, whitespace, unnecessary escapes (`\u0041`)
/// and non-minimal numbers are all rejected. Input longer than `max_len`
/// bytes is rejected before parsing.
pub fn parse_canonical(bytes: &[u8], max_len: usize) -> Result<Value, CanonicalError> {
    if bytes.len() > max_len {
        return Err(CanonicalError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    // serde_json's own recursion limit (128) bounds the parse; our tighter
    // limit is enforced by the re-encoding below.
    let value: Value = serde_json::from_slice(bytes).map_err(CanonicalError::Parse)?;
    let canonical = to_canonical_value(&value)?;
    if canonical != bytes {
        return Err(CanonicalError::NotCanonical {
            offset: first_difference(&canonical, bytes),
        });
    }
    Ok(value)
}

fn write_value(
    out: &mut Vec<u8>,
    value: &Value,
    depth: usize,
    path: &mut String,
) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // Written from the integer itself rather than the Number's
            // Display, which under serde_json's `arbitrary_precision` feature
            // would echo the input's spelling.
            if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                return Err(CanonicalError::NotAnInteger {
                    number: n.to_string(),
                    path: display_path(path),
                });
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            check_depth(depth, path)?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                write_value(out, item, depth + 1, path)?;
                path.truncate(len);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            check_depth(depth, path)?;
            // Sorted here, not by the Map: a dependency enabling serde_json's
            // `preserve_order` would otherwise change our signed bytes.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                let len = path.len();
                path.push('/');
                path.push_str(key);
                write_value(out, item, depth + 1, path)?;
                path.truncate(len);
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn check_depth(depth: usize, path: &str) -> Result<(), CanonicalError> {
    if depth >= MAX_JSON_DEPTH {
        Err(CanonicalError::TooDeep {
            max: MAX_JSON_DEPTH,
            path: display_path(path),
        })
    } else {
        Ok(())
    }
}

fn display_path(path: &str) -> String {
    const LIMIT: usize = 200;
    let shown: String = path.chars().take(LIMIT).collect();
    if shown.is_empty() {
        "/".to_owned()
    } else {
        shown
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is the canonical one: `"` and `\`, the short
    // escapes \b \f \n \r \t, other control characters as \u00xx, and
    // everything else as raw UTF-8. Writing a &str into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, s).is_err() {
        debug_assert!(false, "serialising a string into memory cannot fail");
    }
}

/// Offset of the first byte where `a` and `b` differ (the shorter length if one is a prefix).
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.len().min(b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sorted_by_bytes_and_compact() {
        let v = json!({"b": 1, "a": [true, null, -3], "é": "x", "Z": {"y": 1, "x": 2}});
        let bytes = to_canonical_value(&v).expect("canonical");
        assert_eq!(
            std::str::from_utf8(&bytes).expect("utf-8"),
            r#"{"Z":{"x":2,"y":1},"a":[true,null,-3],"b":1,"é":"x"}"#
        );
    }

    #[test]
    fn depth_limit_is_exact() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(
            parse_canonical(ok.as_bytes(), 1024).is_ok(),
            "{MAX_JSON_DEPTH} levels are allowed"
        );
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        assert!(matches!(
            parse_canonical(deep.as_bytes(), 1024),
            Err(CanonicalError::TooDeep { .. })
        ));
    }
}
