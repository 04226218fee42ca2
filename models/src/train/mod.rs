//! Offline training and evaluation of the login-risk model (behind the `train` feature).
//!
//! The steps, in order:
//!
//! 1. [`read_logins`] reads a history export (riskgate or RBA dataset layout, CSV or Parquet)
//!    with polars into [`LoginRecord`]s sorted by time.
//! 2. The engine replays those logins through its online signal code and fills a
//!    [`TrainingSet`]: one row of feature values per login, 0 where a feature was not
//!    evaluable, with the label and the user.
//! 3. [`fit`] trains a class-weighted L2 logistic regression with linfa, calibrates it with
//!    Platt scaling on held-out users, and returns a [`ModelArtifact`](crate::artifact::ModelArtifact).
//! 4. [`metrics`] and [`plots`] report how well scores separate attacks from legitimate
//!    logins: ROC AUC, attacks caught at a re-authentication rate, per attack kind and per
//!    history size. [`evaluate()`] gathers them into one report that compares a trained
//!    model with the hand-set weights of the rules file.

use std::path::PathBuf;

use thiserror::Error;

pub mod evaluate;
pub mod fit;
pub mod metrics;
pub mod plots;
pub mod read;

pub use evaluate::{
    EvaluationReport, EvaluationRow, HistoryReauth, KindEvaluation, KindEvaluations,
    TargetedByHistory, evaluate, previous_logins,
};
pub use fit::{
    ClassWeight, FitMetrics, FitOptions, TrainingSet, TrainingSetBuilder, fit, split_by_user,
};
pub use metrics::{
    HistoryBucket, KindReport, OperatingPoint, RocPoint, ScoredLogin, by_attack_kind, by_history,
    caught_at_reauth, reauth_at_caught, roc_auc, roc_curve,
};
pub use plots::{
    plot_rates_by_history, plot_reauth_by_history, plot_roc_curves, plot_roc_curves_titled,
    plot_score_distributions, plot_score_distributions_titled, write_comparison_plots,
    write_evaluation_plots,
};
pub use read::{
    AttackKind, Format, LoginRecord, LoginsRead, RowError, read_logins, read_logins_skipping,
    sha256_file,
};

/// An error of reading, fitting or plotting.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error("failed to read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` has an unsupported file extension: use `.csv`, `.parquet` or `.pq`")]
    UnsupportedExtension { path: PathBuf },
    #[error("failed to read `{path}` with polars: {source}")]
    Polars {
        path: PathBuf,
        source: polars::error::PolarsError,
    },
    #[error("`{path}` has no column `{column}`, which the {format} layout requires")]
    MissingColumn {
        path: PathBuf,
        column: &'static str,
        format: Format,
    },
    #[error("`{path}`: {error}")]
    InvalidRow { path: PathBuf, error: RowError },
    #[error("the training set has no rows")]
    EmptyTrainingSet,
    #[error("training set shape mismatch: expected {expected} {dimension}, got {actual}")]
    ShapeMismatch {
        dimension: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("training row {row} has a non-finite value `{value}` for feature `{feature}`")]
    NonFiniteValue {
        row: usize,
        feature: String,
        value: f64,
    },
    #[error("invalid fit option `{name}`: `{value}` ({expected})")]
    InvalidOption {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "the {part} part has {attacks} attacks and {legitimate} legitimate logins, but both \
         classes are needed: add labelled attacks or change `holdout_fraction` or `seed`"
    )]
    SingleClass {
        part: &'static str,
        attacks: usize,
        legitimate: usize,
    },
    #[error("logistic regression failed: {0}")]
    Linfa(#[from] linfa_logistic::error::Error),
    #[error("the fitted model has a non-finite {field}: `{value}`; try a larger `l2`")]
    NonFiniteModel { field: String, value: f64 },
    #[error(
        "the calibration slope on held-out users is `{0}`, so the model does not rank their \
         attacks above their legitimate logins: check the labels and the features"
    )]
    CalibrationSlope(f64),
    #[error("failed to draw `{path}`: {message}")]
    Plot { path: PathBuf, message: String },
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::freeman::{
        FreemanScores, GlobalTables, LevelKeys, LoginAttributes, UserHistory,
        freeman_scores_for_keys,
    };

    const RBA_SAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/logins/rba-dataset-first19rows.csv"
    );

    /// Replays the RBA sample in time order, scoring each login before it is learned.
    fn replay_rba_sample() -> Vec<(LoginRecord, FreemanScores)> {
        let records = read_logins(Path::new(RBA_SAMPLE), Format::Rba).unwrap();
        let mut global = GlobalTables::default();
        let mut users: HashMap<String, UserHistory> = HashMap::new();
        let mut scored = Vec::new();
        for record in records {
            let keys = LevelKeys::new(&LoginAttributes {
                ip: record.ip,
                asn: record.asn,
                country: record.country.clone(),
                user_agent: record.user_agent.clone(),
            });
            let user = users.entry(record.user_id.clone()).or_default();
            let scores = freeman_scores_for_keys(&global, user, &keys);
            user.observe_keys(&keys, record.timestamp);
            global.observe_keys(&keys);
            scored.push((record, scores));
        }
        scored
    }

    #[test]
    fn rba_sample_replays_through_freeman() {
        let scored = replay_rba_sample();
        assert_eq!(scored.len(), 19);
        for (record, scores) in &scored {
            assert!(scores.network.is_finite(), "row {}", record.row);
            assert!(scores.agent.is_finite(), "row {}", record.row);
        }
        let row = |number: usize| {
            scored
                .iter()
                .find(|(record, _)| record.row == number)
                .map(|(_, scores)| *scores)
                .unwrap()
        };
        // Row 1 is the first login of its user, so there is no evidence either way.
        assert_eq!(row(1).user_logins, 0);
        assert_eq!(row(1).network, 0.0);
        // Row 6 repeats the user's country and ASN of row 4 with a new address. Row 18 comes
        // from a country the user has not used in six logins, which scores ln(6 + 1).
        assert!(row(6).network < row(18).network);
        assert!(
            (row(18).network - 7.0_f64.ln()).abs() < 1e-12,
            "{:?}",
            row(18)
        );
    }
}
