//! What the log and compliance benchmarks share.

/// The policy of the generated histories: dave asks for `db`, bob and carol approve (quorum 2).
pub const POLICY: &str = r#"
version = 1
[groups]
admin = ["admin"]
sre = ["bob", "carol"]
engineers = ["dave"]
[targets.db]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
approvers = { groups = ["sre"], quorum = 2 }
[targets.db.connector]
kind = "command"
grant = ["/bin/true"]
revoke = ["/bin/true"]
"#;
