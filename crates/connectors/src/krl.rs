//! OpenSSH key revocation lists (KRL), the binary format sshd reads from its `RevokedKeys` file
//! (OpenSSH's PROTOCOL.krl). Only what revoking certificates needs is written: one certificate
//! section per CA, listing revoked serial numbers and key IDs. sshd refuses a certificate listed
//! here at once, whatever its validity.

use std::collections::{BTreeMap, BTreeSet};

use ssh_key::PublicKey;

use crate::ConnectorError;

/// "SSHKRL\n\0".
const MAGIC: u64 = 0x5353_484b_524c_0a00;
const FORMAT_VERSION: u32 = 1;
const SECTION_CERTIFICATES: u8 = 1;
const CERT_SERIAL_LIST: u8 = 0x20;
const CERT_KEY_ID: u8 = 0x23;

/// Certificates revoked, by the CA that signed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Krl {
    /// Increases with every change, so a reader can tell a newer list from an older one.
    pub version: u64,
    /// When the list was made (Unix seconds).
    pub generated: u64,
    /// A comment for people reading the file with `ssh-keygen -Q -l`.
    pub comment: String,
    cas: BTreeMap<Vec<u8>, Revoked>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Revoked {
    serials: BTreeSet<u64>,
    key_ids: BTreeSet<String>,
}

impl Krl {
    /// An empty list.
    pub fn new(version: u64, generated: u64, comment: impl Into<String>) -> Krl {
        Krl {
            version,
            generated,
            comment: comment.into(),
            cas: BTreeMap::new(),
        }
    }

    /// Revokes the certificate `ca` signed with serial number `serial` (never 0: OpenSSH does not
    /// revoke serial 0, which certificates without a serial carry).
    pub fn revoke_serial(&mut self, ca: &PublicKey, serial: u64) -> Result<(), ConnectorError> {
        if serial == 0 {
            return Err(ConnectorError::new(
                "a certificate cannot be revoked by serial 0",
            ));
        }
        self.entry(ca)?.serials.insert(serial);
        Ok(())
    }

    /// Revokes every certificate `ca` signed with key ID `key_id`.
    pub fn revoke_key_id(&mut self, ca: &PublicKey, key_id: &str) -> Result<(), ConnectorError> {
        if key_id.is_empty() {
            return Err(ConnectorError::new(
                "a certificate cannot be revoked by an empty key ID",
            ));
        }
        self.entry(ca)?.key_ids.insert(key_id.to_owned());
        Ok(())
    }

    fn entry(&mut self, ca: &PublicKey) -> Result<&mut Revoked, ConnectorError> {
        let blob = ca
            .to_bytes()
            .map_err(|e| ConnectorError::new(format!("encoding the CA's public key: {e}")))?;
        Ok(self.cas.entry(blob).or_default())
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
    }

    /// The list in OpenSSH's binary format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.generated.to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes()); // flags
        put_string(&mut out, b""); // reserved
        put_string(&mut out, self.comment.as_bytes());
        for (ca, revoked) in &self.cas {
            let mut section = Vec::new();
            put_string(&mut section, ca);
            put_string(&mut section, b""); // reserved
            if !revoked.serials.is_empty() {
                let mut serials = Vec::with_capacity(revoked.serials.len() * 8);
                for s in &revoked.serials {
                    serials.extend_from_slice(&s.to_be_bytes());
                }
                section.push(CERT_SERIAL_LIST);
                put_string(&mut section, &serials);
            }
            if !revoked.key_ids.is_empty() {
                let mut ids = Vec::new();
                for id in &revoked.key_ids {
                    put_string(&mut ids, id.as_bytes());
                }
                section.push(CERT_KEY_ID);
                put_string(&mut section, &ids);
            }
            out.push(SECTION_CERTIFICATES);
            put_string(&mut out, &section);
        }
        out
    }
}

/// An SSH wire-format string: a big-endian u32 length, then the bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("KRL fields are far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::{Algorithm, PrivateKey};

    fn ca() -> PublicKey {
        PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)
            .expect("a key")
            .public_key()
            .clone()
    }

    #[test]
    fn an_empty_list_is_the_header_alone() {
        let krl = Krl::new(7, 1_700_000_000, "breakglass");
        let bytes = krl.to_bytes();
        assert_eq!(&bytes[..8], b"SSHKRL\n\0");
        assert_eq!(&bytes[8..12], &1u32.to_be_bytes());
        assert_eq!(&bytes[12..20], &7u64.to_be_bytes());
        assert_eq!(&bytes[20..28], &1_700_000_000u64.to_be_bytes());
        assert_eq!(&bytes[28..36], &0u64.to_be_bytes());
        assert_eq!(&bytes[36..40], &0u32.to_be_bytes());
        assert_eq!(&bytes[40..44], &10u32.to_be_bytes());
        assert_eq!(&bytes[44..], b"breakglass");
    }

    #[test]
    fn serials_and_key_ids_are_listed_once_each_in_order() {
        let ca = ca();
        let mut krl = Krl::new(1, 0, "");
        krl.revoke_serial(&ca, 9).expect("serial 9");
        krl.revoke_serial(&ca, 3).expect("serial 3");
        krl.revoke_serial(&ca, 9).expect("serial 9 again");
        krl.revoke_key_id(&ca, "req_b").expect("key id");
        krl.revoke_key_id(&ca, "req_a").expect("key id");
        let bytes = krl.to_bytes();
        let blob = ca.to_bytes().expect("blob");
        let header = 8 + 4 + 8 + 8 + 8 + 4 + 4;
        let mut expected = vec![SECTION_CERTIFICATES];
        let mut section = Vec::new();
        put_string(&mut section, &blob);
        put_string(&mut section, b"");
        section.push(CERT_SERIAL_LIST);
        put_string(
            &mut section,
            &[3u64.to_be_bytes(), 9u64.to_be_bytes()].concat(),
        );
        section.push(CERT_KEY_ID);
        let mut ids = Vec::new();
        put_string(&mut ids, b"req_a");
        put_string(&mut ids, b"req_b");
        put_string(&mut section, &ids);
        put_string(&mut expected, &section);
        assert_eq!(&bytes[header..], &expected[..]);
    }

    #[test]
    fn serial_zero_and_empty_key_ids_are_refused() {
        let ca = ca();
        let mut krl = Krl::new(1, 0, "");
        assert!(krl.revoke_serial(&ca, 0).is_err());
        assert!(krl.revoke_key_id(&ca, "").is_err());
        assert!(krl.is_empty(), "a refused revocation changes nothing");
    }
}
