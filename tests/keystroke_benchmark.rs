//! Killourhy and Maxion protocol on the data files in `data/keystroke`: the classic detectors
//! must reproduce the reference equal-error rates on IIITBh-Big, and the default detector must
//! beat them.

use std::sync::OnceLock;

use riskgate_models::keystroke::{
    BenchmarkError, BenchmarkReport, Dataset, Detector, KeystrokeTemplate, TemplateConfig,
    evaluate_dataset, evaluate_file,
};

const IIITBH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/keystroke/IIITBh-Big.csv");
const CMU_EXCERPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/keystroke/DSL-StrongPasswordData-s002-session1.csv"
);

/// Reference mean EERs on IIITBh-Big, computed with an independent NumPy implementation of the
/// same protocol.
const REFERENCE: [(&str, f64); 6] = [
    ("manhattan-scaled", 0.0837),
    ("nn-mahalanobis", 0.0920),
    ("outlier-count", 0.0854),
    ("mahalanobis", 0.0851),
    ("manhattan", 0.1880),
    ("euclidean", 0.2078),
];

#[expect(
    clippy::unwrap_used,
    reason = "a failed evaluation fails the calling test"
)]
fn full_report() -> &'static BenchmarkReport {
    static REPORT: OnceLock<BenchmarkReport> = OnceLock::new();
    REPORT.get_or_init(|| evaluate_file(IIITBH, &Detector::ALL).unwrap())
}

#[expect(
    clippy::unwrap_used,
    reason = "a missing detector fails the calling test"
)]
fn mean_eer(report: &BenchmarkReport, name: &str) -> f64 {
    report
        .detectors
        .iter()
        .find(|d| d.name == name)
        .map(|d| d.eer_mean)
        .unwrap()
}

#[test]
fn baselines_match_reference_eers() {
    let report = full_report();
    println!("{report}");
    assert_eq!(report.subjects, 12);
    for (name, reference) in REFERENCE {
        let eer = mean_eer(report, name);
        assert!(
            (eer - reference).abs() <= 0.003,
            "{name}: mean EER {eer:.4}, reference {reference:.4}"
        );
    }
}

#[test]
fn default_detector_meets_target() {
    let eer = mean_eer(full_report(), Detector::DEFAULT.name());
    assert!(eer <= 0.060, "default mean EER {eer:.4}");
}

#[test]
fn default_beats_baselines_on_subject_halves() {
    let dataset = Dataset::read_csv(IIITBH.as_ref()).unwrap();
    let names: Vec<String> = dataset.subjects.iter().map(|s| s.name.clone()).collect();
    let halves = [("first six", &names[..6]), ("last six", &names[6..])];
    for (label, members) in halves {
        let mut half = dataset.clone();
        half.retain_subjects(|s| members.contains(&s.name));
        let mut detectors = Detector::BASELINES.to_vec();
        detectors.push(Detector::DEFAULT);
        let report = evaluate_dataset(&half, label, &detectors).unwrap();
        println!("{report}");
        assert_eq!(report.subjects, 6);
        let default = mean_eer(&report, Detector::DEFAULT.name());
        for baseline in Detector::BASELINES {
            let eer = mean_eer(&report, baseline.name());
            assert!(
                default < eer,
                "{label}: default {default:.4} >= {baseline} {eer:.4}"
            );
        }
    }
}

#[test]
fn report_serialises_to_documented_shape() {
    let json = serde_json::to_value(full_report()).unwrap();
    assert_eq!(json["subjects"], 12);
    assert!(json["file"].as_str().unwrap().ends_with("IIITBh-Big.csv"));
    let detectors = json["detectors"].as_array().unwrap();
    assert_eq!(detectors.len(), Detector::ALL.len());
    for (entry, detector) in detectors.iter().zip(Detector::ALL) {
        let object = entry.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["eer_mean", "eer_sd", "name"]);
        assert_eq!(entry["name"], detector.name());
    }
}

#[test]
fn single_subject_file_is_rejected() {
    let err = evaluate_file(CMU_EXCERPT, &[Detector::DEFAULT]).unwrap_err();
    assert!(
        matches!(err, BenchmarkError::TooFewSubjects { count: 1 }),
        "{err}"
    );
}

#[test]
fn missing_file_is_reported() {
    let err = evaluate_file("data/keystroke/absent.csv", &[Detector::DEFAULT]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to read `data/keystroke/absent.csv`")
    );
}

/// The CMU excerpt contains one subject, so it gives no EER. It still checks the genuine side on
/// another password and typist: a template enrolled on repetitions 1-25 should accept the
/// later repetitions 26-50.
#[test]
fn cmu_excerpt_later_samples_accepted() {
    let dataset = Dataset::read_csv(CMU_EXCERPT.as_ref()).unwrap();
    let samples = &dataset.subjects[0].samples;
    assert_eq!(samples.len(), 50);
    let mut template = KeystrokeTemplate::new(TemplateConfig::default()).unwrap();
    for sample in &samples[..25] {
        template.add_sample(sample.clone()).unwrap();
    }
    let rejected = samples[25..]
        .iter()
        .map(|s| template.assess(s))
        .inspect(|a| assert!(a.evaluable, "{}", a.reason))
        .filter(|a| a.log_likelihood_ratio > 0.0)
        .count();
    assert!(rejected <= 2, "{rejected} of 25 genuine samples rejected");
}
