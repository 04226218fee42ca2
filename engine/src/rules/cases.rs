//! Rule tests kept as data, run by `riskgate rules test RULES --cases FILE`.
//!
//! A case file is TOML: each `[[case]]` has the logins that build the
//! user's history, the attempt under test and the expected outcome. Every
//! case runs through a real [`Engine`] on a fresh SQLite store in a
//! temporary directory, so the same signal, model and rules code decides as
//! in the service. History logins are scored and then reported, as verified
//! logins by default, in the order written and at the timestamps given.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Deserializer};
use thiserror::Error;
use toml::Spanned;

use super::diagnostic::{closest, quote_list};
use super::source::SourceFile;
use super::{Decision, Level, RuleOutcome, RuleSet, RuleTrace};
use crate::config::Config;
use crate::engine::{Engine, StartError};
use crate::geo::GeoIp;
use crate::iplists::IpLists;
use crate::request::Outcome;
use crate::store::sqlite::{Durability, SqliteStore};

/// Maximum size of a case file.
pub const MAX_CASES_FILE_BYTES: u64 = 1024 * 1024;

/// Maximum logins one `[[case.history]]` entry expands to with `repeat`.
pub const MAX_REPEAT: u32 = 1000;

/// Failures that stop a case file from running at all. A case that fails
/// or cannot be set up is reported in its [`CaseResult`] instead.
#[derive(Debug, Error)]
pub enum CasesError {
    #[error("cannot read the case file `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("case file `{path}` is {size} bytes; the maximum is {max}")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
    #[error("{location}: unknown rule `{id}` in the expected rules{hint}")]
    UnknownRule {
        location: String,
        id: String,
        hint: String,
    },
    #[error("case file `{path}` contains no `[[case]]` tables")]
    NoCases { path: String },
    #[error("rules `{path}` are invalid:\n{report}")]
    Rules { path: String, report: String },
    #[error("cannot start the engine: {0}")]
    Start(#[from] StartError),
    #[error("cannot create a temporary data directory: {0}")]
    TempDir(std::io::Error),
}

/// A parsed case file.
#[derive(Debug)]
pub struct CaseFile {
    pub path: PathBuf,
    pub cases: Vec<LocatedCase>,
    /// The text, for positions of later errors.
    source: SourceFile,
}

/// A case and the line of its `[[case]]` table.
#[derive(Debug)]
pub struct LocatedCase {
    pub case: Case,
    pub line: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaseFile {
    #[serde(rename = "case", default)]
    cases: Vec<Spanned<Case>>,
}

/// One rule test: history, attempt and expected outcome. `user`, `role`,
/// `app`, `tenant` and `user_agent` apply to every login of the case unless
/// a login sets its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub user: Option<String>,
    pub role: Option<String>,
    pub app: Option<String>,
    pub tenant: Option<String>,
    pub user_agent: Option<String>,
    /// Logins replayed before the attempt, in order.
    #[serde(default)]
    pub history: Vec<HistoryLogin>,
    pub attempt: Login,
    pub expect: Expectation,
}

/// The attempt under test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[serde(deserialize_with = "timestamp")]
    pub at: DateTime<Utc>,
    pub ip: String,
    /// Device id, sent as `device.id`.
    pub device: Option<String>,
    pub user: Option<String>,
    pub role: Option<String>,
    pub app: Option<String>,
    pub tenant: Option<String>,
    pub user_agent: Option<String>,
}

/// A login of the history, scored and then reported.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryLogin {
    #[serde(deserialize_with = "timestamp")]
    pub at: DateTime<Utc>,
    pub ip: String,
    pub device: Option<String>,
    pub user: Option<String>,
    pub role: Option<String>,
    pub app: Option<String>,
    pub tenant: Option<String>,
    pub user_agent: Option<String>,
    /// Outcomes reported after the login, in order. When absent the login
    /// is verified: `mfa_passed` if it stepped up, then `login_succeeded`.
    pub outcomes: Option<Vec<Outcome>>,
    /// Replays this login this many times, `every_minutes` apart.
    #[serde(default = "one")]
    pub repeat: u32,
    #[serde(default = "sixty")]
    pub every_minutes: u32,
}

/// The expected outcome of the attempt. `rules`, `shadow_rules` and
/// `errored_rules` list every rule expected there, so an empty or absent
/// list expects none. `factors`, `level` and `decided_by` are only checked
/// when given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub decision: Decision,
    pub level: Option<Level>,
    pub factors: Option<Vec<String>>,
    pub decided_by: Option<String>,
    /// Enforce rules that matched, adjust rules included.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    #[serde(default)]
    pub shadow_rules: Vec<Spanned<String>>,
    /// Rules whose condition failed to evaluate.
    #[serde(default)]
    pub errored_rules: Vec<Spanned<String>>,
}

fn one() -> u32 {
    1
}

fn sixty() -> u32 {
    60
}

/// Reads a TOML datetime or an RFC 3339 string, each with an offset.
fn timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = match toml::Value::deserialize(deserializer)? {
        toml::Value::String(text) => text,
        toml::Value::Datetime(datetime) => datetime.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a timestamp such as 2026-03-02T09:00:00Z, found a {}",
                other.type_str()
            )));
        }
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|parsed| parsed.with_timezone(&Utc))
        .map_err(|error| {
            serde::de::Error::custom(format!(
                "invalid timestamp `{text}`: {error}; write it in RFC 3339 with an offset, such as 2026-03-02T09:00:00Z"
            ))
        })
}

impl CaseFile {
    /// Reads and parses a case file. Unknown keys are errors that name the
    /// key with `file:line:column`.
    pub fn load(path: &Path) -> Result<CaseFile, CasesError> {
        let read_error = |source| CasesError::Read {
            path: path.display().to_string(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_CASES_FILE_BYTES {
            return Err(CasesError::TooLarge {
                path: path.display().to_string(),
                size,
                max: MAX_CASES_FILE_BYTES,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let source = SourceFile::new(0, path.to_path_buf(), text);
        let raw: RawCaseFile = toml::from_str(&source.text).map_err(|error| {
            let location = location(&source, error.span());
            CasesError::Invalid {
                location,
                message: error.message().trim_end().to_owned(),
            }
        })?;
        if raw.cases.is_empty() {
            return Err(CasesError::NoCases {
                path: path.display().to_string(),
            });
        }

        let mut cases = Vec::with_capacity(raw.cases.len());
        for spanned in raw.cases {
            let (line, _) = source.line_column(spanned.span().start);
            let case = spanned.into_inner();
            for entry in &case.history {
                if entry.repeat == 0 || entry.repeat > MAX_REPEAT || entry.every_minutes == 0 {
                    return Err(CasesError::Invalid {
                        location: format!("{}:{line}", path.display()),
                        message: format!(
                            "case `{}`: `repeat` must be from 1 to {MAX_REPEAT} and `every_minutes` at least 1",
                            case.name
                        ),
                    });
                }
            }
            cases.push(LocatedCase { case, line });
        }
        Ok(CaseFile {
            path: path.to_path_buf(),
            cases,
            source,
        })
    }

    /// Checks that every rule id the cases expect exists in `rules`, so
    /// that a typo is reported as such rather than as a failing case.
    pub fn check_rule_ids(&self, rules: &RuleSet) -> Result<(), CasesError> {
        let known: BTreeSet<String> = rules.rules().into_iter().map(|rule| rule.id).collect();
        for located in &self.cases {
            let expect = &located.case.expect;
            let expected = expect
                .rules
                .iter()
                .chain(&expect.shadow_rules)
                .chain(&expect.errored_rules);
            for id in expected {
                if known.contains(id.get_ref()) {
                    continue;
                }
                let hint = match closest(id.get_ref(), known.iter().map(String::as_str)) {
                    Some(near) => format!("; did you mean `{near}`?"),
                    None => format!(
                        "; the rules are {}",
                        quote_list(known.iter().map(String::as_str))
                    ),
                };
                return Err(CasesError::UnknownRule {
                    location: location(&self.source, Some(id.span())),
                    id: id.get_ref().clone(),
                    hint,
                });
            }
        }
        Ok(())
    }
}

fn location(source: &SourceFile, span: Option<Range<usize>>) -> String {
    match span {
        Some(span) => {
            let (line, column) = source.line_column(span.start);
            format!("{}:{line}:{column}", source.path.display())
        }
        None => source.path.display().to_string(),
    }
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    /// `file:line` of the case's `[[case]]` table.
    pub location: String,
    pub verdict: Verdict,
}

#[derive(Debug)]
pub enum Verdict {
    Passed,
    /// What differs from the expectation, one entry per checked field, and
    /// the risk and reasons of the decision, to help find the cause.
    Failed {
        mismatches: Vec<Mismatch>,
        explanation: String,
    },
    /// The case could not be run, e.g. a history login was denied.
    Error(String),
}

/// One expected field and what the engine returned instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub field: &'static str,
    pub expected: String,
    pub actual: String,
}

/// The results of a case file, printed one line per case and a summary.
#[derive(Debug)]
pub struct Report {
    pub rules_version: String,
    pub results: Vec<CaseResult>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|result| matches!(result.verdict, Verdict::Passed))
            .count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for result in &self.results {
            match &result.verdict {
                Verdict::Passed => writeln!(f, "ok    {}", result.name)?,
                Verdict::Failed {
                    mismatches,
                    explanation,
                } => {
                    writeln!(f, "FAIL  {} ({})", result.name, result.location)?;
                    for mismatch in mismatches {
                        writeln!(
                            f,
                            "        {}: expected {}, got {}",
                            mismatch.field, mismatch.expected, mismatch.actual
                        )?;
                    }
                    writeln!(f, "        {explanation}")?;
                }
                Verdict::Error(message) => {
                    writeln!(f, "ERROR {} ({})", result.name, result.location)?;
                    writeln!(f, "        {message}")?;
                }
            }
        }
        writeln!(
            f,
            "{} cases against rules {}: {} passed, {} failed",
            self.results.len(),
            self.rules_version,
            self.passed(),
            self.failed()
        )
    }
}

/// Runs cases against one rules file or folder with the geo-IP databases,
/// IP lists and signal settings of a service configuration.
pub struct CaseRunner {
    config: Config,
    lists: IpLists,
    rules: RuleSet,
}

impl CaseRunner {
    /// Checks the rules and loads the IP lists once; each case then gets
    /// its own engine and store, which load the rules again.
    pub fn new(config: &Config, rules_path: &Path) -> Result<CaseRunner, CasesError> {
        let rules = RuleSet::load(rules_path).map_err(|diagnostics| CasesError::Rules {
            path: rules_path.display().to_string(),
            report: diagnostics.to_string(),
        })?;
        let mut config = config.clone();
        config.rules = std::path::absolute(rules_path).map_err(|source| CasesError::Read {
            path: rules_path.display().to_string(),
            source,
        })?;
        // Each case's store is thrown away, so durability only costs time.
        config.store.durability = Durability::Normal;
        let lists = IpLists::open(&config.iplists, &config.base_dir).map_err(StartError::from)?;
        Ok(CaseRunner {
            config,
            lists,
            rules,
        })
    }

    /// Runs every case of a file, each on a fresh store.
    pub fn run_file(&self, file: &CaseFile) -> Result<Report, CasesError> {
        file.check_rule_ids(&self.rules)?;
        let mut results = Vec::with_capacity(file.cases.len());
        for located in &file.cases {
            let verdict = self.run_case(&located.case)?;
            results.push(CaseResult {
                name: located.case.name.clone(),
                location: format!("{}:{}", file.path.display(), located.line),
                verdict,
            });
        }
        Ok(Report {
            rules_version: self.rules.version().to_owned(),
            results,
        })
    }

    /// Runs one case. Errors that concern the case itself, such as a
    /// rejected request, become [`Verdict::Error`].
    pub fn run_case(&self, case: &Case) -> Result<Verdict, CasesError> {
        let data_dir = tempfile::tempdir().map_err(CasesError::TempDir)?;
        let engine = self.engine(data_dir.path())?;
        for (index, entry) in case.history.iter().enumerate() {
            if let Err(message) = replay_history(&engine, case, entry) {
                return Ok(Verdict::Error(format!(
                    "history login {} at {}: {message}",
                    index + 1,
                    entry.at.to_rfc3339()
                )));
            }
        }

        let attempt = &case.attempt;
        let fields = LoginFields {
            at: attempt.at,
            ip: &attempt.ip,
            device: attempt.device.as_deref(),
            user: attempt.user.as_deref(),
            role: attempt.role.as_deref(),
            app: attempt.app.as_deref(),
            tenant: attempt.tenant.as_deref(),
            user_agent: attempt.user_agent.as_deref(),
        };
        let response = match engine.score_value(&fields.request(case)) {
            Ok(response) => response,
            Err(error) => return Ok(Verdict::Error(format!("the attempt was rejected: {error}"))),
        };
        let id = response["decision_id"].as_str().unwrap_or_default();
        let record = match engine.decision(id) {
            Ok(stored) => stored.record,
            Err(error) => {
                return Ok(Verdict::Error(format!(
                    "cannot read the decision record: {error}"
                )));
            }
        };
        let actual = match Actual::from_record(&record) {
            Ok(actual) => actual,
            Err(message) => return Ok(Verdict::Error(message)),
        };
        let mismatches = compare(&case.expect, &actual);
        Ok(if mismatches.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed {
                mismatches,
                explanation: actual.explanation(),
            }
        })
    }

    fn engine(&self, data_dir: &Path) -> Result<Engine, CasesError> {
        let mut config = self.config.clone();
        config.data_dir = data_dir.to_path_buf();
        let geo = GeoIp::open(&config.geo, &config.base_dir).map_err(StartError::from)?;
        let store = SqliteStore::open(data_dir, config.store.durability, config.keystroke)
            .map_err(StartError::from)?;
        Ok(Engine::with_store(
            &config,
            geo,
            self.lists.clone(),
            Arc::new(store),
        )?)
    }
}

/// The fields of one login, with the case's values as defaults.
struct LoginFields<'a> {
    at: DateTime<Utc>,
    ip: &'a str,
    device: Option<&'a str>,
    user: Option<&'a str>,
    role: Option<&'a str>,
    app: Option<&'a str>,
    tenant: Option<&'a str>,
    user_agent: Option<&'a str>,
}

impl LoginFields<'_> {
    /// Builds the `POST /v1/score` body.
    fn request(&self, case: &Case) -> serde_json::Value {
        let user = self
            .user
            .or(case.user.as_deref())
            .unwrap_or("user@example.org");
        let mut body = serde_json::json!({
            "user_id": user,
            "ip": self.ip,
            "timestamp": self.at.to_rfc3339(),
        });
        let optional = [
            ("role", self.role.or(case.role.as_deref())),
            ("app", self.app.or(case.app.as_deref())),
            ("tenant", self.tenant.or(case.tenant.as_deref())),
            ("user_agent", self.user_agent.or(case.user_agent.as_deref())),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                body[key] = serde_json::Value::from(value);
            }
        }
        if let Some(device) = self.device {
            body["device"] = serde_json::json!({ "id": device });
        }
        body
    }
}

/// Scores one history entry, `repeat` times, and reports its outcomes.
fn replay_history(engine: &Engine, case: &Case, entry: &HistoryLogin) -> Result<(), String> {
    for step in 0..entry.repeat {
        let at = entry.at + Duration::minutes(i64::from(step) * i64::from(entry.every_minutes));
        let fields = LoginFields {
            at,
            ip: &entry.ip,
            device: entry.device.as_deref(),
            user: entry.user.as_deref(),
            role: entry.role.as_deref(),
            app: entry.app.as_deref(),
            tenant: entry.tenant.as_deref(),
            user_agent: entry.user_agent.as_deref(),
        };
        let response = engine
            .score_value(&fields.request(case))
            .map_err(|error| format!("the login was rejected: {error}"))?;
        let decision = response["decision"].as_str().unwrap_or_default();
        let outcomes = match &entry.outcomes {
            Some(outcomes) => outcomes.clone(),
            None if decision == "deny" => {
                return Err(
                    "the login was denied, so it cannot be verified; give its `outcomes` or change it"
                        .to_owned(),
                );
            }
            None if decision == "step_up" => vec![Outcome::MfaPassed, Outcome::LoginSucceeded],
            None => vec![Outcome::LoginSucceeded],
        };
        for outcome in outcomes {
            let event = serde_json::json!({
                "decision_id": response["decision_id"],
                "outcome": outcome.as_str(),
                "timestamp": at.to_rfc3339(),
            });
            let applied = engine
                .event_value(&event)
                .map_err(|error| format!("outcome `{}` was rejected: {error}", outcome.as_str()))?;
            if entry.outcomes.is_none()
                && outcome == Outcome::LoginSucceeded
                && applied["profile_updated"] != true
            {
                return Err(format!(
                    "the login ({decision}) was not learned as a verified login"
                ));
            }
        }
    }
    Ok(())
}

/// What the engine decided, read from the decision record.
struct Actual {
    decision: Decision,
    risk: f64,
    level: Level,
    factors: Vec<String>,
    decided_by: String,
    rules: Vec<String>,
    shadow_rules: Vec<String>,
    errored_rules: Vec<String>,
    /// Reasons with their log-odds contribution, largest first.
    reasons: Vec<(String, f64)>,
}

impl Actual {
    fn from_record(record: &serde_json::Value) -> Result<Actual, String> {
        #[derive(Deserialize)]
        struct Reason {
            signal: String,
            contribution: f64,
            evaluable: bool,
        }
        #[derive(Deserialize)]
        struct Response {
            decision: Decision,
            risk: f64,
            level: Level,
            reasons: Vec<Reason>,
            required_factors: Vec<String>,
            matched_rules: Vec<String>,
            shadow_rules: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Rules {
            decided_by: String,
            trace: Vec<RuleTrace>,
        }
        let unreadable = |error: serde_json::Error| format!("unreadable decision record: {error}");
        let response = Response::deserialize(&record["response"]).map_err(unreadable)?;
        let rules = Rules::deserialize(&record["rules"]).map_err(unreadable)?;
        Ok(Actual {
            decision: response.decision,
            risk: response.risk,
            level: response.level,
            reasons: response
                .reasons
                .into_iter()
                .filter(|reason| reason.evaluable && reason.contribution != 0.0)
                .map(|reason| (reason.signal, reason.contribution))
                .collect(),
            factors: response.required_factors,
            decided_by: rules.decided_by,
            rules: response.matched_rules,
            shadow_rules: response.shadow_rules,
            errored_rules: rules
                .trace
                .into_iter()
                .filter(|trace| matches!(trace.outcome, RuleOutcome::Errored(_)))
                .map(|trace| trace.id)
                .collect(),
        })
    }
}

impl Actual {
    /// Describes the decision in one line: risk, who decided, and the
    /// reasons that moved the risk.
    fn explanation(&self) -> String {
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|(signal, contribution)| format!("{signal} {contribution:+.2}"))
            .collect();
        let reasons = if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(", ")
        };
        format!(
            "risk {:.3} ({}), decided by `{}`; reasons in log-odds: {reasons}",
            self.risk,
            self.level.as_str(),
            self.decided_by
        )
    }
}

fn compare(expect: &Expectation, actual: &Actual) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    let mut check = |field: &'static str, expected: String, actual: String| {
        if expected != actual {
            mismatches.push(Mismatch {
                field,
                expected,
                actual,
            });
        }
    };
    check(
        "decision",
        decision_name(expect.decision).to_owned(),
        decision_name(actual.decision).to_owned(),
    );
    if let Some(level) = expect.level {
        check(
            "level",
            level.as_str().to_owned(),
            actual.level.as_str().to_owned(),
        );
    }
    if let Some(factors) = &expect.factors {
        check("factors", list(factors), list(&actual.factors));
    }
    if let Some(decided_by) = &expect.decided_by {
        check(
            "decided_by",
            format!("`{decided_by}`"),
            format!("`{}`", actual.decided_by),
        );
    }
    for (field, expected, actual) in [
        ("rules", &expect.rules, &actual.rules),
        ("shadow_rules", &expect.shadow_rules, &actual.shadow_rules),
        (
            "errored_rules",
            &expect.errored_rules,
            &actual.errored_rules,
        ),
    ] {
        let expected: Vec<String> = expected.iter().map(|id| id.get_ref().clone()).collect();
        check(field, sorted_list(&expected), sorted_list(actual));
    }
    mismatches
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Allow => "allow",
        Decision::StepUp => "step_up",
        Decision::Deny => "deny",
    }
}

/// Formats a list in its order, since the order of factors is the order
/// the CRM offers them.
fn list(items: &[String]) -> String {
    format!("[{}]", quote_list(items.iter().map(String::as_str)))
}

/// Formats a list sorted, for rule lists whose order is not checked.
fn sorted_list(items: &[String]) -> String {
    let mut sorted: Vec<&str> = items.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    format!("[{}]", quote_list(sorted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const MINIMAL: &str = r#"
[[case]]
name = "minimal"
[case.attempt]
at = 2026-03-02T09:00:00Z
ip = "81.2.69.142"
[case.expect]
decision = "step_up"
"#;

    #[test]
    fn minimal_case_parses() {
        let (_dir, path) = write(MINIMAL);
        let file = CaseFile::load(&path).unwrap();
        assert_eq!(file.cases.len(), 1);
        assert_eq!(file.cases[0].line, 2);
        let case = &file.cases[0].case;
        assert_eq!(case.attempt.at.to_rfc3339(), "2026-03-02T09:00:00+00:00");
        assert_eq!(case.expect.decision, Decision::StepUp);
        assert!(case.expect.rules.is_empty());
    }

    #[test]
    fn unknown_field_named_with_position() {
        let text = MINIMAL.replace(
            "decision = \"step_up\"",
            "decision = \"step_up\"\nrule = []",
        );
        let (_dir, path) = write(&text);
        let error = CaseFile::load(&path).unwrap_err().to_string();
        let expected_start = format!("{}:9:1: unknown field `rule`", path.display());
        assert!(error.starts_with(&expected_start), "{error}");
        assert!(error.contains("`rules`"), "{error}");
    }

    #[test]
    fn timestamp_without_offset_rejected() {
        let text = MINIMAL.replace("2026-03-02T09:00:00Z", "\"2026-03-02T09:00:00\"");
        let (_dir, path) = write(&text);
        let error = CaseFile::load(&path).unwrap_err().to_string();
        assert!(error.contains(":5:6:"), "{error}");
        assert!(
            error.contains("invalid timestamp `2026-03-02T09:00:00`"),
            "{error}"
        );
    }

    #[test]
    fn unknown_outcome_rejected() {
        let text = MINIMAL.replace(
            "[case.attempt]",
            "[[case.history]]\nat = 2026-03-01T09:00:00Z\nip = \"81.2.69.142\"\noutcomes = [\"login_fail\"]\n[case.attempt]",
        );
        let (_dir, path) = write(&text);
        let error = CaseFile::load(&path).unwrap_err().to_string();
        assert!(error.contains(":7:13:"), "{error}");
        assert!(error.contains("unknown variant `login_fail`"), "{error}");
    }

    #[test]
    fn zero_repeat_rejected() {
        let text = MINIMAL.replace(
            "[case.attempt]",
            "[[case.history]]\nat = 2026-03-01T09:00:00Z\nip = \"81.2.69.142\"\nrepeat = 0\n[case.attempt]",
        );
        let (_dir, path) = write(&text);
        let error = CaseFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("`repeat` must be from 1 to 1000"), "{error}");
    }

    #[test]
    fn readme_case_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let example = readme
            .split("```toml")
            .skip(1)
            .map(|block| &block[..block.find("```").unwrap()])
            .find(|block| block.contains("[[case]]"))
            .expect("a case file example in rules/README.md");
        let (_dir, path) = write(example);
        let file = CaseFile::load(&path).unwrap();
        let case = &file.cases[0].case;
        assert_eq!(case.history.len(), 2);
        assert_eq!(case.history[1].outcomes, Some(vec![Outcome::LoginFailed]));
        assert_eq!(case.expect.rules.len(), 1);
    }

    #[test]
    fn empty_file_has_no_cases() {
        let (_dir, path) = write("# nothing yet\n");
        let error = CaseFile::load(&path).unwrap_err();
        assert!(matches!(error, CasesError::NoCases { .. }), "{error}");
    }

    #[test]
    fn compare_reports_each_field() {
        let (_dir, path) = write(MINIMAL);
        let mut expect = CaseFile::load(&path).unwrap().cases.remove(0).case.expect;
        expect.factors = Some(vec!["totp".into()]);
        expect.decided_by = Some("threshold".into());
        let actual = Actual {
            decision: Decision::Deny,
            risk: 0.97,
            level: Level::Critical,
            reasons: vec![("anonymous_ip".into(), 2.2)],
            factors: Vec::new(),
            decided_by: "rule:deny-tor-exit".into(),
            rules: vec!["deny-tor-exit".into()],
            shadow_rules: Vec::new(),
            errored_rules: Vec::new(),
        };
        let fields: Vec<&str> = compare(&expect, &actual)
            .iter()
            .map(|mismatch| mismatch.field)
            .collect();
        assert_eq!(fields, ["decision", "factors", "decided_by", "rules"]);
    }
}
