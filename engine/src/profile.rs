//! A user's login history and the rules that change it.
//!
//! The profile learns a device, place or hour only from a verified success: a login the CRM
//! reported as succeeded, with MFA passed when the decision asked for it. Failures never teach
//! the profile; they feed the sliding-window counters instead. [`plan_event`] is the one place
//! that decides what an outcome does, so every store applies the same rules.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use riskgate_models::freeman::{LevelKeys, UserHistory};
use riskgate_models::keystroke::{
    KeystrokeTemplate, NotEvaluable, TemplateConfig, TemplateError, TimingVector,
};

use crate::request::Outcome;

/// Maximum entries kept per history map; the least recently seen entry is evicted first.
pub const MAX_HISTORY_ENTRIES: usize = 256;
/// Verified logins kept as travel origins, so that unlearning the newest restores the one
/// before it.
pub const RECENT_VERIFIED_LOGINS: usize = 8;

/// When a value was first and last seen in a verified login, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// The most recent verified login, the origin for impossible-travel checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedLogin {
    pub at: DateTime<Utc>,
    pub ip: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy_radius_km: Option<f64>,
    pub country: Option<String>,
    pub city: Option<String>,
}

/// History the engine keeps for one user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub user_id: String,
    pub verified_logins: u64,
    /// Keyed by the SHA-256 of the device id.
    pub devices: BTreeMap<String, Seen>,
    /// Keyed by ISO country code.
    pub countries: BTreeMap<String, Seen>,
    /// Keyed by `country/city`.
    pub cities: BTreeMap<String, Seen>,
    /// Keyed by the novelty network: the IPv4 address or the IPv6 /64.
    pub networks: BTreeMap<String, Seen>,
    /// Verified logins per local hour of day at the login's location (UTC when unknown).
    pub hours: [u64; 24],
    /// The newest verified login, the origin of travel checks.
    pub last_verified: Option<VerifiedLogin>,
    /// Verified logins before `last_verified`, oldest first, at most
    /// [`RECENT_VERIFIED_LOGINS`] minus one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_verified: Vec<VerifiedLogin>,
    /// When the user last reported a login as not theirs, or an analyst confirmed a
    /// compromise. Logins step up for a while after it, like a learning user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromise_reported_at: Option<DateTime<Utc>>,
    /// Typing-rhythm template built from the keystroke samples of verified logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystroke_template: Option<KeystrokeTemplate>,
    /// Network and user-agent value counts of verified logins, for the Freeman features.
    #[serde(default)]
    pub freeman: UserHistory,
}

/// Facts of a scored attempt, recorded with its decision so that a later outcome can teach the
/// profile without the client sending the attempt again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptFacts {
    pub at: DateTime<Utc>,
    pub ip: String,
    pub network: String,
    pub device_hash: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy_radius_km: Option<f64>,
    pub hour_local: Option<u32>,
    /// Verified keystroke features of this attempt, learned only with the rest of the facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystroke_sample: Option<Vec<f64>>,
    /// Network and user-agent keys of this attempt, learned into [`Profile::freeman`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeman_keys: Option<LevelKeys>,
}

impl AttemptFacts {
    pub fn city_key(&self) -> Option<String> {
        city_key(self.country.as_deref(), self.city.as_deref())
    }
}

/// Returns the key of a city in [`Profile::cities`].
pub fn city_key(country: Option<&str>, city: Option<&str>) -> Option<String> {
    match (country, city) {
        (Some(country), Some(city)) => Some(format!("{country}/{city}")),
        _ => None,
    }
}

fn remember(map: &mut BTreeMap<String, Seen>, key: &str, at: DateTime<Utc>) {
    match map.get_mut(key) {
        Some(seen) => {
            seen.count += 1;
            seen.last_seen = seen.last_seen.max(at);
        }
        None => {
            if map.len() >= MAX_HISTORY_ENTRIES {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, seen)| seen.last_seen)
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
            map.insert(
                key.to_owned(),
                Seen {
                    count: 1,
                    first_seen: at,
                    last_seen: at,
                },
            );
        }
    }
}

fn forget(map: &mut BTreeMap<String, Seen>, key: &str) {
    if let Some(seen) = map.get_mut(key) {
        seen.count = seen.count.saturating_sub(1);
        if seen.count == 0 {
            map.remove(key);
        }
    }
}

impl Profile {
    pub fn new(user_id: &str) -> Self {
        Profile {
            user_id: user_id.to_owned(),
            ..Profile::default()
        }
    }

    /// Adds a verified login; its keystroke sample, if any, is enrolled in a template with
    /// `keystroke` settings.
    pub fn learn(&mut self, facts: &AttemptFacts, keystroke: &TemplateConfig) {
        self.verified_logins += 1;
        if let Some(sample) = &facts.keystroke_sample {
            self.enrol_keystrokes(sample, keystroke);
        }
        if let Some(device) = &facts.device_hash {
            remember(&mut self.devices, device, facts.at);
        }
        if let Some(country) = &facts.country {
            remember(&mut self.countries, country, facts.at);
        }
        if let Some(city) = facts.city_key() {
            remember(&mut self.cities, &city, facts.at);
        }
        remember(&mut self.networks, &facts.network, facts.at);
        if let Some(hour) = facts.hour_local.filter(|hour| *hour < 24) {
            self.hours[hour as usize] += 1;
        }
        if let Some(keys) = &facts.freeman_keys {
            self.freeman.observe_keys(keys, facts.at);
        }
        let login = VerifiedLogin {
            at: facts.at,
            ip: facts.ip.clone(),
            latitude: facts.latitude,
            longitude: facts.longitude,
            accuracy_radius_km: facts.accuracy_radius_km,
            country: facts.country.clone(),
            city: facts.city.clone(),
        };
        let mut logins = self.verified_history();
        let position = logins.partition_point(|earlier| earlier.at <= login.at);
        logins.insert(position, login);
        self.set_verified_history(logins);
    }

    /// Returns the remembered verified logins, oldest first.
    fn verified_history(&mut self) -> Vec<VerifiedLogin> {
        let mut logins = std::mem::take(&mut self.earlier_verified);
        logins.extend(self.last_verified.take());
        logins
    }

    fn set_verified_history(&mut self, mut logins: Vec<VerifiedLogin>) {
        let excess = logins.len().saturating_sub(RECENT_VERIFIED_LOGINS);
        logins.drain(..excess);
        self.last_verified = logins.pop();
        self.earlier_verified = logins;
    }

    /// Records that a login was reported as not the user's, or confirmed compromised.
    pub fn report_compromise(&mut self, at: DateTime<Utc>) {
        let newer = self
            .compromise_reported_at
            .is_none_or(|previous| previous < at);
        if newer {
            self.compromise_reported_at = Some(at);
        }
    }

    fn enrol_keystrokes(&mut self, sample: &[f64], keystroke: &TemplateConfig) {
        let template = match self.keystroke_template.take() {
            Some(mut template) => {
                if template.config() != keystroke && template.set_config(*keystroke).is_err() {
                    template.clear();
                }
                template
            }
            None => match KeystrokeTemplate::new(*keystroke) {
                Ok(template) => template,
                Err(error) => {
                    tracing::warn!(%error, "keystroke settings are invalid; sample not enrolled");
                    return;
                }
            },
        };
        let mut template = template;
        match template.add_sample(TimingVector::new(sample.to_vec())) {
            Ok(()) => {}
            Err(TemplateError::Sample(NotEvaluable::LengthMismatch { .. })) => {
                // A different length means a new password: start a new template.
                template.clear();
                if let Err(error) = template.add_sample(TimingVector::new(sample.to_vec())) {
                    tracing::warn!(%error, "keystroke sample not enrolled");
                }
            }
            Err(error) => tracing::warn!(%error, "keystroke sample not enrolled"),
        }
        self.keystroke_template = Some(template);
    }

    /// Removes a login that was learned and later reported as not the user's. Counts drop by
    /// one, so a device or place that earlier verified logins used stays known.
    pub fn unlearn(&mut self, facts: &AttemptFacts) {
        self.verified_logins = self.verified_logins.saturating_sub(1);
        if let Some(device) = &facts.device_hash {
            forget(&mut self.devices, device);
        }
        forget(&mut self.networks, &facts.network);
        if let Some(country) = &facts.country {
            forget(&mut self.countries, country);
        }
        if let Some(city) = facts.city_key() {
            forget(&mut self.cities, &city);
        }
        if let Some(hour) = facts.hour_local.filter(|hour| *hour < 24) {
            let slot = &mut self.hours[hour as usize];
            *slot = slot.saturating_sub(1);
        }
        if let Some(keys) = &facts.freeman_keys {
            self.freeman.forget_keys(keys);
        }
        // The template cannot tell which sample came from this login, so a login reported as
        // not the user's discards the whole template and enrolment starts again.
        if facts.keystroke_sample.is_some() {
            self.keystroke_template = None;
        }
        let mut logins = self.verified_history();
        if let Some(position) = logins
            .iter()
            .position(|login| login.at == facts.at && login.ip == facts.ip)
        {
            logins.remove(position);
        }
        self.set_verified_history(logins);
    }
}

/// The decision kinds, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Allow,
    StepUp,
    Deny,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Allow => "allow",
            DecisionKind::StepUp => "step_up",
            DecisionKind::Deny => "deny",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "allow" => Some(DecisionKind::Allow),
            "step_up" => Some(DecisionKind::StepUp),
            "deny" => Some(DecisionKind::Deny),
            _ => None,
        }
    }
}

/// The state of a recorded decision that outcomes are applied to.
#[derive(Debug, Clone)]
pub struct DecisionState {
    pub decision: DecisionKind,
    pub outcomes: Vec<Outcome>,
    pub learned: bool,
}

/// Effect of one outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EventPlan {
    /// The outcome was already recorded for this decision; nothing changes.
    pub duplicate: bool,
    /// Count a failure for the user and the IP at the attempt's time.
    pub record_failure: bool,
    /// Teach the profile the attempt's facts.
    pub learn: bool,
    /// Remove the attempt's facts from the profile.
    pub unlearn: bool,
    /// Mark the profile as recently compromised.
    pub report_compromise: bool,
}

/// Decides what `outcome` does to a decision in `state`.
///
/// A login teaches the profile once it is verified: `login_succeeded` after an allow, or
/// `login_succeeded` together with `mfa_passed` (in either order) after a step-up. A success
/// reported after a deny teaches nothing, because the decision refused that login; an
/// analyst's `confirmed_safe` is the only way to learn from it. `reported_not_me` and
/// `confirmed_compromised` undo what the login taught and count as failures.
pub fn plan_event(state: &DecisionState, outcome: Outcome) -> EventPlan {
    if state.outcomes.contains(&outcome) {
        return EventPlan {
            duplicate: true,
            ..EventPlan::default()
        };
    }
    let has = |wanted: Outcome| state.outcomes.contains(&wanted) || outcome == wanted;
    let compromised = has(Outcome::ReportedNotMe) || has(Outcome::ConfirmedCompromised);
    match outcome {
        Outcome::LoginFailed | Outcome::MfaFailed => EventPlan {
            record_failure: true,
            ..EventPlan::default()
        },
        Outcome::ReportedNotMe | Outcome::ConfirmedCompromised => {
            let already_reported = state.outcomes.contains(&Outcome::ReportedNotMe)
                || state.outcomes.contains(&Outcome::ConfirmedCompromised);
            EventPlan {
                record_failure: !already_reported,
                unlearn: state.learned,
                report_compromise: !already_reported,
                ..EventPlan::default()
            }
        }
        Outcome::LoginSucceeded | Outcome::MfaPassed => {
            let verified = match state.decision {
                DecisionKind::Allow => has(Outcome::LoginSucceeded),
                DecisionKind::StepUp => has(Outcome::LoginSucceeded) && has(Outcome::MfaPassed),
                DecisionKind::Deny => false,
            };
            EventPlan {
                learn: verified && !state.learned && !compromised,
                ..EventPlan::default()
            }
        }
        Outcome::ConfirmedSafe => EventPlan {
            learn: !state.learned && !compromised,
            ..EventPlan::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(minute: u32, device: &str, country: &str, city: &str) -> AttemptFacts {
        AttemptFacts {
            at: DateTime::parse_from_rfc3339(&format!("2026-01-01T09:{minute:02}:00Z"))
                .unwrap()
                .with_timezone(&Utc),
            ip: "81.2.69.142".into(),
            network: "81.2.69.142".into(),
            device_hash: Some(device.into()),
            country: Some(country.into()),
            city: Some(city.into()),
            latitude: Some(51.5),
            longitude: Some(-0.09),
            accuracy_radius_km: Some(10.0),
            hour_local: Some(9),
            keystroke_sample: None,
            freeman_keys: None,
        }
    }

    impl Profile {
        fn learn_default(&mut self, facts: &AttemptFacts) {
            self.learn(facts, &TemplateConfig::default());
        }
    }

    fn state(decision: DecisionKind, outcomes: &[Outcome], learned: bool) -> DecisionState {
        DecisionState {
            decision,
            outcomes: outcomes.to_vec(),
            learned,
        }
    }

    #[test]
    fn learn_then_unlearn_restores_profile() {
        let mut profile = Profile::new("alice");
        profile.learn_default(&facts(0, "d1", "GB", "London"));
        let before = profile.clone();
        let second = facts(5, "d2", "SE", "Linköping");
        profile.learn_default(&second);
        assert_eq!(profile.verified_logins, 2);
        assert!(profile.devices.contains_key("d2"));
        assert_eq!(
            profile.last_verified.as_ref().unwrap().country.as_deref(),
            Some("SE")
        );
        profile.unlearn(&second);
        assert_eq!(profile.verified_logins, before.verified_logins);
        assert_eq!(profile.devices, before.devices);
        assert_eq!(profile.countries, before.countries);
        assert_eq!(profile.last_verified, before.last_verified);
    }

    #[test]
    fn unlearn_keeps_shared_device_and_network() {
        let mut profile = Profile::new("alice");
        for minute in 0..3 {
            profile.learn_default(&facts(minute, "d1", "GB", "London"));
        }
        let intruder = facts(10, "d1", "GB", "London");
        profile.learn_default(&intruder);
        profile.unlearn(&intruder);
        assert_eq!(profile.devices["d1"].count, 3);
        assert_eq!(profile.networks["81.2.69.142"].count, 3);
        assert_eq!(
            profile.last_verified.as_ref().unwrap().at,
            facts(2, "d1", "GB", "London").at
        );
    }

    #[test]
    fn compromise_report_is_planned_once() {
        let first = plan_event(
            &state(DecisionKind::Allow, &[], false),
            Outcome::ReportedNotMe,
        );
        assert!(first.report_compromise);
        let second = plan_event(
            &state(DecisionKind::Allow, &[Outcome::ReportedNotMe], false),
            Outcome::ConfirmedCompromised,
        );
        assert!(!second.report_compromise);
    }

    #[test]
    fn older_login_does_not_replace_last_verified() {
        let mut profile = Profile::new("alice");
        profile.learn_default(&facts(30, "d1", "GB", "London"));
        profile.learn_default(&facts(10, "d1", "SE", "Linköping"));
        assert_eq!(
            profile.last_verified.as_ref().unwrap().country.as_deref(),
            Some("GB")
        );
        assert_eq!(profile.earlier_verified.len(), 1);
    }

    #[test]
    fn history_maps_are_bounded() {
        let mut profile = Profile::new("alice");
        for index in 0..(MAX_HISTORY_ENTRIES + 10) {
            let mut f = facts(0, &format!("device-{index}"), "GB", "London");
            f.at += chrono::Duration::seconds(index as i64);
            profile.learn_default(&f);
        }
        assert_eq!(profile.devices.len(), MAX_HISTORY_ENTRIES);
        assert!(!profile.devices.contains_key("device-0"));
    }

    #[test]
    fn allow_learns_on_login_succeeded() {
        let plan = plan_event(
            &state(DecisionKind::Allow, &[], false),
            Outcome::LoginSucceeded,
        );
        assert!(plan.learn);
        assert!(!plan.record_failure);
    }

    #[test]
    fn step_up_needs_both_success_and_mfa() {
        let only_login = plan_event(
            &state(DecisionKind::StepUp, &[], false),
            Outcome::LoginSucceeded,
        );
        assert!(!only_login.learn);
        let then_mfa = plan_event(
            &state(DecisionKind::StepUp, &[Outcome::LoginSucceeded], false),
            Outcome::MfaPassed,
        );
        assert!(then_mfa.learn);
        let mfa_first = plan_event(
            &state(DecisionKind::StepUp, &[Outcome::MfaPassed], false),
            Outcome::LoginSucceeded,
        );
        assert!(mfa_first.learn);
    }

    #[test]
    fn deny_never_learns_from_success() {
        let plan = plan_event(
            &state(DecisionKind::Deny, &[Outcome::MfaPassed], false),
            Outcome::LoginSucceeded,
        );
        assert!(!plan.learn);
    }

    #[test]
    fn failures_count_and_do_not_learn() {
        for outcome in [Outcome::LoginFailed, Outcome::MfaFailed] {
            let plan = plan_event(&state(DecisionKind::StepUp, &[], false), outcome);
            assert!(plan.record_failure);
            assert!(!plan.learn);
        }
    }

    #[test]
    fn duplicate_outcome_is_a_no_op() {
        let plan = plan_event(
            &state(DecisionKind::Allow, &[Outcome::LoginSucceeded], true),
            Outcome::LoginSucceeded,
        );
        assert_eq!(
            plan,
            EventPlan {
                duplicate: true,
                ..EventPlan::default()
            }
        );
    }

    #[test]
    fn compromise_report_unlearns_and_blocks_learning() {
        let report = plan_event(
            &state(DecisionKind::Allow, &[Outcome::LoginSucceeded], true),
            Outcome::ReportedNotMe,
        );
        assert!(report.unlearn);
        assert!(report.record_failure);
        let late_success = plan_event(
            &state(
                DecisionKind::StepUp,
                &[Outcome::ReportedNotMe, Outcome::MfaPassed],
                false,
            ),
            Outcome::LoginSucceeded,
        );
        assert!(!late_success.learn);
    }

    #[test]
    fn confirmed_safe_learns_once() {
        assert!(
            plan_event(
                &state(DecisionKind::Deny, &[], false),
                Outcome::ConfirmedSafe
            )
            .learn
        );
        assert!(
            !plan_event(
                &state(DecisionKind::Allow, &[], true),
                Outcome::ConfirmedSafe
            )
            .learn
        );
    }
}
