//! Helpers shared by the integration tests: a real server on a loopback port, and a client.

// Test helpers fail the calling test on any setup error, which is what a test wants.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;

use riskgate_engine::config::Config;
use riskgate_engine::engine::Engine;
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads the shipped configuration with its data directory moved to `data_dir`.
pub fn shipped_config(data_dir: &Path) -> Config {
    let mut config = Config::load(&repo_root().join("riskgate.toml")).expect("riskgate.toml loads");
    config.data_dir = data_dir.to_path_buf();
    config
}

/// A riskgate server running in this process on a free loopback port.
pub struct TestServer {
    pub base: String,
    pub data_dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts the shipped configuration, changed by `adjust`, on a fresh data directory.
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let mut config = shipped_config(data_dir.path());
        adjust(&mut config);
        let engine = Arc::new(Engine::open(&config).expect("engine starts"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = riskgate_engine::server::build(engine, &config, listener)
                    .expect("server builds");
                sender.send(server.handle()).expect("send the handle");
                server.await.expect("server runs");
            });
        });
        let handle = receiver.recv().expect("server handle");
        TestServer {
            base,
            data_dir,
            handle,
            thread: Some(thread),
        }
    }

    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)))
            .join()
            .ok();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// A blocking HTTP client that returns every status instead of failing on 4xx and 5xx.
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Client {
            base: base.to_owned(),
            agent,
        }
    }

    fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.expect("HTTP request completes");
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .expect("body reads");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        Client::reply(
            self.agent
                .post(format!("{}{}", self.base, path))
                .header("Content-Type", content_type)
                .send(body),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, "application/json", body.to_string().as_bytes())
    }

    pub fn get(&self, path: &str) -> Reply {
        Client::reply(self.agent.get(format!("{}{}", self.base, path)).call())
    }

    pub fn delete(&self, path: &str) -> Reply {
        Client::reply(self.agent.delete(format!("{}{}", self.base, path)).call())
    }

    /// Scores a login and returns the response body, failing the test on a non-200.
    pub fn score(&self, body: Value) -> Value {
        let reply = self.post("/v1/score", &body);
        assert_eq!(reply.status, 200, "score failed: {}", reply.text);
        reply.body
    }

    /// Reports an outcome, failing the test on a non-200.
    pub fn event(&self, decision: &Value, outcome: &str) -> Value {
        let body = serde_json::json!({"decision_id": decision["decision_id"], "outcome": outcome});
        let reply = self.post("/v1/events", &body);
        assert_eq!(reply.status, 200, "event failed: {}", reply.text);
        reply.body
    }

    /// Scores a login and reports it as verified: passed MFA when asked, then succeeded.
    pub fn verified_login(&self, body: Value) -> Value {
        let decision = self.score(body);
        assert_ne!(
            decision["decision"], "deny",
            "verified login was denied: {decision}"
        );
        if decision["decision"] == "step_up" {
            self.event(&decision, "mfa_passed");
        }
        let event = self.event(&decision, "login_succeeded");
        assert_eq!(
            event["profile_updated"], true,
            "login was not learned: {event}"
        );
        decision
    }
}

/// Returns the reason of `signal` in a score response.
pub fn reason<'a>(decision: &'a Value, signal: &str) -> Option<&'a Value> {
    decision["reasons"]
        .as_array()?
        .iter()
        .find(|reason| reason["signal"] == signal)
}

/// Writes a copy of the shipped configuration into `directory` whose rules are `rules` and
/// whose data files are the repository's, and returns its path.
pub fn write_config(directory: &Path, rules: &Path) -> PathBuf {
    write_config_with_model(directory, rules, None)
}

/// Writes a configuration as [`write_config`] does, with `model = "<model>"` when a model
/// artifact is given.
pub fn write_config_with_model(directory: &Path, rules: &Path, model: Option<&Path>) -> PathBuf {
    let shipped = std::fs::read_to_string(repo_root().join("riskgate.toml")).expect("read config");
    let rules_line = "rules = \"rules/default.toml\"";
    assert!(shipped.contains(rules_line), "the shipped rules line moved");
    assert!(shipped.contains("\"data/"), "the shipped data paths moved");
    let data = format!("\"{}/data/", repo_root().display());
    // The model key goes right after the rules key, before the first table.
    let mut top_level = format!("rules = \"{}\"", rules.display());
    if let Some(model) = model {
        top_level.push_str(&format!("\nmodel = \"{}\"", model.display()));
    }
    let text = shipped
        .replace(rules_line, &top_level)
        .replace("\"data/", &data);
    let path = directory.join("riskgate.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Builds a login body at `timestamp` from `ip` with device `device`.
pub fn login(user: &str, ip: &str, timestamp: &str, device: &str) -> Value {
    serde_json::json!({
        "user_id": user,
        "ip": ip,
        "timestamp": timestamp,
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        "role": "physician",
        "app": "crm",
        "device": {"id": device, "attributes": {"screen": "1920x1080", "tz": "Europe/London"}},
    })
}

/// Starts `riskgate serve` on a free port and returns the process and its base URL.
pub fn spawn_server(data_dir: &std::path::Path) -> (Child, String) {
    spawn_server_with_config(&repo_root().join("riskgate.toml"), data_dir)
}

/// Builds the `riskgate serve` command for `config` and `data_dir` on a free loopback port,
/// logging warnings and errors only.
pub fn serve_command(config: &Path, data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_riskgate"));
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn");
    command
}

/// Starts `riskgate serve` with the configuration file `config` on a free port.
pub fn spawn_server_with_config(config: &Path, data_dir: &Path) -> (Child, String) {
    let mut child = serve_command(config, data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("riskgate serve starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line `{line}`"))
        .to_owned();
    (child, base)
}
