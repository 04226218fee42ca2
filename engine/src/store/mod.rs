//! Persistent state behind the engine: profiles, decision records, outcomes and the
//! sliding-window counters.
//!
//! [`Store`] is the seam between the scoring path and a backend. [`sqlite::SqliteStore`] is the
//! single-machine default. Every write that touches more than one row runs in one transaction,
//! so a crash never leaves half an event applied.

pub mod memory;
pub mod sqlite;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use thiserror::Error;

use crate::profile::{AttemptFacts, DecisionKind, EventPlan, Profile};
use crate::request::Outcome;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("cannot create the data directory `{path}`: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("stored {what} for `{key}` is corrupt: {message}")]
    Corrupt {
        what: &'static str,
        key: String,
        message: String,
    },
    #[error("the database lock was poisoned by a panic in another request")]
    Poisoned,
}

/// How long counter rows are kept, measured back from the newest attempt. It must exceed the
/// longest counter window.
pub const COUNTER_RETENTION: Duration = Duration::days(1);

/// The windows the counters are taken over.
#[derive(Debug, Clone, Copy)]
pub struct CounterWindows {
    pub user_failures: Duration,
    pub ip_failures: Duration,
    pub ip_users: Duration,
}

/// Counts taken just before an attempt, over windows that end at the attempt's timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Failed logins and failed MFA of this user.
    pub user_failures: u64,
    /// The same over a fixed 15 minutes, for rules.
    pub user_failures_15m: u64,
    /// Failures from this IP, over all users.
    pub ip_failures: u64,
    /// Distinct other users that attempted to log in from this IP.
    pub ip_other_users: u64,
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub id: String,
    pub user_id: String,
    pub decision: DecisionKind,
    /// The full decision record returned by `GET /v1/decisions/{id}`.
    pub record: serde_json::Value,
    pub facts: AttemptFacts,
}

/// A decision as recorded, with the outcomes reported for it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredDecision {
    pub id: String,
    pub user_id: String,
    pub record: serde_json::Value,
    pub outcomes: Vec<RecordedOutcome>,
    pub learned: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordedOutcome {
    pub outcome: Outcome,
    pub received_at: DateTime<Utc>,
}

/// Effect of applying an outcome.
#[derive(Debug, Clone, Serialize)]
pub struct EventResult {
    pub user_id: String,
    pub plan: EventPlan,
}

/// Rows removed by [`Store::erase_user`].
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Erased {
    pub profiles: u64,
    pub decisions: u64,
    pub counter_rows: u64,
}

pub trait Store: Send + Sync {
    fn load_profile(&self, user_id: &str) -> Result<Option<Arc<Profile>>, StoreError>;

    /// Counts failures and other users in windows ending at `at` (exclusive of later rows).
    fn counters(
        &self,
        user_id: &str,
        ip: &str,
        at: DateTime<Utc>,
        windows: &CounterWindows,
    ) -> Result<Counters, StoreError>;

    /// Records the decision and the attempt it was made for.
    fn record_decision(&self, decision: &NewDecision) -> Result<(), StoreError>;

    fn decision(&self, id: &str) -> Result<Option<StoredDecision>, StoreError>;

    /// Applies `outcome` to decision `id` following [`crate::profile::plan_event`]. Returns
    /// `None` when no such decision exists.
    fn apply_event(
        &self,
        id: &str,
        outcome: Outcome,
        received_at: DateTime<Utc>,
    ) -> Result<Option<EventResult>, StoreError>;

    /// Removes the user's profile, decisions and counter rows.
    fn erase_user(&self, user_id: &str) -> Result<Erased, StoreError>;

    /// Checks that the backend responds.
    fn ping(&self) -> Result<(), StoreError>;

    /// Returns whether [`Store::decision`] returns full decision records. The engine builds
    /// a record only for a store that keeps it.
    fn keeps_records(&self) -> bool {
        true
    }

    /// Returns whether the engine should cache profiles read from this store. A store that
    /// hands out shared in-memory profiles gains nothing from a second cache.
    fn wants_profile_cache(&self) -> bool {
        true
    }
}
