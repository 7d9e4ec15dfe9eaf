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
