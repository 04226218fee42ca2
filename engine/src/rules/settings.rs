//! Second stage for everything but the rules: scoring thresholds and
//! weights, the degraded and learning policies, per-role factor policies
//! and the network and country lists, each checked for meaning.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::decide::{Decision, Level};
use super::diagnostic::{CheckError, Reporter, suggest};
use super::raw::{Located, RawLists, RawPolicy, RawRole, RawRuleSet, RawScoring, StringList};
use super::source::Loc;
use super::{FACTOR_NAMES, SIGNAL_NAMES};

/// Values of `[policy] degraded`; `allow` also needs
/// `dangerous_allow_degraded = true`.
pub(crate) const DEGRADED_POLICIES: [&str; 3] = ["step_up", "deny", "allow"];

/// Values of `[policy] learning`.
pub(crate) const LEARNING_POLICIES: [&str; 3] = ["allow", "step_up", "deny"];

/// Risk thresholds, strictly increasing in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub step_up_at: f64,
    pub high_at: f64,
    pub deny_at: f64,
}

impl Thresholds {
    /// Returns the level of a finite risk.
    pub fn level(&self, risk: f64) -> Level {
        if risk >= self.deny_at {
            Level::Critical
        } else if risk >= self.high_at {
            Level::High
        } else if risk >= self.step_up_at {
            Level::Medium
        } else {
            Level::Low
        }
    }
}

#[derive(Debug)]
pub(crate) struct Scoring {
    pub bias: f64,
    pub thresholds: Thresholds,
    /// One weight per known signal, in `SIGNAL_NAMES` order; 0 when the
    /// file sets none.
    pub weights: Vec<(&'static str, f64)>,
}

#[derive(Debug)]
pub(crate) struct Policy {
    /// Replacement for an allow when the request is degraded.
    pub degraded: Decision,
    /// Replacement for an allow when the user is still learning.
    pub learning: Decision,
}

/// Acceptable factor combinations of a role at medium and high risk. Each
/// entry is one way to pass, with factors joined by `+`.
#[derive(Debug)]
pub(crate) struct RolePolicy {
    pub medium: Vec<String>,
    pub high: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Lists {
    pub trusted_networks: Vec<IpNet>,
    pub allow_networks: Vec<IpNet>,
    pub deny_networks: Vec<IpNet>,
    pub deny_countries: BTreeSet<String>,
}

impl Lists {
    pub(crate) fn contains(networks: &[IpNet], ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        networks.iter().any(|network| network.contains(&ip))
    }
}

/// The checked settings of a rule set.
#[derive(Debug)]
pub(crate) struct Settings {
    pub name: String,
    pub scoring: Scoring,
    pub policy: Policy,
    pub roles: BTreeMap<String, RolePolicy>,
    pub lists: Lists,
}

/// Checks all settings, reporting every error; returns `None` when any
/// was found.
pub(crate) fn check(
    raw: &RawRuleSet,
    default_name: &str,
    reporter: &mut Reporter,
) -> Option<Settings> {
    let before = reporter.diagnostics.len();
    let fallback = raw.last_file.clone().unwrap_or(Loc {
        file: 0,
        span: 0..0,
    });

    let name = raw
        .name
        .as_ref()
        .map_or_else(|| default_name.to_string(), |name| name.value.clone());
    let scoring = check_scoring(&raw.scoring, &fallback, reporter);
    let policy = check_policy(&raw.policy, reporter);
    let roles = check_roles(&raw.roles, &fallback, reporter);
    let lists = check_lists(&raw.lists, reporter);

    if reporter.diagnostics.len() > before {
        return None;
    }
    Some(Settings {
        name,
        scoring: scoring?,
        policy: policy?,
        roles: roles?,
        lists: lists?,
    })
}

fn check_scoring(raw: &RawScoring, fallback: &Loc, reporter: &mut Reporter) -> Option<Scoring> {
    let Some(table_loc) = raw.table.clone() else {
        reporter.error(
            fallback,
            CheckError::MissingKey {
                key: "[scoring]".into(),
                table: "the rules file".into(),
            },
            Some(
                "add a `[scoring]` table with `bias`, `step_up_at`, `high_at` and `deny_at`".into(),
            ),
        );
        return None;
    };
    let require = |key: &str, value: &Option<Located<f64>>, reporter: &mut Reporter| {
        if !raw.written.contains(key) {
            reporter.error(
                &table_loc,
                CheckError::MissingKey {
                    key: key.to_string(),
                    table: "`[scoring]`".into(),
                },
                Some(format!("set `{key}` under `[scoring]`")),
            );
        }
        value.clone()
    };
    let bias = require("bias", &raw.bias, reporter);
    let step_up_at = require("step_up_at", &raw.step_up_at, reporter);
    let high_at = require("high_at", &raw.high_at, reporter);
    let deny_at = require("deny_at", &raw.deny_at, reporter);

    // Each threshold in [0, 1], then strictly increasing.
    for (key, value) in [
        ("step_up_at", &step_up_at),
        ("high_at", &high_at),
        ("deny_at", &deny_at),
    ] {
        if let Some(value) = value
            && !(0.0..=1.0).contains(&value.value)
        {
            reporter.error(
                &value.loc,
                CheckError::ThresholdOutOfRange {
                    key: key.to_string(),
                    value: value.value,
                },
                Some("thresholds are risks, between 0 and 1".into()),
            );
        }
    }
    // Each neighbouring pair that is set and in range, so that one invalid
    // threshold does not hide the order of the other two.
    let pairs = [
        ("step_up_at", &step_up_at, "high_at", &high_at),
        ("high_at", &high_at, "deny_at", &deny_at),
    ];
    for (lower, lower_value, upper, upper_value) in pairs {
        let (Some(lower_value), Some(upper_value)) = (lower_value, upper_value) else {
            continue;
        };
        let both_in_range = [lower_value.value, upper_value.value]
            .iter()
            .all(|value| (0.0..=1.0).contains(value));
        if both_in_range && lower_value.value >= upper_value.value {
            reporter.error(
                &upper_value.loc,
                CheckError::ThresholdsOutOfOrder {
                    lower,
                    lower_value: lower_value.value,
                    upper,
                    upper_value: upper_value.value,
                },
                Some("thresholds must increase: step_up_at < high_at < deny_at".into()),
            );
        }
    }

    let mut weights: Vec<(&'static str, f64)> =
        SIGNAL_NAMES.iter().map(|name| (*name, 0.0)).collect();
    for (name, (key_loc, weight)) in &raw.weights {
        match weights.iter_mut().find(|(signal, _)| signal == name) {
            Some(slot) => slot.1 = weight.value,
            None => reporter.error(
                key_loc,
                CheckError::UnknownSignal { name: name.clone() },
                Some(suggest(name, SIGNAL_NAMES)),
            ),
        }
    }

    Some(Scoring {
        bias: bias?.value,
        thresholds: Thresholds {
            step_up_at: step_up_at?.value,
            high_at: high_at?.value,
            deny_at: deny_at?.value,
        },
        weights,
    })
}

fn check_policy(raw: &RawPolicy, reporter: &mut Reporter) -> Option<Policy> {
    let dangerous = raw
        .dangerous_allow_degraded
        .as_ref()
        .is_some_and(|flag| flag.value);

    let degraded = match &raw.degraded {
        None => Some(Decision::StepUp),
        Some(value) => match value.value.as_str() {
            "step_up" => Some(Decision::StepUp),
            "deny" => Some(Decision::Deny),
            "allow" if dangerous => Some(Decision::Allow),
            "allow" => {
                reporter.error(
                    &value.loc,
                    CheckError::DegradedAllowNotEnabled,
                    Some("a degraded request lacks a signal, so allowing it skips MFA blind; set `dangerous_allow_degraded = true` under `[policy]` only if that is intended".into()),
                );
                None
            }
            other => {
                reporter.error(
                    &value.loc,
                    CheckError::InvalidPolicy {
                        key: "degraded",
                        value: other.to_string(),
                        expected: "`step_up` or `deny`",
                    },
                    Some(suggest(other, ["step_up", "deny"])),
                );
                None
            }
        },
    };

    let learning = match &raw.learning {
        None => Some(Decision::StepUp),
        Some(value) => match value.value.as_str() {
            "allow" => Some(Decision::Allow),
            "step_up" => Some(Decision::StepUp),
            "deny" => Some(Decision::Deny),
            other => {
                reporter.error(
                    &value.loc,
                    CheckError::InvalidPolicy {
                        key: "learning",
                        value: other.to_string(),
                        expected: "`allow`, `step_up` or `deny`",
                    },
                    Some(suggest(other, LEARNING_POLICIES)),
                );
                None
            }
        },
    };

    Some(Policy {
        degraded: degraded?,
        learning: learning?,
    })
}

fn check_roles(
    raw: &BTreeMap<String, RawRole>,
    fallback: &Loc,
    reporter: &mut Reporter,
) -> Option<BTreeMap<String, RolePolicy>> {
    let mut roles = BTreeMap::new();
    let mut complete = true;
    for (name, role) in raw {
        if !is_valid_name(name) {
            complete = false;
            reporter.error(
                &role.name.loc,
                CheckError::InvalidRoleName { name: name.clone() },
                Some("use letters, digits, `_`, `-` and `.`, at most 64 characters".into()),
            );
        }
        let allow_sms = role.allow_sms.as_ref().is_some_and(|flag| flag.value);
        let level = |key: &str, list: &Option<StringList>, reporter: &mut Reporter| match list {
            Some(list) => check_factor_list(
                list,
                &format!("roles.{name}.{key}"),
                allow_sms,
                name,
                reporter,
            ),
            None if role.written.contains(key) => None,
            None => {
                reporter.error(
                    &role.name.loc,
                    CheckError::MissingKey {
                        key: key.to_string(),
                        table: format!("`[roles.{name}]`"),
                    },
                    Some(format!("list the factors accepted at {key} risk, e.g. `{key} = [\"webauthn\", \"totp\"]`")),
                );
                None
            }
        };
        let medium = level("medium", &role.medium, reporter);
        let high = level("high", &role.high, reporter);
        match (medium, high) {
            (Some(medium), Some(high)) => {
                roles.insert(name.clone(), RolePolicy { medium, high });
            }
            _ => complete = false,
        }
    }
    if !raw.contains_key("default") {
        complete = false;
        reporter.error(
            fallback,
            CheckError::MissingDefaultRole,
            Some("add a `[roles.default]` table with `medium` and `high` factor lists".into()),
        );
    }
    complete.then_some(roles)
}

/// Checks a list of factor combinations such as `["webauthn+totp", "push"]`
/// and returns them normalised, without spaces around `+`.
pub(crate) fn check_factor_list(
    list: &StringList,
    key: &str,
    allow_sms: bool,
    role: &str,
    reporter: &mut Reporter,
) -> Option<Vec<String>> {
    if list.value.is_empty() {
        reporter.error(
            &list.loc,
            CheckError::EmptyFactorList {
                key: key.to_string(),
            },
            Some("a step-up needs at least one way to pass".into()),
        );
        return None;
    }
    let mut entries = Vec::new();
    let mut valid = true;
    for entry in &list.value {
        match check_factor_entry(entry, reporter) {
            Some(factors) => {
                if factors.contains(&"sms") && !allow_sms {
                    valid = false;
                    reporter.error(
                        &entry.loc,
                        CheckError::SmsNotAllowed {
                            role: role.to_string(),
                        },
                        Some(format!("SMS codes can be intercepted by SIM swap; set `allow_sms = true` under `[roles.{role}]` to accept it anyway")),
                    );
                }
                entries.push(factors.join("+"));
            }
            None => valid = false,
        }
    }
    valid.then_some(entries)
}

/// Splits one combination on `+` and checks each factor name.
pub(crate) fn check_factor_entry<'e>(
    entry: &'e Located<String>,
    reporter: &mut Reporter,
) -> Option<Vec<&'e str>> {
    let mut factors: Vec<&str> = Vec::new();
    let mut valid = true;
    for factor in entry.value.split('+').map(str::trim) {
        if !FACTOR_NAMES.contains(&factor) {
            valid = false;
            reporter.error(
                &entry.loc,
                CheckError::UnknownFactor {
                    name: factor.to_string(),
                },
                Some(suggest(factor, FACTOR_NAMES)),
            );
        } else if factors.contains(&factor) {
            valid = false;
            reporter.error(
                &entry.loc,
                CheckError::RepeatedFactor {
                    name: factor.to_string(),
                    entry: entry.value.clone(),
                },
                None,
            );
        } else {
            factors.push(factor);
        }
    }
    valid.then_some(factors)
}

fn check_lists(raw: &RawLists, reporter: &mut Reporter) -> Option<Lists> {
    let trusted_networks = check_networks(&raw.trusted_networks, reporter);
    let allow_networks = check_networks(&raw.allow_networks, reporter);
    let deny_networks = check_networks(&raw.deny_networks, reporter);
    let mut deny_countries = Some(BTreeSet::new());
    for country in raw.deny_countries.iter().flat_map(|list| &list.value) {
        let code = country.value.as_str();
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            if let Some(countries) = &mut deny_countries {
                countries.insert(code.to_string());
            }
        } else {
            let help = if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
                format!("did you mean `{}`?", code.to_ascii_uppercase())
            } else {
                "write the two-letter code, e.g. `KP`".to_string()
            };
            reporter.error(
                &country.loc,
                CheckError::InvalidCountry {
                    value: code.to_string(),
                },
                Some(help),
            );
            deny_countries = None;
        }
    }
    Some(Lists {
        trusted_networks: trusted_networks?,
        allow_networks: allow_networks?,
        deny_networks: deny_networks?,
        deny_countries: deny_countries?,
    })
}

fn check_networks(list: &Option<StringList>, reporter: &mut Reporter) -> Option<Vec<IpNet>> {
    let mut networks = Some(Vec::new());
    for entry in list.iter().flat_map(|list| &list.value) {
        let text = entry.value.trim();
        let parsed = text
            .parse::<IpNet>()
            .ok()
            .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from));
        match parsed {
            Some(network) if network != network.trunc() => {
                reporter.error(
                    &entry.loc,
                    CheckError::NetworkHostBits {
                        value: entry.value.clone(),
                    },
                    Some(format!("did you mean `{}`?", network.trunc())),
                );
                networks = None;
            }
            Some(network) => {
                if let Some(networks) = &mut networks {
                    networks.push(network);
                }
            }
            None => {
                reporter.error(
                    &entry.loc,
                    CheckError::InvalidNetwork {
                        value: entry.value.clone(),
                    },
                    None,
                );
                networks = None;
            }
        }
    }
    networks
}

/// Checks that a role or rule id is 1 to 64 letters, digits, `_`, `-` and
/// `.`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
