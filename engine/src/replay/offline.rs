//! Offline replay of a labelled login history, for training and evaluation.
//!
//! The history is replayed in time order through the same [`Engine`] as the service, on an
//! in-memory store, so the feature vectors are those the service would have computed. After
//! each row the outcome the row records is reported, as `riskgate replay` does, so profiles
//! learn only from verified logins here too.
//!
//! Users are split into shards that replay at once, one per core. Logins of different users
//! still share IP counters. So a login waits for the previous login from its address when
//! another shard has it, as [`replay_with`] describes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;
use thiserror::Error;

use super::{Decision, outcomes_for};
use crate::config::Config;
use crate::engine::{Engine, StartError, model_from_rules};
use crate::geo::GeoIp;
use crate::iplists::IpLists;
use crate::model::RiskModel;
use crate::request::{
    Attempt, DeviceInput, EventRequest, KeystrokeEventInput, KeystrokesInput, Outcome,
    ScoreRequest, normalize_user_id,
};
use crate::rules::RuleSet;
use crate::store::COUNTER_RETENTION;
use crate::store::memory::MemoryStore;
use riskgate_models::artifact::{FORMAT_VERSION, ModelArtifact, PlattCalibration};
use riskgate_models::features::{FEATURE_NAMES, FeatureVector};
use riskgate_models::freeman::{GlobalTables, LevelKeys};
use riskgate_models::train::LoginRecord;

/// Decisions the store keeps at most. A replay drops each decision once its outcomes are in,
/// so this bound only matters for logins still being scored, at most one per shard.
const DECISIONS_KEPT: usize = 10_000;
/// Rows whose Freeman keys are computed in parallel at a time while the previous block is
/// counted.
const BLOCK_ROWS: usize = 4096;

/// The window of the engine's fixed `failures_15m` counter, in seconds.
const FIXED_WINDOW_SECONDS: u64 = 15 * 60;

/// Most shards a replay runs at once.
const MAX_SHARDS: usize = 16;

/// Returns the counter windows of `config`, in seconds.
fn counter_windows(config: &Config) -> [u64; 3] {
    [
        config.signals.user_failures_window_seconds,
        config.signals.ip_failures_window_seconds,
        config.signals.ip_users_window_seconds,
    ]
}

/// A failure of an offline replay.
#[derive(Debug, Error)]
pub enum OfflineError {
    #[error("cannot start the engine: {0}")]
    Start(#[from] StartError),
    #[error("rules file `{path}` is invalid:\n{report}")]
    Rules { path: String, report: String },
    /// The engine failed on a valid row; `row` is the row number in the input file.
    #[error("row {row}: {message}")]
    Row { row: usize, message: String },
    #[error("a replay thread panicked")]
    Panicked,
}

pub type Result<T> = std::result::Result<T, OfflineError>;

fn load_rules(config: &Config) -> Result<RuleSet> {
    let path = config.rules_path();
    RuleSet::load(&path).map_err(|diagnostics| OfflineError::Rules {
        path: path.display().to_string(),
        report: diagnostics.to_string(),
    })
}

fn row_error(record: &LoginRecord, message: impl std::fmt::Display) -> OfflineError {
    OfflineError::Row {
        row: record.row,
        message: message.to_string(),
    }
}

/// One replayed login.
#[derive(Debug, Clone)]
pub struct ReplayedLogin {
    /// Index of the login in the replayed records.
    pub record: usize,
    pub features: FeatureVector,
}

/// The feature vectors of a replayed history.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub logins: Vec<ReplayedLogin>,
    /// Rows the engine rejected as invalid requests; they were skipped.
    pub rejected: usize,
}

/// Builds the score request of one recorded login.
pub fn score_request(record: &LoginRecord) -> ScoreRequest {
    ScoreRequest {
        user_id: Some(record.user_id.clone()),
        ip: Some(record.ip.to_string()),
        timestamp: Some(record.timestamp.to_rfc3339()),
        user_agent: record.user_agent.clone(),
        role: record.role.clone(),
        app: record.app.clone(),
        tenant: record.tenant.clone(),
        device: record.device_id.as_ref().map(|id| DeviceInput {
            id: Some(id.clone()),
            attributes: Default::default(),
        }),
        keystrokes: record.keystrokes.as_ref().map(|events| KeystrokesInput {
            events: events
                .iter()
                .map(|event| KeystrokeEventInput {
                    down_ms: event.down_ms,
                    up_ms: event.up_ms,
                })
                .collect(),
        }),
        rtt_ms: record.rtt_ms,
    }
}

fn engine_outcome(outcome: super::Outcome) -> Outcome {
    match outcome {
        super::Outcome::LoginSucceeded => Outcome::LoginSucceeded,
        super::Outcome::LoginFailed => Outcome::LoginFailed,
        super::Outcome::MfaPassed => Outcome::MfaPassed,
        super::Outcome::MfaFailed => Outcome::MfaFailed,
    }
}

/// Validates one record as the HTTP API would; `None` for a row the API would reject.
fn attempt_of(record: &LoginRecord, now: chrono::DateTime<chrono::Utc>) -> Option<Attempt> {
    match score_request(record).into_attempt(now) {
        Ok(attempt) => Some(attempt),
        Err(error) => {
            tracing::debug!(row = record.row, %error, "row rejected");
            None
        }
    }
}

/// Opens an engine over a fresh in-memory store with `model` in force, or the model
/// `config` names when `model` is `None`. Returns the store too, so that a replay can drop
/// each decision once its outcomes are in.
pub fn offline_engine(
    config: &Config,
    model: Option<RiskModel>,
) -> Result<(Engine, Arc<MemoryStore>)> {
    let geo = GeoIp::open(&config.geo, &config.base_dir).map_err(StartError::from)?;
    let lists = IpLists::open(&config.iplists, &config.base_dir).map_err(StartError::from)?;
    let store = Arc::new(MemoryStore::new(config.keystroke, DECISIONS_KEPT, false));
    let engine = Engine::with_store_and_model(config, geo, lists, store.clone(), model)?;
    Ok((engine, store))
}

/// Counts the network and user-agent values of every record, as the Freeman global tables
/// of a new model. Rows that a replay rejects as invalid requests are counted too.
pub fn global_tables(config: &Config, records: &[LoginRecord]) -> Result<GlobalTables> {
    // Only geo-IP and user-agent parsing are used, so the rules' weights do as the model,
    // and a `model` file named in the configuration need not exist yet.
    let model = model_from_rules(&load_rules(config)?)?;
    let (engine, _store) = offline_engine(config, Some(model))?;
    let keys_of = |block: &[LoginRecord]| -> Vec<LevelKeys> {
        block
            .par_iter()
            .map(|record| engine.freeman_keys(record.ip, record.user_agent.as_deref()))
            .collect()
    };
    let mut tables = GlobalTables::default();
    let blocks: Vec<&[LoginRecord]> = records.chunks(BLOCK_ROWS).collect();
    let mut next = blocks
        .first()
        .map(|block| keys_of(block))
        .unwrap_or_default();
    for number in 0..blocks.len() {
        let current = std::mem::take(&mut next);
        // Counting is sequential, so the next block's keys are computed meanwhile.
        ((), next) = rayon::join(
            || {
                for keys in &current {
                    tables.observe_keys(keys);
                }
            },
            || {
                blocks
                    .get(number + 1)
                    .map(|block| keys_of(block))
                    .unwrap_or_default()
            },
        );
    }
    tables.compact();
    Ok(tables)
}

/// Builds a model artifact that scores exactly as the rules file's weights, carrying
/// `tables`, so that a training replay decides as the configured rules would while the
/// Freeman features see the new tables.
pub fn weights_artifact(config: &Config, tables: GlobalTables) -> Result<ModelArtifact> {
    let rules = load_rules(config)?;
    let weights = rules.weights();
    let coefficients = FEATURE_NAMES
        .iter()
        .map(|name| {
            weights
                .iter()
                .find(|(weight_name, _)| weight_name == name)
                .map_or(0.0, |(_, weight)| *weight)
        })
        .collect();
    let mut artifact = ModelArtifact {
        format_version: FORMAT_VERSION,
        model_version: String::new(),
        created_at: chrono::Utc::now(),
        feature_names: FEATURE_NAMES.iter().map(|name| name.to_string()).collect(),
        intercept: rules.bias(),
        coefficients,
        calibration: PlattCalibration::IDENTITY,
        freeman: tables,
        training_data_sha256: String::new(),
        training_rows: 0,
        metrics: serde_json::Value::Null,
    };
    artifact.model_version = format!("weights@{}", rules.version());
    Ok(artifact)
}

/// Replays one login: scores it and reports the outcomes its row records.
fn replay_login(
    engine: &Engine,
    store: &MemoryStore,
    record: &LoginRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<FeatureVector>> {
    let Some(attempt) = attempt_of(record, now) else {
        return Ok(None);
    };
    let (response, features) = engine
        .score_with_features(&attempt)
        .map_err(|error| row_error(record, error))?;
    let decision = Decision::parse(response.decision.as_str())
        .ok_or_else(|| row_error(record, "the engine returned an unknown decision"))?;
    for outcome in outcomes_for(decision, record.login_successful, record.is_attack) {
        engine
            .event(&EventRequest {
                decision_id: response.decision_id.clone(),
                outcome: engine_outcome(*outcome),
                timestamp: None,
            })
            .map_err(|error| row_error(record, error))?;
    }
    store
        .forget_decision(&response.decision_id)
        .map_err(|error| row_error(record, error))?;
    Ok(Some(features))
}

/// The order of a sharded replay and the waits that keep it equal to a sequential one.
struct Schedule {
    /// The time that timestamps may not be later than, the same for every shard.
    now: chrono::DateTime<chrono::Utc>,
    /// Record indexes in time order; "position" below means an index into this list.
    order: Vec<usize>,
    /// Shard of the login at each position.
    shard: Vec<usize>,
    /// Position of the previous login from the same IP address, when another shard has it.
    previous_same_ip: Vec<Option<usize>>,
    /// First position within the lag window of each position: every other shard must have
    /// finished the positions before it.
    lag_start: Vec<usize>,
}

fn shard_of(user_id: &str, shards: usize) -> usize {
    let mut hasher = std::hash::DefaultHasher::new();
    user_id.hash(&mut hasher);
    (hasher.finish() % shards as u64) as usize
}

fn schedule(records: &[LoginRecord], shards: usize, lag: chrono::Duration) -> Schedule {
    let mut order: Vec<usize> = (0..records.len()).collect();
    // Stable, so logins with equal timestamps keep their order in the file.
    order.sort_by_key(|&index| records[index].timestamp);
    let shard: Vec<usize> = order
        .par_iter()
        .map(|&index| shard_of(&normalize_user_id(&records[index].user_id), shards))
        .collect();
    let mut last_by_ip: HashMap<IpAddr, usize> = HashMap::new();
    let mut previous_same_ip = Vec::with_capacity(order.len());
    for (position, &index) in order.iter().enumerate() {
        let ip = records[index].ip.to_canonical();
        let previous = last_by_ip.insert(ip, position);
        previous_same_ip.push(previous.filter(|&earlier| shard[earlier] != shard[position]));
    }
    let mut lag_start = Vec::with_capacity(order.len());
    let mut start = 0;
    for &index in &order {
        let horizon = records[index].timestamp - lag;
        while records[order[start]].timestamp < horizon {
            start += 1;
        }
        lag_start.push(start);
    }
    Schedule {
        now: chrono::Utc::now(),
        order,
        shard,
        previous_same_ip,
        lag_start,
    }
}

/// Waits until `done` reaches `position`; returns `false` when another shard failed.
fn wait_for(done: &AtomicUsize, position: usize, failed: &AtomicBool) -> bool {
    let mut spins = 0u32;
    while done.load(Ordering::Acquire) < position {
        if failed.load(Ordering::Acquire) {
            return false;
        }
        if spins < 100 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
    true
}

/// Replays the logins of one shard. `done[me]` is the shard's progress for the others:
/// every login of this shard at a position below it is finished.
fn replay_shard(
    target: (&Engine, &MemoryStore),
    records: &[LoginRecord],
    schedule: &Schedule,
    me: usize,
    done: &[AtomicUsize],
    failed: &AtomicBool,
) -> Result<Replay> {
    let (engine, store) = target;
    let mut replay = Replay::default();
    for (position, &index) in schedule.order.iter().enumerate() {
        if schedule.shard[position] != me {
            continue;
        }
        if failed.load(Ordering::Acquire) {
            return Ok(replay);
        }
        done[me].store(position, Ordering::Release);
        if let Some(previous) = schedule.previous_same_ip[position]
            && !wait_for(&done[schedule.shard[previous]], previous + 1, failed)
        {
            return Ok(replay);
        }
        for (other, progress) in done.iter().enumerate() {
            if other != me && !wait_for(progress, schedule.lag_start[position], failed) {
                return Ok(replay);
            }
        }
        match replay_login(engine, store, &records[index], schedule.now) {
            Ok(Some(features)) => replay.logins.push(ReplayedLogin {
                record: index,
                features,
            }),
            Ok(None) => replay.rejected += 1,
            Err(error) => {
                failed.store(true, Ordering::Release);
                return Err(error);
            }
        }
        done[me].store(position + 1, Ordering::Release);
    }
    done[me].store(usize::MAX, Ordering::Release);
    Ok(replay)
}

/// Replays `records` through `engine` in time order and returns one feature vector per
/// valid row, in time order. Each row's recorded outcome is reported after it is scored.
///
/// Users are split among one shard per core, and the shards run at once. A login waits for
/// the previous login from its IP address when another shard has it, because IP counters
/// couple users. No shard runs more than [`shard_lag`] of history ahead of another, so
/// pruning old counter rows removes nothing that a slower shard still reads. Every login
/// thus reads the same profile and counters as in a sequential replay, which
/// `tests/parity.rs` checks against the HTTP service.
fn replay_with(
    engine: &Engine,
    store: &MemoryStore,
    records: &[LoginRecord],
    windows: &[u64],
) -> Result<Replay> {
    let shards = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, MAX_SHARDS);
    let schedule = schedule(records, shards, shard_lag(windows));
    let done: Vec<AtomicUsize> = (0..shards).map(|_| AtomicUsize::new(0)).collect();
    let failed = AtomicBool::new(false);
    let results: Vec<Result<Replay>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..shards)
            .map(|me| {
                let (schedule, done, failed) = (&schedule, &done, &failed);
                scope.spawn(move || {
                    // A panicking shard would leave the others waiting for its progress.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        replay_shard((engine, store), records, schedule, me, done, failed)
                    }));
                    let result = result.unwrap_or(Err(OfflineError::Panicked));
                    if result.is_err() {
                        failed.store(true, Ordering::Release);
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(OfflineError::Panicked))
            })
            .collect()
    });
    let mut replay = Replay {
        logins: Vec::with_capacity(records.len()),
        rejected: 0,
    };
    for result in results {
        let part = result?;
        replay.logins.extend(part.logins);
        replay.rejected += part.rejected;
    }
    let position_of: HashMap<usize, usize> = schedule
        .order
        .iter()
        .enumerate()
        .map(|(position, &index)| (index, position))
        .collect();
    replay
        .logins
        .par_sort_unstable_by_key(|login| position_of[&login.record]);
    Ok(replay)
}

/// Returns how far one shard may run ahead of another: the counter retention less the
/// longest counter window, so a prune that the faster shard triggers keeps every row the
/// slower one still counts.
fn shard_lag(windows: &[u64]) -> chrono::Duration {
    let longest = windows
        .iter()
        .copied()
        .chain([FIXED_WINDOW_SECONDS])
        .max()
        .unwrap_or(0);
    let longest = chrono::Duration::seconds(i64::try_from(longest).unwrap_or(i64::MAX / 1000));
    (COUNTER_RETENTION - longest).max(chrono::Duration::zero())
}

/// Replays `records` on a fresh in-memory store with `model` in force, or the model `config`
/// names when `model` is `None`.
pub fn replay(
    config: &Config,
    records: &[LoginRecord],
    model: Option<RiskModel>,
) -> Result<Replay> {
    let (engine, store) = offline_engine(config, model)?;
    replay_with(&engine, &store, records, &counter_windows(config))
}

/// Replays a history for training: Freeman tables are counted from the history, and the
/// configured rules' weights decide, as they would have while the history was recorded.
pub fn training_replay(config: &Config, records: &[LoginRecord]) -> Result<(Replay, GlobalTables)> {
    let started = std::time::Instant::now();
    let tables = global_tables(config, records)?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "counted the Freeman global tables"
    );
    let artifact = weights_artifact(config, tables.clone())?;
    let model = RiskModel::trained(Arc::new(artifact))
        .map_err(|error| OfflineError::Start(StartError::Model(error.to_string())))?;
    let replay = replay(config, records, Some(model))?;
    Ok((replay, tables))
}
