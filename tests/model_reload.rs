//! A trained model artifact in force: `riskgate serve` on a loopback port scores with it,
//! records its version, swaps in a changed file, keeps the last good model when a new file
//! is invalid, and reloads it on `POST /admin/reload`. In-process engines check that a rules
//! reload keeps the artifact and that offline callers can put a model in force.

// Helpers outside `#[test]` functions fail the calling test on any setup error, which is
// what a test wants.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use common::{Client, login, spawn_server_with_config, write_config_with_model};
use riskgate_engine::engine::Engine;
use riskgate_engine::geo::GeoIp;
use riskgate_engine::iplists::IpLists;
use riskgate_engine::model::RiskModel;
use riskgate_engine::store::memory::MemoryStore;
use riskgate_models::artifact::{FORMAT_VERSION, ModelArtifact, PlattCalibration};
use riskgate_models::freeman::GlobalTables;
use serde_json::Value;

/// How long to wait for the watcher to pick up a change.
const PICKUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a server with an invalid artifact may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds a small artifact whose features are in an order other than `FEATURE_NAMES`, so a
/// lookup by position instead of by name would give other contributions.
fn artifact(intercept: f64) -> ModelArtifact {
    let mut artifact = ModelArtifact {
        format_version: FORMAT_VERSION,
        model_version: String::new(),
        created_at: DateTime::from_timestamp(1_770_000_000, 0).unwrap(),
        feature_names: vec!["learning".into(), "new_country".into(), "new_device".into()],
        intercept,
        coefficients: vec![0.5, 2.0, 1.5],
        calibration: PlattCalibration { a: 0.8, b: 0.1 },
        freeman: GlobalTables::default(),
        training_data_sha256: "ef".repeat(32),
        training_rows: 100,
        metrics: serde_json::json!({}),
    };
    artifact.model_version = artifact.derive_model_version();
    artifact
}

/// Writes an artifact that names a feature this build does not compute, in place.
fn write_unknown_feature_artifact(path: &Path) {
    let mut json = serde_json::to_value(artifact(-1.0)).unwrap();
    json["feature_names"] = serde_json::json!(["learning", "new_country", "shoe_size"]);
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

/// Copies the default rules into `directory/rules/` and returns the copy.
fn copy_rules(directory: &Path) -> PathBuf {
    let rules_dir = directory.join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    let rules_path = rules_dir.join("rules.toml");
    std::fs::copy(common::repo_root().join("rules/default.toml"), &rules_path).unwrap();
    rules_path
}

/// Returns `directory/models/login.json`, with its folder created.
fn model_path(directory: &Path) -> PathBuf {
    let models_dir = directory.join("models");
    std::fs::create_dir_all(&models_dir).unwrap();
    models_dir.join("login.json")
}

/// A server process that is killed when the test ends, also when an assertion fails.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Polls `/readyz` until `done` accepts it.
fn poll_readyz(client: &Client, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let ready = client.get("/readyz");
        assert_eq!(ready.status, 200, "{}", ready.text);
        if done(&ready.body) {
            return ready.body;
        }
        assert!(
            started.elapsed() < PICKUP_TIMEOUT,
            "{what} not seen in {PICKUP_TIMEOUT:?}: {}",
            ready.text
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(metrics: &str, name_and_labels: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

const RULES_OK: &str = "riskgate_reloads_total{kind=\"rules\",result=\"ok\"}";
const MODEL_OK: &str = "riskgate_reloads_total{kind=\"model\",result=\"ok\"}";
const MODEL_ERROR: &str = "riskgate_reloads_total{kind=\"model\",result=\"error\"}";

/// Scores a new user's login and returns the response.
fn score(client: &Client, user: &str) -> Value {
    client.score(login(user, "81.2.69.142", "2026-03-02T09:00:00Z", "laptop"))
}

/// Checks the model section of a stored decision against `artifact`, computed from the
/// signals the same record holds.
fn assert_record_model(record: &Value, artifact: &ModelArtifact) {
    let model = &record["model"];
    assert_eq!(model["version"], artifact.model_version.as_str(), "{model}");
    let signals = record["signals"].as_array().expect("signals in the record");
    let expected = artifact.predict_named(|name| {
        signals
            .iter()
            .find(|signal| signal["name"] == name)
            .filter(|signal| signal["evaluable"] == true)
            .and_then(|signal| signal["value"].as_f64())
    });
    let logit = model["logit"].as_f64().expect("logit in the record");
    let risk = model["risk"].as_f64().expect("risk in the record");
    let calibrated_logit = model["calibrated_logit"]
        .as_f64()
        .expect("calibrated_logit");
    assert!((logit - expected.logit).abs() < 1e-9, "{model}");
    assert!((risk - expected.risk).abs() < 1e-9, "{model}");
    let calibration = artifact.calibration;
    let expected_calibrated = calibration.a * expected.logit + calibration.b;
    assert!(
        (calibrated_logit - expected_calibrated).abs() < 1e-9,
        "{model}"
    );
}

#[test]
fn served_model_reloads_and_rejects_invalid() {
    let directory = tempfile::tempdir().unwrap();
    let rules_path = copy_rules(directory.path());
    let model_path = model_path(directory.path());
    let first = artifact(-3.0);
    let second = artifact(-2.0);
    assert_ne!(first.model_version, second.model_version);
    first.save(&model_path).unwrap();
    let config = write_config_with_model(directory.path(), &rules_path, Some(&model_path));
    let (server, base) = spawn_server_with_config(&config, &directory.path().join("data"));
    let _server = Server(server);
    let client = Client::new(&base);

    // At start: the artifact is in force and the decision records its version and risk.
    let ready = client.get("/readyz").body;
    assert_eq!(
        ready["model_version"],
        first.model_version.as_str(),
        "{ready}"
    );
    assert!(ready["model_reload_error"].is_null(), "{ready}");
    let rules_version = ready["rules_version"].as_str().unwrap().to_owned();
    let decision = score(&client, "alice");
    assert_eq!(decision["model_version"], first.model_version.as_str());
    assert_eq!(decision["rules_version"], rules_version.as_str());
    let id = decision["decision_id"].as_str().unwrap();
    let stored = client.get(&format!("/v1/decisions/{id}"));
    assert_eq!(stored.status, 200, "{}", stored.text);
    let record = &stored.body["record"];
    assert_eq!(
        record["response"]["model_version"],
        first.model_version.as_str()
    );
    assert_record_model(record, &first);
    // The reasons carry the artifact's coefficients, mapped by name.
    let new_device = common::reason(&decision, "new_device").expect("new_device reason");
    assert_eq!(new_device["contribution"], 1.5, "{decision}");
    let new_city = common::reason(&decision, "new_city");
    assert!(
        new_city.is_none_or(|reason| reason["contribution"] == 0.0),
        "{decision}"
    );

    // (a) A new valid artifact, saved by rename: swapped in without a rules reload.
    second.save(&model_path).unwrap();
    let ready = poll_readyz(&client, "the second model", |ready| {
        ready["model_version"] == second.model_version.as_str()
    });
    assert!(ready["model_reload_error"].is_null(), "{ready}");
    assert_eq!(ready["rules_version"], rules_version.as_str());
    let decision = score(&client, "bob");
    assert_eq!(decision["model_version"], second.model_version.as_str());
    let id = decision["decision_id"].as_str().unwrap();
    let record = client.get(&format!("/v1/decisions/{id}")).body["record"].clone();
    assert_record_model(&record, &second);
    let metrics = client.get("/metrics").text;
    assert!(metric(&metrics, MODEL_OK) >= 1, "{metrics}");
    assert_eq!(metric(&metrics, RULES_OK), 0, "{metrics}");

    // (b) An artifact with a feature this build does not compute, written in place: rejected,
    // and the second model keeps serving.
    write_unknown_feature_artifact(&model_path);
    let ready = poll_readyz(&client, "the model reload error", |ready| {
        !ready["model_reload_error"].is_null()
    });
    assert_eq!(ready["model_version"], second.model_version.as_str());
    let error = ready["model_reload_error"].as_str().unwrap();
    assert!(error.contains("login.json"), "{error}");
    assert!(error.contains("`shoe_size`"), "{error}");
    assert!(ready["rules_reload_error"].is_null(), "{ready}");
    let decision = score(&client, "carol");
    assert_eq!(decision["model_version"], second.model_version.as_str());
    let metrics = client.get("/metrics").text;
    assert!(metric(&metrics, MODEL_ERROR) >= 1, "{metrics}");

    // (c) POST /admin/reload while the file is still invalid: the model is rejected, and the
    // valid rules are reloaded.
    let reply = client.post("/admin/reload", &serde_json::json!({}));
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.body["error"]["code"], "invalid_model",
        "{}",
        reply.text
    );
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`shoe_size`"), "{message}");
    assert!(!message.contains("rules reload rejected"), "{message}");
    let decision = score(&client, "dave");
    assert_eq!(decision["model_version"], second.model_version.as_str());
    let metrics = client.get("/metrics").text;
    assert_eq!(metric(&metrics, RULES_OK), 1, "{metrics}");
    let ready = client.get("/readyz").body;
    assert!(ready["rules_reload_error"].is_null(), "{ready}");
    assert!(!ready["model_reload_error"].is_null(), "{ready}");

    // (d) The first artifact back: reloaded, and the error cleared.
    first.save(&model_path).unwrap();
    let ready = poll_readyz(&client, "the first model again", |ready| {
        ready["model_version"] == first.model_version.as_str()
    });
    assert!(ready["model_reload_error"].is_null(), "{ready}");

    // (e) POST /admin/reload with valid files reloads the rules and the model.
    let before = client.get("/metrics").text;
    let reply = client.post("/admin/reload", &serde_json::json!({}));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["model_version"], first.model_version.as_str());
    assert_eq!(reply.body["rules_version"], rules_version.as_str());
    let after = client.get("/metrics").text;
    assert_eq!(
        metric(&after, RULES_OK),
        metric(&before, RULES_OK) + 1,
        "{after}"
    );
    assert!(
        metric(&after, MODEL_OK) > metric(&before, MODEL_OK),
        "{after}"
    );
    let decision = score(&client, "erin");
    assert_eq!(decision["model_version"], first.model_version.as_str());
}

/// Starts `riskgate serve` with `config`, expects it to exit with an error before
/// `EXIT_TIMEOUT`, and returns its standard error.
fn serve_expecting_failure(config: &Path, data_dir: &Path) -> String {
    let mut child = common::serve_command(config, data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("riskgate serve starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > EXIT_TIMEOUT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("riskgate serve kept running with an invalid model artifact");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

#[test]
fn invalid_model_stops_start() {
    let directory = tempfile::tempdir().unwrap();
    let rules_path = copy_rules(directory.path());
    let model_path = model_path(directory.path());
    let data_dir = directory.path().join("data");
    let config = write_config_with_model(directory.path(), &rules_path, Some(&model_path));

    write_unknown_feature_artifact(&model_path);
    let stderr = serve_expecting_failure(&config, &data_dir);
    assert!(stderr.contains("login.json"), "{stderr}");
    assert!(stderr.contains("`shoe_size`"), "{stderr}");

    std::fs::remove_file(&model_path).unwrap();
    let stderr = serve_expecting_failure(&config, &data_dir);
    assert!(stderr.contains("login.json"), "{stderr}");
    assert!(stderr.contains("failed to read model artifact"), "{stderr}");
}

#[test]
fn rules_reload_keeps_trained_model() {
    let directory = tempfile::tempdir().unwrap();
    let rules_path = copy_rules(directory.path());
    let model_path = model_path(directory.path());
    let trained = artifact(-3.0);
    trained.save(&model_path).unwrap();
    let mut config = common::shipped_config(&directory.path().join("data"));
    config.rules = rules_path.clone();
    config.model = Some(model_path.clone());
    let engine = Engine::open(&config).unwrap();
    assert_eq!(engine.model_version(), trained.model_version);
    assert_eq!(engine.model_path(), Some(model_path.as_path()));

    let edited = std::fs::read_to_string(&rules_path)
        .unwrap()
        .replace("deny_at = 0.95", "deny_at = 0.96");
    std::fs::write(&rules_path, edited).unwrap();
    let first_rules = engine.rules_version();
    let rules_version = engine.reload_rules().unwrap();
    assert_ne!(rules_version, first_rules);
    assert_eq!(engine.model_version(), trained.model_version);

    // A rejected model reload leaves the rules alone, and the next valid file clears the error.
    write_unknown_feature_artifact(&model_path);
    assert!(engine.reload_model().is_err());
    assert_eq!(engine.model_version(), trained.model_version);
    assert_eq!(engine.rules_version(), rules_version);
    assert!(engine.model_reload_error().is_some());
    assert!(engine.rules_reload_error().is_none());
    let retrained = artifact(-1.0);
    retrained.save(&model_path).unwrap();
    assert_eq!(engine.reload_model().unwrap(), retrained.model_version);
    assert!(engine.model_reload_error().is_none());
    assert_eq!(engine.rules_version(), rules_version);
}

#[test]
fn weights_follow_rules_without_model() {
    let directory = tempfile::tempdir().unwrap();
    let rules_path = copy_rules(directory.path());
    let mut config = common::shipped_config(&directory.path().join("data"));
    config.rules = rules_path.clone();
    let engine = Engine::open(&config).unwrap();
    assert_eq!(engine.model_path(), None);
    assert_eq!(
        engine.model_version(),
        format!("weights@{}", engine.rules_version())
    );
    assert_eq!(engine.model().global_tables(), &GlobalTables::default());

    let edited = std::fs::read_to_string(&rules_path)
        .unwrap()
        .replace("deny_at = 0.95", "deny_at = 0.96");
    std::fs::write(&rules_path, edited).unwrap();
    let rules_version = engine.reload_rules().unwrap();
    assert_eq!(engine.model_version(), format!("weights@{rules_version}"));
    // Without an artifact file a model reload reads nothing.
    assert_eq!(
        engine.reload_model().unwrap(),
        format!("weights@{rules_version}")
    );
}

#[test]
fn given_model_overrides_config() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = common::shipped_config(&directory.path().join("data"));
    // The configured file does not exist: a given model means it is never read.
    config.model = Some(directory.path().join("missing.json"));
    let trained = artifact(-3.0);
    let model = RiskModel::trained(Arc::new(trained.clone())).unwrap();
    let geo = GeoIp::open(&config.geo, &config.base_dir).unwrap();
    let lists = IpLists::open(&config.iplists, &config.base_dir).unwrap();
    let store = Arc::new(MemoryStore::new(config.keystroke, 100, true));
    let engine = Engine::with_store_and_model(&config, geo, lists, store, Some(model)).unwrap();
    assert_eq!(engine.model_path(), None);

    let body = login("alice", "81.2.69.142", "2026-03-02T09:00:00Z", "laptop");
    let response = engine.score_value(&body).unwrap();
    assert_eq!(response["model_version"], trained.model_version.as_str());
    let id = response["decision_id"].as_str().unwrap();
    let stored = engine.decision(id).unwrap();
    assert_record_model(&stored.record, &trained);

    let reloaded = engine.reload().unwrap();
    assert_eq!(reloaded.model_version, trained.model_version);
    assert_eq!(engine.model_version(), trained.model_version);
}
