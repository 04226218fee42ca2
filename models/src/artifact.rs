//! The versioned model artifact that training writes and the server loads.
//!
//! An artifact is one JSON file: a logistic model over named features, a Platt calibration
//! `risk = sigmoid(a * logit + b)`, the Freeman global tables learned from the same history,
//! and the provenance of the training data. [`ModelArtifact::load`] rejects any file the
//! server could not score with safely, naming the file and the offending value.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::freeman::{FreemanError, GlobalTables};
use crate::linear::sigmoid;

/// The artifact layout this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Bound on the absolute value of one contribution and of the summed logit, so that extreme
/// inputs cannot overflow to infinity or cancel to NaN. `sigmoid(±50)` is already 0 or 1 to
/// within `2e-22`.
const MAX_ABS_LOGIT: f64 = 1e6;

/// Platt scaling of the model's logit: `risk = sigmoid(a * logit + b)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlattCalibration {
    pub a: f64,
    pub b: f64,
}

impl PlattCalibration {
    /// The calibration that leaves the logit unchanged.
    pub const IDENTITY: PlattCalibration = PlattCalibration { a: 1.0, b: 0.0 };

    /// Returns the calibrated risk of a logit, in `[0, 1]`.
    pub fn risk(&self, logit: f64) -> f64 {
        let z = self.a * logit + self.b;
        if z.is_nan() { 1.0 } else { sigmoid(z) }
    }
}

/// A trained login-risk model with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub format_version: u32,
    /// `login-risk-<YYYYMMDD>-<first 8 hex digits of the model digest>`.
    pub model_version: String,
    pub created_at: DateTime<Utc>,
    /// Feature names in the order of `coefficients`.
    pub feature_names: Vec<String>,
    pub intercept: f64,
    pub coefficients: Vec<f64>,
    pub calibration: PlattCalibration,
    pub freeman: GlobalTables,
    /// SHA-256 of the training data file, in hex.
    pub training_data_sha256: String,
    pub training_rows: u64,
    /// Evaluation figures recorded by training.
    pub metrics: serde_json::Value,
}

/// The output of [`ModelArtifact::predict`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Uncalibrated log-odds: the intercept plus the contributions. Always finite.
    pub logit: f64,
    /// Calibrated risk `sigmoid(a * logit + b)`, in `[0, 1]`.
    pub risk: f64,
    /// Each feature's term of the logit, in `feature_names` order; 0 when not evaluable.
    pub contributions: Vec<f64>,
}

/// An error of loading or saving an artifact.
#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("failed to read model artifact `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write model artifact `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model artifact `{path}` is not valid JSON for this format: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("model artifact `{path}` has no `format_version` field")]
    MissingFormatVersion { path: PathBuf },
    #[error(
        "model artifact `{path}` has format_version `{found}`, but this build reads only \
         version {FORMAT_VERSION}: retrain with this build or upgrade the server"
    )]
    UnsupportedFormatVersion { path: PathBuf, found: String },
    #[error("model artifact `{path}` has {coefficients} coefficients for {features} feature names")]
    CoefficientCount {
        path: PathBuf,
        coefficients: usize,
        features: usize,
    },
    #[error("model artifact `{path}` uses feature `{name}`, which this build does not compute")]
    UnknownFeature { path: PathBuf, name: String },
    #[error("model artifact `{path}` lists feature `{name}` twice")]
    DuplicateFeature { path: PathBuf, name: String },
    #[error("model artifact `{path}` has a non-finite `{field}`: `{value}`")]
    NonFinite {
        path: PathBuf,
        field: String,
        value: f64,
    },
    #[error(
        "model artifact `{path}` has calibration slope `a` = `{value}`, which must be > 0 so \
         that a higher logit means a higher risk"
    )]
    CalibrationSlope { path: PathBuf, value: f64 },
    #[error("model artifact `{path}` has invalid Freeman tables: {source}")]
    Freeman { path: PathBuf, source: FreemanError },
}

impl ModelArtifact {
    /// Reads and validates an artifact. `known_features` lists the feature names the caller
    /// computes. Every name in the artifact must be among them, but the artifact may use a
    /// subset.
    pub fn load(path: &Path, known_features: &[&str]) -> Result<ModelArtifact, ArtifactError> {
        let text = fs::read_to_string(path).map_err(|source| ArtifactError::Read {
            path: path.to_owned(),
            source,
        })?;
        let json_error = |source| ArtifactError::Json {
            path: path.to_owned(),
            source,
        };
        // The version is checked before the layout, so a file from a newer build gets the
        // version error instead of a confusing field error.
        let value: serde_json::Value = serde_json::from_str(&text).map_err(json_error)?;
        match value.get("format_version") {
            None => {
                return Err(ArtifactError::MissingFormatVersion {
                    path: path.to_owned(),
                });
            }
            Some(version) if version.as_u64() != Some(u64::from(FORMAT_VERSION)) => {
                return Err(ArtifactError::UnsupportedFormatVersion {
                    path: path.to_owned(),
                    found: version.to_string(),
                });
            }
            Some(_) => {}
        }
        let artifact: ModelArtifact = serde_json::from_value(value).map_err(json_error)?;
        artifact.check(path, Some(known_features))?;
        Ok(artifact)
    }

    /// Writes the artifact as pretty-printed JSON, through a temporary file in the same
    /// folder that is renamed over `path`, so a server watching `path` never reads half a
    /// file. The artifact is validated first.
    pub fn save(&self, path: &Path) -> Result<(), ArtifactError> {
        self.check(path, None)?;
        let write_error = |source| ArtifactError::Write {
            path: path.to_owned(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|source| ArtifactError::Json {
            path: path.to_owned(),
            source,
        })?;
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(folder).map_err(write_error)?;
        file.write_all(&json).map_err(write_error)?;
        file.write_all(b"\n").map_err(write_error)?;
        file.as_file().sync_all().map_err(write_error)?;
        file.persist(path)
            .map_err(|error| write_error(error.error))?;
        Ok(())
    }

    /// Validates everything [`ModelArtifact::load`] validates after parsing.
    fn check(&self, path: &Path, known_features: Option<&[&str]>) -> Result<(), ArtifactError> {
        let path_buf = || path.to_owned();
        if self.format_version != FORMAT_VERSION {
            return Err(ArtifactError::UnsupportedFormatVersion {
                path: path_buf(),
                found: self.format_version.to_string(),
            });
        }
        if self.coefficients.len() != self.feature_names.len() {
            return Err(ArtifactError::CoefficientCount {
                path: path_buf(),
                coefficients: self.coefficients.len(),
                features: self.feature_names.len(),
            });
        }
        let mut seen = HashSet::new();
        for name in &self.feature_names {
            if let Some(known) = known_features
                && !known.contains(&name.as_str())
            {
                return Err(ArtifactError::UnknownFeature {
                    path: path_buf(),
                    name: name.clone(),
                });
            }
            if !seen.insert(name.as_str()) {
                return Err(ArtifactError::DuplicateFeature {
                    path: path_buf(),
                    name: name.clone(),
                });
            }
        }
        let numbers = [
            ("intercept".to_owned(), self.intercept),
            ("calibration.a".to_owned(), self.calibration.a),
            ("calibration.b".to_owned(), self.calibration.b),
        ]
        .into_iter()
        .chain(
            self.feature_names
                .iter()
                .zip(&self.coefficients)
                .map(|(name, value)| (format!("coefficients[{name}]"), *value)),
        );
        for (field, value) in numbers {
            if !value.is_finite() {
                return Err(ArtifactError::NonFinite {
                    path: path_buf(),
                    field,
                    value,
                });
            }
        }
        if self.calibration.a <= 0.0 {
            return Err(ArtifactError::CalibrationSlope {
                path: path_buf(),
                value: self.calibration.a,
            });
        }
        self.freeman
            .validate()
            .map_err(|source| ArtifactError::Freeman {
                path: path_buf(),
                source,
            })
    }

    /// Scores one login. `values` and `evaluable` are in `feature_names` order. A feature
    /// that is not evaluable, has a non-finite value or is missing because a slice is shorter
    /// than `feature_names` contributes 0.
    pub fn predict(&self, values: &[f64], evaluable: &[bool]) -> Prediction {
        let contributions: Vec<f64> = self
            .coefficients
            .iter()
            .enumerate()
            .map(|(index, coefficient)| {
                let value = values.get(index).copied().unwrap_or(0.0);
                let usable = evaluable.get(index).copied().unwrap_or(false) && value.is_finite();
                if usable {
                    bounded(coefficient * value)
                } else {
                    0.0
                }
            })
            .collect();
        let logit = bounded(self.intercept + contributions.iter().sum::<f64>());
        Prediction {
            logit,
            risk: self.calibration.risk(logit),
            contributions,
        }
    }

    /// Scores one login whose feature values are looked up by name; `None` means not
    /// evaluable.
    pub fn predict_named(&self, value_of: impl Fn(&str) -> Option<f64>) -> Prediction {
        let mut values = Vec::with_capacity(self.feature_names.len());
        let mut evaluable = Vec::with_capacity(self.feature_names.len());
        for name in &self.feature_names {
            let value = value_of(name);
            values.push(value.unwrap_or(0.0));
            evaluable.push(value.is_some());
        }
        self.predict(&values, &evaluable)
    }

    /// Builds `login-risk-<YYYYMMDD>-<digest8>` from the creation time and the first 8 hex
    /// digits of the SHA-256 of the coefficients, the calibration and the training data
    /// digest, so two different models made on one day get different versions.
    pub fn derive_model_version(&self) -> String {
        let mut hasher = Sha256::new();
        for name in &self.feature_names {
            hasher.update(name.as_bytes());
            hasher.update([0]);
        }
        for number in std::iter::once(self.intercept)
            .chain(self.coefficients.iter().copied())
            .chain([self.calibration.a, self.calibration.b])
        {
            hasher.update(number.to_le_bytes());
        }
        hasher.update(self.training_data_sha256.as_bytes());
        let digest = hex::encode(hasher.finalize());
        format!(
            "login-risk-{}-{}",
            self.created_at.format("%Y%m%d"),
            &digest[..8]
        )
    }
}

/// Clamps to `±MAX_ABS_LOGIT`, mapping NaN to 0.
fn bounded(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(-MAX_ABS_LOGIT, MAX_ABS_LOGIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FEATURE_NAMES;
    use crate::freeman::LoginAttributes;

    fn artifact() -> ModelArtifact {
        let mut freeman = GlobalTables::default();
        freeman.observe(&LoginAttributes {
            ip: "192.0.2.1".parse().unwrap(),
            asn: Some(64500),
            country: Some("NO".into()),
            user_agent: None,
        });
        let mut artifact = ModelArtifact {
            format_version: FORMAT_VERSION,
            model_version: String::new(),
            created_at: DateTime::from_timestamp(1_717_000_000, 0).unwrap(),
            feature_names: vec!["new_device".into(), "new_country".into()],
            intercept: -3.0,
            coefficients: vec![2.0, 1.5],
            calibration: PlattCalibration { a: 0.5, b: -1.0 },
            freeman,
            training_data_sha256: "ab".repeat(32),
            training_rows: 10,
            metrics: serde_json::json!({ "roc_auc": 0.9 }),
        };
        artifact.model_version = artifact.derive_model_version();
        artifact
    }

    fn write_json(dir: &Path, value: &serde_json::Value) -> PathBuf {
        let path = dir.join("model.json");
        fs::write(&path, serde_json::to_string(value).unwrap()).unwrap();
        path
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        let original = artifact();
        original.save(&path).unwrap();
        let loaded = ModelArtifact::load(&path, &FEATURE_NAMES).unwrap();
        assert_eq!(loaded, original);
        assert!(loaded.model_version.starts_with("login-risk-20240529-"));
        assert_eq!(loaded.model_version.len(), "login-risk-20240529-".len() + 8);
    }

    #[test]
    fn predict_is_calibrated_and_skips_unevaluable() {
        let model = artifact();
        let prediction = model.predict(&[1.0, 1.0], &[true, false]);
        assert_eq!(prediction.contributions, vec![2.0, 0.0]);
        assert!((prediction.logit - -1.0).abs() < 1e-12);
        // sigmoid(0.5 * -1 - 1) = sigmoid(-1.5)
        assert!((prediction.risk - 1.0 / (1.0 + 1.5_f64.exp())).abs() < 1e-12);

        let named = model.predict_named(|name| (name == "new_device").then_some(1.0));
        assert_eq!(named, prediction);
    }

    #[test]
    fn predict_stays_finite_on_hostile_values() {
        let model = artifact();
        for values in [
            [f64::NAN, f64::INFINITY],
            [f64::MAX, -f64::MAX],
            [1e300, 1e300],
            [-1e300, 0.0],
        ] {
            let prediction = model.predict(&values, &[true, true]);
            assert!(prediction.logit.is_finite(), "{values:?}");
            assert!((0.0..=1.0).contains(&prediction.risk), "{values:?}");
            assert!(prediction.contributions.iter().all(|c| c.is_finite()));
        }
        let short = model.predict(&[1.0], &[true, true, true]);
        assert_eq!(short.contributions, vec![2.0, 0.0]);
    }

    #[test]
    fn load_rejects_unknown_format_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut json = serde_json::to_value(artifact()).unwrap();
        json["format_version"] = serde_json::json!(2);
        let path = write_json(dir.path(), &json);
        let error = ModelArtifact::load(&path, &FEATURE_NAMES).unwrap_err();
        assert!(
            matches!(&error, ArtifactError::UnsupportedFormatVersion { found, .. } if found == "2"),
            "{error}"
        );
        assert!(error.to_string().contains("model.json"));

        json.as_object_mut().unwrap().remove("format_version");
        let path = write_json(dir.path(), &json);
        let error = ModelArtifact::load(&path, &FEATURE_NAMES).unwrap_err();
        assert!(matches!(error, ArtifactError::MissingFormatVersion { .. }));
    }

    #[test]
    fn load_rejects_coefficient_count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let mut json = serde_json::to_value(artifact()).unwrap();
        json["coefficients"] = serde_json::json!([1.0, 2.0, 3.0]);
        let path = write_json(dir.path(), &json);
        let error = ModelArtifact::load(&path, &FEATURE_NAMES).unwrap_err();
        assert!(matches!(
            error,
            ArtifactError::CoefficientCount {
                coefficients: 3,
                features: 2,
                ..
            }
        ));
    }

    #[test]
    fn load_rejects_unknown_and_duplicate_features() {
        let dir = tempfile::tempdir().unwrap();
        let mut json = serde_json::to_value(artifact()).unwrap();
        json["feature_names"] = serde_json::json!(["new_device", "shoe_size"]);
        let path = write_json(dir.path(), &json);
        let error = ModelArtifact::load(&path, &FEATURE_NAMES).unwrap_err();
        assert!(
            matches!(&error, ArtifactError::UnknownFeature { name, .. } if name == "shoe_size")
        );
        assert!(error.to_string().contains("`shoe_size`"));

        json["feature_names"] = serde_json::json!(["new_device", "new_device"]);
        let path = write_json(dir.path(), &json);
        let error = ModelArtifact::load(&path, &FEATURE_NAMES).unwrap_err();
        assert!(matches!(error, ArtifactError::DuplicateFeature { .. }));
    }

    #[test]
    fn load_rejects_out_of_range_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        // JSON has no NaN or infinity; an overflowing literal is the nearest a file can get.
        let text = serde_json::to_string(&artifact())
            .unwrap()
            .replace("\"intercept\":-3.0", "\"intercept\":1e999");
        fs::write(&path, text).unwrap();
        let error = ModelArtifact::load(&path, &FEATURE_NAMES).unwrap_err();
        assert!(matches!(error, ArtifactError::Json { .. }), "{error}");
    }

    #[test]
    fn check_rejects_non_finite_and_bad_calibration() {
        let path = Path::new("model.json");
        let mut model = artifact();
        model.coefficients[1] = f64::NAN;
        let error = model.check(path, Some(&FEATURE_NAMES)).unwrap_err();
        assert!(
            matches!(&error, ArtifactError::NonFinite { field, .. } if field == "coefficients[new_country]"),
            "{error}"
        );

        let mut model = artifact();
        model.calibration.b = f64::INFINITY;
        let error = model.check(path, Some(&FEATURE_NAMES)).unwrap_err();
        assert!(
            matches!(&error, ArtifactError::NonFinite { field, .. } if field == "calibration.b")
        );

        let mut model = artifact();
        model.calibration.a = -0.5;
        assert!(matches!(
            model.check(path, Some(&FEATURE_NAMES)),
            Err(ArtifactError::CalibrationSlope { .. })
        ));

        let mut model = artifact();
        model.freeman.user_smoothing = 0.0;
        assert!(matches!(
            model.check(path, Some(&FEATURE_NAMES)),
            Err(ArtifactError::Freeman { .. })
        ));

        let model = artifact();
        let dir = tempfile::tempdir().unwrap();
        let mut broken = model.clone();
        broken.intercept = f64::NAN;
        assert!(broken.save(&dir.path().join("x.json")).is_err());
        assert!(!dir.path().join("x.json").exists());
    }

    #[test]
    fn model_version_depends_on_coefficients() {
        let model = artifact();
        let mut other = model.clone();
        other.coefficients[0] = 2.5;
        assert_ne!(model.derive_model_version(), other.derive_model_version());
        assert_eq!(
            model.derive_model_version(),
            model.clone().derive_model_version()
        );
    }
}
