//! A recorded decision explained for people, for `riskgate rules explain`.
//!
//! The text comes from the decision record alone (the rule trace, the
//! signals and the reasons with their log-odds), not from the rules in
//! force now, so it stays true after the rules change.

use std::fmt::Write;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

use super::{Decision, Level, RuleMode, RuleOutcome, RuleTrace, ShadowHit, SkipReason};
use crate::store::sqlite::{DATABASE_FILE, Durability, SqliteStore};
use crate::store::{Store, StoreError, StoredDecision};

#[derive(Debug, Error)]
pub enum ExplainError {
    #[error("no decision database at `{path}`: pass the service's data directory with --data-dir")]
    MissingDatabase { path: String },
    #[error("`{id}` is not a decision id (a UUID)")]
    InvalidId { id: String },
    #[error("no decision with id `{id}` in `{path}`")]
    NotFound { id: String, path: String },
    #[error("cannot read the decision store: {0}")]
    Store(#[from] StoreError),
    #[error("decision record `{id}` is unreadable: {source}")]
    Unreadable {
        id: String,
        source: serde_json::Error,
    },
}

/// Reads one recorded decision from the SQLite store in `data_dir`, which
/// must already exist.
pub fn read_decision(
    data_dir: &Path,
    id: &str,
    keystroke: riskgate_models::keystroke::TemplateConfig,
) -> Result<StoredDecision, ExplainError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ExplainError::InvalidId { id: id.to_owned() });
    }
    let database = data_dir.join(DATABASE_FILE);
    if !database.is_file() {
        return Err(ExplainError::MissingDatabase {
            path: database.display().to_string(),
        });
    }
    let store = SqliteStore::open(data_dir, Durability::Full, keystroke)?;
    store.decision(id)?.ok_or_else(|| ExplainError::NotFound {
        id: id.to_owned(),
        path: database.display().to_string(),
    })
}

/// The parts of a decision record that the explanation prints.
#[derive(Debug, Deserialize)]
struct Record {
    decision_id: String,
    attempt: Attempt,
    #[serde(default)]
    geo: serde_json::Value,
    signals: Vec<Signal>,
    model: Model,
    rules: Rules,
    #[serde(default)]
    degraded_by: Vec<String>,
    response: Response,
}

#[derive(Debug, Deserialize)]
struct Attempt {
    user_id: String,
    ip: String,
    timestamp: String,
    role: Option<String>,
    app: Option<String>,
    tenant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Signal {
    name: String,
    value: f64,
    evaluable: bool,
    detail: String,
}

#[derive(Debug, Deserialize)]
struct Model {
    version: String,
    logit: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Rules {
    version: String,
    decided_by: String,
    trace: Vec<RuleTrace>,
    #[serde(default)]
    shadow: Vec<ShadowHit>,
    #[serde(default)]
    adjustments: Vec<(String, f64)>,
}

#[derive(Debug, Deserialize)]
struct Response {
    decision: Decision,
    risk: f64,
    level: Level,
    required_factors: Vec<String>,
    reasons: Vec<Reason>,
    learning: bool,
}

#[derive(Debug, Deserialize)]
struct Reason {
    signal: String,
    contribution: f64,
}

/// Renders a recorded decision: the outcome, each rule evaluated with its
/// outcome and whether it decided, and each signal with its value and
/// log-odds contribution.
pub fn render(stored: &StoredDecision) -> Result<String, ExplainError> {
    let record =
        Record::deserialize(&stored.record).map_err(|source| ExplainError::Unreadable {
            id: stored.id.clone(),
            source,
        })?;
    let mut out = String::new();
    // `fmt::Write` for `String` never returns an error.
    let _ = write_summary(&mut out, &record);
    let _ = write_rules(&mut out, &record.rules);
    let _ = write_signals(&mut out, &record);
    let _ = write_outcomes(&mut out, stored);
    Ok(out)
}

fn write_summary(out: &mut String, record: &Record) -> std::fmt::Result {
    let response = &record.response;
    writeln!(
        out,
        "decision {}: {}, risk {:.3} ({}), decided by {}",
        record.decision_id,
        decision_name(response.decision),
        response.risk,
        response.level.as_str(),
        record.rules.decided_by
    )?;
    if !response.required_factors.is_empty() {
        writeln!(
            out,
            "factors: {} (each is one way to pass)",
            response.required_factors.join(", ")
        )?;
    }

    let attempt = &record.attempt;
    let place = [
        record.geo.pointer("/city/country"),
        record.geo.pointer("/city/city"),
    ]
    .into_iter()
    .flatten()
    .filter_map(serde_json::Value::as_str)
    .collect::<Vec<_>>()
    .join(", ");
    let place = if place.is_empty() {
        "no geo record".to_owned()
    } else {
        place
    };
    write!(
        out,
        "attempt: user {} at {} from {} ({place})",
        attempt.user_id, attempt.timestamp, attempt.ip
    )?;
    for (label, value) in [
        ("role", &attempt.role),
        ("app", &attempt.app),
        ("tenant", &attempt.tenant),
    ] {
        if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
            write!(out, ", {label} {value}")?;
        }
    }
    writeln!(out)?;
    let logit = record
        .model
        .logit
        .map_or_else(|| "not recorded".to_owned(), |logit| format!("{logit:.3}"));
    writeln!(
        out,
        "rules {}, model {} (log-odds {logit})",
        record.rules.version, record.model.version
    )?;
    if !record.degraded_by.is_empty() {
        writeln!(
            out,
            "degraded: could not evaluate {}",
            record.degraded_by.join(", ")
        )?;
    }
    if response.learning {
        writeln!(out, "learning: the user has too little verified history")?;
    }
    Ok(())
}

fn write_rules(out: &mut String, rules: &Rules) -> std::fmt::Result {
    writeln!(out)?;
    if rules.trace.is_empty() {
        return writeln!(out, "rules: none evaluated");
    }
    writeln!(out, "rules, in evaluation order:")?;
    let width = rules
        .trace
        .iter()
        .map(|trace| trace.id.len())
        .max()
        .unwrap_or(0);
    for trace in &rules.trace {
        let mode = match trace.mode {
            RuleMode::Enforce => "enforce",
            RuleMode::Shadow => "shadow ",
        };
        let mut outcome = match &trace.outcome {
            RuleOutcome::Matched => "matched".to_owned(),
            RuleOutcome::NotMatched => "not matched".to_owned(),
            RuleOutcome::Errored(message) => format!("errored: {message}"),
            RuleOutcome::Skipped(reason) => format!("skipped: {}", skip_text(*reason)),
        };
        if trace.decided {
            outcome.push_str(", decided");
        }
        if trace.mode == RuleMode::Shadow && trace.outcome == RuleOutcome::Matched {
            let action = rules
                .shadow
                .iter()
                .find(|hit| hit.id == trace.id)
                .map(|hit| serde_json::to_value(hit.action).unwrap_or_default());
            if let Some(serde_json::Value::String(action)) = action {
                outcome.push_str(&format!(" (would {action}; recorded only)"));
            }
        }
        if let Some((_, delta)) = rules.adjustments.iter().find(|(id, _)| *id == trace.id) {
            outcome.push_str(&format!(" (adjusted the log-odds by {delta:+.2})"));
        }
        writeln!(out, "  {:width$}  {mode}  {outcome}", trace.id)?;
    }
    Ok(())
}

fn write_signals(out: &mut String, record: &Record) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "signals (value, then the log-odds added to the risk):")?;
    let width = record
        .signals
        .iter()
        .map(|signal| signal.name.len())
        .max()
        .unwrap_or(0);
    for signal in &record.signals {
        // Reasons leave out only signals that were evaluable with value 0
        // and no contribution, so a signal absent from them added 0.
        let contribution = record
            .response
            .reasons
            .iter()
            .find(|reason| reason.signal == signal.name)
            .map_or(0.0, |reason| reason.contribution);
        if signal.evaluable {
            writeln!(
                out,
                "  {:width$}  {:.2}  {contribution:+.2}  {}",
                signal.name, signal.value, signal.detail
            )?;
        } else {
            writeln!(
                out,
                "  {:width$}  n/a   {contribution:+.2}  not evaluable: {}",
                signal.name, signal.detail
            )?;
        }
    }
    Ok(())
}

fn write_outcomes(out: &mut String, stored: &StoredDecision) -> std::fmt::Result {
    writeln!(out)?;
    if stored.outcomes.is_empty() {
        return writeln!(out, "outcomes: none reported");
    }
    let outcomes: Vec<String> = stored
        .outcomes
        .iter()
        .map(|outcome| {
            format!(
                "{} at {}",
                outcome.outcome.as_str(),
                outcome.received_at.to_rfc3339()
            )
        })
        .collect();
    writeln!(out, "outcomes: {}", outcomes.join(", "))?;
    writeln!(
        out,
        "learned: {}",
        if stored.learned { "yes" } else { "no" }
    )
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Allow => "allow",
        Decision::StepUp => "step_up",
        Decision::Deny => "deny",
    }
}

fn skip_text(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::RoleFilter => "the role is not in the rule's `roles`",
        SkipReason::AppFilter => "the app is not in the rule's `apps`",
        SkipReason::TenantFilter => "the tenant is not in the rule's `tenants`",
        SkipReason::AlreadyDecided => "a deny list or a rule of higher priority decided first",
        SkipReason::InvalidRisk => "the model risk was not a number in [0, 1]",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(record: serde_json::Value) -> StoredDecision {
        StoredDecision {
            id: "7d0f0c1e-0000-4000-8000-000000000000".into(),
            user_id: "alice".into(),
            record,
            outcomes: Vec::new(),
            learned: false,
        }
    }

    fn record() -> serde_json::Value {
        serde_json::json!({
            "decision_id": "7d0f0c1e-0000-4000-8000-000000000000",
            "attempt": {"user_id": "alice", "ip": "81.2.69.142",
                "timestamp": "2026-03-02T09:00:00+00:00", "role": "admin", "app": "",
                "tenant": null},
            "geo": {"city": {"country": "GB", "city": "London"}},
            "signals": [
                {"name": "new_device", "value": 1.0, "evaluable": true,
                    "detail": "device never seen in a verified login"},
                {"name": "unusual_hour", "value": 0.0, "evaluable": false,
                    "detail": "too few logins"},
                {"name": "hosting_network", "value": 0.0, "evaluable": true,
                    "detail": "not a hosting network"},
            ],
            "model": {"version": "weights@sha256:0123", "logit": -2.5},
            "rules": {
                "version": "sha256:abcd",
                "decided_by": "rule:admin-new-device",
                "trace": [
                    {"id": "lower-risk", "mode": "enforce", "outcome": "errored",
                        "detail": "no such key: seen_count", "decided": false},
                    {"id": "admin-new-device", "mode": "enforce", "outcome": "matched",
                        "decided": true},
                    {"id": "repeated-failures", "mode": "enforce", "outcome": "skipped",
                        "detail": "already_decided", "decided": false},
                    {"id": "trial-deny", "mode": "shadow", "outcome": "matched",
                        "decided": false},
                ],
                "shadow": [{"id": "trial-deny", "action": "deny"}],
                "adjustments": [],
            },
            "degraded_by": [],
            "response": {"decision": "step_up", "risk": 0.076, "level": "low",
                "required_factors": ["hardware_key"], "learning": false,
                "reasons": [{"signal": "new_device", "contribution": 1.5},
                    {"signal": "unusual_hour", "contribution": 0.0}]},
        })
    }

    #[test]
    fn render_lists_rules_and_signals() {
        let text = render(&stored(record())).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "decision 7d0f0c1e-0000-4000-8000-000000000000: step_up, risk 0.076 (low), decided by rule:admin-new-device"
        );
        assert!(
            lines.contains(&"  lower-risk         enforce  errored: no such key: seen_count"),
            "{text}"
        );
        assert!(
            lines.contains(&"  admin-new-device   enforce  matched, decided"),
            "{text}"
        );
        assert!(
            lines.contains(&"  repeated-failures  enforce  skipped: a deny list or a rule of higher priority decided first"),
            "{text}"
        );
        assert!(
            lines.contains(&"  trial-deny         shadow   matched (would deny; recorded only)"),
            "{text}"
        );
        assert!(
            lines
                .contains(&"  new_device       1.00  +1.50  device never seen in a verified login"),
            "{text}"
        );
        assert!(
            lines.contains(&"  unusual_hour     n/a   +0.00  not evaluable: too few logins"),
            "{text}"
        );
        assert!(text.contains("(GB, London), role admin\n"), "{text}");
    }

    #[test]
    fn record_without_trace_is_unreadable() {
        let mut record = record();
        record["rules"]
            .as_object_mut()
            .unwrap()
            .remove("trace")
            .unwrap();
        let error = render(&stored(record)).unwrap_err();
        assert!(
            error.to_string().contains("missing field `trace`"),
            "{error}"
        );
    }

    #[test]
    fn missing_database_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_decision(
            dir.path(),
            "7d0f0c1e-0000-4000-8000-000000000000",
            Default::default(),
        )
        .unwrap_err();
        assert!(
            matches!(error, ExplainError::MissingDatabase { .. }),
            "{error}"
        );
        assert!(!dir.path().join(DATABASE_FILE).exists());
    }
}
