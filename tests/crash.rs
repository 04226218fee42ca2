//! Acknowledged events survive a SIGKILL of the server process.

mod common;

use common::{Client, login, reason, spawn_server};

#[test]
fn history_survives_sigkill() {
    let data_dir = tempfile::tempdir().unwrap();
    let (mut server, base) = spawn_server(data_dir.path());
    let client = Client::new(&base);
    let mut decision_ids = Vec::new();
    for hour in 9..15 {
        let decision = client.verified_login(login(
            "mallory",
            "81.2.69.142",
            &format!("2026-03-02T{hour:02}:00:00Z"),
            "device-a",
        ));
        decision_ids.push(decision["decision_id"].as_str().unwrap().to_owned());
    }
    // SIGKILL: no shutdown hook runs, so only what was committed before each reply survives.
    server.kill().expect("kill the server");
    server.wait().expect("reap the server");

    let (mut restarted, base) = spawn_server(data_dir.path());
    let client = Client::new(&base);
    for id in &decision_ids {
        let reply = client.get(&format!("/v1/decisions/{id}"));
        assert_eq!(reply.status, 200, "decision {id} lost: {}", reply.text);
        assert_eq!(reply.body["learned"], true, "{}", reply.text);
    }
    let decision = client.score(login(
        "mallory",
        "81.2.69.142",
        "2026-03-03T10:00:00Z",
        "device-a",
    ));
    assert_eq!(decision["learning"], false, "{decision}");
    // A known device adds nothing, so it is either absent from the reasons or at zero.
    let device_value =
        reason(&decision, "new_device").map_or(0.0, |device| device["value"].as_f64().unwrap());
    assert_eq!(device_value, 0.0, "{decision}");
    restarted.kill().ok();
    restarted.wait().ok();
}
