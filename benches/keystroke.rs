//! Latency of the online keystroke path: feature extraction from key events plus the default
//! detector's score against a 31-feature template, with the template built outside the timed
//! closure. Also the enrolment of one verified sample into a full 50-sample template, which
//! refits the model and the leave-one-out genuine scores.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use riskgate_models::keystroke::{
    Dataset, KeystrokeTemplate, TemplateConfig, events_from_cmu_row, extract_features,
};

const IIITBH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/keystroke/IIITBh-Big.csv");

#[expect(
    clippy::expect_used,
    reason = "the benchmark cannot run without its data file and a ready template"
)]
fn keystroke(c: &mut Criterion) {
    let dataset = Dataset::read_csv(IIITBH.as_ref()).expect("IIITBh-Big.csv is readable");
    let samples = &dataset.subjects[0].samples;
    let mut template =
        KeystrokeTemplate::new(TemplateConfig::default()).expect("default config is valid");
    for sample in &samples[..50] {
        template
            .add_sample(sample.clone())
            .expect("IIITBh samples are plausible");
    }
    let model = template
        .model()
        .expect("50 samples make the template ready");
    let events = events_from_cmu_row(samples[100].values()).expect("row has 31 features");

    c.bench_function("keystroke/extract_and_score", |b| {
        b.iter(|| {
            let features = extract_features(black_box(&events)).expect("sample is plausible");
            model.score(&features).expect("lengths match")
        })
    });
    c.bench_function("keystroke/assess_events", |b| {
        b.iter(|| template.assess_events(black_box(&events)))
    });
    let next_sample = &samples[50];
    c.bench_function("keystroke/add_sample_full_window", |b| {
        b.iter_batched(
            || (template.clone(), next_sample.clone()),
            |(mut full, sample)| {
                full.add_sample(black_box(sample))
                    .expect("IIITBh samples are plausible");
                full
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, keystroke);
criterion_main!(benches);
