//! Real typing samples for the `keystrokes` column: the rows of a file in the CMU keystroke
//! layout, rebuilt into key events and stored as the JSON array the score request takes.

use std::fmt::{self, Write as _};
use std::path::Path;

use rand::Rng;
use riskgate_models::keystroke::{Dataset, KeystrokeEvent, events_from_cmu_row, extract_features};

use super::SimulateError;

/// A reference to one sample: the subject in the low 16 bits, the sample above them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SampleRef(u32);

impl SampleRef {
    pub const NONE: SampleRef = SampleRef(u32::MAX);
}

/// The usable samples of each subject, as JSON text. `Debug` prints only the counts,
/// because typing rhythm is biometric data.
pub(super) struct KeystrokeSamples {
    subjects: Vec<Vec<String>>,
}

impl fmt::Debug for KeystrokeSamples {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let samples: Vec<usize> = self.subjects.iter().map(Vec::len).collect();
        formatter
            .debug_struct("KeystrokeSamples")
            .field("samples_per_subject", &samples)
            .finish()
    }
}

impl KeystrokeSamples {
    /// Reads `path` and keeps, per subject, the rows that rebuild into events the engine
    /// can evaluate. Subjects without such a row are dropped.
    pub fn load(path: &Path) -> Result<KeystrokeSamples, SimulateError> {
        let dataset = Dataset::read_csv(path).map_err(|source| SimulateError::Keystrokes {
            path: path.to_owned(),
            source,
        })?;
        let subjects: Vec<Vec<String>> = dataset
            .subjects
            .iter()
            .take(usize::from(u16::MAX))
            .map(|subject| {
                subject
                    .samples
                    .iter()
                    .filter_map(|sample| events_from_cmu_row(sample.values()).ok())
                    .map(|events| rounded(&events))
                    .filter(|events| extract_features(events).is_ok())
                    .map(|events| to_json(&events))
                    .take(usize::from(u16::MAX) + 1)
                    .collect::<Vec<_>>()
            })
            .filter(|samples| !samples.is_empty())
            .collect();
        if subjects.is_empty() {
            return Err(SimulateError::NoKeystrokeSamples {
                path: path.to_owned(),
            });
        }
        Ok(KeystrokeSamples { subjects })
    }

    pub fn subject_count(&self) -> usize {
        self.subjects.len()
    }

    /// Draws one sample of `subject` (taken modulo the subject count).
    pub fn draw(&self, rng: &mut impl Rng, subject: usize) -> SampleRef {
        let subject = subject % self.subjects.len();
        let samples = &self.subjects[subject];
        // `load` keeps at most 2^16 samples and fewer than 2^16 - 1 subjects, so both
        // indexes fit their 16 bits and never form `NONE`.
        let sample = rng.random_range(0..samples.len());
        SampleRef(((sample as u32) << 16) | subject as u32)
    }

    /// Returns the JSON text of a sample, or "" for [`SampleRef::NONE`].
    pub fn json(&self, sample: SampleRef) -> &str {
        if sample == SampleRef::NONE {
            return "";
        }
        let subject = (sample.0 & 0xFFFF) as usize;
        let index = (sample.0 >> 16) as usize;
        &self.subjects[subject][index]
    }
}

/// Rounds the times to whole microseconds, so the text stays short and the timings keep
/// a resolution far below any timer-step check.
fn rounded(events: &[KeystrokeEvent]) -> Vec<KeystrokeEvent> {
    let round = |ms: f64| (ms * 1000.0).round() / 1000.0;
    events
        .iter()
        .map(|event| KeystrokeEvent {
            down_ms: round(event.down_ms),
            up_ms: round(event.up_ms),
        })
        .collect()
}

fn to_json(events: &[KeystrokeEvent]) -> String {
    let mut text = String::from("[");
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        // `f64` formats as its shortest round-trip decimal, a valid JSON number.
        let _ = write!(
            text,
            r#"{{"down_ms":{},"up_ms":{}}}"#,
            event.down_ms, event.up_ms
        );
    }
    text.push(']');
    text
}
