//! The compliance report: one self-contained HTML page for a period — figures, charts drawn as
//! inline SVG (no script, nothing fetched: a Content-Security-Policy forbids it), the tables an
//! auditor asks for, and the result of verifying the log with the checkpoint it was checked
//! against. It prints to PDF as it shows on screen.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use breakglass_core::{LogState, Request, Review, Status, Timestamp};
use breakglass_ledger::VerifyOptions;

use crate::error::EngineError;
use crate::export::verify_stored_bundle;
use crate::Engine;

/// Which requests a report covers: those made in `[from, to)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Period {
    /// Earliest request time included.
    pub from: Option<Timestamp>,
    /// First request time no longer included.
    pub to: Option<Timestamp>,
}

impl Period {
    fn contains(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|to| t < to)
    }
}

/// How verifying the log went, as the report shows it.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Whether the log verified.
    pub ok: bool,
    /// One line: what was verified, or why it failed.
    pub headline: String,
    /// The signed checkpoint it was checked against (C2SP signed note), when it got that far.
    pub checkpoint: Option<String>,
    /// What was checked, in plain words.
    pub checks: Vec<String>,
}

/// Figures of a report, computed from the log's state (public for tests and other front ends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Requests made in the period.
    pub requests: usize,
    /// Of them, granted.
    pub grants: usize,
    /// Break-glass activations.
    pub break_glass: usize,
    /// Break-glass reviews still owed.
    pub reviews_owed: usize,
    /// Break-glass reviews recorded.
    pub reviews_done: usize,
    /// Grants that ended by revocation.
    pub ended_by_revoke: usize,
    /// Grants that ended at their deadline.
    pub ended_by_expiry: usize,
    /// Grants still active (or being revoked).
    pub still_active: usize,
    /// Failed revoke attempts, in all.
    pub revoke_failures: u64,
    /// Grants per UTC day (`YYYY-MM-DD`), every day from the first grant to the last.
    pub grants_per_day: Vec<(String, u64)>,
    /// Grant lengths, by bucket.
    pub durations: Vec<(&'static str, u64)>,
    /// Time from request to approval (quorum reached), by bucket; break-glass excluded.
    pub approval_latency: Vec<(&'static str, u64)>,
    /// Targets by requests, most first (at most 10).
    pub top_targets: Vec<(String, u64)>,
    /// Requesters by requests, most first (at most 10).
    pub top_requesters: Vec<(String, u64)>,
    /// Targets by failed revoke attempts, most first (at most 10; none without a failure).
    pub revoke_failures_by_target: Vec<(String, u64)>,
}

const DURATION_BUCKETS: [(&str, i64); 7] = [
    ("≤ 15 min", 15 * 60),
    ("≤ 30 min", 30 * 60),
    ("≤ 1 h", 3600),
    ("≤ 2 h", 2 * 3600),
    ("≤ 4 h", 4 * 3600),
    ("≤ 8 h", 8 * 3600),
    ("> 8 h", i64::MAX),
];

const LATENCY_BUCKETS: [(&str, i64); 7] = [
    ("< 1 min", 60),
    ("< 5 min", 5 * 60),
    ("< 15 min", 15 * 60),
    ("< 1 h", 3600),
    ("< 4 h", 4 * 3600),
    ("< 1 day", 86_400),
    ("≥ 1 day", i64::MAX),
];

/// The days from one grant to the next shown one bar each, at most.
const MAX_DAYS: i64 = 400;

impl Figures {
    /// The figures of the requests made in `period`.
    pub fn of(state: &LogState, period: &Period) -> Figures {
        let requests: Vec<&Request> = state
            .requests()
            .filter(|r| period.contains(r.requested_at))
            .collect();
        let mut f = Figures {
            requests: requests.len(),
            ..Figures::default()
        };
        let mut per_day: BTreeMap<i64, u64> = BTreeMap::new();
        let mut durations = [0u64; DURATION_BUCKETS.len()];
        let mut latency = [0u64; LATENCY_BUCKETS.len()];
        let mut targets: HashMap<&str, u64> = HashMap::new();
        let mut requesters: HashMap<&str, u64> = HashMap::new();
        let mut failing: HashMap<&str, u64> = HashMap::new();
        for r in &requests {
            *targets.entry(&r.target).or_default() += 1;
            *requesters.entry(&r.requester).or_default() += 1;
            f.revoke_failures += u64::from(r.revoke_failures);
            if r.revoke_failures > 0 {
                *failing.entry(&r.target).or_default() += u64::from(r.revoke_failures);
            }
            if r.break_glass {
                f.break_glass += 1;
                match r.review {
                    Some(Review::Required) => f.reviews_owed += 1,
                    Some(Review::Done { .. }) => f.reviews_done += 1,
                    None => {}
                }
            } else if let Some(at) = r.approved_at {
                latency[bucket(&LATENCY_BUCKETS, at.millis_since(r.requested_at) / 1000)] += 1;
            }
            let (Some(granted), Some(deadline)) = (r.granted_at, r.deadline) else {
                continue;
            };
            f.grants += 1;
            *per_day
                .entry(granted.unix_millis().div_euclid(86_400_000))
                .or_default() += 1;
            durations[bucket(&DURATION_BUCKETS, deadline.millis_since(granted) / 1000)] += 1;
            match r.status {
                Status::Revoked => f.ended_by_revoke += 1,
                Status::Expired => f.ended_by_expiry += 1,
                Status::Active | Status::Revoking => f.still_active += 1,
                _ => {}
            }
        }
        if let (Some((&first, _)), Some((&last, _))) =
            (per_day.first_key_value(), per_day.last_key_value())
        {
            let first = first.max(last - MAX_DAYS + 1);
            f.grants_per_day = (first..=last)
                .map(|day| {
                    let label = Timestamp::from_unix_millis(day * 86_400_000)
                        .map(|t| t.to_string()[..10].to_owned())
                        .unwrap_or_default();
                    (label, per_day.get(&day).copied().unwrap_or(0))
                })
                .collect();
        }
        f.durations = labelled(&DURATION_BUCKETS, &durations);
        f.approval_latency = labelled(&LATENCY_BUCKETS, &latency);
        f.top_targets = top(targets);
        f.top_requesters = top(requesters);
        f.revoke_failures_by_target = top(failing);
        f
    }
}

/// The first bucket that holds `secs`: duration buckets hold their limit (≤), latency buckets
/// stop short of it (<).
fn bucket(buckets: &[(&str, i64)], secs: i64) -> usize {
    let inclusive = buckets[0].0.starts_with('≤');
    buckets
        .iter()
        .position(|(_, limit)| {
            if inclusive {
                secs <= *limit
            } else {
                secs < *limit
            }
        })
        .unwrap_or(buckets.len() - 1)
}

fn labelled(buckets: &[(&'static str, i64)], counts: &[u64]) -> Vec<(&'static str, u64)> {
    buckets
        .iter()
        .map(|(l, _)| *l)
        .zip(counts.iter().copied())
        .collect()
}

fn top(counts: HashMap<&str, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(10);
    v
}

impl Engine {
    /// Verifies the log as a bundle — everything the newest checkpoint covers, against this
    /// log's own checkpoint key — and renders the report of the requests made in `period`
    /// (its HTML, how the verification went, and the figures it shows).
    pub async fn report(
        &self,
        period: &Period,
    ) -> Result<(String, Verification, Figures), EngineError> {
        let (covered, note) = self.bundle_checkpoint().await?;
        let (origin, log_key) = self.origin_and_key()?;
        let opts = VerifyOptions {
            log_key: Some(self.log_verifier()),
            earlier_checkpoint: None,
        };
        let verified =
            verify_stored_bundle(self.store(), origin, log_key, covered, &note, opts).await?;
        let checkpoint = Some(note);
        let verification = match verified {
            Ok(r) => Verification {
                ok: true,
                headline: format!(
                    "OK: {} entries of log {} verified against its signed checkpoint (root {})",
                    r.entries, r.origin, r.root
                ),
                checkpoint,
                checks: r.checks,
            },
            Err(e) => Verification {
                ok: false,
                headline: format!("FAILED: {e}"),
                checkpoint,
                checks: Vec::new(),
            },
        };
        let figures = Figures::of(self.state(), period);
        let html = render(self.state(), &figures, period, self.now(), &verification);
        Ok((html, verification, figures))
    }
}

/// Flags for running Chromium headless on a machine that must not reach out: no GPU, no
/// first-run, no background connections, component updates or sync.
pub const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
];

/// The HTML-to-PDF converter: `$BREAKGLASS_CHROMIUM`, else the first of chromium,
/// chromium-browser, google-chrome and google-chrome-stable on the `PATH`.
pub fn find_chromium() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("BREAKGLASS_CHROMIUM") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|p| p.is_file())
}

/// Runs headless Chromium with `args` after [`CHROMIUM_FLAGS`], a fresh profile directory
/// (removed after) and, when running as root (where its sandbox cannot start), `--no-sandbox`;
/// at most a minute.
pub async fn run_chromium(args: &[String]) -> Result<std::process::Output, EngineError> {
    use std::os::unix::fs::MetadataExt;
    let program = find_chromium().ok_or_else(|| {
        EngineError::Invalid(
            "no HTML-to-PDF converter found: install chromium (or set BREAKGLASS_CHROMIUM)".into(),
        )
    })?;
    let profile = std::env::temp_dir().join(format!(
        "breakglass-chromium-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        cmd.arg("--no-sandbox");
    }
    let ran = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output()).await;
    let _ = std::fs::remove_dir_all(&profile);
    let failed = |why: String| EngineError::Invalid(format!("{}: {why}", program.display()));
    match ran {
        Err(_) => Err(failed("no answer within 60 s".into())),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Ok(Ok(out)) if !out.status.success() => Err(failed(format!(
            "{} ({})",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ))),
        Ok(Ok(out)) => Ok(out),
    }
}

/// Prints the report at `html` to a PDF at `pdf` with headless Chromium. The PDF appears
/// complete or not at all.
pub async fn print_pdf(html: &std::path::Path, pdf: &std::path::Path) -> Result<(), EngineError> {
    let html = std::fs::canonicalize(html)
        .map_err(|e| EngineError::Invalid(format!("{}: {e}", html.display())))?;
    let mut tmp_name = pdf.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".partial");
    let tmp = pdf.with_file_name(tmp_name);
    let printed = run_chromium(&[
        "--no-pdf-header-footer".into(),
        format!("--print-to-pdf={}", tmp.display()),
        format!("file://{}", html.display()),
    ])
    .await;
    let done = printed.and_then(|_| {
        let head = std::fs::read(&tmp)
            .map_err(|e| EngineError::Invalid(format!("the converter wrote no PDF: {e}")))?;
        if !head.starts_with(b"%PDF-") {
            return Err(EngineError::Invalid("the converter wrote no PDF".into()));
        }
        std::fs::rename(&tmp, pdf)
            .map_err(|e| EngineError::Invalid(format!("cannot write {}: {e}", pdf.display())))
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// The report's HTML, showing `f`, the figures of `state` for `period`.
pub fn render(
    state: &LogState,
    f: &Figures,
    period: &Period,
    generated: Timestamp,
    verification: &Verification,
) -> String {
    let origin = state.origin().unwrap_or("(no log)");
    let span = match (period.from, period.to) {
        (None, None) => "the whole log".to_owned(),
        (Some(a), None) => format!("requests made from {a}"),
        (None, Some(b)) => format!("requests made before {b}"),
        (Some(a), Some(b)) => format!("requests made from {a} until {b}"),
    };
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Breakglass access report: {origin}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Access report</h1>
<p class="sub">Log <code>{origin}</code> · {span} · generated {generated} (UTC) by Breakglass {version}</p>
</header>
"#,
        origin = esc(origin),
        span = esc(&span),
        version = env!("CARGO_PKG_VERSION"),
    );
    verification_section(&mut h, verification);
    let _ = write!(
        h,
        r#"<section class="figures" id="figures">
{}{}{}{}{}{}{}
</section>
"#,
        figure("Requests", f.requests),
        figure("Grants", f.grants),
        figure("Break-glass activations", f.break_glass),
        figure("Reviews owed", f.reviews_owed),
        figure("Ended by revoke", f.ended_by_revoke),
        figure("Ended at deadline", f.ended_by_expiry),
        figure(
            "Revoke failures",
            usize::try_from(f.revoke_failures).unwrap_or(usize::MAX)
        ),
    );
    h.push_str("<section class=\"charts\">\n");
    chart(
        &mut h,
        "grants-per-day",
        "Grants per day (UTC)",
        &f.grants_per_day
            .iter()
            .map(|(d, n)| (d.clone(), *n))
            .collect::<Vec<_>>(),
        "No grants in this period.",
    );
    chart(
        &mut h,
        "durations",
        "Grant lengths",
        &owned(&f.durations),
        "No grants in this period.",
    );
    chart(
        &mut h,
        "approval-latency",
        "Time from request to approval",
        &owned(&f.approval_latency),
        "No approved requests in this period.",
    );
    chart(
        &mut h,
        "ended",
        "How grants ended",
        &[
            ("Revoked".to_owned(), f.ended_by_revoke as u64),
            ("At deadline".to_owned(), f.ended_by_expiry as u64),
            ("Still active".to_owned(), f.still_active as u64),
        ],
        "No grants in this period.",
    );
    chart(
        &mut h,
        "break-glass-reviews",
        "Break-glass activations and their reviews",
        &[
            ("Reviewed".to_owned(), f.reviews_done as u64),
            ("Review owed".to_owned(), f.reviews_owed as u64),
        ],
        "No break-glass activations in this period.",
    );
    ranking(
        &mut h,
        "revoke-failures-by-target",
        "Failed revoke attempts by target",
        &f.revoke_failures_by_target,
        "Every revoke succeeded at its first attempt.",
    );
    ranking(
        &mut h,
        "top-targets",
        "Top targets (requests)",
        &f.top_targets,
        "No requests in this period.",
    );
    ranking(
        &mut h,
        "top-requesters",
        "Top requesters (requests)",
        &f.top_requesters,
        "No requests in this period.",
    );
    h.push_str("</section>\n");
    break_glass_table(&mut h, state, period);
    revoke_failure_table(&mut h, state, period);
    h.push_str("</body>\n</html>\n");
    h
}

fn owned(v: &[(&'static str, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(l, n)| ((*l).to_owned(), *n)).collect()
}

fn verification_section(h: &mut String, v: &Verification) {
    let _ = write!(
        h,
        r#"<section class="verification {class}" id="verification">
<h2>Verification: {word}</h2>
<p>{headline}</p>
"#,
        class = if v.ok { "ok" } else { "failed" },
        word = if v.ok { "OK" } else { "FAILED" },
        headline = esc(&v.headline),
    );
    if let Some(c) = &v.checkpoint {
        let _ = write!(
            h,
            "<p>Checked against this signed checkpoint (C2SP signed note); keep it to check later exports are consistent with it (<code>breakglass verify --checkpoint</code>):</p>\n<pre id=\"checkpoint\">{}</pre>\n",
            esc(c)
        );
    }
    if !v.checks.is_empty() {
        h.push_str("<details open><summary>What was checked</summary><ul>\n");
        for c in &v.checks {
            let _ = writeln!(h, "<li>{}</li>", esc(c));
        }
        h.push_str("</ul></details>\n");
    }
    h.push_str("</section>\n");
}

fn figure(label: &str, n: usize) -> String {
    format!(
        "<div class=\"figure\"><span class=\"n\">{n}</span><span class=\"l\">{}</span></div>",
        esc(label)
    )
}

/// A vertical bar chart as inline SVG, or a line saying there is nothing to chart.
fn chart(h: &mut String, id: &str, title: &str, bars: &[(String, u64)], empty: &str) {
    let _ = write!(
        h,
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>",
        esc(title)
    );
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if max == 0 {
        let _ = writeln!(h, "<p class=\"empty\">{}</p></figure>", esc(empty));
        return;
    }
    let (width, height, left, bottom, top) = (640.0, 240.0, 40.0, 56.0, 16.0);
    let plot_h = height - bottom - top;
    let step = (width - left - 8.0) / bars.len() as f64;
    let bar_w = (step * 0.7).clamp(1.0, 56.0);
    let _ = write!(
        h,
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    // Axis and its top value.
    let _ = write!(
        h,
        "<line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{y}\"/><line class=\"axis\" x1=\"{left}\" y1=\"{y}\" x2=\"{x}\" y2=\"{y}\"/><text class=\"tick\" x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{max}</text><text class=\"tick\" x=\"{tx}\" y=\"{y}\" text-anchor=\"end\">0</text>",
        y = height - bottom,
        x = width - 4.0,
        tx = left - 4.0,
        ty = top + 8.0,
    );
    let label_every = (bars.len() / 16).max(1);
    for (i, (label, n)) in bars.iter().enumerate() {
        let x = left + 4.0 + step * i as f64;
        let bh = plot_h * (*n as f64) / (max as f64);
        let y = height - bottom - bh;
        let _ = write!(
            h,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar_w:.1}\" height=\"{bh:.1}\"><title>{}: {n}</title></rect>",
            esc(label)
        );
        if bars.len() <= 16 && *n > 0 {
            let _ = write!(
                h,
                "<text class=\"value\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{n}</text>",
                x + bar_w / 2.0,
                y - 3.0
            );
        }
        if i % label_every == 0 {
            let lx = x + bar_w / 2.0;
            let ly = height - bottom + 14.0;
            let _ = write!(
                h,
                "<text class=\"tick\" x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" transform=\"rotate(-30 {lx:.1} {ly:.1})\">{}</text>",
                esc(label)
            );
        }
    }
    h.push_str("</svg></figure>\n");
}

/// A horizontal bar chart of names and counts, or a line saying there is nothing to chart.
fn ranking(h: &mut String, id: &str, title: &str, rows: &[(String, u64)], empty: &str) {
    let _ = write!(
        h,
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>",
        esc(title)
    );
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if max == 0 {
        let _ = writeln!(h, "<p class=\"empty\">{}</p></figure>", esc(empty));
        return;
    }
    let (width, row_h, left) = (640.0, 22.0, 170.0);
    let height = row_h * rows.len() as f64 + 8.0;
    let _ = write!(
        h,
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    for (i, (name, n)) in rows.iter().enumerate() {
        let y = 4.0 + row_h * i as f64;
        let w = (width - left - 48.0) * (*n as f64) / (max as f64);
        let shown: String = name.chars().take(24).collect();
        let _ = write!(
            h,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect class=\"bar\" x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{}: {n}</title></rect><text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{n}</text>",
            left - 6.0,
            y + 15.0,
            esc(&shown),
            row_h - 6.0,
            esc(name),
            left + w + 4.0,
            y + 15.0,
        );
    }
    h.push_str("</svg></figure>\n");
}

fn break_glass_table(h: &mut String, state: &LogState, period: &Period) {
    h.push_str("<section id=\"break-glass\"><h2>Break-glass activations and their reviews</h2>\n");
    let rows: Vec<&Request> = sorted(state, period, |r| r.break_glass);
    if rows.is_empty() {
        h.push_str("<p class=\"empty\">No break-glass activations in this period.</p></section>\n");
        return;
    }
    h.push_str("<table><thead><tr><th>Activated</th><th>Requester</th><th>Target / role</th><th>Reason</th><th>How it ended</th><th>Review</th></tr></thead><tbody>\n");
    for r in rows {
        let review = match &r.review {
            Some(Review::Done { by, comment, at }) => {
                format!("done by {} at {at}: {}", esc(by), esc(comment))
            }
            Some(Review::Required) => "<strong class=\"owed\">owed</strong>".to_owned(),
            None => String::new(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{review}</td></tr>",
            r.granted_at.unwrap_or(r.requested_at),
            esc(&r.requester),
            esc(&r.target),
            esc(&r.role),
            esc(&r.reason),
            r.status.as_str(),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn revoke_failure_table(h: &mut String, state: &LogState, period: &Period) {
    h.push_str("<section id=\"revoke-failures\"><h2>Revoke failures</h2>\n");
    let rows = sorted(state, period, |r| r.revoke_failures > 0);
    if rows.is_empty() {
        h.push_str(
            "<p class=\"empty\">Every revoke succeeded at its first attempt.</p></section>\n",
        );
        return;
    }
    h.push_str("<table><thead><tr><th>Request</th><th>Requester</th><th>Target</th><th>Failed attempts</th><th>Last error</th><th>Now</th></tr></thead><tbody>\n");
    for r in rows {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.id,
            esc(&r.requester),
            esc(&r.target),
            r.revoke_failures,
            esc(r.last_error.as_deref().unwrap_or("")),
            r.status.as_str(),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn sorted<'s>(
    state: &'s LogState,
    period: &Period,
    keep: impl Fn(&Request) -> bool,
) -> Vec<&'s Request> {
    let mut rows: Vec<&Request> = state
        .requests()
        .filter(|r| period.contains(r.requested_at) && keep(r))
        .collect();
    rows.sort_by_key(|r| (r.requested_at, r.id));
    rows
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
:root { --ink: #1d2330; --muted: #5b6475; --line: #d5d9e2; --bar: #2f6fdf; --ok: #1d7a46; --bad: #b3261e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 24px; background: #fff; }
h1 { margin: 0; font-size: 26px; }
h2 { font-size: 18px; margin: 28px 0 8px; }
.sub { color: var(--muted); margin: 4px 0 0; }
code, pre { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 12px; }
pre { background: #f4f6fa; border: 1px solid var(--line); padding: 10px; white-space: pre-wrap; word-break: break-all; }
.verification { border: 2px solid; border-radius: 8px; padding: 4px 16px 12px; margin-top: 20px; }
.verification.ok { border-color: var(--ok); }
.verification.ok h2 { color: var(--ok); }
.verification.failed { border-color: var(--bad); }
.verification.failed h2 { color: var(--bad); }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 10px; margin-top: 20px; }
.figure { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.figure .n { display: block; font-size: 26px; font-weight: 600; }
.figure .l { color: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 16px; margin-top: 20px; }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; break-inside: avoid; }
figcaption { font-weight: 600; margin-bottom: 6px; }
svg { width: 100%; height: auto; display: block; }
.bar { fill: var(--bar); }
.axis { stroke: var(--muted); stroke-width: 1; }
.tick { font-size: 10px; fill: var(--muted); }
.value { font-size: 10px; fill: var(--ink); }
.empty { color: var(--muted); font-style: italic; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--line); text-align: left; padding: 6px 8px; vertical-align: top; }
th { background: #f4f6fa; }
.owed { color: var(--bad); }
@media print { body { padding: 0; } .charts { grid-template-columns: 1fr 1fr; } }
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere_it_is_shown() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn buckets_put_each_length_in_the_first_that_holds_it() {
        assert_eq!(bucket(&DURATION_BUCKETS, 60), 0);
        assert_eq!(bucket(&DURATION_BUCKETS, 15 * 60), 0);
        assert_eq!(bucket(&DURATION_BUCKETS, 15 * 60 + 1), 1);
        assert_eq!(bucket(&DURATION_BUCKETS, 3600), 2);
        assert_eq!(bucket(&DURATION_BUCKETS, 10 * 3600), 6);
        assert_eq!(bucket(&LATENCY_BUCKETS, 59), 0);
        assert_eq!(
            bucket(&LATENCY_BUCKETS, 60),
            1,
            "latency buckets are open above"
        );
        assert_eq!(bucket(&LATENCY_BUCKETS, 86_400), 6);
    }
}
