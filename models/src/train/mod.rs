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
//!    history size.

use std::path::PathBuf;

use thiserror::Error;

pub mod fit;
pub mod metrics;
pub mod plots;
pub mod read;

pub use fit::{
    ClassWeight, FitMetrics, FitOptions, TrainingSet, TrainingSetBuilder, fit, split_by_user,
};
pub use metrics::{
    HistoryBucket, KindReport, OperatingPoint, RocPoint, ScoredLogin, by_attack_kind, by_history,
    caught_at_reauth, reauth_at_caught, roc_auc, roc_curve,
};
pub use plots::{
    plot_reauth_by_history, plot_roc_curves, plot_score_distributions, write_evaluation_plots,
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
