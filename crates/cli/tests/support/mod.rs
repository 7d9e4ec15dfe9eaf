//! Shared helpers for the end-to-end tests: they drive the real `breakglass` binary as separate
//! processes, each test in its own temporary data directory.
//!
//! Every test binary includes this module and uses a different part of it.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub use breakglass_testkit::keyring::SecretService;

/// A CLI on a data directory beside `service`'s keyring, talking to it.
pub fn keyring_cli(service: &SecretService) -> Cli {
    let mut cli = Cli::new(&service.tmp.path().join("breakglass"));
    for (k, v) in service.env() {
        cli.env(&k, &v);
    }
    cli
}

/// Exit codes documented in the README.
pub const OK: i32 = 0;
pub const REFUSED: i32 = 1;
pub const USAGE: i32 = 2;
pub const VERIFY_FAILED: i32 = 3;

/// The environment variables the CLI reads that must never leak in from the developer's shell.
const CLEARED_ENV: [&str; 5] = [
    "BREAKGLASS_HOME",
    "BREAKGLASS_AS",
    "BREAKGLASS_KEY_FILE",
    "BREAKGLASS_DATABASE_URL",
    "XDG_DATA_HOME",
];

/// What one run of the binary did.
#[derive(Clone)]
pub struct Output {
    /// The command line, for messages.
    pub args: Vec<String>,
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`breakglass {}` exited {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

impl Output {
    /// Waits for a command started with [`Cli::spawn`] and collects what it printed.
    pub fn from_child(child: std::process::Child, args: &[&str]) -> Output {
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for the breakglass binary: {e}"));
        Output {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, saying why it must be that.
    #[track_caller]
    pub fn code(&self, expected: i32, why: &str) -> &Self {
        assert_eq!(
            self.code, expected,
            "{why}: expected exit {expected}\n{self:?}"
        );
        self
    }

    /// Asserts success.
    #[track_caller]
    pub fn ok(&self, why: &str) -> &Self {
        self.code(OK, why)
    }

    /// Asserts that stderr is exactly one non-empty line (the README's "one clear line").
    #[track_caller]
    pub fn one_line_error(&self, why: &str) -> &Self {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines.len() == 1 && !lines[0].trim().is_empty(),
            "{why}: a failure must explain itself in exactly one line on stderr, got {}\n{self:?}",
            lines.len()
        );
        self
    }

    /// Asserts that stderr mentions every one of `needles` (case-insensitive).
    #[track_caller]
    pub fn stderr_mentions(&self, needles: &[&str], why: &str) -> &Self {
        let hay = self.stderr.to_lowercase();
        for n in needles {
            assert!(
                hay.contains(&n.to_lowercase()),
                "{why}: stderr should mention {n:?}\n{self:?}"
            );
        }
        self
    }

    /// Asserts that stdout mentions `needle` (case-insensitive).
    #[track_caller]
    pub fn stdout_mentions(&self, needle: &str, why: &str) -> &Self {
        assert!(
            self.stdout.to_lowercase().contains(&needle.to_lowercase()),
            "{why}: stdout should mention {needle:?}\n{self:?}"
        );
        self
    }

    /// Parses stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output must be valid JSON ({e})\n{self:?}"))
    }
}

/// The binary, a data directory and the environment every command runs with.
pub struct Cli {
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Cli {
    /// A CLI on `data_dir`. The keyring is pointed at a socket that does not exist, so a test
    /// that means to use key files can never touch the developer's real keyring by accident.
    pub fn new(data_dir: &Path) -> Cli {
        Cli {
            data_dir: data_dir.to_owned(),
            env: vec![(
                "DBUS_SESSION_BUS_ADDRESS".into(),
                format!(
                    "unix:path={}",
                    data_dir.with_extension("no-dbus-here").display()
                ),
            )],
        }
    }

    /// Sets an environment variable for every later command.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs `breakglass --data-dir DIR ARGS…` and waits for it.
    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Output {
        let mut all = vec!["--data-dir".to_owned(), self.data_dir.display().to_string()];
        all.extend(args.iter().map(|a| a.as_ref().to_owned()));
        run_binary(&all, &self.env)
    }

    /// Starts `breakglass --data-dir DIR ARGS…` without waiting, with stdout and stderr piped
    /// (for commands that wait on something the test then does, like a sign-in).
    pub fn spawn<S: AsRef<str>>(&self, args: &[S]) -> std::process::Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_breakglass"));
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .args(args.iter().map(AsRef::as_ref))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in CLEARED_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot run the breakglass binary: {e}"))
    }

    /// Runs `breakglass --data-dir DIR --key-file KEY ARGS…` with its standard streams on a
    /// pseudo-terminal (util-linux `script`), as a person at a terminal would; what it drew
    /// there comes back as `stdout`.
    pub fn run_in_terminal<S: AsRef<str>>(&self, key: &Path, args: &[S]) -> Output {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut line = vec![
            quote(env!("CARGO_BIN_EXE_breakglass")),
            "--data-dir".into(),
            quote(&self.data_dir.display().to_string()),
            "--key-file".into(),
            quote(&key.display().to_string()),
        ];
        line.extend(args.iter().map(|a| quote(a.as_ref())));
        let mut cmd = Command::new("script");
        cmd.args([
            "--quiet",
            "--return",
            "--command",
            &line.join(" "),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .env("TERM", "xterm");
        for k in CLEARED_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run script (util-linux): {e}"));
        Output {
            args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a command with `--key-file KEY`, i.e. as the identity enrolled with that key.
    pub fn run_with_key<S: AsRef<str>>(&self, key: &Path, args: &[S]) -> Output {
        let mut all = vec!["--key-file".to_owned(), key.display().to_string()];
        all.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self.run(&all)
    }
}

/// Runs the binary with exactly `args` (no data directory added) and `env` on top of a cleaned
/// environment.
pub fn run_binary<S: AsRef<str>>(args: &[S], env: &[(String, String)]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_breakglass"));
    cmd.args(&args).stdin(Stdio::null());
    for k in CLEARED_ENV {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the breakglass binary: {e}"));
    Output {
        args,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The policy the scenarios use: `prod` (quorum 2 of sre, break-glass up to 10m) and `quick`
/// (quorum 1, a 2-second request TTL so lapses can be watched in real time).
pub fn policy(version: u64) -> String {
    format!(
        r#"version = {version}

[groups]
admin = ["admin"]
sre = []
engineers = []

[targets.prod]
description = "Production"
max_duration = "1h"
request_ttl = "10m"
extension_cap = "1h30m"
approvers = {{ groups = ["sre"], quorum = 2 }}
break_glass = {{ max_duration = "10m" }}
connector = {{ kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }}

[targets.quick]
max_duration = "1h"
request_ttl = "2s"
extension_cap = "1h"
approvers = {{ groups = ["sre"], quorum = 1 }}
connector = {{ kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }}
"#
    )
}

/// An initialised data directory with the scenario's policy and people, each with a key file:
/// dave (engineers) requests, bob and carol (sre) approve, erin is in no group.
pub struct World {
    /// Keeps the temporary directory alive; deleted on drop.
    pub tmp: tempfile::TempDir,
    pub cli: Cli,
    pub admin: PathBuf,
    pub dave: PathBuf,
    pub bob: PathBuf,
    pub carol: PathBuf,
    pub erin: PathBuf,
}

impl World {
    /// Sets up on the embedded SQLite database.
    pub fn sqlite() -> World {
        World::with_env(&[])
    }

    /// Sets up with extra environment (e.g. `BREAKGLASS_DATABASE_URL`) for every command,
    /// `init` included.
    pub fn with_env(env: &[(&str, &str)]) -> World {
        let tmp = tempfile::Builder::new()
            .prefix("breakglass-cli-test-")
            .tempdir()
            .expect("a temporary directory for the test");
        let mut cli = Cli::new(&tmp.path().join("data"));
        for (k, v) in env {
            cli.env(k, v);
        }
        let keys = tmp.path().join("keys");
        let admin = keys.join("admin.pem");
        let key_arg = admin.display().to_string();
        cli.run(&["--key-file", &key_arg, "init", "--system-keys", "file"])
            .ok("init with file system keys must succeed on an empty directory");
        let policy_file = tmp.path().join("policy.toml");
        std::fs::write(&policy_file, policy(1)).expect("write the policy");
        cli.run_with_key(
            &admin,
            &["policy", "apply", &policy_file.display().to_string()],
        )
        .ok("the scenario policy is valid and the admin may apply it");
        let enrol = |name: &str, group: Option<&str>| {
            let key = keys.join(format!("{name}.pem"));
            let mut args = vec!["identity".to_owned(), "add".into(), name.into()];
            if let Some(g) = group {
                args.extend(["--group".into(), g.into()]);
            }
            args.extend(["--key-out".into(), key.display().to_string()]);
            cli.run_with_key(&admin, &args)
                .ok("the admin may enrol people into groups the policy declares");
            key
        };
        let dave = enrol("dave", Some("engineers"));
        let bob = enrol("bob", Some("sre"));
        let carol = enrol("carol", Some("sre"));
        let erin = enrol("erin", None);
        World {
            tmp,
            cli,
            admin,
            dave,
            bob,
            carol,
            erin,
        }
    }

    /// A path inside the test's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Where a secret could leak to: every file of the data directory (the database, its
    /// write-ahead log, config, findings, exports), and every export of the whole history —
    /// CSV, JSON Lines, OCSF, the bundle and the access report — made by the admin now.
    pub fn leak_places(&self) -> Vec<(String, Vec<u8>)> {
        let mut places = files_under(&self.cli.data_dir);
        for (format, ext) in [
            ("csv", "csv"),
            ("jsonl", "jsonl"),
            ("ocsf", "ocsf.jsonl"),
            ("bundle", "bundle"),
        ] {
            let file = self.path(&format!("scan.{ext}"));
            self.by(
                &self.admin,
                &[
                    "export",
                    "--format",
                    format,
                    "-o",
                    &file.display().to_string(),
                ],
            )
            .ok("every export of the history");
            places.push((
                file.display().to_string(),
                std::fs::read(&file).expect("the export"),
            ));
        }
        let report = self.path("scan.html");
        self.by(
            &self.admin,
            &["report", "-o", &report.display().to_string()],
        )
        .ok("the access report");
        places.push((
            report.display().to_string(),
            std::fs::read(&report).expect("the report"),
        ));
        places
    }
}

/// Every file under `dir`, by path, with its bytes.
pub fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path.display().to_string(), bytes));
        }
    }
    found
}

/// Fails when `secret` appears in any of `places` (a name and the bytes found there).
#[track_caller]
pub fn assert_nowhere(secret: &str, what: &str, places: &[(String, Vec<u8>)]) {
    assert!(secret.len() >= 16, "{what} is a real secret");
    for (name, bytes) in places {
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "{what} must not appear in {name}");
    }
}

impl World {
    /// Runs a command as the identity owning `key`.
    pub fn by<S: AsRef<str>>(&self, key: &Path, args: &[S]) -> Output {
        self.cli.run_with_key(key, args)
    }

    /// Files a request as dave and returns its id; asserts the JSON answer's shape.
    #[track_caller]
    pub fn request(&self, target: &str, duration: &str, reason: &str) -> String {
        let mut args = request_args(target, duration, reason);
        args.push("--json");
        let out = self.by(&self.dave, &args);
        out.ok("dave is enrolled and the request is within policy");
        let v = out.json();
        assert_eq!(
            v["state"], "pending",
            "a normal request waits for approval: {v}"
        );
        assert!(
            v["deadline"].is_null(),
            "no deadline before access is granted: {v}"
        );
        v["request"]
            .as_str()
            .unwrap_or_else(|| panic!("`request --json` names the request id: {v}"))
            .to_owned()
    }

    /// `status --json --all` as the admin.
    #[track_caller]
    pub fn status(&self) -> Value {
        let out = self.by(&self.admin, &["status", "--json", "--all"]);
        out.ok("status works on a healthy log");
        out.json()
    }

    /// The log size `status --json` reports.
    #[track_caller]
    pub fn log_size(&self) -> u64 {
        self.status()["log_size"]
            .as_u64()
            .expect("status --json reports log_size as a number")
    }

    /// One request as `status --json --all` shows it.
    #[track_caller]
    pub fn request_json(&self, id: &str) -> Value {
        find_request(&self.status(), id)
    }

    /// The state (`status` field) of one request.
    #[track_caller]
    pub fn state_of(&self, id: &str) -> String {
        self.request_json(id)["status"]
            .as_str()
            .expect("every request has a status string")
            .to_owned()
    }

    /// Polls `status --json --all` every 250 ms (each run also runs the expiry scheduler) until
    /// request `id` is in `state`, for at most `limit`.
    #[track_caller]
    pub fn wait_for_state(&self, id: &str, state: &str, limit: Duration, why: &str) -> Value {
        let start = Instant::now();
        loop {
            let r = self.request_json(id);
            if r["status"] == state {
                return r;
            }
            assert!(
                start.elapsed() < limit,
                "{why}: {id} should reach {state} within {limit:?}, still {}: {r}",
                r["status"]
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Finds request `id` in a `status --json` document.
#[track_caller]
pub fn find_request(status: &Value, id: &str) -> Value {
    status["requests"]
        .as_array()
        .expect("status --json has a requests array")
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("status --json --all should list {id}: {status}"))
        .clone()
}

/// Milliseconds since the Unix epoch of an RFC 3339 time in the CLI's JSON.
#[track_caller]
pub fn millis(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected a timestamp string, got {v}"));
    breakglass_core::Timestamp::parse_lenient(s)
        .unwrap_or_else(|e| panic!("{s:?} is not an RFC 3339 time: {e}"))
        .unix_millis()
}

/// The test's wall clock in Unix milliseconds.
pub fn now_millis() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(d.as_millis()).expect("a sane clock")
}

/// Runs a future to completion on a private runtime (the tests themselves are synchronous).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// The arguments of `breakglass request` for a target, duration and reason.
pub fn request_args<'a>(target: &'a str, duration: &'a str, reason: &'a str) -> Vec<&'a str> {
    vec![
        "request",
        "--target",
        target,
        "--duration",
        duration,
        "--reason",
        reason,
    ]
}

/// A child's standard error, a line at a time, read on a thread.
pub fn lines(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Lines up to and including the first one containing `marker` (within 20 s).
pub fn until(rx: &Receiver<String>, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line with {marker:?} came; saw {seen:#?}"));
        let done = line.contains(marker);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

/// Waits for a spawned command to finish (killing it after `limit`) and returns what it did.
pub fn finish(mut child: Child, args: &[&str], limit: Duration) -> Output {
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait on the child") {
            break status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |pipe: Option<&mut dyn Read>| {
        let mut s = String::new();
        if let Some(p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    };
    Output {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code,
        stdout: read(child.stdout.as_mut().map(|p| p as &mut dyn Read)),
        stderr: read(child.stderr.as_mut().map(|p| p as &mut dyn Read)),
    }
}
