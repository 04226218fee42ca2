//! Per-user keystroke template: enrolment from verified logins, a rolling window that follows
//! slow drift, and the calibrated assessment of a new sample.
//!
//! The template stores the newest `window` verified samples and a model fitted on them. It
//! scores only after `min_samples` samples. Each refit also scores every stored sample
//! against a model fitted on the others (leave-one-out), and the median and robust spread of
//! those scores describe how far the user's own genuine samples usually fall. A new sample's
//! score is expressed in that spread, as `z = (score - median) / spread`, and mapped to a
//! log-likelihood ratio by [`LlrCalibration`].
//!
//! The template contains typing rhythm, which is biometric data: its `Debug` output and its
//! messages show counts and scores only, never timings.

use std::collections::VecDeque;
use std::fmt;

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::detectors::{Detector, FitError, Model, ScoreError, training_matrix};
use super::features::{KeystrokeEvent, NotEvaluable, TimingVector, extract_features};
use super::robust::{self, median_of};

/// Default number of verified samples before the template scores.
pub const DEFAULT_MIN_SAMPLES: usize = 8;
/// Default number of newest samples kept.
pub const DEFAULT_WINDOW: usize = 50;
/// Smallest accepted `min_samples`: leave-one-out scoring needs at least 2 samples per fit.
pub const MIN_MIN_SAMPLES: usize = 3;
/// Largest accepted window. It bounds the stored JSON (about 0.5 KB per 31-feature sample)
/// and the refit cost, which grows with the square of the window for every detector except
/// the default, whose refit grows linearly beyond 51 samples.
pub const MAX_WINDOW: usize = 500;

/// Ratio of the standard deviation to the median absolute deviation for normal data.
const MAD_TO_SD: f64 = 1.4826;
/// Smallest spread of the genuine scores, as a share of their median. It keeps a user whose
/// leave-one-out scores happen to coincide from turning every small deviation into a large z.
const MIN_RELATIVE_SPREAD: f64 = 0.1;
/// Smallest spread of the genuine scores in score units.
const MIN_ABSOLUTE_SPREAD: f64 = 1e-6;

/// Mapping from the z of a score to a log-likelihood ratio:
/// `llr = clamp(slope * (z - z_equal_odds), min_llr, max_llr)`.
///
/// `llr = ln(P(score | impostor) / P(score | genuine))`, so a positive value is evidence of an
/// impostor and can be added to a risk log-odds sum. The default slope (1.7) and equal-odds
/// point (z = 2.4) come from a class-balanced logistic regression of impostor versus genuine
/// on z for the default detector on IIITBh-Big: per subject, a default template enrolled on
/// the first 75 samples, then its 75 later genuine samples and 5 samples of each other
/// subject. Fits on halves of the subjects gave slopes from 1.6 to 2.6 and equal-odds points
/// from 2.1 to 3.1, so the values are estimates. Other detectors use the same mapping, which
/// was not fitted for them.
///
/// The clamp keeps one typed password from outweighing the other signals. `max_llr = 4`
/// multiplies the odds of an impostor by at most 55; the data supported about 5. `min_llr =
/// -2` divides them by at most 7.4, although genuine samples near the template reached about
/// -4 in the data, because the benchmark's impostors never tried to imitate the user's rhythm
/// and a real attacker may have watched the user type.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlrCalibration {
    /// Change of the log-likelihood ratio per unit of z.
    pub slope: f64,
    /// z at which a sample is as likely to come from the user as from an impostor.
    pub z_equal_odds: f64,
    /// Lower bound of the log-likelihood ratio (evidence of the genuine user).
    pub min_llr: f64,
    /// Upper bound of the log-likelihood ratio (evidence of an impostor).
    pub max_llr: f64,
}

impl Default for LlrCalibration {
    fn default() -> Self {
        Self {
            slope: 1.7,
            z_equal_odds: 2.4,
            min_llr: -2.0,
            max_llr: 4.0,
        }
    }
}

impl LlrCalibration {
    /// Log-likelihood ratio for a z; non-decreasing in z. A NaN z gives 0 (no evidence).
    pub fn log_likelihood_ratio(&self, z: f64) -> f64 {
        if z.is_nan() {
            return 0.0;
        }
        (self.slope * (z - self.z_equal_odds)).clamp(self.min_llr, self.max_llr)
    }

    fn validate(&self) -> Result<(), TemplateError> {
        let finite = [self.slope, self.z_equal_odds, self.min_llr, self.max_llr]
            .iter()
            .all(|v| v.is_finite());
        if !finite || self.slope < 0.0 || self.min_llr > 0.0 || self.max_llr < 0.0 {
            return Err(TemplateError::InvalidCalibration);
        }
        Ok(())
    }
}

/// Settings of a template.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateConfig {
    /// Detector that scores samples.
    pub detector: Detector,
    /// Number of verified samples before the template scores.
    pub min_samples: usize,
    /// Number of newest samples kept; older ones are dropped. The default detector fits only
    /// the newest 50 of them (see [`super::robust`]), and all of them calibrate the score.
    pub window: usize,
    /// Mapping of scores to log-likelihood ratios.
    pub calibration: LlrCalibration,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            detector: Detector::DEFAULT,
            min_samples: DEFAULT_MIN_SAMPLES,
            window: DEFAULT_WINDOW,
            calibration: LlrCalibration::default(),
        }
    }
}

impl TemplateConfig {
    /// Checks the bounds of every setting.
    pub fn validate(&self) -> Result<(), TemplateError> {
        if self.min_samples < MIN_MIN_SAMPLES {
            return Err(TemplateError::MinSamplesTooSmall {
                min_samples: self.min_samples,
            });
        }
        if self.window < self.min_samples || self.window > MAX_WINDOW {
            return Err(TemplateError::InvalidWindow {
                window: self.window,
                min_samples: self.min_samples,
            });
        }
        self.calibration.validate()
    }
}

/// Failure to configure or update a template.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TemplateError {
    #[error("invalid min_samples `{min_samples}`: at least {MIN_MIN_SAMPLES} are needed")]
    MinSamplesTooSmall { min_samples: usize },
    #[error(
        "invalid window `{window}`: it must be between min_samples ({min_samples}) and {MAX_WINDOW}"
    )]
    InvalidWindow { window: usize, min_samples: usize },
    #[error(
        "invalid calibration: values must be finite, slope >= 0, min_llr <= 0 and max_llr >= 0"
    )]
    InvalidCalibration,
    #[error("sample rejected: {0}")]
    Sample(#[from] NotEvaluable),
    #[error("failed to fit the template: {0}")]
    Fit(#[from] FitError),
    #[error("failed to score the template's own samples: {0}")]
    Score(#[from] ScoreError),
    #[error("stored template is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// Median and robust spread of the leave-one-out scores of the enrolled samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenuineScores {
    /// Median leave-one-out score.
    pub median: f64,
    /// 1.4826 times the median absolute deviation of the scores, with a floor.
    pub spread: f64,
}

impl GenuineScores {
    fn from_scores(scores: &mut [f64]) -> Self {
        let median = median_of(scores);
        for score in scores.iter_mut() {
            *score = (*score - median).abs();
        }
        let mad = median_of(scores);
        let floor = (MIN_RELATIVE_SPREAD * median.abs()).max(MIN_ABSOLUTE_SPREAD);
        Self {
            median,
            spread: (MAD_TO_SD * mad).max(floor),
        }
    }

    /// Position of a score relative to the user's genuine scores, in robust standard
    /// deviations.
    pub fn z(&self, score: f64) -> f64 {
        (score - self.median) / self.spread
    }
}

/// Result of assessing one sample against a template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeystrokeAssessment {
    /// Whether the sample could be scored. When false, `score` and `log_likelihood_ratio`
    /// are 0 and carry no evidence.
    pub evaluable: bool,
    /// Human-readable explanation, without timings.
    pub reason: String,
    /// Raw detector score; higher is more anomalous.
    pub score: f64,
    /// `ln(P(score | impostor) / P(score | genuine))` from [`LlrCalibration`]; positive values
    /// are evidence of an impostor.
    pub log_likelihood_ratio: f64,
    /// Why the sample could not be scored, when `evaluable` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_evaluable: Option<NotEvaluable>,
}

impl KeystrokeAssessment {
    fn not_evaluable(cause: NotEvaluable) -> Self {
        Self {
            evaluable: false,
            reason: cause.to_string(),
            score: 0.0,
            log_likelihood_ratio: 0.0,
            not_evaluable: Some(cause),
        }
    }
}

/// Stored form of a template, checked by `TryFrom` on deserialisation.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateData {
    config: TemplateConfig,
    samples: VecDeque<TimingVector>,
    model: Option<Model>,
    genuine_scores: Option<GenuineScores>,
}

/// A user's keystroke template, stored as JSON inside the user profile.
///
/// Build it from verified samples only (a login that succeeded, with MFA passed when MFA was
/// asked): a sample from an attacker would teach the template the attacker's rhythm.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TemplateData", into = "TemplateData")]
pub struct KeystrokeTemplate {
    config: TemplateConfig,
    /// Oldest first.
    samples: VecDeque<TimingVector>,
    /// Present once the template is ready.
    model: Option<Model>,
    genuine_scores: Option<GenuineScores>,
}

impl fmt::Debug for KeystrokeTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystrokeTemplate")
            .field("detector", &self.config.detector.name())
            .field("samples", &self.samples.len())
            .field("features", &self.feature_count())
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl KeystrokeTemplate {
    /// Creates an empty template.
    pub fn new(config: TemplateConfig) -> Result<Self, TemplateError> {
        config.validate()?;
        Ok(Self {
            config,
            ..Self::default()
        })
    }

    /// Creates a template from verified samples in time order, oldest first, fitting once.
    /// Only the newest `window` samples are kept.
    pub fn from_samples(
        config: TemplateConfig,
        samples: impl IntoIterator<Item = TimingVector>,
    ) -> Result<Self, TemplateError> {
        let mut template = Self::new(config)?;
        for sample in samples {
            let sample = TimingVector::from_features(sample.into_values())?;
            if let Some(expected) = template.feature_count()
                && sample.len() != expected
            {
                return Err(NotEvaluable::LengthMismatch {
                    expected,
                    actual: sample.len(),
                }
                .into());
            }
            template.samples.push_back(sample);
            template.trim_to_window();
        }
        template.refit()?;
        Ok(template)
    }

    /// Settings of the template.
    pub fn config(&self) -> &TemplateConfig {
        &self.config
    }

    /// Applies new settings, drops the oldest samples beyond the new window and refits.
    pub fn set_config(&mut self, config: TemplateConfig) -> Result<(), TemplateError> {
        config.validate()?;
        let mut updated = self.clone();
        updated.config = config;
        updated.trim_to_window();
        updated.refit()?;
        *self = updated;
        Ok(())
    }

    /// Number of enrolled samples (at most the window).
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Number of features per sample, once a sample is enrolled.
    pub fn feature_count(&self) -> Option<usize> {
        self.samples.front().map(TimingVector::len)
    }

    /// Whether the template has enough samples to score.
    pub fn is_ready(&self) -> bool {
        self.model.is_some()
    }

    /// Number of further samples needed before the template scores.
    pub fn samples_needed(&self) -> usize {
        self.config.min_samples.saturating_sub(self.samples.len())
    }

    /// Fitted model, once the template is ready.
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }

    /// Median and spread of the leave-one-out scores, once the template is ready.
    pub fn genuine_scores(&self) -> Option<GenuineScores> {
        self.genuine_scores
    }

    /// Drops every sample, for example after a password change.
    pub fn clear(&mut self) {
        self.samples.clear();
        self.model = None;
        self.genuine_scores = None;
    }

    /// Enrols the features of a verified login. The oldest sample leaves once the window is
    /// full. A sample whose length differs from the enrolled ones is rejected: call
    /// [`KeystrokeTemplate::clear`] first when the password changed.
    pub fn add_sample(&mut self, sample: TimingVector) -> Result<(), TemplateError> {
        let sample = TimingVector::from_features(sample.into_values())?;
        if let Some(expected) = self.feature_count()
            && sample.len() != expected
        {
            return Err(NotEvaluable::LengthMismatch {
                expected,
                actual: sample.len(),
            }
            .into());
        }
        // Updated in place, and restored if the refit fails, so that enrolment does not copy
        // the whole window.
        let model = self.model.take();
        let genuine_scores = self.genuine_scores.take();
        self.samples.push_back(sample);
        let mut dropped = Vec::new();
        while self.samples.len() > self.config.window {
            dropped.extend(self.samples.pop_front());
        }
        if let Err(error) = self.refit() {
            self.samples.pop_back();
            for sample in dropped.into_iter().rev() {
                self.samples.push_front(sample);
            }
            self.model = model;
            self.genuine_scores = genuine_scores;
            return Err(error);
        }
        Ok(())
    }

    /// Extracts features from the key events of a verified login and enrols them.
    pub fn add_events(&mut self, events: &[KeystrokeEvent]) -> Result<(), TemplateError> {
        self.add_sample(extract_features(events)?)
    }

    /// Scores a sample and maps the score to a log-likelihood ratio. The result is not
    /// evaluable when the template is not ready, the length differs or the sample is not
    /// plausible typing (the checks of [`extract_features`]).
    pub fn assess(&self, sample: &TimingVector) -> KeystrokeAssessment {
        match TimingVector::from_features(sample.values().to_vec()) {
            Ok(_) => self.assess_checked(sample),
            Err(cause) => KeystrokeAssessment::not_evaluable(cause),
        }
    }

    /// Extracts features from key events and assesses them.
    pub fn assess_events(&self, events: &[KeystrokeEvent]) -> KeystrokeAssessment {
        match extract_features(events) {
            Ok(sample) => self.assess_checked(&sample),
            Err(cause) => KeystrokeAssessment::not_evaluable(cause),
        }
    }

    /// Assesses a sample that has passed the plausibility checks.
    fn assess_checked(&self, sample: &TimingVector) -> KeystrokeAssessment {
        let (Some(model), Some(genuine)) = (&self.model, self.genuine_scores) else {
            return KeystrokeAssessment::not_evaluable(NotEvaluable::TemplateNotReady {
                samples: self.samples.len(),
                required: self.config.min_samples,
            });
        };
        if sample.len() != model.feature_count() {
            return KeystrokeAssessment::not_evaluable(NotEvaluable::LengthMismatch {
                expected: model.feature_count(),
                actual: sample.len(),
            });
        }
        let score = match model.score(sample) {
            Ok(score) if score.is_finite() => score,
            _ => return KeystrokeAssessment::not_evaluable(NotEvaluable::InvalidScore),
        };
        let z = genuine.z(score);
        let llr = self.config.calibration.log_likelihood_ratio(z);
        KeystrokeAssessment {
            evaluable: true,
            reason: format!(
                "{} score {score:.2} is {z:.1} robust deviations from the user's genuine \
                 median {:.2}",
                self.config.detector.name(),
                genuine.median
            ),
            score,
            log_likelihood_ratio: llr,
            not_evaluable: None,
        }
    }

    fn trim_to_window(&mut self) {
        while self.samples.len() > self.config.window {
            self.samples.pop_front();
        }
    }

    /// Refits the model and the genuine-score reference, or clears them while there are too
    /// few samples.
    fn refit(&mut self) -> Result<(), TemplateError> {
        if self.samples.len() < self.config.min_samples {
            self.model = None;
            self.genuine_scores = None;
            return Ok(());
        }
        let (model, mut loo_scores) =
            fit_with_leave_one_out(self.config.detector, self.samples.make_contiguous())?;
        self.genuine_scores = Some(GenuineScores::from_scores(&mut loo_scores));
        self.model = Some(model);
        Ok(())
    }
}

/// Fits the detector on samples in time order, oldest first, and scores each sample against
/// a model fitted on the other samples (leave-one-out).
fn fit_with_leave_one_out(
    detector: Detector,
    samples: &[TimingVector],
) -> Result<(Model, Vec<f64>), TemplateError> {
    let rows = training_matrix(samples)?;
    let model = detector.fit_matrix(&rows)?;
    let scores = match &model {
        // Bit-identical to the generic path, without refitting per sample.
        Model::RobustManhattan(full) => robust::leave_one_out_scores(&rows, full)?,
        _ => generic_leave_one_out_scores(detector, &rows, samples)?,
    };
    Ok((model, scores))
}

/// Scores each sample against a model fitted on the other samples, with one fit per sample.
/// `rows` is the checked [`training_matrix`] of `samples`.
fn generic_leave_one_out_scores(
    detector: Detector,
    rows: &Array2<f64>,
    samples: &[TimingVector],
) -> Result<Vec<f64>, TemplateError> {
    let (count, features) = rows.dim();
    if count < 2 {
        return Err(FitError::NoSamples.into());
    }
    let mut scores = Vec::with_capacity(count);
    for (held_out, sample) in samples.iter().enumerate() {
        // Rows in the standard layout that training_matrix builds, so the fit receives the
        // matrix that `detector.fit` on the other samples would build.
        let mut others = Vec::with_capacity((count - 1) * features);
        for (index, row) in rows.rows().into_iter().enumerate() {
            if index != held_out {
                others.extend(row.iter().copied());
            }
        }
        let others = Array2::from_shape_vec((count - 1, features), others)
            .map_err(|_| FitError::NoFeatures)?;
        scores.push(detector.fit_matrix(&others)?.score(sample)?);
    }
    Ok(scores)
}

impl From<KeystrokeTemplate> for TemplateData {
    fn from(template: KeystrokeTemplate) -> Self {
        Self {
            config: template.config,
            samples: template.samples,
            model: template.model,
            genuine_scores: template.genuine_scores,
        }
    }
}

impl TryFrom<TemplateData> for KeystrokeTemplate {
    type Error = TemplateError;

    /// Checks a stored template: valid settings, samples of one length within the window,
    /// and a model and reference present exactly when there are enough samples.
    fn try_from(data: TemplateData) -> Result<Self, Self::Error> {
        data.config.validate()?;
        if data.samples.len() > data.config.window {
            return Err(TemplateError::Inconsistent("more samples than the window"));
        }
        let length = data.samples.front().map(TimingVector::len);
        if data.samples.iter().any(|s| Some(s.len()) != length) {
            return Err(TemplateError::Inconsistent("samples differ in length"));
        }
        let ready = data.samples.len() >= data.config.min_samples;
        match (&data.model, data.genuine_scores, ready) {
            (None, None, false) => {}
            (Some(model), Some(genuine), true) => {
                if model.detector() != data.config.detector {
                    return Err(TemplateError::Inconsistent(
                        "model detector differs from the configured detector",
                    ));
                }
                if Some(model.feature_count()) != length {
                    return Err(TemplateError::Inconsistent(
                        "model length differs from the samples",
                    ));
                }
                if !genuine.median.is_finite()
                    || !genuine.spread.is_finite()
                    || genuine.spread <= 0.0
                {
                    return Err(TemplateError::Inconsistent(
                        "invalid genuine-score reference",
                    ));
                }
            }
            _ => {
                return Err(TemplateError::Inconsistent(
                    "model present without enough samples, or missing with enough",
                ));
            }
        }
        Ok(Self {
            config: data.config,
            samples: data.samples,
            model: data.model,
            genuine_scores: data.genuine_scores,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystroke::benchmark::Dataset;
    use crate::keystroke::features::events_from_cmu_row;

    const IIITBH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/keystroke/IIITBh-Big.csv"
    );

    fn dataset() -> Dataset {
        Dataset::read_csv(IIITBH.as_ref()).unwrap()
    }

    fn config(min_samples: usize, window: usize) -> TemplateConfig {
        TemplateConfig {
            min_samples,
            window,
            ..TemplateConfig::default()
        }
    }

    fn enrolled(samples: &[TimingVector], config: TemplateConfig) -> KeystrokeTemplate {
        let mut template = KeystrokeTemplate::new(config).unwrap();
        for sample in samples {
            template.add_sample(sample.clone()).unwrap();
        }
        template
    }

    #[test]
    fn ready_after_min_samples() {
        let data = dataset();
        let samples = &data.subjects[0].samples;
        let mut template = KeystrokeTemplate::default();
        for (i, sample) in samples.iter().take(7).enumerate() {
            template.add_sample(sample.clone()).unwrap();
            assert_eq!(template.sample_count(), i + 1);
        }
        assert!(!template.is_ready());
        assert_eq!(template.samples_needed(), 1);
        let early = template.assess(&samples[20]);
        assert!(!early.evaluable);
        assert_eq!(
            early.not_evaluable,
            Some(NotEvaluable::TemplateNotReady {
                samples: 7,
                required: 8
            })
        );
        assert_eq!(early.log_likelihood_ratio, 0.0);
        template.add_sample(samples[7].clone()).unwrap();
        assert!(template.is_ready());
        assert_eq!(template.samples_needed(), 0);
        assert_eq!(template.feature_count(), Some(31));
        let assessment = template.assess(&samples[20]);
        assert!(assessment.evaluable, "{}", assessment.reason);
        assert!(assessment.score.is_finite());
        assert!(assessment.reason.starts_with("robust-manhattan score"));
    }

    #[test]
    fn window_keeps_newest_samples() {
        let data = dataset();
        let samples = &data.subjects[1].samples[..15];
        let rolled = enrolled(samples, config(8, 10));
        assert_eq!(rolled.sample_count(), 10);
        let fresh = enrolled(&samples[5..], config(8, 10));
        assert_eq!(rolled, fresh);
        let old = enrolled(&samples[..10], config(8, 10));
        assert_ne!(rolled.genuine_scores(), old.genuine_scores());
    }

    #[test]
    fn set_config_trims_and_refits() {
        let data = dataset();
        let samples = &data.subjects[2].samples[..12];
        let mut template = enrolled(samples, config(8, 12));
        template.set_config(config(4, 6)).unwrap();
        assert_eq!(template, enrolled(&samples[6..], config(4, 6)));
        template
            .set_config(TemplateConfig {
                detector: Detector::ManhattanScaled,
                ..config(4, 6)
            })
            .unwrap();
        assert_eq!(
            template.model().map(Model::detector),
            Some(Detector::ManhattanScaled)
        );
        template.set_config(config(8, 8)).unwrap();
        assert!(!template.is_ready());
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(
            KeystrokeTemplate::new(config(2, 10)),
            Err(TemplateError::MinSamplesTooSmall { min_samples: 2 })
        );
        assert_eq!(
            KeystrokeTemplate::new(config(8, 7)),
            Err(TemplateError::InvalidWindow {
                window: 7,
                min_samples: 8
            })
        );
        assert_eq!(
            KeystrokeTemplate::new(config(8, MAX_WINDOW + 1)),
            Err(TemplateError::InvalidWindow {
                window: MAX_WINDOW + 1,
                min_samples: 8
            })
        );
        let mut bad = TemplateConfig::default();
        bad.calibration.slope = -1.0;
        assert_eq!(
            KeystrokeTemplate::new(bad),
            Err(TemplateError::InvalidCalibration)
        );
        let json = r#"{"detector": "nn-mahalanobis", "window": 30}"#;
        let parsed: TemplateConfig = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.detector, Detector::NnMahalanobis);
        assert_eq!(parsed.min_samples, DEFAULT_MIN_SAMPLES);
        assert!(serde_json::from_str::<TemplateConfig>(r#"{"detector": "svm"}"#).is_err());
    }

    #[test]
    fn length_mismatch_is_rejected() {
        let data = dataset();
        let mut template = enrolled(&data.subjects[0].samples[..8], config(8, 50));
        let short = TimingVector::new(data.subjects[0].samples[9].values()[..28].to_vec());
        assert_eq!(
            template.add_sample(short.clone()),
            Err(TemplateError::Sample(NotEvaluable::LengthMismatch {
                expected: 31,
                actual: 28
            }))
        );
        assert_eq!(template.sample_count(), 8);
        let assessment = template.assess(&short);
        assert!(!assessment.evaluable);
        assert_eq!(
            assessment.not_evaluable,
            Some(NotEvaluable::LengthMismatch {
                expected: 31,
                actual: 28
            })
        );
        template.clear();
        assert!(template.add_sample(short).is_ok());
        assert_eq!(template.feature_count(), Some(28));
    }

    #[test]
    fn implausible_sample_is_not_evaluable() {
        let data = dataset();
        let template = enrolled(&data.subjects[0].samples[..8], config(8, 50));
        let mut values = data.subjects[0].samples[10].values().to_vec();
        values[3] = -0.05;
        values[5] = values[4] - values[3];
        let assessment = template.assess(&TimingVector::new(values));
        assert!(!assessment.evaluable);
        assert_eq!(
            assessment.not_evaluable,
            Some(NotEvaluable::NegativeHold { key: 1 })
        );
        let empty = template.assess_events(&[]);
        assert_eq!(empty.not_evaluable, Some(NotEvaluable::Empty));
        assert_eq!(empty.reason, "no keystroke events");
    }

    #[test]
    fn events_and_vectors_assess_alike() {
        let data = dataset();
        let template = enrolled(&data.subjects[3].samples[..20], config(8, 50));
        let sample = &data.subjects[3].samples[30];
        let events = events_from_cmu_row(sample.values()).unwrap();
        let from_events = template.assess_events(&events);
        let from_vector = template.assess(sample);
        assert!((from_events.score - from_vector.score).abs() < 1e-6);
        assert!((from_events.log_likelihood_ratio - from_vector.log_likelihood_ratio).abs() < 1e-6);
    }

    #[test]
    fn llr_is_monotonic_and_bounded() {
        let calibration = LlrCalibration::default();
        let mut previous = f64::NEG_INFINITY;
        for step in -400..=400 {
            let z = step as f64 * 0.05;
            let llr = calibration.log_likelihood_ratio(z);
            assert!(llr >= previous, "z {z}: {llr} < {previous}");
            assert!(llr >= calibration.min_llr && llr <= calibration.max_llr);
            previous = llr;
        }
        assert_eq!(
            calibration.log_likelihood_ratio(calibration.z_equal_odds),
            0.0
        );
        assert_eq!(calibration.log_likelihood_ratio(f64::NAN), 0.0);
        assert_eq!(calibration.log_likelihood_ratio(f64::INFINITY), 4.0);
    }

    #[test]
    fn llr_grows_with_distance_from_template() {
        let data = dataset();
        let samples = &data.subjects[4].samples;
        let template = enrolled(&samples[..50], TemplateConfig::default());
        let base = samples[60].values().to_vec();
        let mut previous = f64::NEG_INFINITY;
        // Stretch every down-down gap (and with it every up-down time) by up to 60 %.
        for step in 0..=12 {
            let factor = 1.0 + step as f64 * 0.05;
            let mut values = base.clone();
            for key in 0..10 {
                values[3 * key + 1] *= factor;
                values[3 * key + 2] = values[3 * key + 1] - values[3 * key];
            }
            let assessment = template.assess(&TimingVector::new(values));
            assert!(assessment.evaluable, "{}", assessment.reason);
            assert!(
                assessment.log_likelihood_ratio >= previous,
                "factor {factor}: {} < {previous}",
                assessment.log_likelihood_ratio
            );
            previous = assessment.log_likelihood_ratio;
        }
        assert_eq!(previous, LlrCalibration::default().max_llr);
    }

    #[test]
    fn genuine_scores_below_impostors() {
        let data = dataset();
        let template = enrolled(&data.subjects[5].samples[..75], TemplateConfig::default());
        let median_llr = |samples: &mut dyn Iterator<Item = &TimingVector>| {
            let mut llrs: Vec<f64> = samples
                .map(|s| template.assess(s).log_likelihood_ratio)
                .collect();
            median_of(&mut llrs)
        };
        let genuine = median_llr(&mut data.subjects[5].samples[75..].iter());
        let impostor = median_llr(
            &mut data
                .subjects
                .iter()
                .filter(|s| s.name != data.subjects[5].name)
                .flat_map(|s| s.samples.iter().take(5)),
        );
        assert!(genuine < 0.0, "{genuine}");
        assert!(impostor > 0.0, "{impostor}");
    }

    #[test]
    fn from_samples_equals_incremental_enrolment() {
        let data = dataset();
        let samples = &data.subjects[9].samples[..20];
        let bulk = KeystrokeTemplate::from_samples(config(8, 12), samples.iter().cloned()).unwrap();
        assert_eq!(bulk, enrolled(samples, config(8, 12)));
        let mixed = [
            samples[0].clone(),
            TimingVector::new(samples[1].values()[..28].to_vec()),
        ];
        assert_eq!(
            KeystrokeTemplate::from_samples(config(8, 12), mixed),
            Err(TemplateError::Sample(NotEvaluable::LengthMismatch {
                expected: 31,
                actual: 28
            }))
        );
    }

    /// Fits the calibration on some IIITBh-Big subjects: per subject, a default template on
    /// the first 75 samples, z of its 75 later samples (genuine) and of the first 5 samples of
    /// every other member (impostor), then a class-balanced logistic regression of impostor
    /// on z. Returns the slope and the equal-odds z.
    fn fit_calibration(data: &Dataset, members: &[usize]) -> (f64, f64) {
        let mut genuine = Vec::new();
        let mut impostor = Vec::new();
        for &index in members {
            let (training, later) = data.subjects[index].samples.split_at(75);
            let template = KeystrokeTemplate::from_samples(
                TemplateConfig::default(),
                training.iter().cloned(),
            )
            .unwrap();
            let reference = template.genuine_scores().unwrap();
            let z = |s: &TimingVector| reference.z(template.assess(s).score);
            genuine.extend(later.iter().map(z));
            impostor.extend(
                members
                    .iter()
                    .filter(|&&other| other != index)
                    .flat_map(|&other| data.subjects[other].samples.iter().take(5))
                    .map(z),
            );
        }
        let (slope, intercept) = balanced_logistic_fit(&genuine, &impostor);
        (slope, -intercept / slope)
    }

    #[test]
    fn default_calibration_matches_iiitbh_fit() {
        let data = dataset();
        let all: Vec<usize> = (0..12).collect();
        let (slope, z_equal_odds) = fit_calibration(&data, &all);
        println!("all subjects: slope {slope:.3}, z_equal_odds {z_equal_odds:.3}");
        let defaults = LlrCalibration::default();
        assert!((slope - defaults.slope).abs() < 0.1, "slope {slope}");
        assert!(
            (z_equal_odds - defaults.z_equal_odds).abs() < 0.1,
            "z {z_equal_odds}"
        );
        // Halves of the subjects: the spread quoted in the LlrCalibration documentation.
        let halves: [Vec<usize>; 4] = [
            (0..6).collect(),
            (6..12).collect(),
            (0..12).step_by(2).collect(),
            (1..12).step_by(2).collect(),
        ];
        for members in halves {
            let (slope, z_equal_odds) = fit_calibration(&data, &members);
            println!("subjects {members:?}: slope {slope:.3}, z_equal_odds {z_equal_odds:.3}");
            assert!((1.5..=2.7).contains(&slope), "{members:?}: slope {slope}");
            assert!(
                (2.0..=3.2).contains(&z_equal_odds),
                "{members:?}: z {z_equal_odds}"
            );
        }
    }

    /// Newton's method for `P(impostor | z) = sigmoid(slope * z + intercept)`, with the two
    /// classes weighted equally so that the fit is a log-likelihood ratio. z is clipped at 50,
    /// far beyond any genuine sample, so that extreme impostors do not stall the iteration.
    fn balanced_logistic_fit(genuine: &[f64], impostor: &[f64]) -> (f64, f64) {
        let (mut slope, mut intercept) = (0.5, -1.0);
        for _ in 0..100 {
            let mut gradient = [0.0; 2];
            let mut hessian = [0.0; 3];
            for (scores, label) in [(genuine, 0.0), (impostor, 1.0)] {
                let weight = 0.5 / scores.len() as f64;
                for &z in scores {
                    let z = z.min(50.0);
                    let p = 1.0 / (1.0 + (-(slope * z + intercept)).exp());
                    gradient[0] += weight * (p - label) * z;
                    gradient[1] += weight * (p - label);
                    let h = weight * p * (1.0 - p);
                    hessian[0] += h * z * z;
                    hessian[1] += h * z;
                    hessian[2] += h;
                }
            }
            let determinant = hessian[0] * hessian[2] - hessian[1] * hessian[1];
            let step_slope = (hessian[2] * gradient[0] - hessian[1] * gradient[1]) / determinant;
            let step_intercept =
                (hessian[0] * gradient[1] - hessian[1] * gradient[0]) / determinant;
            slope -= step_slope;
            intercept -= step_intercept;
            if step_slope.abs() + step_intercept.abs() < 1e-12 {
                break;
            }
        }
        (slope, intercept)
    }

    #[test]
    fn template_survives_json() {
        let data = dataset();
        let template = enrolled(&data.subjects[6].samples[..12], config(8, 50));
        let json = serde_json::to_string(&template).unwrap();
        let restored: KeystrokeTemplate = serde_json::from_str(&json).unwrap();
        assert_eq!(restored.sample_count(), 12);
        let sample = &data.subjects[6].samples[40];
        let (a, b) = (template.assess(sample), restored.assess(sample));
        assert!((a.log_likelihood_ratio - b.log_likelihood_ratio).abs() < 1e-9);
        let empty: KeystrokeTemplate =
            serde_json::from_str(&serde_json::to_string(&KeystrokeTemplate::default()).unwrap())
                .unwrap();
        assert_eq!(empty.sample_count(), 0);
    }

    #[test]
    fn inconsistent_stored_template_is_rejected() {
        let data = dataset();
        let template = enrolled(&data.subjects[6].samples[..12], config(8, 50));
        let good = serde_json::to_value(&template).unwrap();
        let cases: [(&str, serde_json::Value, &str); 3] = [
            ("/config/window", 10.into(), "more samples than the window"),
            (
                "/config/detector",
                "manhattan".into(),
                "model detector differs",
            ),
            (
                "/model",
                serde_json::Value::Null,
                "model present without enough",
            ),
        ];
        for (pointer, value, message) in cases {
            let mut tampered = good.clone();
            *tampered.pointer_mut(pointer).unwrap() = value;
            let err = serde_json::from_value::<KeystrokeTemplate>(tampered).unwrap_err();
            assert!(err.to_string().contains(message), "{pointer}: {err}");
        }
    }

    #[test]
    fn damaged_model_gives_invalid_score() {
        let data = dataset();
        let scaled = TemplateConfig {
            detector: Detector::ManhattanScaled,
            ..config(8, 50)
        };
        let template = enrolled(&data.subjects[7].samples[..8], scaled);
        let mut json = serde_json::to_value(&template).unwrap();
        *json.pointer_mut("/model/mean/0").unwrap() = 1e308.into();
        let damaged: KeystrokeTemplate = serde_json::from_value(json).unwrap();
        let assessment = damaged.assess(&data.subjects[7].samples[20]);
        assert_eq!(assessment.not_evaluable, Some(NotEvaluable::InvalidScore));
    }

    #[test]
    fn debug_hides_timings() {
        let data = dataset();
        let template = enrolled(&data.subjects[8].samples[..8], config(8, 50));
        let text = format!("{template:?}");
        assert_eq!(
            text,
            "KeystrokeTemplate { detector: \"robust-manhattan\", samples: 8, features: Some(31), \
             ready: true, .. }"
        );
    }

    /// Leave-one-out scores with one fit per sample on clones of the other samples: the
    /// definition that both refit paths must reproduce bit for bit.
    fn refitted_leave_one_out_scores(detector: Detector, samples: &[TimingVector]) -> Vec<f64> {
        let mut scores = Vec::with_capacity(samples.len());
        for (held_out, sample) in samples.iter().enumerate() {
            let others: Vec<TimingVector> = samples
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != held_out)
                .map(|(_, s)| s.clone())
                .collect();
            scores.push(detector.fit(&others).unwrap().score(sample).unwrap());
        }
        scores
    }

    fn assert_same_bits(actual: &[f64], expected: &[f64], context: &str) {
        assert_eq!(actual.len(), expected.len(), "{context}: score count");
        for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert_eq!(
                a.to_bits(),
                e.to_bits(),
                "{context}: sample {index}: {a} != {e}"
            );
        }
    }

    /// Checks the fast path and the generic path of the default detector against one fit per
    /// sample.
    fn check_robust_leave_one_out(samples: &[TimingVector], context: &str) {
        let detector = Detector::RobustManhattan;
        let expected = refitted_leave_one_out_scores(detector, samples);
        let (model, fast) = fit_with_leave_one_out(detector, samples).unwrap();
        assert_eq!(model, detector.fit(samples).unwrap(), "{context}: model");
        assert_same_bits(&fast, &expected, &format!("{context}, fast path"));
        let rows = training_matrix(samples).unwrap();
        let generic = generic_leave_one_out_scores(detector, &rows, samples).unwrap();
        assert_same_bits(&generic, &expected, &format!("{context}, generic path"));
    }

    /// Checks a template's model and genuine scores against a fit on `samples`, its expected
    /// window, and the leave-one-out scores of one fit per sample.
    fn check_template(template: &KeystrokeTemplate, samples: &[TimingVector], context: &str) {
        assert_eq!(template.sample_count(), samples.len(), "{context}: samples");
        let config = template.config();
        if samples.len() < config.min_samples {
            assert!(template.model().is_none(), "{context}: model");
            assert!(
                template.genuine_scores().is_none(),
                "{context}: genuine scores"
            );
            return;
        }
        let model = config.detector.fit(samples).unwrap();
        assert_eq!(template.model(), Some(&model), "{context}: model");
        let mut scores = refitted_leave_one_out_scores(config.detector, samples);
        let expected = GenuineScores::from_scores(&mut scores);
        let actual = template.genuine_scores().unwrap();
        assert_eq!(
            actual.median.to_bits(),
            expected.median.to_bits(),
            "{context}: median {} != {}",
            actual.median,
            expected.median
        );
        assert_eq!(
            actual.spread.to_bits(),
            expected.spread.to_bits(),
            "{context}: spread {} != {}",
            actual.spread,
            expected.spread
        );
    }

    #[test]
    fn robust_leave_one_out_matches_refits() {
        let data = dataset();
        for (index, subject) in data.subjects.iter().enumerate() {
            let samples = &subject.samples;
            // Both parities, around RECENT_SAMPLES = 50, and beyond RECENT_SAMPLES + 1.
            for count in [2, 3, 4, 7, 8, 49, 50, 51, 52, 53, 76, 150] {
                let start = (index * 7) % (samples.len() - count + 1);
                let window = &samples[start..start + count];
                check_robust_leave_one_out(window, &format!("subject {index}, {count} samples"));
            }
        }
    }

    /// xorshift64* generator, reproducible and without a dependency.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    /// Random samples in which each feature takes a few values, so that ties, duplicates and
    /// constant features are common. The values include -0.0 and 0.0, negative values and
    /// neighbours that differ in the last bit.
    fn random_samples(random: &mut Xorshift, count: usize, features: usize) -> Vec<TimingVector> {
        const VALUES: [f64; 12] = [
            -0.125,
            -0.0,
            0.0,
            1e-4,
            0.0995,
            0.1,
            0.1005,
            0.2,
            0.3,
            0.30000000000000004,
            0.7,
            1.7,
        ];
        let columns: Vec<Vec<f64>> = (0..features)
            .map(|_| {
                let distinct = 1 + random.below(2 * count.min(VALUES.len()));
                (0..distinct)
                    .map(|_| match random.below(3) {
                        0 => random.below(1000) as f64 / 997.0,
                        _ => VALUES[random.below(VALUES.len())],
                    })
                    .collect()
            })
            .collect();
        (0..count)
            .map(|_| {
                let values = columns
                    .iter()
                    .map(|column| column[random.below(column.len())])
                    .collect();
                TimingVector::new(values)
            })
            .collect()
    }

    #[test]
    fn robust_leave_one_out_with_ties() {
        let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
        for count in 1..=110 {
            for trial in 0..4 {
                let features = 1 + random.below(6);
                let samples = random_samples(&mut random, count, features);
                let context = format!("{count} samples, trial {trial}");
                if count >= 2 {
                    check_robust_leave_one_out(&samples, &context);
                }
                for min_samples in [MIN_MIN_SAMPLES, DEFAULT_MIN_SAMPLES] {
                    let template = KeystrokeTemplate {
                        config: config(min_samples, count.max(min_samples)),
                        samples: samples.iter().cloned().collect(),
                        model: None,
                        genuine_scores: None,
                    };
                    let mut refitted = template.clone();
                    refitted.refit().unwrap();
                    let context = format!("{context}, min_samples {min_samples}");
                    check_template(&refitted, &samples, &context);
                }
            }
        }
    }

    #[test]
    fn enrolled_template_matches_refits() {
        let data = dataset();
        let samples = &data.subjects[3].samples;
        for (min_samples, window) in [
            (3, 3),
            (3, 4),
            (8, 8),
            (8, 9),
            (8, 50),
            (8, 51),
            (8, 52),
            (8, 60),
            (50, 75),
        ] {
            let mut template = KeystrokeTemplate::new(config(min_samples, window)).unwrap();
            for (index, sample) in samples.iter().take(window + 10).enumerate() {
                template.add_sample(sample.clone()).unwrap();
                let expected_window = &samples[(index + 1).saturating_sub(window)..=index];
                let context = format!("min_samples {min_samples}, window {window}, {index}");
                check_template(&template, expected_window, &context);
            }
        }
    }

    #[test]
    fn generic_leave_one_out_matches_refits() {
        let data = dataset();
        let samples = &data.subjects[4].samples;
        for detector in Detector::ALL {
            for count in [3, 8, 52] {
                let window = &samples[10..10 + count];
                let context = format!("{detector}, {count} samples");
                let expected = refitted_leave_one_out_scores(detector, window);
                let rows = training_matrix(window).unwrap();
                let generic = generic_leave_one_out_scores(detector, &rows, window).unwrap();
                assert_same_bits(&generic, &expected, &context);
                let (_, scores) = fit_with_leave_one_out(detector, window).unwrap();
                assert_same_bits(&scores, &expected, &context);
            }
        }
    }
}
