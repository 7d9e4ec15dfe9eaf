//! Names of identities, groups, targets and roles.
//!
//! One rule for all of them, so a name is safe in a log line, a CSV cell, a file name and a URL
//! path segment without escaping: 1–63 characters of `a-z 0-9 . _ -`, starting with a letter or
//! digit.

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 63;

/// Returns why `name` is not a valid name, or `None` when it is.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name cannot be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "name {:?} is {} characters long; the limit is {MAX_NAME_LEN}",
            truncate_for_message(name),
            name.len()
        ));
    }
    let first = name.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Some(format!(
            "name {name:?} must start with a lowercase letter or a digit"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "name {name:?} contains {bad:?}; only a-z, 0-9, '.', '_' and '-' are allowed"
        ));
    }
    None
}

/// True when `name` follows the naming rule.
pub fn is_valid_name(name: &str) -> bool {
    name_problem(name).is_none()
}

fn truncate_for_message(s: &str) -> String {
    s.chars().take(24).collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["alice", "prod-db", "sre.approvers", "r2_d2", "0day"] {
            assert!(is_valid_name(n), "{n} follows the rule");
        }
    }

    #[test]
    fn rejects_names_that_would_need_escaping() {
        for n in [
            "",
            "Alice",
            "-x",
            "a b",
            "a,b",
            "=cmd",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_name(n), "{n:?} must be rejected");
        }
    }
}
