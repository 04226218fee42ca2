//! The login feature vector, defined once for the online service and offline training.
//!
//! Every signal the engine evaluates becomes one feature with a value in `[0, 1]` and an
//! `evaluable` flag. A feature that could not be evaluated contributes nothing to a model,
//! so a missing input never reads as low risk: the engine marks the request degraded instead.

use serde::{Deserialize, Serialize};

/// Feature names in vector order. Models store this list and refuse to load against another.
pub const FEATURE_NAMES: [&str; 14] = [
    "new_device",
    "new_country",
    "new_city",
    "impossible_travel",
    "anonymous_ip",
    "hosting_network",
    "user_failures",
    "ip_failures",
    "ip_many_users",
    "unusual_hour",
    "learning",
    "keystroke_anomaly",
    "freeman_network",
    "freeman_agent",
];

/// Number of features in a [`FeatureVector`].
pub const FEATURE_COUNT: usize = FEATURE_NAMES.len();

/// Returns the position of `name` in [`FEATURE_NAMES`].
pub fn feature_index(name: &str) -> Option<usize> {
    FEATURE_NAMES
        .iter()
        .position(|candidate| *candidate == name)
}

/// One login's features in [`FEATURE_NAMES`] order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureVector {
    pub values: [f64; FEATURE_COUNT],
    pub evaluable: [bool; FEATURE_COUNT],
}

impl Default for FeatureVector {
    fn default() -> Self {
        FeatureVector {
            values: [0.0; FEATURE_COUNT],
            evaluable: [false; FEATURE_COUNT],
        }
    }
}

impl FeatureVector {
    /// Sets feature `name`. A non-finite value is stored as not evaluable, and a finite one is
    /// clamped to `[0, 1]`, so no NaN or infinity can reach a model or a threshold.
    ///
    /// Returns `false` when `name` is not a known feature.
    pub fn set(&mut self, name: &str, value: f64, evaluable: bool) -> bool {
        let Some(index) = feature_index(name) else {
            return false;
        };
        if evaluable && value.is_finite() {
            self.values[index] = value.clamp(0.0, 1.0);
            self.evaluable[index] = true;
        } else {
            self.values[index] = 0.0;
            self.evaluable[index] = false;
        }
        true
    }

    /// Returns the value of `name` when it was evaluable.
    pub fn get(&self, name: &str) -> Option<f64> {
        let index = feature_index(name)?;
        self.evaluable[index].then_some(self.values[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clamps_and_rejects_non_finite() {
        let mut vector = FeatureVector::default();
        assert!(vector.set("new_device", 3.0, true));
        assert_eq!(vector.get("new_device"), Some(1.0));
        assert!(vector.set("new_country", f64::NAN, true));
        assert_eq!(vector.get("new_country"), None);
        assert!(vector.set("new_city", f64::INFINITY, true));
        assert_eq!(vector.get("new_city"), None);
        assert!(!vector.set("no_such_feature", 1.0, true));
    }

    #[test]
    fn not_evaluable_feature_reads_as_absent() {
        let mut vector = FeatureVector::default();
        vector.set("impossible_travel", 0.8, false);
        assert_eq!(vector.get("impossible_travel"), None);
        assert_eq!(
            vector.values[feature_index("impossible_travel").unwrap()],
            0.0
        );
    }
}
