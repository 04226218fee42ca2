//! `riskgate evaluate` on small simulated histories: a model trained on one seed is evaluated
//! on another, as a text table, as JSON and as SVG plots. Bad inputs give errors.

#![cfg(feature = "train")]
// The helpers below fail the calling test on a setup error, as a test wants.
#![allow(clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

const KINDS: [&str; 5] = ["naive", "vpn", "targeted", "stuffing", "spray"];
const KIND_FIGURES: [&str; 12] = [
    "auc",
    "baseline_auc",
    "caught_at_reauth_1pct",
    "caught_at_reauth_2pct",
    "caught_at_reauth_5pct",
    "caught_at_reauth_10pct",
    "baseline_caught_at_reauth_1pct",
    "baseline_caught_at_reauth_2pct",
    "baseline_caught_at_reauth_5pct",
    "baseline_caught_at_reauth_10pct",
    "reauth_at_caught_99pct_experienced",
    "baseline_reauth_at_caught_99pct_experienced",
];

fn riskgate(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_riskgate"));
    command.args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    command.output().expect("the riskgate binary runs")
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Files shared by the tests: a training history, a test history from another seed and the
/// model trained on the first.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    train_history: PathBuf,
    test_history: PathBuf,
    model: PathBuf,
}

fn simulate(dir: &Path, config: &Path, seed: u64, name: &str) -> PathBuf {
    let out = dir.join(name);
    let seed = seed.to_string();
    let output = riskgate(
        &[
            "simulate", "--users", "120", "--days", "20", "--seed", &seed,
        ],
        &[("--out", &out), ("--config", config)],
    );
    assert_success(&output);
    out
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = common::repo_root().join("riskgate.toml");
        let train_history = simulate(dir.path(), &config, 21, "train.csv");
        let test_history = simulate(dir.path(), &config, 22, "test.csv");
        let model = dir.path().join("model.json");
        let output = riskgate(
            &["train"],
            &[
                ("--input", &train_history),
                ("--out", &model),
                ("--config", &config),
            ],
        );
        assert_success(&output);
        Fixture {
            dir,
            config,
            train_history,
            test_history,
            model,
        }
    })
}

fn evaluate(model: &Path, input: &Path, extra: &[&str]) -> Output {
    let fixture = fixture();
    let mut args = vec!["evaluate"];
    args.extend_from_slice(extra);
    riskgate(
        &args,
        &[
            ("--model", model),
            ("--input", input),
            ("--config", &fixture.config),
        ],
    )
}

fn assert_rate(json: &Value, pointer: &str) {
    let value = json
        .pointer(pointer)
        .unwrap_or_else(|| panic!("missing `{pointer}`"));
    let rate = value
        .as_f64()
        .unwrap_or_else(|| panic!("`{pointer}` is {value}, not a number"));
    assert!((0.0..=1.0).contains(&rate), "`{pointer}` = {rate}");
}

#[test]
fn evaluate_json_and_plots() {
    let fixture = fixture();
    let plots = fixture.dir.path().join("plots");
    let output = evaluate(
        &fixture.model,
        &fixture.test_history,
        &["--json", "--plots", plots.to_str().unwrap()],
    );
    assert_success(&output);
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();

    for pointer in ["/auc", "/baseline_auc", "/legitimate_policy_step_up_share"] {
        assert_rate(&json, pointer);
    }
    let rows = json["rows"].as_u64().unwrap();
    let legitimate = json["legitimate"].as_u64().unwrap();
    let attacks = json["attacks_total"].as_u64().unwrap();
    assert!(rows > 1_000, "{rows} rows");
    assert_eq!(legitimate + attacks, rows);
    assert!(attacks > 0);

    // Every simulated user starts in the learning state, and the default rules step it up.
    let policy = json["legitimate_policy_step_up"].as_u64().unwrap();
    assert!(policy > 0, "no legitimate login under the learning policy");
    assert!(policy < legitimate, "{policy} of {legitimate}");
    let share = json["legitimate_policy_step_up_share"].as_f64().unwrap();
    assert!(
        (share - policy as f64 / legitimate as f64).abs() < 1e-12,
        "share {share}"
    );

    let mut counted = 0;
    for kind in KINDS {
        let figures = &json["attacks"][kind];
        let count = figures["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count for {kind}: {figures}"));
        counted += count;
        for figure in KIND_FIGURES {
            let pointer = format!("/attacks/{kind}/{figure}");
            if count == 0 {
                assert!(figures[figure].is_null(), "`{pointer}` without attacks");
            } else {
                assert_rate(&json, &pointer);
            }
        }
        if count > 0 {
            // A higher re-authentication rate lowers the threshold, so it catches no fewer.
            for scorer in ["", "baseline_"] {
                let caught: Vec<f64> = [1, 2, 5, 10]
                    .iter()
                    .map(|rate| {
                        figures[format!("{scorer}caught_at_reauth_{rate}pct")]
                            .as_f64()
                            .unwrap()
                    })
                    .collect();
                assert!(
                    caught.windows(2).all(|pair| pair[0] <= pair[1]),
                    "{kind} {scorer}caught: {caught:?}"
                );
            }
        }
    }
    assert_eq!(
        counted,
        attacks - json["attacks_other_kinds"].as_u64().unwrap()
    );
    assert!(json["attacks"]["naive"]["count"].as_u64().unwrap() > 0);

    let history = &json["reauth_at_caught_99pct_targeted_by_history"];
    let buckets = history["buckets"].as_array().unwrap();
    let labels: Vec<&str> = buckets
        .iter()
        .map(|bucket| bucket["previous_logins"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["0", "1-4", "5-9", "10-19", "20-49", "50+"]);
    for bucket in buckets {
        for key in ["reauth_rate", "baseline_reauth_rate"] {
            let rate = &bucket[key];
            assert!(
                rate.is_null()
                    || rate
                        .as_f64()
                        .is_some_and(|rate| (0.0..=1.0).contains(&rate)),
                "{key} = {rate}"
            );
        }
    }

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("trained on"), "{stderr}");
    for name in [
        "roc.svg",
        "roc-naive.svg",
        "roc-vpn.svg",
        "roc-targeted.svg",
        "roc-stuffing.svg",
        "roc-spray.svg",
        "scores.svg",
        "scores-baseline.svg",
        "reauth-by-history.svg",
    ] {
        let path = plots.join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(text.starts_with("<svg"), "{name} does not start an SVG");
        assert!(text.trim_end().ends_with("</svg>"), "{name} is cut short");
        assert!(
            text.contains("xmlns=\"http://www.w3.org/2000/svg\""),
            "{name}"
        );
        assert!(stderr.contains(name), "{name} not listed: {stderr}");
    }
}

#[test]
fn evaluate_prints_text_table() {
    let fixture = fixture();
    let output = evaluate(&fixture.model, &fixture.test_history, &[]);
    assert_success(&output);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("ROC AUC, all attacks: model 0."), "{text}");
    for kind in KINDS {
        assert!(
            text.lines().any(|line| line.starts_with(kind)),
            "no row for {kind}:\n{text}"
        );
    }
    assert!(text.contains("caught@2%"), "{text}");
    assert!(
        text.contains("logins in the learning state step up by the rules file's learning policy"),
        "{text}"
    );
    assert!(text.contains("50+"), "{text}");
}

#[test]
fn training_file_gives_warning() {
    let fixture = fixture();
    let output = evaluate(&fixture.model, &fixture.train_history, &["--json"]);
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is the file the model was trained on"),
        "{stderr}"
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_rate(&json, "/auc");
}

fn assert_error(output: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "succeeded: {stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "`{part}` not in: {stderr}");
    }
}

#[test]
fn missing_model_is_an_error() {
    let fixture = fixture();
    let missing = fixture.dir.path().join("no-such-model.json");
    let output = evaluate(&missing, &fixture.test_history, &["--json"]);
    assert_error(
        &output,
        &["failed to read model artifact", "no-such-model.json"],
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn invalid_model_json_is_an_error() {
    let fixture = fixture();
    let invalid = fixture.dir.path().join("invalid-model.json");
    std::fs::write(&invalid, "{\"format_version\": 1, \"coefficients\": [").unwrap();
    let output = evaluate(&invalid, &fixture.test_history, &[]);
    assert_error(&output, &["invalid-model.json", "is not valid JSON"]);
}

#[test]
fn input_without_labels_is_an_error() {
    let fixture = fixture();
    let unlabelled = fixture.dir.path().join("unlabelled.csv");
    std::fs::write(
        &unlabelled,
        "timestamp,user_id,ip,login_successful\n\
         2026-01-05T08:00:00Z,alice,81.2.69.142,true\n",
    )
    .unwrap();
    let output = evaluate(&fixture.model, &unlabelled, &[]);
    assert_error(&output, &["unlabelled.csv", "no column `is_attack`"]);
}

#[test]
fn input_with_one_class_is_an_error() {
    let fixture = fixture();
    let legitimate_only = fixture.dir.path().join("legitimate-only.csv");
    std::fs::write(
        &legitimate_only,
        "timestamp,user_id,ip,login_successful,is_attack\n\
         2026-01-05T08:00:00Z,alice,81.2.69.142,true,false\n\
         2026-01-05T09:00:00Z,alice,81.2.69.142,true,false\n",
    )
    .unwrap();
    let output = evaluate(&fixture.model, &legitimate_only, &[]);
    assert_error(
        &output,
        &["legitimate-only.csv", "0 attacks and 2 legitimate logins"],
    );
}
