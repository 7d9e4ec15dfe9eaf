//! docs/threat-model.md names the test behind each control as `crate/tests/file.rs::test_name`;
//! every one of them must exist, so the document cannot drift from the suite (and the suite runs
//! them all in `.ci/run`).

use std::fs;

#[test]
fn every_test_the_threat_model_names_exists() {
    let root = breakglass_testkit::workspace_root();
    let doc = fs::read_to_string(root.join("docs/threat-model.md")).expect("read the threat model");
    let mut named = 0;
    let mut missing = Vec::new();
    let mut file = String::new();
    // References look like `core/tests/jose.rs::name`, or `::name` for the file named last.
    for part in doc.split('`').skip(1).step_by(2) {
        let Some((path, test)) = part.split_once("::") else {
            continue;
        };
        if !path.is_empty() {
            file = path.to_owned();
        }
        let source = fs::read_to_string(root.join("crates").join(&file))
            .unwrap_or_else(|e| panic!("the threat model names crates/{file}: {e}"));
        named += 1;
        if !source.contains(&format!("fn {test}(")) {
            missing.push(format!("{file}::{test}"));
        }
    }
    assert!(
        named >= 40,
        "the threat model names its tests ({named} found)"
    );
    assert!(
        missing.is_empty(),
        "named in docs/threat-model.md but not found: {missing:?}"
    );
}

#[test]
fn every_crate_and_fuzz_target_of_ours_forbids_unsafe_code() {
    let root = breakglass_testkit::workspace_root();
    let workspace = fs::read_to_string(root.join("Cargo.toml")).expect("the workspace manifest");
    assert!(
        workspace.contains("[workspace.lints.rust]\nunsafe_code = \"forbid\""),
        "the workspace forbids unsafe code for every target of its members"
    );
    let mut checked = 0;
    let mut members: Vec<std::path::PathBuf> = fs::read_dir(root.join("crates"))
        .expect("crates/")
        .map(|e| e.expect("an entry").path())
        .collect();
    members.push(root.join("src-tauri"));
    for member in &members {
        let manifest = fs::read_to_string(member.join("Cargo.toml")).expect("a manifest");
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{} takes the workspace's lints",
            member.display()
        );
        for crate_root in ["src/lib.rs", "src/main.rs"] {
            let Ok(source) = fs::read_to_string(member.join(crate_root)) else {
                continue;
            };
            assert!(
                source.contains("#![forbid(unsafe_code)]"),
                "{}/{crate_root} forbids unsafe code itself",
                member.display()
            );
            checked += 1;
        }
    }
    for target in fs::read_dir(root.join("fuzz/fuzz_targets")).expect("fuzz targets") {
        let path = target.expect("an entry").path();
        let source = fs::read_to_string(&path).expect("a fuzz target");
        assert!(
            source.contains("#![forbid(unsafe_code)]"),
            "{} forbids unsafe code",
            path.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 15,
        "every crate root and fuzz target was read ({checked})"
    );
}
