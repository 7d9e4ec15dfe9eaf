//! The SSH connector against the real sshd (Debian openssh-server) and the real ssh client:
//! a certificate logs in before its deadline and is refused from the deadline on, by sshd
//! itself; a revoked certificate is refused at once; a certificate for other accounts is refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use breakglass_connectors::ssh::{CertRequest, RevocationList, SshCa};
use breakglass_testkit::sshd::{keygen, Sshd};
use ssh_key::PublicKey;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

struct Lab {
    dir: tempfile::TempDir,
    ca: SshCa,
    krl: RevocationList,
    sshd: Sshd,
    key: PathBuf,
    subject: PublicKey,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca = SshCa::generate().expect("a CA key");
    let ca_pub = dir.path().join("ca.pub");
    std::fs::write(&ca_pub, ca.public_key().to_openssh().expect("CA line")).expect("ca.pub");
    let krl = RevocationList::at(dir.path().join("revoked.krl"));
    krl.ensure(ca.public_key(), now()).expect("an empty list");
    let sshd = Sshd::start(&ca_pub, krl.path());
    let key = dir.path().join("id_ed25519");
    keygen(&key);
    let subject = PublicKey::read_openssh_file(&key.with_extension("pub")).expect("the key's .pub");
    Lab {
        dir,
        ca,
        krl,
        sshd,
        key,
        subject,
    }
}

impl Lab {
    /// Issues a certificate for request `id`, `secs` long from now, for `principals`, and
    /// writes it where ssh reads it. Returns its path and deadline.
    fn issue(&self, id: &str, secs: u64, principals: &[String]) -> (PathBuf, u64) {
        let granted_at = now();
        let deadline = granted_at + secs;
        let cert = self
            .ca
            .issue(&CertRequest {
                subject: &self.subject,
                key_id: id,
                principals,
                granted_at,
                deadline,
                skew: 60,
            })
            .expect("the CA signs");
        let path = self.dir.path().join(format!("{id}-cert.pub"));
        std::fs::write(&path, cert.to_openssh().expect("cert line")).expect("write the cert");
        (path, deadline)
    }

    fn me(&self) -> Vec<String> {
        vec![self.sshd.user().to_owned()]
    }

    fn login(&self, cert: &Path) -> Result<String, String> {
        self.sshd.login(&self.key, cert)
    }
}

#[test]
fn a_certificate_logs_in_until_its_deadline_and_sshd_refuses_it_from_then_on() {
    let lab = lab();
    let (cert, deadline) = lab.issue("req_expires", 3, &lab.me());
    let out = lab
        .login(&cert)
        .unwrap_or_else(|e| panic!("logs in before the deadline: {e}\n{}", lab.sshd.log()));
    assert_eq!(out.trim(), "logged-in");

    // Nothing revokes it: sshd alone ends it, at the deadline.
    while now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = lab.login(&cert);
    assert!(
        refused.is_err(),
        "refused from the deadline on: {refused:?}"
    );
    let log = lab.sshd.log();
    assert!(
        log.contains("expired"),
        "sshd refused it as expired:\n{log}"
    );
    assert!(lab.krl.listed().expect("the list").is_empty());
}

#[test]
fn a_revoked_certificate_is_refused_at_once_and_others_still_log_in() {
    let lab = lab();
    let (revoked, deadline) = lab.issue("req_revoked", 600, &lab.me());
    let (kept, _) = lab.issue("req_kept", 600, &lab.me());
    assert!(lab.login(&revoked).is_ok(), "{}", lab.sshd.log());

    lab.krl
        .revoke(lab.ca.public_key(), "req_revoked", deadline, now())
        .expect("revoke");
    let refused = lab.login(&revoked);
    assert!(refused.is_err(), "refused after revoke: {refused:?}");
    let log = lab.sshd.log();
    assert!(
        log.contains("revoked"),
        "sshd refused it as revoked:\n{log}"
    );

    // Revocation is per grant: the same person's other certificate still works.
    assert_eq!(
        lab.login(&kept)
            .expect("the other grant still logs in")
            .trim(),
        "logged-in"
    );
    // Revoking again changes nothing.
    lab.krl
        .revoke(lab.ca.public_key(), "req_revoked", deadline, now())
        .expect("revoke again");
    assert_eq!(lab.krl.listed().expect("the list"), vec!["req_revoked"]);
}

#[test]
fn a_certificate_for_other_accounts_is_refused() {
    let lab = lab();
    let (cert, _) = lab.issue("req_other", 600, &["someone-else".to_owned()]);
    let refused = lab.login(&cert);
    assert!(refused.is_err(), "refused: {refused:?}");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let lab = lab();
    let other = SshCa::generate().expect("another CA");
    let cert = other
        .issue(&CertRequest {
            subject: &lab.subject,
            key_id: "req_foreign",
            principals: &lab.me(),
            granted_at: now(),
            deadline: now() + 600,
            skew: 60,
        })
        .expect("the other CA signs");
    let path = lab.dir.path().join("foreign-cert.pub");
    std::fs::write(&path, cert.to_openssh().expect("line")).expect("write");
    assert!(lab.login(&path).is_err(), "sshd trusts only its CA");
}
