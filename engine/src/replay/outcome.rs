//! Decisions returned by `POST /v1/score` and the outcomes the replay reports back.
//!
//! The replay acts as the CRM. The row's labels state whether the password was right and
//! whether the attempt was an attack, so the replay can report what would have happened
//! after each decision.
//!
//! | row                        | allow             | step_up                        | deny          |
//! | -------------------------- | ----------------- | ------------------------------ | ------------- |
//! | login failed (any label)   | `login_failed`    | `login_failed`                 | `login_failed`|
//! | login succeeded, legitimate| `login_succeeded` | `mfa_passed`, `login_succeeded`| nothing       |
//! | login succeeded, attack    | `login_succeeded` | `mfa_failed`                   | nothing       |
//!
//! An attacker is assumed to hold the password but not the second factor. An allowed
//! attack is reported as a success, as the CRM would, so the profile learns from it.

use std::fmt;

use serde::Serialize;

/// Decision of the scoring service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    StepUp,
    Deny,
}

impl Decision {
    /// Parses the `decision` field of a score response.
    pub fn parse(value: &str) -> Option<Decision> {
        match value {
            "allow" => Some(Decision::Allow),
            "step_up" => Some(Decision::StepUp),
            "deny" => Some(Decision::Deny),
            _ => None,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::StepUp => "step_up",
            Decision::Deny => "deny",
        })
    }
}

/// Outcome sent to `POST /v1/events`; only the ones the replay can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    LoginSucceeded,
    LoginFailed,
    MfaPassed,
    MfaFailed,
}

impl Outcome {
    /// Returns the wire name, such as `mfa_passed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::LoginSucceeded => "login_succeeded",
            Outcome::LoginFailed => "login_failed",
            Outcome::MfaPassed => "mfa_passed",
            Outcome::MfaFailed => "mfa_failed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lists the events to post, in order, after `decision` on a row with these labels.
pub fn outcomes_for(
    decision: Decision,
    login_successful: bool,
    is_attack: bool,
) -> &'static [Outcome] {
    if !login_successful {
        return &[Outcome::LoginFailed];
    }
    match (decision, is_attack) {
        (Decision::Allow, _) => &[Outcome::LoginSucceeded],
        (Decision::StepUp, false) => &[Outcome::MfaPassed, Outcome::LoginSucceeded],
        (Decision::StepUp, true) => &[Outcome::MfaFailed],
        (Decision::Deny, _) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_login_reports_login_failed() {
        for decision in [Decision::Allow, Decision::StepUp, Decision::Deny] {
            for is_attack in [false, true] {
                assert_eq!(
                    outcomes_for(decision, false, is_attack),
                    &[Outcome::LoginFailed],
                    "decision {decision}, is_attack {is_attack}"
                );
            }
        }
    }

    #[test]
    fn legitimate_step_up_passes_mfa() {
        assert_eq!(
            outcomes_for(Decision::StepUp, true, false),
            &[Outcome::MfaPassed, Outcome::LoginSucceeded]
        );
    }

    #[test]
    fn attacker_step_up_fails_mfa() {
        assert_eq!(
            outcomes_for(Decision::StepUp, true, true),
            &[Outcome::MfaFailed]
        );
    }

    #[test]
    fn allow_reports_success_for_everyone() {
        assert_eq!(
            outcomes_for(Decision::Allow, true, false),
            &[Outcome::LoginSucceeded]
        );
        assert_eq!(
            outcomes_for(Decision::Allow, true, true),
            &[Outcome::LoginSucceeded]
        );
    }

    #[test]
    fn deny_of_correct_password_posts_nothing() {
        assert!(outcomes_for(Decision::Deny, true, false).is_empty());
        assert!(outcomes_for(Decision::Deny, true, true).is_empty());
    }

    #[test]
    fn decision_parse_wire_names() {
        assert_eq!(Decision::parse("allow"), Some(Decision::Allow));
        assert_eq!(Decision::parse("step_up"), Some(Decision::StepUp));
        assert_eq!(Decision::parse("deny"), Some(Decision::Deny));
        assert_eq!(Decision::parse("Allow"), None);
        assert_eq!(Decision::parse(""), None);
    }

    #[test]
    fn outcome_wire_names() {
        assert_eq!(Outcome::LoginSucceeded.as_str(), "login_succeeded");
        assert_eq!(Outcome::LoginFailed.as_str(), "login_failed");
        assert_eq!(Outcome::MfaPassed.as_str(), "mfa_passed");
        assert_eq!(Outcome::MfaFailed.as_str(), "mfa_failed");
    }
}
