//! Policy test vectors: every `ok_*.toml` under `fixtures/policies` must parse, and every
//! `fail_*.toml` must be rejected with exactly the problems listed, one `LINE:COL: message` a
//! line, in its sibling `fail_*.expected`.
//!
//! After a deliberate change to messages, `BREAKGLASS_BLESS=1 cargo test -p breakglass-core
//! --test policy_cases` rewrites the `.expected` files; review the diff before keeping it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use breakglass_core::policy::{
    ApproverRule, ConnectorSpec, Policy, DEFAULT_CONNECTOR_TIMEOUT, DEFAULT_MAX_AUTH_AGE,
    MAX_POLICY_BYTES, SAMPLE_POLICY,
};

fn fixtures() -> PathBuf {
    breakglass_testkit::package_dir().join("tests/fixtures/policies")
}

/// Fixture files whose names start with `prefix` and end with `.toml`, sorted.
fn cases(prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(fixtures())
        .expect("the fixtures folder exists")
        .map(|e| e.expect("fixture entries are readable").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(prefix) && name.ends_with(".toml")
        })
        .collect();
    found.sort();
    found
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn ok_cases_parse() {
    let oks = cases("ok_");
    assert!(oks.len() >= 3, "the ok_ vectors are all found");
    for path in oks {
        if let Err(errors) = Policy::parse(&read(&path)) {
            panic!("{} must parse, but:\n{errors}", path.display());
        }
    }
}

#[test]
fn fail_cases_report_exactly_the_expected_problems() {
    let fails = cases("fail_");
    assert!(fails.len() >= 15, "the fail_ vectors are all found");
    let bless = std::env::var_os("BREAKGLASS_BLESS").is_some();
    let mut mismatches = Vec::new();
    for path in fails {
        let errors = match Policy::parse(&read(&path)) {
            Ok(_) => {
                mismatches.push(format!("{} parsed, but must be rejected", path.display()));
                continue;
            }
            Err(errors) => errors,
        };
        assert!(!errors.0.is_empty(), "a rejection always says why");
        let actual = errors.to_string();
        let expected_path = path.with_extension("expected");
        if bless {
            fs::write(&expected_path, format!("{actual}\n")).expect("can bless");
            continue;
        }
        let Ok(expected) = fs::read_to_string(&expected_path) else {
            mismatches.push(format!(
                "{} is missing; this case reports:\n{actual}",
                expected_path.display()
            ));
            continue;
        };
        if expected.trim_end() != actual {
            mismatches.push(format!(
                "{}:\n--- expected\n{}\n--- actual\n{actual}",
                path.display(),
                expected.trim_end()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

#[test]
fn every_expected_file_has_its_case() {
    for entry in fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            assert!(
                path.with_extension("toml").exists(),
                "{} is left over from a removed case",
                path.display()
            );
        }
    }
}

#[test]
fn one_file_reports_all_its_problems_at_once() {
    let errors = Policy::parse(&read(&fixtures().join("fail_many.toml"))).unwrap_err();
    assert!(
        errors.0.len() >= 4,
        "the four mistakes of fail_many are all reported, not just the first: {errors}"
    );
    let lines: Vec<_> = errors.0.iter().map(|p| (p.line, p.column)).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "problems come in source order");
}

#[test]
fn sample_is_the_fixture() {
    assert_eq!(
        SAMPLE_POLICY,
        read(&fixtures().join("ok_sample.toml")),
        "the CLI's sample policy is the tested fixture"
    );
}

#[test]
fn standard_inline_and_dotted_forms_mean_the_same() {
    let sample = Policy::parse(SAMPLE_POLICY).unwrap();
    let forms = Policy::parse(&read(&fixtures().join("ok_forms.toml"))).unwrap();
    let a = sample.target("prod-db").unwrap();
    let b = forms.target("prod-db").unwrap();
    let mut b_like_a = b.clone();
    b_like_a.description = a.description.clone();
    assert_eq!(
        *a, b_like_a,
        "only the description differs between the sample and ok_forms"
    );
    assert_eq!(forms.version, 7);
    assert_eq!(forms.max_auth_age, DEFAULT_MAX_AUTH_AGE);
    assert_eq!(b.description, "", "a missing description is empty");
    assert_eq!(forms.members("admin"), Some(&BTreeSet::new()));
}

#[test]
fn defaults_fill_only_what_is_documented() {
    let p = Policy::parse(&read(&fixtures().join("ok_minimal.toml"))).unwrap();
    let t = p.target("wiki").unwrap();
    assert_eq!(t.roles, ["default"]);
    assert_eq!(t.default_role(), "default");
    assert_eq!(
        t.requesters, None,
        "no requesters key lets anyone enrolled request"
    );
    assert_eq!(
        t.break_glass, None,
        "no break_glass table forbids break-glass"
    );
    assert_eq!(
        t.approvers,
        ApproverRule {
            groups: BTreeSet::from(["admin".to_owned()]),
            quorum: 1
        }
    );
    let ConnectorSpec::Command(cmd) = &t.connector else {
        panic!("wiki has a command connector");
    };
    assert_eq!(cmd.timeout, DEFAULT_CONNECTOR_TIMEOUT);
    assert_eq!(cmd.grant, [r"C:\tools\grant.exe"]);
}

#[test]
fn oversized_sources_are_refused_before_parsing() {
    let mut source = SAMPLE_POLICY.to_owned();
    source.push_str(&"#".repeat(MAX_POLICY_BYTES));
    let errors = Policy::parse(&source).unwrap_err();
    assert_eq!(
        errors.to_string(),
        format!(
            "1:1: the policy is {} bytes; the limit is 1048576 bytes (1 MiB)",
            source.len()
        )
    );
}

#[test]
fn parsing_is_deterministic() {
    let a = Policy::parse(SAMPLE_POLICY).unwrap();
    let b = Policy::parse(SAMPLE_POLICY).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap(),
        "the same source always shows the same way"
    );
}
