//! Canonical JSON: one encoding per value, and nothing else parses.

use breakglass_ledger::{
    parse_canonical, to_canonical_value, to_canonical_vec, CanonicalError, MAX_JSON_DEPTH,
};
use proptest::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

const LIMIT: usize = 1 << 20;

fn canonical(v: &Value) -> Vec<u8> {
    to_canonical_value(v).expect("integer-only value is encodable")
}

/// JSON values without floats, nested at most a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z\\\\\"\\n\\u{0}-\\u{1f}\\u{7f}\\u{2028}é😀]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn canonical_parse_canonical_is_identity(v in json_value()) {
        let bytes = canonical(&v);
        let parsed = parse_canonical(&bytes, LIMIT).expect("canonical bytes parse");
        prop_assert_eq!(&parsed, &v);
        prop_assert_eq!(canonical(&parsed), bytes);
    }

    #[test]
    fn pretty_or_spaced_variants_are_rejected(v in json_value()) {
        let bytes = canonical(&v);
        let pretty = serde_json::to_vec_pretty(&v).expect("serialisable");
        if pretty != bytes {
            prop_assert!(parse_canonical(&pretty, LIMIT).is_err());
        }
        let mut spaced = bytes.clone();
        spaced.push(b' ');
        prop_assert!(parse_canonical(&spaced, LIMIT).is_err(), "trailing whitespace");
        let mut leading = vec![b'\n'];
        leading.extend_from_slice(&bytes);
        prop_assert!(parse_canonical(&leading, LIMIT).is_err(), "leading whitespace");
    }

    #[test]
    fn serialize_agrees_with_value(v in json_value()) {
        prop_assert_eq!(to_canonical_vec(&v).expect("encodable"), canonical(&v));
    }
}

#[test]
fn serde_structs_get_sorted_keys() {
    #[derive(Serialize)]
    struct Grant<'a> {
        target: &'a str,
        approvers: Vec<&'a str>,
        duration_secs: u64,
        note: Option<&'a str>,
    }
    let bytes = to_canonical_vec(&Grant {
        target: "prod-db",
        approvers: vec!["bob", "alice"],
        duration_secs: 7200,
        note: None,
    })
    .expect("encodable");
    assert_eq!(
        bytes,
        br#"{"approvers":["bob","alice"],"duration_secs":7200,"note":null,"target":"prod-db"}"#
    );
}

#[test]
fn keys_sort_by_utf8_bytes_not_utf16() {
    // U+FF61 sorts before U+1F600 in UTF-16 code units but after it in UTF-8.
    let v = json!({"\u{1F600}": 1, "\u{FF61}": 2, "a": 3, "B": 4});
    assert_eq!(
        String::from_utf8(canonical(&v)).expect("utf-8"),
        "{\"B\":4,\"a\":3,\"\u{FF61}\":2,\"\u{1F600}\":1}"
    );
}

#[test]
fn non_canonical_inputs_are_rejected() {
    let cases: &[(&str, &str)] = &[
        ("whitespace", r#"{"a": 1}"#),
        ("reordered keys", r#"{"b":1,"a":2}"#),
        ("duplicate keys", r#"{"a":1,"a":1}"#),
        ("duplicate keys, sorted", r#"{"a":1,"a":2}"#),
        ("unneeded escape", r#"{"a":"\u0041"}"#),
        ("escaped slash", r#"{"a":"\/"}"#),
        ("uppercase hex escape", r#"{"a":"\u001F"}"#),
        ("long form of newline", r#"{"a":"\u000a"}"#),
        ("escaped non-ASCII", r#"{"a":"\u00e9"}"#),
        ("float", r#"{"a":1.0}"#),
        ("exponent", r#"{"a":1e2}"#),
        ("negative zero", r#"{"a":-0}"#),
        ("leading zero", r#"{"a":01}"#),
        ("plus sign", r#"{"a":+1}"#),
        ("beyond u64", r#"{"a":18446744073709551616}"#),
        ("beyond i64", r#"{"a":-9223372036854775809}"#),
        ("NaN", r#"{"a":NaN}"#),
        ("trailing comma", r#"[1,]"#),
        ("two documents", r#"{}{}"#),
        ("BOM", "\u{FEFF}{}"),
        ("empty", ""),
        ("raw control character", "\"a\u{1}\""),
    ];
    for (what, text) in cases {
        assert!(
            parse_canonical(text.as_bytes(), LIMIT).is_err(),
            "{what}: {text:?} must be rejected"
        );
    }
    assert!(
        parse_canonical(b"\"\xff\"", LIMIT).is_err(),
        "invalid UTF-8"
    );
    for ok in [
        r#"{"a":"\n\t\"\\\u001f","b":[-1,0,18446744073709551615]}"#,
        "\"\u{2028}é\"",
        "[]",
        "{}",
        "null",
        "-9223372036854775808",
    ] {
        assert!(
            parse_canonical(ok.as_bytes(), LIMIT).is_ok(),
            "{ok:?} is canonical"
        );
    }
}

#[test]
fn floats_are_refused_on_the_way_out() {
    assert!(matches!(
        to_canonical_vec(&json!({"ratio": 0.5})),
        Err(CanonicalError::NotAnInteger { path, .. }) if path == "/ratio"
    ));
    assert!(to_canonical_vec(&1.0f64).is_err());
    assert!(to_canonical_vec(&u128::MAX).is_err());
}

#[test]
fn size_and_depth_limits() {
    let big = format!("\"{}\"", "a".repeat(100));
    assert!(parse_canonical(big.as_bytes(), big.len()).is_ok());
    assert!(matches!(
        parse_canonical(big.as_bytes(), big.len() - 1),
        Err(CanonicalError::TooLarge { .. })
    ));

    let mut deep = json!(1);
    for _ in 0..MAX_JSON_DEPTH {
        deep = json!({ "k": deep });
    }
    let bytes = canonical(&deep);
    assert!(
        parse_canonical(&bytes, LIMIT).is_ok(),
        "{MAX_JSON_DEPTH} levels are fine"
    );
    let deeper = json!([deep]);
    assert!(matches!(
        to_canonical_value(&deeper),
        Err(CanonicalError::TooDeep { .. })
    ));
    // Far beyond serde_json's own recursion limit: must fail, not overflow.
    let hostile = "[".repeat(100_000);
    assert!(parse_canonical(hostile.as_bytes(), LIMIT).is_err());
}
