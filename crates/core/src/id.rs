//! Request identifiers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Identifies one access request (and the grant that follows it): `req_` and 16 characters of
/// lowercase Crockford base32 (80 random bits), chosen by whoever creates the request.
///
/// Held inline (ids are in every request event and every lookup), always valid ASCII.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId([u8; TEXT_LEN]);

const PREFIX: &str = "req_";

/// How a link that opens a request begins (`breakglass://request/ID`).
pub const REQUEST_LINK_PREFIX: &str = "breakglass://request/";
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const LEN: usize = 16;
const TEXT_LEN: usize = PREFIX.len() + LEN;
/// Each byte's value in [`ALPHABET`], or `NOT_IN_ALPHABET` (ids are parsed in every request
/// event of a log: a table lookup per character, not a search).
const VALUES: [u8; 256] = {
    let mut values = [NOT_IN_ALPHABET; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        values[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    values
};
const NOT_IN_ALPHABET: u8 = u8::MAX;

impl RequestId {
    /// Builds an id from 10 random bytes (the caller owns the randomness).
    pub fn from_random(bytes: [u8; 10]) -> Self {
        let mut bits: u128 = 0;
        for b in bytes {
            bits = (bits << 8) | u128::from(b);
        }
        let mut text = [0u8; TEXT_LEN];
        text[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        for (i, c) in text[PREFIX.len()..].iter_mut().enumerate() {
            *c = ALPHABET[((bits >> ((LEN - 1 - i) * 5)) & 31) as usize];
        }
        Self(text)
    }

    /// The 80 random bits the id spells: the inverse of [`RequestId::from_random`].
    pub fn to_random(&self) -> [u8; 10] {
        let mut bits: u128 = 0;
        for &c in &self.0[PREFIX.len()..] {
            // Every character is in the alphabet: ids are built or parsed only from it.
            let value = VALUES[usize::from(c)] & 31;
            bits = (bits << 5) | u128::from(value);
        }
        let mut bytes = [0u8; 10];
        bytes.copy_from_slice(&bits.to_be_bytes()[6..]);
        bytes
    }

    /// Parses an id, saying what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = s.starts_with(PREFIX)
            && s[PREFIX.len()..]
                .bytes()
                .all(|c| VALUES[usize::from(c)] != NOT_IN_ALPHABET);
        match <[u8; TEXT_LEN]>::try_from(s.as_bytes()) {
            Ok(text) if ok => Ok(Self(text)),
            _ => Err(format!(
                "{:?} is not a request id (ids look like req_7k2m9x4p1q3r5s6t)",
                s.chars().take(40).collect::<String>()
            )),
        }
    }

    /// Parses a link that opens a request in the desktop app: exactly
    /// [`REQUEST_LINK_PREFIX`] followed by an id, with at most one trailing slash (some launchers
    /// add one). Anything else (another scheme or path, a query, a fragment) is refused.
    pub fn from_link(link: &str) -> Result<Self, String> {
        let refused = || {
            format!(
                "not a Breakglass link (expected {REQUEST_LINK_PREFIX}ID): {:?}",
                link.chars().take(80).collect::<String>()
            )
        };
        let rest = link.strip_prefix(REQUEST_LINK_PREFIX).ok_or_else(refused)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        Self::parse(rest).map_err(|_| refused())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        // Only ASCII from the alphabet is ever stored, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
    fn an_id_spells_its_random_bits_back() {
        for bytes in [
            [0u8; 10],
            [0xff; 10],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            [0x80; 10],
        ] {
            let id = RequestId::from_random(bytes);
            assert_eq!(id.to_random(), bytes);
            assert_eq!(RequestId::parse(id.as_str()).unwrap().to_random(), bytes);
        }
    }

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
            "req_zzzzzzzzzzzzzzzzz",
            "req_zzzzzzzzzzzzzz\u{e9}",
        ] {
            assert!(RequestId::parse(s).is_err(), "{s:?} is not an id");
        }
    }

    #[test]
    fn exactly_the_alphabet_is_accepted_in_every_position() {
        for c in (0u8..=127).map(char::from) {
            let in_alphabet = ALPHABET.contains(&(c as u8));
            for at in 0..LEN {
                let mut text = String::from("req_");
                text.extend((0..LEN).map(|i| if i == at { c } else { 'z' }));
                assert_eq!(
                    RequestId::parse(&text).is_ok(),
                    in_alphabet,
                    "{text:?}: {c:?} is {}in the alphabet",
                    if in_alphabet { "" } else { "not " }
                );
            }
        }
    }
}
