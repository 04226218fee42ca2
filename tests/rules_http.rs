//! Rules as the HTTP API shows them: shadow rules on live traffic, and the
//! rule trace of a recorded decision.

// Helpers outside `#[test]` functions fail the calling test on any setup error, which is
// what a test wants.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Client, TestServer, login, repo_root};
use serde_json::Value;

const LONDON: &str = "81.2.69.142";
const MILTON: &str = "216.160.83.56";
const HOSTING: &str = "67.43.156.0";
const TOR_EXIT: &str = "101.99.92.179";

const SHADOW_RULE: &str = r#"
[[rule]]
id = "shadow-deny-every-login"
description = "Trial: matches every login and must never decide"
when = 'risk >= 0.0'
then = "deny"
priority = 1000
mode = "shadow"
"#;

/// Copies the default rules into `directory`, with `extra` appended.
fn default_rules_with(directory: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("rules/default.toml"))
        .expect("read the default rules");
    let path = directory.join("rules.toml");
    std::fs::write(&path, format!("{text}{extra}")).expect("write the rules copy");
    path
}

/// Sends the same logins in the same order and returns every score
/// response: enrolment, then attempts that allow, step up, deny and hit the
/// file's own shadow rule.
fn traffic(client: &Client) -> Vec<Value> {
    let mut responses = Vec::new();
    for hour in 9..14 {
        let body = login(
            "alice",
            LONDON,
            &format!("2026-03-02T{hour:02}:00:00Z"),
            "laptop",
        );
        responses.push(client.verified_login(body));
    }
    let attempts = [
        login("alice", LONDON, "2026-03-03T10:00:00Z", "laptop"),
        login("alice", MILTON, "2026-03-03T10:20:00Z", "laptop"),
        login("alice", TOR_EXIT, "2026-03-03T11:00:00Z", "laptop"),
        login("alice", LONDON, "2026-03-03T12:00:00Z", "tablet"),
        login("bob", LONDON, "2026-03-03T12:00:00Z", "phone"),
    ];
    for body in attempts {
        responses.push(client.score(body));
    }
    let mut admin = login("carol", HOSTING, "2026-03-03T12:30:00Z", "laptop");
    admin["role"] = "admin".into();
    responses.push(client.score(admin));
    responses
}

/// The fields of a response that a shadow rule must not change.
fn outcome(response: &Value) -> Value {
    serde_json::json!({
        "decision": response["decision"],
        "risk": response["risk"],
        "level": response["level"],
        "required_factors": response["required_factors"],
        "reasons": response["reasons"],
        "matched_rules": response["matched_rules"],
    })
}

#[test]
fn shadow_deny_rule_never_decides() {
    let directory = tempfile::tempdir().unwrap();
    let plain_dir = directory.path().join("plain");
    let shadow_dir = directory.path().join("shadow");
    std::fs::create_dir_all(&plain_dir).unwrap();
    std::fs::create_dir_all(&shadow_dir).unwrap();
    let plain_rules = default_rules_with(&plain_dir, "");
    let shadow_rules = default_rules_with(&shadow_dir, SHADOW_RULE);
    let plain = TestServer::start_with(|config| config.rules = plain_rules);
    let shadow = TestServer::start_with(|config| config.rules = shadow_rules);

    let expected = traffic(&plain.client());
    let actual = traffic(&shadow.client());

    assert_eq!(expected.len(), actual.len());
    let decisions: Vec<&Value> = expected.iter().map(|r| &r["decision"]).collect();
    for kind in ["allow", "step_up", "deny"] {
        assert!(
            decisions.iter().any(|decision| **decision == kind),
            "the traffic has no {kind}: {decisions:?}"
        );
    }
    for (without, with) in expected.iter().zip(&actual) {
        assert_eq!(outcome(without), outcome(with), "{without}\n{with}");
        let listed = with["shadow_rules"].as_array().unwrap();
        assert!(
            listed.iter().any(|id| id == "shadow-deny-every-login"),
            "{with}"
        );
        let plain_listed = without["shadow_rules"].as_array().unwrap();
        assert!(
            !plain_listed
                .iter()
                .any(|id| id == "shadow-deny-every-login"),
            "{without}"
        );
    }
    // The file's own shadow rule fires for the administrator on both.
    let admin = actual.last().unwrap();
    assert!(
        admin["shadow_rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id == "shadow-deny-admin-hosting-network"),
        "{admin}"
    );

    let metrics = shadow.client().get("/metrics").text;
    let line = format!(
        "riskgate_rule_hits_total{{mode=\"shadow\",rule=\"shadow-deny-every-login\"}} {}",
        actual.len()
    );
    assert!(
        metrics.lines().any(|l| l == line),
        "no `{line}` in\n{metrics}"
    );
    let plain_metrics = plain.client().get("/metrics").text;
    assert!(
        !plain_metrics.contains("shadow-deny-every-login"),
        "{plain_metrics}"
    );
}

#[test]
fn decision_record_holds_rule_trace() {
    let directory = tempfile::tempdir().unwrap();
    let rules = default_rules_with(directory.path(), SHADOW_RULE);
    let server = TestServer::start_with(|config| config.rules = rules);
    let client = server.client();
    for hour in 9..14 {
        let body = login(
            "dave",
            LONDON,
            &format!("2026-03-02T{hour:02}:00:00Z"),
            "laptop",
        );
        client.verified_login(body);
    }
    let decision = client.score(login("dave", TOR_EXIT, "2026-03-03T10:00:00Z", "laptop"));
    assert_eq!(decision["decision"], "deny", "{decision}");

    let id = decision["decision_id"].as_str().unwrap();
    let reply = client.get(&format!("/v1/decisions/{id}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let rules = &reply.body["record"]["rules"];
    assert_eq!(rules["decided_by"], "rule:deny-tor-exit");
    let trace: Vec<(String, String, String, bool)> = rules["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["id"].as_str().unwrap().to_owned(),
                entry["mode"].as_str().unwrap().to_owned(),
                entry["outcome"].as_str().unwrap().to_owned(),
                entry["decided"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected = [
        (
            "lower-risk-trusted-known-device",
            "enforce",
            "not_matched",
            false,
        ),
        ("deny-tor-exit", "enforce", "matched", true),
        ("step-up-impossible-travel", "enforce", "skipped", false),
        ("step-up-anonymous-ip", "enforce", "skipped", false),
        ("step-up-admin-new-device", "enforce", "skipped", false),
        ("step-up-repeated-failures", "enforce", "skipped", false),
        (
            "shadow-deny-admin-hosting-network",
            "shadow",
            "skipped",
            false,
        ),
        ("shadow-deny-every-login", "shadow", "matched", false),
    ]
    .map(|(id, mode, outcome, decided)| {
        (id.to_owned(), mode.to_owned(), outcome.to_owned(), decided)
    });
    assert_eq!(trace, expected);

    let entries = rules["trace"].as_array().unwrap();
    assert_eq!(entries[2]["detail"], "already_decided");
    assert_eq!(entries[6]["detail"], "role_filter");
    assert_eq!(
        rules["shadow"],
        serde_json::json!([{"id": "shadow-deny-every-login", "action": "deny"}])
    );
}
