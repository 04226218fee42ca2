//! Second stage for `[[rule]]` tables: ids, actions, modes, filters and
//! factor overrides checked, and each `when` compiled once, with errors
//! inside a condition mapped back to their line and column in the file.

use std::collections::{BTreeMap, BTreeSet};

use cel::Env;
use serde::{Deserialize, Serialize};

use super::condition::{self, Condition};
use super::diagnostic::{CheckError, Reporter, suggest};
use super::raw::{Located, RawRule, RawRuleSet, StringList};
use super::settings::{check_factor_list, is_valid_name};
use super::source::{Loc, SourceFile};
use super::toml_string::decoded_offsets;

/// Maximum number of rules in a rule set, all files together.
pub const MAX_RULES: usize = 1000;

/// Values of a rule's `then`.
pub(crate) const ACTION_NAMES: [&str; 4] = ["allow", "step_up", "deny", "adjust"];

/// Values of a rule's `mode`.
pub(crate) const MODE_NAMES: [&str; 2] = ["enforce", "shadow"];

/// Whether a rule decides or is only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    /// The rule takes part in the decision.
    Enforce,
    /// The rule is evaluated and recorded but never changes the decision.
    Shadow,
}

/// The action of a rule whose condition matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Allow,
    StepUp,
    Deny,
    Adjust,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Allow,
    /// Step up with these factor combinations, or the role's policy.
    StepUp {
        factors: Option<Vec<String>>,
    },
    Deny,
    /// Add this log-odds delta to the model's logit.
    Adjust(f64),
}

impl Action {
    pub(crate) fn kind(&self) -> ActionKind {
        match self {
            Action::Allow => ActionKind::Allow,
            Action::StepUp { .. } => ActionKind::StepUp,
            Action::Deny => ActionKind::Deny,
            Action::Adjust(_) => ActionKind::Adjust,
        }
    }

    /// Orders decision actions among rules of equal priority: the most
    /// severe wins.
    pub(crate) fn severity(&self) -> u8 {
        match self {
            Action::Deny => 3,
            Action::StepUp { .. } => 2,
            Action::Allow => 1,
            Action::Adjust(_) => 0,
        }
    }
}

/// A checked rule with its compiled condition.
#[derive(Debug)]
pub(crate) struct Rule {
    pub id: String,
    pub description: String,
    pub action: Action,
    pub priority: i64,
    pub mode: RuleMode,
    /// Filters; an empty list accepts every value.
    pub roles: Vec<String>,
    pub apps: Vec<String>,
    pub tenants: Vec<String>,
    pub condition: Condition,
}

/// A rule as listed for people: what it is for and what it does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSummary {
    pub id: String,
    pub description: String,
    pub mode: RuleMode,
    pub action: ActionKind,
    pub priority: i64,
}

/// The checked rules and what their conditions read.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    /// In file order.
    pub rules: Vec<Rule>,
    /// Top-level variables read by any condition.
    pub roots: BTreeSet<&'static str>,
    /// Names passed to `ip.in_list(...)` by any condition.
    pub ip_lists: BTreeSet<String>,
    /// Signals any condition reads.
    pub signals: BTreeSet<&'static str>,
}

/// Checks and compiles every rule, reporting every error; returns `None`
/// when any was found.
pub(crate) fn build(
    raw: &RawRuleSet,
    sources: &[SourceFile],
    env: &Env,
    reporter: &mut Reporter,
) -> Option<Rules> {
    let before = reporter.diagnostics.len();
    if let Some(extra) = raw.rules.get(MAX_RULES) {
        reporter.error(
            &extra.loc,
            CheckError::TooManyRules {
                count: raw.rules.len(),
                max: MAX_RULES,
            },
            Some("merge rules with `||` or remove unused ones".into()),
        );
    }

    let mut rules = Rules::default();
    let mut first_seen: BTreeMap<&str, &Loc> = BTreeMap::new();
    for raw_rule in raw.rules.iter().take(MAX_RULES) {
        if let Some(id) = &raw_rule.id {
            match first_seen.get(id.value.as_str()) {
                Some(first) => {
                    let (line, column) = sources
                        .get(first.file)
                        .map_or((0, 0), |source| source.line_column(first.span.start));
                    let file = sources
                        .get(first.file)
                        .map_or_else(String::new, |source| source.path.display().to_string());
                    reporter.error(
                        &id.loc,
                        CheckError::DuplicateRuleId {
                            id: id.value.clone(),
                        },
                        Some(format!(
                            "the first rule with this id is at {file}:{line}:{column}; ids must be unique across all files"
                        )),
                    );
                }
                None => {
                    first_seen.insert(&id.value, &id.loc);
                }
            }
        }
        if let Some(rule) = build_rule(raw_rule, raw, sources, env, &mut rules, reporter) {
            rules.rules.push(rule);
        }
    }

    (reporter.diagnostics.len() == before).then_some(rules)
}

fn build_rule(
    raw_rule: &RawRule,
    raw: &RawRuleSet,
    sources: &[SourceFile],
    env: &Env,
    rules: &mut Rules,
    reporter: &mut Reporter,
) -> Option<Rule> {
    let missing = |key: &str, reporter: &mut Reporter| {
        if raw_rule.written.contains(key) {
            // Written with the wrong type, which is already reported.
            return;
        }
        reporter.error(
            &raw_rule.loc,
            CheckError::MissingKey {
                key: key.to_string(),
                table: "`[[rule]]`".into(),
            },
            None,
        );
    };

    let id = match &raw_rule.id {
        Some(id) if is_valid_name(&id.value) => Some(id.value.clone()),
        Some(id) => {
            reporter.error(
                &id.loc,
                CheckError::InvalidRuleId {
                    id: id.value.clone(),
                },
                Some("use letters, digits, `_`, `-` and `.`, at most 64 characters".into()),
            );
            None
        }
        None => {
            missing("id", reporter);
            None
        }
    };
    let rule_name = id.clone().unwrap_or_default();

    let mode = match &raw_rule.mode {
        None => Some(RuleMode::Enforce),
        Some(mode) => match mode.value.as_str() {
            "enforce" => Some(RuleMode::Enforce),
            "shadow" => Some(RuleMode::Shadow),
            other => {
                reporter.error(
                    &mode.loc,
                    CheckError::UnknownMode {
                        value: other.to_string(),
                    },
                    Some(suggest(other, MODE_NAMES)),
                );
                None
            }
        },
    };

    let action = check_action(raw_rule, raw, &rule_name, reporter);
    if raw_rule.then.is_none() {
        missing("then", reporter);
    }
    let roles = check_role_filter(raw_rule.roles.as_ref(), raw, reporter);
    let apps = check_filter(raw_rule.apps.as_ref(), "apps", reporter);
    let tenants = check_filter(raw_rule.tenants.as_ref(), "tenants", reporter);

    let condition = match &raw_rule.when {
        Some(when) => compile_condition(when, sources, env, rules, reporter),
        None => {
            missing("when", reporter);
            None
        }
    };

    Some(Rule {
        id: id?,
        description: raw_rule
            .description
            .as_ref()
            .map_or_else(String::new, |d| d.value.clone()),
        action: action?,
        priority: raw_rule.priority.as_ref().map_or(0, |p| p.value),
        mode: mode?,
        roles: roles?,
        apps: apps?,
        tenants: tenants?,
        condition: condition?,
    })
}

/// Checks `then` with the keys that only some actions accept: `factors`
/// for `step_up` and `adjust` for `adjust`.
fn check_action(
    raw_rule: &RawRule,
    raw: &RawRuleSet,
    rule_name: &str,
    reporter: &mut Reporter,
) -> Option<Action> {
    let then = raw_rule.then.as_ref()?;
    let action_name = then.value.as_str();
    let mut valid = true;

    if let (Some(factors), false) = (&raw_rule.factors, action_name == "step_up") {
        valid = false;
        reporter.error(
            &factors.loc,
            CheckError::FactorsWithoutStepUp {
                action: action_name.to_string(),
            },
            Some("remove `factors`, or set `then = \"step_up\"`".into()),
        );
    }
    if let (Some(adjust), false) = (&raw_rule.adjust, action_name == "adjust") {
        valid = false;
        reporter.error(
            &adjust.loc,
            CheckError::AdjustWithoutAdjustAction {
                action: action_name.to_string(),
            },
            Some("remove `adjust`, or set `then = \"adjust\"`".into()),
        );
    }

    let action = match action_name {
        "allow" => Some(Action::Allow),
        "deny" => Some(Action::Deny),
        "step_up" => match &raw_rule.factors {
            None => Some(Action::StepUp { factors: None }),
            Some(list) => {
                check_rule_factors(list, raw_rule, raw, rule_name, reporter).map(|factors| {
                    Action::StepUp {
                        factors: Some(factors),
                    }
                })
            }
        },
        "adjust" => match &raw_rule.adjust {
            Some(delta) => Some(Action::Adjust(delta.value)),
            None => {
                reporter.error(
                    &then.loc,
                    CheckError::MissingAdjust {
                        rule: rule_name.to_string(),
                    },
                    Some("add `adjust = <log-odds delta>`, e.g. `adjust = 1.5` to raise the risk or `adjust = -1.0` to lower it".into()),
                );
                None
            }
        },
        other => {
            reporter.error(
                &then.loc,
                CheckError::UnknownAction {
                    value: other.to_string(),
                },
                Some(suggest(other, ACTION_NAMES)),
            );
            None
        }
    };
    if valid { action } else { None }
}

/// Checks the factors of a `step_up` rule. `sms` is accepted only when the
/// rule is limited to roles that all set `allow_sms = true`.
fn check_rule_factors(
    list: &StringList,
    raw_rule: &RawRule,
    raw: &RawRuleSet,
    rule_name: &str,
    reporter: &mut Reporter,
) -> Option<Vec<String>> {
    let filter_roles: Vec<&str> = raw_rule
        .roles
        .iter()
        .flat_map(|roles| roles.value.iter().map(|role| role.value.as_str()))
        .collect();
    let sms_forbidden_for = if filter_roles.is_empty() {
        // Without a filter the rule applies to every role, `default` too,
        // whose absence is reported on its own.
        raw.roles
            .iter()
            .find(|(_, role)| !role.allow_sms.as_ref().is_some_and(|flag| flag.value))
            .map(|(name, _)| name.clone())
    } else {
        filter_roles
            .iter()
            .find(|name| {
                !raw.roles
                    .get(**name)
                    .and_then(|role| role.allow_sms.as_ref())
                    .is_some_and(|flag| flag.value)
            })
            .map(|name| name.to_string())
    };

    // Check names with sms allowed, then report sms separately so that the
    // message names the rule and the role that forbids it.
    let factors = check_factor_list(list, "factors", true, rule_name, reporter)?;
    if let Some(role) = sms_forbidden_for {
        let with_sms = list
            .value
            .iter()
            .find(|entry| entry.value.split('+').any(|factor| factor.trim() == "sms"));
        if let Some(entry) = with_sms {
            reporter.error(
                &entry.loc,
                CheckError::SmsNotAllowedInRule {
                    rule: rule_name.to_string(),
                    role: role.clone(),
                },
                Some(format!("limit the rule with `roles = [...]` to roles that set `allow_sms = true`, or remove `sms`; `{role}` does not allow it")),
            );
            return None;
        }
    }
    Some(factors)
}

fn check_role_filter(
    list: Option<&StringList>,
    raw: &RawRuleSet,
    reporter: &mut Reporter,
) -> Option<Vec<String>> {
    let Some(list) = list else {
        return Some(Vec::new());
    };
    let mut roles = Some(Vec::new());
    for role in &list.value {
        if raw.roles.contains_key(&role.value) {
            if let Some(roles) = &mut roles {
                roles.push(role.value.clone());
            }
            continue;
        }
        reporter.error(
            &role.loc,
            CheckError::UnknownRoleFilter {
                role: role.value.clone(),
            },
            Some(format!(
                "{}; a request whose role has no `[roles.<name>]` table counts as `default`",
                suggest(&role.value, raw.roles.keys().map(String::as_str))
            )),
        );
        roles = None;
    }
    roles
}

fn check_filter(
    list: Option<&StringList>,
    key: &'static str,
    reporter: &mut Reporter,
) -> Option<Vec<String>> {
    let Some(list) = list else {
        return Some(Vec::new());
    };
    let mut values = Some(Vec::new());
    for value in &list.value {
        if value.value.is_empty() {
            reporter.error(&value.loc, CheckError::EmptyFilterValue { key }, None);
            values = None;
        } else if let Some(values) = &mut values {
            values.push(value.value.clone());
        }
    }
    values
}

/// Compiles a `when` string and reports its errors at their position in
/// the file.
fn compile_condition(
    when: &Located<String>,
    sources: &[SourceFile],
    env: &Env,
    rules: &mut Rules,
    reporter: &mut Reporter,
) -> Option<Condition> {
    match condition::compile(env, &when.value) {
        Ok(compiled) => {
            rules.roots.extend(compiled.references.roots);
            rules.ip_lists.extend(compiled.references.ip_lists);
            rules.signals.extend(compiled.references.signals);
            Some(compiled.condition)
        }
        Err(errors) => {
            let token = sources
                .get(when.loc.file)
                .and_then(|source| source.text.get(when.loc.span.clone()))
                .unwrap_or("");
            let offsets = decoded_offsets(token, &when.value);
            for error in errors {
                let span = match &offsets {
                    Some(offsets) => {
                        let start = offsets.get(error.span.start).copied().unwrap_or(0);
                        let end = offsets.get(error.span.end).copied().unwrap_or(start);
                        when.loc.span.start + start..when.loc.span.start + end.max(start)
                    }
                    None => when.loc.span.clone(),
                };
                let loc = Loc {
                    file: when.loc.file,
                    span,
                };
                reporter.error(&loc, error.error, error.help);
            }
            None
        }
    }
}
