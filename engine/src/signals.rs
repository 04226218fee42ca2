//! Risk signals: pure functions of one attempt, its enrichment, the user's profile and the
//! counters.
//!
//! Each signal returns a value in `[0, 1]`, whether it could be evaluated, and a reason in
//! words. A signal that cannot be evaluated contributes nothing to the risk. When the cause is
//! missing data about the attempt itself (no geo record, no coordinates, a timestamp not after
//! the last verified login), it also marks the decision degraded. The degraded policy, not a
//! low score, then decides such a login.

use std::net::IpAddr;

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;

use riskgate_models::freeman::FreemanScores;
use riskgate_models::keystroke::{KeystrokeAssessment, NotEvaluable as KeystrokeNotEvaluable};

use crate::config::SignalConfig;
use crate::geo::{AnonymousStatus, GeoRecord};
use crate::profile::{Profile, city_key};
use crate::store::Counters;

/// Accuracy radius assumed for a city record that has coordinates but states no radius, in km.
pub const DEFAULT_ACCURACY_RADIUS_KM: f64 = 50.0;
/// Travel shorter than this, after subtracting both accuracy radii, is never impossible, in km.
pub const MIN_TRAVEL_DISTANCE_KM: f64 = 100.0;
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Cause of a signal that could not be evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotEvaluable {
    /// The client did not send the input (no device id, no keystrokes).
    MissingInput,
    /// The user has too little verified history to compare with.
    NoHistory,
    /// Data about the attempt could not be obtained (no geo record, no coordinates): the
    /// decision is degraded.
    Unavailable,
}

/// One evaluated signal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub name: &'static str,
    /// In `[0, 1]`; 0 when not evaluable.
    pub value: f64,
    pub evaluable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_evaluable: Option<NotEvaluable>,
    pub detail: String,
}

impl Signal {
    fn value(name: &'static str, value: f64, detail: impl Into<String>) -> Signal {
        let value = if value.is_finite() {
            value.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Signal {
            name,
            value,
            evaluable: true,
            not_evaluable: None,
            detail: detail.into(),
        }
    }

    fn not_evaluable(name: &'static str, cause: NotEvaluable, detail: impl Into<String>) -> Signal {
        Signal {
            name,
            value: 0.0,
            evaluable: false,
            not_evaluable: Some(cause),
            detail: detail.into(),
        }
    }

    /// Returns whether this signal makes the decision degraded.
    pub fn degrades(&self) -> bool {
        self.not_evaluable == Some(NotEvaluable::Unavailable)
    }
}

/// Names of IP lists that mark anonymisers and hosting networks.
#[derive(Debug, Clone)]
pub struct ListRoles {
    pub anonymous: Vec<String>,
    pub hosting: Vec<String>,
}

/// Everything the signals read.
pub struct SignalInput<'a> {
    pub ip: IpAddr,
    pub timestamp: DateTime<Utc>,
    pub device_hash: Option<&'a str>,
    pub geo: &'a GeoRecord,
    /// Names of the configured IP lists that contain the IP or its ASN.
    pub ip_lists: &'a [String],
    /// Names of all configured IP lists.
    pub configured_lists: &'a [String],
    pub list_roles: &'a ListRoles,
    pub profile: &'a Profile,
    pub counters: &'a Counters,
    pub config: &'a SignalConfig,
    /// The IP is in a trusted network (for example a hospital intranet): missing geo data
    /// there does not degrade the decision, and many users per IP is expected.
    pub trusted_network: bool,
    pub hour_local: Option<u32>,
    /// The keystroke sample assessed against the user's template; `None` when the request
    /// carried no keystrokes.
    pub keystroke: Option<&'a KeystrokeAssessment>,
    /// Log-likelihood ratios of the login's network and user agent against the user's
    /// verified history and the model's global tables.
    pub freeman: &'a FreemanScores,
}

/// Evaluates every signal, in the order of the feature vector.
pub fn evaluate_all(input: &SignalInput<'_>) -> Vec<Signal> {
    vec![
        new_device(input),
        new_country(input),
        new_city(input),
        impossible_travel(input),
        anonymous_ip(input),
        hosting_network(input),
        user_failures(input),
        ip_failures(input),
        ip_many_users(input),
        unusual_hour(input),
        learning(input),
        keystroke_anomaly(input),
        freeman_network(input),
        freeman_agent(input),
    ]
}

/// Returns the cause to give when geo data for the attempt is missing.
fn geo_missing(input: &SignalInput<'_>) -> NotEvaluable {
    if input.trusted_network {
        NotEvaluable::MissingInput
    } else {
        NotEvaluable::Unavailable
    }
}

pub fn new_device(input: &SignalInput<'_>) -> Signal {
    const NAME: &str = "new_device";
    let Some(device) = input.device_hash else {
        return Signal::not_evaluable(NAME, NotEvaluable::MissingInput, "no device id was sent");
    };
    match input.profile.devices.get(device) {
        Some(seen) => Signal::value(
            NAME,
            0.0,
            format!("device seen in {} verified logins", seen.count),
        ),
        None => Signal::value(NAME, 1.0, "device never seen in a verified login"),
    }
}

pub fn new_country(input: &SignalInput<'_>) -> Signal {
    const NAME: &str = "new_country";
    let country = input
        .geo
        .city
        .as_ref()
        .and_then(|city| city.country.as_deref());
    let Some(country) = country else {
        return Signal::not_evaluable(NAME, geo_missing(input), "no country known for this IP");
    };
    match input.profile.countries.get(country) {
        Some(seen) => Signal::value(
            NAME,
            0.0,
            format!("country {country} seen in {} verified logins", seen.count),
        ),
        None => Signal::value(
            NAME,
            1.0,
            format!("country {country} never seen in a verified login"),
        ),
    }
}

pub fn new_city(input: &SignalInput<'_>) -> Signal {
    const NAME: &str = "new_city";
    let Some(city) = input.geo.city.as_ref() else {
        return Signal::not_evaluable(NAME, geo_missing(input), "no geo record for this IP");
    };
    let Some(key) = city_key(city.country.as_deref(), city.city.as_deref()) else {
        return Signal::not_evaluable(
            NAME,
            NotEvaluable::MissingInput,
            "the geo record for this IP names no city",
        );
    };
    match input.profile.cities.get(&key) {
        Some(seen) => Signal::value(
            NAME,
            0.0,
            format!("{key} seen in {} verified logins", seen.count),
        ),
        None => Signal::value(NAME, 1.0, format!("{key} never seen in a verified login")),
    }
}

/// Great-circle distance in km (haversine).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let dphi = (lat2 - lat1).to_radians();
    let dlambda = (lon2 - lon1).to_radians();
    let a = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

pub fn impossible_travel(input: &SignalInput<'_>) -> Signal {
    const NAME: &str = "impossible_travel";
    let Some(last) = input.profile.last_verified.as_ref() else {
        return Signal::not_evaluable(
            NAME,
            NotEvaluable::NoHistory,
            "no verified login to travel from",
        );
    };
    if last.ip == input.ip.to_string() {
        return Signal::value(NAME, 0.0, "same IP as the last verified login");
    }
    let city = input.geo.city.as_ref();
    let here = city.and_then(|city| Some((city.latitude?, city.longitude?)));
    let Some((latitude, longitude)) = here else {
        return Signal::not_evaluable(NAME, geo_missing(input), "no coordinates known for this IP");
    };
    let (Some(last_latitude), Some(last_longitude)) = (last.latitude, last.longitude) else {
        return Signal::not_evaluable(
            NAME,
            NotEvaluable::NoHistory,
            "the last verified login has no coordinates",
        );
    };
    let gap_ms = (input.timestamp - last.at).num_milliseconds();
    if gap_ms <= 0 {
        // Two places at the same instant, or a login older than the last verified one: the
        // speed is undefined, and reading it as zero would hide a cloned session.
        return Signal::not_evaluable(
            NAME,
            NotEvaluable::Unavailable,
            "login is not later than the last verified login",
        );
    }
    let radius_here = city
        .and_then(|city| city.accuracy_radius_km)
        .unwrap_or(DEFAULT_ACCURACY_RADIUS_KM);
    let radius_last = last
        .accuracy_radius_km
        .unwrap_or(DEFAULT_ACCURACY_RADIUS_KM);
    let distance = distance_km(last_latitude, last_longitude, latitude, longitude);
    let effective = (distance - radius_here - radius_last).max(0.0);
    let hours = gap_ms as f64 / 3_600_000.0;
    let speed = effective / hours;
    let from = match (&last.city, &last.country) {
        (Some(city), Some(country)) => format!("{city}, {country}"),
        (None, Some(country)) => country.clone(),
        _ => last.ip.clone(),
    };
    let minutes = gap_ms / 60_000;
    if effective < MIN_TRAVEL_DISTANCE_KM {
        return Signal::value(
            NAME,
            0.0,
            format!(
                "{distance:.0} km from {from} in {minutes} min, within the accuracy of the geo data"
            ),
        );
    }
    let max_speed = input.config.max_travel_speed_kmh;
    let value = ((speed - 0.5 * max_speed) / (0.5 * max_speed)).clamp(0.0, 1.0);
    Signal::value(
        NAME,
        value,
        format!(
            "{distance:.0} km from {from} in {minutes} min: {speed:.0} km/h after allowing {:.0} km of geo accuracy (limit {max_speed:.0} km/h)",
            radius_here + radius_last
        ),
    )
}

pub fn anonymous_ip(input: &SignalInput<'_>) -> Signal {
    const NAME: &str = "anonymous_ip";
    let mut hits: Vec<String> = input
        .ip_lists
        .iter()
        .filter(|name| input.list_roles.anonymous.contains(name))
        .map(|name| format!("list {name}"))
        .collect();
    let database = match &input.geo.anonymous {
        AnonymousStatus::NotConfigured => false,
        AnonymousStatus::NotListed => true,
        AnonymousStatus::Listed(flags) => {
            for (flag, label) in [
                (flags.tor_exit, "Tor exit node"),
                (flags.vpn, "anonymous VPN"),
                (flags.public_proxy, "public proxy"),
                (flags.residential_proxy, "residential proxy"),
            ] {
                if flag {
                    hits.push(label.to_owned());
                }
            }
            if hits.is_empty() && flags.anonymous && !flags.hosting {
                hits.push("anonymous network".to_owned());
            }
            true
        }
    };
    let lists = input
        .configured_lists
        .iter()
        .any(|name| input.list_roles.anonymous.contains(name));
    if !database && !lists {
        return Signal::not_evaluable(
            NAME,
            NotEvaluable::MissingInput,
            "no anonymous-IP database or anonymiser list is configured",
        );
    }
    if hits.is_empty() {
        Signal::value(NAME, 0.0, "not a known anonymiser")
    } else {
        Signal::value(NAME, 1.0, format!("anonymiser: {}", hits.join(", ")))
    }
}

pub fn hosting_network(input: &SignalInput<'_>) -> Signal {
    const NAME: &str = "hosting_network";
    let mut hits: Vec<String> = input
        .ip_lists
        .iter()
        .filter(|name| input.list_roles.hosting.contains(name))
        .map(|name| format!("list {name}"))
        .collect();
    if let AnonymousStatus::Listed(flags) = &input.geo.anonymous
        && flags.hosting
    {
        hits.push("hosting provider in the anonymous-IP database".to_owned());
    }
    let asn = input.geo.asn.as_ref();
    let lists = input
        .configured_lists
        .iter()
        .any(|name| input.list_roles.hosting.contains(name));
    if asn.is_none() && !lists {
        return Signal::not_evaluable(
            NAME,
            NotEvaluable::MissingInput,
            "no ASN record and no hosting list is configured",
        );
    }
    let network = match asn {
        Some(asn) => match &asn.organization {
            Some(org) => format!("AS{} ({org})", asn.number),
            None => format!("AS{}", asn.number),
        },
        None => "unknown ASN".to_owned(),
    };
    if hits.is_empty() {
        Signal::value(
            NAME,
            0.0,
            format!("{network} is not a known hosting network"),
        )
    } else {
        Signal::value(
            NAME,
            1.0,
            format!("{network} is a hosting network: {}", hits.join(", ")),
        )
    }
}

fn saturating_ratio(count: u64, saturation: u64) -> f64 {
    (count as f64 / saturation.max(1) as f64).min(1.0)
}

pub fn user_failures(input: &SignalInput<'_>) -> Signal {
    let count = input.counters.user_failures;
    let window = input.config.user_failures_window_seconds / 60;
    Signal::value(
        "user_failures",
        saturating_ratio(count, input.config.user_failures_saturation),
        format!("{count} failed logins or MFA for this user in the last {window} min"),
    )
}

pub fn ip_failures(input: &SignalInput<'_>) -> Signal {
    let count = input.counters.ip_failures;
    let window = input.config.ip_failures_window_seconds / 60;
    Signal::value(
        "ip_failures",
        saturating_ratio(count, input.config.ip_failures_saturation),
        format!("{count} failed logins or MFA from this IP in the last {window} min"),
    )
}

pub fn ip_many_users(input: &SignalInput<'_>) -> Signal {
    const NAME: &str = "ip_many_users";
    let others = input.counters.ip_other_users;
    let window = input.config.ip_users_window_seconds / 60;
    if input.trusted_network {
        return Signal::value(
            NAME,
            0.0,
            format!(
                "{others} other users from this IP in {window} min, expected in a trusted network"
            ),
        );
    }
    let threshold = input.config.ip_users_threshold;
    let span = input
        .config
        .ip_users_saturation
        .saturating_sub(threshold)
        .max(1);
    let value = saturating_ratio(others.saturating_sub(threshold), span);
    Signal::value(
        NAME,
        value,
        format!("{others} other users tried to log in from this IP in the last {window} min"),
    )
}

pub fn unusual_hour(input: &SignalInput<'_>) -> Signal {
    const NAME: &str = "unusual_hour";
    let Some(hour) = input.hour_local.filter(|hour| *hour < 24) else {
        return Signal::not_evaluable(
            NAME,
            NotEvaluable::MissingInput,
            "no time zone known for this IP",
        );
    };
    let total: u64 = input.profile.hours.iter().sum();
    if total < input.config.learning_logins {
        return Signal::not_evaluable(
            NAME,
            NotEvaluable::NoHistory,
            format!("{total} verified logins with a known hour, too few to compare"),
        );
    }
    let hour = hour as usize;
    let near: u64 = [(hour + 23) % 24, hour, (hour + 1) % 24]
        .iter()
        .map(|slot| input.profile.hours[*slot])
        .sum();
    // Share of the user's logins within one hour of this one, compared with the 3/24 of a user
    // who logs in around the clock. One pseudo-login keeps a single login from being zero.
    let share = (near as f64 + 0.125) / (total as f64 + 1.0);
    let value = (1.0 - share / 0.125).clamp(0.0, 1.0);
    Signal::value(
        NAME,
        value,
        format!("{near} of {total} verified logins within an hour of {hour:02}:00 local time"),
    )
}

/// Returns whether the user is in the learning state: too few verified logins, or a login
/// reported as not theirs within `compromise_step_up_days`.
pub fn is_learning(profile: &Profile, at: DateTime<Utc>, config: &SignalConfig) -> bool {
    profile.verified_logins < config.learning_logins
        || recent_compromise(profile, at, config).is_some()
}

fn recent_compromise(
    profile: &Profile,
    at: DateTime<Utc>,
    config: &SignalConfig,
) -> Option<DateTime<Utc>> {
    let reported = profile.compromise_reported_at?;
    let until = reported + chrono::Duration::days(i64::from(config.compromise_step_up_days));
    (at < until).then_some(reported)
}

pub fn learning(input: &SignalInput<'_>) -> Signal {
    let logins = input.profile.verified_logins;
    let needed = input.config.learning_logins;
    if let Some(reported) = recent_compromise(input.profile, input.timestamp, input.config) {
        return Signal::value(
            "learning",
            1.0,
            format!(
                "a login was reported as not the user's on {}: MFA for {} days after it",
                reported.format("%Y-%m-%d"),
                input.config.compromise_step_up_days
            ),
        );
    }
    if logins < needed {
        Signal::value(
            "learning",
            1.0,
            format!("{logins} of {needed} verified logins needed to leave the learning state"),
        )
    } else {
        Signal::value("learning", 0.0, format!("{logins} verified logins"))
    }
}

/// Log-likelihood ratio at which `keystroke_anomaly` reaches its full value of 1; the
/// keystroke calibration caps the ratio at 4.
pub const KEYSTROKE_FULL_LLR: f64 = 4.0;

/// Compares the typing rhythm with the user's template. The value is the calibrated
/// log-likelihood ratio of an impostor over [`KEYSTROKE_FULL_LLR`], so a weight of 4 in the
/// rules adds the ratio itself to the log-odds. Evidence for the genuine user counts as 0.
pub fn keystroke_anomaly(input: &SignalInput<'_>) -> Signal {
    const NAME: &str = "keystroke_anomaly";
    let Some(assessment) = input.keystroke else {
        return Signal::not_evaluable(
            NAME,
            NotEvaluable::MissingInput,
            "no keystroke timings were sent (autofill, paste or a password manager)",
        );
    };
    if assessment.evaluable {
        let llr = assessment.log_likelihood_ratio;
        return Signal::value(
            NAME,
            llr / KEYSTROKE_FULL_LLR,
            format!("log-likelihood ratio {llr:.2}: {}", assessment.reason),
        );
    }
    let cause = match assessment.not_evaluable {
        Some(KeystrokeNotEvaluable::TemplateNotReady { .. }) => NotEvaluable::NoHistory,
        _ => NotEvaluable::MissingInput,
    };
    Signal::not_evaluable(NAME, cause, format!("keystrokes: {}", assessment.reason))
}

/// Freeman et al. likelihood of the login's network (country, ASN, address) under attack
/// against under the user's history, as `sigmoid(ln p(x) - ln p(x | user))`: 0.5 is no
/// evidence either way and values near 1 mean the user has never logged in from anywhere
/// like it.
pub fn freeman_network(input: &SignalInput<'_>) -> Signal {
    freeman_signal(
        "freeman_network",
        "network",
        input.freeman.network,
        input.freeman,
    )
}

/// As [`freeman_network`], for the user agent (device type, OS, browser, full string).
pub fn freeman_agent(input: &SignalInput<'_>) -> Signal {
    freeman_signal(
        "freeman_agent",
        "user agent",
        input.freeman.agent,
        input.freeman,
    )
}

fn freeman_signal(
    name: &'static str,
    attribute: &str,
    log_ratio: f64,
    scores: &FreemanScores,
) -> Signal {
    if !scores.has_history() {
        return Signal::not_evaluable(
            name,
            NotEvaluable::NoHistory,
            format!("no verified login to compare the {attribute} with"),
        );
    }
    Signal::value(
        name,
        riskgate_models::linear::sigmoid(log_ratio),
        format!(
            "{attribute} log-likelihood ratio {log_ratio:.2} against {} verified logins",
            scores.user_logins
        ),
    )
}

/// Returns the local hour of `timestamp` in the IANA time zone `zone`.
pub fn local_hour(timestamp: DateTime<Utc>, zone: Option<&str>) -> Option<u32> {
    let zone: chrono_tz::Tz = zone?.parse().ok()?;
    Some(timestamp.with_timezone(&zone).hour())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::{AsnRecord, CityRecord};
    use crate::profile::AttemptFacts;
    use riskgate_models::keystroke::TemplateConfig;

    fn london() -> GeoRecord {
        GeoRecord {
            city: Some(CityRecord {
                country: Some("GB".into()),
                registered_country: Some("US".into()),
                subdivision: Some("ENG".into()),
                city: Some("London".into()),
                latitude: Some(51.5142),
                longitude: Some(-0.0931),
                accuracy_radius_km: Some(100.0),
                time_zone: Some("Europe/London".into()),
            }),
            asn: Some(AsnRecord {
                number: 20712,
                organization: Some("Andrews & Arnold Ltd".into()),
            }),
            anonymous: AnonymousStatus::NotListed,
        }
    }

    fn changchun() -> GeoRecord {
        GeoRecord {
            city: Some(CityRecord {
                country: Some("CN".into()),
                registered_country: Some("CN".into()),
                subdivision: Some("22".into()),
                city: Some("Changchun".into()),
                latitude: Some(43.88),
                longitude: Some(125.3228),
                accuracy_radius_km: Some(50.0),
                time_zone: Some("Asia/Harbin".into()),
            }),
            asn: None,
            anonymous: AnonymousStatus::NotListed,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn profile_in_london(logins: u64) -> Profile {
        let mut profile = Profile::new("alice");
        for index in 0..logins {
            profile.learn(
                &AttemptFacts {
                    at: at("2026-01-01T09:00:00Z") + chrono::Duration::hours(index as i64),
                    ip: "81.2.69.142".into(),
                    network: "81.2.69.142".into(),
                    device_hash: Some("device-a".into()),
                    country: Some("GB".into()),
                    city: Some("London".into()),
                    latitude: Some(51.5142),
                    longitude: Some(-0.0931),
                    accuracy_radius_km: Some(100.0),
                    hour_local: Some(9),
                    keystroke_sample: None,
                    freeman_keys: None,
                },
                &TemplateConfig::default(),
            );
        }
        profile
    }

    struct Fixture {
        geo: GeoRecord,
        profile: Profile,
        counters: Counters,
        config: SignalConfig,
        roles: ListRoles,
        lists: Vec<String>,
        configured: Vec<String>,
        freeman: FreemanScores,
    }

    impl Fixture {
        fn new(geo: GeoRecord, profile: Profile) -> Self {
            Fixture {
                geo,
                profile,
                counters: Counters::default(),
                config: SignalConfig::default(),
                roles: ListRoles {
                    anonymous: vec!["tor_exit".into()],
                    hosting: vec!["hosting".into()],
                },
                lists: Vec::new(),
                configured: vec!["tor_exit".into(), "hosting".into()],
                freeman: FreemanScores {
                    network: 0.0,
                    agent: 0.0,
                    user_logins: 0,
                },
            }
        }

        fn input<'a>(&'a self, ip: &str, when: &str) -> SignalInput<'a> {
            SignalInput {
                ip: ip.parse().unwrap(),
                timestamp: at(when),
                device_hash: Some("device-a"),
                geo: &self.geo,
                ip_lists: &self.lists,
                configured_lists: &self.configured,
                list_roles: &self.roles,
                profile: &self.profile,
                counters: &self.counters,
                config: &self.config,
                trusted_network: false,
                hour_local: Some(9),
                keystroke: None,
                freeman: &self.freeman,
            }
        }
    }

    #[test]
    fn travel_london_changchun_impossible() {
        let fixture = Fixture::new(changchun(), profile_in_london(1));
        let signal = impossible_travel(&fixture.input("175.16.199.0", "2026-01-01T09:30:00Z"));
        assert!(signal.evaluable);
        assert_eq!(signal.value, 1.0, "{}", signal.detail);
    }

    #[test]
    fn same_ip_is_never_travel() {
        let fixture = Fixture::new(changchun(), profile_in_london(1));
        let signal = impossible_travel(&fixture.input("81.2.69.142", "2026-01-01T09:01:00Z"));
        assert!(signal.evaluable);
        assert_eq!(signal.value, 0.0);
    }

    #[test]
    fn non_positive_gap_is_not_evaluable_and_degrades() {
        let fixture = Fixture::new(changchun(), profile_in_london(1));
        let signal = impossible_travel(&fixture.input("175.16.199.0", "2026-01-01T09:00:00Z"));
        assert!(!signal.evaluable);
        assert!(signal.degrades());
    }

    #[test]
    fn missing_geo_degrades_unless_trusted() {
        let nothing = GeoRecord {
            city: None,
            asn: None,
            anonymous: AnonymousStatus::NotListed,
        };
        let fixture = Fixture::new(nothing, profile_in_london(1));
        let mut input = fixture.input("192.0.2.1", "2026-01-01T12:00:00Z");
        for signal in [
            new_country(&input),
            new_city(&input),
            impossible_travel(&input),
        ] {
            assert!(!signal.evaluable, "{}", signal.name);
            assert!(signal.degrades(), "{}", signal.name);
        }
        input.trusted_network = true;
        for signal in [
            new_country(&input),
            new_city(&input),
            impossible_travel(&input),
        ] {
            assert!(!signal.evaluable, "{}", signal.name);
            assert!(!signal.degrades(), "{}", signal.name);
        }
    }

    #[test]
    fn slow_travel_within_accuracy_is_zero() {
        let fixture = Fixture::new(london(), profile_in_london(1));
        let signal = impossible_travel(&fixture.input("81.2.69.160", "2026-01-01T09:05:00Z"));
        assert!(signal.evaluable);
        assert_eq!(signal.value, 0.0);
    }

    #[test]
    fn distance_matches_known_value() {
        // London to Paris is about 344 km.
        let km = distance_km(51.5074, -0.1278, 48.8566, 2.3522);
        assert!((km - 344.0).abs() < 2.0, "{km}");
    }

    #[test]
    fn novelty_signals_compare_with_history() {
        let fixture = Fixture::new(london(), profile_in_london(3));
        let input = fixture.input("81.2.69.142", "2026-01-02T09:00:00Z");
        assert_eq!(new_device(&input).value, 0.0);
        assert_eq!(new_country(&input).value, 0.0);
        assert_eq!(new_city(&input).value, 0.0);
        let elsewhere = Fixture::new(changchun(), profile_in_london(3));
        let input = elsewhere.input("175.16.199.0", "2026-01-02T09:00:00Z");
        assert_eq!(new_country(&input).value, 1.0);
        assert_eq!(new_city(&input).value, 1.0);
    }

    #[test]
    fn counters_saturate() {
        let mut fixture = Fixture::new(london(), profile_in_london(1));
        fixture.counters = Counters {
            user_failures: 10,
            user_failures_15m: 10,
            ip_failures: 5,
            ip_other_users: 12,
        };
        let input = fixture.input("81.2.69.142", "2026-01-02T09:00:00Z");
        assert_eq!(user_failures(&input).value, 1.0);
        assert_eq!(ip_failures(&input).value, 0.25);
        assert_eq!(ip_many_users(&input).value, 1.0);
    }

    #[test]
    fn unusual_hour_needs_history_and_flags_night() {
        let fixture = Fixture::new(london(), profile_in_london(2));
        let input = fixture.input("81.2.69.142", "2026-01-02T03:00:00Z");
        assert!(!unusual_hour(&input).evaluable);
        let experienced = Fixture::new(london(), profile_in_london(10));
        let mut input = experienced.input("81.2.69.142", "2026-01-02T03:00:00Z");
        input.hour_local = Some(3);
        assert!(unusual_hour(&input).value > 0.9);
        input.hour_local = Some(9);
        assert_eq!(unusual_hour(&input).value, 0.0);
    }

    #[test]
    fn anonymous_lists_and_database_flags() {
        let mut fixture = Fixture::new(london(), profile_in_london(1));
        fixture.lists = vec!["tor_exit".into()];
        let input = fixture.input("81.2.69.142", "2026-01-02T09:00:00Z");
        assert_eq!(anonymous_ip(&input).value, 1.0);
        let mut plain = Fixture::new(london(), profile_in_london(1));
        plain.geo.anonymous = AnonymousStatus::NotConfigured;
        plain.configured.clear();
        let input = plain.input("81.2.69.142", "2026-01-02T09:00:00Z");
        assert!(!anonymous_ip(&input).evaluable);
    }

    #[test]
    fn learning_until_enough_verified_logins() {
        let fixture = Fixture::new(london(), profile_in_london(4));
        assert_eq!(
            learning(&fixture.input("81.2.69.142", "2026-01-02T09:00:00Z")).value,
            1.0
        );
        let fixture = Fixture::new(london(), profile_in_london(5));
        assert_eq!(
            learning(&fixture.input("81.2.69.142", "2026-01-02T09:00:00Z")).value,
            0.0
        );
    }

    #[test]
    fn local_hour_uses_time_zone() {
        assert_eq!(
            local_hour(at("2026-07-01T12:00:00Z"), Some("Europe/London")),
            Some(13)
        );
        assert_eq!(
            local_hour(at("2026-07-01T12:00:00Z"), Some("Not/AZone")),
            None
        );
        assert_eq!(local_hour(at("2026-07-01T12:00:00Z"), None), None);
    }

    #[test]
    fn freeman_needs_history_and_maps_ratio() {
        let mut fixture = Fixture::new(london(), profile_in_london(3));
        let network = freeman_network(&fixture.input("81.2.69.142", "2026-01-01T09:30:00Z"));
        assert!(!network.evaluable);
        assert_eq!(network.not_evaluable, Some(NotEvaluable::NoHistory));
        assert!(!network.degrades());

        fixture.freeman = FreemanScores {
            network: 3.0,
            agent: -2.0,
            user_logins: 3,
        };
        let input = fixture.input("81.2.69.142", "2026-01-01T09:30:00Z");
        let network = freeman_network(&input);
        assert!(network.evaluable);
        assert!((network.value - 1.0 / (1.0 + (-3.0f64).exp())).abs() < 1e-12);
        let agent = freeman_agent(&input);
        assert!(agent.evaluable);
        assert!(agent.value < 0.5, "{}", agent.detail);
    }
}
