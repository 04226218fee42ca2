//! Turning a model risk and the request's facts into allow, step_up or
//! deny with the acceptable MFA factors.
//!
//! Order of precedence: deny lists; adjust rules change the risk; enforce
//! decision rules by priority; otherwise the thresholds. Then an allow-
//! listed network allows, a learning user's allow becomes the learning
//! policy and a degraded request's allow becomes the degraded policy.
//! Shadow rules are evaluated and recorded but never change the outcome.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use cel::Context;
use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use serde::{Deserialize, Serialize};

use super::rule::{Action, ActionKind, Rule, RuleMode};
use super::settings::Lists;
use super::{RuleSet, SIGNAL_NAMES};

/// The outcome for the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    StepUp,
    Deny,
}

/// The risk level from the thresholds of the rules file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Below `step_up_at`.
    Low,
    /// From `step_up_at` to below `high_at`.
    Medium,
    /// From `high_at` to below `deny_at`.
    High,
    /// At or above `deny_at`.
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// One signal as the engine computed it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalFact {
    /// One of `SIGNAL_NAMES`; other names are ignored.
    pub name: String,
    /// In [0, 1]; values outside are clamped and NaN counts as not
    /// evaluable.
    pub value: f64,
    /// Whether the signal could be computed; when `false` the value means
    /// nothing.
    pub evaluable: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoFacts {
    /// ISO 3166-1 alpha-2 code.
    pub country: Option<String>,
    pub city: Option<String>,
    pub asn: Option<u32>,
    /// Anonymiser (VPN, proxy, Tor) according to the geo-IP databases.
    pub anonymous: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceFacts {
    /// Whether the device is in the user's profile.
    pub known: bool,
    /// Verified logins seen from this device.
    pub seen_count: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserFacts {
    /// Verified logins of the user.
    pub logins: u64,
    /// Days since the last verified login, `None` when there was none.
    pub days_since_last: Option<f64>,
    /// Failed logins in the last 15 minutes.
    pub failures_15m: u64,
}

/// The facts of one login attempt that rules read.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInput {
    /// Model risk in [0, 1]. Any other value, NaN included, makes the
    /// decision fall back to the degraded policy.
    pub risk: f64,
    /// Model log-odds; adjust rules add to it. When not finite, the log-
    /// odds of `risk` are used.
    pub logit: f64,
    /// Empty when absent.
    pub role: String,
    pub app: String,
    pub tenant: String,
    pub signals: Vec<SignalFact>,
    pub geo: GeoFacts,
    pub device: DeviceFacts,
    pub user: UserFacts,
    pub ip: IpAddr,
    /// Names of the engine's IP lists that contain `ip`.
    pub ip_lists: Vec<String>,
    /// Hour of day in the user's time zone, 0 to 23.
    pub hour_local: Option<u32>,
    /// A signal the decision needs could not be evaluated.
    pub degraded: bool,
    /// The user has too little verified history.
    pub learning: bool,
}

/// A shadow rule whose condition matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowHit {
    pub id: String,
    pub action: ActionKind,
}

/// The reason a rule was not evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The request's role is not in the rule's `roles`.
    RoleFilter,
    /// The request's app is not in the rule's `apps`.
    AppFilter,
    /// The request's tenant is not in the rule's `tenants`.
    TenantFilter,
    /// A deny list or a rule of higher priority decided first.
    AlreadyDecided,
    /// The model risk was not a number in [0, 1].
    InvalidRisk,
}

/// The outcome of one rule for one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum RuleOutcome {
    Matched,
    NotMatched,
    /// The condition failed at run time; the rule counted as not matched.
    Errored(String),
    Skipped(SkipReason),
}

/// The trace of one rule, in evaluation order: adjust rules, decision
/// rules by priority, then shadow rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleTrace {
    pub id: String,
    pub mode: RuleMode,
    /// Serialized as `"outcome"` and, for errored and skipped rules,
    /// `"detail"`.
    #[serde(flatten)]
    pub outcome: RuleOutcome,
    /// This rule's action is the decision before the list and policy
    /// steps.
    pub decided: bool,
}

/// The result of the rules for one attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RulesDecision {
    pub decision: Decision,
    pub level: Level,
    /// Risk after adjust rules, finite in [0, 1].
    pub risk: f64,
    /// For step_up: the acceptable ways to pass, factors joined by `+`.
    pub required_factors: Vec<String>,
    /// Enforce rules that matched, adjust rules included.
    pub matched_rules: Vec<String>,
    pub shadow_rules: Vec<ShadowHit>,
    pub trace: Vec<RuleTrace>,
    /// Adjust rules that matched, with their log-odds delta.
    pub adjustments: Vec<(String, f64)>,
    /// `deny_list`, `allow_list`, `rule:<id>`, `threshold`,
    /// `degraded_policy` or `learning_policy`.
    pub decided_by: String,
    /// The reason the risk could not be used, if it could not. The decision
    /// is then the degraded policy (never allow) at level high, and `risk`
    /// is the `high_at` threshold.
    pub risk_error: Option<String>,
}

impl RulesDecision {
    /// Returns the rules whose condition failed at run time, with the
    /// error.
    pub fn errored_rules(&self) -> impl Iterator<Item = (&str, &str)> {
        self.trace.iter().filter_map(|trace| match &trace.outcome {
            RuleOutcome::Errored(message) => Some((trace.id.as_str(), message.as_str())),
            _ => None,
        })
    }
}

/// The final risk and whether a deny list matched.
struct Scored {
    risk: f64,
    level: Level,
    deny_listed: bool,
}

/// The rule that decided, before the list and policy steps.
struct RuleDecision<'r> {
    rule: &'r Rule,
    decision: Decision,
}

impl RuleSet {
    /// Decides one attempt. A condition that fails, or panics inside the
    /// CEL interpreter, is recorded as errored and counts as not matched.
    pub fn decide(&self, input: &RuleInput) -> RulesDecision {
        let mut run = Run::default();
        let role = self.effective_role(&input.role);

        if !(input.risk.is_finite() && (0.0..=1.0).contains(&input.risk)) {
            let reason = format!("model risk `{}` is not a number in [0, 1]", input.risk);
            return self.risk_error_decision(input, role, run, reason);
        }

        let mut scope = self.root.new_inner_scope();
        self.bind(&mut scope, input);
        let deny_listed = self.is_deny_listed(input);

        // Adjust rules see the model risk and move the logit.
        let mut delta = 0.0;
        for rule in &self.adjust_rules {
            if let Some(true) = run.evaluate(rule, role, input, &scope)
                && let Action::Adjust(adjust) = rule.action
            {
                delta += adjust;
                run.adjustments.push((rule.id.clone(), adjust));
            }
        }
        let risk = if run.adjustments.is_empty() {
            input.risk
        } else {
            let logit = if input.logit.is_finite() {
                input.logit
            } else {
                (input.risk / (1.0 - input.risk)).ln()
            };
            sigmoid(logit + delta)
        };
        if !risk.is_finite() {
            let reason = format!("risk after adjust rules is `{risk}`");
            return self.risk_error_decision(input, role, run, reason);
        }
        let risk = risk.clamp(0.0, 1.0);
        let level = self.settings.scoring.thresholds.level(risk);

        // Decision rules see the adjusted risk.
        let mut decision_scope = scope.new_inner_scope();
        decision_scope.add_variable_as_val("risk", double(risk));
        let ruled = if deny_listed {
            run.skip_all(&self.decision_rules, SkipReason::AlreadyDecided);
            None
        } else {
            run.first_match(&self.decision_rules, role, input, &decision_scope)
        };

        for rule in &self.shadow_rules {
            let rule_scope = match rule.action {
                Action::Adjust(_) => &scope,
                _ => &decision_scope,
            };
            if let Some(true) = run.evaluate(rule, role, input, rule_scope) {
                run.shadow.push(ShadowHit {
                    id: rule.id.clone(),
                    action: rule.action.kind(),
                });
            }
        }

        let scored = Scored {
            risk,
            level,
            deny_listed,
        };
        self.finish(input, role, run, scored, ruled)
    }

    /// Applies the lists and policies to the first decision and picks the
    /// factors.
    fn finish(
        &self,
        input: &RuleInput,
        role: &str,
        run: Run,
        scored: Scored,
        ruled: Option<RuleDecision>,
    ) -> RulesDecision {
        let Scored {
            risk,
            level,
            deny_listed,
        } = scored;
        let policy = &self.settings.policy;
        let (mut decision, mut decided_by, mut explicit_allow) = if deny_listed {
            (Decision::Deny, "deny_list".to_string(), false)
        } else if let Some(ruled) = &ruled {
            let allow = ruled.decision == Decision::Allow;
            (ruled.decision, format!("rule:{}", ruled.rule.id), allow)
        } else {
            let decision = match level {
                Level::Low => Decision::Allow,
                Level::Medium | Level::High => Decision::StepUp,
                Level::Critical => Decision::Deny,
            };
            (decision, "threshold".to_string(), false)
        };

        // An allow-listed network allows anything but a deny, unless a
        // signal was missing: a degraded request cannot vouch for itself.
        if decision != Decision::Deny
            && !input.degraded
            && Lists::contains(&self.settings.lists.allow_networks, input.ip)
        {
            decision = Decision::Allow;
            decided_by = "allow_list".to_string();
            explicit_allow = true;
        }
        if decision == Decision::Allow && input.learning && !explicit_allow {
            decision = policy.learning;
            if decision != Decision::Allow {
                decided_by = "learning_policy".to_string();
            }
        }
        if decision == Decision::Allow && input.degraded && policy.degraded != Decision::Allow {
            decision = policy.degraded;
            decided_by = "degraded_policy".to_string();
        }

        let required_factors = if decision == Decision::StepUp {
            let from_rule = ruled.as_ref().and_then(|ruled| match &ruled.rule.action {
                Action::StepUp { factors } if decided_by.starts_with("rule:") => factors.clone(),
                _ => None,
            });
            from_rule.unwrap_or_else(|| self.role_factors(role, level))
        } else {
            Vec::new()
        };

        RulesDecision {
            decision,
            level,
            risk,
            required_factors,
            matched_rules: run.matched,
            shadow_rules: run.shadow,
            trace: run.trace,
            adjustments: run.adjustments,
            decided_by,
            risk_error: None,
        }
    }

    /// Decides an attempt whose risk cannot be used. A deny list still
    /// denies, and otherwise the degraded policy applies at the high level,
    /// with risk `high_at` and the high-level factors, but never allows.
    /// Rules are skipped because they would compare an invalid risk.
    fn risk_error_decision(
        &self,
        input: &RuleInput,
        role: &str,
        mut run: Run,
        reason: String,
    ) -> RulesDecision {
        if run.trace.is_empty() {
            run.skip_all(&self.adjust_rules, SkipReason::InvalidRisk);
        }
        run.skip_all(&self.decision_rules, SkipReason::InvalidRisk);
        run.skip_all(&self.shadow_rules, SkipReason::InvalidRisk);

        let (decision, decided_by) = if self.is_deny_listed(input) {
            (Decision::Deny, "deny_list")
        } else if self.settings.policy.degraded == Decision::Deny {
            (Decision::Deny, "degraded_policy")
        } else {
            (Decision::StepUp, "degraded_policy")
        };
        let required_factors = if decision == Decision::StepUp {
            self.role_factors(role, Level::High)
        } else {
            Vec::new()
        };
        RulesDecision {
            decision,
            level: Level::High,
            risk: self.settings.scoring.thresholds.high_at,
            required_factors,
            matched_rules: run.matched,
            shadow_rules: run.shadow,
            trace: run.trace,
            adjustments: run.adjustments,
            decided_by: decided_by.to_string(),
            risk_error: Some(reason),
        }
    }

    /// Returns the role's factors for a level; a step-up below medium risk
    /// (forced by a rule or a policy) uses the medium list.
    fn role_factors(&self, role: &str, level: Level) -> Vec<String> {
        let Some(policy) = self.settings.roles.get(role) else {
            return Vec::new();
        };
        if level >= Level::High {
            policy.high.clone()
        } else {
            policy.medium.clone()
        }
    }

    /// Returns the role name that selects the factor policy and `roles`
    /// filters: the request's role when the file defines it, else
    /// `default`.
    pub(crate) fn effective_role<'a>(&'a self, role: &'a str) -> &'a str {
        if self.settings.roles.contains_key(role) {
            role
        } else {
            "default"
        }
    }

    fn is_deny_listed(&self, input: &RuleInput) -> bool {
        let lists = &self.settings.lists;
        Lists::contains(&lists.deny_networks, input.ip)
            || input
                .geo
                .country
                .as_ref()
                .is_some_and(|country| lists.deny_countries.contains(country))
    }

    /// Binds the variables the conditions read into `scope`, as CEL
    /// values built directly: converting from `cel::Value` would copy
    /// every map once more.
    fn bind(&self, scope: &mut Context<'_, 'static>, input: &RuleInput) {
        let uses = |root: &str| self.roots.contains(root);

        if uses("risk") {
            scope.add_variable_as_val("risk", double(input.risk));
        }
        for (name, value) in [
            ("role", &input.role),
            ("app", &input.app),
            ("tenant", &input.tenant),
        ] {
            if uses(name) {
                scope.add_variable_as_val(name, string(value));
            }
        }
        if uses("signals") {
            let mut signals = HashMap::with_capacity(self.signals.len());
            for name in SIGNAL_NAMES
                .iter()
                .filter(|name| self.signals.contains(*name))
            {
                let fact = input.signals.iter().find(|fact| fact.name == *name);
                let (value, evaluable) = match fact {
                    Some(fact) if !fact.value.is_nan() => {
                        (fact.value.clamp(0.0, 1.0), fact.evaluable)
                    }
                    _ => (0.0, false),
                };
                let entry = map([("value", double(value)), ("evaluable", boolean(evaluable))]);
                signals.insert(CelMapKey::from(*name), entry);
            }
            scope.add_variable_as_val("signals", Box::new(CelMap::from(signals)));
        }
        if uses("geo") {
            let geo = &input.geo;
            let geo = map([
                ("country", string(geo.country.as_deref().unwrap_or(""))),
                ("city", string(geo.city.as_deref().unwrap_or(""))),
                ("asn", int(geo.asn.map_or(0, i64::from))),
                ("anonymous", boolean(geo.anonymous)),
            ]);
            scope.add_variable_as_val("geo", geo);
        }
        if uses("device") {
            let device = map([
                ("known", boolean(input.device.known)),
                ("seen_count", int(saturating_i64(input.device.seen_count))),
            ]);
            scope.add_variable_as_val("device", device);
        }
        if uses("user") {
            let days = input
                .user
                .days_since_last
                .filter(|days| days.is_finite() && *days >= 0.0)
                .unwrap_or(-1.0);
            let user = map([
                ("logins", int(saturating_i64(input.user.logins))),
                ("days_since_last", double(days)),
                ("failures_15m", int(saturating_i64(input.user.failures_15m))),
            ]);
            scope.add_variable_as_val("user", user);
        }
        if uses("ip") {
            // `in_list` reads `lists`, which contains only the names that
            // conditions test.
            let lists: Vec<Box<dyn Val>> = input
                .ip_lists
                .iter()
                .filter(|name| self.ip_lists.contains(*name))
                .map(|name| string(name))
                .collect();
            let ip = map([
                ("lists", Box::new(CelList::from(lists))),
                ("trusted", boolean(self.is_trusted_network(input.ip))),
            ]);
            scope.add_variable_as_val("ip", ip);
        }
        if uses("time") {
            let hour = input
                .hour_local
                .filter(|hour| *hour < 24)
                .map_or(-1, i64::from);
            scope.add_variable_as_val("time", map([("hour_local", int(hour))]));
        }
        if uses("degraded") {
            scope.add_variable_as_val("degraded", boolean(input.degraded));
        }
        if uses("learning") {
            scope.add_variable_as_val("learning", boolean(input.learning));
        }
    }
}

fn map<const N: usize>(entries: [(&'static str, Box<dyn Val>); N]) -> Box<dyn Val> {
    let map: HashMap<CelMapKey<'static>, Box<dyn Val>> = entries
        .into_iter()
        .map(|(key, value)| (CelMapKey::from(key), value))
        .collect();
    Box::new(CelMap::from(map))
}

fn double(value: f64) -> Box<dyn Val> {
    Box::new(CelDouble::from(value))
}

fn int(value: i64) -> Box<dyn Val> {
    Box::new(CelInt::from(value))
}

fn boolean(value: bool) -> Box<dyn Val> {
    Box::new(CelBool::from(value))
}

fn string(value: &str) -> Box<dyn Val> {
    Box::new(CelString::from(value.to_string()))
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn sigmoid(logit: f64) -> f64 {
    1.0 / (1.0 + (-logit).exp())
}

/// Implements `ip.in_list("name")`: whether the engine put `name` in the
/// request's IP lists. The checker only accepts calls on `ip`.
pub(crate) fn in_list(
    call: &cel::FunctionContext,
    name: Arc<String>,
) -> Result<bool, cel::ExecutionError> {
    let not_on_ip = || cel::ExecutionError::function_error("in_list", "must be called on `ip`");
    let ip = call.this.as_ref().ok_or_else(not_on_ip)?;
    let ip = ip.downcast_ref::<CelMap>().ok_or_else(not_on_ip)?;
    let lists = ip.get(&CelMapKey::from("lists")).ok_or_else(not_on_ip)?;
    let lists = lists.downcast_ref::<CelList>().ok_or_else(not_on_ip)?;
    Ok(lists.iter().any(|list| {
        list.downcast_ref::<CelString>()
            .is_some_and(|list| list.inner() == name.as_str())
    }))
}

/// Trace, matches and adjustments collected while deciding.
#[derive(Default)]
struct Run {
    trace: Vec<RuleTrace>,
    matched: Vec<String>,
    shadow: Vec<ShadowHit>,
    adjustments: Vec<(String, f64)>,
}

impl Run {
    /// Evaluates a rule unless a filter excludes it, and records the
    /// outcome. Returns `None` when skipped, else whether it matched; an
    /// errored rule returns `Some(false)`.
    fn evaluate(
        &mut self,
        rule: &Rule,
        role: &str,
        input: &RuleInput,
        scope: &Context<'_, '_>,
    ) -> Option<bool> {
        if let Some(reason) = filter_skip(rule, role, input) {
            self.skip(rule, reason);
            return None;
        }
        let (outcome, matched) = match rule.condition.evaluate(scope) {
            Ok(true) => (RuleOutcome::Matched, true),
            Ok(false) => (RuleOutcome::NotMatched, false),
            Err(message) => (RuleOutcome::Errored(message), false),
        };
        if matched && rule.mode == RuleMode::Enforce {
            self.matched.push(rule.id.clone());
        }
        self.trace.push(RuleTrace {
            id: rule.id.clone(),
            mode: rule.mode,
            outcome,
            decided: false,
        });
        Some(matched)
    }

    fn skip(&mut self, rule: &Rule, reason: SkipReason) {
        self.trace.push(RuleTrace {
            id: rule.id.clone(),
            mode: rule.mode,
            outcome: RuleOutcome::Skipped(reason),
            decided: false,
        });
    }

    fn skip_all(&mut self, rules: &[Rule], reason: SkipReason) {
        for rule in rules {
            self.skip(rule, reason);
        }
    }

    /// Evaluates decision rules, sorted by priority and then severity, up
    /// to the first match and the rest of its priority; lower priorities
    /// are skipped.
    fn first_match<'r>(
        &mut self,
        rules: &'r [Rule],
        role: &str,
        input: &RuleInput,
        scope: &Context<'_, '_>,
    ) -> Option<RuleDecision<'r>> {
        let mut decided: Option<RuleDecision<'r>> = None;
        for rule in rules {
            if let Some(first) = &decided
                && rule.priority < first.rule.priority
            {
                self.skip(rule, SkipReason::AlreadyDecided);
                continue;
            }
            let matched = self.evaluate(rule, role, input, scope) == Some(true);
            if matched && decided.is_none() {
                if let Some(trace) = self.trace.last_mut() {
                    trace.decided = true;
                }
                let decision = match rule.action {
                    Action::Allow => Decision::Allow,
                    Action::Deny => Decision::Deny,
                    Action::StepUp { .. } | Action::Adjust(_) => Decision::StepUp,
                };
                decided = Some(RuleDecision { rule, decision });
            }
        }
        decided
    }
}

/// Returns why a rule's filters exclude the request, if they do.
fn filter_skip(rule: &Rule, role: &str, input: &RuleInput) -> Option<SkipReason> {
    if !rule.roles.is_empty() && !rule.roles.iter().any(|r| r == role) {
        return Some(SkipReason::RoleFilter);
    }
    if !rule.apps.is_empty() && !rule.apps.contains(&input.app) {
        return Some(SkipReason::AppFilter);
    }
    if !rule.tenants.is_empty() && !rule.tenants.contains(&input.tenant) {
        return Some(SkipReason::TenantFilter);
    }
    None
}
