//! `riskgate evaluate`: compares a trained model artifact with the hand-set weights of the
//! rules file on a labelled login history.
//!
//! The history is replayed through the engine with the artifact in force, as the service
//! would run it, and each login's feature vector is scored twice: by the artifact and by the
//! rules file's weights. A login in the learning state is marked as stepped up whatever its
//! risk when the rules file's `[policy] learning` is `step_up` or `deny`.
//! [`riskgate_models::train::evaluate()`] turns the scores into the report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use riskgate_engine::config::Config;
use riskgate_engine::engine::model_from_rules;
use riskgate_engine::model::RiskModel;
use riskgate_engine::replay::offline::replay;
use riskgate_engine::request::normalize_user_id;
use riskgate_engine::rules::{Decision, RuleSet};
use riskgate_models::features::FeatureVector;
use riskgate_models::train::{
    EvaluationReport, EvaluationRow, Format, evaluate, previous_logins, read_logins, sha256_file,
    write_comparison_plots,
};

/// Options of `riskgate evaluate`.
pub struct EvaluateArgs<'a> {
    pub model: &'a Path,
    pub input: &'a Path,
    pub format: Format,
    pub config: &'a Path,
    /// Folder for the SVG plots, or `None` to draw none.
    pub plots: Option<&'a Path>,
}

/// The result of `riskgate evaluate`.
pub struct Evaluation {
    pub report: EvaluationReport,
    /// The plots written, in the order of `write_comparison_plots`.
    pub plots: Vec<PathBuf>,
}

/// Loads the rules file that `config` names.
fn load_rules(config: &Config) -> Result<RuleSet> {
    let path = config.rules_path();
    RuleSet::load(&path).map_err(|diagnostics| {
        anyhow!("rules file `{}` is invalid:\n{diagnostics}", path.display())
    })
}

/// Checks whether the decision steps up or denies a login with `features` whatever its risk:
/// the `learning` signal is 1 (too few verified logins, or a recent compromise report) and
/// `learning_policy` replaces an allow by a step-up or a deny.
///
/// NOTE: the engine skips the learning policy when an enforce rule or the allow list allows
/// the login explicitly. The evaluation runs no rules, so it counts such logins as stepped up.
fn policy_steps_up(features: &FeatureVector, learning_policy: Decision) -> bool {
    learning_policy != Decision::Allow && features.get("learning") == Some(1.0)
}

/// Runs `riskgate evaluate`.
pub fn run(args: &EvaluateArgs<'_>) -> Result<Evaluation> {
    let model = RiskModel::load(args.model)?;
    let training_data_sha256 = model
        .artifact()
        .map(|artifact| artifact.training_data_sha256.clone())
        .unwrap_or_default();
    let config = Config::load(args.config)?;
    let rules = load_rules(&config)?;
    // The baseline: the weights model of the rules file.
    let baseline = model_from_rules(&rules)?;
    let learning_policy = rules.learning_policy();
    let records = read_logins(args.input, args.format)
        .with_context(|| format!("cannot read `{}`", args.input.display()))?;
    if records.is_empty() {
        bail!("`{}` contains no logins", args.input.display());
    }
    let attacks = records.iter().filter(|record| record.is_attack).count();
    if attacks == 0 || attacks == records.len() {
        bail!(
            "`{}` has {attacks} attacks and {} legitimate logins, but an evaluation needs \
             both: label the logins in the `is_attack` column",
            args.input.display(),
            records.len() - attacks
        );
    }
    if sha256_file(args.input)? == training_data_sha256 {
        eprintln!(
            "warning: `{}` is the file the model was trained on, so the figures overstate how \
             well it generalises",
            args.input.display()
        );
    }
    let history = previous_logins(&records, |record| normalize_user_id(&record.user_id));

    let replay = replay(&config, &records, Some(model.clone()))?;
    if replay.rejected > 0 {
        eprintln!(
            "{} rows rejected by the engine were skipped",
            replay.rejected
        );
    }
    let rows: Vec<EvaluationRow> = replay
        .logins
        .iter()
        .map(|login| {
            let record = &records[login.record];
            EvaluationRow {
                risk: model.predict(&login.features).risk,
                baseline_risk: baseline.predict(&login.features).risk,
                is_attack: record.is_attack,
                kind: record.attack_kind,
                previous_logins: history[login.record],
                policy_step_up: policy_steps_up(&login.features, learning_policy),
            }
        })
        .collect();
    let report = evaluate(&rows);

    let plots = match args.plots {
        Some(folder) => {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("cannot create the folder `{}`", folder.display()))?;
            write_comparison_plots(folder, &rows, &report)?
        }
        None => Vec::new(),
    };
    Ok(Evaluation { report, plots })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_steps_up_learning_logins() {
        let mut learning = FeatureVector::default();
        learning.set("learning", 1.0, true);
        let mut verified = FeatureVector::default();
        verified.set("learning", 0.0, true);
        let mut unknown = FeatureVector::default();
        unknown.set("learning", 1.0, false);

        assert!(policy_steps_up(&learning, Decision::StepUp));
        assert!(policy_steps_up(&learning, Decision::Deny));
        assert!(!policy_steps_up(&learning, Decision::Allow));
        assert!(!policy_steps_up(&verified, Decision::StepUp));
        assert!(!policy_steps_up(&unknown, Decision::StepUp));
    }
}
