//! SSH certificates: the policy's certificate authority signs the requester's public key for the
//! target's principals, valid from just before the grant until the deadline, so sshd
//! (`TrustedUserCAKeys`) stops accepting it at the deadline by itself. Revoking adds the
//! certificate to the key revocation list sshd reads (`RevokedKeys`), which refuses it at once.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ssh_key::certificate::{Builder, CertType, Certificate};
use ssh_key::{Algorithm, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use breakglass_core::policy::SshSpec;
use breakglass_core::{Credential, Issued};

use crate::krl::Krl;
use crate::{Access, BoxFuture, Connector, ConnectorError, Secrets};

/// How far before the grant a certificate becomes valid, for hosts whose clocks run behind.
pub const DEFAULT_SKEW_SECS: u64 = 60;

/// How long a revoked certificate stays listed after its own expiry, for hosts whose clocks run
/// behind: past that, the certificate is refused as expired anyway.
pub const KEEP_AFTER_EXPIRY_SECS: u64 = 24 * 3600;

/// The certificate authority the policy names: an Ed25519 key in OpenSSH's format.
pub struct SshCa {
    key: PrivateKey,
}

impl std::fmt::Debug for SshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshCa")
            .field("public_key", &self.key.public_key().to_openssh().ok())
            .finish_non_exhaustive()
    }
}

/// What a certificate is issued for.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// The requester's public key, as in their `id_ed25519.pub`.
    pub subject: &'a PublicKey,
    /// The request id: the certificate's key ID (in sshd's log) and the source of its serial.
    pub key_id: &'a str,
    /// The accounts it may log in as.
    pub principals: &'a [String],
    /// When access starts (Unix seconds); the certificate is valid from `skew` seconds before.
    pub granted_at: u64,
    /// The deadline (Unix seconds): the certificate is refused from this second on.
    pub deadline: u64,
    /// See [`DEFAULT_SKEW_SECS`].
    pub skew: u64,
}

impl SshCa {
    /// The CA from an OpenSSH private key (`ssh-keygen -t ed25519`, without a passphrase: it is
    /// kept in the keyring or a 0600 file instead). Other key types are refused.
    pub fn from_openssh(text: &str) -> Result<SshCa, ConnectorError> {
        let key = PrivateKey::from_openssh(text)
            .map_err(|e| ConnectorError::new(format!("the SSH CA key does not parse: {e}")))?;
        if key.is_encrypted() {
            return Err(ConnectorError::new(
                "the SSH CA key is encrypted; keep it unencrypted in the keyring or a 0600 file",
            ));
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(ConnectorError::new(format!(
                "the SSH CA key is {}; Breakglass signs with Ed25519 CA keys",
                key.algorithm()
            )));
        }
        Ok(SshCa { key })
    }

    /// A new CA key (for `breakglass` setup and tests).
    pub fn generate() -> Result<SshCa, ConnectorError> {
        let key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)
            .map_err(|e| ConnectorError::new(format!("generating an SSH CA key: {e}")))?;
        Ok(SshCa { key })
    }

    /// The private key in OpenSSH's format, to store in the keyring or a 0600 file.
    pub fn to_openssh(&self) -> Result<Zeroizing<String>, ConnectorError> {
        self.key
            .to_openssh(LineEnding::LF)
            .map_err(|e| ConnectorError::new(format!("encoding the SSH CA key: {e}")))
    }

    /// The CA's public key: what sshd's `TrustedUserCAKeys` lists.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// Signs a user certificate for `req`.
    pub fn issue(&self, req: &CertRequest<'_>) -> Result<Certificate, ConnectorError> {
        if req.principals.is_empty() {
            return Err(ConnectorError::new(
                "an SSH certificate needs at least one principal (the accounts it may log in as)",
            ));
        }
        if req.deadline <= req.granted_at {
            return Err(ConnectorError::new(
                "the deadline of an SSH certificate must be after its start",
            ));
        }
        let valid_after = req.granted_at.saturating_sub(req.skew);
        let mut builder = Builder::new_with_random_nonce(
            &mut rand::rngs::OsRng,
            req.subject.key_data().clone(),
            valid_after,
            req.deadline,
        )
        .map_err(|e| ConnectorError::new(format!("starting the SSH certificate: {e}")))?;
        let built = builder
            .serial(serial_for(req.key_id))
            .and_then(|b| b.key_id(req.key_id))
            .and_then(|b| b.cert_type(CertType::User))
            .and_then(|b| b.extension("permit-pty", ""))
            .and_then(|b| b.comment(req.key_id));
        built.map_err(|e| ConnectorError::new(format!("describing the SSH certificate: {e}")))?;
        for p in req.principals {
            builder
                .valid_principal(p.as_str())
                .map_err(|e| ConnectorError::new(format!("principal {p:?}: {e}")))?;
        }
        builder
            .sign(&self.key)
            .map_err(|e| ConnectorError::new(format!("signing the SSH certificate: {e}")))
    }
}

/// The serial number of the certificate for request `key_id`: 63 bits of its SHA-256, never 0
/// (which OpenSSH cannot revoke by serial).
pub fn serial_for(key_id: &str) -> u64 {
    let digest = Sha256::digest(format!("breakglass ssh certificate serial\0{key_id}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 1).max(1)
}

/// One certificate on the revocation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Listed {
    key_id: String,
    serial: u64,
    /// Its own expiry (Unix seconds); it leaves the list [`KEEP_AFTER_EXPIRY_SECS`] later.
    valid_before: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ListState {
    version: u64,
    /// The CA the list is for, in OpenSSH's one-line format.
    ca: String,
    revoked: Vec<Listed>,
}

/// The key revocation list sshd reads (`RevokedKeys`), and beside it (`<path>.json`) which
/// certificates it lists and until when. Changes are written to temporary files and renamed over
/// the old ones, under an exclusive lock (`<path>.lock`), so sshd and other writers only ever
/// see a whole list.
#[derive(Debug, Clone)]
pub struct RevocationList {
    path: PathBuf,
}

impl RevocationList {
    /// The list at `path` (created on the first revocation).
    pub fn at(path: impl Into<PathBuf>) -> RevocationList {
        RevocationList { path: path.into() }
    }

    /// Where sshd reads the list.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sidecar(&self, ext: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(ext);
        self.path.with_file_name(name)
    }

    /// Writes an empty list (for sshd to start with, as it refuses every key when its
    /// `RevokedKeys` file is missing), unless one is there already.
    pub fn ensure(&self, ca: &PublicKey, now: u64) -> Result<(), ConnectorError> {
        self.update(ca, now, |_| {})
    }

    /// Adds the certificate issued for `key_id` (valid until `valid_before`) to the list; adding
    /// it again changes nothing. Certificates that expired more than
    /// [`KEEP_AFTER_EXPIRY_SECS`] ago leave the list.
    pub fn revoke(
        &self,
        ca: &PublicKey,
        key_id: &str,
        valid_before: u64,
        now: u64,
    ) -> Result<(), ConnectorError> {
        if key_id.is_empty() {
            return Err(ConnectorError::new(
                "revoking an SSH certificate needs its key ID",
            ));
        }
        self.update(ca, now, |state| {
            if !state.revoked.iter().any(|l| l.key_id == key_id) {
                state.revoked.push(Listed {
                    key_id: key_id.to_owned(),
                    serial: serial_for(key_id),
                    valid_before,
                });
            }
        })
    }

    /// The key IDs the list holds now.
    pub fn listed(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(self
            .read_state()?
            .map(|s| s.revoked.into_iter().map(|l| l.key_id).collect())
            .unwrap_or_default())
    }

    fn read_state(&self) -> Result<Option<ListState>, ConnectorError> {
        let path = self.sidecar(".json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ConnectorError::new(format!("{} does not parse: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConnectorError::new(format!(
                "reading {}: {e}",
                path.display()
            ))),
        }
    }

    fn update(
        &self,
        ca: &PublicKey,
        now: u64,
        change: impl FnOnce(&mut ListState),
    ) -> Result<(), ConnectorError> {
        let lock_path = self.sidecar(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ConnectorError::new(format!("opening {}: {e}", lock_path.display())))?;
        lock.lock()
            .map_err(|e| ConnectorError::new(format!("locking {}: {e}", lock_path.display())))?;
        let ca_line = ca
            .to_openssh()
            .map_err(|e| ConnectorError::new(format!("encoding the CA's public key: {e}")))?;
        let existing = self.read_state()?;
        if let Some(s) = &existing {
            if same_key(&s.ca, &ca_line).is_none() {
                return Err(ConnectorError::new(format!(
                    "{} lists certificates of another CA ({}); give each CA its own list",
                    self.path.display(),
                    s.ca
                )));
            }
        }
        let fresh = existing.is_none() || !self.path.exists();
        let mut state = existing.unwrap_or(ListState {
            version: 0,
            ca: ca_line.clone(),
            revoked: Vec::new(),
        });
        let before = state.revoked.clone();
        change(&mut state);
        state
            .revoked
            .retain(|l| l.valid_before.saturating_add(KEEP_AFTER_EXPIRY_SECS) > now);
        if !fresh && state.revoked == before {
            return Ok(());
        }
        state.version += 1;
        let mut krl = Krl::new(state.version, now, "breakglass: revoked grants");
        for l in &state.revoked {
            krl.revoke_serial(ca, l.serial)?;
            krl.revoke_key_id(ca, &l.key_id)?;
        }
        let json = serde_json::to_vec_pretty(&state)
            .map_err(|e| ConnectorError::new(format!("encoding the revocation list: {e}")))?;
        // The state first: if the KRL's write fails, the next change writes both again.
        replace_file(&self.sidecar(".json"), &json)?;
        replace_file(&self.path, &krl.to_bytes())?;
        drop(lock);
        Ok(())
    }
}

/// `Some(())` when two OpenSSH public key lines hold the same key (comments aside).
fn same_key(a: &str, b: &str) -> Option<()> {
    let a = PublicKey::from_openssh(a).ok()?;
    let b = PublicKey::from_openssh(b).ok()?;
    (a.key_data() == b.key_data()).then_some(())
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk and renames it over
/// `path`, so readers see the old content or the new, never part of it. The file is readable by
/// all (sshd reads it; it holds no secret).
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), ConnectorError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(name);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ConnectorError::new(format!("writing {}: {e}", path.display()))
    })
}

/// Parses a requester's OpenSSH public key line (`ssh-ed25519 AAAA… comment`): a plain key, not
/// a certificate or a private key.
pub fn parse_public_key(text: &str) -> Result<PublicKey, ConnectorError> {
    let text = text.trim();
    if text
        .split(' ')
        .next()
        .unwrap_or("")
        .contains("-cert-v01@openssh.com")
    {
        return Err(ConnectorError::new(
            "give your SSH public key, not a certificate",
        ));
    }
    let key = PublicKey::from_openssh(text).map_err(|e| {
        ConnectorError::new(format!(
            "the SSH public key does not parse ({e}); give the .pub file of your key"
        ))
    })?;
    Ok(key)
}

/// Unix seconds of `t`, rounded down: a certificate valid before the deadline's second ends no
/// later than the deadline.
fn unix_secs(t: breakglass_core::Timestamp) -> u64 {
    u64::try_from(t.unix_millis().div_euclid(1000)).unwrap_or(0)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `ssh` connector: certificates from the policy's CA, revoked through its list.
pub struct SshConnector {
    ca: SshCa,
    list: RevocationList,
    principals: BTreeMap<String, Vec<String>>,
    skew: u64,
}

impl std::fmt::Debug for SshConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnector")
            .field("ca", &self.ca)
            .field("list", &self.list.path())
            .finish_non_exhaustive()
    }
}

impl SshConnector {
    /// The connector for `spec`, its CA key read through `secrets`.
    pub fn new(spec: &SshSpec, secrets: &dyn Secrets) -> Result<SshConnector, ConnectorError> {
        let key = secrets.read(&spec.ca_key)?;
        let text = std::str::from_utf8(&key).map_err(|_| {
            ConnectorError::new(format!(
                "the SSH CA key in {} is not an OpenSSH private key",
                spec.ca_key
            ))
        })?;
        Ok(SshConnector {
            ca: SshCa::from_openssh(text)?,
            list: RevocationList::at(&spec.revocation_list),
            principals: spec.principals.clone(),
            skew: spec.skew.as_secs(),
        })
    }

    /// The CA's public key.
    pub fn ca_public_key(&self) -> &PublicKey {
        self.ca.public_key()
    }

    fn certify(&self, access: Access<'_>) -> Result<Issued, ConnectorError> {
        let request = access.request;
        let Some(Credential::SshPublicKey(key)) = &request.credential else {
            return Err(ConnectorError::new(format!(
                "request {} carries no SSH public key to certify",
                request.id
            )));
        };
        let subject = parse_public_key(key)?;
        let principals = self.principals.get(&request.role).ok_or_else(|| {
            ConnectorError::new(format!(
                "the policy names no accounts for role {}",
                request.role
            ))
        })?;
        // sshd must find a list (it refuses every key when its RevokedKeys file is missing).
        self.list.ensure(self.ca.public_key(), now_secs())?;
        let cert = self.ca.issue(&CertRequest {
            subject: &subject,
            key_id: request.id.as_str(),
            principals,
            granted_at: unix_secs(access.granted_at),
            deadline: unix_secs(access.deadline),
            skew: self.skew,
        })?;
        let text = cert
            .to_openssh()
            .map_err(|e| ConnectorError::new(format!("encoding the SSH certificate: {e}")))?;
        Ok(Issued::SshCertificate(text))
    }
}

impl Connector for SshConnector {
    fn kind(&self) -> &'static str {
        "ssh"
    }

    fn enforces_expiry(&self) -> bool {
        true
    }

    fn grant<'a>(
        &'a self,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Issued>, ConnectorError>> {
        Box::pin(async move { self.certify(access).map(Some) })
    }

    fn revoke<'a>(&'a self, access: Access<'a>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            self.list.revoke(
                self.ca.public_key(),
                access.request.id.as_str(),
                unix_secs(access.deadline),
                now_secs(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> PublicKey {
        SshCa::generate().expect("a key").public_key().clone()
    }

    fn request<'a>(subject: &'a PublicKey, principals: &'a [String]) -> CertRequest<'a> {
        CertRequest {
            subject,
            key_id: "req_abc",
            principals,
            granted_at: 1_800_000_000,
            deadline: 1_800_000_900,
            skew: DEFAULT_SKEW_SECS,
        }
    }

    #[test]
    fn a_certificate_carries_the_window_principals_and_request_id() {
        let ca = SshCa::generate().expect("a CA");
        let subject = subject();
        let principals = vec!["deploy".to_owned(), "ops".to_owned()];
        let cert = ca.issue(&request(&subject, &principals)).expect("issued");
        assert_eq!(cert.valid_after(), 1_800_000_000 - DEFAULT_SKEW_SECS);
        assert_eq!(cert.valid_before(), 1_800_000_900);
        assert_eq!(cert.valid_principals(), &principals[..]);
        assert_eq!(cert.key_id(), "req_abc");
        assert_eq!(cert.serial(), serial_for("req_abc"));
        assert_eq!(cert.cert_type(), CertType::User);
        assert_eq!(cert.public_key(), subject.key_data());
        assert_eq!(
            cert.extensions().keys().cloned().collect::<Vec<_>>(),
            vec!["permit-pty".to_owned()],
            "no forwarding or user rc unless the policy asks"
        );
        let fingerprint = ca.public_key().fingerprint(Default::default());
        cert.validate_at(1_800_000_100, [&fingerprint])
            .expect("valid inside its window, signed by the CA");
        assert!(cert.validate_at(1_800_000_900, [&fingerprint]).is_err());
    }

    #[test]
    fn a_certificate_needs_principals_and_a_window() {
        let ca = SshCa::generate().expect("a CA");
        let subject = subject();
        assert!(ca.issue(&request(&subject, &[])).is_err());
        let principals = vec!["deploy".to_owned()];
        let mut backwards = request(&subject, &principals);
        backwards.deadline = backwards.granted_at;
        assert!(ca.issue(&backwards).is_err());
    }

    #[test]
    fn the_ca_key_round_trips_and_other_kinds_are_refused() {
        let ca = SshCa::generate().expect("a CA");
        let text = ca.to_openssh().expect("encoded");
        let again = SshCa::from_openssh(&text).expect("parsed");
        assert_eq!(again.public_key(), ca.public_key());
        assert!(SshCa::from_openssh("not a key").is_err());
        let debug = format!("{ca:?}");
        assert!(
            !debug.contains("PRIVATE"),
            "Debug shows no private key: {debug}"
        );
    }

    #[test]
    fn serials_are_stable_distinct_and_never_zero() {
        assert_eq!(serial_for("req_a"), serial_for("req_a"));
        assert_ne!(serial_for("req_a"), serial_for("req_b"));
        assert!((0..1000).all(|i| serial_for(&format!("req_{i}")) != 0));
    }

    #[test]
    fn the_list_keeps_each_revocation_once_and_drops_long_expired_ones() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = SshCa::generate().expect("a CA");
        let list = RevocationList::at(dir.path().join("revoked.krl"));
        list.ensure(ca.public_key(), 1000).expect("an empty list");
        let empty = std::fs::read(list.path()).expect("the KRL is there");
        assert_eq!(&empty[..8], b"SSHKRL\n\0");

        list.revoke(ca.public_key(), "req_a", 2000, 1500)
            .expect("revoke a");
        list.revoke(ca.public_key(), "req_b", 9000, 1500)
            .expect("revoke b");
        let before = std::fs::read(list.path()).expect("the KRL");
        list.revoke(ca.public_key(), "req_a", 2000, 1600)
            .expect("again");
        assert_eq!(
            std::fs::read(list.path()).expect("the KRL"),
            before,
            "no change"
        );
        assert_eq!(list.listed().expect("listed"), vec!["req_a", "req_b"]);

        // A day after req_a's certificate expired, it leaves the list; req_b stays.
        list.revoke(
            ca.public_key(),
            "req_c",
            2000 + KEEP_AFTER_EXPIRY_SECS + 10,
            2000 + KEEP_AFTER_EXPIRY_SECS,
        )
        .expect("revoke c");
        assert_eq!(list.listed().expect("listed"), vec!["req_b", "req_c"]);
    }

    #[test]
    fn a_list_belongs_to_one_ca() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let list = RevocationList::at(dir.path().join("revoked.krl"));
        let ca = SshCa::generate().expect("a CA");
        list.revoke(ca.public_key(), "req_a", 2000, 1000)
            .expect("revoke");
        let other = SshCa::generate().expect("another CA");
        let before = std::fs::read(list.path()).expect("the KRL");
        let err = list
            .revoke(other.public_key(), "req_b", 2000, 1000)
            .expect_err("another CA's certificate");
        assert!(err.to_string().contains("another CA"), "{err}");
        assert_eq!(
            std::fs::read(list.path()).expect("the KRL"),
            before,
            "nothing changed"
        );
        assert!(list.revoke(ca.public_key(), "", 2000, 1000).is_err());
    }
}
