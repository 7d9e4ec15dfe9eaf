//! A throwaway PostgreSQL server for tests (cargo feature `testing`).
//!
//! [`PgCluster::start`] runs `initdb` and `pg_ctl` from Debian's `postgresql` package on a free
//! loopback port inside a temporary directory; every [`PgCluster::create_database`] call returns
//! the URL of a new, empty database, so tests sharing a cluster stay isolated. Dropping the
//! cluster stops the server and deletes its directory.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use breakglass_store::{testing::PgCluster, Store};
//!
//! let pg = PgCluster::start().await?;
//! let store = Store::open(&pg.create_database().await?).await?;
//! assert_eq!(store.size().await?, 0);
//! # Ok(())
//! # }
//! ```
//!
//! PostgreSQL refuses to run as root; when the tests run as root, the cluster's directory is given
//! to the `postgres` system user and the server runs as that user through `runuser`.

use std::ffi::OsStr;
use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection, PgConnection};

/// How many ports to try when another process takes the one picked.
const START_ATTEMPTS: usize = 5;

/// Why a test cluster could not be started or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// `initdb`/`pg_ctl`/`postgres` were not found on `PATH` nor under `/usr/lib/postgresql/*/bin`.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or under \
         /usr/lib/postgresql/*/bin; install them with `apt-get install postgresql`"
    )]
    NotInstalled,
    /// Running as root, but there is no `postgres` system user to run the server as.
    #[error(
        "running as root, but there is no `postgres` user to run PostgreSQL as; install Debian's \
         `postgresql` package, which creates it"
    )]
    NoPostgresUser,
    /// A filesystem operation on the cluster's directory failed.
    #[error("test cluster: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL tool failed.
    #[error("test cluster: `{command}` failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its output (and the server log's tail, for a failed start).
        output: String,
    },
    /// Talking to the started server failed.
    #[error("test cluster: {0}")]
    Sql(#[from] sqlx::Error),
}

/// A private PostgreSQL server on 127.0.0.1, stopped and deleted on drop.
pub struct PgCluster {
    bin: PathBuf,
    /// `Some(user)` when commands must run as that user (we are root).
    run_as: Option<String>,
    data: PathBuf,
    port: u16,
    /// Declared last so it is deleted after the server is stopped in `drop`.
    dir: tempfile::TempDir,
}

impl fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl PgCluster {
    /// Initialises and starts a new cluster (about a second). Fails loudly, never skips, when
    /// PostgreSQL is not installed.
    pub async fn start() -> Result<PgCluster, ClusterError> {
        tokio::task::spawn_blocking(PgCluster::start_blocking)
            .await
            .map_err(|e| ClusterError::Io {
                what: "starting the cluster".to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    /// [`PgCluster::start`] for synchronous callers.
    pub fn start_blocking() -> Result<PgCluster, ClusterError> {
        let bin = find_binaries()?;
        let run_as = if running_as_root() {
            if !user_exists("postgres") {
                return Err(ClusterError::NoPostgresUser);
            }
            Some("postgres".to_owned())
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("breakglass-pg-")
            .tempdir()
            .map_err(io("creating the cluster directory"))?;
        if let Some(user) = &run_as {
            // The directory is 0700; handing it to the server's user is enough for it to work there.
            let (uid, gid) = lookup_user(user).ok_or(ClusterError::NoPostgresUser)?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(io("giving the cluster directory to postgres"))?;
        }
        let data = dir.path().join("data");
        let mut cluster = PgCluster {
            bin,
            run_as,
            data,
            port: 0,
            dir,
        };
        let data_arg = cluster.data.clone();
        cluster.run(
            "initdb",
            [
                OsStr::new("-D"),
                data_arg.as_os_str(),
                OsStr::new("-A"),
                OsStr::new("trust"),
                OsStr::new("-U"),
                OsStr::new("postgres"),
                OsStr::new("--no-sync"),
                OsStr::new("-E"),
                OsStr::new("UTF8"),
                OsStr::new("--locale=C"),
            ],
        )?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    let log = std::fs::read_to_string(cluster.log_file()).unwrap_or_default();
                    if !log.contains("could not bind") && !log.contains("already in use") {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or(ClusterError::NotInstalled))
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a database on this cluster (which need not exist yet), as the superuser
    /// `postgres` (no password: the cluster trusts loopback connections).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database with a unique name and returns its URL.
    pub async fn create_database(&self) -> Result<String, ClusterError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "breakglass_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(&self.url("postgres")).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(self.url(&name))
    }

    /// Turns TLS on (a test CA and a server certificate for 127.0.0.1 made with the `openssl`
    /// tool, reloaded without a restart) and returns the CA certificate's path, to give clients
    /// as `sslrootcert`. Clients may still connect without TLS unless they ask for it.
    pub async fn enable_tls(&self) -> Result<PathBuf, ClusterError> {
        let tls = self.dir.path().join("tls");
        std::fs::create_dir_all(&tls).map_err(io("creating the TLS directory"))?;
        let ca = tls.join("ca.pem");
        make_certificates(&tls)?;
        if let Some(user) = &self.run_as {
            let (uid, gid) = lookup_user(user).ok_or(ClusterError::NoPostgresUser)?;
            for f in ["server.pem", "server.key"] {
                std::os::unix::fs::chown(tls.join(f), Some(uid), Some(gid))
                    .map_err(io("giving the server its certificate"))?;
            }
        }
        let mut conn = PgConnection::connect(&self.url("postgres")).await?;
        for (setting, value) in [
            ("ssl_cert_file", tls.join("server.pem")),
            ("ssl_key_file", tls.join("server.key")),
        ] {
            sqlx::raw_sql(&format!(
                "ALTER SYSTEM SET {setting} = '{}'",
                value.display()
            ))
            .execute(&mut conn)
            .await?;
        }
        // One statement at a time: a multi-statement string runs as one transaction, which
        // ALTER SYSTEM refuses.
        for sql in ["ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"] {
            sqlx::raw_sql(sql).execute(&mut conn).await?;
        }
        conn.close().await?;
        // The server reloads when it gets to it: wait until a client that insists on TLS gets in.
        let probe = format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.url("postgres"),
            ca.display()
        );
        let start = std::time::Instant::now();
        loop {
            match PgConnection::connect(&probe).await {
                Ok(c) => {
                    c.close().await?;
                    return Ok(ca);
                }
                Err(e) if start.elapsed() > std::time::Duration::from_secs(10) => {
                    return Err(ClusterError::Command {
                        command: "SELECT pg_reload_conf()".to_owned(),
                        output: format!("TLS was still not served 10 s after the reload: {e}"),
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }

    /// From now on, every role but the superuser `postgres` must log in with its password
    /// (SCRAM-SHA-256), as on a real server, so password expiry (`VALID UNTIL`) applies. The
    /// superuser stays trusted on loopback, as the tests' administrator.
    pub async fn require_passwords(&self) -> Result<(), ClusterError> {
        let hba = self.data.join("pg_hba.conf");
        // Rewritten in place, so the file stays the server user's.
        std::fs::write(
            &hba,
            "local all postgres trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .map_err(io("writing pg_hba.conf"))?;
        let mut conn = PgConnection::connect(&self.url("postgres")).await?;
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&mut conn)
            .await?;
        // The server reloads when it gets to it: wait until a role without a password is
        // refused.
        sqlx::query("CREATE ROLE breakglass_probe LOGIN")
            .execute(&mut conn)
            .await?;
        let probe = format!(
            "postgres://breakglass_probe@127.0.0.1:{}/postgres",
            self.port
        );
        let start = std::time::Instant::now();
        let mut refused = false;
        while start.elapsed() < std::time::Duration::from_secs(10) {
            match PgConnection::connect(&probe).await {
                Ok(c) => c.close().await?,
                Err(_) => {
                    refused = true;
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        sqlx::query("DROP ROLE breakglass_probe")
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        if !refused {
            return Err(ClusterError::Command {
                command: "SELECT pg_reload_conf()".to_owned(),
                output: "passwords were still not required 10 s after the reload".to_owned(),
            });
        }
        Ok(())
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn start_server(&self) -> Result<(), ClusterError> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let log = self.log_file();
        let result = self.run(
            "pg_ctl",
            [
                OsStr::new("-D"),
                self.data.as_os_str(),
                OsStr::new("-o"),
                OsStr::new(&options),
                OsStr::new("-w"),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("start"),
            ],
        );
        if let Err(ClusterError::Command { command, output }) = result {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(ClusterError::Command {
                command,
                output: format!("{output}\nserver log:\n{}", tail(&log, 20)),
            });
        }
        result
    }

    /// Runs one of the PostgreSQL tools, as the `postgres` user when we are root.
    fn run<I, S>(&self, tool: &str, args: I) -> Result<(), ClusterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let program = self.bin.join(tool);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command
            .args(args)
            // The tools chdir and stat the working directory, which the postgres user may not be
            // allowed to see when we are root.
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        let shown = format!("{command:?}");
        let output: Output = command.output().map_err(|source| ClusterError::Io {
            what: format!("running {shown}"),
            source,
        })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ClusterError::Command {
                command: shown,
                output: format!(
                    "{}: {}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.data.clone();
            let _ = self.run(
                "pg_ctl",
                [
                    OsStr::new("stop"),
                    OsStr::new("-m"),
                    OsStr::new("immediate"),
                    OsStr::new("-D"),
                    data.as_os_str(),
                ],
            );
        }
        // `dir` (a TempDir) is removed when the fields drop, after the server has stopped.
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        what: what.to_owned(),
        source,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A directory holding `initdb`, `pg_ctl` and `postgres`: from `PATH` first, else the highest
/// version under `/usr/lib/postgresql/*/bin` (where Debian installs them, off `PATH`).
fn find_binaries() -> Result<PathBuf, ClusterError> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if complete(&dir) {
                // Resolve symlinks so all three tools come from one installation.
                let real = std::fs::canonicalize(dir.join("pg_ctl"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|d| complete(d))
                    .unwrap_or(dir);
                return Ok(real);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(ClusterError::NotInstalled)
}

/// Reads the effective uid from `/proc/self/status` (no `unsafe` `geteuid` call needed).
/// A test CA (`ca.pem`) and a server certificate it issued for 127.0.0.1 (`server.pem`,
/// `server.key`, mode 0600), in `dir`, made by the `openssl` tool. (Also a second, unrelated CA,
/// `other-ca.pem`, for tests of a certificate that must not be trusted.)
pub fn make_certificates(dir: &Path) -> Result<(), ClusterError> {
    let openssl = |args: &[&str]| -> Result<(), ClusterError> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ClusterError::Io {
                what: "running openssl (Debian package `openssl`)".to_owned(),
                source,
            })?;
        if !output.status.success() {
            return Err(ClusterError::Command {
                command: format!("openssl {}", args.join(" ")),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(())
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .map_err(io("writing the certificate's extensions"))?;
    for name in ["ca", "other-ca"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=Breakglass test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ])?;
    }
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])?;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .map_err(io("making the server key owner-only"))?;
    Ok(())
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Real, effective, saved, filesystem.
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

fn user_exists(user: &str) -> bool {
    lookup_user(user).is_some()
}

fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port();
    Ok(port)
}

/// The roles README.md's "Team mode" section gives the broker and the apps, set up on the fresh
/// database at `superuser_url` by running the README's own statements (so the documentation
/// cannot drift from what is tested). Returns the URLs of the broker's role and of the apps'
/// role; once the broker's role has created the schema, [`grant_apps`] gives the apps theirs.
pub async fn team_roles(superuser_url: &str) -> Result<(String, String), ClusterError> {
    let database = superuser_url.rsplit('/').next().unwrap_or_default();
    run_sql(superuser_url, &readme_sql("as a superuser", database)?).await?;
    let as_role = |role: &str| superuser_url.replacen("postgres@", &format!("{role}@"), 1);
    Ok((as_role("breakglass_broker"), as_role("breakglass_app")))
}

/// README.md's grants to the apps' role, run as the broker's role at `broker_url` (after it
/// created the schema).
pub async fn grant_apps(broker_url: &str) -> Result<(), ClusterError> {
    let database = broker_url.rsplit('/').next().unwrap_or_default();
    run_sql(broker_url, &readme_sql("as the broker's role", database)?).await
}

async fn run_sql(url: &str, sql: &str) -> Result<(), ClusterError> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(sql).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// The SQL block of README.md that starts with the comment `-- {section}`, for `database`.
fn readme_sql(section: &str, database: &str) -> Result<String, ClusterError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).map_err(io("reading README.md"))?;
    let missing = || ClusterError::Command {
        command: format!("README.md's SQL block `-- {section}`"),
        output: "not found".into(),
    };
    let start = readme
        .find(&format!("-- {section}\n"))
        .ok_or_else(missing)?;
    let block = &readme[start..];
    let end = block.find("```").ok_or_else(missing)?;
    Ok(block[..end].replace("breakglass_db", database))
}
