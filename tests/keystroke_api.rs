//! The keystroke signal through the HTTP API, with real typing samples from IIITBh-Big:
//! a user enrols with their own samples through verified logins, then is scored with their
//! own later samples and with another subject's.

// The fixture helpers below fail the calling test on a bad fixture, as a test wants.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, TestServer, login, reason, repo_root};
use riskgate_models::keystroke::{Dataset, TimingVector, events_from_cmu_row};
use serde_json::{Value, json};

const LONDON: &str = "81.2.69.142";

fn iiitbh() -> Dataset {
    Dataset::read_csv(&repo_root().join("data/keystroke/IIITBh-Big.csv")).unwrap()
}

fn events_json(sample: &TimingVector) -> Value {
    let events = events_from_cmu_row(sample.values()).unwrap();
    json!(
        events
            .iter()
            .map(|event| json!({"down_ms": event.down_ms, "up_ms": event.up_ms}))
            .collect::<Vec<_>>()
    )
}

fn timestamp(index: usize) -> String {
    let day = 1 + index / 8;
    let hour = 9 + index % 8;
    format!("2026-03-{day:02}T{hour:02}:00:00Z")
}

fn login_with_keystrokes(user: &str, when: &str, events: Option<Value>) -> Value {
    let mut body = login(user, LONDON, when, "device-a");
    if let Some(events) = events {
        body["keystrokes"] = json!({ "events": events });
    }
    body
}

/// Enrols `samples` as verified logins of `user`.
fn enrol(client: &Client, user: &str, samples: &[TimingVector]) {
    for (index, sample) in samples.iter().enumerate() {
        client.verified_login(login_with_keystrokes(
            user,
            &timestamp(index),
            Some(events_json(sample)),
        ));
    }
}

fn keystroke_contribution(decision: &Value) -> f64 {
    reason(decision, "keystroke_anomaly")
        .filter(|reason| reason["evaluable"] == true)
        .map_or(0.0, |reason| reason["contribution"].as_f64().unwrap())
}

/// Every subject enrols 40 of their own samples through verified logins, then is scored with
/// 5 of their later samples and the first sample of each other subject. Through this path,
/// 13 of 60 genuine samples gave a keystroke reason and 83 of 132 impostor samples contributed
/// 2 or more. The bounds leave room around those rates, so a wiring fault that drops, inverts
/// or rescales the signal fails here.
#[test]
fn genuine_typing_passes_impostor_flagged() {
    let data = iiitbh();
    let server = TestServer::start();
    let client = server.client();
    let mut genuine_flagged = 0;
    let mut genuine_total = 0;
    let mut impostor = Vec::new();
    for (index, subject) in data.subjects.iter().enumerate() {
        let user = format!("typist-{index}");
        // Each user gets a week of their own, so the one-IP counters do not mix users.
        let start = chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z").unwrap()
            + chrono::Duration::days(7 * index as i64);
        for (sample_index, sample) in subject.samples[..40].iter().enumerate() {
            let when = start
                + chrono::Duration::hours(sample_index as i64 % 8)
                + chrono::Duration::days(sample_index as i64 / 8);
            client.verified_login(login_with_keystrokes(
                &user,
                &when.to_rfc3339(),
                Some(events_json(sample)),
            ));
        }
        let when = (start + chrono::Duration::days(6)).to_rfc3339();
        for sample in &subject.samples[75..80] {
            let decision = client.score(login_with_keystrokes(
                &user,
                &when,
                Some(events_json(sample)),
            ));
            genuine_total += 1;
            if reason(&decision, "keystroke_anomaly").is_some() {
                genuine_flagged += 1;
            }
        }
        for (other_index, other) in data.subjects.iter().enumerate() {
            if other_index != index {
                let decision = client.score(login_with_keystrokes(
                    &user,
                    &when,
                    Some(events_json(&other.samples[0])),
                ));
                impostor.push(keystroke_contribution(&decision));
            }
        }
    }
    let strong = impostor.iter().filter(|c| **c >= 2.0).count();
    eprintln!(
        "genuine samples with a keystroke reason: {genuine_flagged} of {genuine_total}; \
         impostor samples contributing 2 or more: {strong} of {}",
        impostor.len()
    );
    assert!(
        genuine_flagged * 10 <= genuine_total * 3,
        "{genuine_flagged} of {genuine_total} genuine samples gave a keystroke reason"
    );
    assert!(
        strong * 2 >= impostor.len(),
        "only {strong} of {} impostor samples contributed 2 or more: {impostor:?}",
        impostor.len()
    );
    let strongest = impostor.iter().copied().fold(0.0, f64::max);
    assert!(
        strongest >= 3.9,
        "strongest impostor contribution {strongest}"
    );
}

#[test]
fn unusable_keystrokes_change_nothing() {
    let data = iiitbh();
    let owner = &data.subjects[2].samples;
    let server = TestServer::start();
    let client = server.client();
    enrol(&client, "rounded", &owner[..12]);
    let when = "2026-03-06T10:00:00Z";

    let baseline = client.score(login_with_keystrokes("rounded", when, None));
    let mut rounded = events_json(&owner[80]);
    for event in rounded.as_array_mut().unwrap() {
        for key in ["down_ms", "up_ms"] {
            let value = event[key].as_f64().unwrap();
            event[key] = json!((value / 100.0).round() * 100.0);
        }
    }
    let mut short = events_json(&owner[80]);
    short.as_array_mut().unwrap().truncate(6);
    let cases = [
        ("missing", None),
        ("empty", Some(json!([]))),
        ("rounded to 100 ms", Some(rounded)),
        ("wrong length", Some(short)),
    ];
    for (name, events) in cases {
        let decision = client.score(login_with_keystrokes("rounded", when, events));
        let signal = reason(&decision, "keystroke_anomaly")
            .unwrap_or_else(|| panic!("{name}: no keystroke_anomaly reason in {decision}"));
        assert_eq!(signal["evaluable"], false, "{name}: {signal}");
        assert_eq!(
            decision["decision"], baseline["decision"],
            "{name}: {decision}"
        );
        assert_eq!(decision["risk"], baseline["risk"], "{name}: {decision}");
    }
}

#[test]
fn enrolling_user_is_learning_for_keystrokes() {
    let data = iiitbh();
    let owner = &data.subjects[3].samples;
    let server = TestServer::start();
    let client = server.client();
    enrol(&client, "newbie", &owner[..3]);
    let decision = client.score(login_with_keystrokes(
        "newbie",
        "2026-03-06T10:00:00Z",
        Some(events_json(&owner[80])),
    ));
    let signal = reason(&decision, "keystroke_anomaly").expect("keystroke reason");
    assert_eq!(signal["evaluable"], false, "{signal}");
    assert!(
        signal["detail"]
            .as_str()
            .unwrap()
            .contains("enrolled samples, 8 are needed"),
        "{signal}"
    );
}

#[test]
fn keystroke_timings_never_leave_the_engine() {
    let data = iiitbh();
    let owner = &data.subjects[4].samples;
    let server = TestServer::start();
    let client = server.client();
    let events = events_json(&owner[0]);
    let first_up = events[0]["up_ms"].as_f64().unwrap();
    let decision = client.score(login_with_keystrokes(
        "private",
        "2026-03-06T10:00:00Z",
        Some(events),
    ));
    let id = decision["decision_id"].as_str().unwrap();
    let record = client.get(&format!("/v1/decisions/{id}"));
    assert_eq!(record.status, 200);
    assert!(!record.text.contains("down_ms"), "{}", record.text);
    assert!(
        !record.text.contains(&format!("{first_up}")),
        "{}",
        record.text
    );
    assert_eq!(record.body["record"]["attempt"]["keystrokes_sent"], true);
}
