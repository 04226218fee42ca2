//! Reading login history exports with polars.
//!
//! Two column layouts are read, from CSV or Parquet (chosen by the file extension):
//!
//! - [`Format::Riskgate`]: `timestamp` (RFC 3339), `user_id`, `ip`, `login_successful` and
//!   `is_attack` (`true`/`false`) are required. `user_agent`, `role`, `app`, `tenant`,
//!   `device_id`, `attack_kind` (empty or `naive`, `vpn`, `targeted`, `stuffing`, `spray`),
//!   `rtt_ms` and `keystrokes` (a JSON array of `{"down_ms", "up_ms"}` objects) are optional
//!   columns, and an empty cell means no value.
//! - [`Format::Rba`]: the public RBA login dataset of Wiefling et al.
//!   (`index,Login Timestamp,User ID,Round-Trip Time [ms],IP Address,Country,Region,City,ASN,
//!   User Agent String,...,Login Successful,Is Attack IP,Is Account Takeover`), with UTC
//!   timestamps such as `2020-02-03 12:43:30.772` and `True`/`False` booleans. An account
//!   takeover is an attack of kind `takeover`, and any other row from an attack IP is an
//!   attack of kind `attack_ip`. A `-` region or city means unknown.
//!
//! Every column is read as text and parsed here, so a bad cell is reported with its row
//! number (1-based, not counting the header) and column. [`read_logins`] fails on the first
//! bad row, and [`read_logins_skipping`] skips bad rows and counts them. Parquet timestamp
//! columns of a datetime type are also accepted, and a timezone-naive one is read as UTC.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::TrainError;
use crate::keystroke::features::KeystrokeEvent;

/// Number of row errors that [`read_logins_skipping`] keeps. It counts the rest without
/// keeping them.
pub const MAX_REPORTED_ROW_ERRORS: usize = 100;

/// The column layout of a history export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Riskgate,
    Rba,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Riskgate => "riskgate",
            Format::Rba => "RBA dataset",
        })
    }
}

/// The kind of a labelled attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackKind {
    /// Password known, attacker anywhere in the world.
    Naive,
    /// Password known, attacker behind a VPN or hosting network near the victim.
    Vpn,
    /// Password known, attacker on the victim's own network with a similar device.
    Targeted,
    /// Many accounts tried with leaked credentials.
    Stuffing,
    /// Few common passwords tried against many accounts.
    Spray,
    /// RBA dataset: `Is Account Takeover` = True.
    Takeover,
    /// RBA dataset: `Is Attack IP` = True without a takeover.
    AttackIp,
}

impl AttackKind {
    /// All kinds, in a fixed order for reports.
    pub const ALL: [AttackKind; 7] = [
        AttackKind::Naive,
        AttackKind::Vpn,
        AttackKind::Targeted,
        AttackKind::Stuffing,
        AttackKind::Spray,
        AttackKind::Takeover,
        AttackKind::AttackIp,
    ];

    /// Returns the name used in data files.
    pub fn as_str(self) -> &'static str {
        match self {
            AttackKind::Naive => "naive",
            AttackKind::Vpn => "vpn",
            AttackKind::Targeted => "targeted",
            AttackKind::Stuffing => "stuffing",
            AttackKind::Spray => "spray",
            AttackKind::Takeover => "takeover",
            AttackKind::AttackIp => "attack_ip",
        }
    }

    /// Parses a name written by [`AttackKind::as_str`], in any letter case.
    pub fn parse(name: &str) -> Option<AttackKind> {
        AttackKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One login of a history export.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginRecord {
    /// Row in the file, 1-based, not counting the header.
    pub row: usize,
    pub timestamp: DateTime<Utc>,
    pub user_id: String,
    /// The client address, with IPv4-mapped IPv6 addresses converted to IPv4.
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    pub role: Option<String>,
    pub app: Option<String>,
    pub tenant: Option<String>,
    pub device_id: Option<String>,
    /// Whether the password was right.
    pub login_successful: bool,
    pub is_attack: bool,
    pub attack_kind: Option<AttackKind>,
    pub rtt_ms: Option<f64>,
    /// Key events of the typed password, in typing order.
    pub keystrokes: Option<Vec<KeystrokeEvent>>,
    /// Country from the RBA dataset's own geolocation; `None` in the riskgate layout.
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub asn: Option<u32>,
}

/// A row that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Row in the file, 1-based, not counting the header.
    pub row: usize,
    pub column: &'static str,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row {}, column `{}`: {}",
            self.row, self.column, self.message
        )
    }
}

/// The result of [`read_logins_skipping`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoginsRead {
    /// Valid rows, sorted by timestamp (rows with equal timestamps keep their file order).
    pub records: Vec<LoginRecord>,
    /// Number of rows skipped.
    pub skipped: usize,
    /// The first [`MAX_REPORTED_ROW_ERRORS`] skipped rows, in file order.
    pub errors: Vec<RowError>,
}

/// Reads a history export and fails on the first invalid row.
pub fn read_logins(path: &Path, format: Format) -> Result<Vec<LoginRecord>, TrainError> {
    let read = read_logins_skipping(path, format)?;
    match read.errors.into_iter().next() {
        Some(error) => Err(TrainError::InvalidRow {
            path: path.to_owned(),
            error,
        }),
        None => Ok(read.records),
    }
}

/// Reads a history export, skipping invalid rows and counting them.
///
/// NOTE: the whole file is held in memory, first as a polars table and then as records of
/// an estimated 0.5 KiB each with a user agent. The full RBA dataset (31 million rows) would
/// not fit in 24 GiB, so split such a file by time before reading it.
pub fn read_logins_skipping(path: &Path, format: Format) -> Result<LoginsRead, TrainError> {
    let polars_error = |source| TrainError::Polars {
        path: path.to_owned(),
        source,
    };
    let mut frame = scan(path)?;
    let schema = frame.collect_schema().map_err(polars_error)?;
    let columns = Columns::for_format(format);
    for required in columns.required() {
        if schema.get(required).is_none() {
            return Err(TrainError::MissingColumn {
                path: path.to_owned(),
                column: required,
                format,
            });
        }
    }

    // Select the known columns that exist, all as text except a datetime timestamp.
    let present: Vec<&'static str> = columns
        .all()
        .into_iter()
        .filter(|name| schema.get(name).is_some())
        .collect();
    let timestamp_is_datetime = matches!(
        schema.get(columns.timestamp),
        Some(DataType::Datetime(_, _))
    );
    let expressions: Vec<Expr> = present
        .iter()
        .map(|&name| {
            if name == columns.timestamp && timestamp_is_datetime {
                col(name).dt().timestamp(TimeUnit::Milliseconds)
            } else {
                col(name).cast(DataType::String)
            }
        })
        .collect();
    let mut table = frame.select(expressions).collect().map_err(polars_error)?;
    // One chunk per column makes the per-row lookups below constant time.
    table.rechunk_mut_par();
    let cells = Cells::new(&table, &columns, timestamp_is_datetime).map_err(polars_error)?;

    let parsed: Vec<Result<LoginRecord, RowError>> = (0..table.height())
        .into_par_iter()
        .map(|index| parse_row(&cells, &columns, format, index))
        .collect();

    let mut records = Vec::with_capacity(parsed.len());
    let mut errors = Vec::new();
    let mut skipped = 0;
    for result in parsed {
        match result {
            Ok(record) => records.push(record),
            Err(error) => {
                skipped += 1;
                if errors.len() < MAX_REPORTED_ROW_ERRORS {
                    errors.push(error);
                }
            }
        }
    }
    records.par_sort_by_key(|record| (record.timestamp, record.row));
    Ok(LoginsRead {
        records,
        skipped,
        errors,
    })
}

/// Returns the SHA-256 digest of a file in hex, for an artifact's `training_data_sha256`.
pub fn sha256_file(path: &Path) -> Result<String, TrainError> {
    let io_error = |source| TrainError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    loop {
        let read = file.read(&mut buffer).map_err(io_error)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn scan(path: &Path) -> Result<LazyFrame, TrainError> {
    let polars_error = |source| TrainError::Polars {
        path: path.to_owned(),
        source,
    };
    if !path.is_file() {
        return Err(TrainError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    let polars_path = PlRefPath::try_from_path(path).map_err(polars_error)?;
    match extension.as_deref() {
        // Schema inference over 0 rows reads every column as text, so cells are parsed here
        // with row numbers in the errors.
        Some("csv") => LazyCsvReader::new(polars_path)
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .finish()
            .map_err(polars_error),
        Some("parquet" | "pq") => {
            LazyFrame::scan_parquet(polars_path, ScanArgsParquet::default()).map_err(polars_error)
        }
        _ => Err(TrainError::UnsupportedExtension {
            path: path.to_owned(),
        }),
    }
}

/// Column names of one layout. `None` marks a field the layout does not have.
struct Columns {
    timestamp: &'static str,
    user_id: &'static str,
    ip: &'static str,
    login_successful: &'static str,
    /// Riskgate: `is_attack`. RBA: `Is Account Takeover`.
    is_attack: &'static str,
    /// RBA only: `Is Attack IP`.
    attack_ip: Option<&'static str>,
    attack_kind: Option<&'static str>,
    user_agent: &'static str,
    rtt_ms: &'static str,
    role: Option<&'static str>,
    app: Option<&'static str>,
    tenant: Option<&'static str>,
    device_id: Option<&'static str>,
    keystrokes: Option<&'static str>,
    country: Option<&'static str>,
    region: Option<&'static str>,
    city: Option<&'static str>,
    asn: Option<&'static str>,
}

impl Columns {
    fn for_format(format: Format) -> Columns {
        match format {
            Format::Riskgate => Columns {
                timestamp: "timestamp",
                user_id: "user_id",
                ip: "ip",
                login_successful: "login_successful",
                is_attack: "is_attack",
                attack_ip: None,
                attack_kind: Some("attack_kind"),
                user_agent: "user_agent",
                rtt_ms: "rtt_ms",
                role: Some("role"),
                app: Some("app"),
                tenant: Some("tenant"),
                device_id: Some("device_id"),
                keystrokes: Some("keystrokes"),
                country: None,
                region: None,
                city: None,
                asn: None,
            },
            Format::Rba => Columns {
                timestamp: "Login Timestamp",
                user_id: "User ID",
                ip: "IP Address",
                login_successful: "Login Successful",
                is_attack: "Is Account Takeover",
                attack_ip: Some("Is Attack IP"),
                attack_kind: None,
                user_agent: "User Agent String",
                rtt_ms: "Round-Trip Time [ms]",
                role: None,
                app: None,
                tenant: None,
                device_id: None,
                keystrokes: None,
                country: Some("Country"),
                region: Some("Region"),
                city: Some("City"),
                asn: Some("ASN"),
            },
        }
    }

    fn required(&self) -> Vec<&'static str> {
        let mut required = vec![
            self.timestamp,
            self.user_id,
            self.ip,
            self.login_successful,
            self.is_attack,
        ];
        required.extend(self.attack_ip);
        required
    }

    fn all(&self) -> Vec<&'static str> {
        let mut all = self.required();
        all.push(self.user_agent);
        all.push(self.rtt_ms);
        all.extend(
            [
                self.attack_kind,
                self.role,
                self.app,
                self.tenant,
                self.device_id,
                self.keystrokes,
                self.country,
                self.region,
                self.city,
                self.asn,
            ]
            .into_iter()
            .flatten(),
        );
        all
    }
}

/// The columns of the collected table, looked up by name once so that rows are parsed
/// without name lookups. `None` marks a column the file or the layout does not have.
struct Cells<'a> {
    timestamp: Option<&'a StringChunked>,
    /// The timestamp in milliseconds since the epoch, when the file stores a datetime type.
    timestamp_ms: Option<&'a Int64Chunked>,
    user_id: Option<&'a StringChunked>,
    ip: Option<&'a StringChunked>,
    login_successful: Option<&'a StringChunked>,
    is_attack: Option<&'a StringChunked>,
    attack_ip: Option<&'a StringChunked>,
    attack_kind: Option<&'a StringChunked>,
    user_agent: Option<&'a StringChunked>,
    rtt_ms: Option<&'a StringChunked>,
    role: Option<&'a StringChunked>,
    app: Option<&'a StringChunked>,
    tenant: Option<&'a StringChunked>,
    device_id: Option<&'a StringChunked>,
    keystrokes: Option<&'a StringChunked>,
    country: Option<&'a StringChunked>,
    region: Option<&'a StringChunked>,
    city: Option<&'a StringChunked>,
    asn: Option<&'a StringChunked>,
}

impl<'a> Cells<'a> {
    fn new(
        table: &'a DataFrame,
        columns: &Columns,
        timestamp_is_datetime: bool,
    ) -> PolarsResult<Cells<'a>> {
        let text = |name: Option<&str>| -> PolarsResult<Option<&'a StringChunked>> {
            match name.and_then(|name| table.column(name).ok()) {
                Some(column) => Ok(Some(column.str()?)),
                None => Ok(None),
            }
        };
        let (timestamp, timestamp_ms) = if timestamp_is_datetime {
            (None, Some(table.column(columns.timestamp)?.i64()?))
        } else {
            (text(Some(columns.timestamp))?, None)
        };
        Ok(Cells {
            timestamp,
            timestamp_ms,
            user_id: text(Some(columns.user_id))?,
            ip: text(Some(columns.ip))?,
            login_successful: text(Some(columns.login_successful))?,
            is_attack: text(Some(columns.is_attack))?,
            attack_ip: text(columns.attack_ip)?,
            attack_kind: text(columns.attack_kind)?,
            user_agent: text(Some(columns.user_agent))?,
            rtt_ms: text(Some(columns.rtt_ms))?,
            role: text(columns.role)?,
            app: text(columns.app)?,
            tenant: text(columns.tenant)?,
            device_id: text(columns.device_id)?,
            keystrokes: text(columns.keystrokes)?,
            country: text(columns.country)?,
            region: text(columns.region)?,
            city: text(columns.city)?,
            asn: text(columns.asn)?,
        })
    }
}

/// Returns the trimmed cell, or `None` when the column is absent or the cell is empty.
fn cell(column: Option<&StringChunked>, index: usize) -> Option<&str> {
    column?
        .get(index)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn required_cell<'a>(
    values: Option<&'a StringChunked>,
    index: usize,
    column: &'static str,
) -> Result<&'a str, RowError> {
    cell(values, index).ok_or_else(|| RowError {
        row: index + 1,
        column,
        message: "missing value".to_owned(),
    })
}

fn parse_row(
    cells: &Cells<'_>,
    columns: &Columns,
    format: Format,
    index: usize,
) -> Result<LoginRecord, RowError> {
    let row = index + 1;
    let error = |column: &'static str, message: String| RowError {
        row,
        column,
        message,
    };

    let timestamp = match cells.timestamp_ms {
        Some(milliseconds) => milliseconds
            .get(index)
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| error(columns.timestamp, "missing value".to_owned()))?,
        None => {
            let text = required_cell(cells.timestamp, index, columns.timestamp)?;
            parse_timestamp(text, format).ok_or_else(|| {
                let expected = match format {
                    Format::Riskgate => "an RFC 3339 time such as `2024-03-04T08:15:00Z`",
                    Format::Rba => "a UTC time such as `2020-02-03 12:43:30.772`",
                };
                error(
                    columns.timestamp,
                    format!("invalid timestamp `{text}`: expected {expected}"),
                )
            })?
        }
    };
    let user_id = required_cell(cells.user_id, index, columns.user_id)?.to_owned();
    let ip_text = required_cell(cells.ip, index, columns.ip)?;
    let ip = ip_text
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| error(columns.ip, format!("invalid IP address `{ip_text}`")))?;
    let boolean = |values: Option<&StringChunked>, column: &'static str| {
        let text = required_cell(values, index, column)?;
        parse_bool(text).ok_or_else(|| {
            error(
                column,
                format!("invalid boolean `{text}`: expected true or false"),
            )
        })
    };
    let login_successful = boolean(cells.login_successful, columns.login_successful)?;
    let labelled_attack = boolean(cells.is_attack, columns.is_attack)?;

    let (is_attack, attack_kind) = match columns.attack_ip {
        // RBA: a takeover, else an attack IP, else legitimate.
        Some(attack_ip_column) => {
            let attack_ip = boolean(cells.attack_ip, attack_ip_column)?;
            if labelled_attack {
                (true, Some(AttackKind::Takeover))
            } else if attack_ip {
                (true, Some(AttackKind::AttackIp))
            } else {
                (false, None)
            }
        }
        None => {
            let kind = match cell(cells.attack_kind, index) {
                None => None,
                Some(text) => Some(AttackKind::parse(text).ok_or_else(|| {
                    error(
                        "attack_kind",
                        format!(
                            "unknown attack kind `{text}`: expected naive, vpn, targeted, \
                             stuffing, spray, takeover or attack_ip"
                        ),
                    )
                })?),
            };
            if kind.is_some() && !labelled_attack {
                return Err(error(
                    "attack_kind",
                    "attack kind given for a row whose `is_attack` is false".to_owned(),
                ));
            }
            (labelled_attack, kind)
        }
    };

    let rtt_ms = match cell(cells.rtt_ms, index) {
        None => None,
        Some(text) => Some(
            text.parse::<f64>()
                .ok()
                .filter(|value| value.is_finite() && *value >= 0.0)
                .ok_or_else(|| {
                    error(
                        columns.rtt_ms,
                        format!("invalid round-trip time `{text}`: expected a number >= 0"),
                    )
                })?,
        ),
    };
    let keystrokes = match cell(cells.keystrokes, index) {
        None => None,
        Some(text) => Some(serde_json::from_str::<Vec<KeystrokeEvent>>(text).map_err(
            |parse_error| {
                // The cell is not quoted, because typing rhythm is biometric data.
                error(
                    "keystrokes",
                    format!(
                        "invalid keystrokes at character {} of the cell: expected a JSON array \
                         of {{\"down_ms\", \"up_ms\"}} objects",
                        parse_error.column()
                    ),
                )
            },
        )?),
    };
    let asn = match cell(cells.asn, index) {
        None => None,
        Some(text) => Some(parse_asn(text).ok_or_else(|| {
            error(
                "ASN",
                format!("invalid ASN `{text}`: expected an integer from 0 to 4294967295"),
            )
        })?),
    };
    let place = |values: Option<&StringChunked>| {
        cell(values, index)
            .filter(|value| *value != "-")
            .map(str::to_owned)
    };
    let text = |values: Option<&StringChunked>| cell(values, index).map(str::to_owned);

    Ok(LoginRecord {
        row,
        timestamp,
        user_id,
        ip,
        user_agent: text(cells.user_agent),
        role: text(cells.role),
        app: text(cells.app),
        tenant: text(cells.tenant),
        device_id: text(cells.device_id),
        login_successful,
        is_attack,
        attack_kind,
        rtt_ms,
        keystrokes,
        country: place(cells.country),
        region: place(cells.region),
        city: place(cells.city),
        asn,
    })
}

fn parse_timestamp(text: &str, format: Format) -> Option<DateTime<Utc>> {
    match format {
        Format::Riskgate => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| time.with_timezone(&Utc)),
        Format::Rba => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|time| time.and_utc()),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Parses an ASN written as an integer, or as a float with no fractional part (as a
/// Parquet float column is cast to text).
fn parse_asn(text: &str) -> Option<u32> {
    if let Ok(asn) = text.parse::<u32>() {
        return Some(asn);
    }
    let value = text.parse::<f64>().ok()?;
    let in_range = value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value);
    in_range.then_some(value as u32)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const RBA_SAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/logins/rba-dataset-first19rows.csv"
    );

    const RISKGATE_HEADER: &str = "timestamp,user_id,ip,user_agent,role,app,tenant,device_id,\
                                   login_successful,is_attack,attack_kind,rtt_ms,keystrokes";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn csv_to_parquet(csv: &Path) -> PathBuf {
        let mut table = LazyCsvReader::new(PlRefPath::try_from_path(csv).unwrap())
            .with_has_header(true)
            .finish()
            .unwrap()
            .collect()
            .unwrap();
        let parquet = csv.with_extension("parquet");
        let file = File::create(&parquet).unwrap();
        ParquetWriter::new(file).finish(&mut table).unwrap();
        parquet
    }

    #[test]
    fn rba_sample_reads_all_rows() {
        let records = read_logins(Path::new(RBA_SAMPLE), Format::Rba).unwrap();
        assert_eq!(records.len(), 19);
        assert_eq!(records.iter().filter(|r| r.login_successful).count(), 7);
        let attack_ip: Vec<usize> = records
            .iter()
            .filter(|r| r.attack_kind == Some(AttackKind::AttackIp))
            .map(|r| r.row)
            .collect();
        assert_eq!(attack_ip, [5, 6]);
        assert!(
            records
                .iter()
                .all(|r| r.attack_kind != Some(AttackKind::Takeover))
        );

        let first = &records[0];
        assert_eq!(first.row, 1);
        assert_eq!(first.user_id, "-4324475583306591935");
        assert_eq!(first.ip, "10.0.65.171".parse::<IpAddr>().unwrap());
        assert_eq!(first.country.as_deref(), Some("NO"));
        assert_eq!(first.region, None);
        assert_eq!(first.asn, Some(29695));
        assert_eq!(first.rtt_ms, None);
        assert_eq!(
            first.timestamp,
            DateTime::parse_from_rfc3339("2020-02-03T12:43:30.772Z").unwrap()
        );
        assert!(
            first
                .user_agent
                .as_deref()
                .unwrap()
                .contains("Firefox/20.0.0.1618")
        );

        let with_rtt = records.iter().find(|r| r.row == 16).unwrap();
        assert_eq!(with_rtt.rtt_ms, Some(1123.0));
        assert_eq!(with_rtt.city.as_deref(), Some("Oslo"));
        assert!(
            records
                .windows(2)
                .all(|pair| pair[0].timestamp <= pair[1].timestamp)
        );
    }

    #[test]
    fn rba_sample_reads_from_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("rba.csv");
        std::fs::copy(RBA_SAMPLE, &csv).unwrap();
        let parquet = csv_to_parquet(&csv);
        let from_csv = read_logins(&csv, Format::Rba).unwrap();
        let from_parquet = read_logins(&parquet, Format::Rba).unwrap();
        assert_eq!(from_parquet, from_csv);
    }

    #[test]
    fn riskgate_layout_parses_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{RISKGATE_HEADER}\n\
             2024-03-04T09:15:00.250+01:00,ann@example.org,::ffff:192.0.2.7,Firefox/128,nurse,\
             crm-web,clinic,dev-1,TRUE,false,,4.5,\"[{{\"\"down_ms\"\":0,\"\"up_ms\"\":90}}]\"\n\
             2024-03-04T07:00:00Z,bob@example.org,2001:db8::1,,,,,,false,true,stuffing,,\n"
        );
        let path = write(dir.path(), "logins.csv", &text);
        let records = read_logins(&path, Format::Riskgate).unwrap();
        assert_eq!(records.len(), 2);

        // Sorted by time: the second row comes first.
        let bob = &records[0];
        assert_eq!(bob.row, 2);
        assert!(bob.is_attack);
        assert_eq!(bob.attack_kind, Some(AttackKind::Stuffing));
        assert_eq!(bob.user_agent, None);
        assert_eq!(bob.keystrokes, None);
        assert_eq!(bob.rtt_ms, None);

        let ann = &records[1];
        assert_eq!(ann.row, 1);
        assert_eq!(
            ann.timestamp,
            DateTime::parse_from_rfc3339("2024-03-04T08:15:00.250Z").unwrap()
        );
        assert_eq!(ann.ip, "192.0.2.7".parse::<IpAddr>().unwrap());
        assert!(ann.login_successful);
        assert!(!ann.is_attack);
        assert_eq!(ann.role.as_deref(), Some("nurse"));
        assert_eq!(ann.device_id.as_deref(), Some("dev-1"));
        assert_eq!(ann.rtt_ms, Some(4.5));
        let keystrokes = ann.keystrokes.as_ref().unwrap();
        assert_eq!(keystrokes.len(), 1);
        assert_eq!(keystrokes[0].up_ms, 90.0);
        assert_eq!(ann.country, None);
    }

    #[test]
    fn riskgate_layout_reads_from_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{RISKGATE_HEADER}\n\
             2024-03-04T07:00:00Z,bob@example.org,192.0.2.1,Firefox/128,,,,,true,true,naive,12,\n\
             2024-03-04T07:00:01Z,bob@example.org,192.0.2.2,,,,,,false,false,,,\n"
        );
        let csv = write(dir.path(), "logins.csv", &text);
        let parquet = csv_to_parquet(&csv);
        let from_csv = read_logins(&csv, Format::Riskgate).unwrap();
        let from_parquet = read_logins(&parquet, Format::Riskgate).unwrap();
        assert_eq!(from_parquet, from_csv);
        assert_eq!(from_parquet[0].attack_kind, Some(AttackKind::Naive));
    }

    #[test]
    fn parquet_datetime_timestamps_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let times = Int64Chunked::from_slice("timestamp".into(), &[1_709_535_600_000])
            .into_datetime(TimeUnit::Milliseconds, None)
            .into_series();
        let mut table = DataFrame::new(
            1,
            vec![
                times.into(),
                Column::new("user_id".into(), ["ann"]),
                Column::new("ip".into(), ["192.0.2.1"]),
                Column::new("login_successful".into(), [true]),
                Column::new("is_attack".into(), [false]),
                Column::new("rtt_ms".into(), [3.5f64]),
            ],
        )
        .unwrap();
        let path = dir.path().join("typed.parquet");
        ParquetWriter::new(File::create(&path).unwrap())
            .finish(&mut table)
            .unwrap();
        let records = read_logins(&path, Format::Riskgate).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].timestamp,
            DateTime::parse_from_rfc3339("2024-03-04T07:00:00Z").unwrap()
        );
        assert!(records[0].login_successful);
        assert_eq!(records[0].rtt_ms, Some(3.5));
    }

    #[test]
    fn bad_rows_are_reported_with_row_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{RISKGATE_HEADER}\n\
             2024-03-04T07:00:00Z,ann,192.0.2.1,,,,,,true,false,,,\n\
             yesterday,ann,192.0.2.1,,,,,,true,false,,,\n\
             2024-03-04T07:00:00Z,ann,999.1.1.1,,,,,,true,false,,,\n\
             2024-03-04T07:00:00Z,,192.0.2.1,,,,,,true,false,,,\n\
             2024-03-04T07:00:00Z,ann,192.0.2.1,,,,,,maybe,false,,,\n\
             2024-03-04T07:00:00Z,ann,192.0.2.1,,,,,,true,false,naive,,\n\
             2024-03-04T07:00:00Z,ann,192.0.2.1,,,,,,true,true,alien,,\n\
             2024-03-04T07:00:00Z,ann,192.0.2.1,,,,,,true,false,,-3,\n\
             2024-03-04T07:00:00Z,ann,192.0.2.1,,,,,,true,false,,,[{{\"\"down_ms\"\":1}}]\n"
        );
        let path = write(dir.path(), "bad.csv", &text);
        let read = read_logins_skipping(&path, Format::Riskgate).unwrap();
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.skipped, 8);
        let located: Vec<(usize, &str)> = read
            .errors
            .iter()
            .map(|error| (error.row, error.column))
            .collect();
        assert_eq!(
            located,
            [
                (2, "timestamp"),
                (3, "ip"),
                (4, "user_id"),
                (5, "login_successful"),
                (6, "attack_kind"),
                (7, "attack_kind"),
                (8, "rtt_ms"),
                (9, "keystrokes"),
            ]
        );
        assert!(read.errors[0].message.contains("`yesterday`"));
        assert!(read.errors[1].message.contains("`999.1.1.1`"));
        assert!(!read.errors[7].message.contains("down_ms\":1"));

        let error = read_logins(&path, Format::Riskgate).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("row 2, column `timestamp`"), "{message}");
        assert!(message.contains("bad.csv"), "{message}");
    }

    #[test]
    fn missing_column_and_extension_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "short.csv",
            "timestamp,user_id\n2024-03-04T07:00:00Z,a\n",
        );
        let error = read_logins(&path, Format::Riskgate).unwrap_err();
        assert!(
            matches!(error, TrainError::MissingColumn { column: "ip", .. }),
            "{error}"
        );

        let error = read_logins(Path::new(RBA_SAMPLE), Format::Riskgate).unwrap_err();
        assert!(matches!(
            error,
            TrainError::MissingColumn {
                column: "timestamp",
                ..
            }
        ));

        let path = write(dir.path(), "logins.txt", "timestamp\n");
        let error = read_logins(&path, Format::Riskgate).unwrap_err();
        assert!(matches!(error, TrainError::UnsupportedExtension { .. }));

        let error = read_logins(&dir.path().join("absent.csv"), Format::Riskgate).unwrap_err();
        assert!(matches!(error, TrainError::Io { .. }));
    }

    #[test]
    fn sha256_file_matches_known_digest() {
        // The digest recorded for this file where it is documented in the repository.
        assert_eq!(
            sha256_file(Path::new(RBA_SAMPLE)).unwrap(),
            "61bdb8b93b804b3909e79ddd74978f4a13befb41f7805d9318e2603ffdf700b8"
        );
    }

    #[test]
    fn helpers_parse_edge_cases() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("FALSE"), Some(false));
        assert_eq!(parse_bool("1"), None);
        assert_eq!(parse_asn("29695"), Some(29695));
        assert_eq!(parse_asn("29695.0"), Some(29695));
        assert_eq!(parse_asn("29695.5"), None);
        assert_eq!(parse_asn("-1"), None);
        assert_eq!(parse_asn("4294967296"), None);
        assert_eq!(AttackKind::parse(" VPN "), Some(AttackKind::Vpn));
        assert_eq!(AttackKind::parse("attack_ip"), Some(AttackKind::AttackIp));
        assert_eq!(AttackKind::parse(""), None);
        assert!(parse_timestamp("2020-02-03 12:43:30", Format::Rba).is_some());
        assert!(parse_timestamp("2020-02-03T12:43:30Z", Format::Rba).is_none());
    }
}
