//! Latency of one `Engine::score` call: enrichment, profile, counters, signals, model, rules
//! and the recorded decision, with the shipped configuration and a warm profile cache.

// A benchmark whose setup fails has nothing to measure, so it stops at the first error.
#![allow(clippy::expect_used)]

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use riskgate_engine::config::Config;
use riskgate_engine::engine::Engine;
use riskgate_engine::request::{ScoreRequest, decode};
use riskgate_engine::store::sqlite::Durability;

fn engine(durability: Durability, data_dir: &std::path::Path) -> Engine {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut config = Config::load(&root.join("riskgate.toml")).expect("riskgate.toml loads");
    config.data_dir = data_dir.to_path_buf();
    config.store.durability = durability;
    Engine::open(&config).expect("engine starts")
}

fn body(hour: u32) -> String {
    format!(
        r#"{{"user_id":"bench-user","ip":"81.2.69.142","timestamp":"2026-03-02T{hour:02}:00:00Z","role":"physician","user_agent":"Mozilla/5.0 Firefox/128.0","device":{{"id":"device-a"}}}}"#
    )
}

fn enrol(engine: &Engine) {
    for hour in 9..14 {
        let response = engine.score_bytes(body(hour).as_bytes()).expect("score");
        for outcome in ["mfa_passed", "login_succeeded"] {
            let event = format!(
                r#"{{"decision_id":"{}","outcome":"{outcome}"}}"#,
                response.decision_id
            );
            engine.event_bytes(event.as_bytes()).expect("event");
        }
    }
}

fn score_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("score");
    for (name, durability) in [
        ("durability_normal", Durability::Normal),
        ("durability_full", Durability::Full),
    ] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let engine = engine(durability, dir.path());
        enrol(&engine);
        let request: ScoreRequest = decode(body(15).as_bytes()).expect("valid body");
        let attempt = request
            .into_attempt(chrono::Utc::now())
            .expect("valid attempt");
        group.bench_function(name, |b| b.iter(|| engine.score(&attempt).expect("score")));
    }
    group.finish();
}

criterion_group!(benches, score_latency);
criterion_main!(benches);
