//! Decoding, validation and normalisation of API requests.
//!
//! Bodies are decoded with `serde_path_to_error`, so every type error carries the path of the
//! field that caused it, and then checked for values that JSON allows but the engine must not
//! accept: non-finite or absurd numbers, oversized strings, timestamps out of range. The result
//! is an [`Attempt`] with a normalised user id and a canonical IP address.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::error::ApiError;

/// Maximum length in characters of the user id, role, app, tenant and device id.
pub const MAX_ID_CHARS: usize = 256;
/// Maximum length in characters of a user agent.
pub const MAX_USER_AGENT_CHARS: usize = 1024;
/// Maximum number of device attributes.
pub const MAX_DEVICE_ATTRIBUTES: usize = 64;
/// Maximum number of keystroke events in one sample.
pub const MAX_KEYSTROKE_EVENTS: usize = 256;
/// Largest accepted round-trip time, in milliseconds.
pub const MAX_RTT_MS: f64 = 60_000.0;
/// Largest accepted keystroke timestamp, in milliseconds from the start of the sample.
pub const MAX_KEYSTROKE_MS: f64 = 3_600_000.0;
/// How far a request timestamp may lie ahead of the server clock, in seconds. Past timestamps
/// are accepted so that recorded logins can be replayed.
pub const MAX_FUTURE_SKEW_SECONDS: i64 = 300;

/// The body of `POST /v1/score` as sent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(expecting = "a JSON object with `user_id` and `ip`")]
pub struct ScoreRequest {
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub timestamp: Option<String>,
    pub user_agent: Option<String>,
    pub role: Option<String>,
    pub app: Option<String>,
    pub tenant: Option<String>,
    pub device: Option<DeviceInput>,
    pub keystrokes: Option<KeystrokesInput>,
    pub rtt_ms: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(expecting = "an object with `id` and `attributes`")]
pub struct DeviceInput {
    pub id: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(expecting = "an object with `events`")]
pub struct KeystrokesInput {
    #[serde(default)]
    pub events: Vec<KeystrokeEventInput>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(expecting = "an object with `down_ms` and `up_ms`")]
pub struct KeystrokeEventInput {
    pub down_ms: f64,
    pub up_ms: f64,
}

/// A validated login attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// NFKC-normalised, case-folded user id.
    pub user_id: String,
    /// Canonical address: IPv4-mapped IPv6 is turned into IPv4.
    pub ip: IpAddr,
    pub timestamp: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub role: String,
    pub app: String,
    pub tenant: String,
    /// SHA-256 of the device id, so that raw identifiers are never stored or logged.
    pub device_hash: Option<String>,
    /// SHA-256 over the sorted device attributes.
    pub device_attributes_hash: Option<String>,
    pub keystrokes: Option<Vec<KeystrokeEventInput>>,
    pub rtt_ms: Option<f64>,
    /// SHA-256 over the whole normalised request, recorded with the decision.
    pub inputs_digest: String,
}

/// Outcomes the CRM reports after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    LoginSucceeded,
    LoginFailed,
    MfaPassed,
    MfaFailed,
    ReportedNotMe,
    ConfirmedSafe,
    ConfirmedCompromised,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::LoginSucceeded,
        Outcome::LoginFailed,
        Outcome::MfaPassed,
        Outcome::MfaFailed,
        Outcome::ReportedNotMe,
        Outcome::ConfirmedSafe,
        Outcome::ConfirmedCompromised,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::LoginSucceeded => "login_succeeded",
            Outcome::LoginFailed => "login_failed",
            Outcome::MfaPassed => "mfa_passed",
            Outcome::MfaFailed => "mfa_failed",
            Outcome::ReportedNotMe => "reported_not_me",
            Outcome::ConfirmedSafe => "confirmed_safe",
            Outcome::ConfirmedCompromised => "confirmed_compromised",
        }
    }

    /// Parses the wire name of an outcome, such as `mfa_passed`.
    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

/// The body of `POST /v1/events` as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a JSON object with `decision_id` and `outcome`")]
struct EventRequestBody {
    decision_id: Option<String>,
    outcome: Option<String>,
    timestamp: Option<String>,
}

/// A validated event.
#[derive(Debug, Clone)]
pub struct EventRequest {
    pub decision_id: String,
    pub outcome: Outcome,
    pub timestamp: Option<DateTime<Utc>>,
}

/// Decodes JSON bytes into `T`, naming the field of any type error.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize::<_, T>(&mut deserializer)
        .map_err(|error| decode_error(&error))?;
    deserializer
        .end()
        .map_err(|error| ApiError::malformed(format!("invalid JSON: {error}"), None))?;
    Ok(value)
}

fn decode_error(error: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = error.inner();
    let path = error.path().to_string();
    // serde_path_to_error writes `?` for a map key it could not read.
    let path = (path != "." && !path.contains('?')).then_some(path);
    let message = inner.to_string();
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = match &path {
            Some(parent) => format!("{parent}.{name}"),
            None => name.to_owned(),
        };
        return ApiError::missing(field);
    }
    if let Some(name) = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = match &path {
            Some(parent) => format!("{parent}.{name}"),
            None => name.to_owned(),
        };
        return ApiError::invalid(&field, format!("`{field}` appears more than once"));
    }
    match inner.classify() {
        serde_json::error::Category::Data => match path {
            Some(field) => ApiError::invalid(field, message),
            None => ApiError::malformed(format!("invalid request body: {message}"), None),
        },
        _ => {
            // A number such as 1e999 fails in the parser, but the path still names its field.
            let text = if message.starts_with("number out of range") {
                format!("number is not finite or out of range: {message}")
            } else {
                format!("invalid JSON: {message}")
            };
            match path {
                Some(field) => ApiError::invalid(field, text),
                None => ApiError::malformed(text, None),
            }
        }
    }
}

/// Normalises an identifier: NFKC, Unicode case folding, NFKC again, and removal of default
/// ignorable code points (zero-width spaces, joiners, soft hyphens, bidirectional controls),
/// as Unicode's NFKC_Casefold does. `Alice`, `ALICE`, the full-width `Ａｌｉｃｅ` and
/// `Ali\u{200B}ce` are one user.
pub fn normalize_user_id(raw: &str) -> String {
    let composed: String = raw.nfkc().collect();
    let folded = caseless::default_case_fold_str(&composed);
    let normalized: String = folded
        .nfkc()
        .filter(|c| !is_default_ignorable(*c))
        .collect();
    normalized.trim().to_owned()
}

/// Returns whether `c` has the Unicode property Default_Ignorable_Code_Point (Unicode 15.1,
/// DerivedCoreProperties.txt).
fn is_default_ignorable(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Returns `ip` with IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) turned into IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Returns the network an address counts as for novelty: the address itself for IPv4, the /64 for
/// IPv6, because privacy extensions rotate the host part within one /64.
pub fn novelty_network(ip: IpAddr) -> String {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            format!(
                "{:x}:{:x}:{:x}:{:x}::/64",
                segments[0], segments[1], segments[2], segments[3]
            )
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.chars().count() > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` is longer than {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` contains control characters"),
        ));
    }
    Ok(())
}

fn optional_text(field: &str, value: Option<&str>, max_chars: usize) -> Result<String, ApiError> {
    match value {
        Some(text) => {
            check_text(field, text, max_chars)?;
            Ok(text.trim().to_owned())
        }
        None => Ok(String::new()),
    }
}

/// Rejects a timestamp more than [`MAX_FUTURE_SKEW_SECONDS`] ahead of `now`: a login from the
/// future would become the origin of every later travel check.
fn check_not_future(
    field: &str,
    timestamp: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    if timestamp > now + chrono::Duration::seconds(MAX_FUTURE_SKEW_SECONDS) {
        return Err(ApiError::invalid(
            field,
            format!(
                "`{field}` {} is more than {MAX_FUTURE_SKEW_SECONDS} seconds ahead of the server clock ({})",
                timestamp.to_rfc3339(),
                now.to_rfc3339()
            ),
        ));
    }
    Ok(timestamp)
}

/// Parses an RFC 3339 timestamp and checks that it lies between 2000 and 2100.
pub fn parse_timestamp(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|error| {
        ApiError::invalid(
            field,
            format!("`{text}` is not an RFC 3339 timestamp ({error}), e.g. 2026-01-31T08:15:00Z"),
        )
    })?;
    let year = parsed.format("%Y").to_string();
    let in_range = year
        .parse::<i32>()
        .is_ok_and(|year| (2000..2100).contains(&year));
    if !in_range {
        return Err(ApiError::invalid(
            field,
            format!("`{text}` is outside the accepted years 2000 to 2099"),
        ));
    }
    Ok(parsed.with_timezone(&Utc))
}

fn parse_ip(text: &str) -> Result<IpAddr, ApiError> {
    let trimmed = text.trim();
    // Accept a bracketed IPv6 literal, but never a port or a zone index.
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(trimmed);
    let ip = unbracketed
        .parse::<IpAddr>()
        .map(canonical_ip)
        .map_err(|_| {
            ApiError::invalid(
                "ip",
                format!("`{}` is not an IPv4 or IPv6 address", truncate(text)),
            )
        })?;
    let unroutable = ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if unroutable {
        return Err(ApiError::invalid(
            "ip",
            format!("`{ip}` cannot be the address of an end user"),
        ));
    }
    Ok(ip)
}

fn check_number(field: &str, value: f64, min: f64, max: f64) -> Result<(), ApiError> {
    if !value.is_finite() {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` is not a finite number"),
        ));
    }
    if value < min || value > max {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` = {value} is outside the accepted range {min} to {max}"),
        ));
    }
    Ok(())
}

impl ScoreRequest {
    /// Validates and normalises the request. `now` replaces a missing timestamp.
    pub fn into_attempt(self, now: DateTime<Utc>) -> Result<Attempt, ApiError> {
        let raw_user = self
            .user_id
            .as_deref()
            .ok_or_else(|| ApiError::missing("user_id"))?;
        check_text("user_id", raw_user, MAX_ID_CHARS)?;
        let user_id = normalize_user_id(raw_user);
        if user_id.is_empty() {
            return Err(ApiError::invalid("user_id", "`user_id` is empty"));
        }

        let raw_ip = self.ip.as_deref().ok_or_else(|| ApiError::missing("ip"))?;
        let ip = parse_ip(raw_ip)?;

        let timestamp = match self.timestamp.as_deref() {
            Some(text) => check_not_future("timestamp", parse_timestamp("timestamp", text)?, now)?,
            None => now,
        };

        let user_agent = match self.user_agent.as_deref() {
            Some(agent) => {
                check_text("user_agent", agent, MAX_USER_AGENT_CHARS)?;
                Some(agent.to_owned())
            }
            None => None,
        };
        let role = normalize_user_id(&optional_text("role", self.role.as_deref(), MAX_ID_CHARS)?);
        let app = optional_text("app", self.app.as_deref(), MAX_ID_CHARS)?;
        let tenant = optional_text("tenant", self.tenant.as_deref(), MAX_ID_CHARS)?;

        let (device_hash, device_attributes_hash) = match &self.device {
            Some(device) => validate_device(device)?,
            None => (None, None),
        };

        let keystrokes = match &self.keystrokes {
            Some(input) => Some(validate_keystrokes(input)?),
            None => None,
        };

        if let Some(rtt) = self.rtt_ms {
            check_number("rtt_ms", rtt, 0.0, MAX_RTT_MS)?;
        }

        let digest_input = serde_json::json!({
            "user_id": user_id,
            "ip": ip.to_string(),
            "timestamp": timestamp.to_rfc3339(),
            "user_agent": user_agent,
            "role": role,
            "app": app,
            "tenant": tenant,
            "device": self.device,
            "keystrokes": self.keystrokes,
            "rtt_ms": self.rtt_ms,
        });
        let inputs_digest = sha256_hex(digest_input.to_string().as_bytes());

        Ok(Attempt {
            user_id,
            ip,
            timestamp,
            user_agent,
            role,
            app,
            tenant,
            device_hash,
            device_attributes_hash,
            keystrokes,
            rtt_ms: self.rtt_ms,
            inputs_digest,
        })
    }
}

fn validate_device(device: &DeviceInput) -> Result<(Option<String>, Option<String>), ApiError> {
    let device_hash = match device.id.as_deref() {
        Some(id) => {
            check_text("device.id", id, MAX_ID_CHARS)?;
            let id = id.trim();
            if id.is_empty() {
                return Err(ApiError::invalid("device.id", "`device.id` is empty"));
            }
            Some(sha256_hex(id.as_bytes()))
        }
        None => None,
    };
    if device.attributes.len() > MAX_DEVICE_ATTRIBUTES {
        return Err(ApiError::invalid(
            "device.attributes",
            format!("`device.attributes` has more than {MAX_DEVICE_ATTRIBUTES} entries"),
        ));
    }
    for (key, value) in &device.attributes {
        let field = format!("device.attributes.{key}");
        check_text(&field, key, MAX_ID_CHARS)?;
        if let serde_json::Value::Number(number) = value
            && number.as_f64().is_none_or(|float| !float.is_finite())
        {
            return Err(ApiError::invalid(
                &field,
                format!("`{field}` is not a finite number"),
            ));
        }
        if value.is_object() || value.is_array() {
            return Err(ApiError::invalid(
                &field,
                format!("`{field}` must be a string, number, boolean or null"),
            ));
        }
    }
    let attributes_hash = (!device.attributes.is_empty()).then(|| {
        let canonical = serde_json::to_string(&device.attributes).unwrap_or_default();
        sha256_hex(canonical.as_bytes())
    });
    Ok((device_hash, attributes_hash))
}

fn validate_keystrokes(input: &KeystrokesInput) -> Result<Vec<KeystrokeEventInput>, ApiError> {
    if input.events.len() > MAX_KEYSTROKE_EVENTS {
        return Err(ApiError::invalid(
            "keystrokes.events",
            format!("`keystrokes.events` has more than {MAX_KEYSTROKE_EVENTS} events"),
        ));
    }
    let mut events = Vec::with_capacity(input.events.len());
    for (index, event) in input.events.iter().enumerate() {
        check_number(
            &format!("keystrokes.events[{index}].down_ms"),
            event.down_ms,
            0.0,
            MAX_KEYSTROKE_MS,
        )?;
        check_number(
            &format!("keystrokes.events[{index}].up_ms"),
            event.up_ms,
            0.0,
            MAX_KEYSTROKE_MS,
        )?;
        events.push(*event);
    }
    Ok(events)
}

/// Decodes and validates a `POST /v1/events` body.
pub fn parse_event(body: &[u8]) -> Result<EventRequest, ApiError> {
    let raw: EventRequestBody = decode(body)?;
    let decision_id = raw
        .decision_id
        .ok_or_else(|| ApiError::missing("decision_id"))?;
    let decision_id = match uuid::Uuid::parse_str(&decision_id) {
        Ok(id) => id.to_string(),
        Err(_) => {
            return Err(ApiError::invalid(
                "decision_id",
                format!("`{}` is not a decision id (a UUID)", truncate(&decision_id)),
            ));
        }
    };
    let outcome_text = raw.outcome.ok_or_else(|| ApiError::missing("outcome"))?;
    let outcome = Outcome::parse(&outcome_text).ok_or_else(|| {
        let known: Vec<&str> = Outcome::ALL
            .iter()
            .map(|outcome| outcome.as_str())
            .collect();
        ApiError::invalid(
            "outcome",
            format!(
                "unknown outcome `{}`: expected one of {}",
                truncate(&outcome_text),
                known.join(", ")
            ),
        )
    })?;
    let timestamp = match raw.timestamp.as_deref() {
        Some(text) => Some(check_not_future(
            "timestamp",
            parse_timestamp("timestamp", text)?,
            Utc::now(),
        )?),
        None => None,
    };
    Ok(EventRequest {
        decision_id,
        outcome,
        timestamp,
    })
}

/// Shortens client input quoted in an error message.
pub fn truncate(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(body: &str) -> Result<Attempt, ApiError> {
        decode::<ScoreRequest>(body.as_bytes())?.into_attempt(Utc::now())
    }

    #[test]
    fn user_id_is_folded_and_composed() {
        assert_eq!(normalize_user_id("Alice"), "alice");
        assert_eq!(normalize_user_id("ＡＬＩＣＥ"), "alice");
        assert_eq!(normalize_user_id("STRASSE"), normalize_user_id("straße"));
        assert_eq!(normalize_user_id("  bob "), "bob");
        assert_eq!(normalize_user_id("a\u{200B}b"), "ab");
        assert_eq!(normalize_user_id("\u{FEFF}alice"), "alice");
        assert_eq!(normalize_user_id("\u{202E}evil"), "evil");
        assert_eq!(normalize_user_id("\u{200B}"), "");
    }

    #[test]
    fn role_is_normalized() {
        let a = attempt(r#"{"user_id":"a","ip":"1.2.3.4","role":"ａｄｍｉｎ"}"#).unwrap();
        assert_eq!(a.role, "admin");
    }

    #[test]
    fn future_and_unroutable_inputs_rejected() {
        let future =
            attempt(r#"{"user_id":"a","ip":"1.2.3.4","timestamp":"2099-06-01T12:00:00Z"}"#)
                .unwrap_err();
        assert_eq!(future.field.as_deref(), Some("timestamp"));
        for ip in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"] {
            let error = attempt(&format!(r#"{{"user_id":"a","ip":"{ip}"}}"#)).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("ip"), "{ip}");
        }
        let duplicate = attempt(r#"{"user_id":"a","user_id":"b","ip":"1.2.3.4"}"#).unwrap_err();
        assert_eq!(duplicate.field.as_deref(), Some("user_id"));
        let zero_width = attempt(r#"{"user_id":"\u200b","ip":"1.2.3.4"}"#).unwrap_err();
        assert_eq!(zero_width.field.as_deref(), Some("user_id"));
    }

    #[test]
    fn ipv4_mapped_address_becomes_ipv4() {
        let a = attempt(r#"{"user_id":"a","ip":"::ffff:81.2.69.142"}"#).unwrap();
        assert_eq!(a.ip.to_string(), "81.2.69.142");
    }

    #[test]
    fn ipv6_novelty_uses_the_64() {
        let first: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let second: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(novelty_network(first), novelty_network(second));
        assert_eq!(novelty_network("10.1.2.3".parse().unwrap()), "10.1.2.3");
    }

    #[test]
    fn bad_inputs_name_their_field() {
        let cases = [
            (r#"{"ip":"1.2.3.4"}"#, "user_id", "missing_field"),
            (r#"{"user_id":"a"}"#, "ip", "missing_field"),
            (r#"{"user_id":"a","ip":"999.1.1.1"}"#, "ip", "invalid_field"),
            (
                r#"{"user_id":"a","ip":"1.2.3.4","rtt_ms":1e999}"#,
                "rtt_ms",
                "invalid_field",
            ),
            (
                r#"{"user_id":"a","ip":"1.2.3.4","rtt_ms":"NaN"}"#,
                "rtt_ms",
                "invalid_field",
            ),
            (
                r#"{"user_id":"a","ip":"1.2.3.4","rtt_ms":-5}"#,
                "rtt_ms",
                "invalid_field",
            ),
            (
                r#"{"user_id":"a","ip":"1.2.3.4","timestamp":"yesterday"}"#,
                "timestamp",
                "invalid_field",
            ),
            (
                r#"{"user_id":"a","ip":"1.2.3.4","timestamp":"1900-01-01T00:00:00Z"}"#,
                "timestamp",
                "invalid_field",
            ),
            (
                r#"{"user_id":"","ip":"1.2.3.4"}"#,
                "user_id",
                "invalid_field",
            ),
            (
                r#"{"user_id":42,"ip":"1.2.3.4"}"#,
                "user_id",
                "invalid_field",
            ),
            (
                r#"{"user_id":"a","ip":"1.2.3.4","keystrokes":{"events":[{"down_ms":0,"up_ms":1},{"down_ms":"x","up_ms":2}]}}"#,
                "keystrokes.events[1].down_ms",
                "invalid_field",
            ),
            (
                r#"{"user_id":"a","ip":"1.2.3.4","keystrokes":{"events":[{"down_ms":0}]}}"#,
                "keystrokes.events[0].up_ms",
                "missing_field",
            ),
            (
                r#"{"user_id":"a","ip":"1.2.3.4","device":{"id":""}}"#,
                "device.id",
                "invalid_field",
            ),
        ];
        for (body, field, code) in cases {
            let error = attempt(body).unwrap_err();
            assert_eq!(
                error.field.as_deref(),
                Some(field),
                "body {body}: {error:?}"
            );
            assert_eq!(error.code, code, "body {body}");
            assert_eq!(error.status, 400, "body {body}");
        }
    }

    #[test]
    fn malformed_json_has_no_field() {
        let error = attempt("{not json").unwrap_err();
        assert_eq!(error.code, "malformed_json");
        assert_eq!(error.field, None);
        let trailing = attempt(r#"{"user_id":"a","ip":"1.2.3.4"} x"#).unwrap_err();
        assert_eq!(trailing.code, "malformed_json");
    }

    #[test]
    fn event_outcome_must_be_known() {
        let id = uuid::Uuid::new_v4();
        let error =
            parse_event(format!(r#"{{"decision_id":"{id}","outcome":"maybe"}}"#).as_bytes())
                .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("outcome"));
        let ok =
            parse_event(format!(r#"{{"decision_id":"{id}","outcome":"mfa_passed"}}"#).as_bytes())
                .unwrap();
        assert_eq!(ok.outcome, Outcome::MfaPassed);
        let bad_id = parse_event(br#"{"decision_id":"x","outcome":"mfa_passed"}"#).unwrap_err();
        assert_eq!(bad_id.field.as_deref(), Some("decision_id"));
    }

    #[test]
    fn digest_depends_on_inputs() {
        let a = attempt(r#"{"user_id":"a","ip":"1.2.3.4","timestamp":"2026-01-01T00:00:00Z"}"#)
            .unwrap();
        let b = attempt(r#"{"user_id":"A","ip":"1.2.3.4","timestamp":"2026-01-01T00:00:00Z"}"#)
            .unwrap();
        let c = attempt(r#"{"user_id":"a","ip":"1.2.3.5","timestamp":"2026-01-01T00:00:00Z"}"#)
            .unwrap();
        assert_eq!(a.inputs_digest, b.inputs_digest);
        assert_ne!(a.inputs_digest, c.inputs_digest);
    }
}
