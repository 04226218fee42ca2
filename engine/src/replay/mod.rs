//! Replay of a labelled login CSV through the scoring service.
//!
//! [`replay`] reads the file, sorts its rows by timestamp (ties keep file order), sends
//! each row to `POST /v1/score` through a [`ScoreTarget`], reports the outcome that the
//! row's labels imply to `POST /v1/events` (see [`outcome`]), and counts the decisions in
//! a [`ReplaySummary`]. Malformed rows are counted with their line number and skipped.
//!
//! Memory: the first pass keeps only a timestamp and a file position per valid row (40
//! bytes, so about 40 MB for a million rows), and the second pass seeks back to each
//! record in timestamp order. A file that is already sorted is read sequentially in both
//! passes. The file must therefore be a regular, seekable file, not a pipe.

mod http;
#[cfg(feature = "train")]
pub mod offline;
pub mod outcome;
mod rows;
mod summary;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use csv::{Position, StringRecord};
use serde_json::{Value, json};

pub use http::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, HttpTarget};
pub use outcome::{Decision, Outcome, outcomes_for};
pub use rows::{Layout, LoginRow, RBA_ATTACK_IP_KIND, RBA_TAKEOVER_KIND};
pub use summary::{DecisionCounts, ErrorSummary, MAX_ERROR_MESSAGES, ReplaySummary, RowError};

use rows::Columns;

/// Receiver of the replayed requests: a server over HTTP, or the engine in process.
pub trait ScoreTarget {
    /// Sends a `POST /v1/score` body and returns the response body.
    fn score(&mut self, request: &Value) -> Result<Value, ReplayError>;
    /// Sends a `POST /v1/events` body and returns the response body.
    fn event(&mut self, request: &Value) -> Result<Value, ReplayError>;
}

/// Settings of one replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// CSV layout; detected from the header row when `None`.
    pub layout: Option<Layout>,
    /// Reads at most this many data rows from the start of the file (malformed rows
    /// included), then replays them in timestamp order.
    pub limit: Option<usize>,
    /// JSON Lines file with one object per row: `line`, the labels, and the `response`,
    /// the posted `events` or an `error`. Malformed rows come first, then the replayed rows
    /// in timestamp order.
    pub out: Option<PathBuf>,
}

/// Errors of a replay. [`ReplayError::aborts_replay`] returns whether an error stops it.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("failed to open `{path}`: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error(
        "unknown CSV layout in `{path}`: the header has neither the riskgate columns \
         (timestamp, user_id, ip, login_successful, is_attack) nor the RBA dataset columns \
         (Login Timestamp, User ID, IP Address, User Agent String, Login Successful, \
         Is Attack IP, Is Account Takeover)"
    )]
    UnknownLayout { path: PathBuf },
    #[error("`{path}` has no column `{column}`, which the {layout} layout requires")]
    MissingColumn {
        path: PathBuf,
        layout: Layout,
        column: &'static str,
    },
    #[error("failed to write `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid service URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("request to `{url}` failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    /// Error status from the service. `code`, `message` and `field` come from an
    /// `{"error": {...}}` body, and any other body becomes the message.
    #[error("service returned HTTP {status}: {message}{}", describe_code_and_field(.code, .field))]
    Rejected {
        status: u16,
        code: Option<String>,
        message: String,
        field: Option<String>,
    },
    #[error("invalid response from the service: {0}")]
    InvalidResponse(String),
}

impl ReplayError {
    /// Returns whether the replay stops on this error. It goes on after a rejected request
    /// and after an invalid response, so those count as row errors. It stops on HTTP 401,
    /// 403, 404 and 405, because every later request would get them too, and on any other
    /// error.
    pub fn aborts_replay(&self) -> bool {
        match self {
            ReplayError::Rejected { status, .. } => matches!(status, 401 | 403 | 404 | 405),
            ReplayError::InvalidResponse(_) => false,
            _ => true,
        }
    }
}

fn describe_code_and_field(code: &Option<String>, field: &Option<String>) -> String {
    match (code, field) {
        (Some(code), Some(field)) => format!(" (code `{code}`, field `{field}`)"),
        (Some(code), None) => format!(" (code `{code}`)"),
        (None, Some(field)) => format!(" (field `{field}`)"),
        (None, None) => String::new(),
    }
}

/// Replays the login CSV at `path` through `target` and counts the decisions.
///
/// Returns an error, and no summary, when the file cannot be read, the layout is unknown,
/// the output cannot be written, or `target` returns an error that
/// [`ReplayError::aborts_replay`].
pub fn replay(
    path: &Path,
    target: &mut dyn ScoreTarget,
    options: &ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    let read_error = |source: csv::Error| ReplayError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|source| ReplayError::Open {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let headers = reader.headers().map_err(read_error)?.clone();
    let columns = resolve_columns(path, &headers, options.layout)?;
    let mut out = match &options.out {
        Some(out_path) => Some(OutFile::create(out_path)?),
        None => None,
    };

    let mut summary = ReplaySummary::default();
    let order = index_rows(&mut reader, &columns, options.limit, &mut summary, &mut out).map_err(
        |error| match error {
            IndexError::Read(source) => read_error(source),
            IndexError::Write(error) => error,
        },
    )?;

    let mut record = StringRecord::new();
    for position in order {
        reader.seek(position.clone()).map_err(read_error)?;
        if !reader.read_record(&mut record).map_err(read_error)? {
            return Err(file_changed(path, position.line()));
        }
        let row = columns
            .parse(&record, position.line())
            .map_err(|_| file_changed(path, position.line()))?;
        replay_row(target, &row, &mut summary, &mut out)?;
    }

    if let Some(out) = out {
        out.finish()?;
    }
    Ok(summary)
}

fn resolve_columns(
    path: &Path,
    headers: &StringRecord,
    layout: Option<Layout>,
) -> Result<Columns, ReplayError> {
    let layout = match layout {
        Some(layout) => layout,
        None => Layout::detect(headers).ok_or_else(|| ReplayError::UnknownLayout {
            path: path.to_owned(),
        })?,
    };
    Columns::resolve(layout, headers).map_err(|column| ReplayError::MissingColumn {
        path: path.to_owned(),
        layout,
        column,
    })
}

enum IndexError {
    Read(csv::Error),
    Write(ReplayError),
}

/// Reads every data row once, records malformed ones, and returns the positions of the
/// valid records sorted by timestamp. The sort is stable, so ties keep file order.
fn index_rows(
    reader: &mut csv::Reader<File>,
    columns: &Columns,
    limit: Option<usize>,
    summary: &mut ReplaySummary,
    out: &mut Option<OutFile>,
) -> Result<Vec<Position>, IndexError> {
    let mut entries: Vec<(DateTime<Utc>, Position)> = Vec::new();
    let mut record = StringRecord::new();
    loop {
        if limit.is_some_and(|limit| summary.rows >= limit as u64) {
            break;
        }
        let start = reader.position().clone();
        let problem = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let position = record.position().cloned().unwrap_or(start);
                match columns.parse(&record, position.line()) {
                    Ok(row) => {
                        entries.push((row.timestamp, position));
                        None
                    }
                    Err(message) => Some((position.line(), message)),
                }
            }
            // An I/O error ends the read; a record-level error (invalid UTF-8) skips the row.
            Err(error) if error.is_io_error() => return Err(IndexError::Read(error)),
            Err(error) => {
                let line = error.position().map_or(start.line(), Position::line);
                Some((line, format!("unreadable record: {error}")))
            }
        };
        summary.rows += 1;
        if let Some((line, message)) = problem {
            if let Some(out) = out {
                out.write(&json!({ "line": line, "error": message }))
                    .map_err(IndexError::Write)?;
            }
            summary.add_malformed(line, message);
        }
    }
    entries.sort_by_key(|(timestamp, _)| *timestamp);
    Ok(entries.into_iter().map(|(_, position)| position).collect())
}

fn file_changed(path: &Path, line: u64) -> ReplayError {
    ReplayError::Read {
        path: path.to_owned(),
        source: csv::Error::from(io::Error::other(format!(
            "the record on line {line} changed while the replay was running"
        ))),
    }
}

/// Scores one row, posts its outcomes and counts the decision.
fn replay_row(
    target: &mut dyn ScoreTarget,
    row: &LoginRow,
    summary: &mut ReplaySummary,
    out: &mut Option<OutFile>,
) -> Result<(), ReplayError> {
    let mut record = json!({
        "line": row.line,
        "user_id": row.user_id,
        "timestamp": row.timestamp.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "login_successful": row.login_successful,
        "is_attack": row.is_attack,
        "attack_kind": row.attack_kind,
    });
    let result = score_and_report(target, row, summary, &mut record);
    if let Err(error) = result {
        if error.aborts_replay() {
            return Err(error);
        }
        let message = error.to_string();
        record["error"] = json!(message);
        summary.add_rejected(row.line, message);
    }
    if let Some(out) = out {
        out.write(&record)?;
    }
    Ok(())
}

/// Scores `row`, counts the decision, then posts the outcomes. Fills `record` with the
/// response and the outcomes that the service accepted.
fn score_and_report(
    target: &mut dyn ScoreTarget,
    row: &LoginRow,
    summary: &mut ReplaySummary,
    record: &mut Value,
) -> Result<(), ReplayError> {
    let response = target.score(&row.score_request())?;
    let decision = response
        .get("decision")
        .and_then(Value::as_str)
        .ok_or_else(|| ReplayError::InvalidResponse("missing `decision`".to_owned()))?;
    let decision = Decision::parse(decision).ok_or_else(|| {
        ReplayError::InvalidResponse(format!(
            "unknown decision `{decision}`: expected allow, step_up or deny"
        ))
    })?;
    let decision_id = response
        .get("decision_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ReplayError::InvalidResponse("missing `decision_id`".to_owned()))?
        .to_owned();
    let degraded = response
        .get("degraded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    summary.add_decision(row, decision, degraded);
    record["response"] = response;

    // A rejected event stops the row's remaining events: the CRM would not report a
    // login success after its MFA report failed.
    let mut posted = Vec::new();
    let mut result = Ok(());
    for outcome in outcomes_for(decision, row.login_successful, row.is_attack) {
        let body = json!({ "decision_id": decision_id, "outcome": outcome.as_str() });
        if let Err(error) = target.event(&body) {
            result = Err(error);
            break;
        }
        summary.events += 1;
        posted.push(outcome.as_str());
    }
    record["events"] = json!(posted);
    result
}

/// JSON Lines output of a replay.
struct OutFile {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl OutFile {
    fn create(path: &Path) -> Result<Self, ReplayError> {
        let file = File::create(path).map_err(|source| ReplayError::Write {
            path: path.to_owned(),
            source,
        })?;
        Ok(OutFile {
            path: path.to_owned(),
            writer: BufWriter::new(file),
        })
    }

    fn write(&mut self, value: &Value) -> Result<(), ReplayError> {
        serde_json::to_writer(&mut self.writer, value)
            .map_err(io::Error::from)
            .and_then(|()| self.writer.write_all(b"\n"))
            .map_err(|source| ReplayError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn finish(mut self) -> Result<(), ReplayError> {
        self.writer.flush().map_err(|source| ReplayError::Write {
            path: self.path,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const HEADER: &str = "timestamp,user_id,ip,user_agent,role,app,tenant,device_id,\
                          login_successful,is_attack,attack_kind,rtt_ms\n";

    /// Test double that returns a scripted decision per user and records every request.
    #[derive(Default)]
    struct ScriptedTarget {
        decisions: HashMap<String, &'static str>,
        /// Users whose score request fails with this error status.
        rejected_users: HashMap<String, u16>,
        /// Outcome whose event request is rejected with HTTP 400.
        rejected_outcome: Option<&'static str>,
        scores: Vec<Value>,
        events: Vec<Value>,
    }

    impl ScriptedTarget {
        fn with_decisions(decisions: &[(&str, &'static str)]) -> Self {
            ScriptedTarget {
                decisions: decisions
                    .iter()
                    .map(|(user, decision)| ((*user).to_owned(), *decision))
                    .collect(),
                ..Default::default()
            }
        }

        fn scored_users(&self) -> Vec<&str> {
            self.scores
                .iter()
                .filter_map(|request| request["user_id"].as_str())
                .collect()
        }
    }

    impl ScoreTarget for ScriptedTarget {
        fn score(&mut self, request: &Value) -> Result<Value, ReplayError> {
            self.scores.push(request.clone());
            let user = request["user_id"].as_str().unwrap_or_default();
            if let Some(status) = self.rejected_users.get(user) {
                return Err(ReplayError::Rejected {
                    status: *status,
                    code: Some("invalid_request".to_owned()),
                    message: format!("user `{user}` rejected"),
                    field: Some("user_id".to_owned()),
                });
            }
            let decision = self.decisions.get(user).copied().unwrap_or("allow");
            Ok(json!({
                "decision_id": format!("d{}", self.scores.len()),
                "decision": decision,
                "risk": 0.5,
                "degraded": user.starts_with("degraded"),
            }))
        }

        fn event(&mut self, request: &Value) -> Result<Value, ReplayError> {
            self.events.push(request.clone());
            if self.rejected_outcome == request["outcome"].as_str() {
                return Err(ReplayError::Rejected {
                    status: 400,
                    code: Some("invalid_outcome".to_owned()),
                    message: "outcome not accepted".to_owned(),
                    field: Some("outcome".to_owned()),
                });
            }
            Ok(json!({ "accepted": true }))
        }
    }

    fn write_csv(dir: &Path, body: &str) -> Result<PathBuf, io::Error> {
        let path = dir.join("logins.csv");
        fs::write(&path, format!("{HEADER}{body}"))?;
        Ok(path)
    }

    fn rba_sample() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/logins/rba-dataset-first19rows.csv")
    }

    #[test]
    fn replay_sorts_rows_by_timestamp() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T10:00:00Z,late,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T09:00:00+00:00,tie-first,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T10:30:00+01:00,tie-second,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:00:00Z,early,81.2.69.160,,,,,,true,false,,\n",
        )?;
        let mut target = ScriptedTarget::default();
        let summary = replay(&path, &mut target, &ReplayOptions::default())?;
        assert_eq!(
            target.scored_users(),
            ["early", "tie-first", "tie-second", "late"]
        );
        assert_eq!(summary.rows, 4);
        assert_eq!(summary.scored, 4);
        Ok(())
    }

    #[test]
    fn malformed_rows_counted_with_lines() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T08:00:00Z,ok-1,81.2.69.160,,,,,,true,false,,\n\
             yesterday,bad-time,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:01:00Z,,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:02:00Z,bad-ip,not-an-ip,,,,,,true,false,,\n\
             2024-03-04T08:03:00Z,ok-2,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:04:00Z\n",
        )?;
        let mut target = ScriptedTarget::default();
        let summary = replay(&path, &mut target, &ReplayOptions::default())?;

        assert_eq!(summary.rows, 6);
        assert_eq!(summary.scored, 2);
        assert_eq!(summary.errors.malformed, 4);
        assert_eq!(summary.errors.rejected, 0);
        assert_eq!(summary.errors.total, 4);

        let lines: Vec<u64> = summary
            .errors
            .first
            .iter()
            .map(|error| error.line)
            .collect();
        assert_eq!(lines, [3, 4, 5, 7]);
        assert!(
            summary.errors.first[0]
                .message
                .starts_with("invalid timestamp `yesterday`")
        );
        assert_eq!(summary.errors.first[1].message, "missing `user_id`");
        assert_eq!(
            summary.errors.first[2].message,
            "invalid IP address `not-an-ip`"
        );
        assert_eq!(summary.errors.first[3].message, "missing `user_id`");
        assert_eq!(target.scored_users(), ["ok-1", "ok-2"]);
        Ok(())
    }

    #[test]
    fn invalid_utf8_row_skipped() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("logins.csv");
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"2024-03-04T08:00:00Z,caf\xe9,81.2.69.160,,,,,,true,false,,\n");
        bytes.extend_from_slice(b"2024-03-04T08:01:00Z,ok,81.2.69.160,,,,,,true,false,,\n");
        fs::write(&path, bytes)?;
        let mut target = ScriptedTarget::default();
        let summary = replay(&path, &mut target, &ReplayOptions::default())?;
        assert_eq!(summary.errors.malformed, 1);
        assert_eq!(summary.errors.first[0].line, 2);
        assert_eq!(target.scored_users(), ["ok"]);
        Ok(())
    }

    #[test]
    fn summary_counts_decisions_by_label() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T08:00:00Z,legit-allow,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:01:00Z,legit-step,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:02:00Z,legit-deny,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:03:00Z,degraded-allow,81.2.69.160,,,,,,false,false,,\n\
             2024-03-04T08:04:00Z,naive-step,175.16.199.1,,,,,,true,true,naive,\n\
             2024-03-04T08:05:00Z,naive-deny,175.16.199.2,,,,,,true,true,naive,\n\
             2024-03-04T08:06:00Z,vpn-allow,81.2.69.200,,,,,,true,true,vpn,\n\
             2024-03-04T08:07:00Z,unnamed-step,81.2.69.200,,,,,,false,true,,\n",
        )?;
        let mut target = ScriptedTarget::with_decisions(&[
            ("legit-step", "step_up"),
            ("legit-deny", "deny"),
            ("naive-step", "step_up"),
            ("naive-deny", "deny"),
            ("unnamed-step", "step_up"),
        ]);
        let summary = replay(&path, &mut target, &ReplayOptions::default())?;

        let counts = |total, allow, step_up, deny| DecisionCounts {
            total,
            allow,
            step_up,
            deny,
        };
        assert_eq!(summary.rows, 8);
        assert_eq!(summary.scored, 8);
        assert_eq!(summary.degraded, 1);
        assert_eq!(summary.decisions, counts(8, 3, 3, 2));
        assert_eq!(summary.legitimate, counts(4, 2, 1, 1));
        assert_eq!(summary.attacks, counts(4, 1, 2, 1));
        assert_eq!(summary.attacks_by_kind.len(), 2);
        assert_eq!(summary.attacks_by_kind["naive"], counts(2, 0, 1, 1));
        assert_eq!(summary.attacks_by_kind["vpn"], counts(1, 1, 0, 0));
        // legit-allow 1, legit-step 2, legit-deny 0, degraded-allow 1 (failed), naive-step 1,
        // naive-deny 0, vpn-allow 1, unnamed-step 1 (failed).
        assert_eq!(summary.events, 7);
        assert_eq!(summary.errors.total, 0);
        Ok(())
    }

    #[test]
    fn events_follow_outcome_mapping() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T08:00:00Z,legit-step,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:01:00Z,attacker-step,175.16.199.1,,,,,,true,true,naive,\n\
             2024-03-04T08:02:00Z,typo-allow,81.2.69.160,,,,,,false,false,,\n\
             2024-03-04T08:03:00Z,legit-deny,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:04:00Z,failed-deny,81.2.69.160,,,,,,false,true,spray,\n",
        )?;
        let mut target = ScriptedTarget::with_decisions(&[
            ("legit-step", "step_up"),
            ("attacker-step", "step_up"),
            ("legit-deny", "deny"),
            ("failed-deny", "deny"),
        ]);
        replay(&path, &mut target, &ReplayOptions::default())?;
        let expected = [
            json!({ "decision_id": "d1", "outcome": "mfa_passed" }),
            json!({ "decision_id": "d1", "outcome": "login_succeeded" }),
            json!({ "decision_id": "d2", "outcome": "mfa_failed" }),
            json!({ "decision_id": "d3", "outcome": "login_failed" }),
            json!({ "decision_id": "d5", "outcome": "login_failed" }),
        ];
        assert_eq!(target.events, expected);
        Ok(())
    }

    #[test]
    fn rejected_rows_counted_and_skipped() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T08:00:00Z,rejected,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:01:00Z,server-error,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:02:00Z,ok,81.2.69.160,,,,,,true,false,,\n",
        )?;
        let mut target = ScriptedTarget::default();
        target.rejected_users.insert("rejected".to_owned(), 400);
        target.rejected_users.insert("server-error".to_owned(), 503);
        let summary = replay(&path, &mut target, &ReplayOptions::default())?;
        assert_eq!(summary.rows, 3);
        assert_eq!(summary.scored, 1);
        assert_eq!(summary.errors.rejected, 2);
        assert_eq!(summary.errors.malformed, 0);
        assert_eq!(summary.errors.first[0].line, 2);
        assert_eq!(
            summary.errors.first[0].message,
            "service returned HTTP 400: user `rejected` rejected \
             (code `invalid_request`, field `user_id`)"
        );
        assert_eq!(summary.errors.first[1].line, 3);
        assert_eq!(target.scored_users(), ["rejected", "server-error", "ok"]);
        Ok(())
    }

    #[test]
    fn rejected_event_counts_row_as_error() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T08:00:00Z,legit-step,81.2.69.160,,,,,,true,false,,\n",
        )?;
        let mut target = ScriptedTarget::with_decisions(&[("legit-step", "step_up")]);
        target.rejected_outcome = Some("mfa_passed");
        let summary = replay(&path, &mut target, &ReplayOptions::default())?;
        assert_eq!(summary.scored, 1);
        assert_eq!(summary.decisions.step_up, 1);
        assert_eq!(summary.events, 0);
        assert_eq!(summary.errors.rejected, 1);
        // The login success is not reported after the MFA report failed.
        assert_eq!(target.events.len(), 1);
        Ok(())
    }

    #[test]
    fn unauthorized_aborts_replay() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T08:00:00Z,first,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:01:00Z,second,81.2.69.160,,,,,,true,false,,\n",
        )?;
        let mut target = ScriptedTarget::default();
        target.rejected_users.insert("first".to_owned(), 401);
        let result = replay(&path, &mut target, &ReplayOptions::default());
        assert!(matches!(
            result,
            Err(ReplayError::Rejected { status: 401, .. })
        ));
        assert_eq!(target.scored_users(), ["first"]);
        Ok(())
    }

    #[test]
    fn invalid_response_counted() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T08:00:00Z,odd,81.2.69.160,,,,,,true,false,,\n",
        )?;
        let mut target = ScriptedTarget::with_decisions(&[("odd", "maybe")]);
        let summary = replay(&path, &mut target, &ReplayOptions::default())?;
        assert_eq!(summary.scored, 0);
        assert_eq!(summary.errors.rejected, 1);
        assert_eq!(
            summary.errors.first[0].message,
            "invalid response from the service: unknown decision `maybe`: \
             expected allow, step_up or deny"
        );
        assert!(target.events.is_empty());
        Ok(())
    }

    #[test]
    fn limit_reads_first_rows_of_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T10:00:00Z,third-in-time,81.2.69.160,,,,,,true,false,,\n\
             bad,malformed,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T09:00:00Z,second-in-time,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:00:00Z,not-read,81.2.69.160,,,,,,true,false,,\n",
        )?;
        let mut target = ScriptedTarget::default();
        let options = ReplayOptions {
            limit: Some(3),
            ..Default::default()
        };
        let summary = replay(&path, &mut target, &options)?;
        assert_eq!(summary.rows, 3);
        assert_eq!(summary.errors.malformed, 1);
        assert_eq!(target.scored_users(), ["second-in-time", "third-in-time"]);
        Ok(())
    }

    #[test]
    fn out_file_one_line_per_row() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = write_csv(
            dir.path(),
            "2024-03-04T09:00:00Z,attacker,175.16.199.1,,,,,,true,true,naive,\n\
             bad,malformed,81.2.69.160,,,,,,true,false,,\n\
             2024-03-04T08:00:00Z,legit,81.2.69.160,,,,,,true,false,,\n",
        )?;
        let out_path = dir.path().join("decisions.jsonl");
        let mut target = ScriptedTarget::with_decisions(&[("attacker", "step_up")]);
        let options = ReplayOptions {
            out: Some(out_path.clone()),
            ..Default::default()
        };
        replay(&path, &mut target, &options)?;

        let text = fs::read_to_string(&out_path)?;
        let lines: Vec<Value> = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(lines.len(), 3);

        assert_eq!(lines[0]["line"], 3);
        assert!(lines[0]["error"].as_str().is_some());
        assert_eq!(lines[1]["line"], 4);
        assert_eq!(lines[1]["user_id"], "legit");
        assert_eq!(lines[1]["timestamp"], "2024-03-04T08:00:00Z");
        assert_eq!(lines[1]["is_attack"], false);
        assert_eq!(lines[1]["response"]["decision"], "allow");
        assert_eq!(lines[1]["events"], json!(["login_succeeded"]));

        assert_eq!(lines[2]["line"], 2);
        assert_eq!(lines[2]["attack_kind"], "naive");
        assert_eq!(lines[2]["response"]["decision"], "step_up");
        assert_eq!(lines[2]["events"], json!(["mfa_failed"]));
        Ok(())
    }

    #[test]
    fn rba_sample_replays_all_rows() -> TestResult {
        let mut target = ScriptedTarget::default();
        let summary = replay(&rba_sample(), &mut target, &ReplayOptions::default())?;

        assert_eq!(summary.rows, 19);
        assert_eq!(summary.scored, 19);
        assert_eq!(summary.errors.total, 0);
        assert_eq!(summary.attacks.total, 2);
        assert_eq!(summary.attacks_by_kind[RBA_ATTACK_IP_KIND].total, 2);
        assert_eq!(summary.legitimate.total, 17);

        // Rows 0 to 18 are already in time order, so the order of the file is kept.
        assert_eq!(target.scores.len(), 19);
        assert_eq!(
            target.scores[0],
            json!({
                "user_id": "-4324475583306591935",
                "ip": "10.0.65.171",
                "timestamp": "2020-02-03T12:43:30.772Z",
                "user_agent": "Mozilla/5.0  (iPhone; CPU iPhone OS 13_4 like Mac OS X) \
                               Gecko/20150101 Firefox/20.0.0.1618 (Chrome variation/248113",
            })
        );
        assert_eq!(target.scores[15]["user_id"], "-8296667206273764769");
        assert_eq!(target.scores[15]["rtt_ms"], 1123.0);
        assert!(
            target
                .scores
                .iter()
                .all(|request| request.get("device").is_none())
        );

        // Only the rows with Login Successful = True report a success.
        let successes = target
            .events
            .iter()
            .filter(|event| event["outcome"] == "login_succeeded")
            .count();
        assert_eq!(successes, 7);
        Ok(())
    }

    #[test]
    fn rba_layout_given_explicitly() -> TestResult {
        let mut target = ScriptedTarget::default();
        let options = ReplayOptions {
            layout: Some(Layout::Rba),
            limit: Some(5),
            ..Default::default()
        };
        let summary = replay(&rba_sample(), &mut target, &options)?;
        assert_eq!(summary.rows, 5);
        assert_eq!(summary.attacks.total, 1);
        Ok(())
    }

    #[test]
    fn wrong_layout_names_missing_column() -> TestResult {
        let mut target = ScriptedTarget::default();
        let options = ReplayOptions {
            layout: Some(Layout::Riskgate),
            ..Default::default()
        };
        let result = replay(&rba_sample(), &mut target, &options);
        assert!(matches!(
            result,
            Err(ReplayError::MissingColumn {
                layout: Layout::Riskgate,
                column: "timestamp",
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn unknown_layout_rejected() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("other.csv");
        fs::write(
            &path,
            "time,user,address\n2024-03-04T08:00:00Z,ada,81.2.69.160\n",
        )?;
        let mut target = ScriptedTarget::default();
        let result = replay(&path, &mut target, &ReplayOptions::default());
        assert!(matches!(result, Err(ReplayError::UnknownLayout { .. })));
        assert!(target.scores.is_empty());
        Ok(())
    }

    #[test]
    fn missing_file_reports_path() {
        let mut target = ScriptedTarget::default();
        let result = replay(
            Path::new("/nonexistent/logins.csv"),
            &mut target,
            &ReplayOptions::default(),
        );
        let Err(error) = result else {
            panic!("replay of a missing file succeeded");
        };
        assert!(
            error
                .to_string()
                .starts_with("failed to open `/nonexistent/logins.csv`")
        );
    }

    #[test]
    fn generated_stream_parses_cleanly() -> TestResult {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/logins/generated-stream.csv");
        let mut target = ScriptedTarget::default();
        let summary = replay(&path, &mut target, &ReplayOptions::default())?;
        assert_eq!(summary.errors.total, 0);
        assert!(summary.rows > 1000, "only {} rows", summary.rows);
        for kind in ["naive", "vpn", "targeted", "stuffing", "spray"] {
            assert!(
                summary
                    .attacks_by_kind
                    .get(kind)
                    .is_some_and(|c| c.total > 0),
                "no `{kind}` attacks in the generated stream"
            );
        }
        Ok(())
    }

    #[test]
    fn summary_display_table() {
        let mut summary = ReplaySummary {
            rows: 6,
            events: 4,
            ..Default::default()
        };
        let row = |is_attack: bool, kind: Option<&str>| LoginRow {
            line: 2,
            timestamp: DateTime::UNIX_EPOCH,
            user_id: "ada".to_owned(),
            ip: std::net::IpAddr::from([81, 2, 69, 160]),
            user_agent: None,
            role: None,
            app: None,
            tenant: None,
            device_id: None,
            rtt_ms: None,
            keystrokes: None,
            login_successful: true,
            is_attack,
            attack_kind: kind.map(str::to_owned),
        };
        summary.add_decision(&row(false, None), Decision::Allow, false);
        summary.add_decision(&row(false, None), Decision::StepUp, true);
        summary.add_decision(&row(true, Some("naive")), Decision::Deny, false);
        summary.add_decision(&row(true, Some("naive")), Decision::StepUp, false);
        summary.add_malformed(5, "missing `user_id`".to_owned());
        summary.add_rejected(7, "service returned HTTP 400: bad".to_owned());
        let expected = "\
rows read             6
scored                4
events posted         4
degraded              1
errors                2  (malformed 1, rejected by the service 1)

                   total   allow  step_up    deny
all                    4       1        2       1
legitimate             2       1        1       0
attacks                2       0        1       1
  naive                2       0        1       1

legitimate logins asked for MFA 50.0%, denied 0.0%
attacks stepped up 50.0%, denied 50.0%, allowed 0.0%

first errors:
  line 5: missing `user_id`
  line 7: service returned HTTP 400: bad
";
        assert_eq!(summary.to_string(), expected);
    }

    #[test]
    fn summary_serializes_counts() -> TestResult {
        let mut summary = ReplaySummary::default();
        summary.add_malformed(3, "missing `ip`".to_owned());
        let value = serde_json::to_value(&summary)?;
        assert_eq!(value["rows"], 0);
        assert_eq!(value["errors"]["malformed"], 1);
        assert_eq!(value["errors"]["first"][0]["line"], 3);
        assert_eq!(value["decisions"]["step_up"], 0);
        assert_eq!(value["attacks_by_kind"], json!({}));
        Ok(())
    }

    #[test]
    fn only_some_rejections_abort() {
        let rejected = |status| ReplayError::Rejected {
            status,
            code: None,
            message: String::new(),
            field: None,
        };
        for status in [401, 403, 404, 405] {
            assert!(rejected(status).aborts_replay(), "HTTP {status}");
        }
        for status in [400, 409, 422, 429, 500, 503] {
            assert!(!rejected(status).aborts_replay(), "HTTP {status}");
        }
        assert!(!ReplayError::InvalidResponse(String::new()).aborts_replay());
    }
}
