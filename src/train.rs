//! `riskgate train`: fits the logistic risk combiner on a labelled login history.
//!
//! The history is replayed in time order through the same [`Engine`] as the service, on an
//! in-memory store, so the feature vectors are those the service would have computed. After
//! each row the outcome the row records is reported, as `riskgate replay` does, so profiles
//! learn only from verified logins here too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use riskgate_engine::config::Config;
use riskgate_engine::engine::Engine;
use riskgate_engine::geo::GeoIp;
use riskgate_engine::iplists::IpLists;
use riskgate_engine::replay::{Decision, outcomes_for};
use riskgate_engine::request::{
    DeviceInput, EventRequest, KeystrokeEventInput, KeystrokesInput, Outcome, ScoreRequest,
    normalize_user_id,
};
use riskgate_engine::store::memory::MemoryStore;
use riskgate_models::features::{FEATURE_NAMES, FeatureVector};
use riskgate_models::freeman::GlobalTables;
use riskgate_models::train::{FitOptions, Format, LoginRecord, TrainingSetBuilder};

/// Decisions kept for outcomes; a replay reports each row's outcome right after scoring it.
const DECISIONS_KEPT: usize = 10_000;

/// Options of `riskgate train`.
pub struct TrainArgs<'a> {
    pub input: &'a Path,
    pub format: Format,
    pub out: &'a Path,
    pub config: &'a Path,
}

/// Builds the score request of one recorded login.
fn score_request(record: &LoginRecord) -> ScoreRequest {
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

fn engine_outcome(outcome: riskgate_engine::replay::Outcome) -> Outcome {
    match outcome {
        riskgate_engine::replay::Outcome::LoginSucceeded => Outcome::LoginSucceeded,
        riskgate_engine::replay::Outcome::LoginFailed => Outcome::LoginFailed,
        riskgate_engine::replay::Outcome::MfaPassed => Outcome::MfaPassed,
        riskgate_engine::replay::Outcome::MfaFailed => Outcome::MfaFailed,
    }
}

/// The feature vectors of a replayed history.
pub struct Replay {
    /// One entry per login the engine accepted, in the order of the records.
    pub logins: Vec<ReplayedLogin>,
    /// Number of records the engine rejected as invalid requests, which have no entry.
    pub rejected: usize,
}

/// The feature vector the engine computed for one record.
pub struct ReplayedLogin {
    /// Index into the replayed records.
    pub record: usize,
    pub features: FeatureVector,
}

/// Replays `records`, in slice order, through an in-memory engine and returns the feature
/// vector of each login. Rows the engine rejects are counted and skipped.
pub fn replay(config: &Config, records: &[LoginRecord]) -> Result<Replay> {
    let geo = GeoIp::open(&config.geo, &config.base_dir)?;
    let lists = IpLists::open(&config.iplists, &config.base_dir)?;
    let store = Arc::new(MemoryStore::new(config.keystroke, DECISIONS_KEPT, false));
    let engine = Engine::with_store(config, geo, lists, store)?;
    let mut logins = Vec::with_capacity(records.len());
    let mut rejected = 0;
    let now = chrono::Utc::now();
    for (index, record) in records.iter().enumerate() {
        let attempt = match score_request(record).into_attempt(now) {
            Ok(attempt) => attempt,
            Err(error) => {
                rejected += 1;
                tracing::debug!(row = record.row, %error, "row rejected");
                continue;
            }
        };
        let (response, features) = engine
            .score_with_features(&attempt)
            .map_err(|error| anyhow::anyhow!("row {}: {error}", record.row))?;
        logins.push(ReplayedLogin {
            record: index,
            features,
        });
        let decision = Decision::parse(response.decision.as_str())
            .ok_or_else(|| anyhow::anyhow!("row {}: unknown decision", record.row))?;
        for outcome in outcomes_for(decision, record.login_successful, record.is_attack) {
            engine
                .event(&EventRequest {
                    decision_id: response.decision_id.clone(),
                    outcome: engine_outcome(*outcome),
                    timestamp: None,
                })
                .map_err(|error| anyhow::anyhow!("row {}: {error}", record.row))?;
        }
    }
    Ok(Replay { logins, rejected })
}

/// Replays `records` and collects one training row per accepted login.
fn training_rows(config: &Config, records: &[LoginRecord]) -> Result<(TrainingSetBuilder, usize)> {
    let replay = replay(config, records)?;
    let names = FEATURE_NAMES.iter().map(|name| name.to_string()).collect();
    let mut builder = TrainingSetBuilder::new(names);
    for login in &replay.logins {
        let record = &records[login.record];
        // The engine's user id, so that held-out users match the engine's notion of a user.
        builder.push(
            &login.features.values,
            &login.features.evaluable,
            record.is_attack,
            &normalize_user_id(&record.user_id),
        )?;
    }
    Ok((builder, replay.rejected))
}

/// Runs `riskgate train` and returns the path of the written artifact.
pub fn run(args: &TrainArgs<'_>) -> Result<PathBuf> {
    let config = Config::load(args.config)?;
    let records = riskgate_models::train::read_logins(args.input, args.format)
        .with_context(|| format!("cannot read `{}`", args.input.display()))?;
    if records.is_empty() {
        bail!("`{}` contains no logins", args.input.display());
    }
    let (builder, rejected) = training_rows(&config, &records)?;
    if rejected > 0 {
        eprintln!("{rejected} rows rejected by the engine were skipped");
    }
    let digest = riskgate_models::train::sha256_file(args.input)?;
    // NOTE: the Freeman et al. likelihood features are not yet part of the online feature
    // vector, so the artifact carries empty tables and the combiner uses the signals only.
    let set = builder.finish(GlobalTables::default(), digest);
    let artifact = riskgate_models::train::fit(&set, &FitOptions::default())?;
    artifact.save(args.out)?;
    Ok(args.out.to_path_buf())
}
