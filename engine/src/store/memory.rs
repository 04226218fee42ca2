//! In-memory backend for offline replays (training, evaluation, rule tests).
//!
//! It follows the same contract as [`super::sqlite::SqliteStore`]: outcomes go through
//! [`plan_event`], counters count rows in windows that end at the attempt's timestamp. Nothing
//! survives the process. Decision records beyond `max_decisions` are evicted oldest first, so a
//! replay of millions of logins keeps only the recent decisions that outcomes still refer to.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

use super::{
    COUNTER_RETENTION, CounterWindows, Counters, Erased, EventResult, NewDecision, RecordedOutcome,
    Store, StoreError, StoredDecision,
};
use crate::profile::{AttemptFacts, DecisionKind, DecisionState, Profile, plan_event};
use crate::request::Outcome;
use riskgate_models::keystroke::TemplateConfig;

struct Decision {
    user_id: String,
    kind: DecisionKind,
    record: Option<serde_json::Value>,
    facts: AttemptFacts,
    outcomes: Vec<RecordedOutcome>,
    learned: bool,
}

/// One user's profile behind its own lock, so that learning, which refits the keystroke
/// template, does not block the store's lock. Readers get the `Arc` and never a copy. A
/// writer copies the profile only while a reader still has the previous version.
type ProfileSlot = Arc<Mutex<Arc<Profile>>>;

#[derive(Default)]
struct State {
    decisions: HashMap<String, Decision>,
    decision_order: VecDeque<String>,
    /// Failure times in milliseconds per user, ascending.
    user_failures: HashMap<String, Vec<i64>>,
    /// Failures per IP as (time in milliseconds, user), ascending by time.
    ip_failures: HashMap<String, Vec<(i64, String)>>,
    /// Latest attempt time in milliseconds per IP and user.
    ip_users: HashMap<String, HashMap<String, i64>>,
    newest_attempt: i64,
    attempts_since_prune: u64,
}

pub struct MemoryStore {
    state: Mutex<State>,
    profiles: Mutex<HashMap<String, ProfileSlot>>,
    keystroke: TemplateConfig,
    max_decisions: usize,
    keep_records: bool,
}

impl MemoryStore {
    /// Creates a store that keeps at most `max_decisions` decisions, with their full records only when
    /// `keep_records` is set.
    pub fn new(keystroke: TemplateConfig, max_decisions: usize, keep_records: bool) -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            profiles: Mutex::new(HashMap::new()),
            keystroke,
            max_decisions: max_decisions.max(1),
            keep_records,
        }
    }

    /// Drops a decision and its facts, for a replay that reported all its outcomes.
    pub fn forget_decision(&self, id: &str) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        state.decisions.remove(id);
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Poisoned)
    }

    fn slot(&self, user_id: &str) -> Result<Option<ProfileSlot>, StoreError> {
        let profiles = self.profiles.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(profiles.get(user_id).cloned())
    }

    fn slot_or_new(&self, user_id: &str) -> Result<ProfileSlot, StoreError> {
        let mut profiles = self.profiles.lock().map_err(|_| StoreError::Poisoned)?;
        let slot = profiles
            .entry(user_id.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(Arc::new(Profile::new(user_id)))));
        Ok(slot.clone())
    }
}

fn insert_sorted(times: &mut Vec<i64>, at: i64) {
    let position = times.partition_point(|time| *time <= at);
    times.insert(position, at);
}

fn insert_sorted_pair(rows: &mut Vec<(i64, String)>, at: i64, user: &str) {
    let position = rows.partition_point(|(time, _)| *time <= at);
    rows.insert(position, (at, user.to_owned()));
}

/// Counts rows in `(from, to]`.
fn count_pairs_in(rows: Option<&Vec<(i64, String)>>, from: i64, to: i64) -> u64 {
    let Some(rows) = rows else {
        return 0;
    };
    let start = rows.partition_point(|(time, _)| *time <= from);
    let end = rows.partition_point(|(time, _)| *time <= to);
    end.saturating_sub(start) as u64
}

/// Counts entries in `(from, to]`.
fn count_in(times: Option<&Vec<i64>>, from: i64, to: i64) -> u64 {
    let Some(times) = times else {
        return 0;
    };
    let start = times.partition_point(|time| *time <= from);
    let end = times.partition_point(|time| *time <= to);
    end.saturating_sub(start) as u64
}

fn prune(state: &mut State) {
    let cutoff = state.newest_attempt - COUNTER_RETENTION.num_milliseconds();
    for times in state.user_failures.values_mut() {
        let keep_from = times.partition_point(|time| *time < cutoff);
        times.drain(..keep_from);
    }
    for failures in state.ip_failures.values_mut() {
        let keep_from = failures.partition_point(|(time, _)| *time < cutoff);
        failures.drain(..keep_from);
    }
    for users in state.ip_users.values_mut() {
        users.retain(|_, last| *last >= cutoff);
    }
    state.user_failures.retain(|_, times| !times.is_empty());
    state.ip_failures.retain(|_, times| !times.is_empty());
    state.ip_users.retain(|_, users| !users.is_empty());
}

impl Store for MemoryStore {
    fn load_profile(&self, user_id: &str) -> Result<Option<Arc<Profile>>, StoreError> {
        let Some(slot) = self.slot(user_id)? else {
            return Ok(None);
        };
        let profile = slot.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(Some(profile.clone()))
    }

    fn counters(
        &self,
        user_id: &str,
        ip: &str,
        at: DateTime<Utc>,
        windows: &CounterWindows,
    ) -> Result<Counters, StoreError> {
        let state = self.lock()?;
        let end = at.timestamp_millis();
        let user_times = state.user_failures.get(user_id);
        let from = end - windows.ip_users.num_milliseconds();
        let others = state.ip_users.get(ip).map_or(0, |users| {
            users
                .iter()
                .filter(|(user, last)| user.as_str() != user_id && **last > from && **last <= end)
                .count()
        });
        Ok(Counters {
            user_failures: count_in(
                user_times,
                end - windows.user_failures.num_milliseconds(),
                end,
            ),
            user_failures_15m: count_in(
                user_times,
                end - Duration::minutes(15).num_milliseconds(),
                end,
            ),
            ip_failures: count_pairs_in(
                state.ip_failures.get(ip),
                end - windows.ip_failures.num_milliseconds(),
                end,
            ),
            ip_other_users: others as u64,
        })
    }

    fn record_decision(&self, decision: &NewDecision) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let at = decision.facts.at.timestamp_millis();
        let last = state
            .ip_users
            .entry(decision.facts.ip.clone())
            .or_default()
            .entry(decision.user_id.clone())
            .or_insert(at);
        *last = (*last).max(at);
        state.newest_attempt = state.newest_attempt.max(at);
        state.attempts_since_prune += 1;
        if state.attempts_since_prune >= 10_000 {
            state.attempts_since_prune = 0;
            prune(&mut state);
        }
        state.decisions.insert(
            decision.id.clone(),
            Decision {
                user_id: decision.user_id.clone(),
                kind: decision.decision,
                record: self.keep_records.then(|| decision.record.clone()),
                facts: decision.facts.clone(),
                outcomes: Vec::new(),
                learned: false,
            },
        );
        state.decision_order.push_back(decision.id.clone());
        while state.decision_order.len() > self.max_decisions {
            if let Some(oldest) = state.decision_order.pop_front() {
                state.decisions.remove(&oldest);
            }
        }
        Ok(())
    }

    fn decision(&self, id: &str) -> Result<Option<StoredDecision>, StoreError> {
        let state = self.lock()?;
        Ok(state.decisions.get(id).map(|decision| StoredDecision {
            id: id.to_owned(),
            user_id: decision.user_id.clone(),
            record: decision.record.clone().unwrap_or(serde_json::Value::Null),
            outcomes: decision.outcomes.clone(),
            learned: decision.learned,
        }))
    }

    fn apply_event(
        &self,
        id: &str,
        outcome: Outcome,
        received_at: DateTime<Utc>,
    ) -> Result<Option<EventResult>, StoreError> {
        let mut guard = self.lock()?;
        let state = &mut *guard;
        let Some(decision) = state.decisions.get_mut(id) else {
            return Ok(None);
        };
        let plan = plan_event(
            &DecisionState {
                decision: decision.kind,
                outcomes: decision
                    .outcomes
                    .iter()
                    .map(|recorded| recorded.outcome)
                    .collect(),
                learned: decision.learned,
            },
            outcome,
        );
        let user_id = decision.user_id.clone();
        if plan.duplicate {
            return Ok(Some(EventResult { user_id, plan }));
        }
        decision.outcomes.push(RecordedOutcome {
            outcome,
            received_at,
        });
        if plan.record_failure {
            let at = decision.facts.at.timestamp_millis();
            insert_sorted(state.user_failures.entry(user_id.clone()).or_default(), at);
            insert_sorted_pair(
                state
                    .ip_failures
                    .entry(decision.facts.ip.clone())
                    .or_default(),
                at,
                &user_id,
            );
        }
        let facts = (plan.learn || plan.unlearn).then(|| decision.facts.clone());
        if plan.learn || plan.unlearn {
            decision.learned = plan.learn;
        }
        if plan.learn || plan.record_failure {
            decision.facts.keystroke_sample = None;
        }
        if plan.learn || plan.unlearn || plan.report_compromise {
            // The profile's lock is taken before the store's is released, so that events
            // and erasures change a profile in the order they changed the decisions.
            let slot = self.slot_or_new(&user_id)?;
            let mut shared = slot.lock().map_err(|_| StoreError::Poisoned)?;
            drop(guard);
            let profile = Arc::make_mut(&mut shared);
            if let Some(facts) = &facts {
                if plan.learn {
                    profile.learn(facts, &self.keystroke);
                } else {
                    profile.unlearn(facts);
                }
            }
            if plan.report_compromise {
                profile.report_compromise(received_at);
            }
        }
        Ok(Some(EventResult { user_id, plan }))
    }

    fn erase_user(&self, user_id: &str) -> Result<Erased, StoreError> {
        let mut guard = self.lock()?;
        let state = &mut *guard;
        let profiles = u64::from(
            self.profiles
                .lock()
                .map_err(|_| StoreError::Poisoned)?
                .remove(user_id)
                .is_some(),
        );
        let before = state.decisions.len();
        state
            .decisions
            .retain(|_, decision| decision.user_id != user_id);
        let decisions = (before - state.decisions.len()) as u64;
        let mut counter_rows = state
            .user_failures
            .remove(user_id)
            .map_or(0, |times| times.len() as u64);
        for failures in state.ip_failures.values_mut() {
            let before = failures.len();
            failures.retain(|(_, user)| user != user_id);
            counter_rows += (before - failures.len()) as u64;
        }
        for users in state.ip_users.values_mut() {
            counter_rows += u64::from(users.remove(user_id).is_some());
        }
        Ok(Erased {
            profiles,
            decisions,
            counter_rows,
        })
    }

    fn keeps_records(&self) -> bool {
        self.keep_records
    }

    fn wants_profile_cache(&self) -> bool {
        false
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Durability, SqliteStore};
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap() + Duration::minutes(minute)
    }

    fn decision(
        index: usize,
        user: &str,
        ip: &str,
        minute: i64,
        kind: DecisionKind,
    ) -> NewDecision {
        NewDecision {
            id: format!("d{index}"),
            user_id: user.into(),
            decision: kind,
            record: serde_json::json!({"n": index}),
            facts: AttemptFacts {
                at: at(minute),
                ip: ip.into(),
                network: ip.into(),
                device_hash: Some(format!("device-{}", index % 3)),
                country: Some(if index.is_multiple_of(4) { "SE" } else { "GB" }.into()),
                city: Some("City".into()),
                latitude: Some(51.0),
                longitude: Some(0.0),
                accuracy_radius_km: Some(20.0),
                hour_local: Some((9 + index % 5) as u32),
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

    /// The same sequence of decisions and outcomes gives the same counters and profiles in
    /// both backends.
    #[test]
    fn memory_and_sqlite_agree() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite =
            SqliteStore::open(dir.path(), Durability::Normal, TemplateConfig::default()).unwrap();
        let memory = MemoryStore::new(TemplateConfig::default(), 1_000, true);
        let stores: [&dyn Store; 2] = [&sqlite, &memory];
        let users = ["alice", "bob", "carol", "dave"];
        let ips = ["1.1.1.1", "2.2.2.2", "3.3.3.3"];
        let outcomes = [
            Outcome::LoginFailed,
            Outcome::LoginSucceeded,
            Outcome::MfaPassed,
            Outcome::MfaFailed,
            Outcome::ReportedNotMe,
        ];
        for index in 0..120 {
            let user = users[index % users.len()];
            let ip = ips[(index / 2) % ips.len()];
            let minute = (index as i64) * 3;
            let kind = if index.is_multiple_of(3) {
                DecisionKind::StepUp
            } else {
                DecisionKind::Allow
            };
            let new = decision(index, user, ip, minute, kind);
            let mut counters = Vec::new();
            for store in stores {
                counters.push(store.counters(user, ip, at(minute), &WINDOWS).unwrap());
                store.record_decision(&new).unwrap();
                for step in 0..2 {
                    let outcome = outcomes[(index + step * 2) % outcomes.len()];
                    store.apply_event(&new.id, outcome, at(minute)).unwrap();
                }
            }
            assert_eq!(counters[0], counters[1], "counters differ at step {index}");
        }
        for user in users {
            assert_eq!(
                sqlite.load_profile(user).unwrap(),
                memory.load_profile(user).unwrap(),
                "profile of {user} differs"
            );
        }
        assert_eq!(
            sqlite.decision("d119").unwrap().unwrap().learned,
            memory.decision("d119").unwrap().unwrap().learned
        );
    }

    #[test]
    fn old_decisions_are_evicted() {
        let memory = MemoryStore::new(TemplateConfig::default(), 2, false);
        for index in 0..3 {
            memory
                .record_decision(&decision(
                    index,
                    "alice",
                    "1.1.1.1",
                    index as i64,
                    DecisionKind::Allow,
                ))
                .unwrap();
        }
        assert!(memory.decision("d0").unwrap().is_none());
        assert!(memory.decision("d2").unwrap().is_some());
        assert!(
            memory
                .apply_event("d0", Outcome::LoginFailed, at(5))
                .unwrap()
                .is_none()
        );
    }
}
