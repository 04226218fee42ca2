//! SQLite backend: one file in the data directory, WAL journal, one connection behind a mutex.
//!
//! With `synchronous = FULL` a committed transaction survives both a process kill and a power
//! loss; `NORMAL` survives a process kill only. Counter rows older than a day before the newest
//! attempt are pruned as attempts arrive, so the tables stay small whatever the traffic.
//! `ip_users` keeps one row per IP and user with the user's latest attempt, so counting the
//! other users of an IP reads one row per user, however many attempts they made.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Deserialize;

use super::{
    COUNTER_RETENTION, CounterWindows, Counters, Erased, EventResult, NewDecision, RecordedOutcome,
    Store, StoreError, StoredDecision,
};
use crate::profile::{AttemptFacts, DecisionKind, DecisionState, Profile, plan_event};
use crate::request::Outcome;
use riskgate_models::keystroke::TemplateConfig;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "riskgate.sqlite3";

/// Prune counter rows once every this many recorded attempts.
const PRUNE_EVERY: u64 = 1_000;

/// Durability of a committed transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Survives a power loss: SQLite `synchronous = FULL`.
    #[default]
    Full,
    /// Survives a process crash: SQLite `synchronous = NORMAL`.
    Normal,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS profiles (
    user_id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    decision TEXT NOT NULL,
    record TEXT NOT NULL,
    facts TEXT NOT NULL,
    learned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS decisions_by_user ON decisions(user_id, at);
-- Decisions still holding a keystroke sample, so that pruning does not scan every decision.
CREATE INDEX IF NOT EXISTS decisions_with_keystrokes ON decisions(at)
    WHERE json_extract(facts, '$.keystroke_sample') IS NOT NULL;
CREATE TABLE IF NOT EXISTS outcomes (
    decision_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (decision_id, outcome)
);
CREATE TABLE IF NOT EXISTS failures (
    user_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_by_user ON failures(user_id, at);
CREATE INDEX IF NOT EXISTS failures_by_ip ON failures(ip, at);
CREATE TABLE IF NOT EXISTS ip_users (
    ip TEXT NOT NULL,
    user_id TEXT NOT NULL,
    last_at INTEGER NOT NULL,
    PRIMARY KEY (ip, user_id)
);
CREATE INDEX IF NOT EXISTS ip_users_by_time ON ip_users(ip, last_at);
CREATE INDEX IF NOT EXISTS ip_users_by_user ON ip_users(user_id);
";

pub struct SqliteStore {
    path: PathBuf,
    keystroke: TemplateConfig,
    connection: Mutex<Connection>,
    attempts_recorded: std::sync::atomic::AtomicU64,
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn corrupt(what: &'static str, key: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        key: key.to_owned(),
        message: error.to_string(),
    }
}

impl SqliteStore {
    /// Opens or creates the database in `data_dir`; `keystroke` configures the keystroke
    /// templates that verified logins enrol into.
    pub fn open(
        data_dir: &Path,
        durability: Durability,
        keystroke: TemplateConfig,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let connection = Connection::open(&path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        connection.pragma_update(None, "synchronous", synchronous)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.set_prepared_statement_cache_capacity(64);
        // 64 MiB of page cache (a negative size is in KiB) keeps recent decisions and the
        // counter indexes in memory.
        connection.pragma_update(None, "cache_size", -65_536)?;
        connection.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            path,
            keystroke,
            connection: Mutex::new(connection),
            attempts_recorded: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.connection.lock().map_err(|_| StoreError::Poisoned)
    }
}

fn read_profile(connection: &Connection, user_id: &str) -> Result<Option<Profile>, StoreError> {
    let text: Option<String> = connection
        .prepare_cached("SELECT profile FROM profiles WHERE user_id = ?1")?
        .query_row(params![user_id], |row| row.get(0))
        .optional()?;
    text.map(|text| serde_json::from_str(&text).map_err(|e| corrupt("profile", user_id, e)))
        .transpose()
}

fn write_profile(
    connection: &Connection,
    profile: &Profile,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let text =
        serde_json::to_string(profile).map_err(|e| corrupt("profile", &profile.user_id, e))?;
    connection.prepare_cached("INSERT INTO profiles (user_id, profile, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(user_id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at")?.execute(
        params![profile.user_id, text, millis(now)],
    )?;
    Ok(())
}

fn count(
    connection: &Connection,
    sql: &str,
    key: &str,
    from: i64,
    to: i64,
) -> Result<u64, StoreError> {
    let value: i64 = connection
        .prepare_cached(sql)?
        .query_row(params![key, from, to], |row| row.get(0))?;
    Ok(u64::try_from(value).unwrap_or(0))
}

impl Store for SqliteStore {
    fn load_profile(&self, user_id: &str) -> Result<Option<Arc<Profile>>, StoreError> {
        let connection = self.lock()?;
        Ok(read_profile(&connection, user_id)?.map(Arc::new))
    }

    fn counters(
        &self,
        user_id: &str,
        ip: &str,
        at: DateTime<Utc>,
        windows: &CounterWindows,
    ) -> Result<Counters, StoreError> {
        let connection = self.lock()?;
        let end = millis(at);
        let user_failures = count(
            &connection,
            "SELECT COUNT(*) FROM failures WHERE user_id = ?1 AND at > ?2 AND at <= ?3",
            user_id,
            end - windows.user_failures.num_milliseconds(),
            end,
        )?;
        let user_failures_15m = count(
            &connection,
            "SELECT COUNT(*) FROM failures WHERE user_id = ?1 AND at > ?2 AND at <= ?3",
            user_id,
            end - Duration::minutes(15).num_milliseconds(),
            end,
        )?;
        let ip_failures = count(
            &connection,
            "SELECT COUNT(*) FROM failures WHERE ip = ?1 AND at > ?2 AND at <= ?3",
            ip,
            end - windows.ip_failures.num_milliseconds(),
            end,
        )?;
        let other_users: i64 = connection
            .prepare_cached(
                "SELECT COUNT(*) FROM ip_users
             WHERE ip = ?1 AND last_at > ?2 AND last_at <= ?3 AND user_id <> ?4",
            )?
            .query_row(
                params![ip, end - windows.ip_users.num_milliseconds(), end, user_id],
                |row| row.get(0),
            )?;
        Ok(Counters {
            user_failures,
            user_failures_15m,
            ip_failures,
            ip_other_users: u64::try_from(other_users).unwrap_or(0),
        })
    }

    fn record_decision(&self, decision: &NewDecision) -> Result<(), StoreError> {
        let record = serde_json::to_string(&decision.record)
            .map_err(|e| corrupt("decision record", &decision.id, e))?;
        let facts = serde_json::to_string(&decision.facts)
            .map_err(|e| corrupt("decision facts", &decision.id, e))?;
        let at = millis(decision.facts.at);
        let mut connection = self.lock()?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.prepare_cached("INSERT INTO decisions (id, user_id, at, decision, record, facts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(
            params![decision.id, decision.user_id, at, decision.decision.as_str(), record, facts],
        )?;
        transaction
            .prepare_cached(
                "INSERT INTO ip_users (ip, user_id, last_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(ip, user_id) DO UPDATE SET last_at = max(last_at, excluded.last_at)",
            )?
            .execute(params![decision.facts.ip, decision.user_id, at])?;
        let recorded = self
            .attempts_recorded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if recorded % PRUNE_EVERY == PRUNE_EVERY - 1 {
            let newest: i64 = transaction
                .prepare_cached("SELECT COALESCE(MAX(last_at), 0) FROM ip_users")?
                .query_row([], |row| row.get(0))?;
            let cutoff = newest - COUNTER_RETENTION.num_milliseconds();
            transaction
                .prepare_cached("DELETE FROM ip_users WHERE last_at < ?1")?
                .execute(params![cutoff])?;
            transaction
                .prepare_cached("DELETE FROM failures WHERE at < ?1")?
                .execute(params![cutoff])?;
            // Keystroke samples of decisions whose outcome never came are not kept longer.
            transaction
                .prepare_cached(
                    "UPDATE decisions SET facts = json_remove(facts, '$.keystroke_sample')
                 WHERE at < ?1 AND json_extract(facts, '$.keystroke_sample') IS NOT NULL",
                )?
                .execute(params![cutoff])?;
        }
        transaction.commit()?;
        Ok(())
    }

    fn decision(&self, id: &str) -> Result<Option<StoredDecision>, StoreError> {
        let connection = self.lock()?;
        let row: Option<(String, String, bool)> = connection
            .prepare_cached("SELECT user_id, record, learned FROM decisions WHERE id = ?1")?
            .query_row(params![id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let Some((user_id, record, learned)) = row else {
            return Ok(None);
        };
        let record =
            serde_json::from_str(&record).map_err(|e| corrupt("decision record", id, e))?;
        let mut statement = connection.prepare_cached(
            "SELECT outcome, received_at FROM outcomes WHERE decision_id = ?1 ORDER BY received_at, rowid",
        )?;
        let mut outcomes = Vec::new();
        let rows = statement.query_map(params![id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (text, received) = row?;
            let outcome = Outcome::parse(&text).ok_or_else(|| corrupt("outcome", id, &text))?;
            outcomes.push(RecordedOutcome {
                outcome,
                received_at: from_millis(received),
            });
        }
        Ok(Some(StoredDecision {
            id: id.to_owned(),
            user_id,
            record,
            outcomes,
            learned,
        }))
    }

    fn apply_event(
        &self,
        id: &str,
        outcome: Outcome,
        received_at: DateTime<Utc>,
    ) -> Result<Option<EventResult>, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(String, String, String, bool)> = transaction
            .prepare_cached(
                "SELECT user_id, decision, facts, learned FROM decisions WHERE id = ?1",
            )?
            .query_row(params![id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?;
        let Some((user_id, decision, facts, learned)) = row else {
            return Ok(None);
        };
        let decision = DecisionKind::parse(&decision)
            .ok_or_else(|| corrupt("decision kind", id, &decision))?;
        let facts: AttemptFacts =
            serde_json::from_str(&facts).map_err(|e| corrupt("decision facts", id, e))?;

        let mut statement =
            transaction.prepare_cached("SELECT outcome FROM outcomes WHERE decision_id = ?1")?;
        let mut outcomes = Vec::new();
        for text in statement.query_map(params![id], |row| row.get::<_, String>(0))? {
            let text = text?;
            outcomes.push(Outcome::parse(&text).ok_or_else(|| corrupt("outcome", id, &text))?);
        }
        drop(statement);

        let state = DecisionState {
            decision,
            outcomes,
            learned,
        };
        let plan = plan_event(&state, outcome);
        if plan.duplicate {
            return Ok(Some(EventResult { user_id, plan }));
        }

        transaction
            .prepare_cached(
                "INSERT INTO outcomes (decision_id, outcome, received_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, outcome.as_str(), millis(received_at)])?;
        if plan.record_failure {
            transaction
                .prepare_cached("INSERT INTO failures (user_id, ip, at) VALUES (?1, ?2, ?3)")?
                .execute(params![user_id, facts.ip, millis(facts.at)])?;
        }
        if plan.learn || plan.unlearn || plan.report_compromise {
            let mut profile =
                read_profile(&transaction, &user_id)?.unwrap_or_else(|| Profile::new(&user_id));
            if plan.learn {
                profile.learn(&facts, &self.keystroke);
            } else if plan.unlearn {
                profile.unlearn(&facts);
            }
            if plan.report_compromise {
                profile.report_compromise(received_at);
            }
            write_profile(&transaction, &profile, received_at)?;
            if plan.learn || plan.unlearn {
                transaction
                    .prepare_cached("UPDATE decisions SET learned = ?2 WHERE id = ?1")?
                    .execute(params![id, plan.learn])?;
            }
        }
        if plan.learn || plan.record_failure {
            // The keystroke sample was kept only to be learned: drop it once the outcome
            // is known.
            transaction.prepare_cached("UPDATE decisions SET facts = json_remove(facts, '$.keystroke_sample') WHERE id = ?1")?.execute(
                params![id],
            )?;
        }
        transaction.commit()?;
        Ok(Some(EventResult { user_id, plan }))
    }

    fn erase_user(&self, user_id: &str) -> Result<Erased, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.prepare_cached("DELETE FROM outcomes WHERE decision_id IN (SELECT id FROM decisions WHERE user_id = ?1)")?.execute(
            params![user_id],
        )?;
        let decisions = transaction
            .prepare_cached("DELETE FROM decisions WHERE user_id = ?1")?
            .execute(params![user_id])?;
        let profiles = transaction
            .prepare_cached("DELETE FROM profiles WHERE user_id = ?1")?
            .execute(params![user_id])?;
        let failures = transaction
            .prepare_cached("DELETE FROM failures WHERE user_id = ?1")?
            .execute(params![user_id])?;
        let attempts = transaction
            .prepare_cached("DELETE FROM ip_users WHERE user_id = ?1")?
            .execute(params![user_id])?;
        transaction.commit()?;
        Ok(Erased {
            profiles: profiles as u64,
            decisions: decisions as u64,
            counter_rows: (failures + attempts) as u64,
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        let connection = self.lock()?;
        connection
            .prepare_cached("SELECT 1")?
            .query_row([], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap() + Duration::minutes(minute)
    }

    fn new_decision(
        id: &str,
        user: &str,
        ip: &str,
        minute: i64,
        kind: DecisionKind,
    ) -> NewDecision {
        NewDecision {
            id: id.into(),
            user_id: user.into(),
            decision: kind,
            record: serde_json::json!({"decision_id": id}),
            facts: AttemptFacts {
                at: at(minute),
                ip: ip.into(),
                network: ip.into(),
                device_hash: Some("d".into()),
                country: Some("GB".into()),
                city: Some("London".into()),
                latitude: Some(51.5),
                longitude: Some(-0.09),
                accuracy_radius_km: Some(10.0),
                hour_local: Some(9),
                keystroke_sample: None,
                freeman_keys: None,
            },
        }
    }

    const WINDOWS: CounterWindows = CounterWindows {
        user_failures: Duration::minutes(15),
        ip_failures: Duration::hours(1),
        ip_users: Duration::hours(1),
    };

    #[test]
    fn event_learns_and_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store =
                SqliteStore::open(dir.path(), Durability::Full, TemplateConfig::default()).unwrap();
            store
                .record_decision(&new_decision(
                    "d1",
                    "alice",
                    "1.1.1.1",
                    0,
                    DecisionKind::Allow,
                ))
                .unwrap();
            let result = store
                .apply_event("d1", Outcome::LoginSucceeded, at(1))
                .unwrap()
                .unwrap();
            assert!(result.plan.learn);
        }
        let store =
            SqliteStore::open(dir.path(), Durability::Full, TemplateConfig::default()).unwrap();
        let profile = store.load_profile("alice").unwrap().unwrap();
        assert_eq!(profile.verified_logins, 1);
        let stored = store.decision("d1").unwrap().unwrap();
        assert!(stored.learned);
        assert_eq!(stored.outcomes.len(), 1);
        let again = store
            .apply_event("d1", Outcome::LoginSucceeded, at(2))
            .unwrap()
            .unwrap();
        assert!(again.plan.duplicate);
        assert_eq!(
            store
                .load_profile("alice")
                .unwrap()
                .unwrap()
                .verified_logins,
            1
        );
    }

    #[test]
    fn counters_use_attempt_time_windows() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path(), Durability::Normal, TemplateConfig::default()).unwrap();
        for minute in 0..10 {
            let id = format!("f{minute}");
            store
                .record_decision(&new_decision(
                    &id,
                    "alice",
                    "1.1.1.1",
                    minute,
                    DecisionKind::StepUp,
                ))
                .unwrap();
            store
                .apply_event(&id, Outcome::LoginFailed, at(minute))
                .unwrap();
        }
        for (index, user) in ["bob", "carol", "dave"].iter().enumerate() {
            store
                .record_decision(&new_decision(
                    &format!("u{index}"),
                    user,
                    "1.1.1.1",
                    11,
                    DecisionKind::Allow,
                ))
                .unwrap();
        }
        let counters = store
            .counters("alice", "1.1.1.1", at(12), &WINDOWS)
            .unwrap();
        assert_eq!(counters.user_failures, 10);
        assert_eq!(counters.ip_failures, 10);
        assert_eq!(counters.ip_other_users, 3);
        let later = store
            .counters("alice", "1.1.1.1", at(30), &WINDOWS)
            .unwrap();
        assert_eq!(later.user_failures, 0);
        assert_eq!(later.ip_failures, 10);
        let before = store
            .counters("alice", "1.1.1.1", at(-1), &WINDOWS)
            .unwrap();
        assert_eq!(before, Counters::default());
    }

    #[test]
    fn unknown_decision_returns_none() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path(), Durability::Full, TemplateConfig::default()).unwrap();
        assert!(
            store
                .apply_event("missing", Outcome::LoginFailed, at(0))
                .unwrap()
                .is_none()
        );
        assert!(store.decision("missing").unwrap().is_none());
    }

    #[test]
    fn erase_removes_every_row_of_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path(), Durability::Full, TemplateConfig::default()).unwrap();
        store
            .record_decision(&new_decision(
                "d1",
                "alice",
                "1.1.1.1",
                0,
                DecisionKind::Allow,
            ))
            .unwrap();
        store
            .apply_event("d1", Outcome::LoginSucceeded, at(1))
            .unwrap();
        store
            .record_decision(&new_decision(
                "d2",
                "bob",
                "1.1.1.1",
                0,
                DecisionKind::Allow,
            ))
            .unwrap();
        let erased = store.erase_user("alice").unwrap();
        assert_eq!(erased.profiles, 1);
        assert_eq!(erased.decisions, 1);
        assert!(store.load_profile("alice").unwrap().is_none());
        assert!(store.decision("d1").unwrap().is_none());
        assert!(store.decision("d2").unwrap().is_some());
    }
}
