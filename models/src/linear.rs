//! Logistic risk model over the [`FeatureVector`](crate::features::FeatureVector).
//!
//! The risk is `sigmoid(bias + sum(weight_i * value_i))` over the evaluable features, so each
//! feature's contribution to the log-odds is reported as the reason's weight in a decision.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::features::{FEATURE_COUNT, FEATURE_NAMES, FeatureVector, feature_index};

/// A logistic model with one weight per feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    pub version: String,
    pub bias: f64,
    pub weights: [f64; FEATURE_COUNT],
}

/// The output of [`LinearModel::predict`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Log-odds of an attack; always finite.
    pub logit: f64,
    /// `sigmoid(logit)`, in `[0, 1]`.
    pub risk: f64,
    /// Each feature's term of the log-odds sum, in [`FEATURE_NAMES`] order (0 when not evaluable).
    pub contributions: [f64; FEATURE_COUNT],
}

#[derive(Debug, Error, PartialEq)]
pub enum ModelError {
    #[error("unknown feature `{0}`")]
    UnknownFeature(String),
    #[error("weight of `{name}` is not a finite number: {value}")]
    NonFiniteWeight { name: String, value: f64 },
    #[error("bias is not a finite number: {0}")]
    NonFiniteBias(f64),
}

impl LinearModel {
    /// Builds a model from named weights; features without a weight get 0.
    pub fn from_named_weights<'a>(
        version: impl Into<String>,
        bias: f64,
        weights: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Result<Self, ModelError> {
        if !bias.is_finite() {
            return Err(ModelError::NonFiniteBias(bias));
        }
        let mut model = LinearModel {
            version: version.into(),
            bias,
            weights: [0.0; FEATURE_COUNT],
        };
        for (name, weight) in weights {
            let index =
                feature_index(name).ok_or_else(|| ModelError::UnknownFeature(name.to_owned()))?;
            if !weight.is_finite() {
                return Err(ModelError::NonFiniteWeight {
                    name: name.to_owned(),
                    value: weight,
                });
            }
            model.weights[index] = weight;
        }
        Ok(model)
    }

    /// Scores one feature vector.
    pub fn predict(&self, features: &FeatureVector) -> Prediction {
        let mut contributions = [0.0; FEATURE_COUNT];
        let mut logit = self.bias;
        for (index, contribution) in contributions.iter_mut().enumerate() {
            if features.evaluable[index] {
                *contribution = self.weights[index] * features.values[index];
                logit += *contribution;
            }
        }
        // Weights and values are finite and bounded, so the sum is finite; the guard keeps a
        // hand-edited artifact from ever producing NaN.
        if !logit.is_finite() {
            logit = if logit == f64::NEG_INFINITY {
                -50.0
            } else {
                50.0
            };
        }
        Prediction {
            logit,
            risk: sigmoid(logit),
            contributions,
        }
    }

    /// Returns `(name, weight)` pairs in feature order.
    pub fn named_weights(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        FEATURE_NAMES
            .iter()
            .copied()
            .zip(self.weights.iter().copied())
    }
}

/// The logistic function, computed without overflow for large `|x|`.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Returns the inverse of [`sigmoid`], with `p` clamped away from 0 and 1.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predict_sums_evaluable_contributions() {
        let model =
            LinearModel::from_named_weights("t", -2.0, [("new_device", 1.5), ("new_country", 2.0)])
                .unwrap();
        let mut features = FeatureVector::default();
        features.set("new_device", 1.0, true);
        features.set("new_country", 1.0, false);
        let prediction = model.predict(&features);
        assert!((prediction.logit - -0.5).abs() < 1e-12);
        assert!((prediction.risk - sigmoid(-0.5)).abs() < 1e-12);
        assert_eq!(
            prediction.contributions[feature_index("new_country").unwrap()],
            0.0
        );
    }

    #[test]
    fn unknown_feature_and_non_finite_weight_rejected() {
        assert_eq!(
            LinearModel::from_named_weights("t", 0.0, [("nope", 1.0)]),
            Err(ModelError::UnknownFeature("nope".into()))
        );
        assert!(LinearModel::from_named_weights("t", 0.0, [("new_device", f64::NAN)]).is_err());
        assert!(LinearModel::from_named_weights("t", f64::INFINITY, []).is_err());
    }

    #[test]
    fn sigmoid_is_stable_at_extremes() {
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
        assert!((logit(sigmoid(1.25)) - 1.25).abs() < 1e-9);
    }
}
