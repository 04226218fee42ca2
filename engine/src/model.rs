//! The risk model in force: the rules file's weights, or a trained artifact.
//!
//! [`RiskModel`] gives both the same interface over the engine's [`FeatureVector`], so the
//! scoring pipeline does not care which one is loaded. A trained artifact may list its
//! features in any order and use a subset of [`FEATURE_NAMES`]; [`RiskModel::trained`] maps
//! its order to the engine's once, by name.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use riskgate_models::artifact::{ArtifactError, ModelArtifact};
use riskgate_models::features::{FEATURE_COUNT, FEATURE_NAMES, FeatureVector, feature_index};
use riskgate_models::freeman::GlobalTables;
use riskgate_models::linear::LinearModel;

/// Bound on the calibrated log-odds, the same as the artifact's bound on its logit.
/// `sigmoid(±50)` is already 0 or 1 to within `2e-22`.
const MAX_ABS_LOGIT: f64 = 1e6;

/// The Freeman tables of a model that has none: no logins observed.
static EMPTY_TABLES: LazyLock<GlobalTables> = LazyLock::new(GlobalTables::default);

/// A login-risk model over the engine's feature vector.
#[derive(Debug, Clone)]
pub enum RiskModel {
    /// The weights and bias of the rules file, uncalibrated.
    Weights(LinearModel),
    /// A trained artifact with Platt calibration and Freeman tables.
    Trained(TrainedModel),
}

/// A trained artifact with the position of each of its features in [`FEATURE_NAMES`].
#[derive(Debug, Clone)]
pub struct TrainedModel {
    artifact: Arc<ModelArtifact>,
    /// `positions[i]` is the index in [`FEATURE_NAMES`] of `artifact.feature_names[i]`.
    positions: Vec<usize>,
}

impl TrainedModel {
    /// Returns the artifact this model scores with.
    pub fn artifact(&self) -> &ModelArtifact {
        &self.artifact
    }
}

/// The output of [`RiskModel::predict`]. Every number is finite.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrediction {
    /// Log-odds before calibration: the bias or intercept plus the contributions.
    pub logit: f64,
    /// Risk in `[0, 1]`: the calibrated risk of a trained model, `sigmoid(logit)` for weights.
    pub risk: f64,
    /// Log-odds of `risk`, which adjust rules add to: `a * logit + b` under a trained model's
    /// Platt calibration, `logit` for weights.
    pub calibrated_logit: f64,
    /// Each feature's term of `logit` in [`FEATURE_NAMES`] order. A feature that is not
    /// evaluable, or that a trained model does not use, contributes 0.
    pub contributions: [f64; FEATURE_COUNT],
}

/// A trained artifact that names a feature outside [`FEATURE_NAMES`].
#[derive(Debug, thiserror::Error)]
#[error(
    "model artifact `{model_version}` uses feature `{name}`, which this build does not compute"
)]
pub struct UnknownFeature {
    pub model_version: String,
    pub name: String,
}

impl RiskModel {
    /// Reads and validates the artifact at `path`. An artifact whose feature names this build
    /// does not compute is rejected.
    pub fn load(path: &Path) -> Result<RiskModel, ArtifactError> {
        let artifact = ModelArtifact::load(path, &FEATURE_NAMES)?;
        match RiskModel::trained(Arc::new(artifact)) {
            Ok(model) => Ok(model),
            // `ModelArtifact::load` already checked every name against FEATURE_NAMES.
            Err(error) => Err(ArtifactError::UnknownFeature {
                path: path.to_owned(),
                name: error.name,
            }),
        }
    }

    /// Wraps a validated artifact. Fails when it names a feature outside [`FEATURE_NAMES`].
    pub fn trained(artifact: Arc<ModelArtifact>) -> Result<RiskModel, UnknownFeature> {
        let positions = artifact
            .feature_names
            .iter()
            .map(|name| {
                feature_index(name).ok_or_else(|| UnknownFeature {
                    model_version: artifact.model_version.clone(),
                    name: name.clone(),
                })
            })
            .collect::<Result<Vec<usize>, UnknownFeature>>()?;
        Ok(RiskModel::Trained(TrainedModel {
            artifact,
            positions,
        }))
    }

    /// Returns the version that decisions record: the artifact's `model_version`, or
    /// `weights@<rules digest>` for the rules file's weights.
    pub fn version(&self) -> &str {
        match self {
            RiskModel::Weights(model) => &model.version,
            RiskModel::Trained(model) => &model.artifact.model_version,
        }
    }

    /// Returns the artifact of a trained model.
    pub fn artifact(&self) -> Option<&ModelArtifact> {
        match self {
            RiskModel::Weights(_) => None,
            RiskModel::Trained(model) => Some(&model.artifact),
        }
    }

    /// Returns the Freeman global tables of a trained model, or empty tables for weights.
    pub fn global_tables(&self) -> &GlobalTables {
        match self {
            RiskModel::Weights(_) => &EMPTY_TABLES,
            RiskModel::Trained(model) => &model.artifact.freeman,
        }
    }

    /// Scores one feature vector.
    pub fn predict(&self, features: &FeatureVector) -> ModelPrediction {
        match self {
            RiskModel::Weights(model) => {
                let prediction = model.predict(features);
                ModelPrediction {
                    logit: prediction.logit,
                    risk: prediction.risk,
                    calibrated_logit: prediction.logit,
                    contributions: prediction.contributions,
                }
            }
            RiskModel::Trained(model) => predict_trained(model, features),
        }
    }
}

fn predict_trained(model: &TrainedModel, features: &FeatureVector) -> ModelPrediction {
    let values: Vec<f64> = model
        .positions
        .iter()
        .map(|&index| features.values[index])
        .collect();
    let evaluable: Vec<bool> = model
        .positions
        .iter()
        .map(|&index| features.evaluable[index])
        .collect();
    let prediction = model.artifact.predict(&values, &evaluable);

    let mut contributions = [0.0; FEATURE_COUNT];
    for (&index, contribution) in model.positions.iter().zip(&prediction.contributions) {
        contributions[index] = *contribution;
    }
    let calibration = model.artifact.calibration;
    let calibrated_logit = calibration.a * prediction.logit + calibration.b;
    // `a`, `b` and the logit are finite, so the sum can overflow to infinity but not become
    // NaN. NaN would map to the top, as `PlattCalibration::risk` maps it to a risk of 1.
    let calibrated_logit = if calibrated_logit.is_nan() {
        MAX_ABS_LOGIT
    } else {
        calibrated_logit.clamp(-MAX_ABS_LOGIT, MAX_ABS_LOGIT)
    };
    ModelPrediction {
        logit: prediction.logit,
        risk: prediction.risk,
        calibrated_logit,
        contributions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use riskgate_models::artifact::{FORMAT_VERSION, PlattCalibration};
    use riskgate_models::linear::sigmoid;

    fn artifact(names: &[&str], coefficients: &[f64]) -> ModelArtifact {
        let mut artifact = ModelArtifact {
            format_version: FORMAT_VERSION,
            model_version: String::new(),
            created_at: DateTime::from_timestamp(1_717_000_000, 0).unwrap(),
            feature_names: names.iter().map(|name| name.to_string()).collect(),
            intercept: -2.0,
            coefficients: coefficients.to_vec(),
            calibration: PlattCalibration { a: 0.5, b: 0.25 },
            freeman: GlobalTables {
                total: 7,
                ..GlobalTables::default()
            },
            training_data_sha256: "cd".repeat(32),
            training_rows: 7,
            metrics: serde_json::json!({}),
        };
        artifact.model_version = artifact.derive_model_version();
        artifact
    }

    fn index(name: &str) -> usize {
        feature_index(name).unwrap()
    }

    #[test]
    fn trained_maps_features_by_name() {
        // The artifact's order is the reverse of FEATURE_NAMES and skips `new_city`.
        let model = RiskModel::trained(Arc::new(artifact(
            &["keystroke_anomaly", "new_country", "new_device"],
            &[3.0, 2.0, 1.0],
        )))
        .unwrap();
        let mut features = FeatureVector::default();
        features.set("new_device", 1.0, true);
        features.set("new_country", 0.5, true);
        features.set("new_city", 1.0, true);
        features.set("keystroke_anomaly", 1.0, false);

        let prediction = model.predict(&features);
        assert_eq!(prediction.contributions[index("new_device")], 1.0);
        assert_eq!(prediction.contributions[index("new_country")], 1.0);
        assert_eq!(prediction.contributions[index("new_city")], 0.0);
        assert_eq!(prediction.contributions[index("keystroke_anomaly")], 0.0);
        let nonzero = prediction.contributions.iter().filter(|c| **c != 0.0);
        assert_eq!(nonzero.count(), 2);
        assert!((prediction.logit - 0.0).abs() < 1e-12, "{prediction:?}");
    }

    #[test]
    fn trained_risk_is_calibrated() {
        let artifact = artifact(&["new_device", "new_country"], &[1.5, 2.0]);
        let model = RiskModel::trained(Arc::new(artifact.clone())).unwrap();
        let mut features = FeatureVector::default();
        features.set("new_device", 1.0, true);
        features.set("new_country", 1.0, true);

        let prediction = model.predict(&features);
        let expected = artifact.predict(&[1.0, 1.0], &[true, true]);
        assert_eq!(prediction.logit, expected.logit);
        assert_eq!(prediction.risk, expected.risk);
        // logit = -2 + 1.5 + 2 = 1.5; calibrated = 0.5 * 1.5 + 0.25 = 1.0
        assert!((prediction.calibrated_logit - 1.0).abs() < 1e-12);
        assert!((prediction.risk - sigmoid(1.0)).abs() < 1e-12);
    }

    #[test]
    fn version_and_tables_per_kind() {
        let artifact = artifact(&["new_device"], &[1.0]);
        let trained = RiskModel::trained(Arc::new(artifact.clone())).unwrap();
        assert_eq!(trained.version(), artifact.model_version);
        assert!(trained.version().starts_with("login-risk-"));
        assert_eq!(trained.global_tables().total, 7);
        assert_eq!(trained.artifact(), Some(&artifact));

        let weights =
            LinearModel::from_named_weights("weights@sha256:00", -1.0, [("new_device", 2.0)])
                .unwrap();
        let model = RiskModel::Weights(weights);
        assert_eq!(model.version(), "weights@sha256:00");
        assert_eq!(model.global_tables(), &GlobalTables::default());
        assert!(model.artifact().is_none());
    }

    #[test]
    fn weights_prediction_is_uncalibrated() {
        let weights =
            LinearModel::from_named_weights("w", -1.0, [("new_device", 2.0), ("learning", 0.5)])
                .unwrap();
        let mut features = FeatureVector::default();
        features.set("new_device", 1.0, true);
        features.set("learning", 1.0, false);
        let prediction = RiskModel::Weights(weights).predict(&features);
        assert_eq!(prediction.logit, 1.0);
        assert_eq!(prediction.calibrated_logit, 1.0);
        assert_eq!(prediction.risk, sigmoid(1.0));
        assert_eq!(prediction.contributions[index("new_device")], 2.0);
        assert_eq!(prediction.contributions[index("learning")], 0.0);
    }

    #[test]
    fn unknown_feature_rejected() {
        let mut artifact = artifact(&["new_device"], &[1.0]);
        artifact.feature_names = vec!["shoe_size".into()];
        let error = RiskModel::trained(Arc::new(artifact)).unwrap_err();
        assert_eq!(error.name, "shoe_size");
        assert!(error.to_string().contains("`shoe_size`"), "{error}");
    }

    #[test]
    fn load_rejects_unknown_feature_with_path() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("model.json");
        let mut json = serde_json::to_value(artifact(&["new_device"], &[1.0])).unwrap();
        json["feature_names"] = serde_json::json!(["shoe_size"]);
        std::fs::write(&path, json.to_string()).unwrap();
        let error = RiskModel::load(&path).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("model.json"), "{message}");
        assert!(message.contains("`shoe_size`"), "{message}");
    }

    #[test]
    fn load_reads_a_saved_artifact() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("model.json");
        let artifact = artifact(&["learning", "new_device"], &[0.5, 1.0]);
        artifact.save(&path).unwrap();
        let model = RiskModel::load(&path).unwrap();
        assert_eq!(model.version(), artifact.model_version);
    }

    #[test]
    fn predict_never_returns_nan() {
        let mut extreme = artifact(&["new_device", "new_country"], &[f64::MAX, -f64::MAX]);
        extreme.calibration = PlattCalibration {
            a: f64::MAX,
            b: -f64::MAX,
        };
        let model = RiskModel::trained(Arc::new(extreme)).unwrap();
        let cases = [
            (1.0, true, 1.0, true),
            (1.0, true, 0.0, true),
            (0.0, true, 1.0, true),
            (1.0, false, 1.0, false),
        ];
        for (device, device_evaluable, country, country_evaluable) in cases {
            let mut features = FeatureVector::default();
            features.set("new_device", device, device_evaluable);
            features.set("new_country", country, country_evaluable);
            let prediction = model.predict(&features);
            assert!(prediction.logit.is_finite(), "{prediction:?}");
            assert!(prediction.calibrated_logit.is_finite(), "{prediction:?}");
            assert!((0.0..=1.0).contains(&prediction.risk), "{prediction:?}");
            assert!(prediction.contributions.iter().all(|c| c.is_finite()));
        }

        // A vector built by hand can bypass `FeatureVector::set` and hold NaN or infinity.
        let mut hostile = FeatureVector::default();
        hostile.values[index("new_device")] = f64::NAN;
        hostile.values[index("new_country")] = f64::INFINITY;
        hostile.evaluable = [true; FEATURE_COUNT];
        let prediction = model.predict(&hostile);
        assert!(prediction.logit.is_finite(), "{prediction:?}");
        assert!(prediction.calibrated_logit.is_finite(), "{prediction:?}");
        assert!(!prediction.risk.is_nan(), "{prediction:?}");
    }

    #[test]
    fn shipped_model_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/trained/default.json");
        let model = RiskModel::load(&path).unwrap();
        assert!(
            model.version().starts_with("login-risk-"),
            "{}",
            model.version()
        );
        let artifact = model.artifact().unwrap();
        assert_eq!(artifact.feature_names.len(), FEATURE_NAMES.len());
        assert!(model.global_tables().total > 0);
    }
}
