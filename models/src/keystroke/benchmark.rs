//! Evaluation of detectors with the protocol of Killourhy and Maxion (DSN 2009) on files in
//! the CMU keystroke layout.
//!
//! A file has the columns `subject, sessionIndex, rep`, then timing columns in seconds whose
//! names start with `H.`, `DD.` and `UD.` in the CMU order, for any password length. For each
//! subject in turn, a detector is trained on the first half of that subject's rows in file
//! order (sessions 1-4 of the full CMU file). It then scores the rest of the subject's rows
//! as genuine samples and the first 5 rows of every other subject as impostor samples. The subject's equal-error rate
//! (EER) comes from [`equal_error_rate`]. A detector's result is the mean and standard
//! deviation of the per-subject EERs.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::detectors::{Detector, FitError, ScoreError};
use super::features::TimingVector;

/// Number of leading rows of every other subject used as impostor samples.
pub const IMPOSTOR_ROWS: usize = 5;

/// Names of the identifier columns that precede the timing columns.
const ID_COLUMNS: [&str; 3] = ["subject", "sessionIndex", "rep"];

/// Failure to read a benchmark file or to evaluate it.
#[derive(Debug, Error)]
pub enum BenchmarkError {
    #[error("failed to read `{path}`: {source}")]
    Io { path: String, source: io::Error },
    #[error("failed to parse CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("invalid header: column {index} is `{found}`, expected `{expected}`")]
    UnexpectedColumn {
        index: usize,
        found: String,
        expected: String,
    },
    #[error(
        "invalid header: column {index} is `{found}`, expected a name starting with `{prefix}`"
    )]
    UnexpectedTimingColumn {
        index: usize,
        found: String,
        prefix: &'static str,
    },
    #[error(
        "invalid header: `{count}` timing columns, expected 3 per key minus 2 \
         (H, DD, UD for each key pair, then H of the last key)"
    )]
    TimingColumnCount { count: usize },
    #[error("line {line}: `{found}` fields, the header has {expected}")]
    FieldCount {
        line: u64,
        found: usize,
        expected: usize,
    },
    #[error("line {line}, column `{column}`: invalid number `{value}`")]
    InvalidNumber {
        line: u64,
        column: String,
        value: String,
    },
    #[error("line {line}: empty subject")]
    EmptySubject { line: u64 },
    #[error("`{count}` subjects in the file, at least 2 are needed for impostor samples")]
    TooFewSubjects { count: usize },
    #[error("subject `{subject}` has `{rows}` rows, at least 4 are needed (2 to train, 2 to test)")]
    TooFewRows { subject: String, rows: usize },
    #[error("no detectors to evaluate")]
    NoDetectors,
    #[error("subject `{subject}`, detector `{detector}`: {source}")]
    Fit {
        subject: String,
        detector: &'static str,
        source: FitError,
    },
    #[error("subject `{subject}`, detector `{detector}`: {source}")]
    Score {
        subject: String,
        detector: &'static str,
        source: ScoreError,
    },
    #[error("subject `{subject}`, detector `{detector}`: {source}")]
    Eer {
        subject: String,
        detector: &'static str,
        source: EerError,
    },
}

/// Failure to compute an equal-error rate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EerError {
    #[error("no genuine scores")]
    NoGenuineScores,
    #[error("no impostor scores")]
    NoImpostorScores,
    #[error("a score is NaN")]
    NanScore,
}

/// Timing vectors of one subject, in file order.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Subject identifier from the `subject` column.
    pub name: String,
    /// Timing vectors in file order.
    pub samples: Vec<TimingVector>,
}

/// Contents of a file in the CMU keystroke layout, grouped by subject.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Timing column names from the header.
    pub columns: Vec<String>,
    /// Subjects in order of first appearance.
    pub subjects: Vec<Subject>,
}

impl Dataset {
    /// Reads and validates a CSV file in the CMU layout.
    pub fn read_csv(path: &Path) -> Result<Self, BenchmarkError> {
        let file = std::fs::File::open(path).map_err(|source| BenchmarkError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_reader(io::BufReader::new(file))
    }

    /// Reads and validates CSV text in the CMU layout.
    pub fn from_reader<R: io::Read>(reader: R) -> Result<Self, BenchmarkError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let header = csv.headers()?.clone();
        let columns = validate_header(&header)?;
        let mut subjects: Vec<Subject> = Vec::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        for record in csv.records() {
            let record = record?;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != header.len() {
                return Err(BenchmarkError::FieldCount {
                    line,
                    found: record.len(),
                    expected: header.len(),
                });
            }
            let name = record.get(0).unwrap_or_default();
            if name.is_empty() {
                return Err(BenchmarkError::EmptySubject { line });
            }
            let mut values = Vec::with_capacity(columns.len());
            for (offset, column) in columns.iter().enumerate() {
                let text = record.get(ID_COLUMNS.len() + offset).unwrap_or_default();
                let value = text
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| BenchmarkError::InvalidNumber {
                        line,
                        column: column.clone(),
                        value: text.to_owned(),
                    })?;
                values.push(value);
            }
            let index = *index_of.entry(name.to_owned()).or_insert_with(|| {
                subjects.push(Subject {
                    name: name.to_owned(),
                    samples: Vec::new(),
                });
                subjects.len() - 1
            });
            subjects[index].samples.push(TimingVector::new(values));
        }
        Ok(Self { columns, subjects })
    }

    /// Keeps only the subjects for which `keep` returns true.
    pub fn retain_subjects(&mut self, mut keep: impl FnMut(&Subject) -> bool) {
        self.subjects.retain(|s| keep(s));
    }
}

/// Checks the identifier columns and the H/DD/UD pattern of the timing columns, and returns the
/// timing column names.
fn validate_header(header: &csv::StringRecord) -> Result<Vec<String>, BenchmarkError> {
    for (index, expected) in ID_COLUMNS.iter().enumerate() {
        let found = header.get(index).unwrap_or_default();
        if found != *expected {
            return Err(BenchmarkError::UnexpectedColumn {
                index,
                found: found.to_owned(),
                expected: (*expected).to_owned(),
            });
        }
    }
    let columns: Vec<String> = header
        .iter()
        .skip(ID_COLUMNS.len())
        .map(str::to_owned)
        .collect();
    if columns.len() % 3 != 1 || columns.len() < 4 {
        return Err(BenchmarkError::TimingColumnCount {
            count: columns.len(),
        });
    }
    for (offset, name) in columns.iter().enumerate() {
        let prefix = ["H.", "DD.", "UD."][offset % 3];
        if !name.starts_with(prefix) {
            return Err(BenchmarkError::UnexpectedTimingColumn {
                index: ID_COLUMNS.len() + offset,
                found: name.clone(),
                prefix,
            });
        }
    }
    Ok(columns)
}

/// Per-subject result of one detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectEer {
    pub subject: String,
    pub eer: f64,
}

/// Result of one detector over all subjects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorReport {
    /// Detector name, as accepted by [`Detector::from_str`](std::str::FromStr).
    pub name: String,
    /// Mean of the per-subject EERs.
    pub eer_mean: f64,
    /// Standard deviation of the per-subject EERs (`n - 1` denominator, as R's `sd`).
    pub eer_sd: f64,
    /// EER of each subject, in file order. Not serialised.
    #[serde(skip)]
    pub per_subject: Vec<SubjectEer>,
}

/// Result of [`evaluate_file`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkReport {
    /// File that was evaluated, as given.
    pub file: String,
    /// Number of subjects.
    pub subjects: usize,
    /// One entry per detector, in the order requested.
    pub detectors: Vec<DetectorReport>,
}

impl fmt::Display for BenchmarkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({} subjects)", self.file, self.subjects)?;
        writeln!(f, "{:<20} {:>9} {:>9}", "detector", "mean EER", "sd")?;
        for detector in &self.detectors {
            writeln!(
                f,
                "{:<20} {:>9.4} {:>9.4}",
                detector.name, detector.eer_mean, detector.eer_sd
            )?;
        }
        Ok(())
    }
}

/// Reads a file in the CMU layout and evaluates each detector on it with the Killourhy and
/// Maxion protocol (see the module documentation).
pub fn evaluate_file(
    path: impl AsRef<Path>,
    detectors: &[Detector],
) -> Result<BenchmarkReport, BenchmarkError> {
    let path = path.as_ref();
    let dataset = Dataset::read_csv(path)?;
    evaluate_dataset(&dataset, &path.display().to_string(), detectors)
}

/// Evaluates each detector on a dataset with the Killourhy and Maxion protocol. `label` becomes
/// the report's `file`.
pub fn evaluate_dataset(
    dataset: &Dataset,
    label: &str,
    detectors: &[Detector],
) -> Result<BenchmarkReport, BenchmarkError> {
    if detectors.is_empty() {
        return Err(BenchmarkError::NoDetectors);
    }
    if dataset.subjects.len() < 2 {
        return Err(BenchmarkError::TooFewSubjects {
            count: dataset.subjects.len(),
        });
    }
    if let Some(short) = dataset.subjects.iter().find(|s| s.samples.len() < 4) {
        return Err(BenchmarkError::TooFewRows {
            subject: short.name.clone(),
            rows: short.samples.len(),
        });
    }
    // Rows of subject i: eers[i][d] for detector d.
    let eers: Vec<Vec<f64>> = (0..dataset.subjects.len())
        .into_par_iter()
        .map(|index| evaluate_subject(dataset, index, detectors))
        .collect::<Result<_, _>>()?;
    let reports = detectors
        .iter()
        .enumerate()
        .map(|(d, detector)| {
            let values: Vec<f64> = eers.iter().map(|row| row[d]).collect();
            let (mean, sd) = mean_and_sd(&values);
            DetectorReport {
                name: detector.name().to_owned(),
                eer_mean: mean,
                eer_sd: sd,
                per_subject: dataset
                    .subjects
                    .iter()
                    .zip(&values)
                    .map(|(s, &eer)| SubjectEer {
                        subject: s.name.clone(),
                        eer,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(BenchmarkReport {
        file: label.to_owned(),
        subjects: dataset.subjects.len(),
        detectors: reports,
    })
}

/// EER of every detector for one genuine subject.
fn evaluate_subject(
    dataset: &Dataset,
    index: usize,
    detectors: &[Detector],
) -> Result<Vec<f64>, BenchmarkError> {
    let subject = &dataset.subjects[index];
    let (training, genuine) = subject.samples.split_at(subject.samples.len() / 2);
    let impostors: Vec<&TimingVector> = dataset
        .subjects
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != index)
        .flat_map(|(_, s)| s.samples.iter().take(IMPOSTOR_ROWS))
        .collect();
    detectors
        .iter()
        .map(|detector| {
            let model = detector
                .fit(training)
                .map_err(|source| BenchmarkError::Fit {
                    subject: subject.name.clone(),
                    detector: detector.name(),
                    source,
                })?;
            let score_all = |samples: &mut dyn Iterator<Item = &TimingVector>| {
                samples
                    .map(|s| model.score(s))
                    .collect::<Result<Vec<f64>, _>>()
                    .map_err(|source| BenchmarkError::Score {
                        subject: subject.name.clone(),
                        detector: detector.name(),
                        source,
                    })
            };
            let genuine_scores = score_all(&mut genuine.iter())?;
            let impostor_scores = score_all(&mut impostors.iter().copied())?;
            equal_error_rate(&genuine_scores, &impostor_scores).map_err(|source| {
                BenchmarkError::Eer {
                    subject: subject.name.clone(),
                    detector: detector.name(),
                    source,
                }
            })
        })
        .collect()
}

/// Mean and sample standard deviation (`n - 1` denominator; 0 for a single value).
fn mean_and_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, variance.sqrt())
}

/// Equal-error rate of a detector from its genuine and impostor scores (higher = more
/// anomalous), computed as the Killourhy and Maxion evaluation script does with R's ROCR.
///
/// The ROC has one point per distinct score used as a threshold, plus the point for an
/// infinite threshold. At threshold `t`, a sample with score `>= t` is rejected as an impostor:
/// the miss rate is the share of impostor scores below `t` and the false-alarm rate the share
/// of genuine scores at or above `t`. Moving down the thresholds, `miss - false_alarm` strictly
/// decreases from 1 to -1. The EER is where the straight line between the last point with
/// `miss - false_alarm >= 0` and the first with `miss - false_alarm < 0` crosses
/// `miss = false_alarm`.
pub fn equal_error_rate(genuine: &[f64], impostor: &[f64]) -> Result<f64, EerError> {
    if genuine.is_empty() {
        return Err(EerError::NoGenuineScores);
    }
    if impostor.is_empty() {
        return Err(EerError::NoImpostorScores);
    }
    if genuine.iter().chain(impostor).any(|s| s.is_nan()) {
        return Err(EerError::NanScore);
    }
    // (score, is_impostor), highest score first.
    let mut labelled: Vec<(f64, bool)> = genuine
        .iter()
        .map(|&s| (s, false))
        .chain(impostor.iter().map(|&s| (s, true)))
        .collect();
    labelled.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n_genuine = genuine.len() as f64;
    let n_impostor = impostor.len() as f64;
    // The infinite threshold rejects nothing.
    let mut previous = (1.0, 0.0);
    let mut rejected_impostors = 0usize;
    let mut rejected_genuine = 0usize;
    let mut i = 0;
    while i < labelled.len() {
        let threshold = labelled[i].0;
        while i < labelled.len() && labelled[i].0 == threshold {
            if labelled[i].1 {
                rejected_impostors += 1;
            } else {
                rejected_genuine += 1;
            }
            i += 1;
        }
        let miss = 1.0 - rejected_impostors as f64 / n_impostor;
        let false_alarm = rejected_genuine as f64 / n_genuine;
        if miss - false_alarm < 0.0 {
            return Ok(interpolate_crossing(previous, (miss, false_alarm)));
        }
        previous = (miss, false_alarm);
    }
    // The lowest threshold rejects everything (miss 0, false alarm 1), so the loop returns.
    Ok(previous.1)
}

/// Point on the segment from `x` to `y` (each `(miss, false_alarm)`) where miss equals
/// false alarm; `x` has `miss >= false_alarm` and `y` has `miss < false_alarm`.
fn interpolate_crossing(x: (f64, f64), y: (f64, f64)) -> f64 {
    let a = (x.0 - x.1) / (y.1 - x.1 - y.0 + x.0);
    x.0 + a * (y.0 - x.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn eer_perfect_separation_is_zero() {
        let eer = equal_error_rate(&[0.1, 0.2, 0.3], &[0.5, 0.9]).unwrap();
        assert!(close(eer, 0.0), "{eer}");
    }

    #[test]
    fn eer_reversed_separation_is_one() {
        let eer = equal_error_rate(&[5.0, 6.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!(close(eer, 1.0), "{eer}");
    }

    #[test]
    fn eer_identical_distributions_is_half() {
        let scores = [1.0, 2.0, 3.0, 4.0];
        let eer = equal_error_rate(&scores, &scores).unwrap();
        assert!(close(eer, 0.5), "{eer}");
        // All scores tied: the only thresholds are infinity and the common score.
        let eer = equal_error_rate(&[7.0; 5], &[7.0; 3]).unwrap();
        assert!(close(eer, 0.5), "{eer}");
    }

    #[test]
    fn eer_interpolates_along_constant_false_alarm() {
        // Thresholds 4, 3, 2.5 give (miss, false alarm) = (1/2, 0), (1/2, 1/3), (0, 1/3); the
        // crossing lies between the last two, where false alarm stays 1/3.
        let eer = equal_error_rate(&[1.0, 2.0, 3.0], &[2.5, 4.0]).unwrap();
        assert!(close(eer, 1.0 / 3.0), "{eer}");
    }

    #[test]
    fn eer_interpolates_through_tied_scores() {
        // Threshold 5 gives (1/2, 0); threshold 3 rejects two genuine scores and one impostor at
        // once, giving (0, 2/3). The segment meets miss = false alarm at t = 3/7, so
        // EER = 1/2 - 3/14 = 2/7.
        let eer = equal_error_rate(&[1.0, 3.0, 3.0], &[3.0, 5.0]).unwrap();
        assert!(close(eer, 2.0 / 7.0), "{eer}");
    }

    #[test]
    fn eer_errors() {
        assert_eq!(
            equal_error_rate(&[], &[1.0]),
            Err(EerError::NoGenuineScores)
        );
        assert_eq!(
            equal_error_rate(&[1.0], &[]),
            Err(EerError::NoImpostorScores)
        );
        assert_eq!(
            equal_error_rate(&[1.0, f64::NAN], &[2.0]),
            Err(EerError::NanScore)
        );
    }

    #[test]
    fn mean_and_sd_use_n_minus_one() {
        let (mean, sd) = mean_and_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert!(close(mean, 2.5));
        assert!(close(sd, (5.0_f64 / 3.0).sqrt()));
    }

    const HEADER: &str = "subject,sessionIndex,rep,H.a,DD.a.b,UD.a.b,H.b,DD.b.c,UD.b.c,H.c,\
                          DD.c.d,UD.c.d,H.d";

    fn row(subject: &str, rep: usize, offset: f64) -> String {
        let hold = 0.08 + offset + rep as f64 * 0.001;
        let dd = 0.2 + offset * 2.0 + (rep % 3) as f64 * 0.01;
        let ud = dd - hold;
        format!(
            "{subject},1,{rep},{hold},{dd},{ud},{h2},{dd},{ud2},{hold},{dd},{ud},{h2}",
            h2 = hold + 0.01,
            ud2 = dd - hold - 0.01
        )
    }

    #[test]
    fn dataset_groups_subjects_in_file_order() {
        let mut text = format!("{HEADER}\n");
        for rep in 1..=6 {
            text.push_str(&row("b", rep, 0.0));
            text.push('\n');
            text.push_str(&row("a", rep, 0.05));
            text.push('\n');
        }
        let dataset = Dataset::from_reader(text.as_bytes()).unwrap();
        assert_eq!(dataset.columns.len(), 10);
        assert_eq!(dataset.subjects.len(), 2);
        assert_eq!(dataset.subjects[0].name, "b");
        assert_eq!(dataset.subjects[1].samples.len(), 6);
        let report = evaluate_dataset(&dataset, "inline", &[Detector::Manhattan]).unwrap();
        assert_eq!(report.subjects, 2);
        // The subjects differ by 50 ms in every hold: perfect separation.
        assert!(close(report.detectors[0].eer_mean, 0.0));
        assert_eq!(report.detectors[0].per_subject.len(), 2);
    }

    #[test]
    fn header_is_validated() {
        let cases = [
            (
                "user,sessionIndex,rep,H.a,DD.a.b,UD.a.b,H.b",
                "column 0 is `user`",
            ),
            (
                "subject,sessionIndex,rep,H.a,DD.a.b,UD.a.b",
                "`3` timing columns",
            ),
            (
                "subject,sessionIndex,rep,H.a,UD.a.b,DD.a.b,H.b",
                "column 4 is `UD.a.b`",
            ),
        ];
        for (header, message) in cases {
            let err = Dataset::from_reader(format!("{header}\n").as_bytes()).unwrap_err();
            assert!(err.to_string().contains(message), "{header}: {err}");
        }
    }

    #[test]
    fn invalid_number_is_reported() {
        let text = format!("{HEADER}\ns1,1,1,0.1,0.2,0.1,0.1,0.2,x,0.1,0.2,0.1,0.1\n");
        let err = Dataset::from_reader(text.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column `UD.b.c`: invalid number `x`"
        );
    }

    #[test]
    fn too_few_rows_is_reported() {
        let mut text = format!("{HEADER}\n");
        for rep in 1..=3 {
            text.push_str(&row("a", rep, 0.0));
            text.push('\n');
            text.push_str(&row("b", rep, 0.0));
            text.push('\n');
        }
        let dataset = Dataset::from_reader(text.as_bytes()).unwrap();
        let err = evaluate_dataset(&dataset, "inline", &[Detector::Manhattan]).unwrap_err();
        assert!(
            matches!(err, BenchmarkError::TooFewRows { rows: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn report_renders_table_and_json() {
        let report = BenchmarkReport {
            file: "f.csv".into(),
            subjects: 3,
            detectors: vec![DetectorReport {
                name: "manhattan".into(),
                eer_mean: 0.125,
                eer_sd: 0.05,
                per_subject: vec![],
            }],
        };
        let table = report.to_string();
        assert!(table.contains("manhattan"), "{table}");
        assert!(table.contains("0.1250"), "{table}");
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"file":"f.csv","subjects":3,"detectors":[{"name":"manhattan","eer_mean":0.125,"eer_sd":0.05}]}"#
        );
    }
}
