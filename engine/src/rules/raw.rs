//! First stage: TOML text to raw settings and rules, each value with the
//! file and byte span it came from, and later files of a folder overriding
//! earlier ones key by key. Only the shape is checked here (known keys and
//! value types), so that every such error of every table is reported in
//! one pass. The next stage checks meanings.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{CheckError, Reporter, closest, quote_list};
use super::source::{Loc, SourceFile};

/// A value and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Located<T> {
    pub value: T,
    pub loc: Loc,
}

pub(crate) type StringList = Located<Vec<Located<String>>>;

/// All files of a rule set merged, before any meaning is checked.
#[derive(Debug, Default)]
pub(crate) struct RawRuleSet {
    pub name: Option<Located<String>>,
    pub scoring: RawScoring,
    pub policy: RawPolicy,
    /// Roles by name.
    pub roles: BTreeMap<String, RawRole>,
    pub lists: RawLists,
    pub rules: Vec<RawRule>,
    /// Start of the last file, the position of errors about something
    /// missing from every file.
    pub last_file: Option<Loc>,
}

#[derive(Debug, Default)]
pub(crate) struct RawScoring {
    /// The last `[scoring]` header read.
    pub table: Option<Loc>,
    pub bias: Option<Located<f64>>,
    pub step_up_at: Option<Located<f64>>,
    pub high_at: Option<Located<f64>>,
    pub deny_at: Option<Located<f64>>,
    /// Weights by signal name, with the location of the name.
    pub weights: BTreeMap<String, (Loc, Located<f64>)>,
    /// Keys written in any `[scoring]` table, valid or not, so that an
    /// invalid value is not also reported as missing.
    pub written: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawPolicy {
    pub degraded: Option<Located<String>>,
    pub learning: Option<Located<String>>,
    pub dangerous_allow_degraded: Option<Located<bool>>,
}

#[derive(Debug)]
pub(crate) struct RawRole {
    pub name: Located<String>,
    pub medium: Option<StringList>,
    pub high: Option<StringList>,
    pub allow_sms: Option<Located<bool>>,
    /// Keys written in any table of this role, valid or not.
    pub written: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawLists {
    pub trusted_networks: Option<StringList>,
    pub allow_networks: Option<StringList>,
    pub deny_networks: Option<StringList>,
    pub deny_countries: Option<StringList>,
}

#[derive(Debug)]
pub(crate) struct RawRule {
    /// The rule's table.
    pub loc: Loc,
    pub id: Option<Located<String>>,
    pub description: Option<Located<String>>,
    pub when: Option<Located<String>>,
    pub then: Option<Located<String>>,
    pub factors: Option<StringList>,
    pub adjust: Option<Located<f64>>,
    pub priority: Option<Located<i64>>,
    pub mode: Option<Located<String>>,
    pub roles: Option<StringList>,
    pub apps: Option<StringList>,
    pub tenants: Option<StringList>,
    /// Keys written in the table, valid or not.
    pub written: BTreeSet<String>,
}

pub(crate) const TOP_KEYS: [&str; 6] = ["name", "scoring", "policy", "roles", "lists", "rule"];
pub(crate) const SCORING_KEYS: [&str; 5] = ["bias", "step_up_at", "high_at", "deny_at", "weights"];
pub(crate) const POLICY_KEYS: [&str; 3] = ["degraded", "learning", "dangerous_allow_degraded"];
pub(crate) const ROLE_KEYS: [&str; 3] = ["medium", "high", "allow_sms"];
pub(crate) const LIST_KEYS: [&str; 4] = [
    "trusted_networks",
    "allow_networks",
    "deny_networks",
    "deny_countries",
];
pub(crate) const RULE_KEYS: [&str; 11] = [
    "id",
    "description",
    "when",
    "then",
    "factors",
    "adjust",
    "priority",
    "mode",
    "roles",
    "apps",
    "tenants",
];

/// Parses one file and merges it into `raw`, values of this file replacing
/// those of earlier files. Returns `false` when the file is not valid TOML,
/// in which case nothing of it is merged.
pub(crate) fn read_into(
    raw: &mut RawRuleSet,
    source: &SourceFile,
    reporter: &mut Reporter,
) -> bool {
    let (document, errors) = DeTable::parse_recoverable(&source.text);
    if !errors.is_empty() {
        for error in errors {
            let span = error.span().unwrap_or(0..0);
            let loc = Loc {
                file: source.index,
                span,
            };
            reporter.error(
                &loc,
                CheckError::TomlSyntax {
                    message: first_line(error.message()),
                },
                Some("rules files are TOML: see https://toml.io for the syntax".into()),
            );
        }
        return false;
    }

    raw.last_file = Some(Loc {
        file: source.index,
        span: 0..0,
    });
    let top = Table {
        entries: document.get_ref(),
        file: source.index,
        title: "the rules file".into(),
    };
    top.check_keys(&TOP_KEYS, reporter);
    if let Some(name) = top.string("name", reporter) {
        raw.name = Some(name);
    }
    if let Some((scoring, header)) = top.table("scoring", reporter) {
        read_scoring(&mut raw.scoring, &scoring, header, reporter);
    }
    if let Some((policy, _)) = top.table("policy", reporter) {
        read_policy(&mut raw.policy, &policy, reporter);
    }
    if let Some((roles, _)) = top.table("roles", reporter) {
        read_roles(&mut raw.roles, &roles, reporter);
    }
    if let Some((lists, _)) = top.table("lists", reporter) {
        read_lists(&mut raw.lists, &lists, reporter);
    }
    read_rules(&mut raw.rules, &top, reporter);
    true
}

fn read_scoring(raw: &mut RawScoring, table: &Table, header: Loc, reporter: &mut Reporter) {
    raw.table = Some(header);
    raw.written.extend(table.keys());
    table.check_keys(&SCORING_KEYS, reporter);
    for (key, slot) in [
        ("bias", &mut raw.bias),
        ("step_up_at", &mut raw.step_up_at),
        ("high_at", &mut raw.high_at),
        ("deny_at", &mut raw.deny_at),
    ] {
        if let Some(value) = table.number(key, reporter) {
            *slot = Some(value);
        }
    }
    if let Some((weights, _)) = table.table("weights", reporter) {
        for (key, _) in weights.entries.iter() {
            let name = key.get_ref().to_string();
            if let Some(weight) = weights.number(&name, reporter) {
                let key_loc = weights.loc(key.span());
                raw.weights.insert(name, (key_loc, weight));
            }
        }
    }
}

fn read_policy(raw: &mut RawPolicy, table: &Table, reporter: &mut Reporter) {
    table.check_keys(&POLICY_KEYS, reporter);
    if let Some(value) = table.string("degraded", reporter) {
        raw.degraded = Some(value);
    }
    if let Some(value) = table.string("learning", reporter) {
        raw.learning = Some(value);
    }
    if let Some(value) = table.boolean("dangerous_allow_degraded", reporter) {
        raw.dangerous_allow_degraded = Some(value);
    }
}

fn read_roles(raw: &mut BTreeMap<String, RawRole>, table: &Table, reporter: &mut Reporter) {
    for (key, _) in table.entries.iter() {
        let name = key.get_ref().to_string();
        let Some((role_table, _)) = table.table(&name, reporter) else {
            continue;
        };
        role_table.check_keys(&ROLE_KEYS, reporter);
        let role = raw.entry(name.clone()).or_insert_with(|| RawRole {
            name: Located {
                value: name.clone(),
                loc: table.loc(key.span()),
            },
            medium: None,
            high: None,
            allow_sms: None,
            written: BTreeSet::new(),
        });
        role.name.loc = table.loc(key.span());
        role.written.extend(role_table.keys());
        if let Some(list) = role_table.string_list("medium", reporter) {
            role.medium = Some(list);
        }
        if let Some(list) = role_table.string_list("high", reporter) {
            role.high = Some(list);
        }
        if let Some(value) = role_table.boolean("allow_sms", reporter) {
            role.allow_sms = Some(value);
        }
    }
}

fn read_lists(raw: &mut RawLists, table: &Table, reporter: &mut Reporter) {
    table.check_keys(&LIST_KEYS, reporter);
    for (key, slot) in [
        ("trusted_networks", &mut raw.trusted_networks),
        ("allow_networks", &mut raw.allow_networks),
        ("deny_networks", &mut raw.deny_networks),
        ("deny_countries", &mut raw.deny_countries),
    ] {
        if let Some(list) = table.string_list(key, reporter) {
            *slot = Some(list);
        }
    }
}

fn read_rules(rules: &mut Vec<RawRule>, top: &Table, reporter: &mut Reporter) {
    let Some((key, value)) = top.get("rule") else {
        return;
    };
    let DeValue::Array(items) = value.get_ref() else {
        reporter.error(
            &top.loc(key.span()),
            CheckError::WrongType {
                key: "rule".into(),
                expected: "an array of tables",
                found: article_type(value.get_ref()),
            },
            Some("write each rule as a `[[rule]]` table".into()),
        );
        return;
    };
    for item in items.iter() {
        let DeValue::Table(entries) = item.get_ref() else {
            reporter.error(
                &top.loc(item.span()),
                CheckError::WrongType {
                    key: "rule".into(),
                    expected: "an array of tables",
                    found: article_type(item.get_ref()),
                },
                Some("write each rule as a `[[rule]]` table".into()),
            );
            continue;
        };
        let table = Table {
            entries,
            file: top.file,
            title: "`[[rule]]`".into(),
        };
        table.check_keys(&RULE_KEYS, reporter);
        rules.push(RawRule {
            loc: top.loc(item.span()),
            id: table.string("id", reporter),
            description: table.string("description", reporter),
            when: table.string("when", reporter),
            then: table.string("then", reporter),
            factors: table.string_list("factors", reporter),
            adjust: table.number("adjust", reporter),
            priority: table.integer("priority", reporter),
            mode: table.string("mode", reporter),
            roles: table.string_list("roles", reporter),
            apps: table.string_list("apps", reporter),
            tenants: table.string_list("tenants", reporter),
            written: table.keys().collect(),
        });
    }
}

/// A TOML table being read, with typed accessors that report wrong types.
struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    file: usize,
    /// Name of the table in messages, e.g. "`[scoring]`".
    title: String,
}

type Entry<'a, 'i> = (
    &'a Spanned<std::borrow::Cow<'i, str>>,
    &'a Spanned<DeValue<'i>>,
);

impl<'a, 'i> Table<'a, 'i> {
    fn loc(&self, span: std::ops::Range<usize>) -> Loc {
        Loc {
            file: self.file,
            span,
        }
    }

    fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.entries
            .iter()
            .map(|(key, _)| key.get_ref().to_string())
    }

    fn get(&self, key: &str) -> Option<Entry<'a, 'i>> {
        self.entries
            .iter()
            .find(|(candidate, _)| candidate.get_ref().as_ref() == key)
    }

    /// Reports every key not in `known`, with the closest known key.
    fn check_keys(&self, known: &[&str], reporter: &mut Reporter) {
        for (key, _) in self.entries.iter() {
            let name = key.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let help = match closest(name, known.iter().copied()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("expected one of {}", quote_list(known.iter().copied())),
            };
            reporter.error(
                &self.loc(key.span()),
                CheckError::UnknownKey {
                    key: name.to_string(),
                    table: self.title.clone(),
                },
                Some(help),
            );
        }
    }

    fn wrong_type(
        &self,
        key: &str,
        value: &Spanned<DeValue>,
        expected: &'static str,
        reporter: &mut Reporter,
    ) {
        reporter.error(
            &self.loc(value.span()),
            CheckError::WrongType {
                key: key.to_string(),
                expected,
                found: article_type(value.get_ref()),
            },
            None,
        );
    }

    fn string(&self, key: &str, reporter: &mut Reporter) -> Option<Located<String>> {
        let (_, value) = self.get(key)?;
        match value.get_ref() {
            DeValue::String(text) => Some(Located {
                value: text.to_string(),
                loc: self.loc(value.span()),
            }),
            _ => {
                self.wrong_type(key, value, "a string", reporter);
                None
            }
        }
    }

    fn boolean(&self, key: &str, reporter: &mut Reporter) -> Option<Located<bool>> {
        let (_, value) = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(Located {
                value: *flag,
                loc: self.loc(value.span()),
            }),
            _ => {
                self.wrong_type(key, value, "`true` or `false`", reporter);
                None
            }
        }
    }

    /// Reads an integer or a float as a finite `f64`.
    fn number(&self, key: &str, reporter: &mut Reporter) -> Option<Located<f64>> {
        let (_, value) = self.get(key)?;
        let loc = self.loc(value.span());
        let parsed = match value.get_ref() {
            DeValue::Integer(integer) => {
                let digits = integer.as_str().replace('_', "");
                match i64::from_str_radix(&digits, integer.radix()) {
                    Ok(parsed) => parsed as f64,
                    Err(_) => {
                        reporter.error(
                            &loc,
                            CheckError::IntegerOutOfRange {
                                key: key.to_string(),
                                value: integer.to_string(),
                            },
                            None,
                        );
                        return None;
                    }
                }
            }
            DeValue::Float(float) => {
                let text = float.as_str().replace('_', "");
                match text.parse::<f64>() {
                    Ok(parsed) => parsed,
                    Err(_) => {
                        self.wrong_type(key, value, "a number", reporter);
                        return None;
                    }
                }
            }
            _ => {
                self.wrong_type(key, value, "a number", reporter);
                return None;
            }
        };
        if !parsed.is_finite() {
            reporter.error(
                &loc,
                CheckError::NotFinite {
                    key: key.to_string(),
                    value: parsed.to_string(),
                },
                None,
            );
            return None;
        }
        Some(Located { value: parsed, loc })
    }

    fn integer(&self, key: &str, reporter: &mut Reporter) -> Option<Located<i64>> {
        let (_, value) = self.get(key)?;
        let loc = self.loc(value.span());
        match value.get_ref() {
            DeValue::Integer(integer) => {
                let digits = integer.as_str().replace('_', "");
                match i64::from_str_radix(&digits, integer.radix()) {
                    Ok(parsed) => Some(Located { value: parsed, loc }),
                    Err(_) => {
                        reporter.error(
                            &loc,
                            CheckError::IntegerOutOfRange {
                                key: key.to_string(),
                                value: integer.to_string(),
                            },
                            None,
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(key, value, "an integer", reporter);
                None
            }
        }
    }

    fn string_list(&self, key: &str, reporter: &mut Reporter) -> Option<StringList> {
        let (_, value) = self.get(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(key, value, "an array of strings", reporter);
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(text) => strings.push(Located {
                    value: text.to_string(),
                    loc: self.loc(item.span()),
                }),
                _ => self.wrong_type(key, item, "an array of strings", reporter),
            }
        }
        Some(Located {
            value: strings,
            loc: self.loc(value.span()),
        })
    }

    /// Returns a sub-table and the location of its key.
    fn table(&self, key: &str, reporter: &mut Reporter) -> Option<(Table<'a, 'i>, Loc)> {
        let (name, value) = self.get(key)?;
        match value.get_ref() {
            DeValue::Table(entries) => Some((
                Table {
                    entries,
                    file: self.file,
                    title: self.subtitle(key),
                },
                self.loc(name.span()),
            )),
            _ => {
                self.wrong_type(key, value, "a table", reporter);
                None
            }
        }
    }

    /// Names a sub-table the way its header is written, e.g. "`[roles.admin]`".
    fn subtitle(&self, key: &str) -> String {
        match self
            .title
            .strip_prefix("`[")
            .and_then(|t| t.strip_suffix("]`"))
        {
            Some(parent) => format!("`[{parent}.{key}]`"),
            None => format!("`[{key}]`"),
        }
    }
}

/// Names a TOML value's type with an article, for "found ..." messages.
fn article_type(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_string()
}
