//! Counts of what the service decided during a replay, printed as a table or as JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::outcome::Decision;
use super::rows::LoginRow;

/// Number of error messages a summary keeps; later errors are only counted.
pub const MAX_ERROR_MESSAGES: usize = 10;

/// Result of a replay. Only scored rows count in `decisions`, `legitimate` and `attacks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    /// Data rows read from the file, malformed ones included.
    pub rows: u64,
    /// Rows that received a decision.
    pub scored: u64,
    /// Events accepted by `POST /v1/events`.
    pub events: u64,
    /// Scored rows whose response had `degraded: true`.
    pub degraded: u64,
    pub errors: ErrorSummary,
    pub decisions: DecisionCounts,
    /// Rows labelled as not an attack.
    pub legitimate: DecisionCounts,
    /// Rows labelled as an attack.
    pub attacks: DecisionCounts,
    /// Attack rows per kind, for rows whose file names the kind.
    pub attacks_by_kind: BTreeMap<String, DecisionCounts>,
}

/// Number of decisions of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DecisionCounts {
    pub total: u64,
    pub allow: u64,
    pub step_up: u64,
    pub deny: u64,
}

impl DecisionCounts {
    fn add(&mut self, decision: Decision) {
        self.total += 1;
        match decision {
            Decision::Allow => self.allow += 1,
            Decision::StepUp => self.step_up += 1,
            Decision::Deny => self.deny += 1,
        }
    }
}

/// Rows that could not be replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorSummary {
    /// Rows with any error; `malformed + rejected`.
    pub total: u64,
    /// Rows that could not be parsed and were skipped.
    pub malformed: u64,
    /// Rows whose score or event request the service rejected, or whose response was
    /// invalid. A row whose event failed after it was scored still counts in `decisions`.
    pub rejected: u64,
    /// The first [`MAX_ERROR_MESSAGES`] errors in the order they happened.
    pub first: Vec<RowError>,
}

/// Error on one row of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Line of the file on which the record starts; the header is line 1.
    pub line: u64,
    pub message: String,
}

impl ReplaySummary {
    pub(crate) fn add_malformed(&mut self, line: u64, message: String) {
        self.errors.malformed += 1;
        self.add_error(line, message);
    }

    pub(crate) fn add_rejected(&mut self, line: u64, message: String) {
        self.errors.rejected += 1;
        self.add_error(line, message);
    }

    fn add_error(&mut self, line: u64, message: String) {
        self.errors.total += 1;
        if self.errors.first.len() < MAX_ERROR_MESSAGES {
            self.errors.first.push(RowError { line, message });
        }
    }

    pub(crate) fn add_decision(&mut self, row: &LoginRow, decision: Decision, degraded: bool) {
        self.scored += 1;
        if degraded {
            self.degraded += 1;
        }
        self.decisions.add(decision);
        if !row.is_attack {
            self.legitimate.add(decision);
            return;
        }
        self.attacks.add(decision);
        if let Some(kind) = &row.attack_kind {
            self.attacks_by_kind
                .entry(kind.clone())
                .or_default()
                .add(decision);
        }
    }
}

impl fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rows read      {:>8}", self.rows)?;
        writeln!(f, "scored         {:>8}", self.scored)?;
        writeln!(f, "events posted  {:>8}", self.events)?;
        writeln!(f, "degraded       {:>8}", self.degraded)?;
        writeln!(
            f,
            "errors         {:>8}  (malformed {}, rejected by the service {})",
            self.errors.total, self.errors.malformed, self.errors.rejected
        )?;
        writeln!(f)?;

        writeln!(
            f,
            "{:<16}{:>8}{:>8}{:>9}{:>8}",
            "", "total", "allow", "step_up", "deny"
        )?;
        write_counts(f, "all", &self.decisions)?;
        write_counts(f, "legitimate", &self.legitimate)?;
        write_counts(f, "attacks", &self.attacks)?;
        for (kind, counts) in &self.attacks_by_kind {
            write_counts(f, &format!("  {kind}"), counts)?;
        }

        if self.legitimate.total > 0 {
            writeln!(f)?;
            writeln!(
                f,
                "legitimate logins asked for MFA {}, denied {}",
                percent(self.legitimate.step_up, self.legitimate.total),
                percent(self.legitimate.deny, self.legitimate.total),
            )?;
        }
        if self.attacks.total > 0 {
            if self.legitimate.total == 0 {
                writeln!(f)?;
            }
            writeln!(
                f,
                "attacks stepped up {}, denied {}, allowed {}",
                percent(self.attacks.step_up, self.attacks.total),
                percent(self.attacks.deny, self.attacks.total),
                percent(self.attacks.allow, self.attacks.total),
            )?;
        }

        if !self.errors.first.is_empty() {
            writeln!(f)?;
            writeln!(f, "first errors:")?;
            for error in &self.errors.first {
                writeln!(f, "  line {}: {}", error.line, error.message)?;
            }
        }
        Ok(())
    }
}

fn write_counts(f: &mut fmt::Formatter<'_>, label: &str, counts: &DecisionCounts) -> fmt::Result {
    writeln!(
        f,
        "{:<16}{:>8}{:>8}{:>9}{:>8}",
        label, counts.total, counts.allow, counts.step_up, counts.deny
    )
}

fn percent(part: u64, total: u64) -> String {
    // Counts stay far below 2^52, so the conversion to f64 is exact.
    format!("{:.1}%", part as f64 * 100.0 / total as f64)
}
