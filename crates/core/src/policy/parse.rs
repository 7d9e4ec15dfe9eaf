//! Walks a `toml_edit` document by hand, so every problem keeps the position of the key or value
//! it is about, and one mistake does not hide the next.

use std::collections::{BTreeMap, BTreeSet};

use toml_edit::{ImDocument, Item, Key, TableLike};

use super::{
    ApproverRule, BreakGlassRule, ConnectorSpec, Policy, PolicyErrors, PolicyProblem,
    ProviderPolicy, TargetPolicy, DEFAULT_MAX_AUTH_AGE, DEFAULT_PROVIDER_SCOPES, DEFAULT_ROLE,
    MAX_DESCRIPTION_CHARS, MAX_POLICY_BYTES, MAX_PROVIDER_GROUP_CHARS,
};
use crate::names::name_problem;
use crate::span::Span;

mod connector;

const TOP_KEYS: &[&str] = &["version", "max_auth_age", "groups", "providers", "targets"];
const PROVIDER_KEYS: &[&str] = &[
    "issuer",
    "client_id",
    "scopes",
    "groups_claim",
    "name_claim",
    "device_flow",
    "groups",
];
const TARGET_KEYS: &[&str] = &[
    "description",
    "roles",
    "max_duration",
    "request_ttl",
    "extension_cap",
    "requesters",
    "approvers",
    "break_glass",
    "connector",
];
const APPROVER_KEYS: &[&str] = &["groups", "quorum"];
const BREAK_GLASS_KEYS: &[&str] = &["max_duration"];

pub(super) fn parse(source: &str) -> Result<Policy, PolicyErrors> {
    let mut problems = Problems::default();
    if source.len() > MAX_POLICY_BYTES {
        problems.at(
            0,
            format!(
                "the policy is {} bytes; the limit is {MAX_POLICY_BYTES} bytes (1 MiB)",
                source.len()
            ),
        );
        return Err(problems.into_errors(source));
    }
    let doc = match ImDocument::parse(source) {
        Ok(doc) => doc,
        Err(e) => {
            let message = e.message().trim().replace('\n', "; ");
            problems.at(
                e.span().map_or(0, |s| s.start),
                format!("TOML syntax error: {message}"),
            );
            return Err(problems.into_errors(source));
        }
    };
    let root = Table {
        table: doc.as_table(),
        pos: 0,
        label: "at the top level".into(),
    };
    let policy = problems.policy(&root);
    match policy {
        Some(policy) if problems.found.is_empty() => Ok(policy),
        _ => {
            if problems.found.is_empty() {
                // Every path that yields no value reports why; this only guards that promise.
                problems.at(0, "the policy could not be read");
            }
            Err(problems.into_errors(source))
        }
    }
}

/// Problems found so far, as (byte offset, message).
#[derive(Default)]
struct Problems {
    found: Vec<(usize, String)>,
}

/// A table in standard, inline or dotted form, with where to point at it and how to name it.
struct Table<'a> {
    table: &'a dyn TableLike,
    /// Byte offset of its header, opening brace or key.
    pos: usize,
    /// How messages name it: "in [targets.prod-db]" or "at the top level".
    label: String,
}

/// A key and its value.
#[derive(Clone, Copy)]
struct Entry<'a> {
    key: &'a Key,
    item: &'a Item,
}

impl<'a> Entry<'a> {
    fn key_pos(&self) -> usize {
        self.key.span().map_or(0, |s| s.start)
    }

    fn value_pos(&self) -> usize {
        self.item.span().map_or_else(|| self.key_pos(), |s| s.start)
    }

    fn type_name(&self) -> &'static str {
        self.item.type_name()
    }

    fn as_table(&self, label: String) -> Option<Table<'a>> {
        self.item.as_table_like().map(|table| Table {
            table,
            pos: self.value_pos(),
            label,
        })
    }
}

impl<'a> Table<'a> {
    fn get(&self, key: &str) -> Option<Entry<'a>> {
        self.table
            .get_key_value(key)
            .map(|(key, item)| Entry { key, item })
    }

    fn entries(&self) -> impl Iterator<Item = Entry<'a>> + 'a {
        let table = self.table;
        table
            .iter()
            .filter_map(move |(k, _)| table.get_key_value(k))
            .map(|(key, item)| Entry { key, item })
    }
}

/// A string element of an array, with its position.
struct Element<'a> {
    text: &'a str,
    pos: usize,
}

impl Problems {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        self.found.push((offset, message.into()));
    }

    fn into_errors(mut self, source: &str) -> PolicyErrors {
        // Stable, so problems at one position keep the order the checks found them in.
        self.found.sort_by_key(|(offset, _)| *offset);
        let mut cursor = Cursor::new(source);
        PolicyErrors(
            self.found
                .into_iter()
                .map(|(offset, message)| {
                    let (line, column) = cursor.advance_to(offset);
                    PolicyProblem {
                        line,
                        column,
                        message,
                    }
                })
                .collect(),
        )
    }

    fn unknown_keys(&mut self, table: &Table<'_>, allowed: &[&str]) {
        for entry in table.entries() {
            let key = entry.key.get();
            if !allowed.contains(&key) {
                self.at(
                    entry.key_pos(),
                    format!(
                        "unknown key {key:?} {}; expected one of {}",
                        table.label,
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn required<'a>(&mut self, table: &Table<'a>, key: &str, hint: &str) -> Option<Entry<'a>> {
        let entry = table.get(key);
        if entry.is_none() {
            self.at(
                table.pos,
                format!("missing required key {key:?} {}: {hint}", table.label),
            );
        }
        entry
    }

    fn table<'a>(&mut self, entry: Entry<'a>, what: &str, label: String) -> Option<Table<'a>> {
        let table = entry.as_table(label);
        if table.is_none() {
            self.at(
                entry.value_pos(),
                format!("{what} must be a table; found {}", entry.type_name()),
            );
        }
        table
    }

    fn string<'a>(&mut self, entry: Entry<'a>, what: &str) -> Option<&'a str> {
        let text = entry.item.as_str();
        if text.is_none() {
            self.at(
                entry.value_pos(),
                format!("{what} must be a string; found {}", entry.type_name()),
            );
        }
        text
    }

    fn boolean(&mut self, entry: Entry<'_>, what: &str) -> Option<bool> {
        let b = entry.item.as_bool();
        if b.is_none() {
            self.at(
                entry.value_pos(),
                format!("{what} must be true or false; found {}", entry.type_name()),
            );
        }
        b
    }

    fn integer(&mut self, entry: Entry<'_>, what: &str) -> Option<i64> {
        let n = entry.item.as_integer();
        if n.is_none() {
            self.at(
                entry.value_pos(),
                format!("{what} must be an integer; found {}", entry.type_name()),
            );
        }
        n
    }

    fn span(&mut self, entry: Entry<'_>, what: &str) -> Option<Span> {
        let Some(text) = entry.item.as_str() else {
            self.at(
                entry.value_pos(),
                format!(
                    "{what} must be a duration string like \"30m\"; found {}",
                    entry.type_name()
                ),
            );
            return None;
        };
        match Span::parse(text) {
            Ok(span) => Some(span),
            Err(e) => {
                self.at(entry.value_pos(), format!("{what}: {e}"));
                None
            }
        }
    }

    /// An array of strings; reports every element that is not one.
    fn strings<'a>(&mut self, entry: Entry<'a>, what: &str, of: &str) -> Option<Vec<Element<'a>>> {
        let Some(array) = entry.item.as_array() else {
            self.at(
                entry.value_pos(),
                format!(
                    "{what} must be an array of {of}; found {}",
                    entry.type_name()
                ),
            );
            return None;
        };
        let mut elements = Vec::with_capacity(array.len());
        let mut ok = true;
        for value in array.iter() {
            let pos = value.span().map_or_else(|| entry.value_pos(), |s| s.start);
            match value.as_str() {
                Some(text) => elements.push(Element { text, pos }),
                None => {
                    ok = false;
                    self.at(
                        pos,
                        format!(
                            "{what} must contain only strings; found {}",
                            value.type_name()
                        ),
                    );
                }
            }
        }
        ok.then_some(elements)
    }

    /// A list of names in the order written, and whether all are valid and distinct (each
    /// problem is reported). `None` when it is not even an array of strings.
    fn names<'a>(
        &mut self,
        entry: Entry<'a>,
        what: &str,
        noun: &str,
    ) -> Option<(Vec<Element<'a>>, bool)> {
        let elements = self.strings(entry, what, &format!("{noun} names"))?;
        let mut seen = BTreeSet::new();
        let mut ok = true;
        for element in &elements {
            if let Some(problem) = name_problem(element.text) {
                ok = false;
                self.at(element.pos, format!("invalid {noun} in {what}: {problem}"));
            } else if !seen.insert(element.text) {
                ok = false;
                self.at(
                    element.pos,
                    format!("{noun} {:?} is listed twice in {what}", element.text),
                );
            }
        }
        Some((elements, ok))
    }

    /// A non-empty list of groups that `[groups]` declares.
    fn group_refs(
        &mut self,
        entry: Entry<'_>,
        what: &str,
        known: Option<&BTreeSet<String>>,
        if_empty: &str,
    ) -> Option<BTreeSet<String>> {
        let (elements, mut ok) = self.names(entry, what, "group")?;
        if elements.is_empty() {
            self.at(entry.value_pos(), format!("{what} is empty; {if_empty}"));
            return None;
        }
        if let Some(known) = known {
            for element in &elements {
                if name_problem(element.text).is_none() && !known.contains(element.text) {
                    ok = false;
                    self.at(
                        element.pos,
                        format!(
                            "{what} names group {:?}, which is not declared in [groups]",
                            element.text
                        ),
                    );
                }
            }
        }
        ok.then(|| elements.iter().map(|e| e.text.to_owned()).collect())
    }

    fn policy(&mut self, root: &Table<'_>) -> Option<Policy> {
        self.unknown_keys(root, TOP_KEYS);

        let version = self
            .required(
                root,
                "version",
                "the policy version, an integer >= 1 that grows with every applied policy",
            )
            .and_then(|entry| {
                let n = self.integer(entry, "version")?;
                let version = u64::try_from(n).ok().filter(|&v| v >= 1);
                if version.is_none() {
                    self.at(
                        entry.value_pos(),
                        format!("version must be at least 1; found {n}"),
                    );
                }
                version
            });

        let max_auth_age = match root.get("max_auth_age") {
            Some(entry) => self.span(entry, "max_auth_age"),
            None => Some(DEFAULT_MAX_AUTH_AGE),
        };

        let groups = match root.get("groups") {
            Some(entry) => self.groups(entry),
            None => Some(BTreeMap::new()),
        };
        // Group names that are declared, even when a member list is broken: references to
        // them are fine, and reporting them too would only repeat the problem.
        let declared = match root.get("groups") {
            Some(entry) => entry.item.as_table_like().map(|table| {
                table
                    .iter()
                    .map(|(name, _)| name.to_owned())
                    .collect::<BTreeSet<_>>()
            }),
            None => Some(BTreeSet::new()),
        };

        let providers = match root.get("providers") {
            Some(entry) => self.providers(entry, declared.as_ref()),
            None => Some(BTreeMap::new()),
        };

        let targets = match root.get("targets") {
            Some(entry) => self.targets(entry, declared.as_ref()),
            None => {
                self.at(
                    root.pos,
                    "no targets defined; add at least one [targets.NAME] table",
                );
                None
            }
        };

        Some(Policy {
            version: version?,
            max_auth_age: max_auth_age?,
            groups: groups?,
            providers: providers?,
            targets: targets?,
        })
    }

    fn providers(
        &mut self,
        entry: Entry<'_>,
        declared: Option<&BTreeSet<String>>,
    ) -> Option<BTreeMap<String, ProviderPolicy>> {
        let table = self.table(entry, "providers", "in [providers]".into())?;
        let mut providers = BTreeMap::new();
        let mut ok = true;
        for provider in table.entries() {
            match self.provider(provider, declared) {
                Some(p) => {
                    providers.insert(p.name.clone(), p);
                }
                None => ok = false,
            }
        }
        ok.then_some(providers)
    }

    fn provider(
        &mut self,
        entry: Entry<'_>,
        declared: Option<&BTreeSet<String>>,
    ) -> Option<ProviderPolicy> {
        let name = entry.key.get();
        let name_ok = match name_problem(name) {
            Some(problem) => {
                self.at(entry.key_pos(), format!("invalid provider name: {problem}"));
                false
            }
            None => true,
        };
        let path = format!("providers.{}", key_path(name));
        let p = shown(name);
        let table = self.table(entry, &format!("provider {p}"), format!("in [{path}]"))?;
        self.unknown_keys(&table, PROVIDER_KEYS);

        let issuer = self
            .required(
                &table,
                "issuer",
                "the provider's issuer URL, e.g. \"https://login.example.com\"",
            )
            .and_then(|e| {
                let text = self.string(e, &format!("issuer of provider {p}"))?;
                match issuer_problem(text) {
                    Some(problem) => {
                        self.at(e.value_pos(), format!("issuer of provider {p}: {problem}"));
                        None
                    }
                    None => Some(text.to_owned()),
                }
            });
        let client_id = self
            .required(
                &table,
                "client_id",
                "this application's client id at the provider",
            )
            .and_then(|e| self.claim_name(e, &format!("client_id of provider {p}")));
        let scopes = match table.get("scopes") {
            Some(e) => self.scopes(e, &p),
            None => Some(
                DEFAULT_PROVIDER_SCOPES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            ),
        };
        let groups_claim = match table.get("groups_claim") {
            Some(e) => self.claim_name(e, &format!("groups_claim of provider {p}")),
            None => Some("groups".to_owned()),
        };
        let name_claim = match table.get("name_claim") {
            Some(e) => self.claim_name(e, &format!("name_claim of provider {p}")),
            None => Some("preferred_username".to_owned()),
        };
        let device_flow = match table.get("device_flow") {
            Some(e) => self.boolean(e, &format!("device_flow of provider {p}")),
            None => Some(false),
        };
        let groups = match table.get("groups") {
            Some(e) => self.group_map(e, &p, &path, declared),
            None => Some(BTreeMap::new()),
        };
        if !name_ok {
            return None;
        }
        Some(ProviderPolicy {
            name: name.to_owned(),
            issuer: issuer?,
            client_id: client_id?,
            scopes: scopes?,
            groups_claim: groups_claim?,
            name_claim: name_claim?,
            device_flow: device_flow?,
            groups: groups?,
        })
    }

    /// A non-empty string without control characters or spaces (a client id or claim name).
    fn claim_name(&mut self, entry: Entry<'_>, what: &str) -> Option<String> {
        let text = self.string(entry, what)?;
        let bad = text.is_empty()
            || text.len() > MAX_PROVIDER_GROUP_CHARS
            || text.chars().any(|c| c.is_control() || c.is_whitespace());
        if bad {
            self.at(
                entry.value_pos(),
                format!(
                    "{what} must be 1 to {MAX_PROVIDER_GROUP_CHARS} characters without spaces \
                     or control characters"
                ),
            );
            return None;
        }
        Some(text.to_owned())
    }

    fn scopes(&mut self, entry: Entry<'_>, p: &str) -> Option<Vec<String>> {
        let what = format!("scopes of provider {p}");
        let elements = self.strings(entry, &what, "scope names")?;
        let mut ok = true;
        let mut seen = BTreeSet::new();
        for element in &elements {
            // RFC 6749 §3.3: scope tokens are printable ASCII without space, '"' or '\\'.
            let valid = !element.text.is_empty()
                && element
                    .text
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                ok = false;
                self.at(
                    element.pos,
                    format!("invalid scope {:?} in {what}", element.text),
                );
            } else if element.text == "openid" {
                ok = false;
                self.at(
                    element.pos,
                    format!("{what} lists \"openid\", which is always asked for; remove it"),
                );
            } else if !seen.insert(element.text) {
                ok = false;
                self.at(
                    element.pos,
                    format!("scope {:?} is listed twice in {what}", element.text),
                );
            }
        }
        ok.then(|| elements.iter().map(|e| e.text.to_owned()).collect())
    }

    fn group_map(
        &mut self,
        entry: Entry<'_>,
        p: &str,
        path: &str,
        declared: Option<&BTreeSet<String>>,
    ) -> Option<BTreeMap<String, BTreeSet<String>>> {
        let table = self.table(
            entry,
            &format!("groups of provider {p}"),
            format!("in [{path}.groups]"),
        )?;
        let mut map = BTreeMap::new();
        let mut ok = true;
        for mapping in table.entries() {
            let idp_group = mapping.key.get();
            if idp_group.is_empty()
                || idp_group.chars().count() > MAX_PROVIDER_GROUP_CHARS
                || idp_group.chars().any(char::is_control)
            {
                ok = false;
                self.at(
                    mapping.key_pos(),
                    format!(
                        "provider group names must be 1 to {MAX_PROVIDER_GROUP_CHARS} characters \
                         without control characters"
                    ),
                );
                continue;
            }
            let what = format!("the mapping of provider group {idp_group:?} of provider {p}");
            match self.group_refs(
                mapping,
                &what,
                declared,
                "map it to at least one policy group, or remove it",
            ) {
                Some(groups) => {
                    map.insert(idp_group.to_owned(), groups);
                }
                None => ok = false,
            }
        }
        ok.then_some(map)
    }

    fn groups(&mut self, entry: Entry<'_>) -> Option<BTreeMap<String, BTreeSet<String>>> {
        let table = self.table(entry, "groups", "in [groups]".into())?;
        let mut groups = BTreeMap::new();
        let mut ok = true;
        for group in table.entries() {
            let name = group.key.get();
            if let Some(problem) = name_problem(name) {
                ok = false;
                self.at(group.key_pos(), format!("invalid group name: {problem}"));
                continue;
            }
            match self.names(group, &format!("group {name}"), "member") {
                Some((members, true)) => {
                    groups.insert(
                        name.to_owned(),
                        members.iter().map(|m| m.text.to_owned()).collect(),
                    );
                }
                _ => ok = false,
            }
        }
        ok.then_some(groups)
    }

    fn targets(
        &mut self,
        entry: Entry<'_>,
        declared: Option<&BTreeSet<String>>,
    ) -> Option<BTreeMap<String, TargetPolicy>> {
        let Some(table) = entry.as_table("in [targets]".into()) else {
            self.at(
                entry.value_pos(),
                format!(
                    "targets must be a table of targets like [targets.prod-db]; found {}",
                    entry.type_name()
                ),
            );
            return None;
        };
        let mut targets = BTreeMap::new();
        let mut ok = true;
        for target in table.entries() {
            match self.target(target, declared) {
                Some(t) => {
                    targets.insert(t.name.clone(), t);
                }
                None => ok = false,
            }
        }
        if table.table.is_empty() {
            self.at(
                table.pos,
                "no targets defined; add at least one [targets.NAME] table",
            );
            return None;
        }
        ok.then_some(targets)
    }

    fn target(
        &mut self,
        entry: Entry<'_>,
        declared: Option<&BTreeSet<String>>,
    ) -> Option<TargetPolicy> {
        let name = entry.key.get();
        let name_ok = match name_problem(name) {
            Some(problem) => {
                self.at(entry.key_pos(), format!("invalid target name: {problem}"));
                false
            }
            None => true,
        };
        let path = format!("targets.{}", key_path(name));
        let t = shown(name);
        let table = self.table(entry, &format!("target {t}"), format!("in [{path}]"))?;
        self.unknown_keys(&table, TARGET_KEYS);

        let description = match table.get("description") {
            Some(entry) => self.description(entry, &t),
            None => Some(String::new()),
        };
        let roles = match table.get("roles") {
            Some(entry) => self.roles(entry, &t),
            None => Some(vec![DEFAULT_ROLE.to_owned()]),
        };
        let max_duration = self
            .required(
                &table,
                "max_duration",
                "the longest single grant, e.g. \"2h\"",
            )
            .map(|e| (e, self.span(e, &format!("max_duration of target {t}"))));
        let request_ttl = self
            .required(
                &table,
                "request_ttl",
                "how long a request may wait for approval, e.g. \"30m\"",
            )
            .and_then(|e| self.span(e, &format!("request_ttl of target {t}")));
        let extension_cap = self
            .required(
                &table,
                "extension_cap",
                "the total time of a request and its extensions, e.g. \"6h\"",
            )
            .and_then(|e| self.span(e, &format!("extension_cap of target {t}")));
        if let (Some((entry, Some(max))), Some(cap)) = (max_duration, extension_cap) {
            if max > cap {
                self.at(
                    entry.value_pos(),
                    format!("max_duration {max} of target {t} exceeds its extension_cap {cap}"),
                );
            }
        }
        let requesters = match table.get("requesters") {
            Some(entry) => self
                .group_refs(
                    entry,
                    &format!("requesters of target {t}"),
                    declared,
                    "no one could request access; name at least one group, or remove the key \
                     to let any enrolled identity request",
                )
                .map(Some),
            None => Some(None),
        };
        let approvers = self
            .required(
                &table,
                "approvers",
                "who approves, e.g. approvers = { groups = [\"sre\"], quorum = 1 }",
            )
            .and_then(|e| self.approvers(e, &t, &path, declared));
        let break_glass = match table.get("break_glass") {
            Some(entry) => self
                .break_glass(entry, &t, &path, max_duration.and_then(|(_, max)| max))
                .map(Some),
            None => Some(None),
        };
        let connector = self
            .required(
                &table,
                "connector",
                "how access is granted, e.g. a [targets.NAME.connector] table with kind = \"command\"",
            )
            .and_then(|e| self.connector(e, &t, &path, roles.as_deref()));
        if let (Some((entry, Some(max))), Some(limit)) = (
            max_duration,
            connector.as_ref().and_then(ConnectorSpec::longest_grant),
        ) {
            if max > limit {
                self.at(
                    entry.value_pos(),
                    format!(
                        "max_duration {max} of target {t} exceeds the {limit} its {} connector can \
                         grant for (the longest token the provider issues, max_token_lifetime)",
                        connector.as_ref().map_or("", ConnectorSpec::kind)
                    ),
                );
            }
        }

        if !name_ok {
            return None;
        }
        Some(TargetPolicy {
            name: name.to_owned(),
            description: description?,
            roles: roles?,
            max_duration: max_duration?.1?,
            request_ttl: request_ttl?,
            extension_cap: extension_cap?,
            requesters: requesters?,
            approvers: approvers?,
            break_glass: break_glass?,
            connector: connector?,
        })
    }

    fn description(&mut self, entry: Entry<'_>, t: &str) -> Option<String> {
        let text = self.string(entry, &format!("description of target {t}"))?;
        let chars = text.chars().count();
        if chars > MAX_DESCRIPTION_CHARS {
            self.at(
                entry.value_pos(),
                format!(
                    "description of target {t} is {chars} characters long; the limit is \
                     {MAX_DESCRIPTION_CHARS}"
                ),
            );
            return None;
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            self.at(
                entry.value_pos(),
                format!(
                    "description of target {t} contains the control character U+{:04X}; \
                     keep it to one line of plain text",
                    u32::from(c)
                ),
            );
            return None;
        }
        Some(text.to_owned())
    }

    fn roles(&mut self, entry: Entry<'_>, t: &str) -> Option<Vec<String>> {
        let what = format!("roles of target {t}");
        let (roles, ok) = self.names(entry, &what, "role")?;
        if !ok {
            return None;
        }
        if roles.is_empty() {
            self.at(
                entry.value_pos(),
                format!(
                    "{what} is empty; list at least one role, or remove the key to use the \
                     single role {DEFAULT_ROLE:?}"
                ),
            );
            return None;
        }
        Some(roles.iter().map(|r| r.text.to_owned()).collect())
    }

    fn approvers(
        &mut self,
        entry: Entry<'_>,
        t: &str,
        path: &str,
        declared: Option<&BTreeSet<String>>,
    ) -> Option<ApproverRule> {
        let table = self.table(
            entry,
            &format!("approvers of target {t}"),
            format!("in [{path}.approvers]"),
        )?;
        self.unknown_keys(&table, APPROVER_KEYS);
        let groups = self
            .required(
                &table,
                "groups",
                "the groups whose members may approve, e.g. groups = [\"sre\"]",
            )
            .and_then(|e| {
                self.group_refs(
                    e,
                    &format!("approvers.groups of target {t}"),
                    declared,
                    "name at least one group whose members may approve",
                )
            });
        let quorum = self
            .required(
                &table,
                "quorum",
                "how many distinct approvals a request needs, e.g. quorum = 1",
            )
            .and_then(|e| {
                let what = format!("approvers.quorum of target {t}");
                let n = self.integer(e, &what)?;
                if n < 1 {
                    self.at(
                        e.value_pos(),
                        format!("{what} must be at least 1; found {n}"),
                    );
                    return None;
                }
                let quorum = u32::try_from(n).ok();
                if quorum.is_none() {
                    self.at(
                        e.value_pos(),
                        format!("{what} must be at most {}; found {n}", u32::MAX),
                    );
                }
                quorum
            });
        Some(ApproverRule {
            groups: groups?,
            quorum: quorum?,
        })
    }

    fn break_glass(
        &mut self,
        entry: Entry<'_>,
        t: &str,
        path: &str,
        target_max: Option<Span>,
    ) -> Option<BreakGlassRule> {
        let table = self.table(
            entry,
            &format!("break_glass of target {t}"),
            format!("in [{path}.break_glass]"),
        )?;
        self.unknown_keys(&table, BREAK_GLASS_KEYS);
        let max_entry = self.required(
            &table,
            "max_duration",
            "the longest break-glass grant, e.g. \"30m\"",
        )?;
        let max = self.span(
            max_entry,
            &format!("break_glass.max_duration of target {t}"),
        )?;
        if let Some(target_max) = target_max {
            if max > target_max {
                self.at(
                    max_entry.value_pos(),
                    format!(
                        "break_glass.max_duration {max} of target {t} exceeds its max_duration \
                         {target_max}"
                    ),
                );
                return None;
            }
        }
        Some(BreakGlassRule { max_duration: max })
    }
}

/// Why `issuer` is not an acceptable issuer URL: `https://host…`, or plain `http://` only on a
/// loopback address; no query, fragment, credentials or whitespace.
fn issuer_problem(issuer: &str) -> Option<String> {
    if issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "{issuer:?} must not contain spaces or control characters"
        ));
    }
    let (https, rest) = match (
        issuer.strip_prefix("https://"),
        issuer.strip_prefix("http://"),
    ) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Some(format!("{issuer:?} is not an https:// URL")),
    };
    if rest.contains(['?', '#', '@']) {
        return Some(format!(
            "{issuer:?} must not contain a query, a fragment or credentials"
        ));
    }
    let authority = rest.split('/').next().unwrap_or("");
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Some(format!("{issuer:?} names no host"));
    }
    if !https && !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return Some(format!(
            "{issuer:?} must use https (plain http is accepted only on a loopback address)"
        ));
    }
    None
}

/// Absolute on Unix (`/…`) or Windows (`C:\…`, `C:/…`, `\\server\…`), judged the same way on
/// every platform so that parsing a logged policy gives the same answer everywhere.
pub(super) fn is_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    path.starts_with('/')
        || path.starts_with(r"\\")
        || (bytes.len() >= 3
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && matches!(bytes[2], b'\\' | b'/'))
}

/// A key as it would be written in a TOML header: bare when possible, quoted otherwise.
fn key_path(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// A name for a message: as is when valid, quoted when it could be confusing.
fn shown(name: &str) -> String {
    if name_problem(name).is_none() {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// Turns ascending byte offsets into 1-based line and character columns in one pass.
struct Cursor<'s> {
    source: &'s str,
    offset: usize,
    line: usize,
    column: usize,
}

impl<'s> Cursor<'s> {
    fn new(source: &'s str) -> Self {
        Cursor {
            source,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    fn advance_to(&mut self, offset: usize) -> (usize, usize) {
        let mut target = offset.min(self.source.len());
        while !self.source.is_char_boundary(target) {
            target -= 1;
        }
        if target > self.offset {
            for c in self.source[self.offset..target].chars() {
                if c == '\n' {
                    self.line += 1;
                    self.column = 1;
                } else {
                    self.column += 1;
                }
            }
            self.offset = target;
        }
        (self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let source = "ab\ncé\nx";
        let mut cursor = Cursor::new(source);
        assert_eq!(cursor.advance_to(0), (1, 1));
        assert_eq!(cursor.advance_to(2), (1, 3));
        assert_eq!(cursor.advance_to(3), (2, 1));
        assert_eq!(
            cursor.advance_to(6),
            (2, 3),
            "é is one column though two bytes"
        );
        assert_eq!(
            cursor.advance_to(99),
            (3, 2),
            "offsets past the end clamp to it"
        );
        assert_eq!(
            Cursor::new(source).advance_to(5),
            (2, 2),
            "an offset inside é clamps back to its start"
        );
    }

    #[test]
    fn absolute_paths_are_judged_alike_everywhere() {
        for p in [
            "/usr/bin/x",
            r"C:\tools\x.exe",
            "c:/tools/x",
            r"\\srv\share\x",
        ] {
            assert!(is_absolute(p), "{p} is absolute");
        }
        for p in ["x", "./x", "bin/x", "C:x", "", "~/x"] {
            assert!(!is_absolute(p), "{p} is relative");
        }
    }
}
