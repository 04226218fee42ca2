//! Offline replay and the HTTP service compute the same feature vectors and risks.
//!
//! A small simulated history is replayed twice with the same trained model in force. The
//! first replay is the offline one that `train` and `evaluate` use. The second goes login by
//! login through `POST /v1/score` and `POST /v1/events` of a server on a loopback port, and
//! reads each decision record back with `GET /v1/decisions/{id}`.

#![cfg(feature = "train")]
// The helpers below fail the calling test on a malformed response, as a test wants.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use riskgate_engine::model::RiskModel;
use riskgate_engine::replay::offline::{replay, score_request};
use riskgate_engine::replay::{Decision, outcomes_for};
use riskgate_engine::store::sqlite::Durability;
use riskgate_models::features::{FEATURE_NAMES, FeatureVector};
use riskgate_models::train::{Format, read_logins};
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn run(args: &[&std::ffi::OsStr]) {
    let output = Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "riskgate {:?} failed: {}",
        args,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads the feature vector out of a stored decision record.
fn recorded_features(record: &Value) -> FeatureVector {
    let mut features = FeatureVector::default();
    for signal in record["signals"].as_array().unwrap() {
        let name = signal["name"].as_str().unwrap();
        let known = features.set(
            name,
            signal["value"].as_f64().unwrap(),
            signal["evaluable"].as_bool().unwrap(),
        );
        assert!(known, "unknown signal `{name}` in a decision record");
    }
    features
}

#[test]
fn offline_replay_matches_http() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.csv");
    let model_path = dir.path().join("model.json");
    let config_path = common::repo_root().join("riskgate.toml");
    run(&[
        "simulate".as_ref(),
        "--users".as_ref(),
        "40".as_ref(),
        "--days".as_ref(),
        "12".as_ref(),
        "--seed".as_ref(),
        "21".as_ref(),
        "--out".as_ref(),
        history.as_os_str(),
        "--config".as_ref(),
        config_path.as_os_str(),
    ]);
    run(&[
        "train".as_ref(),
        "--input".as_ref(),
        history.as_os_str(),
        "--out".as_ref(),
        model_path.as_os_str(),
        "--config".as_ref(),
        config_path.as_os_str(),
    ]);

    let records = read_logins(&history, Format::Riskgate).unwrap();
    let model = RiskModel::load(&model_path).unwrap();
    let offline_config = common::shipped_config(dir.path());
    let offline = replay(&offline_config, &records, Some(model.clone())).unwrap();
    assert!(
        offline.logins.len() > 200,
        "{} logins",
        offline.logins.len()
    );

    let server = common::TestServer::start_with(|config| {
        config.model = Some(model_path.clone());
        config.store.durability = Durability::Normal;
    });
    let client = server.client();
    let mut offline_logins = offline.logins.iter().peekable();
    let mut compared = 0;
    let mut evaluable_freeman = 0;
    for (index, record) in records.iter().enumerate() {
        let body = serde_json::to_value(score_request(record)).unwrap();
        let reply = client.post("/v1/score", &body);
        let offline_login = offline_logins.next_if(|login| login.record == index);
        let Some(offline_login) = offline_login else {
            assert_eq!(
                reply.status, 400,
                "row {} was rejected offline but not over HTTP: {}",
                record.row, reply.text
            );
            continue;
        };
        assert_eq!(reply.status, 200, "row {}: {}", record.row, reply.text);
        let response = reply.body;
        let decision = Decision::parse(response["decision"].as_str().unwrap()).unwrap();
        for outcome in outcomes_for(decision, record.login_successful, record.is_attack) {
            let event = serde_json::json!({
                "decision_id": response["decision_id"],
                "outcome": outcome.as_str(),
            });
            let reply = client.post("/v1/events", &event);
            assert_eq!(reply.status, 200, "row {}: {}", record.row, reply.text);
        }

        let id = response["decision_id"].as_str().unwrap();
        let stored = client.get(&format!("/v1/decisions/{id}"));
        assert_eq!(stored.status, 200, "{}", stored.text);
        let online = recorded_features(&stored.body["record"]);
        for (position, name) in FEATURE_NAMES.iter().enumerate() {
            assert_eq!(
                online.evaluable[position], offline_login.features.evaluable[position],
                "row {}: `{name}` evaluable differs",
                record.row
            );
            let difference =
                (online.values[position] - offline_login.features.values[position]).abs();
            assert!(
                difference <= TOLERANCE,
                "row {}: `{name}` is {} over HTTP and {} offline",
                record.row,
                online.values[position],
                offline_login.features.values[position]
            );
        }
        let online_risk = stored.body["record"]["model"]["risk"].as_f64().unwrap();
        let offline_risk = model.predict(&offline_login.features).risk;
        assert!(
            (online_risk - offline_risk).abs() <= TOLERANCE,
            "row {}: risk {online_risk} over HTTP, {offline_risk} offline",
            record.row
        );
        assert_eq!(
            stored.body["record"]["model"]["version"],
            model.version(),
            "row {}",
            record.row
        );
        if online.get("freeman_network").is_some() {
            evaluable_freeman += 1;
        }
        compared += 1;
    }
    assert!(
        offline_logins.next().is_none(),
        "offline replayed rows that HTTP did not"
    );
    assert_eq!(compared, offline.logins.len());
    assert!(
        evaluable_freeman * 2 > compared,
        "only {evaluable_freeman} of {compared} logins had Freeman features"
    );
}
