//! Writing a simulation as CSV in the riskgate layout, or as Parquet with the same columns.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, SecondsFormat};

use super::{Login, NO_DEVICE, SimulateError, Simulation};

/// Output columns: the riskgate layout of `data/logins/README.md`, then `keystrokes`, then
/// the place and network the generator meant for the address (`country`, `city`,
/// `network`), which the replay ignores.
pub const COLUMNS: [&str; 16] = [
    "timestamp",
    "user_id",
    "ip",
    "user_agent",
    "role",
    "app",
    "tenant",
    "device_id",
    "login_successful",
    "is_attack",
    "attack_kind",
    "rtt_ms",
    "keystrokes",
    "country",
    "city",
    "network",
];

/// The values of one row; text that the simulation stores once is borrowed.
struct Row<'a> {
    timestamp: String,
    user_id: &'a str,
    ip: String,
    user_agent: &'a str,
    role: &'a str,
    app: &'a str,
    tenant: &'a str,
    device_id: &'a str,
    login_successful: bool,
    is_attack: bool,
    attack_kind: &'a str,
    /// Tenths of a millisecond.
    rtt_tenths: u32,
    keystrokes: &'a str,
    country: &'a str,
    city: &'a str,
    network: String,
}

/// File format of the output, chosen by the extension of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Csv,
    Parquet,
}

impl OutputFormat {
    /// Picks the format of `path`: `.csv` or `.parquet`, in any letter case. Parquet is
    /// rejected in builds without the `train` feature, so a caller can check the path
    /// before generating anything.
    pub fn from_path(path: &Path) -> Result<OutputFormat, SimulateError> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(OutputFormat::Csv),
            Some("parquet") if cfg!(feature = "train") => Ok(OutputFormat::Parquet),
            Some("parquet") => Err(SimulateError::ParquetNotBuilt {
                path: path.to_owned(),
            }),
            _ => Err(SimulateError::UnsupportedFormat {
                path: path.to_owned(),
            }),
        }
    }
}

impl Simulation {
    /// Writes the rows to `path` in the format of [`OutputFormat::from_path`].
    pub fn write(&self, path: &Path) -> Result<(), SimulateError> {
        match OutputFormat::from_path(path)? {
            OutputFormat::Csv => self.write_csv_file(path),
            OutputFormat::Parquet => self.write_parquet_file(path),
        }
    }

    fn write_csv_file(&self, path: &Path) -> Result<(), SimulateError> {
        let file = File::create(path).map_err(|source| SimulateError::Write {
            path: path.to_owned(),
            source,
        })?;
        let mut buffered = BufWriter::new(file);
        self.write_csv(&mut buffered)
            .map_err(|source| SimulateError::Csv {
                path: path.to_owned(),
                source,
            })?;
        buffered.flush().map_err(|source| SimulateError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the header and every row as CSV to `writer`.
    pub fn write_csv<W: io::Write>(&self, writer: W) -> Result<(), csv::Error> {
        let mut csv = csv::Writer::from_writer(writer);
        csv.write_record(COLUMNS)?;
        for login in &self.logins {
            let row = self.row(login);
            let rtt = format!("{}.{}", row.rtt_tenths / 10, row.rtt_tenths % 10);
            csv.write_record([
                row.timestamp.as_str(),
                row.user_id,
                &row.ip,
                row.user_agent,
                row.role,
                row.app,
                row.tenant,
                row.device_id,
                bool_text(row.login_successful),
                bool_text(row.is_attack),
                row.attack_kind,
                &rtt,
                row.keystrokes,
                row.country,
                row.city,
                &row.network,
            ])?;
        }
        csv.flush()?;
        Ok(())
    }

    #[cfg(not(feature = "train"))]
    fn write_parquet_file(&self, path: &Path) -> Result<(), SimulateError> {
        // `OutputFormat::from_path` already rejects Parquet in this build.
        Err(SimulateError::ParquetNotBuilt {
            path: path.to_owned(),
        })
    }

    #[cfg(feature = "train")]
    fn write_parquet_file(&self, path: &Path) -> Result<(), SimulateError> {
        parquet::write(self, path)
    }

    fn row(&self, login: &Login) -> Row<'_> {
        let population = &self.population;
        let account = &population.accounts[login.account as usize];
        let network = &self.catalog.networks[login.network as usize];
        let place = &self.catalog.places[network.place];
        let device_id = if login.device == NO_DEVICE {
            ""
        } else {
            &population.devices[login.device as usize].id
        };
        Row {
            timestamp: DateTime::from_timestamp_millis(login.time_ms)
                .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
                .unwrap_or_default(),
            user_id: &account.user_id,
            ip: login.ip.to_string(),
            user_agent: population.agents.get(login.agent),
            role: account.role.map_or("", |role| role.as_str()),
            app: login.app.as_str(),
            tenant: &population.tenants[account.tenant].name,
            device_id,
            login_successful: login.success,
            is_attack: login.kind.is_some(),
            attack_kind: login.kind.map_or("", |kind| kind.as_str()),
            rtt_tenths: login.rtt_tenths,
            keystrokes: self.keystrokes.json(login.keystrokes),
            country: &place.country,
            city: place.city.as_deref().unwrap_or(""),
            network: network.network.to_string(),
        }
    }
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

#[cfg(feature = "train")]
mod parquet {
    use std::fs::File;
    use std::path::Path;

    use polars::prelude::*;

    use super::super::{SimulateError, Simulation};

    /// Writes the rows as Parquet: `timestamp` as a UTC datetime in milliseconds, the
    /// labels as booleans, `rtt_ms` as a float, empty text as null.
    pub(super) fn write(simulation: &Simulation, path: &Path) -> Result<(), SimulateError> {
        let parquet_error = |source| SimulateError::Parquet {
            path: path.to_owned(),
            source,
        };
        let mut frame = frame(simulation).map_err(parquet_error)?;
        let file = File::create(path).map_err(|source| SimulateError::Write {
            path: path.to_owned(),
            source,
        })?;
        ParquetWriter::new(file)
            .finish(&mut frame)
            .map_err(parquet_error)?;
        Ok(())
    }

    fn frame(simulation: &Simulation) -> PolarsResult<DataFrame> {
        let rows = simulation.logins.len();
        let mut timestamps = Vec::with_capacity(rows);
        let mut successful = Vec::with_capacity(rows);
        let mut attack = Vec::with_capacity(rows);
        let mut rtt = Vec::with_capacity(rows);
        let mut network = Vec::with_capacity(rows);

        // The text columns from `user_id` to `city`, in output order, without `network`.
        const TEXT: [&str; 11] = [
            "user_id",
            "ip",
            "user_agent",
            "role",
            "app",
            "tenant",
            "device_id",
            "attack_kind",
            "keystrokes",
            "country",
            "city",
        ];
        let mut text: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(rows); TEXT.len()];

        for login in &simulation.logins {
            let row = simulation.row(login);
            timestamps.push(login.time_ms);
            successful.push(row.login_successful);
            attack.push(row.is_attack);
            rtt.push(f64::from(row.rtt_tenths) / 10.0);
            let values = [
                row.user_id,
                &row.ip,
                row.user_agent,
                row.role,
                row.app,
                row.tenant,
                row.device_id,
                row.attack_kind,
                row.keystrokes,
                row.country,
                row.city,
            ];
            for (column, value) in text.iter_mut().zip(values) {
                column.push((!value.is_empty()).then(|| value.to_owned()));
            }
            network.push(row.network);
        }

        let mut text: Vec<Column> = TEXT
            .iter()
            .zip(text)
            .map(|(name, values)| Column::new((*name).into(), values))
            .collect();
        let [
            user_id,
            ip,
            user_agent,
            role,
            app,
            tenant,
            device_id,
            attack_kind,
            keystrokes,
            country,
            city,
        ] = std::array::from_fn(|_| text.remove(0));

        // A cast from Int64 would drop the time zone in this polars build (no
        // `timezones` feature), so the datetime column is built directly.
        let timestamp = Int64Chunked::from_vec("timestamp".into(), timestamps)
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column();
        let columns = vec![
            timestamp,
            user_id,
            ip,
            user_agent,
            role,
            app,
            tenant,
            device_id,
            Column::new("login_successful".into(), successful),
            Column::new("is_attack".into(), attack),
            attack_kind,
            Column::new("rtt_ms".into(), rtt),
            keystrokes,
            country,
            city,
            Column::new("network".into(), network),
        ];
        DataFrame::new(rows, columns)
    }
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use std::path::Path;

    use chrono::NaiveDate;
    use polars::prelude::*;

    use super::super::{SimulateOptions, simulate};
    use super::*;
    use crate::config::Config;

    #[test]
    fn parquet_reads_back_with_columns() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = Config::load(&root.join("riskgate.toml")).expect("riskgate.toml loads");
        let options = SimulateOptions {
            users: 12,
            days: 5,
            seed: 9,
            start: NaiveDate::from_ymd_opt(2026, 1, 5).expect("valid date"),
            keystrokes: root.join("data/keystroke/IIITBh-Big.csv"),
        };
        let simulation = simulate(&config, &options).expect("simulation runs");
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("logins.parquet");
        simulation.write(&path).expect("Parquet writes");

        let file = std::fs::File::open(&path).expect("Parquet opens");
        let frame = ParquetReader::new(file).finish().expect("Parquet reads");
        assert_eq!(frame.height(), simulation.len());
        let names: Vec<&str> = frame
            .get_column_names()
            .iter()
            .map(|name| name.as_str())
            .collect();
        assert_eq!(names, COLUMNS.to_vec());
        assert_eq!(
            frame.column("timestamp").expect("timestamp").dtype(),
            &DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
        );
        assert_eq!(
            frame.column("is_attack").expect("is_attack").dtype(),
            &DataType::Boolean
        );
        let first = simulation.row(&simulation.logins[0]);
        let user_id = frame
            .column("user_id")
            .expect("user_id")
            .str()
            .expect("text");
        assert_eq!(user_id.get(0), Some(first.user_id));
        let attacks = frame
            .column("is_attack")
            .expect("is_attack")
            .bool()
            .expect("booleans")
            .sum();
        let expected = simulation
            .logins
            .iter()
            .filter(|login| login.kind.is_some())
            .count();
        assert_eq!(attacks.map(|count| count as usize), Some(expected));
    }
}
