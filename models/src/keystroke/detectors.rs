//! Anomaly detectors over timing vectors: the classic ones compared by Killourhy and Maxion
//! ("Comparing Anomaly-Detection Algorithms for Keystroke Dynamics", DSN 2009) and riskgate's
//! default, [`Detector::RobustManhattan`].
//!
//! Each detector fits a [`Model`] to a user's genuine samples and scores a new sample; a higher
//! score is more anomalous. Scores of different detectors are on different scales, and only
//! their order within one user's model matters to the benchmark.

use std::fmt;
use std::str::FromStr;

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::features::TimingVector;
pub use super::linalg::Whitening;
use super::linalg::{column_means, covariance};

/// z-score beyond which the Outlier Count detector counts a feature as an outlier (the
/// two-sided 5 % point of the standard normal distribution).
pub const OUTLIER_Z: f64 = 1.96;

/// Smallest per-feature spread used as a divisor, in seconds. It keeps a feature that never
/// varied in training (possible with few samples) from dividing by zero.
const MIN_SPREAD_S: f64 = 1e-6;

/// Anomaly detector, selectable by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Detector {
    /// Squared Euclidean distance to the training mean.
    Euclidean,
    /// L1 distance to the training mean.
    Manhattan,
    /// L1 distance to the training mean, each feature divided by its mean absolute deviation
    /// from the mean over the training set.
    ManhattanScaled,
    /// Squared Mahalanobis distance to the training mean, with the Moore-Penrose inverse of the
    /// training covariance.
    Mahalanobis,
    /// Smallest squared Mahalanobis distance to any training vector, with the Moore-Penrose
    /// inverse of the training covariance.
    NnMahalanobis,
    /// Number of features whose z-score against the training mean and standard deviation
    /// exceeds 1.96 in absolute value.
    OutlierCount,
    /// riskgate's default: see [`super::robust`].
    RobustManhattan,
}

impl Detector {
    /// Every detector, the default last.
    pub const ALL: [Detector; 7] = [
        Detector::Euclidean,
        Detector::Manhattan,
        Detector::ManhattanScaled,
        Detector::Mahalanobis,
        Detector::NnMahalanobis,
        Detector::OutlierCount,
        Detector::RobustManhattan,
    ];

    /// The three best detectors of Killourhy and Maxion (2009), used as baselines.
    pub const BASELINES: [Detector; 3] = [
        Detector::ManhattanScaled,
        Detector::NnMahalanobis,
        Detector::OutlierCount,
    ];

    /// The detector riskgate uses when none is configured.
    pub const DEFAULT: Detector = Detector::RobustManhattan;

    /// Name used on the command line and in stored templates.
    pub fn name(&self) -> &'static str {
        match self {
            Detector::Euclidean => "euclidean",
            Detector::Manhattan => "manhattan",
            Detector::ManhattanScaled => "manhattan-scaled",
            Detector::Mahalanobis => "mahalanobis",
            Detector::NnMahalanobis => "nn-mahalanobis",
            Detector::OutlierCount => "outlier-count",
            Detector::RobustManhattan => "robust-manhattan",
        }
    }

    /// Name used in the literature.
    pub fn title(&self) -> &'static str {
        match self {
            Detector::Euclidean => "Euclidean",
            Detector::Manhattan => "Manhattan",
            Detector::ManhattanScaled => "Manhattan (scaled)",
            Detector::Mahalanobis => "Mahalanobis",
            Detector::NnMahalanobis => "Nearest Neighbor (Mahalanobis)",
            Detector::OutlierCount => "Outlier Count (z-score)",
            Detector::RobustManhattan => "Manhattan (robust, recent window; riskgate default)",
        }
    }

    /// Fits a model to a user's genuine training vectors.
    pub fn fit(&self, training: &[TimingVector]) -> Result<Model, FitError> {
        self.fit_matrix(&training_matrix(training)?)
    }

    /// Fits a model to a matrix from [`training_matrix`], one training vector per row.
    pub(crate) fn fit_matrix(&self, rows: &Array2<f64>) -> Result<Model, FitError> {
        let model = match self {
            Detector::Euclidean => Model::Euclidean {
                mean: column_means(rows).to_vec(),
            },
            Detector::Manhattan => Model::Manhattan {
                mean: column_means(rows).to_vec(),
            },
            Detector::ManhattanScaled => {
                let mean = column_means(rows);
                let spread = rows
                    .columns()
                    .into_iter()
                    .zip(mean.iter())
                    .map(|(column, m)| {
                        let mad =
                            column.iter().map(|x| (x - m).abs()).sum::<f64>() / column.len() as f64;
                        mad.max(MIN_SPREAD_S)
                    })
                    .collect();
                Model::ManhattanScaled {
                    mean: mean.to_vec(),
                    mean_absolute_deviation: spread,
                }
            }
            Detector::Mahalanobis => {
                let mean = column_means(rows);
                let whitening = Whitening::from_covariance(&covariance(rows, &mean));
                Model::Mahalanobis {
                    mean: mean.to_vec(),
                    whitening,
                }
            }
            Detector::NnMahalanobis => {
                let mean = column_means(rows);
                let whitening = Whitening::from_covariance(&covariance(rows, &mean));
                let projected = rows
                    .rows()
                    .into_iter()
                    .map(|row| whitening.project_point(row))
                    .collect();
                Model::NnMahalanobis {
                    whitening,
                    projected_training: projected,
                }
            }
            Detector::OutlierCount => {
                let mean = column_means(rows);
                let sd = covariance(rows, &mean)
                    .diag()
                    .iter()
                    .map(|v| v.sqrt())
                    .collect();
                Model::OutlierCount {
                    mean: mean.to_vec(),
                    standard_deviation: sd,
                }
            }
            Detector::RobustManhattan => {
                Model::RobustManhattan(super::robust::RobustModel::fit(rows)?)
            }
        };
        Ok(model)
    }

    /// Scores a sample against a model fitted by this detector; higher is more anomalous.
    pub fn score(&self, model: &Model, sample: &TimingVector) -> Result<f64, ScoreError> {
        if model.detector() != *self {
            return Err(ScoreError::DetectorMismatch {
                model: model.detector().name(),
                detector: self.name(),
            });
        }
        model.score(sample)
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Detector {
    type Err = UnknownDetector;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Detector::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| UnknownDetector {
                name: name.to_owned(),
            })
    }
}

impl From<Detector> for String {
    fn from(detector: Detector) -> Self {
        detector.name().to_owned()
    }
}

impl TryFrom<String> for Detector {
    type Error = UnknownDetector;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

/// A detector name that matches none of [`Detector::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "unknown keystroke detector `{name}`: expected one of euclidean, manhattan, \
     manhattan-scaled, mahalanobis, nn-mahalanobis, outlier-count, robust-manhattan"
)]
pub struct UnknownDetector {
    pub name: String,
}

/// Failure to fit a model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FitError {
    /// The training set is empty.
    #[error("no training samples")]
    NoSamples,
    /// Training vectors differ in length.
    #[error("training sample `{index}` has `{actual}` features, the first has {expected}")]
    LengthMismatch {
        index: usize,
        expected: usize,
        actual: usize,
    },
    /// A training vector has no features.
    #[error("training samples have no features")]
    NoFeatures,
    /// A training value is NaN or infinite.
    #[error("training sample `{index}` has a non-finite value")]
    NonFinite { index: usize },
}

/// Failure to score a sample.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScoreError {
    /// The sample length differs from the model's.
    #[error("sample has `{actual}` features, the model has {expected}")]
    LengthMismatch { expected: usize, actual: usize },
    /// The sample has a NaN or infinite value.
    #[error("sample has a non-finite value")]
    NonFinite,
    /// The model was fitted by another detector.
    #[error("model was fitted by `{model}`, not by `{detector}`")]
    DetectorMismatch {
        model: &'static str,
        detector: &'static str,
    },
}

/// A detector's fitted state for one user.
///
/// `Debug` prints only the detector and the feature count, because the model is derived from
/// typing rhythm.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "detector", rename_all = "kebab-case")]
pub enum Model {
    Euclidean {
        mean: Vec<f64>,
    },
    Manhattan {
        mean: Vec<f64>,
    },
    ManhattanScaled {
        mean: Vec<f64>,
        mean_absolute_deviation: Vec<f64>,
    },
    Mahalanobis {
        mean: Vec<f64>,
        whitening: Whitening,
    },
    NnMahalanobis {
        whitening: Whitening,
        projected_training: Vec<Vec<f64>>,
    },
    OutlierCount {
        mean: Vec<f64>,
        standard_deviation: Vec<f64>,
    },
    RobustManhattan(super::robust::RobustModel),
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("detector", &self.detector().name())
            .field("features", &self.feature_count())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Detector that fitted this model.
    pub fn detector(&self) -> Detector {
        match self {
            Model::Euclidean { .. } => Detector::Euclidean,
            Model::Manhattan { .. } => Detector::Manhattan,
            Model::ManhattanScaled { .. } => Detector::ManhattanScaled,
            Model::Mahalanobis { .. } => Detector::Mahalanobis,
            Model::NnMahalanobis { .. } => Detector::NnMahalanobis,
            Model::OutlierCount { .. } => Detector::OutlierCount,
            Model::RobustManhattan(_) => Detector::RobustManhattan,
        }
    }

    /// Number of features the model expects.
    pub fn feature_count(&self) -> usize {
        match self {
            Model::Euclidean { mean }
            | Model::Manhattan { mean }
            | Model::ManhattanScaled { mean, .. }
            | Model::Mahalanobis { mean, .. }
            | Model::OutlierCount { mean, .. } => mean.len(),
            Model::NnMahalanobis { whitening, .. } => whitening.dimension(),
            Model::RobustManhattan(model) => model.feature_count(),
        }
    }

    /// Scores a sample; higher is more anomalous.
    pub fn score(&self, sample: &TimingVector) -> Result<f64, ScoreError> {
        let x = sample.values();
        if x.len() != self.feature_count() {
            return Err(ScoreError::LengthMismatch {
                expected: self.feature_count(),
                actual: x.len(),
            });
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(ScoreError::NonFinite);
        }
        let score = match self {
            Model::Euclidean { mean } => x.iter().zip(mean).map(|(a, m)| (a - m).powi(2)).sum(),
            Model::Manhattan { mean } => x.iter().zip(mean).map(|(a, m)| (a - m).abs()).sum(),
            Model::ManhattanScaled {
                mean,
                mean_absolute_deviation,
            } => x
                .iter()
                .zip(mean)
                .zip(mean_absolute_deviation)
                .map(|((a, m), s)| (a - m).abs() / s)
                .sum(),
            Model::Mahalanobis { mean, whitening } => {
                whitening.project(x, mean).iter().map(|v| v * v).sum()
            }
            Model::NnMahalanobis {
                whitening,
                projected_training,
            } => {
                let projected = whitening.project_point(ndarray::ArrayView1::from(x));
                projected_training
                    .iter()
                    .map(|t| {
                        t.iter()
                            .zip(&projected)
                            .map(|(a, b)| (a - b).powi(2))
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
            }
            Model::OutlierCount {
                mean,
                standard_deviation,
            } => x
                .iter()
                .zip(mean)
                .zip(standard_deviation)
                .filter(|((a, m), sd)| {
                    let deviation = (*a - *m).abs();
                    deviation > OUTLIER_Z * **sd && deviation > 0.0
                })
                .count() as f64,
            Model::RobustManhattan(model) => model.score(x),
        };
        Ok(score)
    }
}

/// Stacks training vectors into a matrix, one per row in standard layout, after checking
/// lengths and values.
pub(crate) fn training_matrix(training: &[TimingVector]) -> Result<Array2<f64>, FitError> {
    let first = training.first().ok_or(FitError::NoSamples)?;
    let dimension = first.len();
    if dimension == 0 {
        return Err(FitError::NoFeatures);
    }
    let mut flat = Vec::with_capacity(training.len() * dimension);
    for (index, vector) in training.iter().enumerate() {
        if vector.len() != dimension {
            return Err(FitError::LengthMismatch {
                index,
                expected: dimension,
                actual: vector.len(),
            });
        }
        if vector.values().iter().any(|v| !v.is_finite()) {
            return Err(FitError::NonFinite { index });
        }
        flat.extend_from_slice(vector.values());
    }
    Array2::from_shape_vec((training.len(), dimension), flat).map_err(|_| FitError::NoFeatures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors(rows: &[&[f64]]) -> Vec<TimingVector> {
        rows.iter().map(|r| TimingVector::new(r.to_vec())).collect()
    }

    fn score(detector: Detector, training: &[TimingVector], sample: &[f64]) -> f64 {
        let model = detector.fit(training).unwrap();
        detector
            .score(&model, &TimingVector::new(sample.to_vec()))
            .unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn names_round_trip() {
        for detector in Detector::ALL {
            assert_eq!(detector.name().parse::<Detector>(), Ok(detector));
            let json = serde_json::to_string(&detector).unwrap();
            assert_eq!(json, format!("\"{}\"", detector.name()));
        }
        let err = "svm".parse::<Detector>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown keystroke detector `svm`")
        );
        assert_eq!(Detector::DEFAULT.name(), "robust-manhattan");
    }

    #[test]
    fn mean_based_detectors_by_hand() {
        // Mean (3, 12); mean absolute deviations (4/3, 8/3); standard deviations (2, sqrt 12).
        let training = vectors(&[&[1.0, 10.0], &[3.0, 10.0], &[5.0, 16.0]]);
        let sample = [4.0, 16.0];
        assert!(close(score(Detector::Euclidean, &training, &sample), 17.0));
        assert!(close(score(Detector::Manhattan, &training, &sample), 5.0));
        assert!(close(
            score(Detector::ManhattanScaled, &training, &sample),
            0.75 + 1.5
        ));
        // z = (2.5, 0) and (0.5, 2.02): one outlier each.
        assert!(close(
            score(Detector::OutlierCount, &training, &[8.0, 12.0]),
            1.0
        ));
        assert!(close(
            score(Detector::OutlierCount, &training, &[4.0, 19.0]),
            1.0
        ));
        assert!(close(
            score(Detector::OutlierCount, &training, &[3.0, 12.0]),
            0.0
        ));
    }

    #[test]
    fn mahalanobis_detectors_by_hand() {
        // Mean (1, 1), covariance (4/3) I.
        let training = vectors(&[&[0.0, 0.0], &[2.0, 0.0], &[0.0, 2.0], &[2.0, 2.0]]);
        assert!(close(
            score(Detector::Mahalanobis, &training, &[3.0, 1.0]),
            3.0
        ));
        // Nearest training vectors (2, 0) and (2, 2) are at squared distance 2 / (4/3).
        assert!(close(
            score(Detector::NnMahalanobis, &training, &[3.0, 1.0]),
            1.5
        ));
        assert!(close(
            score(Detector::NnMahalanobis, &training, &[2.0, 2.0]),
            0.0
        ));
    }

    #[test]
    fn mahalanobis_ignores_redundant_feature() {
        // The third feature is the sum of the first two, as DD = H + UD: the covariance is
        // singular and the pseudo-inverse gives the distance of the first two alone.
        let base: [[f64; 2]; 4] = [[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]];
        let with_sum: Vec<Vec<f64>> = base.iter().map(|r| vec![r[0], r[1], r[0] + r[1]]).collect();
        let training: Vec<TimingVector> = with_sum.into_iter().map(TimingVector::new).collect();
        assert!(close(
            score(Detector::Mahalanobis, &training, &[3.0, 1.0, 4.0]),
            3.0
        ));
    }

    #[test]
    fn fit_errors() {
        assert_eq!(Detector::Manhattan.fit(&[]), Err(FitError::NoSamples));
        assert_eq!(
            Detector::Manhattan.fit(&vectors(&[&[1.0, 2.0], &[1.0]])),
            Err(FitError::LengthMismatch {
                index: 1,
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(
            Detector::Manhattan.fit(&vectors(&[&[1.0, f64::NAN]])),
            Err(FitError::NonFinite { index: 0 })
        );
        assert_eq!(
            Detector::Manhattan.fit(&vectors(&[&[]])),
            Err(FitError::NoFeatures)
        );
    }

    #[test]
    fn score_errors() {
        let training = vectors(&[&[1.0, 2.0], &[2.0, 3.0]]);
        let model = Detector::Manhattan.fit(&training).unwrap();
        assert_eq!(
            Detector::Manhattan.score(&model, &TimingVector::new(vec![1.0])),
            Err(ScoreError::LengthMismatch {
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(
            Detector::Manhattan.score(&model, &TimingVector::new(vec![1.0, f64::INFINITY])),
            Err(ScoreError::NonFinite)
        );
        assert_eq!(
            Detector::Euclidean.score(&model, &training[0]),
            Err(ScoreError::DetectorMismatch {
                model: "manhattan",
                detector: "euclidean"
            })
        );
    }

    #[test]
    fn models_survive_json() {
        let training = vectors(&[
            &[0.1, 0.3, 0.2, 0.11],
            &[0.12, 0.28, 0.16, 0.1],
            &[0.09, 0.35, 0.26, 0.13],
            &[0.11, 0.31, 0.2, 0.12],
        ]);
        let sample = TimingVector::new(vec![0.13, 0.4, 0.27, 0.09]);
        for detector in Detector::ALL {
            let model = detector.fit(&training).unwrap();
            let json = serde_json::to_string(&model).unwrap();
            let restored: Model = serde_json::from_str(&json).unwrap();
            assert_eq!(restored.detector(), detector);
            // serde_json may round the last bit of a float.
            let (before, after) = (
                model.score(&sample).unwrap(),
                restored.score(&sample).unwrap(),
            );
            assert!((before - after).abs() <= 1e-9 * before.abs(), "{detector}");
            assert!(!format!("{model:?}").contains("0.1"), "{detector}");
        }
    }
}
