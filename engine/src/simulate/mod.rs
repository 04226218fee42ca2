//! Labelled login-history generator behind `riskgate simulate`, for training and evaluating
//! the risk model.
//!
//! [`simulate`] builds a population of healthcare staff, plays their logins over a period
//! that starts at 00:00 UTC of the start date, and mixes in labelled attacks.
//! [`Simulation::write`] stores the rows sorted by timestamp, as CSV in the riskgate layout
//! of `data/logins/README.md` or, built with the `train` feature, as Parquet.
//!
//! A seed gives the same bytes on every run with the same options, configuration, data
//! files, platform and locked dependency versions. Every random number comes from a
//! ChaCha8 stream: one per user, one for the population and one for the attacks.
//!
//! # Addresses
//!
//! Every address lies in a network of the configured city databases whose record has a
//! country and coordinates, so a replay through the engine finds the place the generator
//! meant; the `country`, `city` and `network` columns name it. A database with more than
//! 200,000 networks is thinned in proportion to each city's networks. Networks are grouped
//! into places by country, subdivision and city, and networks more than 25 km from a
//! place's coordinates form another place. A network is a hosting network when its first
//! host address is on one of the `[signals]` hosting or anonymiser lists (by network or by
//! the ASN from the ASN database) or flagged VPN or hosting by the anonymous-IP database.
//!
//! # Behaviour model
//!
//! - Tenants: about sqrt(users) / 4 organisations, each sited in a city picked with a
//!   weight of its network count. Tenant k gets users with a weight of 1 / (k + 1), so a
//!   few large hospitals sit beside small clinics. A site reaches the internet through one
//!   public NAT address plus one per 250 staff (at most 8) and has 2 to 6 shared
//!   workstations.
//! - Users: 22 % physicians, 38 % nurses, 15 % front desk, 12 % billing, 13 % admin. Each
//!   lives in the tenant's city, with a home network, a mobile network and one to three
//!   devices with a stable id and user agent (browser and OS). 8 % per 30 days replace a
//!   device, which brings a new id and user agent.
//! - Working hours, local to the site: physicians on weekdays 07:30-18:30 with evening
//!   notes, weekend and night calls from home; nurses on 12-hour day (07:00-19:00) or night
//!   (19:00-07:00) shifts about three days a week; front desk 07:30-17:30 on weekdays and
//!   some Saturday mornings; billing 08:30-17:00, some from home on Mondays and Fridays;
//!   admin 08:00-18:00 with some evenings and weekends from home. A user is off on 5 % of
//!   their days.
//! - Login frequency: each user logs in several times a shift (Poisson, mean 2 to 3.5 by
//!   role), about daily, about weekly or about monthly; the share of each depends on the
//!   role. Two logins of a user are at least 15 minutes apart, apart from a typo and its
//!   retry.
//! - Devices and networks: at work, nurses and front-desk staff use a shared workstation
//!   half of the time, and computers go through the site's NAT. Phones use mobile data half
//!   of the time. At home, users prefer a laptop or phone on their home address, which the
//!   provider renews now and then.
//! - Trips: 12 % of users per 30 days travel for 2 to 7 days, 60 % of them to another city
//!   of their country at least 100 km away, the others abroad. Door-to-door travel takes
//!   0.5 h + km / 80 below 500 km, else 5 h + km / 550 (a flight), and no login happens on
//!   the way, so legitimate travel never looks faster than 500 km/h. Physicians and admins
//!   log in on 60 % of trip days, others on 30 %, from the hotel's network.
//! - Typos and keystrokes: each user types as one subject of the keystroke file (users
//!   cycle through the subjects), with a random sample of that subject per login. 15 % of
//!   users have a password manager and never send keystrokes, and the others paste the
//!   password 5 % of the time. 4 % of typed logins follow a failed attempt 4 to 40 seconds
//!   earlier from the same device.
//! - Attacks, after the attacker models of Wiefling et al. (ACM TOPS 26(1), 2023), have
//!   `is_attack=true` and the kind in `attack_kind`. Each kind appears at least once, and
//!   the shares below are of the legitimate logins. The three takeover kinds hold the
//!   victim's password (`login_successful=true`), and 60 % of their attackers type it as
//!   another keystroke subject while the others paste it.
//!   - **naive** (0.3 %): a random network anywhere, a random device and user agent.
//!   - **vpn** (0.3 %): a hosting network of the victim's country. When the country has
//!     none, another network of that country that no list flags.
//!   - **targeted** (0.3 %): another network of the victim's city, the victim's user
//!     agent with a new device id, during the victim's working hours.
//!   - **stuffing** (1.2 %): bursts of 40 to 200 attempts from one address, 60 % of them
//!     from a hosting network. 30 % of the attempts use a user id of the tenant, and 5 %
//!     of those succeed. The others use made-up ids and fail.
//!   - **spray** (0.5 %): one common password against 30 to 150 users of a tenant, 40 %
//!     of them twice, from 3 to 6 rotating addresses of hosting networks (of any network
//!     when there is none). 1 % succeed.
//!
//!   Stuffing and spray bots send no device id and no keystrokes.
//! - Round-trip time: an access delay (fixed line 2-12 ms, mobile 25-70 ms, hotel 5-25
//!   ms, hosting 0.5-3 ms) plus 0.016 ms per km to the tenant's site, because light in
//!   fibre covers about 200 km per millisecond and routes run about 1.6 times the
//!   great-circle distance. VPN and targeted attackers tunnel from a random place, which
//!   adds that leg.
//!
//! Local times use the place's time zone from the database, or, where the record has
//! none (DB-IP City Lite has none), the offset of its longitude in whole hours without
//! daylight saving time.

mod agents;
mod attacks;
mod catalog;
mod keystrokes;
mod output;
mod population;
mod schedule;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use chrono::{Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::geo::{GeoError, GeoIp};
use crate::iplists::{IpLists, ListError};
use riskgate_models::keystroke::BenchmarkError;

use catalog::{Catalog, HostingCheck, MAX_NETWORKS_PER_DATABASE};
use keystrokes::{KeystrokeSamples, SampleRef};
use population::Population;

pub use output::{COLUMNS, OutputFormat};

/// Largest accepted `--users`.
pub const MAX_USERS: usize = 1_000_000;
/// Largest accepted `--days` (ten years).
pub const MAX_DAYS: u32 = 3660;

/// Entries of the lookup cache of the simulator's own geo-IP reader. Its lookups check
/// hosting networks once each, so a small cache is enough.
const GEO_CACHE_CAPACITY: u64 = 10_000;

const POPULATION_STREAM: u64 = 0;
const ATTACK_STREAM: u64 = 1;
/// User `i` draws from stream `USER_STREAM_BASE + i`.
const USER_STREAM_BASE: u64 = 1 << 32;

/// Settings of one simulation.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub users: usize,
    pub days: u32,
    pub seed: u64,
    /// First day of the period, which starts at 00:00 UTC of that day.
    pub start: NaiveDate,
    /// Keystroke timings in the CMU layout, such as `data/keystroke/IIITBh-Big.csv`.
    pub keystrokes: PathBuf,
}

/// Failure of a simulation. Every variant names the offending value or file.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("invalid user count `{users}`: expected 1 to {MAX_USERS}")]
    InvalidUsers { users: usize },
    #[error("invalid day count `{days}`: expected 1 to {MAX_DAYS}")]
    InvalidDays { days: u32 },
    #[error("invalid period: `{start}` plus {days} days is out of the supported date range")]
    InvalidPeriod { start: NaiveDate, days: u32 },
    #[error("failed to open the geo-IP databases: {0}")]
    Geo(#[from] GeoError),
    #[error("failed to load the IP lists: {0}")]
    Lists(#[from] ListError),
    #[error(
        "no network of the city databases has a city name and coordinates, so no tenant \
         can be sited: configure a city database such as GeoIP2 City or DB-IP City Lite \
         in `geo.city`"
    )]
    NoCities,
    #[error("failed to read keystroke data `{}`: {source}", path.display())]
    Keystrokes {
        path: PathBuf,
        #[source]
        source: BenchmarkError,
    },
    #[error("keystroke data `{}` has no sample that the engine can evaluate", path.display())]
    NoKeystrokeSamples { path: PathBuf },
    #[error("failed to write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to write `{}`: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("unsupported output file `{}`: expected a `.csv` or `.parquet` extension", path.display())]
    UnsupportedFormat { path: PathBuf },
    #[error(
        "cannot write `{}`: Parquet output needs riskgate built with `--features train`",
        path.display()
    )]
    ParquetNotBuilt { path: PathBuf },
    #[cfg(feature = "train")]
    #[error("failed to write Parquet file `{}`: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: polars::error::PolarsError,
    },
}

/// Kind of a simulated attack, as written to `attack_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttackKind {
    Naive,
    Vpn,
    Targeted,
    Stuffing,
    Spray,
}

impl AttackKind {
    pub const ALL: [AttackKind; 5] = [
        AttackKind::Naive,
        AttackKind::Vpn,
        AttackKind::Targeted,
        AttackKind::Stuffing,
        AttackKind::Spray,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttackKind::Naive => "naive",
            AttackKind::Vpn => "vpn",
            AttackKind::Targeted => "targeted",
            AttackKind::Stuffing => "stuffing",
            AttackKind::Spray => "spray",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    Web,
    Mobile,
}

impl App {
    fn as_str(self) -> &'static str {
        match self {
            App::Web => "crm-web",
            App::Mobile => "crm-mobile",
        }
    }
}

/// Internet access of a client, which sets the access part of its round-trip time.
#[derive(Debug, Clone, Copy)]
enum Access {
    Fixed,
    Mobile,
    Hotel,
    Hosting,
}

impl Access {
    fn delay_ms(self) -> std::ops::Range<f64> {
        match self {
            Access::Fixed => 2.0..12.0,
            Access::Mobile => 25.0..70.0,
            Access::Hotel => 5.0..25.0,
            Access::Hosting => 0.5..3.0,
        }
    }
}

/// Round-trip milliseconds per km of great-circle distance. Light in fibre covers about
/// 200 km per millisecond, and routes run about 1.6 times the great-circle distance.
const ROUND_TRIP_MS_PER_KM: f64 = 0.016;

/// Draws a round-trip time in tenths of a millisecond over `path_km` of distance.
fn round_trip_tenths(rng: &mut impl Rng, access: Access, path_km: f64) -> u32 {
    let access_ms = rng.random_range(access.delay_ms());
    let propagation_ms = path_km * ROUND_TRIP_MS_PER_KM * rng.random_range(1.0..1.3);
    ((access_ms + propagation_ms) * 10.0).round() as u32
}

/// `Login::device` of a login without a device fingerprint.
const NO_DEVICE: u32 = u32::MAX;

/// One output row, with its text fields stored once elsewhere and referred to by index.
#[derive(Debug, Clone)]
struct Login {
    /// Milliseconds since the Unix epoch.
    time_ms: i64,
    /// Index into [`Population::accounts`].
    account: u32,
    ip: IpAddr,
    /// Index into [`Catalog::networks`] of the network that contains `ip`.
    network: u32,
    agent: u32,
    /// Index into [`Population::devices`], or [`NO_DEVICE`].
    device: u32,
    rtt_tenths: u32,
    keystrokes: SampleRef,
    kind: Option<AttackKind>,
    success: bool,
    app: App,
}

/// A generated login history, ready to be written.
#[derive(Debug)]
pub struct Simulation {
    catalog: Catalog,
    population: Population,
    keystrokes: KeystrokeSamples,
    /// Sorted by time. Logins at the same millisecond keep their generation order.
    logins: Vec<Login>,
}

/// Rows of one kind (`legitimate` or an attack kind) by outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KindCount {
    pub kind: &'static str,
    pub succeeded: u64,
    pub failed: u64,
}

/// Rows of a simulation by kind, legitimate first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub rows: u64,
    pub kinds: Vec<KindCount>,
}

impl fmt::Display for Summary {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "{} rows", self.rows)?;
        for count in &self.kinds {
            let share = 100.0 * (count.succeeded + count.failed) as f64 / self.rows.max(1) as f64;
            writeln!(
                formatter,
                "  {:<10} {:>9} succeeded {:>9} failed  {share:6.2} %",
                count.kind, count.succeeded, count.failed
            )?;
        }
        Ok(())
    }
}

/// Generates the login history that `options` describe, with the geo-IP databases and IP
/// lists of `config`.
pub fn simulate(config: &Config, options: &SimulateOptions) -> Result<Simulation, SimulateError> {
    if options.users == 0 || options.users > MAX_USERS {
        return Err(SimulateError::InvalidUsers {
            users: options.users,
        });
    }
    if options.days == 0 || options.days > MAX_DAYS {
        return Err(SimulateError::InvalidDays { days: options.days });
    }
    let invalid_period = || SimulateError::InvalidPeriod {
        start: options.start,
        days: options.days,
    };
    let first = options
        .start
        .and_hms_opt(0, 0, 0)
        .ok_or_else(invalid_period)?
        .and_utc();
    let end = first
        .checked_add_signed(Duration::days(i64::from(options.days)))
        .ok_or_else(invalid_period)?;
    let period = (first.timestamp_millis(), end.timestamp_millis());

    let keystrokes = KeystrokeSamples::load(&options.keystrokes)?;
    let geo_config = crate::geo::GeoConfig {
        cache_capacity: GEO_CACHE_CAPACITY,
        ..config.geo.clone()
    };
    let geo = GeoIp::open(&geo_config, &config.base_dir)?;
    let lists = IpLists::open(&config.iplists, &config.base_dir)?;
    let check = HostingCheck {
        geo: &geo,
        lists: &lists,
        list_names: config
            .signals
            .hosting_lists
            .iter()
            .chain(&config.signals.anonymous_lists)
            .cloned()
            .collect(),
    };
    let catalog = Catalog::build(geo.city_networks(MAX_NETWORKS_PER_DATABASE)?, &check);
    if !catalog.has_cities() {
        return Err(SimulateError::NoCities);
    }

    let mut rng = stream(options.seed, POPULATION_STREAM);
    let mut population = Population::build(
        &mut rng,
        &catalog,
        options.users,
        keystrokes.subject_count(),
        period,
    )
    .ok_or(SimulateError::NoCities)?;

    let mut logins = Vec::new();
    let context = schedule::Context {
        catalog: &catalog,
        population: &population,
        keystrokes: &keystrokes,
        start: options.start,
        days: options.days,
    };
    for index in 0..population.users.len() {
        let mut rng = stream(options.seed, USER_STREAM_BASE + index as u64);
        schedule::legitimate_logins(&context, index, &mut rng, &mut logins);
    }
    logins.retain(|login| period.0 <= login.time_ms && login.time_ms < period.1);

    let attack_context = attacks::AttackContext {
        catalog: &catalog,
        check: &check,
        keystrokes: &keystrokes,
        start: options.start,
        period,
    };
    let legitimate = logins.len();
    let mut rng = stream(options.seed, ATTACK_STREAM);
    attacks::generate(
        &attack_context,
        &mut population,
        legitimate,
        &mut rng,
        &mut logins,
    );
    logins.retain(|login| period.0 <= login.time_ms && login.time_ms < period.1);
    logins.sort_by_key(|login| login.time_ms);

    Ok(Simulation {
        catalog,
        population,
        keystrokes,
        logins,
    })
}

fn stream(seed: u64, number: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(number);
    rng
}

impl Simulation {
    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.logins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.logins.is_empty()
    }

    /// Counts the rows by kind and outcome.
    pub fn summary(&self) -> Summary {
        let mut kinds: Vec<KindCount> = std::iter::once("legitimate")
            .chain(AttackKind::ALL.iter().map(|kind| kind.as_str()))
            .map(|kind| KindCount {
                kind,
                succeeded: 0,
                failed: 0,
            })
            .collect();
        for login in &self.logins {
            let slot = match login.kind {
                None => 0,
                Some(kind) => 1 + kind as usize,
            };
            if login.success {
                kinds[slot].succeeded += 1;
            } else {
                kinds[slot].failed += 1;
            }
        }
        Summary {
            rows: self.logins.len() as u64,
            kinds,
        }
    }
}
