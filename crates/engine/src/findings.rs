//! A team member's signed findings: what it saw when the shared log failed verification.
//!
//! A member that finds the shared log rewritten, truncated or forked, or holding a row or a
//! checkpoint without a valid signature, cannot append to it (it no longer knows which history
//! is the log), yet the finding must not live only on a screen. So the member signs it at once
//! with its identity's key, as an [`AlertKind::HistoryRefused`] alert of the log's own event
//! format, and keeps it in its data directory (`findings/`, one file each, owner-only). Once the
//! log verifies again, the member appends it — signed anew at that time, the text saying when
//! it was found — so everyone reading the log sees it, and removes the file. A file held here
//! verifies on its own: it is a log entry (canonical event, key, signature) the member's
//! enrolled key signed.
//!
//! Each distinct finding is kept once (a member re-reading a tampered log every second finds the
//! same thing every second), and at most [`MAX_HELD`] are kept.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use breakglass_core::{AlertKind, Event, EventBody, Timestamp, EVENT_FORMAT, MAX_TEXT_LEN};
use breakglass_ledger::{leaf_hash, Entry};

use crate::engine::{Actor, Engine};
use crate::error::{Code, EngineError};
use crate::home::{write_private, Home};

/// The folder of a member's data directory that holds its findings.
pub const FINDINGS_DIR: &str = "findings";

/// Most findings kept: past it, new ones are not kept (their problem is still reported).
pub const MAX_HELD: usize = 100;

const SUFFIX: &str = ".entry";

/// A finding kept in a member's data directory.
#[derive(Debug)]
pub struct Held {
    /// Its file.
    pub path: PathBuf,
    /// The signed entry (its signature verified when read).
    pub entry: Entry,
}

/// The findings folder of one data directory.
#[derive(Debug, Clone)]
pub struct Findings {
    dir: PathBuf,
}

impl Findings {
    /// The findings of the data directory `home`.
    pub fn of(home: &Home) -> Findings {
        Findings {
            dir: home.dir().join(FINDINGS_DIR),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The findings kept, oldest first. A file that is not a validly signed finding is an
    /// error naming it: it was not written here.
    pub fn held(&self) -> Result<Vec<Held>, EngineError> {
        let read_dir = match fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("cannot read", &self.dir, &e)),
        };
        let mut paths = Vec::new();
        for item in read_dir {
            let path = item
                .map_err(|e| self.io("cannot read", &self.dir, &e))?
                .path();
            if path.to_str().is_some_and(|p| p.ends_with(SUFFIX)) {
                paths.push(path);
            }
        }
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let bytes = fs::read(&path).map_err(|e| self.io("cannot read", &path, &e))?;
                let entry = Entry::decode(&bytes)
                    .and_then(|e| e.verify_signature().map(|()| e))
                    .map_err(|e| {
                        EngineError::Tampered(format!(
                            "{} is not a finding signed here: {e}",
                            path.display()
                        ))
                    })?;
                if !is_finding(&entry.event().body) {
                    return Err(EngineError::Tampered(format!(
                        "{} is not a finding (it holds a {} event)",
                        path.display(),
                        entry.event().body.kind()
                    )));
                }
                Ok(Held { path, entry })
            })
            .collect()
    }

    /// Signs `problem`, found at `time` on the log `origin`, as `actor`'s finding and keeps it,
    /// unless the same problem is kept already. Returns the file that holds it.
    pub fn record(
        &self,
        actor: &Actor,
        origin: &str,
        time: Timestamp,
        problem: &str,
    ) -> Result<PathBuf, EngineError> {
        let tag = tag(problem);
        let held = self.held()?;
        if let Some(h) = held
            .iter()
            .find(|h| h.path.to_str().is_some_and(|p| p.ends_with(&tag)))
        {
            return Ok(h.path.clone());
        }
        if held.len() >= MAX_HELD {
            return Err(EngineError::Invalid(format!(
                "{} already holds {MAX_HELD} findings; no more are kept until the log verifies \
                 again and they are appended",
                self.dir.display()
            )));
        }
        let event = Event {
            v: EVENT_FORMAT,
            log: origin.to_owned(),
            time,
            actor: actor.name().to_owned(),
            body: EventBody::Alert {
                kind: AlertKind::HistoryRefused,
                message: message(actor.name(), time, problem),
                request: None,
            },
        };
        let entry = actor.sign(event)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| self.io("cannot create", &self.dir, &e))?;
        let name = format!("{:013}{tag}", time.unix_millis());
        let path = self.dir.join(name);
        write_private(&path, entry.bytes()).map_err(|e| self.io("cannot write", &path, &e))?;
        Ok(path)
    }

    /// Appends the findings `actor` signed and keeps (each signed anew now: see the module
    /// docs), then removes their files; returns how many. Findings of other identities stay.
    /// The log must have just verified (the caller's sync succeeded), and `actor` must be
    /// enrolled with its key, or nothing is appended.
    pub async fn report(&self, engine: &mut Engine, actor: &Actor) -> Result<usize, EngineError> {
        let mine: Vec<Held> = self
            .held()?
            .into_iter()
            .filter(|h| {
                h.entry.event().actor == actor.name() && *h.entry.key() == actor.public_key()
            })
            .collect();
        if mine.is_empty() {
            return Ok(0);
        }
        let enrolled = engine
            .state()
            .identity(actor.name())
            .is_some_and(|i| i.record.key == actor.public_key() && i.revoked_at.is_none());
        if !enrolled || engine.state().origin() != Some(mine[0].entry.event().log.as_str()) {
            return Ok(0);
        }
        let mut reported = 0;
        for h in mine {
            engine
                .report_finding(actor, h.entry.event().body.clone())
                .await?;
            fs::remove_file(&h.path).map_err(|e| self.io("cannot remove", &h.path, &e))?;
            reported += 1;
        }
        Ok(reported)
    }

    fn io(&self, what: &str, path: &Path, e: &std::io::Error) -> EngineError {
        EngineError::Setup(format!("{what} {}: {e}", path.display()))
    }
}

/// When a team member's read of the shared log failed verification (`error`), signs and keeps
/// the finding as `actor` (see the module docs) and returns the error saying so; any other
/// error, or one in an embedded log's directory, is returned as it is.
pub fn hold(
    home: &Home,
    actor: Result<Actor, EngineError>,
    time: Timestamp,
    error: EngineError,
) -> EngineError {
    if !home.is_member() || error.code() != Code::Tampered {
        return error;
    }
    let problem = match error {
        EngineError::Tampered(why) => why,
        other => other.to_string(),
    };
    let kept = actor.and_then(|a| {
        Findings::of(home)
            .record(&a, home.origin(), time, &problem)
            .map(|path| (a, path))
    });
    let note = match kept {
        Ok((actor, path)) => format!(
            "{problem}. A report of this finding signed by {} is kept in {} and appended to the \
             log once it verifies again",
            actor.name(),
            path.display()
        ),
        Err(e) => format!("{problem}. No signed report of this finding could be kept: {e}"),
    };
    EngineError::Tampered(note)
}

/// Whether `body` is a member's finding.
fn is_finding(body: &EventBody) -> bool {
    matches!(
        body,
        EventBody::Alert {
            kind: AlertKind::HistoryRefused,
            request: None,
            ..
        }
    )
}

/// The file-name tag of a problem: equal problems, equal tags.
fn tag(problem: &str) -> String {
    let hash = leaf_hash(problem.as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("-{hex}{SUFFIX}")
}

/// The finding's text, within the log's limit on alert messages.
fn message(actor: &str, time: Timestamp, problem: &str) -> String {
    let problem: String = problem
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = format!("{actor} found the shared log failing verification at {time}: {problem}");
    if text.chars().count() <= MAX_TEXT_LEN {
        return text;
    }
    text.chars().take(MAX_TEXT_LEN - 1).chain(['…']).collect()
}
