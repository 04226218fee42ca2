//! Fitting the logistic login-risk model with linfa and calibrating it.
//!
//! [`fit`] splits the training set by user (deterministic for a seed), so no user's logins
//! are on both sides. On the training users it fits an L2-regularised logistic regression
//! with `linfa-logistic` on standardised features, weighting attacks by duplicating their
//! rows, because `linfa-logistic` 0.8 takes no sample weights. On the held-out users it fits
//! Platt scaling `risk = sigmoid(a * logit + b)`, without class weights, so the calibrated
//! risk matches the attack rate of the data rather than the balanced one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use linfa::Dataset;
use linfa::traits::Fit;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::TrainError;
use super::metrics::roc_auc;
use crate::artifact::{FORMAT_VERSION, ModelArtifact, PlattCalibration};
use crate::freeman::GlobalTables;

/// Regularisation of the one-feature Platt fit. It only keeps the slope finite when the
/// held-out classes are perfectly separated.
const PLATT_L2: f64 = 1e-3;
/// Probability clamp for the log loss, so a confident miss costs about 34.5 instead of
/// infinity.
const LOG_LOSS_EPSILON: f64 = 1e-15;

/// Feature rows with labels and users, ready for [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSet {
    /// Names of the columns of `values`, stored in the artifact.
    pub feature_names: Vec<String>,
    /// One row per login; 0 where the feature was not evaluable.
    pub values: Array2<f64>,
    /// True for an attack.
    pub labels: Vec<bool>,
    /// The user of each row, for the split into training and held-out users.
    pub user_ids: Vec<String>,
    /// Freeman tables learned from the same history, copied into the artifact.
    pub freeman: GlobalTables,
    /// SHA-256 of the history file the rows were built from.
    pub data_sha256: String,
}

/// Builds a [`TrainingSet`] one login at a time.
#[derive(Debug, Clone)]
pub struct TrainingSetBuilder {
    feature_names: Vec<String>,
    values: Vec<f64>,
    labels: Vec<bool>,
    user_ids: Vec<String>,
}

impl TrainingSetBuilder {
    pub fn new(feature_names: Vec<String>) -> Self {
        TrainingSetBuilder {
            feature_names,
            values: Vec::new(),
            labels: Vec::new(),
            user_ids: Vec::new(),
        }
    }

    /// Adds one login. A feature that is not evaluable is stored as 0, and an evaluable one
    /// must be finite.
    pub fn push(
        &mut self,
        values: &[f64],
        evaluable: &[bool],
        is_attack: bool,
        user_id: &str,
    ) -> Result<(), TrainError> {
        let width = self.feature_names.len();
        for (dimension, actual) in [
            ("values", values.len()),
            ("evaluable flags", evaluable.len()),
        ] {
            if actual != width {
                return Err(TrainError::ShapeMismatch {
                    dimension,
                    expected: width,
                    actual,
                });
            }
        }
        let row = self.labels.len() + 1;
        for (index, (&value, &usable)) in values.iter().zip(evaluable).enumerate() {
            if !usable {
                self.values.push(0.0);
            } else if value.is_finite() {
                self.values.push(value);
            } else {
                self.values.truncate((row - 1) * width);
                return Err(TrainError::NonFiniteValue {
                    row,
                    feature: self.feature_names[index].clone(),
                    value,
                });
            }
        }
        self.labels.push(is_attack);
        self.user_ids.push(user_id.to_owned());
        Ok(())
    }

    /// Returns the number of logins added.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn finish(self, freeman: GlobalTables, data_sha256: String) -> TrainingSet {
        let rows = self.labels.len();
        let width = self.feature_names.len();
        // `push` keeps `values` at exactly `rows * width` entries, so the shape always fits.
        let values = Array2::from_shape_vec((rows, width), self.values)
            .unwrap_or_else(|_| Array2::zeros((rows, width)));
        TrainingSet {
            feature_names: self.feature_names,
            values,
            labels: self.labels,
            user_ids: self.user_ids,
            freeman,
            data_sha256,
        }
    }
}

/// The weight of attacks against legitimate logins in the logistic fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// Attacks weigh `legitimate / attacks`, so both classes weigh the same in total.
    Balanced,
    /// Every login weighs 1.
    Unweighted,
    /// Attacks weigh the given factor. A fractional part is applied by duplicating each
    /// attack once more with that probability (seeded).
    Attack(f64),
}

/// Settings of [`fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// L2 penalty on the standardised coefficients, added to the summed log loss as
    /// `l2 / 2 * |w|^2` (scikit-learn's `C = 1 / l2`). The intercept is not penalised.
    pub l2: f64,
    pub class_weight: ClassWeight,
    /// Share of users held out for the calibration and the metrics, in `(0, 1)`.
    pub holdout_fraction: f64,
    /// Seed of the user split and of fractional class weights.
    pub seed: u64,
    /// Maximum L-BFGS iterations of the logistic fit.
    pub max_iterations: u64,
    /// Legitimate training rows given to the logistic fit at most. When there are more, a
    /// seeded uniform sample of this many (in expectation) is fitted, with every attack, so
    /// that the fit time stops growing with the history. `None` fits every row. With a cap,
    /// an attack weight other than `Balanced` weighs attacks against the sampled rows.
    #[serde(default = "default_max_legitimate_rows")]
    pub max_legitimate_rows: Option<usize>,
    /// L-BFGS stops when the gradient norm falls below this value times the number of rows.
    pub gradient_tolerance_per_row: f64,
    /// Creation time recorded in the artifact; the current time when `None`.
    pub created_at: Option<DateTime<Utc>>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            l2: 1.0,
            class_weight: ClassWeight::Balanced,
            holdout_fraction: 0.2,
            seed: 0,
            max_iterations: 200,
            max_legitimate_rows: Some(DEFAULT_MAX_LEGITIMATE_ROWS),
            gradient_tolerance_per_row: 1e-6,
            created_at: None,
        }
    }
}

/// Default of [`FitOptions::max_legitimate_rows`]: ample for 14 coefficients. A fit of this
/// many rows took 7.3 s on 2 cores (`BENCHMARKS.md`).
pub const DEFAULT_MAX_LEGITIMATE_ROWS: usize = 250_000;

fn default_max_legitimate_rows() -> Option<usize> {
    Some(DEFAULT_MAX_LEGITIMATE_ROWS)
}

/// Figures recorded in the artifact's `metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitMetrics {
    pub training_users: usize,
    pub training_rows: usize,
    pub training_attacks: usize,
    pub holdout_users: usize,
    pub holdout_rows: usize,
    pub holdout_attacks: usize,
    /// Weight of one attack in the logistic fit.
    pub attack_weight: f64,
    /// Rows given to linfa after duplicating attacks.
    pub fitted_rows: usize,
    pub l2: f64,
    /// ROC AUC of the calibrated risk on the held-out users.
    pub holdout_roc_auc: Option<f64>,
    /// Mean log loss of the calibrated risk on the held-out users.
    pub holdout_log_loss: f64,
    /// Mean squared error of the calibrated risk on the held-out users.
    pub holdout_brier_score: f64,
}

/// Returns, for each row, whether its user is held out. A user is held out when the first 8
/// bytes of `SHA-256(seed as little-endian u64 || user id)`, read as a fraction of 2^64, are
/// below `fraction`, so the split depends only on the seed and the user.
pub fn split_by_user(user_ids: &[String], fraction: f64, seed: u64) -> Vec<bool> {
    let mut distinct: Vec<&str> = user_ids.iter().map(String::as_str).collect();
    distinct.par_sort_unstable();
    distinct.dedup();
    let held_out: HashMap<&str, bool> = distinct
        .par_iter()
        .map(|&user| {
            let mut hasher = Sha256::new();
            hasher.update(seed.to_le_bytes());
            hasher.update(user.as_bytes());
            let digest = hasher.finalize();
            let mut prefix = [0u8; 8];
            prefix.copy_from_slice(&digest[..8]);
            let position = u64::from_le_bytes(prefix) as f64 / 2f64.powi(64);
            (user, position < fraction)
        })
        .collect();
    user_ids
        .iter()
        .map(|user| held_out.get(user.as_str()).copied().unwrap_or(false))
        .collect()
}

/// Fits, calibrates and packages a model. See the module documentation for the procedure.
pub fn fit(set: &TrainingSet, options: &FitOptions) -> Result<ModelArtifact, TrainError> {
    validate_options(options)?;
    validate_set(set)?;

    let held_out = split_by_user(&set.user_ids, options.holdout_fraction, options.seed);
    let (training, holdout): (Vec<usize>, Vec<usize>) =
        (0..set.labels.len()).partition(|&row| !held_out[row]);
    let training_attacks = count_attacks(set, &training);
    let holdout_attacks = count_attacks(set, &holdout);
    require_both_classes("training", training.len(), training_attacks)?;
    require_both_classes("held-out", holdout.len(), holdout_attacks)?;

    let (means, scales) = standardisation(&set.values, &training);
    let sampled = sample_legitimate(set, &training, options.max_legitimate_rows, options.seed);
    require_both_classes("sampled training", sampled.len(), training_attacks)?;
    let attack_weight = match options.class_weight {
        ClassWeight::Balanced => {
            (sampled.len() - training_attacks) as f64 / training_attacks as f64
        }
        ClassWeight::Unweighted => 1.0,
        ClassWeight::Attack(weight) => weight,
    };
    let fitted_rows = weighted_rows(set, &sampled, attack_weight, options.seed);
    let (records, targets) = design_matrix(set, &fitted_rows, &means, &scales);
    let tolerance = options.gradient_tolerance_per_row * fitted_rows.len() as f64;
    let fitted = LogisticRegression::default()
        .alpha(options.l2)
        .max_iterations(options.max_iterations)
        .gradient_tolerance(tolerance)
        .fit(&Dataset::new(records, targets))?;
    // linfa labels the more frequent class +1, so the sign depends on the class counts.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };

    // Undo the standardisation: w_j (x_j - m_j) / s_j = (w_j / s_j) x_j - w_j m_j / s_j.
    let standardised: Vec<f64> = fitted.params().iter().map(|w| sign * w).collect();
    let coefficients: Vec<f64> = standardised
        .iter()
        .zip(&scales)
        .map(|(weight, scale)| weight / scale)
        .collect();
    let intercept = sign * fitted.intercept()
        - standardised
            .iter()
            .zip(means.iter().zip(&scales))
            .map(|(weight, (mean, scale))| weight * mean / scale)
            .sum::<f64>();

    let holdout_logits: Vec<f64> = holdout
        .par_iter()
        .map(|&row| {
            let values = set.values.row(row);
            intercept
                + values
                    .iter()
                    .zip(&coefficients)
                    .map(|(x, w)| x * w)
                    .sum::<f64>()
        })
        .collect();
    let holdout_labels: Vec<bool> = holdout.iter().map(|&row| set.labels[row]).collect();
    let calibration = platt(&holdout_logits, &holdout_labels)?;

    let risks: Vec<f64> = holdout_logits
        .iter()
        .map(|&logit| calibration.risk(logit))
        .collect();
    let metrics = FitMetrics {
        training_users: distinct_users(set, &training),
        training_rows: training.len(),
        training_attacks,
        holdout_users: distinct_users(set, &holdout),
        holdout_rows: holdout.len(),
        holdout_attacks,
        attack_weight,
        fitted_rows: fitted_rows.len(),
        l2: options.l2,
        holdout_roc_auc: roc_auc(&risks, &holdout_labels),
        holdout_log_loss: log_loss(&risks, &holdout_labels),
        holdout_brier_score: brier_score(&risks, &holdout_labels),
    };

    let mut freeman = set.freeman.clone();
    freeman.compact();
    let mut artifact = ModelArtifact {
        format_version: FORMAT_VERSION,
        model_version: String::new(),
        created_at: options.created_at.unwrap_or_else(Utc::now),
        feature_names: set.feature_names.clone(),
        intercept,
        coefficients,
        calibration,
        freeman,
        training_data_sha256: set.data_sha256.clone(),
        training_rows: set.labels.len() as u64,
        metrics: serde_json::to_value(&metrics).unwrap_or(serde_json::Value::Null),
    };
    let numbers = std::iter::once(("intercept".to_owned(), artifact.intercept)).chain(
        artifact
            .feature_names
            .iter()
            .zip(&artifact.coefficients)
            .map(|(name, value)| (format!("coefficient of `{name}`"), *value)),
    );
    for (field, value) in numbers {
        if !value.is_finite() {
            return Err(TrainError::NonFiniteModel { field, value });
        }
    }
    artifact.model_version = artifact.derive_model_version();
    Ok(artifact)
}

fn validate_options(options: &FitOptions) -> Result<(), TrainError> {
    let invalid = |name: &'static str, value: String, expected: &'static str| {
        Err(TrainError::InvalidOption {
            name,
            value,
            expected,
        })
    };
    if !(options.l2.is_finite() && options.l2 >= 0.0) {
        return invalid("l2", options.l2.to_string(), "a finite number >= 0");
    }
    if !(options.holdout_fraction > 0.0 && options.holdout_fraction < 1.0) {
        return invalid(
            "holdout_fraction",
            options.holdout_fraction.to_string(),
            "a number between 0 and 1, exclusive",
        );
    }
    if options.max_iterations == 0 {
        return invalid("max_iterations", "0".to_owned(), "at least 1");
    }
    if options.max_legitimate_rows == Some(0) {
        return invalid("max_legitimate_rows", "0".to_owned(), "at least 1, or none");
    }
    if !(options.gradient_tolerance_per_row.is_finite() && options.gradient_tolerance_per_row > 0.0)
    {
        return invalid(
            "gradient_tolerance_per_row",
            options.gradient_tolerance_per_row.to_string(),
            "a finite number > 0",
        );
    }
    if let ClassWeight::Attack(weight) = options.class_weight
        && !(weight.is_finite() && weight > 0.0)
    {
        return invalid("class_weight", weight.to_string(), "a finite number > 0");
    }
    Ok(())
}

fn validate_set(set: &TrainingSet) -> Result<(), TrainError> {
    let rows = set.labels.len();
    if rows == 0 {
        return Err(TrainError::EmptyTrainingSet);
    }
    for (dimension, expected, actual) in [
        (
            "feature columns",
            set.feature_names.len(),
            set.values.ncols(),
        ),
        ("value rows", rows, set.values.nrows()),
        ("user ids", rows, set.user_ids.len()),
    ] {
        if actual != expected {
            return Err(TrainError::ShapeMismatch {
                dimension,
                expected,
                actual,
            });
        }
    }
    let first_bad = set
        .values
        .axis_iter(Axis(0))
        .enumerate()
        .find_map(|(row, values)| {
            values
                .iter()
                .position(|value| !value.is_finite())
                .map(|column| (row, column))
        });
    if let Some((row, column)) = first_bad {
        return Err(TrainError::NonFiniteValue {
            row: row + 1,
            feature: set.feature_names[column].clone(),
            value: set.values[[row, column]],
        });
    }
    Ok(())
}

fn count_attacks(set: &TrainingSet, rows: &[usize]) -> usize {
    rows.iter().filter(|&&row| set.labels[row]).count()
}

fn distinct_users(set: &TrainingSet, rows: &[usize]) -> usize {
    let mut users: Vec<&str> = rows.iter().map(|&row| set.user_ids[row].as_str()).collect();
    users.par_sort_unstable();
    users.dedup();
    users.len()
}

fn require_both_classes(part: &'static str, rows: usize, attacks: usize) -> Result<(), TrainError> {
    if attacks == 0 || attacks == rows {
        return Err(TrainError::SingleClass {
            part,
            attacks,
            legitimate: rows - attacks,
        });
    }
    Ok(())
}

/// Returns each feature's mean and standard deviation over `rows`. A constant feature gets
/// the scale 1, so its standardised column is all zeros and its coefficient stays 0.
fn standardisation(values: &Array2<f64>, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let width = values.ncols();
    let count = rows.len() as f64;
    // A sequential sum: a parallel reduction adds in an order that depends on thread
    // scheduling, so the same data could give coefficients that differ in the last bits.
    let sum_rows = |accumulate: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
        let mut sums = vec![0.0; width];
        for &row in rows {
            for (column, sum) in sums.iter_mut().enumerate() {
                *sum += accumulate(row, column);
            }
        }
        sums
    };
    let means: Vec<f64> = sum_rows(&|row, column| values[[row, column]])
        .into_iter()
        .map(|sum| sum / count)
        .collect();
    let scales: Vec<f64> = sum_rows(&|row, column| (values[[row, column]] - means[column]).powi(2))
        .into_iter()
        .map(|squares| {
            let deviation = (squares / count).sqrt();
            if deviation > 1e-12 && deviation.is_finite() {
                deviation
            } else {
                1.0
            }
        })
        .collect();
    (means, scales)
}

/// Returns `rows` with every attack and, when there are more than `max` legitimate rows,
/// each legitimate row kept with probability `max / legitimate` from a seeded hash of the
/// row.
fn sample_legitimate(
    set: &TrainingSet,
    rows: &[usize],
    max: Option<usize>,
    seed: u64,
) -> Vec<usize> {
    let legitimate = rows.iter().filter(|&&row| !set.labels[row]).count();
    let Some(max) = max.filter(|&max| max < legitimate) else {
        return rows.to_vec();
    };
    let share = max as f64 / legitimate as f64;
    // A different stream from the one that rounds fractional attack weights.
    let seed = seed ^ 0x5bd1_e995_5bd1_e995;
    rows.iter()
        .copied()
        .filter(|&row| set.labels[row] || unit_interval(seed, row as u64) < share)
        .collect()
}

/// Returns the training rows with each attack repeated according to its weight: `floor(w)`
/// times, plus once more with probability `w - floor(w)` from a seeded hash of the row.
fn weighted_rows(set: &TrainingSet, rows: &[usize], attack_weight: f64, seed: u64) -> Vec<usize> {
    let whole = attack_weight.floor() as usize;
    let fraction = attack_weight - attack_weight.floor();
    let attacks = rows.iter().filter(|&&row| set.labels[row]).count();
    let mut weighted = Vec::with_capacity(rows.len() - attacks + attacks * (whole + 1));
    for &row in rows {
        if !set.labels[row] {
            weighted.push(row);
            continue;
        }
        let extra = usize::from(unit_interval(seed, row as u64) < fraction);
        for _ in 0..whole + extra {
            weighted.push(row);
        }
    }
    weighted
}

/// Returns a number in `[0, 1)` from the SplitMix64 mix of `seed` and `value`.
fn unit_interval(seed: u64, value: u64) -> f64 {
    let mut z = seed
        .wrapping_add(value.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn design_matrix(
    set: &TrainingSet,
    rows: &[usize],
    means: &[f64],
    scales: &[f64],
) -> (Array2<f64>, Array1<bool>) {
    let width = set.feature_names.len();
    let mut flat = vec![0.0; rows.len() * width];
    flat.par_chunks_mut(width.max(1))
        .zip(rows.par_iter())
        .for_each(|(out, &row)| {
            for (column, cell) in out.iter_mut().enumerate() {
                *cell = (set.values[[row, column]] - means[column]) / scales[column];
            }
        });
    let records = Array2::from_shape_vec((rows.len(), width), flat)
        .unwrap_or_else(|_| Array2::zeros((rows.len(), width)));
    let targets: Array1<bool> = rows.iter().map(|&row| set.labels[row]).collect();
    (records, targets)
}

/// Fits `label ~ sigmoid(a * logit + b)` on the held-out logins.
fn platt(logits: &[f64], labels: &[bool]) -> Result<PlattCalibration, TrainError> {
    let count = logits.len() as f64;
    let mean = logits.iter().sum::<f64>() / count;
    let deviation = (logits.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / count).sqrt();
    let scale = if deviation > 1e-12 { deviation } else { 1.0 };
    let records = Array2::from_shape_fn((logits.len(), 1), |(row, _)| (logits[row] - mean) / scale);
    let targets: Array1<bool> = labels.iter().copied().collect();
    let fitted = LogisticRegression::default()
        .alpha(PLATT_L2)
        .max_iterations(200)
        .fit(&Dataset::new(records, targets))?;
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let slope = sign * fitted.params()[0];
    let a = slope / scale;
    let b = sign * fitted.intercept() - slope * mean / scale;
    if !(a.is_finite() && a > 0.0 && b.is_finite()) {
        return Err(TrainError::CalibrationSlope(a));
    }
    Ok(PlattCalibration { a, b })
}

fn log_loss(risks: &[f64], labels: &[bool]) -> f64 {
    let total: f64 = risks
        .iter()
        .zip(labels)
        .map(|(&risk, &label)| {
            let p = risk.clamp(LOG_LOSS_EPSILON, 1.0 - LOG_LOSS_EPSILON);
            if label { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / risks.len().max(1) as f64
}

fn brier_score(risks: &[f64], labels: &[bool]) -> f64 {
    let total: f64 = risks
        .iter()
        .zip(labels)
        .map(|(&risk, &label)| (risk - f64::from(u8::from(label))).powi(2))
        .sum();
    total / risks.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FEATURE_NAMES;

    /// Rows of two features drawn from a known logistic model: attacks are more likely with
    /// `new_device` and with a high `user_failures`, and `new_country` is noise.
    fn synthetic(rows: usize, users: usize, seed: u64) -> TrainingSet {
        let names: Vec<String> = ["new_device", "user_failures", "new_country"]
            .map(String::from)
            .to_vec();
        let mut builder = TrainingSetBuilder::new(names);
        for row in 0..rows {
            let draw = |stream: u64| unit_interval(seed ^ stream, row as u64);
            let new_device = f64::from(u8::from(draw(1) < 0.3));
            let failures = draw(2);
            let noise = f64::from(u8::from(draw(3) < 0.5));
            let logit = -4.0 + 3.0 * new_device + 2.0 * failures;
            let is_attack = draw(4) < 1.0 / (1.0 + (-logit).exp());
            let evaluable = [true, row % 10 != 0, true];
            builder
                .push(
                    &[new_device, failures, noise],
                    &evaluable,
                    is_attack,
                    &format!("user-{}", row % users),
                )
                .unwrap();
        }
        builder.finish(GlobalTables::default(), "00".repeat(32))
    }

    fn fixed_options() -> FitOptions {
        FitOptions {
            created_at: DateTime::from_timestamp(1_717_000_000, 0),
            ..FitOptions::default()
        }
    }

    #[test]
    fn fit_recovers_informative_features() {
        let set = synthetic(20_000, 400, 7);
        let artifact = fit(&set, &fixed_options()).unwrap();
        let coefficient = |name: &str| {
            let index = artifact
                .feature_names
                .iter()
                .position(|n| n == name)
                .unwrap();
            artifact.coefficients[index]
        };
        // Balanced weights shift the intercept but not the slopes much.
        assert!(
            (coefficient("new_device") - 3.0).abs() < 0.5,
            "{artifact:?}"
        );
        assert!(
            (coefficient("user_failures") - 2.0).abs() < 0.7,
            "{artifact:?}"
        );
        assert!(coefficient("new_country").abs() < 0.3, "{artifact:?}");
        assert!(artifact.calibration.a > 0.0);
        assert!(artifact.model_version.starts_with("login-risk-20240529-"));
        assert_eq!(artifact.training_rows, 20_000);

        let auc = artifact.metrics["holdout_roc_auc"].as_f64().unwrap();
        assert!(auc > 0.7, "{auc}");
        let holdout_rows = artifact.metrics["holdout_rows"].as_u64().unwrap();
        assert!((2_000..6_000).contains(&holdout_rows), "{holdout_rows}");
    }

    #[test]
    fn calibration_matches_attack_rate() {
        let set = synthetic(20_000, 400, 11);
        let artifact = fit(&set, &fixed_options()).unwrap();
        // The mean calibrated risk over all rows is close to the share of attacks, although
        // the logistic fit itself saw balanced classes.
        let mean_risk = set
            .values
            .axis_iter(Axis(0))
            .map(|row| artifact.predict(row.as_slice().unwrap(), &[true; 3]).risk)
            .sum::<f64>()
            / 20_000.0;
        let attack_rate = set.labels.iter().filter(|&&label| label).count() as f64 / 20_000.0;
        assert!(
            (mean_risk - attack_rate).abs() < 0.02,
            "{mean_risk} {attack_rate}"
        );
    }

    #[test]
    fn fit_is_deterministic() {
        let set = synthetic(5_000, 100, 3);
        let first = fit(&set, &fixed_options()).unwrap();
        let second = fit(&set, &fixed_options()).unwrap();
        assert_eq!(first, second);
        let other_seed = fit(
            &set,
            &FitOptions {
                seed: 99,
                ..fixed_options()
            },
        )
        .unwrap();
        assert_ne!(first.metrics, other_seed.metrics);
    }

    #[test]
    fn split_keeps_users_whole() {
        let users: Vec<String> = (0..1_000).map(|row| format!("u{}", row % 50)).collect();
        let held_out = split_by_user(&users, 0.3, 5);
        for (user, flag) in users.iter().zip(&held_out) {
            let first = users.iter().position(|other| other == user).unwrap();
            assert_eq!(*flag, held_out[first], "{user}");
        }
        let held_out_users = (0..50).filter(|&user| held_out[user]).count();
        assert!((5..=25).contains(&held_out_users), "{held_out_users}");
        assert_eq!(held_out, split_by_user(&users, 0.3, 5));
        assert_ne!(held_out, split_by_user(&users, 0.3, 6));
    }

    #[test]
    fn weighted_rows_repeat_attacks() {
        let mut builder = TrainingSetBuilder::new(vec!["new_device".into()]);
        for (index, label) in [false, true, false, true].into_iter().enumerate() {
            builder
                .push(&[1.0], &[true], label, &format!("u{index}"))
                .unwrap();
        }
        let set = builder.finish(GlobalTables::default(), String::new());
        assert_eq!(
            weighted_rows(&set, &[0, 1, 2, 3], 3.0, 0),
            [0, 1, 1, 1, 2, 3, 3, 3]
        );
        assert_eq!(weighted_rows(&set, &[0, 1, 2, 3], 1.0, 0), [0, 1, 2, 3]);
        let half = weighted_rows(&set, &[0, 1, 2, 3], 1.5, 0);
        assert!((4..=6).contains(&half.len()), "{half:?}");
    }

    #[test]
    fn builder_rejects_bad_rows() {
        let mut builder = TrainingSetBuilder::new(vec!["a".into(), "b".into()]);
        assert!(matches!(
            builder.push(&[1.0], &[true], false, "u"),
            Err(TrainError::ShapeMismatch { .. })
        ));
        let error = builder
            .push(&[1.0, f64::NAN], &[true, true], false, "u")
            .unwrap_err();
        assert!(
            matches!(&error, TrainError::NonFiniteValue { row: 1, feature, .. } if feature == "b")
        );
        assert!(builder.is_empty());
        // A non-finite value that is not evaluable is stored as 0.
        builder
            .push(&[1.0, f64::NAN], &[true, false], false, "u")
            .unwrap();
        let set = builder.finish(GlobalTables::default(), String::new());
        assert_eq!(set.values.row(0).to_vec(), [1.0, 0.0]);
    }

    #[test]
    fn fit_rejects_invalid_input() {
        let set = synthetic(2_000, 50, 1);
        for options in [
            FitOptions {
                l2: -1.0,
                ..fixed_options()
            },
            FitOptions {
                holdout_fraction: 1.0,
                ..fixed_options()
            },
            FitOptions {
                max_iterations: 0,
                ..fixed_options()
            },
            FitOptions {
                class_weight: ClassWeight::Attack(f64::NAN),
                ..fixed_options()
            },
        ] {
            assert!(
                matches!(fit(&set, &options), Err(TrainError::InvalidOption { .. })),
                "{options:?}"
            );
        }

        let empty = TrainingSetBuilder::new(vec!["a".into()])
            .finish(GlobalTables::default(), String::new());
        assert!(matches!(
            fit(&empty, &fixed_options()),
            Err(TrainError::EmptyTrainingSet)
        ));

        let mut legitimate_only = TrainingSetBuilder::new(vec!["a".into()]);
        for user in 0..100 {
            legitimate_only
                .push(&[1.0], &[true], false, &format!("u{user}"))
                .unwrap();
        }
        let error = fit(
            &legitimate_only.finish(GlobalTables::default(), String::new()),
            &fixed_options(),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                TrainError::SingleClass {
                    part: "training",
                    attacks: 0,
                    ..
                }
            ),
            "{error}"
        );

        let mut broken = set.clone();
        broken.values[[5, 1]] = f64::INFINITY;
        assert!(matches!(
            fit(&broken, &fixed_options()),
            Err(TrainError::NonFiniteValue { row: 6, .. })
        ));
        broken.user_ids.pop();
        assert!(matches!(
            fit(&broken, &fixed_options()),
            Err(TrainError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn metrics_helpers_hand_computed() {
        let risks = [0.9, 0.2];
        let labels = [true, false];
        let expected = -(0.9f64.ln() + 0.8f64.ln()) / 2.0;
        assert!((log_loss(&risks, &labels) - expected).abs() < 1e-12);
        assert!((brier_score(&risks, &labels) - (0.01 + 0.04) / 2.0).abs() < 1e-12);
        assert!(log_loss(&[0.0], &[true]).is_finite());
    }

    /// Returns the user and system CPU time of this process in seconds, from `/proc`.
    fn process_cpu_seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // The kernel reports USER_HZ ticks, which is 100 on Linux for every architecture.
        Some(ticks / 100.0)
    }

    /// Measures one fit on 1,000,000 rows of the 12 engine features plus the two Freeman
    /// scores. Run with
    /// `cargo test --release -p riskgate-models --features train --lib fit_scale -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing measurement; run in release"]
    fn fit_scale_one_million_rows() {
        let rows = 1_000_000;
        let mut names: Vec<String> = FEATURE_NAMES.iter().map(|name| name.to_string()).collect();
        names.push("freeman_network".into());
        names.push("freeman_agent".into());
        let width = names.len();
        let mut builder = TrainingSetBuilder::new(names);
        let mut values = vec![0.0; width];
        let evaluable = vec![true; width];
        for row in 0..rows {
            let mut logit = -6.0;
            for (column, value) in values.iter_mut().enumerate() {
                let draw = unit_interval(column as u64 + 1, row as u64);
                *value = if column < 12 {
                    f64::from(u8::from(draw < 0.1))
                } else {
                    8.0 * draw - 2.0
                };
                logit += 0.3 * (column % 4) as f64 * *value;
            }
            let is_attack = unit_interval(99, row as u64) < 1.0 / (1.0 + (-logit).exp());
            builder
                .push(
                    &values,
                    &evaluable,
                    is_attack,
                    &format!("user-{}", row % 50_000),
                )
                .unwrap();
        }
        let set = builder.finish(GlobalTables::default(), String::new());

        let cpu_before = process_cpu_seconds();
        let started = std::time::Instant::now();
        let artifact = fit(&set, &fixed_options()).unwrap();
        let elapsed = started.elapsed();
        let cpu = process_cpu_seconds()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let peak_kib = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with("VmHWM:"))
                    .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            });
        println!(
            "fit: {rows} rows x {width} features in {:.2} s wall, {cpu:?} s CPU, peak resident \
             memory {peak_kib:?} KiB, load average {}, metrics {}",
            elapsed.as_secs_f64(),
            load.trim(),
            artifact.metrics
        );
        assert!(elapsed.as_secs() < 60, "{elapsed:?}");
        if let Some(peak_kib) = peak_kib {
            assert!(peak_kib < 4 * 1024 * 1024, "{peak_kib} KiB");
        }
    }

    #[test]
    fn sampling_keeps_attacks_and_caps_legitimate() {
        let names = vec!["a".to_owned()];
        let mut builder = TrainingSetBuilder::new(names);
        for row in 0..10_000 {
            let is_attack = row % 100 == 0;
            let user = format!("user{}", row % 50);
            builder
                .push(&[f64::from(u8::from(is_attack))], &[true], is_attack, &user)
                .unwrap();
        }
        let set = builder.finish(GlobalTables::default(), String::new());
        let rows: Vec<usize> = (0..10_000).collect();
        let sampled = sample_legitimate(&set, &rows, Some(2_000), 7);
        let attacks = sampled.iter().filter(|&&row| set.labels[row]).count();
        let legitimate = sampled.len() - attacks;
        assert_eq!(attacks, 100);
        assert!(
            (1_800..=2_200).contains(&legitimate),
            "{legitimate} legitimate rows"
        );
        assert_eq!(sampled, sample_legitimate(&set, &rows, Some(2_000), 7));
        assert_eq!(sample_legitimate(&set, &rows, None, 7).len(), 10_000);
    }
}
