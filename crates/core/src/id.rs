//! Request identifiers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Identifies one access request (and the grant that follows it): `req_` and 16 characters of
/// lowercase Crockford base32 (80 random bits), chosen by whoever creates the request.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

const PREFIX: &str = "req_";
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const LEN: usize = 16;

impl RequestId {
    /// Builds an id from 10 random bytes (the caller owns the randomness).
    pub fn from_random(bytes: [u8; 10]) -> Self {
        let mut bits: u128 = 0;
        for b in bytes {
            bits = (bits << 8) | u128::from(b);
        }
        let mut s = String::with_capacity(PREFIX.len() + LEN);
        s.push_str(PREFIX);
        for i in (0..LEN).rev() {
            s.push(ALPHABET[((bits >> (i * 5)) & 31) as usize] as char);
        }
        Self(s)
    }

    /// Parses an id, saying what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = s.len() == PREFIX.len() + LEN
            && s.starts_with(PREFIX)
            && s[PREFIX.len()..].bytes().all(|c| ALPHABET.contains(&c));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{:?} is not a request id (ids look like req_7k2m9x4p1q3r5s6t)",
                s.chars().take(40).collect::<String>()
            ))
        }
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::from_str_with(d, "a request id", Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_parse_back() {
        let id = RequestId::from_random([0xff; 10]);
        assert_eq!(id.as_str(), "req_zzzzzzzzzzzzzzzz");
        assert_eq!(RequestId::parse(id.as_str()).unwrap(), id);
        let zero = RequestId::from_random([0; 10]);
        assert_eq!(zero.as_str(), "req_0000000000000000");
    }

    #[test]
    fn malformed_ids_are_refused() {
        for s in [
            "",
            "req_",
            "req_zzzzzzzzzzzzzzz",
            "REQ_zzzzzzzzzzzzzzzz",
            "req_zzzzzzzzzzzzzzzu",
        ] {
            assert!(RequestId::parse(s).is_err(), "{s:?} is not an id");
        }
    }
}
