//! `[targets.NAME.connector]`: the kinds of connector and their settings.

use std::collections::BTreeMap;

use super::{is_absolute, issuer_problem, Entry, Problems, Table};
use crate::policy::{
    CommandSpec, ConnectorSpec, OAuthSpec, PostgresSpec, SecretRef, SshSpec, WebhookSpec,
    DEFAULT_CONNECTOR_TIMEOUT, DEFAULT_SSH_SKEW, DEFAULT_WEBHOOK_ATTEMPTS, DEFAULT_WEBHOOK_TIMEOUT,
    MAX_CONNECTOR_TIMEOUT, MAX_SSH_SKEW, MAX_WEBHOOK_ATTEMPTS,
};
use crate::span::Span;

const KINDS: &str = "\"command\", \"ssh\", \"postgres\", \"webhook\" or \"oauth\"";
const COMMAND_KEYS: &[&str] = &["kind", "grant", "revoke", "timeout", "batch"];
const SSH_KEYS: &[&str] = &["kind", "ca_key", "revocation_list", "principals", "skew"];
const POSTGRES_KEYS: &[&str] = &[
    "kind",
    "url",
    "password",
    "roles",
    "reassign_owned_to",
    "timeout",
];
const WEBHOOK_KEYS: &[&str] = &["kind", "url", "secret", "attempts", "timeout"];
const OAUTH_KEYS: &[&str] = &[
    "kind",
    "issuer",
    "client_id",
    "client_secret",
    "resource",
    "scopes",
    "max_token_lifetime",
    "lifetime_parameter",
    "timeout",
];

/// The longest scope accepted, in characters.
const MAX_SCOPE_CHARS: usize = 128;

/// The longest client id, resource indicator or parameter name accepted, in characters.
const MAX_OAUTH_TEXT_CHARS: usize = 512;

/// The longest SSH principal (an account name) accepted, in characters.
const MAX_PRINCIPAL_CHARS: usize = 64;

/// PostgreSQL's identifier limit (NAMEDATALEN − 1), in bytes.
const MAX_DB_ROLE_BYTES: usize = 63;

impl Problems {
    /// The connector of target `t` (shown name), at `path`, whose roles are `roles` (`None`
    /// when they could not be read: then role mappings are not checked for completeness).
    pub(super) fn connector(
        &mut self,
        entry: Entry<'_>,
        t: &str,
        path: &str,
        roles: Option<&[String]>,
    ) -> Option<ConnectorSpec> {
        let table = self.table(
            entry,
            &format!("connector of target {t}"),
            format!("in [{path}.connector]"),
        )?;
        let kind_entry =
            self.required(&table, "kind", &format!("the kind of connector: {KINDS}"))?;
        let kind = self.string(kind_entry, &format!("connector.kind of target {t}"))?;
        match kind {
            "command" => {
                self.unknown_keys(&table, COMMAND_KEYS);
                self.command(&table, t).map(ConnectorSpec::Command)
            }
            "ssh" => {
                self.unknown_keys(&table, SSH_KEYS);
                self.ssh(&table, t, roles).map(ConnectorSpec::Ssh)
            }
            "postgres" => {
                self.unknown_keys(&table, POSTGRES_KEYS);
                self.postgres(&table, t, roles).map(ConnectorSpec::Postgres)
            }
            "webhook" => {
                self.unknown_keys(&table, WEBHOOK_KEYS);
                self.webhook(&table, t).map(ConnectorSpec::Webhook)
            }
            "oauth" => {
                self.unknown_keys(&table, OAUTH_KEYS);
                self.oauth(&table, t, roles).map(ConnectorSpec::OAuth)
            }
            other => {
                self.at(
                    kind_entry.value_pos(),
                    format!("connector.kind {other:?} of target {t} is not one of {KINDS}"),
                );
                None
            }
        }
    }

    fn command(&mut self, table: &Table<'_>, t: &str) -> Option<CommandSpec> {
        let grant = self
            .required(
                table,
                "grant",
                "the program that grants access and its arguments, e.g. [\"/usr/local/bin/grant\"]",
            )
            .and_then(|e| self.argv(e, &format!("connector.grant of target {t}")));
        let revoke = self
            .required(
                table,
                "revoke",
                "the program that revokes access and its arguments, e.g. [\"/usr/local/bin/revoke\"]",
            )
            .and_then(|e| self.argv(e, &format!("connector.revoke of target {t}")));
        let timeout = self.timeout(table, t, DEFAULT_CONNECTOR_TIMEOUT);
        let batch = match table.get("batch") {
            Some(e) => self.boolean(e, &format!("connector.batch of target {t}")),
            None => Some(false),
        };
        Some(CommandSpec {
            grant: grant?,
            revoke: revoke?,
            timeout: timeout?,
            batch: batch?,
        })
    }

    fn ssh(&mut self, table: &Table<'_>, t: &str, roles: Option<&[String]>) -> Option<SshSpec> {
        let ca_key = self
            .required(
                table,
                "ca_key",
                "where the CA's private key is kept, e.g. \"keyring:ssh-ca\" or \
                 \"file:/etc/breakglass/ssh-ca\"",
            )
            .and_then(|e| self.secret(e, &format!("connector.ca_key of target {t}")));
        let revocation_list = self
            .required(
                table,
                "revocation_list",
                "the key revocation list sshd reads (its RevokedKeys), e.g. \
                 \"/etc/ssh/breakglass.krl\"",
            )
            .and_then(|e| self.path(e, &format!("connector.revocation_list of target {t}")));
        let principals = self
            .required(
                table,
                "principals",
                "the accounts a certificate may log in as: [\"deploy\"] for every role, or a \
                 table of role = [accounts]",
            )
            .and_then(|e| self.principals(e, t, roles));
        let skew = match table.get("skew") {
            Some(e) => self.bounded_span(e, &format!("connector.skew of target {t}"), MAX_SSH_SKEW),
            None => Some(DEFAULT_SSH_SKEW),
        };
        Some(SshSpec {
            ca_key: ca_key?,
            revocation_list: revocation_list?,
            principals: principals?,
            skew: skew?,
        })
    }

    fn principals(
        &mut self,
        entry: Entry<'_>,
        t: &str,
        roles: Option<&[String]>,
    ) -> Option<BTreeMap<String, Vec<String>>> {
        self.per_role(
            entry,
            "principals",
            "accounts",
            t,
            roles,
            Self::principal_list,
        )
    }

    /// A list for every role of target `t` at connector key `key`: one array for every role, or
    /// a table of role = array naming every role. `unit` names what is listed ("accounts").
    fn per_role(
        &mut self,
        entry: Entry<'_>,
        key: &str,
        unit: &str,
        t: &str,
        roles: Option<&[String]>,
        list: fn(&mut Self, Entry<'_>, &str) -> Option<Vec<String>>,
    ) -> Option<BTreeMap<String, Vec<String>>> {
        let what = format!("connector.{key} of target {t}");
        let of_role = |role: &str| format!("connector.{key}.{role} of target {t}");
        if entry.item.is_array() {
            let list = list(self, entry, &what)?;
            let roles = roles?;
            return Some(roles.iter().map(|r| (r.clone(), list.clone())).collect());
        }
        let Some(table) = entry.as_table(format!("in {what}")) else {
            self.at(
                entry.value_pos(),
                format!(
                    "{what} must be an array of {unit} or a table of role = [{unit}]; found {}",
                    entry.type_name()
                ),
            );
            return None;
        };
        let mut map = BTreeMap::new();
        let mut ok = true;
        for role in table.entries() {
            let name = role.key.get();
            if roles.is_some_and(|roles| !roles.iter().any(|r| r == name)) {
                ok = false;
                self.at(
                    role.key_pos(),
                    format!("{what} names role {name:?}, which target {t} does not have"),
                );
                continue;
            }
            match list(self, role, &of_role(name)) {
                Some(list) => {
                    map.insert(name.to_owned(), list);
                }
                None => ok = false,
            }
        }
        for role in roles.unwrap_or_default() {
            if ok && !map.contains_key(role) {
                ok = false;
                self.at(
                    table.pos,
                    format!("{what} lists no {unit} for role {role:?}"),
                );
            }
        }
        (ok && roles.is_some()).then_some(map)
    }

    fn principal_list(&mut self, entry: Entry<'_>, what: &str) -> Option<Vec<String>> {
        let elements = self.strings(entry, what, "account names")?;
        if elements.is_empty() {
            self.at(
                entry.value_pos(),
                format!("{what} is empty; name at least one account"),
            );
            return None;
        }
        let mut ok = true;
        let mut list: Vec<String> = Vec::new();
        for e in &elements {
            let valid = (1..=MAX_PRINCIPAL_CHARS).contains(&e.text.chars().count())
                && !e.text.starts_with('-')
                && e.text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
            if !valid {
                ok = false;
                self.at(
                    e.pos,
                    format!(
                        "account {:?} in {what} must be 1-{MAX_PRINCIPAL_CHARS} letters, digits, \
                         '.', '_', '-' or '@', not starting with '-'",
                        e.text
                    ),
                );
            } else if list.iter().any(|p| p == e.text) {
                ok = false;
                self.at(
                    e.pos,
                    format!("account {:?} is listed twice in {what}", e.text),
                );
            } else {
                list.push(e.text.to_owned());
            }
        }
        ok.then_some(list)
    }

    fn postgres(
        &mut self,
        table: &Table<'_>,
        t: &str,
        roles: Option<&[String]>,
    ) -> Option<PostgresSpec> {
        let url = self
            .required(
                table,
                "url",
                "the administrative connection, e.g. \
                 \"postgres://breakglass@db.internal:5432/postgres?sslmode=verify-full\"",
            )
            .and_then(|e| {
                let what = format!("connector.url of target {t}");
                let url = self.string(e, &what)?;
                match postgres_url_problem(url) {
                    Some(problem) => {
                        self.at(e.value_pos(), format!("{what}: {problem}"));
                        None
                    }
                    None => Some(url.to_owned()),
                }
            });
        let password = match table.get("password") {
            Some(e) => self
                .secret(e, &format!("connector.password of target {t}"))
                .map(Some),
            None => Some(None),
        };
        let mapped = match table.get("roles") {
            Some(e) => self.db_role_map(e, t, roles),
            None => Some(BTreeMap::new()),
        };
        let reassign_owned_to = match table.get("reassign_owned_to") {
            Some(e) => self
                .db_role(e, &format!("connector.reassign_owned_to of target {t}"))
                .map(Some),
            None => Some(None),
        };
        let timeout = self.timeout(table, t, DEFAULT_CONNECTOR_TIMEOUT);
        let mut mapped = mapped?;
        for role in roles? {
            mapped.entry(role.clone()).or_insert_with(|| role.clone());
        }
        Some(PostgresSpec {
            url: url?,
            password: password?,
            roles: mapped,
            reassign_owned_to: reassign_owned_to?,
            timeout: timeout?,
        })
    }

    fn db_role_map(
        &mut self,
        entry: Entry<'_>,
        t: &str,
        roles: Option<&[String]>,
    ) -> Option<BTreeMap<String, String>> {
        let what = format!("connector.roles of target {t}");
        let table = self.table(entry, &what, format!("in {what}"))?;
        let mut map = BTreeMap::new();
        let mut ok = true;
        for role in table.entries() {
            let name = role.key.get();
            if roles.is_some_and(|roles| !roles.iter().any(|r| r == name)) {
                ok = false;
                self.at(
                    role.key_pos(),
                    format!("{what} maps role {name:?}, which target {t} does not have"),
                );
                continue;
            }
            match self.db_role(role, &format!("connector.roles.{name} of target {t}")) {
                Some(db_role) => {
                    map.insert(name.to_owned(), db_role);
                }
                None => ok = false,
            }
        }
        ok.then_some(map)
    }

    fn db_role(&mut self, entry: Entry<'_>, what: &str) -> Option<String> {
        let role = self.string(entry, what)?;
        let problem = if role.is_empty() || role.len() > MAX_DB_ROLE_BYTES {
            Some(format!("must be 1-{MAX_DB_ROLE_BYTES} bytes long"))
        } else if role.chars().any(char::is_control) {
            Some("must not contain control characters".to_owned())
        } else if role.starts_with("pg_") || role.starts_with("bg_") {
            Some("must not start with pg_ (PostgreSQL's own) or bg_ (grants' roles)".to_owned())
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.at(entry.value_pos(), format!("{what} {role:?} {problem}"));
                None
            }
            None => Some(role.to_owned()),
        }
    }

    fn webhook(&mut self, table: &Table<'_>, t: &str) -> Option<WebhookSpec> {
        let url = self
            .required(
                table,
                "url",
                "where grants and revokes are POSTed, e.g. \"https://hooks.example.org/breakglass\"",
            )
            .and_then(|e| self.web_url(e, &format!("connector.url of target {t}")));
        let secret = self
            .required(
                table,
                "secret",
                "where the signing secret is kept, e.g. \"keyring:hooks\"",
            )
            .and_then(|e| self.secret(e, &format!("connector.secret of target {t}")));
        let attempts = match table.get("attempts") {
            Some(e) => {
                let what = format!("connector.attempts of target {t}");
                let n = self.integer(e, &what)?;
                match u32::try_from(n) {
                    Ok(n) if (1..=MAX_WEBHOOK_ATTEMPTS).contains(&n) => Some(n),
                    _ => {
                        self.at(
                            e.value_pos(),
                            format!("{what} must be 1 to {MAX_WEBHOOK_ATTEMPTS}; found {n}"),
                        );
                        None
                    }
                }
            }
            None => Some(DEFAULT_WEBHOOK_ATTEMPTS),
        };
        let timeout = self.timeout(table, t, DEFAULT_WEBHOOK_TIMEOUT);
        Some(WebhookSpec {
            url: url?,
            secret: secret?,
            attempts: attempts?,
            timeout: timeout?,
        })
    }

    fn oauth(&mut self, table: &Table<'_>, t: &str, roles: Option<&[String]>) -> Option<OAuthSpec> {
        let issuer = self
            .required(
                table,
                "issuer",
                "the provider's issuer URL, e.g. \"https://login.example.org\"",
            )
            .and_then(|e| self.web_url(e, &format!("connector.issuer of target {t}")));
        let client_id = self
            .required(
                table,
                "client_id",
                "the broker's client id at the provider, e.g. \"breakglass-broker\"",
            )
            .and_then(|e| self.oauth_text(e, &format!("connector.client_id of target {t}")));
        let client_secret = self
            .required(
                table,
                "client_secret",
                "where the client's secret is kept, e.g. \"keyring:idp-broker\"",
            )
            .and_then(|e| self.secret(e, &format!("connector.client_secret of target {t}")));
        let resource = self
            .required(
                table,
                "resource",
                "the resource indicator of the API the tokens are for, e.g. \"https://api.example.org\"",
            )
            .and_then(|e| {
                let what = format!("connector.resource of target {t}");
                let resource = self.oauth_text(e, &what)?;
                let absolute = resource.starts_with("https://") || resource.starts_with("http://");
                if !absolute || resource.contains('#') {
                    self.at(
                        e.value_pos(),
                        format!(
                            "{what} must be an absolute http(s) URI without a fragment \
                             (RFC 8707); found {resource:?}"
                        ),
                    );
                    return None;
                }
                Some(resource)
            });
        let scopes = match table.get("scopes") {
            Some(e) => self.per_role(e, "scopes", "scopes", t, roles, Self::scope_list),
            None => roles.map(|roles| roles.iter().map(|r| (r.clone(), Vec::new())).collect()),
        };
        let max_token_lifetime = self
            .required(
                table,
                "max_token_lifetime",
                "the longest lifetime the provider issues tokens for the resource with, e.g. \"1h\"",
            )
            .and_then(|e| self.span(e, &format!("connector.max_token_lifetime of target {t}")));
        let lifetime_parameter = match table.get("lifetime_parameter") {
            Some(e) => {
                let what = format!("connector.lifetime_parameter of target {t}");
                let name = self.oauth_text(e, &what)?;
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                {
                    self.at(
                        e.value_pos(),
                        format!("{what} must be a form parameter name (letters, digits, '_', '-', '.'); found {name:?}"),
                    );
                    None
                } else {
                    Some(Some(name))
                }
            }
            None => Some(None),
        };
        let timeout = self.timeout(table, t, DEFAULT_CONNECTOR_TIMEOUT);
        Some(OAuthSpec {
            issuer: issuer?,
            client_id: client_id?,
            client_secret: client_secret?,
            resource: resource?,
            scopes: scopes?,
            max_token_lifetime: max_token_lifetime?,
            lifetime_parameter: lifetime_parameter?,
            timeout: timeout?,
        })
    }

    /// An https URL (plain http only on a loopback address), without a query, fragment or
    /// credentials.
    fn web_url(&mut self, entry: Entry<'_>, what: &str) -> Option<String> {
        let url = self.string(entry, what)?;
        match issuer_problem(url) {
            Some(problem) => {
                self.at(entry.value_pos(), format!("{what}: {problem}"));
                None
            }
            None => Some(url.to_owned()),
        }
    }

    /// One line of 1 to [`MAX_OAUTH_TEXT_CHARS`] printable ASCII characters, no spaces.
    fn oauth_text(&mut self, entry: Entry<'_>, what: &str) -> Option<String> {
        let text = self.string(entry, what)?;
        let ok = (1..=MAX_OAUTH_TEXT_CHARS).contains(&text.len())
            && text.bytes().all(|b| (0x21..0x7f).contains(&b));
        if !ok {
            self.at(
                entry.value_pos(),
                format!(
                    "{what} must be 1-{MAX_OAUTH_TEXT_CHARS} printable ASCII characters without \
                     spaces; found {text:?}"
                ),
            );
            return None;
        }
        Some(text.to_owned())
    }

    fn scope_list(&mut self, entry: Entry<'_>, what: &str) -> Option<Vec<String>> {
        let elements = self.strings(entry, what, "scopes")?;
        let mut ok = true;
        let mut list: Vec<String> = Vec::new();
        for e in &elements {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            let valid = (1..=MAX_SCOPE_CHARS).contains(&e.text.len())
                && e.text
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                ok = false;
                self.at(
                    e.pos,
                    format!(
                        "scope {:?} in {what} must be 1-{MAX_SCOPE_CHARS} printable ASCII \
                         characters other than space, '\"' and '\\'",
                        e.text
                    ),
                );
            } else if list.iter().any(|s| s == e.text) {
                ok = false;
                self.at(
                    e.pos,
                    format!("scope {:?} is listed twice in {what}", e.text),
                );
            } else {
                list.push(e.text.to_owned());
            }
        }
        ok.then_some(list)
    }

    fn timeout(&mut self, table: &Table<'_>, t: &str, default: Span) -> Option<Span> {
        match table.get("timeout") {
            Some(e) => self.bounded_span(
                e,
                &format!("connector.timeout of target {t}"),
                MAX_CONNECTOR_TIMEOUT,
            ),
            None => Some(default),
        }
    }

    fn bounded_span(&mut self, entry: Entry<'_>, what: &str, max: Span) -> Option<Span> {
        let span = self.span(entry, what)?;
        if span > max {
            self.at(
                entry.value_pos(),
                format!("{what} must be at most {max}; found {span}"),
            );
            return None;
        }
        Some(span)
    }

    fn secret(&mut self, entry: Entry<'_>, what: &str) -> Option<SecretRef> {
        let text = self.string(entry, what)?;
        match SecretRef::parse(text) {
            Ok(secret) => Some(secret),
            Err(problem) => {
                self.at(entry.value_pos(), format!("{what}: {problem}"));
                None
            }
        }
    }

    fn path(&mut self, entry: Entry<'_>, what: &str) -> Option<String> {
        let path = self.string(entry, what)?;
        if !is_absolute(path) || path.chars().any(char::is_control) {
            self.at(
                entry.value_pos(),
                format!("{what} must be an absolute path; found {path:?}"),
            );
            return None;
        }
        Some(path.to_owned())
    }

    fn argv(&mut self, entry: Entry<'_>, what: &str) -> Option<Vec<String>> {
        let args = self.strings(entry, what, "strings")?;
        let Some(program) = args.first() else {
            self.at(
                entry.value_pos(),
                format!("{what} is empty; give the program's absolute path, then its arguments"),
            );
            return None;
        };
        let mut ok = true;
        if !is_absolute(program.text) {
            ok = false;
            self.at(
                program.pos,
                format!(
                    "{what} must start with the program's absolute path (no shell, no PATH \
                     lookup); found {:?}",
                    program.text
                ),
            );
        }
        for arg in &args {
            if arg.text.contains('\0') {
                ok = false;
                self.at(
                    arg.pos,
                    format!("{what} contains a NUL character, which no program can receive"),
                );
            }
        }
        ok.then(|| args.iter().map(|a| a.text.to_owned()).collect())
    }
}

/// Why `url` is not an acceptable administrative PostgreSQL URL: `postgres://` or
/// `postgresql://`, no password in it (it belongs in the keyring or a 0600 file), no spaces.
fn postgres_url_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"));
    let Some(rest) = rest else {
        return Some(format!("{url:?} is not a postgres:// URL"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("it must not contain spaces or control characters".into());
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let has_password = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let query_password = rest
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|p| p.starts_with("password=")));
    if has_password || query_password {
        return Some(
            "put no password in the URL; set password = \"keyring:NAME\" or \"file:/path\" \
             instead"
                .into(),
        );
    }
    None
}
