//! Hot reload of the rules under load: `riskgate serve` on a loopback port
//! watches a copy of the default rules while several threads score logins.
//! Run with `--nocapture` to see the request counts and timings.

// Helpers outside `#[test]` functions fail the calling test on any setup error, which is
// what a test wants.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Client, login, spawn_server_with_config, write_config};
use serde_json::Value;

const WORKERS: usize = 4;
/// Upper bound of requests per worker, so the load stops on its own.
const MAX_REQUESTS_PER_WORKER: usize = 5_000;
/// Upper bound of the whole load.
const MAX_LOAD: Duration = Duration::from_secs(120);
/// Requests completed in each phase before the next change.
const PHASE_REQUESTS: usize = 250;
/// How long to wait for the watcher to pick up a change.
const PICKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// One score request as a worker saw it.
struct Sample {
    started: Instant,
    latency: Duration,
    /// `rules_version` of a 200, or the failure.
    result: Result<String, String>,
}

/// Scores logins from several threads until stopped or bounded.
struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(base: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let begun = Instant::now();
        let workers = (0..WORKERS)
            .map(|worker| {
                let stop = stop.clone();
                let samples = samples.clone();
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let url = format!("{base}/v1/score");
                std::thread::spawn(move || {
                    for request in 0..MAX_REQUESTS_PER_WORKER {
                        if stop.load(Ordering::Relaxed) || begun.elapsed() > MAX_LOAD {
                            break;
                        }
                        let body = login(
                            &format!("user-{worker}-{}", request % 20),
                            "81.2.69.142",
                            "2026-03-02T09:00:00Z",
                            "laptop",
                        );
                        let started = Instant::now();
                        let result = score(&agent, &url, &body);
                        let latency = started.elapsed();
                        samples.lock().unwrap().push(Sample {
                            started,
                            latency,
                            result,
                        });
                    }
                })
            })
            .collect();
        Load {
            stop,
            samples,
            workers,
        }
    }

    fn count(&self) -> usize {
        self.samples.lock().unwrap().len()
    }

    /// Waits until `more` further requests have completed.
    fn wait_for(&self, more: usize) {
        let target = self.count() + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.count() < target {
            assert!(Instant::now() < deadline, "the load stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.join().expect("worker finished");
        }
        Arc::try_unwrap(self.samples)
            .ok()
            .expect("workers are done")
            .into_inner()
            .unwrap()
    }
}

fn score(agent: &ureq::Agent, url: &str, body: &Value) -> Result<String, String> {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .map_err(|error| format!("transport: {error}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|error| format!("body: {error}"))?;
    if status != 200 {
        return Err(format!("status {status}: {text}"));
    }
    let value: Value = serde_json::from_str(&text).map_err(|error| format!("json: {error}"))?;
    value["rules_version"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no rules_version in {text}"))
}

/// Polls `/readyz` until `done` accepts it, and returns it with the time
/// it took.
fn poll_readyz(client: &Client, done: impl Fn(&Value) -> bool) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let ready = client.get("/readyz");
        assert_eq!(ready.status, 200, "{}", ready.text);
        if done(&ready.body) {
            return (ready.body, started.elapsed());
        }
        assert!(
            started.elapsed() < PICKUP_TIMEOUT,
            "the watcher did not pick up the change in {PICKUP_TIMEOUT:?}: {}",
            ready.text
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Saves `text` as an editor does: a temporary file renamed over `path`.
fn save_by_rename(path: &Path, text: &str) {
    let temporary = path.with_file_name(".rules.toml.swp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn metric(metrics: &str, name_and_labels: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn reload_under_load_swaps_atomically() {
    let directory = tempfile::tempdir().unwrap();
    let rules_dir = directory.path().join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    let rules_path = rules_dir.join("rules.toml");
    let original = std::fs::read_to_string(common::repo_root().join("rules/default.toml")).unwrap();
    std::fs::write(&rules_path, &original).unwrap();
    let config = write_config(directory.path(), &rules_path);
    let data_dir = directory.path().join("data");
    let (mut server, base) = spawn_server_with_config(&config, &data_dir);
    let client = Client::new(&base);
    let first_version = client.get("/readyz").body["rules_version"]
        .as_str()
        .unwrap()
        .to_owned();

    let load = Load::start(&base);
    load.wait_for(PHASE_REQUESTS);

    // (a) A valid edit, saved by rename: the new version is swapped in.
    let edited = original.replace("deny_at = 0.95", "deny_at = 0.96");
    assert_ne!(edited, original);
    let before_edit = Instant::now();
    save_by_rename(&rules_path, &edited);
    let (ready, edit_pickup) = poll_readyz(&client, |ready| {
        ready["rules_version"] != first_version.as_str()
    });
    let swapped_seen = Instant::now();
    let second_version = ready["rules_version"].as_str().unwrap().to_owned();
    assert!(ready["rules_reload_error"].is_null(), "{ready}");
    load.wait_for(PHASE_REQUESTS);

    // (b) An invalid file, written in place: refused, old version serves.
    let before_invalid = Instant::now();
    std::fs::write(
        &rules_path,
        format!("{edited}\n[[rule]]\nid = \"broken\"\nwhen = 'risk >'\nthen = \"deny\"\n"),
    )
    .unwrap();
    let (ready, invalid_pickup) =
        poll_readyz(&client, |ready| !ready["rules_reload_error"].is_null());
    let refusal_seen = Instant::now();
    assert_eq!(ready["rules_version"], second_version.as_str(), "{ready}");
    let error = ready["rules_reload_error"].as_str().unwrap();
    assert!(error.contains("rules.toml:"), "{error}");
    assert!(error.contains("invalid condition"), "{error}");
    load.wait_for(PHASE_REQUESTS);

    // (c) The original file back: reloaded, and the error cleared.
    let before_restore = Instant::now();
    save_by_rename(&rules_path, &original);
    let (ready, _) = poll_readyz(&client, |ready| {
        ready["rules_version"] == first_version.as_str()
    });
    let restore_seen = Instant::now();
    assert!(ready["rules_reload_error"].is_null(), "{ready}");
    load.wait_for(PHASE_REQUESTS);

    let samples = load.finish();
    let metrics = client.get("/metrics").text;
    server.kill().unwrap();
    server.wait().unwrap();

    let failures: Vec<&String> = samples
        .iter()
        .filter_map(|sample| sample.result.as_ref().err())
        .collect();
    let version_of = |sample: &Sample| sample.result.clone().unwrap_or_default();
    let before: Vec<&Sample> = samples.iter().filter(|s| s.started < before_edit).collect();
    let after_swap: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started > swapped_seen && s.started < before_invalid)
        .collect();
    let after_refusal: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started > refusal_seen && s.started < before_restore)
        .collect();
    let after_restore: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started > restore_seen)
        .collect();
    let during_swap: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started >= before_edit && s.started <= swapped_seen)
        .collect();
    let max_latency = samples.iter().map(|s| s.latency).max().unwrap_or_default();
    println!(
        "reload under load: {} requests from {WORKERS} threads, {} failed, max latency {max_latency:?}",
        samples.len(),
        failures.len()
    );
    println!(
        "valid edit seen in /readyz after {edit_pickup:?}; invalid file refused after {invalid_pickup:?}"
    );
    println!(
        "requests: {} before the edit, {} between the edit and its sight in /readyz, {} after the swap, {} after the refusal, {} after the restore",
        before.len(),
        during_swap.len(),
        after_swap.len(),
        after_refusal.len(),
        after_restore.len()
    );

    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(!before.is_empty());
    assert!(before.iter().all(|s| version_of(s) == first_version));
    assert!(
        during_swap
            .iter()
            .all(|s| version_of(s) == first_version || version_of(s) == second_version),
        "a request during the swap used an unknown version"
    );
    assert!(!after_swap.is_empty());
    assert!(
        after_swap.iter().all(|s| version_of(s) == second_version),
        "a request after the swap used an old version"
    );
    assert!(!after_refusal.is_empty());
    assert!(
        after_refusal
            .iter()
            .all(|s| version_of(s) == second_version),
        "a request after the refused reload did not use the last good version"
    );
    assert!(!after_restore.is_empty());
    assert!(
        after_restore.iter().all(|s| version_of(s) == first_version),
        "a request after the restore used an old version"
    );
    assert!(
        metric(
            &metrics,
            "riskgate_reloads_total{kind=\"rules\",result=\"ok\"}"
        ) >= 2,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "riskgate_reloads_total{kind=\"rules\",result=\"error\"}"
        ) >= 1,
        "{metrics}"
    );
}

#[test]
fn folder_watch_reloads_added_file() {
    let directory = tempfile::tempdir().unwrap();
    let folder = directory.path().join("rules.d");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        common::repo_root().join("rules/default.toml"),
        folder.join("10-default.toml"),
    )
    .unwrap();
    let mut config = common::shipped_config(&directory.path().join("data"));
    config.rules = folder.clone();
    let engine = Arc::new(riskgate_engine::engine::Engine::open(&config).unwrap());
    let watcher = riskgate_engine::reload::watch_rules(engine.clone()).unwrap();
    let first_version = engine.rules_version();

    // A hidden file, such as an editor's swap file, is not a rules file.
    std::fs::write(folder.join(".20-site.toml.swp"), "junk").unwrap();
    std::fs::write(folder.join("20-site.toml"), "[scoring]\ndeny_at = 0.9\n").unwrap();
    let started = Instant::now();
    while engine.rules_version() == first_version {
        assert!(
            started.elapsed() < PICKUP_TIMEOUT,
            "the added file was not picked up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let digest = riskgate_engine::rules::RuleSet::load(&folder)
        .unwrap()
        .version()
        .to_owned();
    assert_eq!(engine.rules_version(), digest);
    assert!(engine.rules_reload_error().is_none());
    drop(watcher);
}
