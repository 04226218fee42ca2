//! Timing features of one typed password: hold, down-down and up-down times in seconds.
//!
//! The order is the CMU keystroke benchmark's column order, `H.k1, DD.k1.k2, UD.k1.k2, H.k2,
//! ..., H.kn`, so `n` keys give `3n - 2` features. Key identities are never seen: events arrive
//! in typing order and carry only their key-down and key-up times.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Minimum number of keys in a sample. Fewer keys carry too little rhythm to tell users apart.
pub const MIN_KEYS: usize = 4;
/// Maximum number of keys in a sample, which bounds the work done on a request.
pub const MAX_KEYS: usize = 128;
/// Maximum hold time or key-down to key-down gap, in seconds. A longer pause is not typing
/// rhythm.
pub const MAX_INTERVAL_S: f64 = 60.0;
/// Timer steps in milliseconds, from coarse to fine, that make a sample unusable when every
/// hold and down-down time is a multiple of one of them. Browsers that reduce timer precision
/// against fingerprinting round to 100 ms, and a 20 ms grid already erases most of the
/// differences between typists (typical hold times are 70 to 150 ms).
pub const COARSE_TIMER_STEPS_MS: [f64; 3] = [100.0, 50.0, 20.0];

/// Tolerance, in milliseconds, for deciding that a timing is a multiple of a timer step.
const TIMER_STEP_TOLERANCE_MS: f64 = 1e-6;

/// One key press: key-down and key-up times in milliseconds from any fixed origin (for
/// example `performance.now()` in the browser).
///
/// Deserialisation rejects unknown fields, so a key identity sent by mistake fails the request
/// instead of being carried along. `Debug` prints no timing, because typing rhythm is
/// biometric data.
#[derive(Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystrokeEvent {
    /// Key-down time in milliseconds.
    pub down_ms: f64,
    /// Key-up time in milliseconds.
    pub up_ms: f64,
}

impl fmt::Debug for KeystrokeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystrokeEvent").finish_non_exhaustive()
    }
}

/// Timing features of one sample in seconds, in the CMU column order
/// `H.k1, DD.k1.k2, UD.k1.k2, H.k2, ..., H.kn`.
///
/// `Debug` prints only the length, because typing rhythm is biometric data.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimingVector(Vec<f64>);

impl TimingVector {
    /// Wraps feature values without checking them. Use [`TimingVector::from_features`] for
    /// values that come from outside the process.
    pub fn new(values: Vec<f64>) -> Self {
        Self(values)
    }

    /// Wraps feature values in the CMU order after checking that they describe a plausible
    /// typed sample, with the same checks as [`extract_features`].
    pub fn from_features(values: Vec<f64>) -> Result<Self, NotEvaluable> {
        let events = events_from_cmu_row(&values)?;
        validate_events(&events)?;
        Ok(Self(values))
    }

    /// Feature values in seconds.
    pub fn values(&self) -> &[f64] {
        &self.0
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns whether the vector has no features.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of keys the features describe (`len / 3` rounded up).
    pub fn key_count(&self) -> usize {
        self.0.len().div_ceil(3)
    }

    /// Consumes the vector and returns its values.
    pub fn into_values(self) -> Vec<f64> {
        self.0
    }
}

impl fmt::Debug for TimingVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimingVector")
            .field("len", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// Reason why a keystroke sample cannot be scored. Messages name the key position and the
/// limit but never a timing.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotEvaluable {
    /// No events at all.
    #[error("no keystroke events")]
    Empty,
    /// Fewer keys than [`MIN_KEYS`].
    #[error("too few keys: `{keys}`, at least {min} are needed")]
    TooFewKeys { keys: usize, min: usize },
    /// More keys than [`MAX_KEYS`].
    #[error("too many keys: `{keys}`, at most {max} are accepted")]
    TooManyKeys { keys: usize, max: usize },
    /// A time or feature is NaN or infinite.
    #[error("non-finite timing at key `{key}`")]
    NonFinite { key: usize },
    /// A key-up time comes before its key-down time.
    #[error("negative hold time at key `{key}`")]
    NegativeHold { key: usize },
    /// A key-down time comes before the previous key's key-down time, so the events are not in
    /// typing order.
    #[error(
        "key `{key}` is pressed before the previous key, so the events are not in typing order"
    )]
    OutOfOrder { key: usize },
    /// A hold time is longer than [`MAX_INTERVAL_S`].
    #[error("hold time at key `{key}` exceeds {max_s} s")]
    HoldTooLong { key: usize, max_s: u32 },
    /// The gap from one key-down to the next is longer than [`MAX_INTERVAL_S`].
    #[error("gap before key `{key}` exceeds {max_s} s")]
    GapTooLong { key: usize, max_s: u32 },
    /// The up-down time contradicts the hold and down-down times given with it, so the three
    /// features cannot come from one sequence of events.
    #[error("up-down time after key `{key}` does not equal down-down minus hold")]
    InconsistentFeatures { key: usize },
    /// Every hold and down-down time is a multiple of a coarse timer step, which erases the
    /// typing rhythm (for example a browser that rounds timers to 100 ms).
    #[error("every timing is a multiple of `{step_ms}` ms, so the timer is too coarse")]
    CoarseTimer { step_ms: u32 },
    /// All hold times, or all down-down times, are identical, which a human typist never
    /// produces (a replay tool or a broken collector does).
    #[error("all {what} times are identical")]
    ConstantTimings { what: TimingKind },
    /// The feature count does not describe a whole number of keys (it must be `3n - 2`).
    #[error("invalid feature count `{len}`: it must be 3 times the key count minus 2")]
    InvalidFeatureCount { len: usize },
    /// The sample has a different number of features than the template (the password length
    /// changed, or the collector dropped keys).
    #[error("sample has `{actual}` features but the template has {expected}")]
    LengthMismatch { expected: usize, actual: usize },
    /// The template's model returned a NaN or infinite score, which only a damaged stored
    /// template can cause; enrolling a new sample refits it.
    #[error("the template returned a non-finite score")]
    InvalidScore,
    /// The template has fewer enrolled samples than it needs before it can score.
    #[error("template has `{samples}` enrolled samples, {required} are needed")]
    TemplateNotReady { samples: usize, required: usize },
}

/// Kind of timing named by [`NotEvaluable::ConstantTimings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingKind {
    /// Key-down to key-up of one key.
    Hold,
    /// Key-down to key-down of consecutive keys.
    DownDown,
}

impl fmt::Display for TimingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimingKind::Hold => "hold",
            TimingKind::DownDown => "down-down",
        })
    }
}

/// Derives hold, down-down and up-down times in seconds, in the CMU column order, from key
/// events given in typing order.
///
/// Rejects samples that cannot carry a typing rhythm: see [`NotEvaluable`] for every case. The
/// up-down time is negative when a key goes down before the previous one is released.
pub fn extract_features(events: &[KeystrokeEvent]) -> Result<TimingVector, NotEvaluable> {
    validate_events(events)?;
    let mut values = Vec::with_capacity(3 * events.len() - 2);
    for (i, event) in events.iter().enumerate() {
        values.push((event.up_ms - event.down_ms) / 1000.0);
        if let Some(next) = events.get(i + 1) {
            values.push((next.down_ms - event.down_ms) / 1000.0);
            values.push((next.down_ms - event.up_ms) / 1000.0);
        }
    }
    Ok(TimingVector(values))
}

/// Rebuilds key events in milliseconds from CMU timing columns in seconds: the first key goes
/// down at 0, `up_i = down_i + H_i` and `down_{i+1} = down_i + DD_i`.
///
/// The up-down columns are checked against `DD - H` (within 1 ms, which covers the CMU file's
/// rounding to 0.1 ms) but are otherwise redundant. The events are not validated as typing:
/// pass them to [`extract_features`] for that.
pub fn events_from_cmu_row(row: &[f64]) -> Result<Vec<KeystrokeEvent>, NotEvaluable> {
    if row.is_empty() {
        return Err(NotEvaluable::Empty);
    }
    if row.len() % 3 != 1 {
        return Err(NotEvaluable::InvalidFeatureCount { len: row.len() });
    }
    let keys = row.len().div_ceil(3);
    if keys > MAX_KEYS {
        return Err(NotEvaluable::TooManyKeys {
            keys,
            max: MAX_KEYS,
        });
    }
    let mut events = Vec::with_capacity(keys);
    let mut down_ms = 0.0;
    for key in 0..keys {
        let hold_s = row[3 * key];
        if !hold_s.is_finite() {
            return Err(NotEvaluable::NonFinite { key });
        }
        events.push(KeystrokeEvent {
            down_ms,
            up_ms: down_ms + hold_s * 1000.0,
        });
        if key + 1 < keys {
            let down_down_s = row[3 * key + 1];
            let up_down_s = row[3 * key + 2];
            if !down_down_s.is_finite() || !up_down_s.is_finite() {
                return Err(NotEvaluable::NonFinite { key });
            }
            if ((down_down_s - hold_s) - up_down_s).abs() > 1e-3 {
                return Err(NotEvaluable::InconsistentFeatures { key });
            }
            down_ms += down_down_s * 1000.0;
        }
    }
    Ok(events)
}

/// Checks that events describe one plausible typed sample.
fn validate_events(events: &[KeystrokeEvent]) -> Result<(), NotEvaluable> {
    let keys = events.len();
    if keys == 0 {
        return Err(NotEvaluable::Empty);
    }
    if keys < MIN_KEYS {
        return Err(NotEvaluable::TooFewKeys {
            keys,
            min: MIN_KEYS,
        });
    }
    if keys > MAX_KEYS {
        return Err(NotEvaluable::TooManyKeys {
            keys,
            max: MAX_KEYS,
        });
    }
    let max_ms = MAX_INTERVAL_S * 1000.0;
    for (key, event) in events.iter().enumerate() {
        if !event.down_ms.is_finite() || !event.up_ms.is_finite() {
            return Err(NotEvaluable::NonFinite { key });
        }
        let hold_ms = event.up_ms - event.down_ms;
        if hold_ms < 0.0 {
            return Err(NotEvaluable::NegativeHold { key });
        }
        if hold_ms > max_ms {
            return Err(NotEvaluable::HoldTooLong {
                key,
                max_s: MAX_INTERVAL_S as u32,
            });
        }
        if key > 0 {
            let gap_ms = event.down_ms - events[key - 1].down_ms;
            if gap_ms < 0.0 {
                return Err(NotEvaluable::OutOfOrder { key });
            }
            if gap_ms > max_ms {
                return Err(NotEvaluable::GapTooLong {
                    key,
                    max_s: MAX_INTERVAL_S as u32,
                });
            }
        }
    }
    check_timer_resolution(events)
}

/// Rejects samples whose hold and down-down times sit on a coarse grid or never vary.
fn check_timer_resolution(events: &[KeystrokeEvent]) -> Result<(), NotEvaluable> {
    let holds = events.iter().map(|e| e.up_ms - e.down_ms);
    let down_downs = events.windows(2).map(|w| w[1].down_ms - w[0].down_ms);
    let timings: Vec<f64> = holds.chain(down_downs).collect();
    for step_ms in COARSE_TIMER_STEPS_MS {
        let on_grid = timings.iter().all(|t| {
            let remainder = t.rem_euclid(step_ms);
            remainder <= TIMER_STEP_TOLERANCE_MS || step_ms - remainder <= TIMER_STEP_TOLERANCE_MS
        });
        if on_grid {
            return Err(NotEvaluable::CoarseTimer {
                step_ms: step_ms as u32,
            });
        }
    }
    let (holds, down_downs) = timings.split_at(events.len());
    if is_constant(holds) {
        return Err(NotEvaluable::ConstantTimings {
            what: TimingKind::Hold,
        });
    }
    if is_constant(down_downs) {
        return Err(NotEvaluable::ConstantTimings {
            what: TimingKind::DownDown,
        });
    }
    Ok(())
}

fn is_constant(values: &[f64]) -> bool {
    values.windows(2).all(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMU_EXCERPT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/keystroke/DSL-StrongPasswordData-s002-session1.csv"
    );

    /// Timing columns of every row of the CMU excerpt.
    fn cmu_rows() -> Vec<Vec<f64>> {
        let mut reader = csv::Reader::from_path(CMU_EXCERPT).unwrap();
        reader
            .records()
            .map(|r| {
                r.unwrap()
                    .iter()
                    .skip(3)
                    .map(|v| v.parse().unwrap())
                    .collect()
            })
            .collect()
    }

    /// Events with the given hold times and down-down gaps, in milliseconds.
    fn events(holds: &[f64], gaps: &[f64]) -> Vec<KeystrokeEvent> {
        let mut down = 1000.0;
        let mut out = Vec::new();
        for (i, hold) in holds.iter().enumerate() {
            out.push(KeystrokeEvent {
                down_ms: down,
                up_ms: down + hold,
            });
            if let Some(gap) = gaps.get(i) {
                down += gap;
            }
        }
        out
    }

    fn plausible() -> Vec<KeystrokeEvent> {
        events(
            &[91.3, 104.7, 87.2, 120.9, 99.4],
            &[180.6, 243.1, 77.5, 310.2],
        )
    }

    #[test]
    fn features_match_cmu_rows() {
        let rows = cmu_rows();
        assert_eq!(rows.len(), 50);
        for row in &rows {
            assert_eq!(row.len(), 31);
            let events = events_from_cmu_row(row).unwrap();
            assert_eq!(events.len(), 11);
            let features = extract_features(&events).unwrap();
            assert_eq!(features.len(), 31);
            assert_eq!(features.key_count(), 11);
            for (i, (got, want)) in features.values().iter().zip(row).enumerate() {
                // H and DD are rebuilt exactly; UD = DD - H differs from the file's UD by its
                // rounding to 0.1 ms.
                let tolerance = if i % 3 == 2 { 1.5e-4 } else { 1e-9 };
                assert!(
                    (got - want).abs() < tolerance,
                    "feature {i}: {got} != {want}"
                );
            }
        }
    }

    #[test]
    fn cmu_down_down_is_hold_plus_up_down() {
        for row in cmu_rows() {
            for key in 0..10 {
                let (hold, down_down, up_down) = (row[3 * key], row[3 * key + 1], row[3 * key + 2]);
                assert!((down_down - (hold + up_down)).abs() < 1.5e-4, "key {key}");
            }
        }
    }

    #[test]
    fn features_follow_cmu_order() {
        // Second key pressed before the first is released: negative up-down time.
        let events = [
            KeystrokeEvent {
                down_ms: 0.0,
                up_ms: 120.0,
            },
            KeystrokeEvent {
                down_ms: 100.5,
                up_ms: 180.0,
            },
            KeystrokeEvent {
                down_ms: 300.0,
                up_ms: 390.0,
            },
            KeystrokeEvent {
                down_ms: 450.0,
                up_ms: 530.0,
            },
        ];
        let features = extract_features(&events).unwrap();
        let expected = [
            0.120, 0.1005, -0.0195, 0.0795, 0.1995, 0.120, 0.090, 0.150, 0.060, 0.080,
        ];
        assert_eq!(features.len(), expected.len());
        for (got, want) in features.values().iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} != {want}");
        }
    }

    #[test]
    fn plausible_sample_is_evaluable() {
        assert!(extract_features(&plausible()).is_ok());
    }

    #[test]
    fn empty_sample() {
        assert_eq!(extract_features(&[]), Err(NotEvaluable::Empty));
    }

    #[test]
    fn too_few_keys() {
        let sample = &plausible()[..3];
        assert_eq!(
            extract_features(sample),
            Err(NotEvaluable::TooFewKeys {
                keys: 3,
                min: MIN_KEYS
            })
        );
    }

    #[test]
    fn too_many_keys() {
        let holds: Vec<f64> = (0..=MAX_KEYS)
            .map(|i| 80.0 + (i % 7) as f64 * 3.1)
            .collect();
        let gaps: Vec<f64> = (0..MAX_KEYS)
            .map(|i| 150.0 + (i % 5) as f64 * 11.3)
            .collect();
        assert_eq!(
            extract_features(&events(&holds, &gaps)),
            Err(NotEvaluable::TooManyKeys {
                keys: MAX_KEYS + 1,
                max: MAX_KEYS
            })
        );
    }

    #[test]
    fn non_finite_timing() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut sample = plausible();
            sample[2].up_ms = bad;
            assert_eq!(
                extract_features(&sample),
                Err(NotEvaluable::NonFinite { key: 2 })
            );
        }
    }

    #[test]
    fn negative_hold() {
        let mut sample = plausible();
        sample[1].up_ms = sample[1].down_ms - 5.0;
        assert_eq!(
            extract_features(&sample),
            Err(NotEvaluable::NegativeHold { key: 1 })
        );
    }

    #[test]
    fn out_of_order_keys() {
        let mut sample = plausible();
        sample.swap(2, 3);
        assert_eq!(
            extract_features(&sample),
            Err(NotEvaluable::OutOfOrder { key: 3 })
        );
    }

    #[test]
    fn hold_too_long() {
        let sample = events(&[91.3, 61_000.0, 87.2, 120.9], &[180.6, 61_200.0, 77.5]);
        assert_eq!(
            extract_features(&sample),
            Err(NotEvaluable::HoldTooLong { key: 1, max_s: 60 })
        );
    }

    #[test]
    fn gap_too_long() {
        let sample = events(&[91.3, 104.7, 87.2, 120.9], &[180.6, 60_000.5, 77.5]);
        assert_eq!(
            extract_features(&sample),
            Err(NotEvaluable::GapTooLong { key: 2, max_s: 60 })
        );
    }

    #[test]
    fn coarse_timer() {
        let sample = events(&[100.0, 100.0, 200.0, 0.0], &[200.0, 300.0, 100.0]);
        assert_eq!(
            extract_features(&sample),
            Err(NotEvaluable::CoarseTimer { step_ms: 100 })
        );
        let sample = events(&[80.0, 100.0, 120.0, 60.0], &[140.0, 300.0, 160.0]);
        assert_eq!(
            extract_features(&sample),
            Err(NotEvaluable::CoarseTimer { step_ms: 20 })
        );
        // A 1 ms timer is fine.
        let sample = events(&[81.0, 97.0, 123.0, 64.0], &[143.0, 301.0, 167.0]);
        assert!(extract_features(&sample).is_ok());
    }

    #[test]
    fn constant_holds() {
        let sample = events(&[95.5, 95.5, 95.5, 95.5], &[143.1, 301.7, 167.2]);
        assert_eq!(
            extract_features(&sample),
            Err(NotEvaluable::ConstantTimings {
                what: TimingKind::Hold
            })
        );
    }

    #[test]
    fn constant_down_downs() {
        let sample = events(&[95.5, 81.3, 103.9, 77.0], &[150.3, 150.3, 150.3]);
        assert_eq!(
            extract_features(&sample),
            Err(NotEvaluable::ConstantTimings {
                what: TimingKind::DownDown
            })
        );
    }

    #[test]
    fn invalid_feature_count() {
        assert_eq!(
            TimingVector::from_features(vec![0.1; 30]),
            Err(NotEvaluable::InvalidFeatureCount { len: 30 })
        );
        assert_eq!(
            TimingVector::from_features(Vec::new()),
            Err(NotEvaluable::Empty)
        );
    }

    #[test]
    fn inconsistent_up_down() {
        let mut row = cmu_rows().remove(0);
        row[2] += 0.05;
        assert_eq!(
            TimingVector::from_features(row),
            Err(NotEvaluable::InconsistentFeatures { key: 0 })
        );
    }

    #[test]
    fn from_features_accepts_cmu_row() {
        let row = cmu_rows().remove(0);
        assert_eq!(
            TimingVector::from_features(row.clone()).unwrap().values(),
            &row[..]
        );
    }

    #[test]
    fn debug_hides_timings() {
        let sample = plausible();
        let text = format!("{:?} {:?}", sample[0], extract_features(&sample).unwrap());
        assert!(!text.contains("91.3"), "{text}");
        assert!(!text.contains("0.0913"), "{text}");
        assert!(text.contains("len: 13"), "{text}");
    }

    #[test]
    fn messages_name_no_timing() {
        let sample = events(&[91.3, 104.7, 87.2, 120.9], &[180.6, 60_000.5, 77.5]);
        let message = extract_features(&sample).unwrap_err().to_string();
        assert_eq!(message, "gap before key `2` exceeds 60 s");
    }

    #[test]
    fn event_json_shape() {
        let event: KeystrokeEvent =
            serde_json::from_str(r#"{"down_ms": 12.5, "up_ms": 98.25}"#).unwrap();
        assert_eq!(event.down_ms, 12.5);
        assert_eq!(event.up_ms, 98.25);
        assert!(
            serde_json::from_str::<KeystrokeEvent>(r#"{"down_ms": 1, "up_ms": 2, "key": "a"}"#)
                .is_err()
        );
    }
}
