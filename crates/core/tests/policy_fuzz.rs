//! The policy and duration parsers read outside input: whatever they are given, they answer
//! with a value or with positioned problems, and never panic.

use breakglass_core::policy::{Policy, SAMPLE_POLICY};
use breakglass_core::span::Span;
use proptest::prelude::*;

/// Characters that matter to TOML and to the policy schema, so mutations reach deep checks.
const ALPHABET: &[char] = &[
    '[', ']', '{', '}', '"', '\'', '=', ',', '.', '#', '\n', ' ', '\\', '0', '1', '9', 'h', 'm',
    's', 'd', '-', '/', 'a', 'é', '\t', '\r',
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = proptest::sample::select(ALPHABET);
    prop_oneof![
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
    ]
}

fn mutate(source: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = source.chars().collect();
    for edit in edits {
        match *edit {
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % chars.len());
            }
            Edit::Replace(i, c) if !chars.is_empty() => {
                let i = i % chars.len();
                chars[i] = c;
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// A rejection names at least one problem, each at a position inside the source.
fn check(source: &str) {
    if let Err(errors) = Policy::parse(source) {
        assert!(!errors.0.is_empty(), "a rejection says why");
        let lines = source.split('\n').count();
        for p in &errors.0 {
            assert!(p.line >= 1 && p.column >= 1, "positions are 1-based: {p}");
            assert!(p.line <= lines, "{p} points inside the {lines}-line source");
            assert!(!p.message.contains('\n'), "one problem is one line: {p:?}");
        }
    }
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(source in any::<String>()) {
        check(&source);
    }

    #[test]
    fn parse_never_panics_on_mutated_samples(edits in proptest::collection::vec(edit(), 1..8)) {
        check(&mutate(SAMPLE_POLICY, &edits));
    }

    #[test]
    fn spans_parse_or_refuse_and_round_trip(text in "[0-9dhms+ -]{0,12}|\\PC{0,12}") {
        if let Ok(span) = Span::parse(&text) {
            prop_assert!(span.as_secs() > 0 && span <= Span::MAX);
            prop_assert_eq!(Span::parse(&span.to_string()), Ok(span));
        }
    }

    #[test]
    fn every_span_in_range_prints_and_parses_back(secs in 1..=Span::MAX.as_secs()) {
        let span = Span::from_secs(secs);
        prop_assert_eq!(Span::parse(&span.to_string()), Ok(span));
    }
}
