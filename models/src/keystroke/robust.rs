//! riskgate's default keystroke detector, `robust-manhattan`: a scaled Manhattan distance made
//! robust in three ways, each a standard choice rather than a value fitted to a data set.
//!
//! 1. Recent samples only. The model is fitted on the newest [`RECENT_SAMPLES`] training
//!    vectors (training vectors are in time order), the template's default rolling window,
//!    because typing rhythm drifts as a user gets used to a password.
//! 2. Robust location and scale. Each feature is centred on its median and scaled by its
//!    median absolute deviation times 1.4826, a consistent estimate of the standard deviation
//!    for normal data. A few hesitations or typos among the enrolment samples then do not
//!    move the template. The scale never drops below [`MIN_SCALE_S`], the order of a browser
//!    timer's resolution.
//! 3. Bounded influence. Each feature contributes at most [`Z_CAP`] (the three-sigma rule) to
//!    the score, so one long pause on one key cannot outweigh the rest of the rhythm. An
//!    impostor differs on many features at once, a genuine user on few.
//!
//! On the IIITBh-Big data set (12 subjects, the Killourhy and Maxion protocol) it reaches a
//! mean equal-error rate of 0.046, against 0.084 for the scaled Manhattan detector. Most of
//! the gain comes from capping robust z-scores (0.056 with all 75 training samples); robust
//! scaling without the cap (0.089) or the window without the cap (0.089) does not help alone.
//! Caps from 2.5 to 4 and windows from 30 to 60 samples all stay at or below 0.055 (tests
//! below check both statements), and on each half of the subjects it beats the three best
//! classic detectors. With 12 subjects the figure is uncertain by about 0.01, and it has not
//! been measured on the full CMU data set, which was not available. The design was chosen
//! after trying variants on this same file (a Student-t likelihood, ensembles with the
//! Mahalanobis detectors, other caps and windows). The cap is the three-sigma rule and the
//! window is the template's default; a 30-sample window scores better on this file (0.039)
//! but was not adopted.

use ndarray::{Array2, Axis, Slice};
use serde::{Deserialize, Serialize};

use super::detectors::FitError;

/// Number of most recent training vectors the model is fitted on.
pub const RECENT_SAMPLES: usize = 50;
/// Maximum contribution of one feature, in robust standard deviations.
pub const Z_CAP: f64 = 3.0;
/// Smallest feature scale, in seconds (1 ms).
pub const MIN_SCALE_S: f64 = 1e-3;
/// Ratio of the standard deviation to the median absolute deviation for normal data.
const MAD_TO_SD: f64 = 1.4826;

/// Fitted state of the default detector: per-feature median and robust scale.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustModel {
    median: Vec<f64>,
    scale: Vec<f64>,
}

impl RobustModel {
    /// Fits the model on the newest [`RECENT_SAMPLES`] rows of a training matrix whose rows are
    /// in time order.
    pub(crate) fn fit(rows: &Array2<f64>) -> Result<Self, FitError> {
        Self::fit_newest(rows, RECENT_SAMPLES)
    }

    /// Fits the model on the newest `count` rows.
    fn fit_newest(rows: &Array2<f64>, count: usize) -> Result<Self, FitError> {
        let start = rows.nrows().saturating_sub(count);
        let recent = rows.slice_axis(Axis(0), Slice::from(start..));
        let mut median = Vec::with_capacity(rows.ncols());
        let mut scale = Vec::with_capacity(rows.ncols());
        let mut buffer = Vec::with_capacity(recent.nrows());
        for column in recent.columns() {
            buffer.clear();
            buffer.extend(column.iter().copied());
            let centre = median_of(&mut buffer);
            for value in buffer.iter_mut() {
                *value = (*value - centre).abs();
            }
            let mad = median_of(&mut buffer);
            median.push(centre);
            scale.push((MAD_TO_SD * mad).max(MIN_SCALE_S));
        }
        if median.is_empty() {
            return Err(FitError::NoFeatures);
        }
        Ok(Self { median, scale })
    }

    pub(crate) fn feature_count(&self) -> usize {
        self.median.len()
    }

    /// Sum over features of `min(|x - median| / scale, Z_CAP)`. The caller checks the length.
    pub(crate) fn score(&self, x: &[f64]) -> f64 {
        self.score_values(x)
    }

    fn score_values<'a>(&self, x: impl IntoIterator<Item = &'a f64>) -> f64 {
        x.into_iter()
            .zip(&self.median)
            .zip(&self.scale)
            .map(|((&value, &median), &scale)| capped_deviation(value, median, scale))
            .sum()
    }
}

/// Computes one feature's term of the score, `min(|value - median| / scale, Z_CAP)`.
fn capped_deviation(value: f64, median: f64, scale: f64) -> f64 {
    ((value - median).abs() / scale).min(Z_CAP)
}

/// Scores each row of a training matrix (rows in time order) against the model that
/// [`RobustModel::fit`] fits on the other rows, given `full`, the model fitted on all rows.
///
/// The scores are bit-identical to one fit and score per row, but each feature column is
/// sorted only once. Without the held-out value, the median is then at a known position, and
/// it takes at most 3 values as the held-out position moves. The absolute deviations of the
/// column are sorted once for each of them, so the median absolute deviation without the
/// held-out value is also at a known position.
///
/// Returns [`FitError::NoSamples`] for fewer than 2 rows, because a fit on the other rows
/// would have no rows.
pub(crate) fn leave_one_out_scores(
    rows: &Array2<f64>,
    full: &RobustModel,
) -> Result<Vec<f64>, FitError> {
    let count = rows.nrows();
    if count < 2 {
        return Err(FitError::NoSamples);
    }
    // A fit keeps the newest RECENT_SAMPLES of the other rows. When the held-out row is older
    // than the newest RECENT_SAMPLES + 1 rows, those are the newest RECENT_SAMPLES rows of the
    // matrix, on which `full` was fitted.
    let start = count.saturating_sub(RECENT_SAMPLES + 1);
    let mut scores = Vec::with_capacity(count);
    for row in rows.rows().into_iter().take(start) {
        scores.push(full.score_values(row));
    }

    let recent = rows.slice_axis(Axis(0), Slice::from(start..));
    let recent_count = recent.nrows();
    let features = recent.ncols();
    // Row-major: the term of each feature in the score of each held-out recent row.
    let mut terms = vec![0.0; recent_count * features];
    let mut pairs: Vec<(f64, usize)> = Vec::with_capacity(recent_count);
    let mut sorted = Vec::with_capacity(recent_count);
    let mut deviations = Vec::with_capacity(recent_count);
    let mut deviation_rank = vec![0; recent_count];
    for (feature, column) in recent.columns().into_iter().enumerate() {
        pairs.clear();
        pairs.extend(column.iter().copied().zip(0..));
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        sorted.clear();
        sorted.extend(pairs.iter().map(|&(value, _)| value));
        // Bits of the median that `deviations` was sorted for.
        let mut deviations_centre = None;
        for (removed, &(value, row)) in pairs.iter().enumerate() {
            let median = median_without(&sorted, removed);
            if deviations_centre != Some(median.to_bits()) {
                sort_deviations(&sorted, median, &mut deviations, &mut deviation_rank);
                deviations_centre = Some(median.to_bits());
            }
            let mad = median_without(&deviations, deviation_rank[removed]);
            let scale = (MAD_TO_SD * mad).max(MIN_SCALE_S);
            terms[row * features + feature] = capped_deviation(value, median, scale);
        }
    }
    for row_terms in terms.chunks_exact(features) {
        scores.push(row_terms.iter().sum::<f64>());
    }
    Ok(scores)
}

/// Median of the values of `sorted` (at least 2, in ascending order) other than the one at
/// position `removed`, bit-identical to [`median_of`] on the remaining values.
fn median_without(sorted: &[f64], removed: usize) -> f64 {
    let len = sorted.len() - 1;
    let value = |position: usize| {
        if position < removed {
            sorted[position]
        } else {
            sorted[position + 1]
        }
    };
    let half = len / 2;
    if len % 2 == 1 {
        value(half)
    } else {
        (value(half - 1) + value(half)) / 2.0
    }
}

/// Sorts the absolute deviations `(value - centre).abs()` of the values of `sorted` (in
/// ascending order) into `deviations`, computed as [`RobustModel::fit`] computes them, and
/// stores at `rank[i]` the position of the deviation of `sorted[i]`.
fn sort_deviations(sorted: &[f64], centre: f64, deviations: &mut Vec<f64>, rank: &mut [usize]) {
    // Values before `split` are below the centre and the others are at least the centre, so
    // the deviations grow going left from `split` and going right from it. Merging those two
    // runs sorts them.
    let split = sorted.partition_point(|&value| value < centre);
    let deviation = |position: usize| (sorted[position] - centre).abs();
    let (mut left, mut right) = (split, split);
    deviations.clear();
    while left > 0 || right < sorted.len() {
        let take_left =
            left > 0 && (right == sorted.len() || deviation(left - 1) <= deviation(right));
        let position = if take_left {
            left -= 1;
            left
        } else {
            right += 1;
            right - 1
        };
        rank[position] = deviations.len();
        deviations.push(deviation(position));
    }
}

/// Median of a non-empty slice (mean of the two middle values for an even length). Reorders
/// the slice.
pub(crate) fn median_of(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let (_, upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        return upper;
    }
    let lower = values[..n / 2]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    (lower + upper) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median_of(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_of(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median_of(&mut []).is_nan());
    }

    #[test]
    fn median_without_matches_median_of() {
        // Ascending in the total order: ties, -0.0 before 0.0, and a last-bit neighbour.
        let values = [
            -0.5,
            -0.0,
            0.0,
            0.1,
            0.1,
            0.2,
            0.30000000000000004,
            0.7,
            0.7,
            0.7,
            3.0,
        ];
        for len in 2..=values.len() {
            for start in 0..=values.len() - len {
                let sorted = &values[start..start + len];
                for removed in 0..len {
                    let mut rest: Vec<f64> = sorted
                        .iter()
                        .enumerate()
                        .filter(|(position, _)| *position != removed)
                        .map(|(_, value)| *value)
                        .collect();
                    let median = median_of(&mut rest);
                    for value in rest.iter_mut() {
                        *value = (*value - median).abs();
                    }
                    let mad = median_of(&mut rest);
                    let fast_median = median_without(sorted, removed);
                    let mut deviations = Vec::new();
                    let mut rank = vec![0; len];
                    sort_deviations(sorted, fast_median, &mut deviations, &mut rank);
                    let fast_mad = median_without(&deviations, rank[removed]);
                    let context = format!("{sorted:?} without position {removed}");
                    assert_eq!(fast_median.to_bits(), median.to_bits(), "{context}: median");
                    assert_eq!(fast_mad.to_bits(), mad.to_bits(), "{context}: mad");
                }
            }
        }
    }

    #[test]
    fn fit_uses_recent_samples_only() {
        // 60 rows: the 10 oldest sit at 10 s, the 50 newest alternate 0.1 s and 0.3 s.
        let mut flat = vec![10.0; 10];
        flat.extend((0..50).map(|i| if i % 2 == 0 { 0.1 } else { 0.3 }));
        let rows = Array2::from_shape_vec((60, 1), flat).unwrap();
        let model = RobustModel::fit(&rows).unwrap();
        assert!((model.median[0] - 0.2).abs() < 1e-12);
        assert!((model.scale[0] - MAD_TO_SD * 0.1).abs() < 1e-12);
    }

    #[test]
    fn score_caps_each_feature() {
        let model = RobustModel {
            median: vec![0.1, 0.2],
            scale: vec![0.01, 0.01],
        };
        // Feature 0 is 1 scale away, feature 1 is 100 scales away but counts as Z_CAP.
        let score = model.score(&[0.11, 1.2]);
        assert!((score - (1.0 + Z_CAP)).abs() < 1e-9, "{score}");
    }

    /// Mean EER over IIITBh-Big subjects with the Killourhy and Maxion split, for a model fitted
    /// on the newest `window` training rows and scored with per-feature cap `cap`.
    fn iiitbh_mean_eer(window: usize, cap: f64) -> f64 {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/keystroke/IIITBh-Big.csv"
        );
        let dataset = crate::keystroke::Dataset::read_csv(path.as_ref()).unwrap();
        let subjects = &dataset.subjects;
        let mut total = 0.0;
        for (index, subject) in subjects.iter().enumerate() {
            let (training, genuine) = subject.samples.split_at(subject.samples.len() / 2);
            let flat: Vec<f64> = training.iter().flat_map(|v| v.values().to_vec()).collect();
            let rows = Array2::from_shape_vec((training.len(), 31), flat).unwrap();
            let model = RobustModel::fit_newest(&rows, window).unwrap();
            let score = |x: &[f64]| -> f64 {
                x.iter()
                    .zip(&model.median)
                    .zip(&model.scale)
                    .map(|((v, m), s)| ((v - m).abs() / s).min(cap))
                    .sum()
            };
            let genuine: Vec<f64> = genuine.iter().map(|v| score(v.values())).collect();
            let impostor: Vec<f64> = subjects
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .flat_map(|(_, s)| s.samples.iter().take(5))
                .map(|v| score(v.values()))
                .collect();
            total += crate::keystroke::equal_error_rate(&genuine, &impostor).unwrap();
        }
        total / subjects.len() as f64
    }

    /// The default's cap and window are round standard choices: neighbouring values must do
    /// about as well, or the default would be tuned to this file.
    #[test]
    fn nearby_caps_and_windows_do_as_well() {
        assert!((iiitbh_mean_eer(RECENT_SAMPLES, Z_CAP) - 0.0463).abs() < 5e-4);
        for cap in [2.5, 3.0, 4.0] {
            for window in [30, 40, 50, 60] {
                let eer = iiitbh_mean_eer(window, cap);
                println!("cap {cap} window {window}: mean EER {eer:.4}");
                assert!(eer <= 0.055, "cap {cap} window {window}: {eer:.4}");
            }
        }
    }

    /// Each part of the design alone, for the table in the module documentation.
    #[test]
    fn ablation_of_cap_and_window() {
        let all = usize::MAX;
        let no_cap = f64::INFINITY;
        let cap_only = iiitbh_mean_eer(all, Z_CAP);
        let scaling_only = iiitbh_mean_eer(all, no_cap);
        let window_only = iiitbh_mean_eer(RECENT_SAMPLES, no_cap);
        println!(
            "cap only {cap_only:.4}, scaling only {scaling_only:.4}, window only {window_only:.4}"
        );
        assert!((cap_only - 0.0561).abs() < 5e-4, "{cap_only}");
        assert!((scaling_only - 0.0888).abs() < 5e-4, "{scaling_only}");
        assert!((window_only - 0.0894).abs() < 5e-4, "{window_only}");
    }

    #[test]
    fn scale_has_floor() {
        let rows = Array2::from_shape_vec((5, 1), vec![0.1; 5]).unwrap();
        let model = RobustModel::fit(&rows).unwrap();
        assert_eq!(model.scale[0], MIN_SCALE_S);
    }
}
