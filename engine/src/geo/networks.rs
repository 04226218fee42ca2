//! Enumeration of the networks of the city databases, for tools that need addresses whose
//! location is known in advance, such as the login simulator.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ipnet::IpNet;
use maxminddb::{LookupResult, WithinOptions};

use super::database::{CitySchema, Database};
use super::{CityRecord, GeoError, GeoIp, records};

/// A network of a city database and the record that [`GeoIp::lookup`] returns for every
/// address in it.
#[derive(Debug, Clone, PartialEq)]
pub struct CityNetwork {
    pub network: IpNet,
    pub record: Arc<CityRecord>,
}

impl GeoIp {
    /// Walks the city databases in configured order and returns their networks that have
    /// a non-empty record, in tree order.
    ///
    /// A database whose search tree has more than `max_per_database` nodes is thinned: only
    /// every k-th network is kept, with k = ceil(nodes / `max_per_database`). A tree has
    /// more nodes than networks, so each database yields at most `max_per_database`
    /// networks, and large cities, which have many networks, keep proportionally many.
    ///
    /// A network of a later file is left out when an earlier file has a non-empty record
    /// for some of its addresses, because [`GeoIp::lookup`] tries the files in order and
    /// would return that record. A record that fails to decode counts as absent, as in
    /// lookups.
    pub fn city_networks(&self, max_per_database: usize) -> Result<Vec<CityNetwork>, GeoError> {
        let mut found = Vec::new();
        for (index, (database, schema)) in self.city.iter().enumerate() {
            let reader = database.reader();
            let invalid = |source| GeoError::InvalidRecord {
                path: database.path().to_path_buf(),
                source,
            };
            let nodes = reader.metadata().node_count as usize;
            let step = nodes.div_ceil(max_per_database.max(1)).max(1);
            let options = WithinOptions::default().skip_empty_values();
            // Records are shared by many networks, so each one is decoded once.
            let mut decoded: HashMap<usize, Option<Arc<CityRecord>>> = HashMap::new();
            for (position, result) in reader.networks(options).map_err(invalid)?.enumerate() {
                if position % step != 0 {
                    continue;
                }
                let lookup = result.map_err(invalid)?;
                let Some(offset) = lookup.offset() else {
                    continue;
                };
                let network = lookup.network().map_err(invalid)?;
                let Ok(network) = IpNet::new(network.network(), network.prefix()) else {
                    continue;
                };
                let record = decoded
                    .entry(offset)
                    .or_insert_with(|| self.decode_city_lookup(database, *schema, &lookup))
                    .clone();
                let Some(record) = record else {
                    continue;
                };
                if self.shadowed(&self.city[..index], network)? {
                    continue;
                }
                found.push(CityNetwork { network, record });
            }
        }
        Ok(found)
    }

    /// Checks whether one of `earlier` has a non-empty record for some address of
    /// `network`. A file whose record covers a larger network than `network` at its first
    /// address, and has no data there, cannot have one.
    fn shadowed(
        &self,
        earlier: &[(Database, CitySchema)],
        network: IpNet,
    ) -> Result<bool, GeoError> {
        let first = network.network();
        for (database, schema) in earlier {
            let reader = database.reader();
            if first.is_ipv6() && reader.metadata().ip_version == 4 {
                continue;
            }
            let invalid = |source| GeoError::InvalidRecord {
                path: database.path().to_path_buf(),
                source,
            };
            let lookup = reader.lookup(first).map_err(invalid)?;
            if self
                .decode_city_lookup(database, *schema, &lookup)
                .is_some()
            {
                return Ok(true);
            }
            let covering = lookup.network().map_err(invalid)?;
            // An IPv4 address in an IPv6 file without an IPv4 subtree ends on an IPv6
            // network above all of the IPv4 space.
            let covers_all = first.is_ipv4() && covering.is_ipv6();
            if !covers_all && covering.prefix() > network.prefix_len() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn decode_city_lookup(
        &self,
        database: &Database,
        schema: CitySchema,
        lookup: &LookupResult<'_, Vec<u8>>,
    ) -> Option<Arc<CityRecord>> {
        let radius = self.default_accuracy_radius_km;
        let decoded = match schema {
            CitySchema::Geoip2 => lookup
                .decode::<records::Geoip2City>()
                .map(|record| record.map(|record| record.into_record(radius))),
            CitySchema::Flat => lookup
                .decode::<records::FlatCity>()
                .map(|record| record.map(|record| record.into_record(radius))),
        };
        match decoded {
            Ok(record) => record.filter(|record| !record.is_empty()).map(Arc::new),
            Err(error) => {
                self.invalid_records.fetch_add(1, Ordering::Relaxed);
                let network = lookup.network().map(|network| network.to_string());
                tracing::warn!(
                    path = %database.path().display(),
                    network = network.as_deref().unwrap_or("unknown"),
                    %error,
                    "invalid record in geo-IP database, treated as absent"
                );
                None
            }
        }
    }
}
