//! Offline replay of a labelled login history, for training and evaluation.
//!
//! The history is replayed in time order through the same [`Engine`] as the service, on an
//! in-memory store, so the feature vectors are those the service would have computed. After
//! each row the outcome the row records is reported, as `riskgate replay` does, so profiles
//! learn only from verified logins here too.
//!
//! The replay itself stays sequential: failures from one IP address raise the risk of every
//! user behind it, and whether a failure is counted depends on earlier decisions, so users
//! cannot be replayed independently without changing the features. What does not depend on
//! history runs in parallel with rayon: request validation, geo-IP, IP lists, keystroke
//! features and user-agent parsing for the next block of rows are computed while the
//! current block is scored.

use std::sync::Arc;

use rayon::prelude::*;
use thiserror::Error;

use super::{Decision, outcomes_for};
use crate::config::Config;
use crate::engine::{Engine, Enrichment, StartError};
use crate::geo::GeoIp;
use crate::iplists::IpLists;
use crate::model::RiskModel;
use crate::request::{
    Attempt, DeviceInput, EventRequest, KeystrokeEventInput, KeystrokesInput, Outcome, ScoreRequest,
};
use crate::rules::RuleSet;
use crate::store::memory::MemoryStore;
use riskgate_models::artifact::{FORMAT_VERSION, ModelArtifact, PlattCalibration};
use riskgate_models::features::{FEATURE_NAMES, FeatureVector};
use riskgate_models::freeman::GlobalTables;
use riskgate_models::train::LoginRecord;

/// Decisions kept for outcomes; a replay reports each row's outcome right after scoring it.
const DECISIONS_KEPT: usize = 10_000;
/// Rows enriched in parallel while the previous block is scored.
const BLOCK_ROWS: usize = 4096;

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
/// `config` names when `model` is `None`.
pub fn offline_engine(config: &Config, model: Option<RiskModel>) -> Result<Engine> {
    let geo = GeoIp::open(&config.geo, &config.base_dir).map_err(StartError::from)?;
    let lists = IpLists::open(&config.iplists, &config.base_dir).map_err(StartError::from)?;
    let store = Arc::new(MemoryStore::new(config.keystroke, DECISIONS_KEPT, false));
    Ok(Engine::with_store_and_model(
        config, geo, lists, store, model,
    )?)
}

/// Counts the network and user-agent values of every valid record, as the Freeman global
/// tables of a new model.
pub fn global_tables(config: &Config, records: &[LoginRecord]) -> Result<GlobalTables> {
    let engine = offline_engine(config, None)?;
    let now = chrono::Utc::now();
    let mut tables = GlobalTables::default();
    for block in records.chunks(BLOCK_ROWS) {
        let keys: Vec<_> = block
            .par_iter()
            .filter_map(|record| attempt_of(record, now))
            .map(|attempt| engine.freeman_keys(&attempt))
            .collect();
        for key in &keys {
            tables.observe_keys(key);
        }
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

type Prepared = Option<(Attempt, Enrichment)>;

fn prepare_block(engine: &Engine, block: &[LoginRecord]) -> Vec<Prepared> {
    let now = chrono::Utc::now();
    block
        .par_iter()
        .map(|record| {
            let attempt = attempt_of(record, now)?;
            let enrichment = engine.enrich(&attempt);
            Some((attempt, enrichment))
        })
        .collect()
}

fn score_block(
    engine: &Engine,
    records: &[LoginRecord],
    first: usize,
    prepared: Vec<Prepared>,
    replay: &mut Replay,
) -> Result<()> {
    for (offset, prepared) in prepared.into_iter().enumerate() {
        let index = first + offset;
        let record = &records[index];
        let Some((attempt, enrichment)) = prepared else {
            replay.rejected += 1;
            continue;
        };
        let (response, features) = engine
            .score_enriched(&attempt, enrichment)
            .map_err(|error| row_error(record, error))?;
        replay.logins.push(ReplayedLogin {
            record: index,
            features,
        });
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
    }
    Ok(())
}

/// Replays `records`, which must be in time order, through `engine` and returns one feature
/// vector per valid row. Each row's recorded outcome is reported after it is scored.
pub fn replay_with(engine: &Engine, records: &[LoginRecord]) -> Result<Replay> {
    let mut replay = Replay {
        logins: Vec::with_capacity(records.len()),
        rejected: 0,
    };
    let blocks: Vec<&[LoginRecord]> = records.chunks(BLOCK_ROWS).collect();
    let mut next = blocks
        .first()
        .map(|block| prepare_block(engine, block))
        .unwrap_or_default();
    for (number, _) in blocks.iter().enumerate() {
        let current = std::mem::take(&mut next);
        let (scored, prepared) = rayon::join(
            || score_block(engine, records, number * BLOCK_ROWS, current, &mut replay),
            || {
                blocks
                    .get(number + 1)
                    .map(|block| prepare_block(engine, block))
                    .unwrap_or_default()
            },
        );
        scored?;
        next = prepared;
    }
    Ok(replay)
}

/// Replays `records` on a fresh in-memory store with `model` in force, or the model `config`
/// names when `model` is `None`.
pub fn replay(
    config: &Config,
    records: &[LoginRecord],
    model: Option<RiskModel>,
) -> Result<Replay> {
    let engine = offline_engine(config, model)?;
    replay_with(&engine, records)
}

/// Replays a history for training: Freeman tables are counted from the history, and the
/// configured rules' weights decide, as they would have while the history was recorded.
pub fn training_replay(config: &Config, records: &[LoginRecord]) -> Result<(Replay, GlobalTables)> {
    let tables = global_tables(config, records)?;
    let artifact = weights_artifact(config, tables.clone())?;
    let model = RiskModel::trained(Arc::new(artifact))
        .map_err(|error| OfflineError::Start(StartError::Model(error.to_string())))?;
    let replay = replay(config, records, Some(model))?;
    Ok((replay, tables))
}
