//! The HTTP API against a real server on a loopback port, with the shipped MaxMind test
//! databases, IP lists and rules, and a SQLite file in a temporary directory.

mod common;

use common::{Client, TestServer, login, reason};
use serde_json::{Value, json};

const LONDON: &str = "81.2.69.142";
const CHANGCHUN: &str = "175.16.199.0";
const MILTON: &str = "216.160.83.56";
const LINKOPING: &str = "89.160.20.112";
const NOT_IN_DATABASES: &str = "192.0.2.1";

/// Five verified logins from London on device A, an hour apart, starting at 09:00 UTC.
fn enrol_in_london(client: &Client, user: &str) {
    for hour in 9..14 {
        client.verified_login(login(
            user,
            LONDON,
            &format!("2026-03-02T{hour:02}:00:00Z"),
            "device-a",
        ));
    }
}

fn signal_contribution(decision: &Value, signal: &str) -> f64 {
    reason(decision, signal)
        .and_then(|reason| reason["contribution"].as_f64())
        .unwrap_or(0.0)
}

#[test]
fn travel_london_to_changchun_steps_up() {
    let server = TestServer::start();
    let client = server.client();
    client.verified_login(login("alice", LONDON, "2026-03-02T09:00:00Z", "device-a"));

    let decision = client.score(login(
        "alice",
        CHANGCHUN,
        "2026-03-02T09:30:00Z",
        "device-a",
    ));
    assert!(
        decision["decision"] == "step_up" || decision["decision"] == "deny",
        "{decision}"
    );
    for signal in ["impossible_travel", "new_country"] {
        let found =
            reason(&decision, signal).unwrap_or_else(|| panic!("no {signal} in {decision}"));
        assert_eq!(found["evaluable"], true, "{signal}: {found}");
        assert!(
            found["contribution"].as_f64().unwrap() > 0.0,
            "{signal}: {found}"
        );
    }
}

#[test]
fn known_place_and_device_allowed() {
    let server = TestServer::start();
    let client = server.client();
    enrol_in_london(&client, "bob");

    let decision = client.score(login("bob", LONDON, "2026-03-03T10:00:00Z", "device-a"));
    assert_eq!(decision["decision"], "allow", "{decision}");
    assert_eq!(decision["learning"], false);
    assert_eq!(decision["degraded"], false);
    assert!(decision["risk"].as_f64().unwrap() < 0.35, "{decision}");
    assert_eq!(decision["required_factors"], json!([]));
}

#[test]
fn learning_user_steps_up() {
    let server = TestServer::start();
    let client = server.client();
    let decision = client.score(login(
        "newcomer",
        LONDON,
        "2026-03-02T09:00:00Z",
        "device-a",
    ));
    assert_eq!(decision["learning"], true);
    assert_eq!(decision["decision"], "step_up", "{decision}");
    assert!(!decision["required_factors"].as_array().unwrap().is_empty());
}

#[test]
fn ten_failures_fire_user_failures() {
    let server = TestServer::start();
    let client = server.client();
    enrol_in_london(&client, "carol");
    for second in 0..10 {
        let attempt = client.score(login(
            "carol",
            LONDON,
            &format!("2026-03-03T10:00:{:02}Z", second * 5),
            "device-a",
        ));
        let event = client.event(&attempt, "login_failed");
        assert_eq!(event["failure_counted"], true);
    }
    let decision = client.score(login("carol", LONDON, "2026-03-03T10:01:00Z", "device-a"));
    let failures = reason(&decision, "user_failures").expect("user_failures reason");
    assert_eq!(failures["value"].as_f64().unwrap(), 1.0, "{failures}");
    assert!(failures["contribution"].as_f64().unwrap() > 0.0);
    assert_ne!(decision["decision"], "allow", "{decision}");
}

#[test]
fn one_ip_many_users_fires_ip_many_users() {
    let server = TestServer::start();
    let client = server.client();
    for index in 0..12 {
        let attempt = client.score(login(
            &format!("spray-target-{index}"),
            LINKOPING,
            &format!("2026-03-03T10:{index:02}:00Z"),
            "attacker-laptop",
        ));
        client.event(&attempt, "login_failed");
    }
    let decision = client.score(login(
        "victim",
        LINKOPING,
        "2026-03-03T10:30:00Z",
        "attacker-laptop",
    ));
    let many = reason(&decision, "ip_many_users").expect("ip_many_users reason");
    assert_eq!(many["value"].as_f64().unwrap(), 1.0, "{many}");
    assert!(signal_contribution(&decision, "ip_many_users") > 0.0);
    assert!(
        signal_contribution(&decision, "ip_failures") > 0.0,
        "{decision}"
    );
}

#[test]
fn unknown_ip_is_degraded_not_allowed() {
    let server = TestServer::start();
    let client = server.client();
    enrol_in_london(&client, "dave");

    let decision = client.score(login(
        "dave",
        NOT_IN_DATABASES,
        "2026-03-03T10:00:00Z",
        "device-a",
    ));
    assert_eq!(decision["degraded"], true, "{decision}");
    assert_ne!(decision["decision"], "allow", "{decision}");
    for signal in ["new_country", "new_city", "impossible_travel"] {
        let found =
            reason(&decision, signal).unwrap_or_else(|| panic!("no {signal} in {decision}"));
        assert_eq!(found["evaluable"], false, "{signal}: {found}");
        assert!(
            found["detail"]
                .as_str()
                .unwrap()
                .starts_with("not evaluable"),
            "{found}"
        );
    }
}

#[test]
fn trusted_private_network_is_not_degraded() {
    let server = TestServer::start();
    let client = server.client();
    enrol_in_london(&client, "erin");

    let decision = client.score(login(
        "erin",
        "10.20.30.40",
        "2026-03-03T10:00:00Z",
        "device-a",
    ));
    assert_eq!(decision["degraded"], false, "{decision}");
    let travel = reason(&decision, "impossible_travel").expect("impossible_travel reason");
    assert_eq!(travel["evaluable"], false);
}

#[test]
fn mapped_ipv6_equals_ipv4_and_user_ids_fold() {
    let server = TestServer::start();
    let client = server.client();
    enrol_in_london(&client, "Alice");

    let plain = client.score(login("alice", LONDON, "2026-03-03T10:00:00Z", "device-a"));
    let mapped = client.score(login(
        "ALICE",
        &format!("::ffff:{LONDON}"),
        "2026-03-03T10:00:00Z",
        "device-a",
    ));
    assert_eq!(plain["decision"], "allow", "{plain}");
    assert_eq!(plain["decision"], mapped["decision"]);
    assert_eq!(plain["risk"], mapped["risk"]);
    assert_eq!(plain["reasons"], mapped["reasons"]);
    assert_eq!(plain["learning"], false, "Alice and alice must be one user");
}

#[test]
fn bad_inputs_get_400_with_field() {
    let server = TestServer::start();
    let client = server.client();
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("/v1/score", "{\"user_id\": \"a\", ".into(), 400, None),
        ("/v1/score", json!({"ip": LONDON}).to_string(), 400, Some("user_id")),
        ("/v1/score", json!({"user_id": "a", "ip": "not-an-ip"}).to_string(), 400, Some("ip")),
        ("/v1/score", format!("{{\"user_id\":\"a\",\"ip\":\"{LONDON}\",\"rtt_ms\":1e999}}"), 400, Some("rtt_ms")),
        ("/v1/score", json!({"user_id": "a", "ip": LONDON, "rtt_ms": "NaN"}).to_string(), 400, Some("rtt_ms")),
        (
            "/v1/score",
            json!({"user_id": "a", "ip": LONDON, "keystrokes": {"events": [{"down_ms": "Infinity", "up_ms": 1}]}}).to_string(),
            400,
            Some("keystrokes.events[0].down_ms"),
        ),
        ("/v1/score", json!({"user_id": "a", "ip": LONDON, "timestamp": "yesterday"}).to_string(), 400, Some("timestamp")),
        (
            "/v1/events",
            json!({"decision_id": "6f0d2a43-8a7e-4d52-9d0e-2d1f4f2b9c11", "outcome": "maybe"}).to_string(),
            400,
            Some("outcome"),
        ),
        (
            "/v1/events",
            json!({"decision_id": "6f0d2a43-8a7e-4d52-9d0e-2d1f4f2b9c11", "outcome": "login_failed"}).to_string(),
            404,
            None,
        ),
    ];
    for (path, body, status, field) in cases {
        let reply = client.post_raw(path, "application/json", body.as_bytes());
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.text);
        let error = &reply.body["error"];
        assert!(error["code"].is_string(), "{}", reply.text);
        assert!(error["message"].is_string(), "{}", reply.text);
        match field {
            Some(field) => assert_eq!(error["field"], field, "{path} {body}: {}", reply.text),
            None => assert!(error["field"].is_null(), "{}", reply.text),
        }
    }

    let oversized = format!(
        "{{\"user_id\":\"a\",\"ip\":\"{LONDON}\",\"user_agent\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let reply = client.post_raw("/v1/score", "application/json", oversized.as_bytes());
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], "payload_too_large");

    let reply = client.post_raw("/v1/score", "text/plain", b"user_id=a");
    assert_eq!(reply.status, 415, "{}", reply.text);

    let reply = client.get("/v1/nothing-here");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["error"]["code"], "not_found");

    // The server keeps serving after every rejection.
    let decision = client.score(login(
        "after-errors",
        LONDON,
        "2026-03-03T10:00:00Z",
        "device-a",
    ));
    assert!(decision["decision_id"].is_string());
}

#[test]
fn decision_record_is_retrievable() {
    let server = TestServer::start();
    let client = server.client();
    let decision = client.score(login("frank", LONDON, "2026-03-03T10:00:00Z", "device-a"));
    client.event(&decision, "mfa_passed");
    let id = decision["decision_id"].as_str().unwrap();
    let reply = client.get(&format!("/v1/decisions/{id}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let record = &reply.body["record"];
    assert_eq!(record["decision_id"], id);
    assert_eq!(record["response"]["decision"], decision["decision"]);
    assert_eq!(record["rules"]["version"], decision["rules_version"]);
    assert!(record["attempt"]["inputs_digest"].as_str().unwrap().len() == 64);
    assert!(record["signals"].as_array().unwrap().len() >= 11);
    assert_eq!(reply.body["outcomes"][0]["outcome"], "mfa_passed");
    // The raw device id never appears in the record, only its digest.
    assert!(!reply.text.contains("device-a"), "{}", reply.text);

    let missing = client.get("/v1/decisions/6f0d2a43-8a7e-4d52-9d0e-2d1f4f2b9c11");
    assert_eq!(missing.status, 404);
    let invalid = client.get("/v1/decisions/not-a-uuid");
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.body["error"]["field"], "id");
}

#[test]
fn outcomes_after_deny_or_failure_do_not_teach() {
    let server = TestServer::start();
    let client = server.client();
    let attempt = client.score(login("gina", MILTON, "2026-03-03T10:00:00Z", "device-x"));
    client.event(&attempt, "mfa_failed");
    let event = client.event(&attempt, "login_succeeded");
    assert_eq!(event["profile_updated"], false, "{event}");
    let again = client.score(login("gina", MILTON, "2026-03-03T10:05:00Z", "device-x"));
    let device = reason(&again, "new_device").expect("new_device reason");
    assert_eq!(device["value"].as_f64().unwrap(), 1.0, "{device}");
}

#[test]
fn erase_user_removes_history() {
    let server = TestServer::start();
    let client = server.client();
    enrol_in_london(&client, "henry");
    let reply = client.delete("/v1/users/Henry");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["profiles"], 1);
    let decision = client.score(login("henry", LONDON, "2026-03-03T10:00:00Z", "device-a"));
    assert_eq!(decision["learning"], true);
}

#[test]
fn health_ready_and_metrics() {
    let server = TestServer::start();
    let client = server.client();
    assert_eq!(client.get("/healthz").status, 200);
    let ready = client.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert!(
        ready.body["rules_version"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    client.score(login("ivy", LONDON, "2026-03-03T10:00:00Z", "device-a"));
    client.score(login("ivy", LONDON, "2026-03-03T10:01:00Z", "device-a"));
    let metrics = client.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text
            .contains("riskgate_decisions_total{decision=\"step_up\"} 2"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("riskgate_score_duration_seconds_bucket"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("riskgate_cache_hit_ratio{cache=\"profile\"} 0.5"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("riskgate_http_requests_total{endpoint=\"score\",status=\"200\"} 2"),
        "{}",
        metrics.text
    );
}

#[test]
fn anonymous_ip_database_flags_anonymisers() {
    let server = TestServer::start_with(|config| {
        config.geo.anonymous = vec!["data/geoip/GeoIP2-Anonymous-IP-Test.mmdb".into()];
    });
    let client = server.client();
    // 81.2.69.0/24 is listed in MaxMind's Anonymous-IP test database as a Tor exit and VPN.
    let decision = client.score(login("jack", LONDON, "2026-03-03T10:00:00Z", "device-a"));
    let anonymous = reason(&decision, "anonymous_ip").expect("anonymous_ip reason");
    assert_eq!(anonymous["value"].as_f64().unwrap(), 1.0, "{anonymous}");
    assert!(
        anonymous["detail"]
            .as_str()
            .unwrap()
            .contains("Tor exit node"),
        "{anonymous}"
    );
}

#[test]
fn api_keys_enforce_scopes() {
    // SHA-256 of "score-key" and "admin-key".
    let score_digest = riskgate_engine::request::sha256_hex(b"score-key");
    let admin_digest = riskgate_engine::request::sha256_hex(b"admin-key");
    let server = TestServer::start_with(|config| {
        config.api_keys = vec![
            riskgate_engine::config::ApiKeyConfig {
                name: "crm".into(),
                sha256: score_digest,
                scopes: vec![
                    riskgate_engine::config::Scope::Score,
                    riskgate_engine::config::Scope::Events,
                ],
            },
            riskgate_engine::config::ApiKeyConfig {
                name: "ops".into(),
                sha256: admin_digest,
                scopes: vec![riskgate_engine::config::Scope::Admin],
            },
        ];
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = login("kate", LONDON, "2026-03-03T10:00:00Z", "device-a").to_string();
    let url = format!("{}/v1/score", server.base);
    let status = |key: Option<&str>| {
        let mut request = agent.post(&url).header("Content-Type", "application/json");
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        request.send(body.as_bytes()).unwrap().status().as_u16()
    };
    assert_eq!(status(None), 401);
    assert_eq!(status(Some("wrong")), 401);
    assert_eq!(status(Some("admin-key")), 403);
    assert_eq!(status(Some("score-key")), 200);
}

#[test]
fn reported_not_me_forces_step_up() {
    let server = TestServer::start();
    let client = server.client();
    enrol_in_london(&client, "nora");
    let intruder = client.score(login(
        "nora",
        LONDON,
        "2026-03-03T10:00:00Z",
        "intruder-laptop",
    ));
    assert_eq!(intruder["decision"], "allow", "{intruder}");
    client.event(&intruder, "login_succeeded");
    let report = client.event(&intruder, "reported_not_me");
    assert_eq!(report["profile_updated"], true, "{report}");

    let again = client.score(login(
        "nora",
        LONDON,
        "2026-03-03T10:05:00Z",
        "intruder-laptop",
    ));
    assert_eq!(again["decision"], "step_up", "{again}");
    assert_eq!(again["learning"], true, "{again}");
    let learning = reason(&again, "learning").expect("learning reason");
    assert!(
        learning["detail"]
            .as_str()
            .unwrap()
            .contains("reported as not the user's"),
        "{learning}"
    );
    // The user's own device stays known: the report removed only what the intruder added.
    let own = client.score(login("nora", LONDON, "2026-03-03T10:06:00Z", "device-a"));
    assert!(reason(&own, "new_device").is_none(), "{own}");
}

#[test]
fn protocol_edge_cases_get_json_errors() {
    let server = TestServer::start();
    let client = server.client();
    let future = client.post(
        "/v1/score",
        &json!({"user_id": "a", "ip": LONDON, "timestamp": "2099-06-01T12:00:00Z"}),
    );
    assert_eq!(future.status, 400, "{}", future.text);
    assert_eq!(future.body["error"]["field"], "timestamp");

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let gzip = agent
        .post(format!("{}/v1/score", server.base))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .send(&[0x1f, 0x8b, 0x08, 0x00][..])
        .unwrap();
    assert_eq!(gzip.status().as_u16(), 415);

    let head = agent
        .head(format!("{}/healthz", server.base))
        .call()
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);

    let decision = client.score(login("olga", LONDON, "2026-03-03T10:00:00Z", "device-a"));
    let upper = decision["decision_id"].as_str().unwrap().to_uppercase();
    let found = client.get(&format!("/v1/decisions/{upper}"));
    assert_eq!(found.status, 200, "{}", found.text);
    let event = client.post(
        "/v1/events",
        &json!({"decision_id": upper, "outcome": "mfa_passed"}),
    );
    assert_eq!(event.status, 200, "{}", event.text);

    let control = client.delete("/v1/users/%00");
    assert_eq!(control.status, 400, "{}", control.text);
}

#[test]
fn misspelt_list_name_stops_start() {
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(common::repo_root().join("rules/default.toml"))
        .unwrap()
        .replace("ip.in_list(\"tor_exit\")", "ip.in_list(\"tor_exitt\")");
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules).unwrap();
    let mut config = common::shipped_config(dir.path());
    config.rules = path;
    let error = match riskgate_engine::engine::Engine::open(&config) {
        Ok(_) => panic!("engine started with an unknown IP list name"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("`tor_exitt` (did you mean `tor_exit`?)"),
        "{error}"
    );
}
