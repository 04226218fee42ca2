//! Opening one MaxMind DB file, checking that it can serve the kind of lookup it was
//! configured for, and detecting which record schema it uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{MaxMindDbError, Reader};
use serde::de::{DeserializeOwned, IgnoredAny};

use super::{DatabaseKind, GeoError};

/// Number of leading records whose keys are read to detect the schema of a file whose
/// `database_type` is not a MaxMind product name.
const SCHEMA_PROBE_RECORDS: usize = 16;

/// Record schema of a city database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CitySchema {
    /// GeoIP2 and GeoLite2 City, Country and Enterprise: nested maps such as
    /// `country.iso_code` and `location.latitude`.
    Geoip2,
    /// The npm packages `@ip-location-db/*-mmdb`: top-level `country_code`, `city`,
    /// `state1`, `latitude`, `longitude` and `timezone`.
    Flat,
}

/// An open MaxMind DB file, loaded into memory.
///
/// NOTE: the file is read into memory, not memory-mapped, because `Reader::open_mmap` is
/// `unsafe` and this crate forbids unsafe code. The DB-IP city files take about 134 MB.
#[derive(Debug)]
pub(super) struct Database {
    path: PathBuf,
    reader: Reader<Vec<u8>>,
}

impl Database {
    /// Reads `path` and parses its metadata.
    fn open(path: &Path) -> Result<Self, GeoError> {
        let bytes = fs::read(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => GeoError::NotFound {
                path: path.to_path_buf(),
            },
            _ => GeoError::Read {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let reader = Reader::from_source(bytes).map_err(|source| GeoError::NotMaxMindDb {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Database {
            path: path.to_path_buf(),
            reader,
        })
    }

    /// Opens a city database and detects its schema.
    pub(super) fn open_city(path: &Path) -> Result<(Self, CitySchema), GeoError> {
        let database = Self::open(path)?;
        let schema = match database.classify(DatabaseKind::City)? {
            TypeMatch::MaxMind => CitySchema::Geoip2,
            TypeMatch::Other => {
                let keys = database.probe_keys()?;
                if keys.contains("country_code") {
                    CitySchema::Flat
                } else if ["country", "registered_country", "location", "subdivisions"]
                    .iter()
                    .any(|key| keys.contains(*key))
                {
                    CitySchema::Geoip2
                } else {
                    return Err(database.unknown_schema(DatabaseKind::City, keys));
                }
            }
        };
        Ok((database, schema))
    }

    /// Opens an ASN database: GeoLite2 ASN, GeoIP2 ISP, or any file whose records carry
    /// `autonomous_system_number`.
    pub(super) fn open_asn(path: &Path) -> Result<Self, GeoError> {
        Self::open_with_key(path, DatabaseKind::Asn, &["autonomous_system_number"])
    }

    /// Opens an anonymous-IP database: GeoIP2 Anonymous IP, GeoIP Anonymous Plus, or any
    /// file whose records carry the GeoIP2 `is_*` flags.
    pub(super) fn open_anonymous(path: &Path) -> Result<Self, GeoError> {
        Self::open_with_key(
            path,
            DatabaseKind::Anonymous,
            &[
                "is_anonymous",
                "is_anonymous_vpn",
                "is_tor_exit_node",
                "is_hosting_provider",
                "is_public_proxy",
                "is_residential_proxy",
            ],
        )
    }

    fn open_with_key(path: &Path, kind: DatabaseKind, keys: &[&str]) -> Result<Self, GeoError> {
        let database = Self::open(path)?;
        if database.classify(kind)? == TypeMatch::Other {
            let found = database.probe_keys()?;
            if !keys.iter().any(|key| found.contains(*key)) {
                return Err(database.unknown_schema(kind, found));
            }
        }
        Ok(database)
    }

    /// Opens a file without checking its type or schema, so tests can reach the lookup
    /// path of a database that `open_*` rejects.
    #[cfg(test)]
    pub(super) fn open_unchecked(path: &Path) -> Result<Self, GeoError> {
        Self::open(path)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    pub(super) fn reader(&self) -> &Reader<Vec<u8>> {
        &self.reader
    }

    /// Looks `ip` up and decodes its record. Returns `Ok(None)` when the file has no record
    /// for `ip`, including an IPv6 address asked of an IPv4-only file.
    pub(super) fn decode<T: DeserializeOwned>(
        &self,
        ip: IpAddr,
    ) -> Result<Option<T>, MaxMindDbError> {
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Ok(None);
        }
        self.reader.lookup(ip)?.decode::<T>()
    }

    /// Checks `database_type` against the MaxMind products that serve `kind`.
    fn classify(&self, kind: DatabaseKind) -> Result<TypeMatch, GeoError> {
        let database_type = self.database_type();
        let accepted: &[&str] = match kind {
            DatabaseKind::City => &[
                "GeoIP2-City",
                "GeoLite2-City",
                "GeoIP2-Country",
                "GeoLite2-Country",
                "GeoIP2-Enterprise",
            ],
            DatabaseKind::Asn => &["GeoLite2-ASN", "GeoIP2-ISP"],
            DatabaseKind::Anonymous => &["GeoIP2-Anonymous-IP", "GeoIP-Anonymous-Plus"],
        };
        if accepted
            .iter()
            .any(|product| database_type.starts_with(product))
        {
            Ok(TypeMatch::MaxMind)
        } else if database_type.starts_with("GeoIP") || database_type.starts_with("GeoLite") {
            // Another MaxMind product, such as GeoIP2-Domain or a City file given as ASN.
            Err(GeoError::UnsupportedDatabaseType {
                path: self.path.clone(),
                database_type: database_type.to_owned(),
                kind,
            })
        } else {
            Ok(TypeMatch::Other)
        }
    }

    /// Collects the top-level keys of the first records, in tree order.
    fn probe_keys(&self) -> Result<BTreeSet<String>, GeoError> {
        let invalid = |source| GeoError::InvalidRecord {
            path: self.path.clone(),
            source,
        };
        let mut keys = BTreeSet::new();
        let mut records = 0;
        for result in self.reader.networks(Default::default()).map_err(invalid)? {
            let record = result
                .map_err(invalid)?
                .decode::<BTreeMap<String, IgnoredAny>>()
                .map_err(invalid)?;
            if let Some(record) = record {
                keys.extend(record.into_keys());
                records += 1;
            }
            if records == SCHEMA_PROBE_RECORDS {
                break;
            }
        }
        if records == 0 {
            return Err(GeoError::EmptyDatabase {
                path: self.path.clone(),
            });
        }
        Ok(keys)
    }

    fn unknown_schema(&self, kind: DatabaseKind, keys: BTreeSet<String>) -> GeoError {
        GeoError::UnknownSchema {
            path: self.path.clone(),
            database_type: self.database_type().to_owned(),
            kind,
            keys: keys.into_iter().collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeMatch {
    /// A MaxMind product of the requested kind, read with the GeoIP2 schema.
    MaxMind,
    /// Not a MaxMind product name, so the schema is detected from the record keys.
    Other,
}
