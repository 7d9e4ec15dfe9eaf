//! A real OpenSSH server (Debian openssh-server) on a free loopback port, trusting one user CA
//! and reading one key revocation list, and the real `ssh` client to log in to it.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// sshd in the foreground with a configuration of its own; killed on drop.
pub struct Sshd {
    child: Child,
    port: u16,
    user: String,
    dir: tempfile::TempDir,
}

/// The account the test process runs as (the one a certificate's principal must name).
pub fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un (coreutils)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Creates an Ed25519 key pair with the real `ssh-keygen` at `path` (and `path.pub`), without a
/// passphrase.
pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "breakglass-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen (Debian openssh-client)");
    assert!(status.success(), "ssh-keygen failed: {status}");
}

impl Sshd {
    /// Starts sshd trusting the user CA whose public key is in `ca_pub` and refusing what the
    /// key revocation list `revoked_keys` lists (sshd refuses every key while that file is
    /// missing), and waits until it accepts connections.
    pub fn start(ca_pub: &Path, revoked_keys: &Path) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("breakglass-sshd-")
            .tempdir()
            .expect("a temporary directory for sshd");
        // sshd checks for its privilege separation directory even when it runs as one user.
        if !Path::new("/run/sshd").is_dir() {
            fs::create_dir_all("/run/sshd").expect("create /run/sshd for sshd");
        }
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key);
        let port = crate::free_port();
        let config = dir.path().join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
                 TrustedUserCAKeys {ca}\nRevokedKeys {krl}\nAuthorizedKeysFile none\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
                host = host_key.display(),
                pid = dir.path().join("sshd.pid").display(),
                ca = ca_pub.display(),
                krl = revoked_keys.display(),
            ),
        )
        .expect("write sshd_config");
        let log = fs::File::create(dir.path().join("sshd.log")).expect("sshd's log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("sshd's log"))
            .stderr(log)
            .spawn()
            .expect("sshd (Debian openssh-server; scripts/bootstrap.sh installs it)");
        let mut sshd = Sshd {
            child,
            port,
            user: current_user(),
            dir,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                panic!("sshd exited ({status}): {}", sshd.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not listen on port {port} within 10 s: {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The account tests log in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// What sshd has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Logs in as [`Sshd::user`] with the private key at `key` and the certificate at `cert`
    /// (nothing else: no agent, no other identity) and runs `echo logged-in`. `Ok` with the
    /// command's output, or `Err` with the client's error.
    pub fn login(&self, key: &Path, cert: &Path) -> Result<String, String> {
        fs::set_permissions(key, fs::Permissions::from_mode(0o600)).expect("chmod the key");
        let out = Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                "-p",
            ])
            .arg(self.port.to_string())
            .arg(format!("{}@127.0.0.1", self.user))
            .arg("echo logged-in")
            .stdin(Stdio::null())
            .output()
            .expect("ssh (Debian openssh-client)");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Where its files are (its config, host key and log).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
