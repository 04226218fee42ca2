//! Geo-IP enrichment of a login: country, city, coordinates with their accuracy radius,
//! autonomous system and anonymiser flags of the client IP, read from MaxMind DB files.
//!
//! Two record schemas are read, detected per file from its metadata and record keys:
//! GeoIP2/GeoLite2 (City, Country, Enterprise, ASN, ISP, Anonymous IP) and the flat
//! schema of the npm packages `@ip-location-db/*-mmdb` (for example the DB-IP city
//! database). Results are cached per canonical IP address in a moka cache.

mod database;
mod networks;
mod records;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use maxminddb::MaxMindDbError;
use serde::de::DeserializeOwned;

use database::{CitySchema, Database};
pub use networks::CityNetwork;

/// Geo-IP databases to open. The files of each kind are tried in list order until one has
/// a usable record for the address.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoConfig {
    /// City or country databases (GeoIP2/GeoLite2 City or Country, or `@ip-location-db`
    /// city files, which ship IPv4 and IPv6 as separate files).
    pub city: Vec<PathBuf>,
    /// ASN databases (GeoLite2 ASN or GeoIP2 ISP).
    pub asn: Vec<PathBuf>,
    /// Anonymous-IP databases (GeoIP2 Anonymous IP or GeoIP Anonymous Plus). Without one,
    /// lookups return [`AnonymousStatus::NotConfigured`].
    pub anonymous: Vec<PathBuf>,
    /// Maximum number of IP addresses whose records stay cached (default 100,000).
    pub cache_capacity: u64,
    /// Accuracy radius in kilometres given to a city record that has coordinates but no
    /// radius, as in the flat schema (default 50).
    pub default_accuracy_radius_km: f64,
}

impl Default for GeoConfig {
    fn default() -> Self {
        GeoConfig {
            city: Vec::new(),
            asn: Vec::new(),
            anonymous: Vec::new(),
            cache_capacity: 100_000,
            default_accuracy_radius_km: 50.0,
        }
    }
}

/// Kind of lookup a database file is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    City,
    Asn,
    Anonymous,
}

impl fmt::Display for DatabaseKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            DatabaseKind::City => "city",
            DatabaseKind::Asn => "ASN",
            DatabaseKind::Anonymous => "anonymous-IP",
        })
    }
}

/// Failure to open a geo-IP database. Every variant names the offending file or value.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("geo-IP database `{}` not found: check the path in the geo config", path.display())]
    NotFound { path: PathBuf },
    #[error("failed to read geo-IP database `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a valid MaxMind DB file: {source}", path.display())]
    NotMaxMindDb {
        path: PathBuf,
        #[source]
        source: MaxMindDbError,
    },
    #[error(
        "`{}` has database type `{database_type}`, which is not supported as a {kind} database",
        path.display()
    )]
    UnsupportedDatabaseType {
        path: PathBuf,
        database_type: String,
        kind: DatabaseKind,
    },
    #[error(
        "`{}` (database type `{database_type}`) has records with keys {keys:?}, which match no supported {kind} schema",
        path.display()
    )]
    UnknownSchema {
        path: PathBuf,
        database_type: String,
        kind: DatabaseKind,
        keys: Vec<String>,
    },
    #[error("geo-IP database `{}` has no records", path.display())]
    EmptyDatabase { path: PathBuf },
    #[error("invalid record in geo-IP database `{}`: {source}", path.display())]
    InvalidRecord {
        path: PathBuf,
        #[source]
        source: MaxMindDbError,
    },
    #[error(
        "invalid default_accuracy_radius_km `{value}`: expected a finite number of kilometres >= 0"
    )]
    InvalidDefaultAccuracyRadius { value: f64 },
}

/// Everything the geo-IP databases store about one IP address.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GeoRecord {
    /// Location, from the first city database with a non-empty record for the address.
    pub city: Option<CityRecord>,
    /// Autonomous system, from the first ASN database with an AS number for the address.
    pub asn: Option<AsnRecord>,
    pub anonymous: AnonymousStatus,
}

/// Location of an IP address. Empty strings in a database become `None`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CityRecord {
    /// ISO 3166-1 alpha-2 code of the country where the address is used.
    pub country: Option<String>,
    /// ISO 3166-1 alpha-2 code of the country where the network is registered (GeoIP2 only).
    pub registered_country: Option<String>,
    /// Largest subdivision: its ISO 3166-2 code (such as `ENG`) in the GeoIP2 schema, its
    /// English name (such as `England`) in the flat schema.
    pub subdivision: Option<String>,
    /// English city name.
    pub city: Option<String>,
    /// Latitude in degrees, or `None` unless both coordinates are finite and in range.
    pub latitude: Option<f64>,
    /// Longitude in degrees, or `None` unless both coordinates are finite and in range.
    pub longitude: Option<f64>,
    /// Radius in kilometres around the coordinates that likely contains the address, or
    /// `None` without coordinates.
    pub accuracy_radius_km: Option<f64>,
    /// IANA time zone name, such as `Europe/London`.
    pub time_zone: Option<String>,
}

impl CityRecord {
    /// Checks whether the record has none of the fields, like a GeoIP2 record with only
    /// `traits`. Such a record counts as absent, so the next file is tried.
    fn is_empty(&self) -> bool {
        self.country.is_none()
            && self.registered_country.is_none()
            && self.subdivision.is_none()
            && self.city.is_none()
            && self.latitude.is_none()
            && self.time_zone.is_none()
    }
}

/// Autonomous system that announces an IP address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AsnRecord {
    pub number: u32,
    pub organization: Option<String>,
}

/// Result of the anonymous-IP lookup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AnonymousStatus {
    /// No anonymous-IP database is configured, so the signal cannot be evaluated.
    NotConfigured,
    /// No configured database has a record with a true flag for the address.
    NotListed,
    /// A database lists the address with these flags.
    Listed(AnonymousFlags),
}

/// Flags of a GeoIP2 Anonymous IP record; a flag absent from the record is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AnonymousFlags {
    /// Any of the other flags (`is_anonymous`).
    pub anonymous: bool,
    /// Registered to an anonymous VPN provider (`is_anonymous_vpn`).
    pub vpn: bool,
    /// A Tor exit node (`is_tor_exit_node`).
    pub tor_exit: bool,
    /// A hosting or VPN provider network (`is_hosting_provider`).
    pub hosting: bool,
    /// A public proxy (`is_public_proxy`).
    pub public_proxy: bool,
    /// On a suspected residential proxy network (`is_residential_proxy`).
    pub residential_proxy: bool,
}

/// Counters of the lookup cache since [`GeoIp::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

/// Open geo-IP databases with a lookup cache. `Send + Sync`: share it behind an `Arc`.
pub struct GeoIp {
    city: Vec<(Database, CitySchema)>,
    asn: Vec<Database>,
    anonymous: Vec<Database>,
    default_accuracy_radius_km: f64,
    cache: moka::sync::Cache<IpAddr, Arc<GeoRecord>>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalid_records: AtomicU64,
}

impl fmt::Debug for GeoIp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let city: Vec<&Path> = self.city.iter().map(|(db, _)| db.path()).collect();
        let asn: Vec<&Path> = self.asn.iter().map(Database::path).collect();
        let anonymous: Vec<&Path> = self.anonymous.iter().map(Database::path).collect();
        formatter
            .debug_struct("GeoIp")
            .field("city", &city)
            .field("asn", &asn)
            .field("anonymous", &anonymous)
            .field("cache_entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl GeoIp {
    /// Opens every database in `config`, resolving relative paths against `base_dir`.
    ///
    /// Each file is read and its metadata and schema checked here, so a wrong path, a file
    /// that is not a MaxMind DB or a database of the wrong kind fails at start.
    pub fn open(config: &GeoConfig, base_dir: &Path) -> Result<GeoIp, GeoError> {
        let radius = config.default_accuracy_radius_km;
        if !radius.is_finite() || radius < 0.0 {
            return Err(GeoError::InvalidDefaultAccuracyRadius { value: radius });
        }
        let mut city = Vec::with_capacity(config.city.len());
        for path in &config.city {
            let (database, schema) = Database::open_city(&base_dir.join(path))?;
            log_opened(&database, DatabaseKind::City, Some(schema));
            city.push((database, schema));
        }
        let mut asn = Vec::with_capacity(config.asn.len());
        for path in &config.asn {
            let database = Database::open_asn(&base_dir.join(path))?;
            log_opened(&database, DatabaseKind::Asn, None);
            asn.push(database);
        }
        let mut anonymous = Vec::with_capacity(config.anonymous.len());
        for path in &config.anonymous {
            let database = Database::open_anonymous(&base_dir.join(path))?;
            log_opened(&database, DatabaseKind::Anonymous, None);
            anonymous.push(database);
        }
        Ok(Self::from_databases(
            city,
            asn,
            anonymous,
            radius,
            config.cache_capacity,
        ))
    }

    fn from_databases(
        city: Vec<(Database, CitySchema)>,
        asn: Vec<Database>,
        anonymous: Vec<Database>,
        default_accuracy_radius_km: f64,
        cache_capacity: u64,
    ) -> GeoIp {
        GeoIp {
            city,
            asn,
            anonymous,
            default_accuracy_radius_km,
            cache: moka::sync::Cache::builder()
                .max_capacity(cache_capacity)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalid_records: AtomicU64::new(0),
        }
    }

    /// Looks up `ip` in every configured database, through the cache.
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is looked up as its IPv4 address. A
    /// record that fails to decode is logged, counted in [`GeoIp::invalid_records`] and
    /// treated as absent from that file.
    pub fn lookup(&self, ip: IpAddr) -> Arc<GeoRecord> {
        let ip = ip.to_canonical();
        let entry = self
            .cache
            .entry(ip)
            .or_insert_with(|| Arc::new(self.lookup_uncached(ip)));
        let counter = if entry.is_fresh() {
            &self.misses
        } else {
            &self.hits
        };
        counter.fetch_add(1, Ordering::Relaxed);
        entry.into_value()
    }

    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Returns how many records failed to decode since [`GeoIp::open`]. Each failure is
    /// also logged. A non-zero count points to a damaged database file.
    pub fn invalid_records(&self) -> u64 {
        self.invalid_records.load(Ordering::Relaxed)
    }

    fn lookup_uncached(&self, ip: IpAddr) -> GeoRecord {
        let radius = self.default_accuracy_radius_km;
        let city = self.city.iter().find_map(|(database, schema)| {
            let record = match schema {
                CitySchema::Geoip2 => self
                    .decode::<records::Geoip2City>(database, ip)
                    .map(|record| record.into_record(radius)),
                CitySchema::Flat => self
                    .decode::<records::FlatCity>(database, ip)
                    .map(|record| record.into_record(radius)),
            };
            record.filter(|record| !record.is_empty())
        });
        let asn = self.asn.iter().find_map(|database| {
            self.decode::<records::Asn>(database, ip)
                .and_then(records::Asn::into_record)
        });
        let anonymous = if self.anonymous.is_empty() {
            AnonymousStatus::NotConfigured
        } else {
            self.anonymous
                .iter()
                .find_map(|database| {
                    self.decode::<records::Anonymous>(database, ip)
                        .and_then(records::Anonymous::into_flags)
                })
                .map_or(AnonymousStatus::NotListed, AnonymousStatus::Listed)
        };
        GeoRecord {
            city,
            asn,
            anonymous,
        }
    }

    fn decode<T: DeserializeOwned>(&self, database: &Database, ip: IpAddr) -> Option<T> {
        match database.decode::<T>(ip) {
            Ok(record) => record,
            Err(error) => {
                self.invalid_records.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    path = %database.path().display(),
                    %ip,
                    %error,
                    "invalid record in geo-IP database, treated as absent"
                );
                None
            }
        }
    }
}

fn log_opened(database: &Database, kind: DatabaseKind, schema: Option<CitySchema>) {
    tracing::info!(
        path = %database.path().display(),
        %kind,
        database_type = database.database_type(),
        ?schema,
        "opened geo-IP database"
    );
}
