//! `riskgate train` on a small simulated history: the artifact loads and separates attacks.

#![cfg(feature = "train")]

mod common;

use std::process::Command;

use riskgate_models::artifact::ModelArtifact;
use riskgate_models::features::FEATURE_NAMES;

#[test]
fn train_fits_simulated_history() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.csv");
    let model = dir.path().join("model.json");
    let config = common::repo_root().join("riskgate.toml");
    let simulate = Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .args([
            "simulate", "--users", "150", "--days", "20", "--seed", "11", "--out",
        ])
        .arg(&history)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        simulate.status.success(),
        "{}",
        String::from_utf8_lossy(&simulate.stderr)
    );
    let train = Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .args(["train", "--input"])
        .arg(&history)
        .arg("--out")
        .arg(&model)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );

    let artifact = ModelArtifact::load(&model, &FEATURE_NAMES).unwrap();
    assert_eq!(
        artifact.feature_names,
        FEATURE_NAMES.map(String::from).to_vec()
    );
    let auc = artifact.metrics["holdout_roc_auc"].as_f64().unwrap();
    assert!(auc > 0.9, "holdout ROC AUC {auc}");
    assert!(
        artifact.training_rows > 1_000,
        "{} rows",
        artifact.training_rows
    );
}
