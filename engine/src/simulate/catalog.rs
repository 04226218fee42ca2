//! Places and networks that simulated logins come from: the networks of the configured
//! city databases that have a country and coordinates, grouped by country, subdivision and
//! city, with the networks on a hosting or anonymiser list marked.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use ipnet::IpNet;
use rand::Rng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;

use crate::geo::{AnonymousStatus, CityNetwork, GeoIp};
use crate::iplists::IpLists;
use crate::signals::distance_km;

/// Networks read per city database. A larger database is thinned to at most this many,
/// in proportion to the networks of each city (see [`GeoIp::city_networks`]).
pub(super) const MAX_NETWORKS_PER_DATABASE: usize = 200_000;

/// Networks within this distance of a place's coordinates join the place. Two networks of
/// one place are then at most 50 km apart, so a user who switches between them never
/// appears to travel faster than 200 km/h with the 15-minute gap between logins.
const PLACE_RADIUS_KM: f64 = 25.0;

/// Random candidates examined when looking for a trip destination or a place in another
/// country, which keeps the search cheap on databases with many thousands of places.
const PLACE_CANDIDATES: usize = 64;

/// Chance of an IPv6 network where a place has networks of both versions.
///
/// NOTE: an assumption for clients of a hospital CRM, not a measurement. Without it, the
/// share would follow the network counts of the databases, which are about even between
/// the two DB-IP files.
pub(super) const IPV6_SHARE: f64 = 0.4;

/// Attempts to draw an address inside a hosting network that is itself on a hosting list.
const HOSTING_DRAWS: usize = 8;

/// A city (or a country, for records without a city) with the networks located there.
#[derive(Debug)]
pub(super) struct Place {
    pub country: String,
    pub city: Option<String>,
    pub latitude: f64,
    pub longitude: f64,
    pub zone: Zone,
    /// Indexes into [`Catalog::networks`], in tree order.
    pub networks: Vec<usize>,
}

/// A network of a city database and the place its record names.
#[derive(Debug)]
pub(super) struct Network {
    pub network: IpNet,
    pub place: usize,
    /// Whether its first host address is on a hosting or anonymiser list, or flagged as a
    /// VPN or hosting network by the anonymous-IP database.
    pub hosting: bool,
}

/// Decides whether an address belongs to a hosting or VPN network, with the databases and
/// lists that the engine's `hosting_network` and `anonymous_ip` signals use.
pub(super) struct HostingCheck<'a> {
    pub geo: &'a GeoIp,
    pub lists: &'a IpLists,
    /// Names of the hosting and anonymiser lists of the `[signals]` configuration.
    pub list_names: Vec<String>,
}

impl HostingCheck<'_> {
    pub fn is_hosting(&self, ip: IpAddr) -> bool {
        let record = self.geo.lookup(ip);
        if let AnonymousStatus::Listed(flags) = &record.anonymous
            && (flags.vpn || flags.hosting)
        {
            return true;
        }
        let asn = record.asn.as_ref().map(|asn| asn.number);
        self.lists
            .lists_containing(ip, asn)
            .iter()
            .any(|name| self.list_names.contains(name))
    }
}

/// Every usable network of the city databases, grouped into places.
#[derive(Debug)]
pub(super) struct Catalog {
    pub places: Vec<Place>,
    pub networks: Vec<Network>,
    /// Places with a city name, the homes of tenants and the destinations of trips.
    cities: Vec<usize>,
    /// Picks a city place with a weight of its network count, a rough proxy for its size.
    city_weights: Option<WeightedIndex<usize>>,
    cities_by_country: BTreeMap<String, Vec<usize>>,
    places_by_country: BTreeMap<String, Vec<usize>>,
    hosting: Vec<usize>,
    hosting_by_country: BTreeMap<String, Vec<usize>>,
}

impl Catalog {
    /// Groups `found` into places, keeping only networks with a country and coordinates.
    pub fn build(found: Vec<CityNetwork>, check: &HostingCheck<'_>) -> Catalog {
        let mut places: Vec<Place> = Vec::new();
        let mut networks = Vec::new();
        let mut by_name: HashMap<(String, Option<String>, Option<String>), Vec<usize>> =
            HashMap::new();
        for entry in found {
            let record = &entry.record;
            let (Some(country), Some(latitude), Some(longitude)) =
                (&record.country, record.latitude, record.longitude)
            else {
                continue;
            };
            let key = (
                country.clone(),
                record.subdivision.clone(),
                record.city.clone(),
            );
            let same_name = by_name.entry(key).or_default();
            let near = same_name.iter().copied().find(|&index| {
                let place = &places[index];
                distance_km(place.latitude, place.longitude, latitude, longitude) <= PLACE_RADIUS_KM
            });
            let place = match near {
                Some(index) => index,
                None => {
                    places.push(Place {
                        country: country.clone(),
                        city: record.city.clone(),
                        latitude,
                        longitude,
                        zone: Zone::new(record.time_zone.as_deref(), longitude),
                        networks: Vec::new(),
                    });
                    same_name.push(places.len() - 1);
                    places.len() - 1
                }
            };
            let hosting = check.is_hosting(first_host(entry.network));
            places[place].networks.push(networks.len());
            networks.push(Network {
                network: entry.network,
                place,
                hosting,
            });
        }
        Self::index(places, networks)
    }

    fn index(places: Vec<Place>, networks: Vec<Network>) -> Catalog {
        let mut cities = Vec::new();
        let mut cities_by_country: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut places_by_country: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, place) in places.iter().enumerate() {
            places_by_country
                .entry(place.country.clone())
                .or_default()
                .push(index);
            if place.city.is_some() {
                cities.push(index);
                cities_by_country
                    .entry(place.country.clone())
                    .or_default()
                    .push(index);
            }
        }
        let mut hosting = Vec::new();
        let mut hosting_by_country: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, network) in networks.iter().enumerate() {
            if network.hosting {
                hosting.push(index);
                hosting_by_country
                    .entry(places[network.place].country.clone())
                    .or_default()
                    .push(index);
            }
        }
        let city_weights =
            WeightedIndex::new(cities.iter().map(|&index| places[index].networks.len())).ok();
        Catalog {
            places,
            networks,
            cities,
            city_weights,
            cities_by_country,
            places_by_country,
            hosting,
            hosting_by_country,
        }
    }

    pub fn has_cities(&self) -> bool {
        self.city_weights.is_some()
    }

    /// Picks a city place, weighted by its network count. Returns `None` when the
    /// databases have no city.
    pub fn pick_city(&self, rng: &mut impl Rng) -> Option<usize> {
        let weights = self.city_weights.as_ref()?;
        Some(self.cities[weights.sample(rng)])
    }

    /// Picks a place anywhere, weighted by its network count.
    pub fn pick_place(&self, rng: &mut impl Rng) -> usize {
        self.networks[rng.random_range(0..self.networks.len())].place
    }

    /// Picks a city at least `min_km` from `home` in the same country, or `None` when the
    /// random candidates examined have none.
    pub fn pick_domestic_city(
        &self,
        rng: &mut impl Rng,
        home: usize,
        min_km: f64,
    ) -> Option<usize> {
        let home_place = &self.places[home];
        let candidates = self.cities_by_country.get(&home_place.country)?;
        (0..PLACE_CANDIDATES)
            .map(|_| candidates[rng.random_range(0..candidates.len())])
            .find(|&place| place != home && self.distance_km(home, place) >= min_km)
    }

    /// Picks a city in another country than `home`, weighted by network count, or `None`
    /// when the random candidates examined have none.
    pub fn pick_foreign_city(&self, rng: &mut impl Rng, home: usize) -> Option<usize> {
        let country = &self.places[home].country;
        (0..PLACE_CANDIDATES)
            .filter_map(|_| self.pick_city(rng))
            .find(|&place| self.places[place].country != *country)
    }

    /// Picks a network of `place`, avoiding hosting networks unless the place has only
    /// those, and avoiding `except` when the place has another choice. Where both IP
    /// versions remain, an IPv6 network is picked with a chance of [`IPV6_SHARE`].
    pub fn pick_network(&self, rng: &mut impl Rng, place: usize, except: Option<usize>) -> usize {
        let all = &self.places[place].networks;
        let others: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&index| Some(index) != except)
            .collect();
        let preferred: Vec<usize> = others
            .iter()
            .copied()
            .filter(|&index| !self.networks[index].hosting)
            .collect();
        let pool = if !preferred.is_empty() {
            &preferred
        } else if !others.is_empty() {
            &others
        } else {
            all
        };
        let (ipv6, ipv4): (Vec<usize>, Vec<usize>) = pool
            .iter()
            .partition(|&&index| self.networks[index].network.network().is_ipv6());
        let version = if ipv4.is_empty() || (!ipv6.is_empty() && rng.random_bool(IPV6_SHARE)) {
            ipv6
        } else {
            ipv4
        };
        version[rng.random_range(0..version.len())]
    }

    /// Picks a hosting network in `country`, or `None` when the databases and lists have
    /// none there.
    pub fn pick_hosting_in(&self, rng: &mut impl Rng, country: &str) -> Option<usize> {
        let pool = self.hosting_by_country.get(country)?;
        Some(pool[rng.random_range(0..pool.len())])
    }

    /// Picks a hosting network anywhere, or `None` when there is none at all.
    pub fn pick_hosting(&self, rng: &mut impl Rng) -> Option<usize> {
        (!self.hosting.is_empty()).then(|| self.hosting[rng.random_range(0..self.hosting.len())])
    }

    /// Picks a place of `country` other than `except` when the country has one.
    pub fn pick_place_in(&self, rng: &mut impl Rng, country: &str, except: usize) -> usize {
        let Some(pool) = self.places_by_country.get(country) else {
            return except;
        };
        let others: Vec<usize> = pool.iter().copied().filter(|&p| p != except).collect();
        if others.is_empty() {
            except
        } else {
            others[rng.random_range(0..others.len())]
        }
    }

    pub fn distance_km(&self, from: usize, to: usize) -> f64 {
        let (a, b) = (&self.places[from], &self.places[to]);
        distance_km(a.latitude, a.longitude, b.latitude, b.longitude)
    }

    /// Draws an address of the network at `index`. In a hosting network the address is
    /// checked again, because a list may cover only part of the network. Each further
    /// attempt draws from a smaller subnet at the start of the network, which ends on the
    /// first host address that was checked when the catalog was built.
    pub fn draw_address(
        &self,
        rng: &mut impl Rng,
        index: usize,
        check: Option<&HostingCheck<'_>>,
    ) -> IpAddr {
        let network = self.networks[index].network;
        let Some(check) = check.filter(|_| self.networks[index].hosting) else {
            return random_host(rng, network);
        };
        let (shortest, longest) = (network.prefix_len(), network.max_prefix_len());
        let span = usize::from(longest - shortest);
        (0..HOSTING_DRAWS)
            .filter_map(|attempt| {
                let prefix = shortest as usize + span * attempt / HOSTING_DRAWS;
                IpNet::new(network.network(), prefix as u8).ok()
            })
            .map(|subnet| random_host(rng, subnet))
            .find(|&ip| check.is_hosting(ip))
            .unwrap_or_else(|| first_host(network))
    }
}

/// Returns the first and last host address of a network as integers. The network and
/// broadcast addresses of an IPv4 network larger than /31 are left out, and so is the
/// all-zero (subnet-router anycast) address of an IPv6 network larger than /128.
fn host_range(network: IpNet) -> (u128, u128) {
    match network {
        IpNet::V4(net) => {
            let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
            if net.prefix_len() <= 30 {
                (u128::from(first) + 1, u128::from(last) - 1)
            } else {
                (u128::from(first), u128::from(last))
            }
        }
        IpNet::V6(net) => {
            let (first, last) = (u128::from(net.network()), u128::from(net.broadcast()));
            if net.prefix_len() < 128 {
                (first + 1, last)
            } else {
                (first, last)
            }
        }
    }
}

fn address_of(network: IpNet, value: u128) -> IpAddr {
    match network {
        // The value comes from the IPv4 host range, so it fits in 32 bits.
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

pub(super) fn first_host(network: IpNet) -> IpAddr {
    address_of(network, host_range(network).0)
}

pub(super) fn random_host(rng: &mut impl Rng, network: IpNet) -> IpAddr {
    let (first, last) = host_range(network);
    address_of(network, rng.random_range(first..=last))
}

/// Local time of a place: its IANA time zone, or, for records without one (DB-IP City
/// Lite has none), the offset of its longitude rounded to whole hours, without daylight
/// saving time.
#[derive(Debug, Clone, Copy)]
pub(super) enum Zone {
    Named(Tz),
    Fixed(FixedOffset),
}

impl Zone {
    fn new(name: Option<&str>, longitude: f64) -> Zone {
        if let Some(zone) = name.and_then(|name| Tz::from_str(name).ok()) {
            return Zone::Named(zone);
        }
        let hours = (longitude / 15.0).round().clamp(-12.0, 12.0) as i32;
        // Offsets within 12 hours are valid, so the UTC fallback is never taken.
        FixedOffset::east_opt(hours * 3600).map_or(Zone::Named(Tz::UTC), Zone::Fixed)
    }

    /// Converts a local time to UTC. A time skipped by a daylight-saving change moves one
    /// hour later, and a repeated time takes its first occurrence.
    pub fn to_utc(self, local: NaiveDateTime) -> DateTime<Utc> {
        match self {
            Zone::Named(zone) => match zone.from_local_datetime(&local) {
                LocalResult::Single(time) | LocalResult::Ambiguous(time, _) => {
                    time.with_timezone(&Utc)
                }
                LocalResult::None => zone
                    .from_local_datetime(&(local + Duration::hours(1)))
                    .earliest()
                    .map_or_else(|| local.and_utc(), |time| time.with_timezone(&Utc)),
            },
            Zone::Fixed(offset) => {
                (local - Duration::seconds(i64::from(offset.local_minus_utc()))).and_utc()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use rand::SeedableRng;

    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse()
            .unwrap_or_else(|error| panic!("invalid test network `{text}`: {error}"))
    }

    fn local(date: (i32, u32, u32), hour: u32, minute: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(date.0, date.1, date.2)
            .and_then(|day| day.and_hms_opt(hour, minute, 0))
            .unwrap_or_else(|| panic!("invalid test time {date:?} {hour}:{minute}"))
    }

    #[test]
    fn host_range_skips_reserved_addresses() {
        let cases = [
            ("192.0.2.0/24", "192.0.2.1", "192.0.2.254"),
            ("192.0.2.8/30", "192.0.2.9", "192.0.2.10"),
            ("192.0.2.8/31", "192.0.2.8", "192.0.2.9"),
            ("192.0.2.7/32", "192.0.2.7", "192.0.2.7"),
            (
                "2001:db8::/64",
                "2001:db8::1",
                "2001:db8::ffff:ffff:ffff:ffff",
            ),
            ("2001:db8::5/128", "2001:db8::5", "2001:db8::5"),
        ];
        for (network, first, last) in cases {
            let network = net(network);
            let (low, high) = host_range(network);
            assert_eq!(address_of(network, low).to_string(), first, "{network}");
            assert_eq!(address_of(network, high).to_string(), last, "{network}");
        }
    }

    #[test]
    fn random_host_stays_in_network() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for network in ["203.0.113.64/26", "2a02:d3c0::/29", "198.51.100.9/32"] {
            let network = net(network);
            for _ in 0..200 {
                let address = random_host(&mut rng, network);
                assert!(network.contains(&address), "{address} outside {network}");
            }
        }
    }

    #[test]
    fn named_zone_converts_with_daylight_saving() {
        let london = Zone::new(Some("Europe/London"), -0.1);
        let winter = london.to_utc(local((2026, 1, 12), 9, 0));
        assert_eq!(winter.to_rfc3339(), "2026-01-12T09:00:00+00:00");
        let summer = london.to_utc(local((2026, 7, 13), 9, 0));
        assert_eq!(summer.to_rfc3339(), "2026-07-13T08:00:00+00:00");
        // 01:30 does not exist on 2026-03-29 in London; it moves to 02:30 BST.
        let skipped = london.to_utc(local((2026, 3, 29), 1, 30));
        assert_eq!(skipped.to_rfc3339(), "2026-03-29T01:30:00+00:00");
    }

    #[test]
    fn zone_without_name_uses_longitude() {
        let zone = Zone::new(None, 10.7);
        assert_eq!(
            zone.to_utc(local((2026, 7, 13), 9, 0)).to_rfc3339(),
            "2026-07-13T08:00:00+00:00"
        );
        let unknown = Zone::new(Some("Not/AZone"), -74.0);
        assert_eq!(
            unknown.to_utc(local((2026, 1, 12), 9, 0)).to_rfc3339(),
            "2026-01-12T14:00:00+00:00"
        );
    }
}
