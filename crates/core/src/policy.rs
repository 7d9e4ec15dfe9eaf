//! The access policy: who may request which target, who approves, for how long.
//!
//! A policy is a TOML document that an admin applies; the log records its source text, and every
//! replica re-parses that text, so [`Policy::parse`] is deterministic and strict: it never guesses,
//! never fills in anything but the documented defaults, and reports every problem it finds at
//! once, each with its line and column ([`PolicyErrors`]). It takes a `&str`: reading files is
//! the caller's business.
//!
//! # Format
//!
//! This is [`SAMPLE_POLICY`], the documented example (the CLI's guided first run applies a
//! smaller demo policy of the same form):
//!
#![doc = concat!("```toml\n", include_str!("../tests/fixtures/policies/ok_sample.toml"), "```")]
//!
//! Keys:
//!
//! - `version` (required): an integer ≥ 1; each applied policy must have a higher one.
//! - `max_auth_age` (default `"15m"`): how fresh a sign-in must be for decisions.
//! - `[groups]` (optional): group name → array of member identity names, possibly empty. The
//!   group [`ADMIN_GROUP`] may apply policy and enrol identities.
//! - `[providers.NAME]` (optional): OpenID Connect identity providers whose people may enrol.
//!   - `issuer` (required): the issuer URL exactly as the provider states it: `https://…`, or
//!     `http://` on a loopback address (`127.0.0.1`, `[::1]`, `localhost`) for tests.
//!   - `client_id` (required): this application's client id at the provider.
//!   - `scopes` (default `["email", "groups", "offline_access"]`): scopes asked for besides
//!     `openid`, which is always asked for.
//!   - `groups_claim` (default `"groups"`): the ID token claim that lists the person's groups.
//!   - `name_claim` (default `"preferred_username"`): the claim whose value becomes the
//!     identity's name; it must follow the naming rule.
//!   - `device_flow` (default `false`): also accept sign-ins through the device flow (RFC 8628)
//!     for headless machines. Their ID tokens carry no nonce, so such a sign-in is bound to the
//!     person and the time but not to the signing key; leave it off unless it is needed.
//!   - `groups` (optional): provider group → array of policy groups (each declared in
//!     `[groups]`). A person enrolled through the provider is in exactly the policy groups
//!     their provider groups map to, read from their latest sign-in; the static member lists of
//!     `[groups]` apply to locally enrolled identities only.
//! - `[targets.NAME]` (at least one), with:
//!   - `description` (default `""`): at most [`MAX_DESCRIPTION_CHARS`] characters, no control
//!     characters (it is shown on one line).
//!   - `roles` (default `["default"]`): a non-empty list of distinct role names; the first is
//!     the default role.
//!   - `max_duration`, `request_ttl`, `extension_cap` (required): durations (see
//!     [`Span::parse`]); `extension_cap` ≥ `max_duration`.
//!   - `requesters` (optional): a non-empty list of groups whose members may request; absent
//!     means any enrolled identity.
//!   - `approvers` (required): `groups` (a non-empty list of groups) and `quorum` (≥ 1 distinct
//!     approvers; the requester never counts). A quorum larger than the approver groups'
//!     current membership is allowed: members may be enrolled later.
//!   - `break_glass` (optional): `max_duration`, at most the target's `max_duration`. Absent
//!     means break-glass is not allowed on the target.
//!   - `connector` (required): how access is granted, by `kind`:
//!     - `"command"`: `grant` and `revoke` (argv arrays whose first element is an absolute
//!       path, `/…` or `C:\…`, judged the same way on every platform), `timeout` (default
//!       `"30s"`, at most `"10m"`) and `batch` (default `false`; with `true`, revokes due
//!       together go to one run of the revoke program as JSON Lines, one answer line each). The
//!       target does not enforce the deadline; Breakglass does.
//!     - `"ssh"`: `ca_key` (a secret reference, below: the CA's OpenSSH Ed25519 private key),
//!       `revocation_list` (absolute path of the key revocation list sshd reads as
//!       `RevokedKeys`), `principals` (the accounts a certificate may log in as: an array for
//!       every role, or a table of role = array naming every role), `skew` (default `"1m"`, at
//!       most `"10m"`: how long before the grant a certificate becomes valid). Requests carry
//!       the requester's SSH public key; sshd enforces the deadline.
//!     - `"postgres"`: `url` (`postgres://user@host:port/db?sslmode=…`, no password in it),
//!       `password` (optional secret reference), `roles` (optional table: role of the target →
//!       database role; by default the database role of the same name), `reassign_owned_to`
//!       (optional: who gets the objects a grant's role created; by default they are dropped),
//!       `timeout` (default `"30s"`, at most `"10m"`). Requests carry the SCRAM verifier of a
//!       password the requester's machine made; PostgreSQL enforces the deadline.
//!     - `"webhook"`: `url` (`https://…`, or `http://` on a loopback address), `secret` (a
//!       secret reference: the HMAC key, at least 32 bytes), `attempts` (default 5, 1 to 20),
//!       `timeout` (per attempt, default `"10s"`, at most `"10m"`). Breakglass enforces the
//!       deadline.
//!     - `"oauth"`: `issuer` (the provider's issuer URL), `client_id` and `client_secret` (a
//!       secret reference) of the broker's confidential client, `resource` (the RFC 8707
//!       resource indicator of the API), `scopes` (optional: an array for every role, or a table
//!       of role = array naming every role), `max_token_lifetime` (required: the longest
//!       lifetime the provider issues tokens for the resource with; the target's
//!       `max_duration` may not exceed it), `lifetime_parameter` (optional: the token-request
//!       parameter with which the provider takes a shorter lifetime in seconds), `timeout`
//!       (default `"30s"`, at most `"10m"`). Requests carry the requester's sealing key; the
//!       token's own expiry, at or before the deadline, enforces it.
//!
//!     A secret reference says where a connector secret is kept, never the secret itself:
//!     `"keyring:NAME"` (an OS keyring entry of the service [`SECRET_KEYRING_SERVICE`]) or
//!     `"file:/absolute/path"` (a file only its owner may read, mode 0600 or 0400).
//!
//! Every table may be written in standard (`[targets.x.approvers]`), inline
//! (`approvers = { … }`) or dotted-key (`approvers.quorum = 2`) form, with the same meaning.
//! Names of groups, members, targets and roles follow [`crate::names`].
//!
//! ```
//! use breakglass_core::policy::Policy;
//!
//! let policy = Policy::parse(
//!     r#"
//! version = 3
//! [groups]
//! admin = ["alice"]
//! [targets.wiki]
//! max_duration = "1h"
//! request_ttl = "15m"
//! extension_cap = "4h"
//! approvers = { groups = ["admin"], quorum = 1 }
//! connector = { kind = "command", grant = ["/bin/grant"], revoke = ["/bin/revoke"] }
//! "#,
//! )
//! .unwrap();
//! assert_eq!(policy.target("wiki").unwrap().default_role(), "default");
//!
//! let errors = Policy::parse("version = 0\n").unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "1:1: no targets defined; add at least one [targets.NAME] table\n\
//!      1:11: version must be at least 1; found 0"
//! );
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::credential::CredentialKind;
use crate::span::Span;

mod parse;

/// The sample policy shipped by the CLI, documented above; it parses.
pub const SAMPLE_POLICY: &str = include_str!("../tests/fixtures/policies/ok_sample.toml");

/// The reserved group whose members may apply policy and enrol identities.
pub const ADMIN_GROUP: &str = "admin";

/// The role of a target that lists no `roles`.
pub const DEFAULT_ROLE: &str = "default";

/// The largest policy source accepted, in bytes (1 MiB).
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// The longest target description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// `max_auth_age` when the policy does not set it: 15 minutes.
pub const DEFAULT_MAX_AUTH_AGE: Span = Span::from_secs(15 * 60);

/// A connector's `timeout` when the policy does not set it: 30 seconds.
pub const DEFAULT_CONNECTOR_TIMEOUT: Span = Span::from_secs(30);

/// The longest connector `timeout` accepted: 10 minutes.
pub const MAX_CONNECTOR_TIMEOUT: Span = Span::from_secs(10 * 60);

/// A parsed, validated access policy.
///
/// Only [`Policy::parse`] makes one from outside input, so a `Policy` that came from a log
/// always passed every check below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The policy version; each applied policy has a higher one.
    pub version: u64,
    /// How fresh a sign-in must be for decisions.
    pub max_auth_age: Span,
    /// Group name → member identity names.
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// Provider name → how its people sign in and which groups they are in.
    pub providers: BTreeMap<String, ProviderPolicy>,
    /// Target name → its rules. Never empty in a parsed policy.
    pub targets: BTreeMap<String, TargetPolicy>,
}

/// An OpenID Connect identity provider whose people may enrol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderPolicy {
    /// The provider's name (its key under `[providers]`).
    pub name: String,
    /// The issuer URL, compared exactly with discovery documents and tokens.
    pub issuer: String,
    /// This application's client id at the provider.
    pub client_id: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The ID token claim listing the person's groups.
    pub groups_claim: String,
    /// The ID token claim whose value is the identity's name.
    pub name_claim: String,
    /// Whether device-flow sign-ins (ID tokens without a nonce) are accepted.
    pub device_flow: bool,
    /// Provider group → the policy groups its members are in.
    pub groups: BTreeMap<String, BTreeSet<String>>,
}

impl ProviderPolicy {
    /// The policy groups that provider groups `idp_groups` map to.
    pub fn policy_groups<'a>(
        &'a self,
        idp_groups: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<String> {
        idp_groups
            .into_iter()
            .filter_map(|g| self.groups.get(g))
            .flatten()
            .cloned()
            .collect()
    }
}

/// Scopes asked for besides `openid` when a provider lists none.
pub const DEFAULT_PROVIDER_SCOPES: &[&str] = &["email", "groups", "offline_access"];

/// The longest provider group name accepted in a mapping, in characters.
pub const MAX_PROVIDER_GROUP_CHARS: usize = 256;

/// The rules for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetPolicy {
    /// The target's name (its key under `[targets]`).
    pub name: String,
    /// Free text shown to people; empty when not given.
    pub description: String,
    /// Roles that may be requested, the default first; never empty in a parsed policy.
    pub roles: Vec<String>,
    /// The longest single grant.
    pub max_duration: Span,
    /// How long a request may stay pending before it lapses.
    pub request_ttl: Span,
    /// The total granted time of a chain (a request and its extensions).
    pub extension_cap: Span,
    /// Groups whose members may request; `None` lets any enrolled identity request.
    pub requesters: Option<BTreeSet<String>>,
    /// Who approves, and how many.
    pub approvers: ApproverRule,
    /// Break-glass rules; `None` means break-glass is not allowed here.
    pub break_glass: Option<BreakGlassRule>,
    /// How access is granted and revoked.
    pub connector: ConnectorSpec,
}

/// Who may approve requests for a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApproverRule {
    /// Groups whose members may approve.
    pub groups: BTreeSet<String>,
    /// Distinct approvals needed; the requester never counts. At least 1.
    pub quorum: u32,
}

/// Break-glass self-activation rules for a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakGlassRule {
    /// The longest break-glass grant; at most the target's `max_duration`.
    pub max_duration: Span,
}

/// How a target's access is granted and revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConnectorSpec {
    /// Run a program (never a shell), with the grant as JSON on its standard input.
    Command(CommandSpec),
    /// Sign the requester's SSH public key with a certificate authority sshd trusts.
    Ssh(SshSpec),
    /// Create a temporary PostgreSQL login role in the target role.
    Postgres(PostgresSpec),
    /// POST a signed JSON document per grant and revoke.
    Webhook(WebhookSpec),
    /// Obtain a short-lived OAuth access token for a resource from the provider.
    #[serde(rename = "oauth")]
    OAuth(OAuthSpec),
}

impl ConnectorSpec {
    /// The connector's kind, as the policy names it (`kind = "command"`).
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorSpec::Command(_) => "command",
            ConnectorSpec::Ssh(_) => "ssh",
            ConnectorSpec::Postgres(_) => "postgres",
            ConnectorSpec::Webhook(_) => "webhook",
            ConnectorSpec::OAuth(_) => "oauth",
        }
    }

    /// True when the target itself ends access at the deadline (a certificate's validity, a
    /// role's `VALID UNTIL`), so a missed revocation cannot outlive the grant.
    pub fn enforces_expiry(&self) -> bool {
        match self {
            ConnectorSpec::Ssh(_) | ConnectorSpec::Postgres(_) | ConnectorSpec::OAuth(_) => true,
            ConnectorSpec::Command(_) | ConnectorSpec::Webhook(_) => false,
        }
    }

    /// The longest grant the connector can make, when it has a limit of its own (the longest
    /// token the provider issues): no target may allow longer.
    pub fn longest_grant(&self) -> Option<Span> {
        match self {
            ConnectorSpec::OAuth(o) => Some(o.max_token_lifetime),
            _ => None,
        }
    }

    /// What a request must bring for this connector, if anything.
    pub fn credential(&self) -> Option<CredentialKind> {
        match self {
            ConnectorSpec::Ssh(_) => Some(CredentialKind::SshPublicKey),
            ConnectorSpec::Postgres(_) => Some(CredentialKind::ScramVerifier),
            ConnectorSpec::OAuth(_) => Some(CredentialKind::SealKey),
            ConnectorSpec::Command(_) | ConnectorSpec::Webhook(_) => None,
        }
    }
}

/// A connector that runs programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandSpec {
    /// Argv that grants access; the first element is an absolute path.
    pub grant: Vec<String>,
    /// Argv that revokes access; the first element is an absolute path.
    pub revoke: Vec<String>,
    /// How long one run may take.
    pub timeout: Span,
    /// Revokes due together go to one run of the revoke program, as JSON Lines, answered line
    /// by line (see the connectors crate's `command` module); grants still run one at a time.
    pub batch: bool,
}

/// Where a connector's secret is kept: never in the policy, the log or the database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretRef {
    /// `keyring:NAME`: the OS keyring entry NAME of the service [`SECRET_KEYRING_SERVICE`].
    Keyring(String),
    /// `file:/absolute/path`: a file readable by its owner only (mode 0600 or 0400).
    File(String),
}

/// The keyring service under which connector secrets are kept (`keyring:NAME` entries).
pub const SECRET_KEYRING_SERVICE: &str = "breakglass-connector";

impl SecretRef {
    /// Parses `keyring:NAME` (NAME: 1-128 characters of letters, digits and `-_.`) or
    /// `file:/absolute/path`.
    pub fn parse(text: &str) -> Result<SecretRef, String> {
        let hint = "write keyring:NAME (an entry in the OS keyring) or file:/absolute/path (a \
                    file only its owner can read)";
        if let Some(name) = text.strip_prefix("keyring:") {
            let ok = (1..=128).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(format!(
                    "keyring entry name {name:?} must be 1-128 letters, digits, '-', '_' or '.'"
                ));
            }
            Ok(SecretRef::Keyring(name.to_owned()))
        } else if let Some(path) = text.strip_prefix("file:") {
            if !parse::is_absolute(path) || path.chars().any(char::is_control) {
                return Err(format!("{path:?} is not an absolute path; {hint}"));
            }
            Ok(SecretRef::File(path.to_owned()))
        } else {
            Err(format!("{text:?} is not a secret reference; {hint}"))
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Keyring(name) => write!(f, "keyring:{name}"),
            SecretRef::File(path) => write!(f, "file:{path}"),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// SSH certificates signed by the policy's certificate authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshSpec {
    /// The CA's private key (OpenSSH format, Ed25519).
    pub ca_key: SecretRef,
    /// The key revocation list sshd reads (`RevokedKeys`), an absolute path the broker writes.
    pub revocation_list: String,
    /// Role → the accounts (principals) a certificate for that role may log in as; every role
    /// of the target has an entry.
    pub principals: BTreeMap<String, Vec<String>>,
    /// How long before the grant a certificate becomes valid (for clocks running behind).
    pub skew: Span,
}

/// `skew` of an SSH connector when the policy does not set it.
pub const DEFAULT_SSH_SKEW: Span = Span::from_secs(60);

/// The largest `skew` accepted.
pub const MAX_SSH_SKEW: Span = Span::from_secs(10 * 60);

/// Temporary PostgreSQL login roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostgresSpec {
    /// The administrative connection, `postgres://user@host:port/db?sslmode=…`, without a
    /// password.
    pub url: String,
    /// The administrative password, when the server asks for one.
    pub password: Option<SecretRef>,
    /// Role of the target → the database role a grant's login role becomes a member of; every
    /// role of the target has an entry (by default, the database role of the same name).
    pub roles: BTreeMap<String, String>,
    /// Where objects a grant's role created go when it is dropped; `None` drops them.
    pub reassign_owned_to: Option<String>,
    /// How long one grant or revoke may take.
    pub timeout: Span,
}

/// Webhook deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookSpec {
    /// Where grants and revokes are POSTed: `https://…` (or `http://` on a loopback address).
    pub url: String,
    /// The signing secret (at least 32 bytes).
    pub secret: SecretRef,
    /// Attempts per delivery, 1 to [`MAX_WEBHOOK_ATTEMPTS`].
    pub attempts: u32,
    /// Time-out of one attempt.
    pub timeout: Span,
}

/// OAuth access tokens from the organisation's provider, by the client-credentials grant with
/// an RFC 8707 resource indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthSpec {
    /// The provider's issuer URL (its discovery document is read from it).
    pub issuer: String,
    /// The broker's client id at the provider (a confidential client).
    pub client_id: String,
    /// The client's secret.
    pub client_secret: SecretRef,
    /// The resource indicator: the API the tokens are for.
    pub resource: String,
    /// Role of the target → the scopes its tokens are asked for (possibly none).
    pub scopes: BTreeMap<String, Vec<String>>,
    /// The longest lifetime the provider issues tokens for the resource with; no grant on the
    /// target may be longer.
    pub max_token_lifetime: Span,
    /// The token-request parameter with which the provider takes a shorter lifetime (seconds).
    pub lifetime_parameter: Option<String>,
    /// How long one token request or revocation may take.
    pub timeout: Span,
}

/// `attempts` of a webhook when the policy does not set it.
pub const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 5;

/// The largest `attempts` accepted.
pub const MAX_WEBHOOK_ATTEMPTS: u32 = 20;

/// `timeout` of a webhook when the policy does not set it.
pub const DEFAULT_WEBHOOK_TIMEOUT: Span = Span::from_secs(10);

impl Policy {
    /// Parses and validates a policy's TOML source.
    ///
    /// On failure, returns every problem found, in source order. A TOML syntax error stops the
    /// parse, so it is then the only problem reported.
    pub fn parse(source: &str) -> Result<Policy, PolicyErrors> {
        parse::parse(source)
    }

    /// The members of `group`, if the policy declares it.
    pub fn members(&self, group: &str) -> Option<&BTreeSet<String>> {
        self.groups.get(group)
    }

    /// The rules for the target called `name`, if there is one.
    pub fn target(&self, name: &str) -> Option<&TargetPolicy> {
        self.targets.get(name)
    }

    /// The identity provider called `name`, if there is one.
    pub fn provider(&self, name: &str) -> Option<&ProviderPolicy> {
        self.providers.get(name)
    }
}

impl TargetPolicy {
    /// The role used when a request names none: the first listed.
    pub fn default_role(&self) -> &str {
        self.roles.first().map_or(DEFAULT_ROLE, String::as_str)
    }

    /// True when the platform behind the connector ends access by itself at the deadline, so
    /// a missed revocation cannot outlive the grant. False for [`ConnectorSpec::Command`]: the
    /// engine must revoke.
    pub fn enforces_expiry_itself(&self) -> bool {
        self.connector.enforces_expiry()
    }
}

/// Every problem found in a policy source, in source order; never empty.
///
/// Displays as one `LINE:COL: message` line per problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyErrors(pub Vec<PolicyProblem>);

/// One problem in a policy source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyProblem {
    /// Line of the problem, from 1.
    pub line: usize,
    /// Column of the problem, from 1, counted in characters.
    pub column: usize,
    /// What is wrong, and what to do about it.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            problem.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Policy {
        Policy::parse(SAMPLE_POLICY).expect("the shipped sample parses")
    }

    #[test]
    fn sample_reads_as_documented() {
        let p = sample();
        assert_eq!(p.version, 1);
        assert_eq!(p.max_auth_age, DEFAULT_MAX_AUTH_AGE);
        assert_eq!(
            p.members(ADMIN_GROUP),
            Some(&BTreeSet::from(["alice".to_owned()]))
        );
        assert_eq!(p.members("sre").map(BTreeSet::len), Some(2));
        assert_eq!(
            p.members("nobody"),
            None,
            "undeclared groups have no members"
        );

        let t = p.target("prod-db").expect("prod-db is declared");
        assert_eq!(t.name, "prod-db");
        assert_eq!(t.description, "Production PostgreSQL, primary");
        assert_eq!(
            t.default_role(),
            "read",
            "the first role listed is the default"
        );
        assert_eq!(t.max_duration, Span::from_secs(2 * 3600));
        assert_eq!(t.request_ttl, Span::from_secs(30 * 60));
        assert_eq!(t.extension_cap, Span::from_secs(6 * 3600));
        assert_eq!(
            t.requesters,
            Some(BTreeSet::from(["engineers".into(), "sre".into()]))
        );
        assert_eq!(
            t.approvers,
            ApproverRule {
                groups: BTreeSet::from(["sre".into()]),
                quorum: 2
            }
        );
        assert_eq!(
            t.break_glass,
            Some(BreakGlassRule {
                max_duration: Span::from_secs(30 * 60)
            })
        );
        let ConnectorSpec::Command(cmd) = &t.connector else {
            panic!("prod-db runs commands");
        };
        assert_eq!(cmd.grant, ["/usr/local/bin/grant-db", "--mode", "grant"]);
        assert_eq!(cmd.revoke, ["/usr/local/bin/grant-db", "--mode", "revoke"]);
        assert_eq!(cmd.timeout, DEFAULT_CONNECTOR_TIMEOUT);
        assert!(
            !t.enforces_expiry_itself(),
            "a command connector relies on the engine to revoke"
        );
        assert!(p.target("staging-db").is_none());
    }

    #[test]
    fn providers_read_with_their_defaults_and_group_mappings() {
        let p = Policy::parse(include_str!("../tests/fixtures/policies/ok_providers.toml"))
            .expect("parses");
        let corp = p.provider("corp").expect("declared");
        assert_eq!(corp.issuer, "https://login.example.com/realms/corp");
        assert_eq!(corp.client_id, "breakglass-desktop");
        assert_eq!(corp.scopes, DEFAULT_PROVIDER_SCOPES);
        assert_eq!(corp.groups_claim, "groups");
        assert_eq!(corp.name_claim, "preferred_username");
        assert!(corp.groups.is_empty());
        let lab = p.provider("lab").expect("declared");
        assert_eq!(lab.issuer, "http://127.0.0.1:8080");
        assert_eq!(lab.groups_claim, "roles");
        assert_eq!(lab.name_claim, "sub");
        assert!(lab.device_flow && !corp.device_flow);
        assert_eq!(
            lab.policy_groups(["/platform/admins", "devs", "unmapped"]),
            BTreeSet::from(["admin".into(), "sre".into(), "engineers".into()])
        );
        assert!(
            lab.policy_groups(["sre team"]).is_empty(),
            "exact match only"
        );
        assert!(p.provider("other").is_none());
        assert!(sample().providers.is_empty());
    }

    #[test]
    fn connector_kinds_read_with_their_defaults() {
        let p = Policy::parse(include_str!(
            "../tests/fixtures/policies/ok_connectors.toml"
        ))
        .expect("parses");
        let ConnectorSpec::Ssh(bastion) = &p.target("bastion").unwrap().connector else {
            panic!("bastion signs certificates");
        };
        assert_eq!(bastion.ca_key, SecretRef::Keyring("ssh-ca".into()));
        assert_eq!(bastion.revocation_list, "/etc/ssh/breakglass.krl");
        assert_eq!(bastion.skew, Span::from_secs(120));
        assert_eq!(bastion.principals["user"], ["deploy", "first.last@corp"]);
        assert_eq!(bastion.principals["root"], ["root"]);
        let ConnectorSpec::Ssh(jump) = &p.target("jump").unwrap().connector else {
            panic!("jump signs certificates");
        };
        assert_eq!(
            jump.ca_key,
            SecretRef::File("/etc/breakglass/ssh-ca".into())
        );
        assert_eq!(jump.skew, DEFAULT_SSH_SKEW);
        assert_eq!(
            jump.principals,
            BTreeMap::from([(DEFAULT_ROLE.to_owned(), vec!["ops".to_owned()])]),
            "one list applies to every role"
        );
        let db = p.target("prod-db").unwrap();
        let ConnectorSpec::Postgres(pg) = &db.connector else {
            panic!("prod-db makes roles");
        };
        assert_eq!(
            pg.password,
            Some(SecretRef::Keyring("prod-db-admin".into()))
        );
        assert_eq!(
            pg.roles,
            BTreeMap::from([
                ("read".to_owned(), "read".to_owned()),
                ("write".to_owned(), "app_writer".to_owned())
            ]),
            "unmapped roles keep their own name"
        );
        assert_eq!(pg.reassign_owned_to.as_deref(), Some("app_owner"));
        assert_eq!(pg.timeout, Span::from_secs(20));
        assert!(db.enforces_expiry_itself());
        assert_eq!(
            db.connector.credential(),
            Some(CredentialKind::ScramVerifier)
        );
        let hook = p.target("tickets").unwrap();
        let ConnectorSpec::Webhook(w) = &hook.connector else {
            panic!("tickets posts webhooks");
        };
        assert_eq!(
            (w.attempts, w.timeout),
            (DEFAULT_WEBHOOK_ATTEMPTS, DEFAULT_WEBHOOK_TIMEOUT)
        );
        assert!(!hook.enforces_expiry_itself());
        assert_eq!(hook.connector.credential(), None);
        assert_eq!(
            p.target("bastion").unwrap().connector.credential(),
            Some(CredentialKind::SshPublicKey)
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json["targets"]["prod-db"]["connector"]["password"],
            "keyring:prod-db-admin"
        );
        assert_eq!(json["targets"]["prod-db"]["connector"]["kind"], "postgres");
        let api = p.target("billing-api").unwrap();
        let ConnectorSpec::OAuth(o) = &api.connector else {
            panic!("billing-api hands out tokens");
        };
        assert_eq!(o.client_secret, SecretRef::Keyring("idp-broker".into()));
        assert_eq!(o.scopes["write"], ["billing:read", "billing:write"]);
        assert_eq!(o.max_token_lifetime, Span::from_secs(3600));
        assert_eq!(o.lifetime_parameter.as_deref(), Some("requested_lifetime"));
        assert_eq!(o.timeout, DEFAULT_CONNECTOR_TIMEOUT);
        assert!(api.enforces_expiry_itself());
        assert_eq!(api.connector.credential(), Some(CredentialKind::SealKey));
        assert_eq!(api.connector.longest_grant(), Some(Span::from_secs(3600)));
        let ConnectorSpec::OAuth(r) = &p.target("reports").unwrap().connector else {
            panic!("reports hands out tokens");
        };
        assert_eq!(
            r.scopes,
            BTreeMap::from([(DEFAULT_ROLE.to_owned(), Vec::new())]),
            "no scopes asked for unless listed"
        );
        assert_eq!(r.lifetime_parameter, None);
        assert_eq!(json["targets"]["reports"]["connector"]["kind"], "oauth");
    }

    #[test]
    fn secret_references_are_keyring_entries_or_absolute_files() {
        assert_eq!(
            SecretRef::parse("keyring:a-b_c.1"),
            Ok(SecretRef::Keyring("a-b_c.1".into()))
        );
        assert_eq!(
            SecretRef::parse("file:/etc/x"),
            Ok(SecretRef::File("/etc/x".into()))
        );
        for bad in [
            "keyring:",
            "keyring:a b",
            "file:etc/x",
            "env:X",
            "/etc/x",
            "",
        ] {
            assert!(SecretRef::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(SecretRef::Keyring("k".into()).to_string(), "keyring:k");
    }

    #[test]
    fn default_role_survives_a_hand_built_target() {
        let mut t = sample().target("prod-db").cloned().unwrap();
        t.roles.clear();
        assert_eq!(t.default_role(), DEFAULT_ROLE);
    }

    #[test]
    fn serialises_for_display() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["targets"]["prod-db"]["max_duration"], "2h");
        assert_eq!(json["targets"]["prod-db"]["connector"]["kind"], "command");
        assert_eq!(json["targets"]["prod-db"]["connector"]["timeout"], "30s");
    }

    #[test]
    fn errors_display_one_line_per_problem() {
        let errors = PolicyErrors(vec![
            PolicyProblem {
                line: 1,
                column: 2,
                message: "first".into(),
            },
            PolicyProblem {
                line: 3,
                column: 4,
                message: "second".into(),
            },
        ]);
        assert_eq!(errors.to_string(), "1:2: first\n3:4: second");
    }
}
