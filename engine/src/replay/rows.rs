//! CSV layouts of a login stream and the parsing of one record into a [`LoginRow`].
//!
//! Two layouts are understood: the riskgate layout (documented in `data/logins/README.md`)
//! and the column layout of the public RBA dataset of Wiefling et al. (ACM TOPS 2022).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use csv::StringRecord;
use riskgate_models::keystroke::KeystrokeEvent;
use serde_json::{Map, Value, json};

/// Column layout of a login CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `timestamp,user_id,ip,user_agent,role,app,tenant,device_id,login_successful,is_attack,
    /// attack_kind[,rtt_ms][,keystrokes]`, with RFC 3339 timestamps, `true`/`false` labels
    /// and keystrokes as a JSON array of `{"down_ms", "up_ms"}` objects.
    Riskgate,
    /// The public RBA dataset (Wiefling et al., ACM TOPS 2022): `Login Timestamp` in UTC
    /// without an offset, `True`/`False` labels, no device id and no role.
    Rba,
}

impl Layout {
    /// Picks the layout whose required columns all appear in `headers`.
    pub fn detect(headers: &StringRecord) -> Option<Layout> {
        [Layout::Riskgate, Layout::Rba]
            .into_iter()
            .find(|layout| layout.missing_column(headers).is_none())
    }

    /// Returns the first required column of this layout that `headers` lacks.
    pub fn missing_column(self, headers: &StringRecord) -> Option<&'static str> {
        let required: &[&'static str] = match self {
            Layout::Riskgate => &RISKGATE_REQUIRED,
            Layout::Rba => &RBA_REQUIRED,
        };
        required
            .iter()
            .find(|name| column_index(headers, name).is_none())
            .copied()
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Riskgate => "riskgate",
            Layout::Rba => "rba",
        })
    }
}

impl FromStr for Layout {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "riskgate" => Ok(Layout::Riskgate),
            "rba" => Ok(Layout::Rba),
            other => Err(format!(
                "unknown layout `{other}`: expected `riskgate` or `rba`"
            )),
        }
    }
}

const RISKGATE_REQUIRED: [&str; 5] = [
    "timestamp",
    "user_id",
    "ip",
    "login_successful",
    "is_attack",
];

const RBA_REQUIRED: [&str; 7] = [
    "Login Timestamp",
    "User ID",
    "IP Address",
    "User Agent String",
    "Login Successful",
    "Is Attack IP",
    "Is Account Takeover",
];

/// Attack kind given to RBA rows with `Is Account Takeover` set.
pub const RBA_TAKEOVER_KIND: &str = "takeover";
/// Attack kind given to RBA rows with `Is Attack IP` set and no account takeover.
pub const RBA_ATTACK_IP_KIND: &str = "attack_ip";

/// One login attempt read from a CSV record, with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginRow {
    /// Line of the file on which the record starts; the header is line 1.
    pub line: u64,
    pub timestamp: DateTime<Utc>,
    pub user_id: String,
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    pub role: Option<String>,
    pub app: Option<String>,
    pub tenant: Option<String>,
    pub device_id: Option<String>,
    pub rtt_ms: Option<f64>,
    /// Key events of the typed password, sent as `keystrokes.events`.
    pub keystrokes: Option<Vec<KeystrokeEvent>>,
    /// Whether the password was correct; the replay reports `login_failed` otherwise.
    pub login_successful: bool,
    pub is_attack: bool,
    /// Attack kind as the file names it (`naive`, `vpn`, `takeover`, ...), if it names one.
    pub attack_kind: Option<String>,
}

impl LoginRow {
    /// Builds the `POST /v1/score` body, leaving out the fields the row does not have.
    pub fn score_request(&self) -> Value {
        let mut body = Map::new();
        body.insert("user_id".into(), json!(self.user_id));
        body.insert("ip".into(), json!(self.ip.to_string()));
        body.insert(
            "timestamp".into(),
            json!(self.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        );
        let optional = [
            ("user_agent", &self.user_agent),
            ("role", &self.role),
            ("app", &self.app),
            ("tenant", &self.tenant),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                body.insert(name.into(), json!(value));
            }
        }
        if let Some(id) = &self.device_id {
            body.insert("device".into(), json!({ "id": id }));
        }
        if let Some(rtt) = self.rtt_ms {
            body.insert("rtt_ms".into(), json!(rtt));
        }
        if let Some(events) = &self.keystrokes {
            body.insert("keystrokes".into(), json!({ "events": events }));
        }
        Value::Object(body)
    }
}

/// Column positions of one layout, resolved once from the header row.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    layout: Layout,
    timestamp: usize,
    user_id: usize,
    ip: usize,
    user_agent: Option<usize>,
    role: Option<usize>,
    app: Option<usize>,
    tenant: Option<usize>,
    device_id: Option<usize>,
    rtt_ms: Option<usize>,
    keystrokes: Option<usize>,
    login_successful: usize,
    is_attack: usize,
    attack_kind: Option<usize>,
    /// `Is Account Takeover` of the RBA layout.
    takeover: Option<usize>,
}

impl Columns {
    /// Resolves the columns of `layout`, or returns the name of a missing required column.
    pub(crate) fn resolve(layout: Layout, headers: &StringRecord) -> Result<Self, &'static str> {
        if let Some(missing) = layout.missing_column(headers) {
            return Err(missing);
        }
        let find = |name: &str| column_index(headers, name);
        let require = |name: &'static str| find(name).ok_or(name);
        let columns = match layout {
            Layout::Riskgate => Columns {
                layout,
                timestamp: require("timestamp")?,
                user_id: require("user_id")?,
                ip: require("ip")?,
                user_agent: find("user_agent"),
                role: find("role"),
                app: find("app"),
                tenant: find("tenant"),
                device_id: find("device_id"),
                rtt_ms: find("rtt_ms"),
                keystrokes: find("keystrokes"),
                login_successful: require("login_successful")?,
                is_attack: require("is_attack")?,
                attack_kind: find("attack_kind"),
                takeover: None,
            },
            Layout::Rba => Columns {
                layout,
                timestamp: require("Login Timestamp")?,
                user_id: require("User ID")?,
                ip: require("IP Address")?,
                user_agent: find("User Agent String"),
                role: None,
                app: None,
                tenant: None,
                device_id: None,
                rtt_ms: find("Round-Trip Time [ms]"),
                keystrokes: None,
                login_successful: require("Login Successful")?,
                is_attack: require("Is Attack IP")?,
                attack_kind: None,
                takeover: find("Is Account Takeover"),
            },
        };
        Ok(columns)
    }

    /// Parses one record. The error message names the column and the offending value.
    pub(crate) fn parse(&self, record: &StringRecord, line: u64) -> Result<LoginRow, String> {
        let timestamp = self.parse_timestamp(field(record, self.timestamp))?;
        let user_id = field(record, self.user_id);
        if user_id.is_empty() {
            return Err(format!("missing `{}`", self.name_of_user_id()));
        }
        let ip_text = field(record, self.ip);
        let ip = ip_text
            .parse::<IpAddr>()
            .map_err(|_| format!("invalid IP address `{ip_text}`"))?;
        let success_column = match self.layout {
            Layout::Riskgate => "login_successful",
            Layout::Rba => "Login Successful",
        };
        let login_successful = parse_bool(record, self.login_successful, success_column)?;
        let (is_attack, attack_kind) = self.parse_attack_label(record)?;
        Ok(LoginRow {
            line,
            timestamp,
            user_id: user_id.to_owned(),
            ip,
            user_agent: optional_field(record, self.user_agent),
            role: optional_field(record, self.role),
            app: optional_field(record, self.app),
            tenant: optional_field(record, self.tenant),
            device_id: optional_field(record, self.device_id),
            rtt_ms: parse_rtt(record, self.rtt_ms)?,
            keystrokes: parse_keystrokes(record, self.keystrokes)?,
            login_successful,
            is_attack,
            attack_kind,
        })
    }

    fn name_of_user_id(&self) -> &'static str {
        match self.layout {
            Layout::Riskgate => "user_id",
            Layout::Rba => "User ID",
        }
    }

    fn parse_timestamp(&self, text: &str) -> Result<DateTime<Utc>, String> {
        match self.layout {
            Layout::Riskgate => DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|error| {
                    format!(
                        "invalid timestamp `{text}`: {error}; expected RFC 3339 \
                         such as `2024-03-04T08:15:00Z`"
                    )
                }),
            // The RBA dataset writes UTC times without an offset, e.g. `2020-02-03 12:43:30.772`.
            Layout::Rba => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .map(|time| time.and_utc())
                .map_err(|error| {
                    format!(
                        "invalid `Login Timestamp` `{text}`: {error}; expected \
                         `YYYY-MM-DD HH:MM:SS.fff` in UTC"
                    )
                }),
        }
    }

    fn parse_attack_label(&self, record: &StringRecord) -> Result<(bool, Option<String>), String> {
        match self.layout {
            Layout::Riskgate => {
                let is_attack = parse_bool(record, self.is_attack, "is_attack")?;
                let kind = optional_field(record, self.attack_kind);
                if let (false, Some(kind)) = (is_attack, &kind) {
                    return Err(format!(
                        "`attack_kind` is `{kind}` but `is_attack` is false"
                    ));
                }
                Ok((is_attack, kind))
            }
            Layout::Rba => {
                let attack_ip = parse_bool(record, self.is_attack, "Is Attack IP")?;
                let takeover = match self.takeover {
                    Some(index) => parse_bool(record, index, "Is Account Takeover")?,
                    None => false,
                };
                let kind = if takeover {
                    Some(RBA_TAKEOVER_KIND.to_owned())
                } else if attack_ip {
                    Some(RBA_ATTACK_IP_KIND.to_owned())
                } else {
                    None
                };
                Ok((takeover || attack_ip, kind))
            }
        }
    }
}

/// Finds a column by name, ignoring surrounding whitespace in the header.
fn column_index(headers: &StringRecord, name: &str) -> Option<usize> {
    headers.iter().position(|header| header.trim() == name)
}

/// Returns the trimmed field, or "" when the record is shorter than the header.
fn field(record: &StringRecord, index: usize) -> &str {
    record.get(index).unwrap_or("").trim()
}

fn optional_field(record: &StringRecord, index: Option<usize>) -> Option<String> {
    let value = field(record, index?);
    (!value.is_empty()).then(|| value.to_owned())
}

/// Parses `true`/`false` in any letter case; the RBA dataset writes `True`/`False`.
fn parse_bool(record: &StringRecord, index: usize, column: &str) -> Result<bool, String> {
    let value = field(record, index);
    if value.is_empty() {
        return Err(format!("missing `{column}`: expected true or false"));
    }
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(format!(
            "invalid boolean `{value}` in `{column}`: expected true or false"
        ))
    }
}

fn parse_rtt(record: &StringRecord, index: Option<usize>) -> Result<Option<f64>, String> {
    let Some(index) = index else {
        return Ok(None);
    };
    let text = field(record, index);
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(rtt) if rtt.is_finite() && rtt >= 0.0 => Ok(Some(rtt)),
        _ => Err(format!(
            "invalid round-trip time `{text}`: expected a finite number of milliseconds >= 0"
        )),
    }
}

/// Parses a JSON array of `{"down_ms", "up_ms"}` objects. The error names only the
/// position, because the timings are biometric data and are never logged.
fn parse_keystrokes(
    record: &StringRecord,
    index: Option<usize>,
) -> Result<Option<Vec<KeystrokeEvent>>, String> {
    let Some(index) = index else {
        return Ok(None);
    };
    let text = field(record, index);
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str::<Vec<KeystrokeEvent>>(text)
        .map(Some)
        .map_err(|error| {
            format!(
                "invalid `keystrokes` at character {}: expected a JSON array of objects \
                 with `down_ms` and `up_ms` in milliseconds",
                error.column()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const RISKGATE_HEADER: &str = "timestamp,user_id,ip,user_agent,role,app,tenant,device_id,\
                                   login_successful,is_attack,attack_kind,rtt_ms";

    fn record(line: &str) -> StringRecord {
        StringRecord::from(line.split(',').collect::<Vec<_>>())
    }

    fn riskgate_columns() -> Result<Columns, &'static str> {
        Columns::resolve(Layout::Riskgate, &record(RISKGATE_HEADER))
    }

    #[test]
    fn riskgate_row_all_fields() -> TestResult {
        let columns = riskgate_columns()?;
        let row = columns.parse(
            &record(
                "2024-03-04T08:15:00.250+01:00,ada@clinic.example,89.160.20.115,Firefox/123,\
                 nurse,crm-web,linkoping,dev-7,true,true,targeted,31.5",
            ),
            2,
        )?;
        assert_eq!(row.line, 2);
        assert_eq!(row.timestamp.to_rfc3339(), "2024-03-04T07:15:00.250+00:00");
        assert_eq!(row.user_id, "ada@clinic.example");
        assert_eq!(row.ip.to_string(), "89.160.20.115");
        assert_eq!(row.user_agent.as_deref(), Some("Firefox/123"));
        assert_eq!(row.role.as_deref(), Some("nurse"));
        assert_eq!(row.app.as_deref(), Some("crm-web"));
        assert_eq!(row.tenant.as_deref(), Some("linkoping"));
        assert_eq!(row.device_id.as_deref(), Some("dev-7"));
        assert_eq!(row.rtt_ms, Some(31.5));
        assert!(row.login_successful);
        assert!(row.is_attack);
        assert_eq!(row.attack_kind.as_deref(), Some("targeted"));
        Ok(())
    }

    #[test]
    fn score_request_full_row() -> TestResult {
        let row = riskgate_columns()?.parse(
            &record(
                "2024-03-04T08:15:00.250Z,ada,89.160.20.115,Firefox/123,nurse,crm-web,\
                 linkoping,dev-7,true,false,,31.5",
            ),
            2,
        )?;
        let expected = json!({
            "user_id": "ada",
            "ip": "89.160.20.115",
            "timestamp": "2024-03-04T08:15:00.250Z",
            "user_agent": "Firefox/123",
            "role": "nurse",
            "app": "crm-web",
            "tenant": "linkoping",
            "device": { "id": "dev-7" },
            "rtt_ms": 31.5,
        });
        assert_eq!(row.score_request(), expected);
        Ok(())
    }

    #[test]
    fn score_request_omits_empty_fields() -> TestResult {
        let row = riskgate_columns()?.parse(
            &record("2024-03-04T08:15:00Z,ada,2001:480:10::1,,,,,,false,false,,"),
            3,
        )?;
        let expected = json!({
            "user_id": "ada",
            "ip": "2001:480:10::1",
            "timestamp": "2024-03-04T08:15:00Z",
        });
        assert_eq!(row.score_request(), expected);
        assert!(!row.login_successful);
        assert_eq!(row.attack_kind, None);
        Ok(())
    }

    #[test]
    fn keystrokes_column_sent_as_events() -> TestResult {
        let headers = csv::StringRecord::from(vec![
            "timestamp",
            "user_id",
            "ip",
            "login_successful",
            "is_attack",
            "keystrokes",
        ]);
        let columns = Columns::resolve(Layout::Riskgate, &headers)?;
        let typed = columns.parse(
            &csv::StringRecord::from(vec![
                "2024-03-04T08:15:00Z",
                "ada",
                "81.2.69.160",
                "true",
                "false",
                r#"[{"down_ms":0,"up_ms":80.5},{"down_ms":210,"up_ms":300.25}]"#,
            ]),
            2,
        )?;
        let expected = vec![
            KeystrokeEvent {
                down_ms: 0.0,
                up_ms: 80.5,
            },
            KeystrokeEvent {
                down_ms: 210.0,
                up_ms: 300.25,
            },
        ];
        assert_eq!(typed.keystrokes.as_deref(), Some(expected.as_slice()));
        assert_eq!(
            typed.score_request()["keystrokes"],
            json!({ "events": [
                { "down_ms": 0.0, "up_ms": 80.5 },
                { "down_ms": 210.0, "up_ms": 300.25 },
            ]})
        );

        let pasted = columns.parse(
            &record("2024-03-04T08:15:00Z,ada,81.2.69.160,true,false,"),
            3,
        )?;
        assert_eq!(pasted.keystrokes, None);
        assert_eq!(pasted.score_request().get("keystrokes"), None);

        let invalid = [
            r#"[{"down_ms":0}]"#,
            r#"[{"down_ms":0,"up_ms":1,"key":"a"}]"#,
            "not json",
        ];
        for text in invalid {
            let result = columns.parse(
                &csv::StringRecord::from(vec![
                    "2024-03-04T08:15:00Z",
                    "ada",
                    "81.2.69.160",
                    "true",
                    "false",
                    text,
                ]),
                4,
            );
            let Err(message) = result else {
                return Err(format!("keystrokes `{text}` parsed, expected an error").into());
            };
            assert!(
                message.starts_with("invalid `keystrokes` at character"),
                "`{text}`: message `{message}`"
            );
        }
        Ok(())
    }

    #[test]
    fn riskgate_optional_columns_absent() -> TestResult {
        let headers = record("user_id,timestamp,ip,is_attack,login_successful,extra");
        let columns = Columns::resolve(Layout::Riskgate, &headers)?;
        let row = columns.parse(
            &record("bob,2024-03-04T08:15:00Z,81.2.69.160,TRUE,False,ignored"),
            2,
        )?;
        assert_eq!(row.user_id, "bob");
        assert!(row.is_attack);
        assert!(!row.login_successful);
        assert_eq!(row.attack_kind, None);
        assert_eq!(row.device_id, None);
        assert_eq!(row.rtt_ms, None);
        Ok(())
    }

    #[test]
    fn riskgate_invalid_values_named() -> TestResult {
        let columns = riskgate_columns()?;
        let cases = [
            (
                "2024-03-04 08:15:00,ada,81.2.69.160,,,,,,true,false,,",
                "invalid timestamp `2024-03-04 08:15:00`",
            ),
            (
                "2024-03-04T08:15:00Z,,81.2.69.160,,,,,,true,false,,",
                "missing `user_id`",
            ),
            (
                "2024-03-04T08:15:00Z,ada,81.2.69.999,,,,,,true,false,,",
                "invalid IP address `81.2.69.999`",
            ),
            (
                "2024-03-04T08:15:00Z,ada,81.2.69.160,,,,,,yes,false,,",
                "invalid boolean `yes` in `login_successful`",
            ),
            (
                "2024-03-04T08:15:00Z,ada,81.2.69.160,,,,,,true,,,",
                "missing `is_attack`",
            ),
            (
                "2024-03-04T08:15:00Z,ada,81.2.69.160,,,,,,true,false,naive,",
                "`attack_kind` is `naive` but `is_attack` is false",
            ),
            (
                "2024-03-04T08:15:00Z,ada,81.2.69.160,,,,,,true,false,,NaN",
                "invalid round-trip time `NaN`",
            ),
            (
                "2024-03-04T08:15:00Z,ada,81.2.69.160,,,,,,true,false,,-3",
                "invalid round-trip time `-3`",
            ),
        ];
        for (line, expected) in cases {
            let result = columns.parse(&record(line), 5);
            let Err(message) = result else {
                return Err(format!("`{line}` parsed, expected an error").into());
            };
            assert!(
                message.starts_with(expected),
                "`{line}`: message `{message}` does not start with `{expected}`"
            );
        }
        Ok(())
    }

    #[test]
    fn short_record_reports_missing_field() -> TestResult {
        let columns = riskgate_columns()?;
        let result = columns.parse(&record("2024-03-04T08:15:00Z"), 7);
        assert_eq!(result, Err("missing `user_id`".to_owned()));
        Ok(())
    }

    #[test]
    fn rba_row_maps_labels() -> TestResult {
        let headers = record(
            "index,Login Timestamp,User ID,Round-Trip Time [ms],IP Address,Country,Region,City,\
             ASN,User Agent String,Browser Name and Version,OS Name and Version,Device Type,\
             Login Successful,Is Attack IP,Is Account Takeover",
        );
        let columns = Columns::resolve(Layout::Rba, &headers)?;
        let takeover = columns.parse(
            &record(
                "7,2020-02-03 12:44:12.799,-3243978724802435038,,170.39.78.177,US,-,-,393398,\
                 UA,Chrome,Android,mobile,True,True,True",
            ),
            9,
        )?;
        assert!(takeover.is_attack);
        assert_eq!(takeover.attack_kind.as_deref(), Some(RBA_TAKEOVER_KIND));
        assert_eq!(
            takeover
                .timestamp
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "2020-02-03T12:44:12.799Z"
        );
        assert_eq!(takeover.device_id, None);
        assert_eq!(takeover.role, None);

        let attack_ip = columns.parse(
            &record(
                "8,2020-02-03 12:44:13,42,12.5,10.0.0.47,US,-,-,398986,UA,Chrome,Android,mobile,\
                 False,True,False",
            ),
            10,
        )?;
        assert!(attack_ip.is_attack);
        assert!(!attack_ip.login_successful);
        assert_eq!(attack_ip.attack_kind.as_deref(), Some(RBA_ATTACK_IP_KIND));
        assert_eq!(attack_ip.rtt_ms, Some(12.5));

        let invalid = columns.parse(
            &record(
                "9,2020-02-03T12:44:13Z,42,,10.0.0.47,US,-,-,398986,UA,Chrome,Android,mobile,\
                 False,False,False",
            ),
            11,
        );
        let Err(message) = invalid else {
            return Err("an RFC 3339 timestamp parsed in the RBA layout".into());
        };
        assert!(message.starts_with("invalid `Login Timestamp` `2020-02-03T12:44:13Z`"));
        Ok(())
    }

    #[test]
    fn layout_detect_from_header() {
        assert_eq!(
            Layout::detect(&record(RISKGATE_HEADER)),
            Some(Layout::Riskgate)
        );
        assert_eq!(
            Layout::detect(&record(
                "Login Timestamp,User ID,IP Address,User Agent String,Login Successful,\
                 Is Attack IP,Is Account Takeover"
            )),
            Some(Layout::Rba)
        );
        assert_eq!(Layout::detect(&record("time,user,address")), None);
    }

    #[test]
    fn layout_missing_column_named() {
        let headers = record("timestamp,user_id,ip,login_successful");
        assert_eq!(Layout::Riskgate.missing_column(&headers), Some("is_attack"));
        assert_eq!(
            Layout::Rba.missing_column(&headers),
            Some("Login Timestamp")
        );
    }

    #[test]
    fn layout_from_str_round_trip() {
        for layout in [Layout::Riskgate, Layout::Rba] {
            assert_eq!(layout.to_string().parse::<Layout>(), Ok(layout));
        }
        assert_eq!(
            "csv".parse::<Layout>(),
            Err("unknown layout `csv`: expected `riskgate` or `rba`".to_owned())
        );
    }
}
