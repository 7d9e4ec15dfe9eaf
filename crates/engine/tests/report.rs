//! The compliance report: its figures are the history's, it renders in real headless Chromium
//! (a screenshot must show the charts' bars and the verification's verdict), it prints to PDF,
//! and a log that fails verification is reported as FAILED, not OK.

mod support;

use breakglass_core::Span;
use breakglass_engine::report::{self, Figures, Period};
use sqlx::{ConnectOptions, Connection};
use support::history::{history, start};

/// Pixels of exactly `rgb` in a PNG screenshot.
fn pixels_of(png_path: &std::path::Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("a screenshot in {other:?}"),
    };
    buf[..info.buffer_size()]
        .chunks_exact(step)
        .filter(|p| p[..3] == rgb)
        .count()
}

/// The bars' colour and the verdict's border colours in the report's style sheet.
const BAR: [u8; 3] = [0x2f, 0x6f, 0xdf];
const OK_GREEN: [u8; 3] = [0x1d, 0x7a, 0x46];
const FAILED_RED: [u8; 3] = [0xb3, 0x26, 0x1e];

async fn screenshot(html: &str, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, html).unwrap();
    let png = dir.join(format!("{name}.png"));
    report::run_chromium(&[
        "--window-size=1280,2600".into(),
        format!("--screenshot={}", png.display()),
        format!("file://{}", page.display()),
    ])
    .await
    .expect("headless Chromium (Debian's chromium; scripts/bootstrap.sh installs it)");
    png
}

#[tokio::test]
async fn the_report_shows_the_historys_figures_and_charts_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = history(tmp.path()).await;

    let f = Figures::of(engine.state(), &Period::default());
    assert_eq!(f.requests, 7);
    assert_eq!(
        f.grants, 3,
        "prod-db's, staging's revoked one, the break-glass one"
    );
    assert_eq!(f.break_glass, 1);
    assert_eq!((f.reviews_owed, f.reviews_done), (0, 1), "bob reviewed it");
    assert_eq!(f.revoke_failures_by_target, vec![("prod-db".to_owned(), 1)]);
    assert_eq!(
        (f.ended_by_revoke, f.ended_by_expiry, f.still_active),
        (1, 2, 0)
    );
    assert_eq!(f.revoke_failures, 1);
    assert_eq!(f.grants_per_day, vec![("2026-11-23".to_owned(), 3)]);
    assert_eq!(f.durations.iter().map(|(_, n)| n).sum::<u64>(), 3);
    assert_eq!(
        f.durations.iter().find(|(l, _)| *l == "≤ 1 h").unwrap().1,
        2
    );
    assert_eq!(
        f.durations
            .iter()
            .find(|(l, _)| *l == "≤ 30 min")
            .unwrap()
            .1,
        1,
        "the 20-minute break-glass grant"
    );
    assert_eq!(
        f.approval_latency.iter().map(|(_, n)| n).sum::<u64>(),
        3,
        "every approved request but the break-glass one (the failed grant's too)"
    );
    assert_eq!(f.top_requesters, vec![("dave".to_owned(), 7)]);
    assert_eq!(f.top_targets[0], ("staging".to_owned(), 4));

    let (html, verification, _) = engine.report(&Period::default()).await.unwrap();
    assert!(verification.ok, "{verification:?}");
    assert!(html.contains("Verification: OK"), "the log verifies");
    assert!(
        html.contains("<pre id=\"checkpoint\">test.breakglass/ocsf\n"),
        "with its checkpoint"
    );
    assert!(
        !html.contains("<script") && html.contains("default-src 'none'"),
        "nothing runs or loads"
    );
    assert!(
        html.contains("=HYPERLINK(&quot;x&quot;) investigate INC-42"),
        "a person's words are escaped, never markup"
    );
    for id in [
        "grants-per-day",
        "durations",
        "approval-latency",
        "ended",
        "top-targets",
        "top-requesters",
        "break-glass-reviews",
        "revoke-failures-by-target",
        "break-glass",
        "revoke-failures",
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "the report has {id}"
        );
    }

    let png = screenshot(&html, tmp.path(), "report").await;
    let bars = pixels_of(&png, BAR);
    let verdict = pixels_of(&png, OK_GREEN);
    assert!(bars > 20_000, "the charts' bars are drawn: {bars} pixels");
    assert!(
        verdict > 1_000,
        "the OK verdict's frame is drawn: {verdict} pixels"
    );
    assert_eq!(pixels_of(&png, FAILED_RED), 0, "nothing is shown as failed");

    // A period with nothing in it says so instead of drawing empty charts.
    let later = start().checked_add(Span::parse("30d").unwrap()).unwrap();
    let (empty, _, figures) = engine
        .report(&Period {
            from: Some(later),
            to: None,
        })
        .await
        .unwrap();
    assert!(empty.contains("No grants in this period."));
    assert_eq!(figures.requests, 0, "the figures returned are the period's");
    let png = screenshot(&empty, tmp.path(), "empty").await;
    assert_eq!(pixels_of(&png, BAR), 0, "no bars for an empty period");

    // The same report as a PDF.
    let page = tmp.path().join("report.html");
    let pdf = tmp.path().join("report.pdf");
    report::print_pdf(&page, &pdf).await.unwrap();
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(
        bytes.starts_with(b"%PDF-") && bytes.len() > 10_000,
        "a PDF of the report"
    );
    assert!(!tmp.path().join("report.pdf.partial").exists());
}

#[tokio::test]
async fn a_log_that_fails_verification_is_reported_as_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = history(tmp.path()).await;
    // A writer with database access replaces the newest entry's bytes: signatures no longer
    // hash to the checkpoint.
    let db = tmp.path().join("log.db");
    let size = engine.size();
    let last = engine.entries(size - 1, size).await.unwrap().remove(0);
    let mut changed = last.clone();
    let at = changed.len() / 2;
    changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .connect()
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER log_entries_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE log_entries SET entry = ? WHERE idx = ?")
        .bind(&changed)
        .bind(i64::try_from(size - 1).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let (html, verification, _) = engine.report(&Period::default()).await.unwrap();
    assert!(!verification.ok);
    assert!(html.contains("Verification: FAILED"), "the change is found");
    assert!(!html.contains("Verification: OK"));
    let png = screenshot(&html, tmp.path(), "failed").await;
    assert!(pixels_of(&png, FAILED_RED) > 1_000, "shown in red");
    assert_eq!(pixels_of(&png, OK_GREEN), 0);
}
