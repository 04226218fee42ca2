//! `riskgate train`: fits the logistic risk combiner on a labelled login history replayed
//! through the engine by [`riskgate_engine::replay::offline`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use riskgate_engine::config::Config;
use riskgate_engine::replay::offline::training_replay;
use riskgate_models::features::FEATURE_NAMES;
use riskgate_models::train::{FitOptions, Format, TrainingSetBuilder};

/// Options of `riskgate train`.
pub struct TrainArgs<'a> {
    pub input: &'a Path,
    pub format: Format,
    pub out: &'a Path,
    pub config: &'a Path,
}

/// Runs `riskgate train` and returns the path of the written artifact.
pub fn run(args: &TrainArgs<'_>) -> Result<PathBuf> {
    let started = Instant::now();
    let config = Config::load(args.config)?;
    let records = riskgate_models::train::read_logins(args.input, args.format)
        .with_context(|| format!("cannot read `{}`", args.input.display()))?;
    if records.is_empty() {
        bail!("`{}` contains no logins", args.input.display());
    }
    tracing::info!(
        rows = records.len(),
        seconds = started.elapsed().as_secs_f64(),
        "read the history"
    );
    let (replay, tables) = training_replay(&config, &records)?;
    tracing::info!(
        logins = replay.logins.len(),
        seconds = started.elapsed().as_secs_f64(),
        "replayed the history"
    );
    if replay.rejected > 0 {
        eprintln!(
            "{} rows rejected by the engine were skipped",
            replay.rejected
        );
    }
    let names = FEATURE_NAMES.iter().map(|name| name.to_string()).collect();
    let mut builder = TrainingSetBuilder::new(names);
    for login in &replay.logins {
        let record = &records[login.record];
        builder.push(
            &login.features.values,
            &login.features.evaluable,
            record.is_attack,
            &record.user_id,
        )?;
    }
    let digest = riskgate_models::train::sha256_file(args.input)?;
    let set = builder.finish(tables, digest);
    let artifact = riskgate_models::train::fit(&set, &FitOptions::default())?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "fitted the model"
    );
    artifact.save(args.out)?;
    Ok(args.out.to_path_buf())
}
