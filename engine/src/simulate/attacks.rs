//! Labelled attacks: the naive, VPN and targeted account takeovers of the attacker models of
//! Wiefling et al. (ACM TOPS 26(1), 2023), each made with the victim's correct password,
//! plus credential-stuffing bursts and password-spray campaigns.

use std::ops::RangeInclusive;

use chrono::Duration;
use rand::Rng;
use rand::seq::index;

use super::agents::{self, DeviceKind};
use super::catalog::{Catalog, HostingCheck};
use super::keystrokes::{KeystrokeSamples, SampleRef};
use super::population::{Account, Population};
use super::{Access, App, AttackKind, Login, NO_DEVICE, round_trip_tenths};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Takeover attempts of each of the naive, vpn and targeted kinds per legitimate login.
const TAKEOVER_SHARE: f64 = 0.003;
/// Credential-stuffing attempts per legitimate login.
const STUFFING_SHARE: f64 = 0.012;
/// Password-spray attempts per legitimate login.
const SPRAY_SHARE: f64 = 0.005;
/// Attempts in one stuffing burst, and the gap between two of them in milliseconds.
const STUFFING_BURST: RangeInclusive<usize> = 40..=200;
const STUFFING_GAP_MS: std::ops::Range<i64> = 500..8_000;
/// Share of stuffing attempts whose leaked user id exists at the tenant, and the chance
/// that its leaked password is still the user's password.
const STUFFING_KNOWN_USER_SHARE: f64 = 0.3;
const STUFFING_SUCCESS_CHANCE: f64 = 0.05;
/// Share of stuffing bursts sent from a hosting network, when the catalog has one. The
/// others come from a random network, as from a botnet or residential proxy.
const STUFFING_HOSTING_SHARE: f64 = 0.6;
/// Users targeted by one spray campaign, the chance of a second round for each, and the
/// chance that a user's password is the sprayed one.
const SPRAY_TARGETS: RangeInclusive<usize> = 30..=150;
const SPRAY_SECOND_ROUND_CHANCE: f64 = 0.4;
const SPRAY_SUCCESS_CHANCE: f64 = 0.01;
/// Minimum attempts of a stuffing burst, and minimum users of a spray campaign, in a
/// small simulation.
const MIN_CAMPAIGN: usize = 10;
/// Addresses that one spray campaign rotates through.
const SPRAY_ADDRESSES: RangeInclusive<usize> = 3..=6;
/// Share of takeover attempts in which the attacker types the password, as another
/// keystroke subject; the others paste it, so no keystrokes are sent.
const IMPOSTOR_TYPING_SHARE: f64 = 0.6;

/// Words and mail providers of the made-up user ids in leaked credential lists.
const LEAKED_NAMES: [&str; 10] = [
    "alex", "sam", "chris", "kim", "lee", "max", "robin", "taylor", "jordan", "casey",
];
const LEAKED_PROVIDERS: [&str; 4] = ["mail", "inbox", "post", "webmail"];

/// Inputs of the attack generation.
pub(super) struct AttackContext<'a> {
    pub catalog: &'a Catalog,
    pub check: &'a HostingCheck<'a>,
    pub keystrokes: &'a KeystrokeSamples,
    pub start: chrono::NaiveDate,
    /// First and last millisecond (exclusive) of the simulated period.
    pub period: (i64, i64),
}

/// Appends every attack to `out`, scaled to `legitimate` logins so that each kind appears
/// at least once.
pub(super) fn generate(
    context: &AttackContext<'_>,
    population: &mut Population,
    legitimate: usize,
    rng: &mut impl Rng,
    out: &mut Vec<Login>,
) {
    let scaled = |share: f64, per_event: f64| {
        ((legitimate as f64 * share / per_event).round() as usize).max(1)
    };
    for kind in [AttackKind::Naive, AttackKind::Vpn, AttackKind::Targeted] {
        for _ in 0..scaled(TAKEOVER_SHARE, 1.0) {
            out.push(takeover(context, population, kind, rng));
        }
    }
    // A small simulation gets one burst and one campaign, shortened to its share of rows
    // (but at least `MIN_CAMPAIGN` attempts), so that attacks stay a small minority.
    let burst_mean = (STUFFING_BURST.start() + STUFFING_BURST.end()) as f64 / 2.0;
    let burst_cap = scaled(STUFFING_SHARE, 1.0).max(MIN_CAMPAIGN);
    for _ in 0..scaled(STUFFING_SHARE, burst_mean) {
        stuffing_burst(context, population, burst_cap, rng, out);
    }
    let campaign_mean = (SPRAY_TARGETS.start() + SPRAY_TARGETS.end()) as f64 / 2.0
        * (1.0 + SPRAY_SECOND_ROUND_CHANCE);
    let campaign_cap = scaled(SPRAY_SHARE, 1.0).max(MIN_CAMPAIGN);
    for _ in 0..scaled(SPRAY_SHARE, campaign_mean) {
        spray_campaign(context, population, campaign_cap, rng, out);
    }
}

/// Makes one takeover attempt with the victim's password.
///
/// - naive: a random network anywhere, a random device kind and user agent.
/// - vpn: a hosting or VPN network in the victim's country, a random desktop user agent.
/// - targeted: another network of the victim's city, the user agent of the victim's own
///   device and a new device id, during the victim's working hours.
fn takeover(
    context: &AttackContext<'_>,
    population: &mut Population,
    kind: AttackKind,
    rng: &mut impl Rng,
) -> Login {
    let catalog = context.catalog;
    let victim = rng.random_range(0..population.users.len());
    let user = &population.users[victim];
    let site = population.tenants[user.tenant].place;
    let subject = user.subject;

    let (network, device_kind, agent, time) = match kind {
        AttackKind::Naive => {
            let network = rng.random_range(0..catalog.networks.len());
            let (device_kind, agent) = agents::draw_any(rng);
            let agent = population.agents.intern(agent);
            (
                network,
                device_kind,
                agent,
                random_time(context.period, rng),
            )
        }
        AttackKind::Vpn => {
            let country = catalog.places[site].country.clone();
            let network = catalog.pick_hosting_in(rng, &country).unwrap_or_else(|| {
                let place = catalog.pick_place_in(rng, &country, site);
                catalog.pick_network(rng, place, None)
            });
            let device_kind = if rng.random_bool(0.5) {
                DeviceKind::Laptop
            } else {
                DeviceKind::Workstation
            };
            let agent = population.agents.intern(agents::draw(rng, device_kind));
            (
                network,
                device_kind,
                agent,
                random_time(context.period, rng),
            )
        }
        _ => {
            let network = catalog.pick_network(rng, site, Some(user.home_network));
            let time = working_hours_time(context, site, rng);
            let copied = user
                .devices
                .iter()
                .map(|&device| &population.devices[device])
                .find(|device| device.active_at(time))
                .or_else(|| {
                    user.devices
                        .first()
                        .map(|&device| &population.devices[device])
                });
            let (device_kind, agent) = match copied {
                Some(device) => (device.kind, device.agent),
                None => {
                    let agent = population
                        .agents
                        .intern(agents::draw(rng, DeviceKind::Laptop));
                    (DeviceKind::Laptop, agent)
                }
            };
            (network, device_kind, agent, time)
        }
    };

    let ip = catalog.draw_address(rng, network, Some(context.check));
    let device = population.add_device_with_agent(rng, device_kind, agent, time, time + 1);
    let exit = catalog.networks[network].place;
    // The naive attacker connects directly; the others tunnel from somewhere else through
    // the exit, so the round trip covers both legs.
    let path_km = match kind {
        AttackKind::Naive => catalog.distance_km(exit, site),
        _ => {
            let origin = catalog.pick_place(rng);
            catalog.distance_km(origin, exit) + catalog.distance_km(exit, site)
        }
    };
    Login {
        time_ms: time,
        account: victim as u32,
        ip,
        network: network as u32,
        agent,
        device: device as u32,
        rtt_tenths: round_trip_tenths(rng, Access::Fixed, path_km),
        keystrokes: impostor_sample(context.keystrokes, subject, rng),
        kind: Some(kind),
        success: true,
        app: if device_kind == DeviceKind::Phone {
            App::Mobile
        } else {
            App::Web
        },
    }
}

/// Draws a sample of another subject than the victim's. Returns none when the attacker
/// pastes the password or the data has a single subject.
fn impostor_sample(keystrokes: &KeystrokeSamples, victim: usize, rng: &mut impl Rng) -> SampleRef {
    let subjects = keystrokes.subject_count();
    if subjects < 2 || !rng.random_bool(IMPOSTOR_TYPING_SHARE) {
        return SampleRef::NONE;
    }
    let other = (victim % subjects + rng.random_range(1..subjects)) % subjects;
    keystrokes.draw(rng, other)
}

/// Appends a burst of credential stuffing against one tenant from one address. It tries
/// many user ids, most unknown to the tenant and a few with a reused password that works.
fn stuffing_burst(
    context: &AttackContext<'_>,
    population: &mut Population,
    max_size: usize,
    rng: &mut impl Rng,
    out: &mut Vec<Login>,
) {
    let catalog = context.catalog;
    let tenant = population.users[rng.random_range(0..population.users.len())].tenant;
    let hosting = rng
        .random_bool(STUFFING_HOSTING_SHARE)
        .then(|| catalog.pick_hosting(rng))
        .flatten();
    let network = hosting.unwrap_or_else(|| rng.random_range(0..catalog.networks.len()));
    let ip = catalog.draw_address(rng, network, Some(context.check));
    let access = if catalog.networks[network].hosting {
        Access::Hosting
    } else {
        Access::Fixed
    };
    let path_km = catalog.distance_km(
        catalog.networks[network].place,
        population.tenants[tenant].place,
    );
    let agent = population
        .agents
        .intern(agents::draw(rng, DeviceKind::Workstation));

    let size = rng.random_range(STUFFING_BURST).min(max_size);
    let latest = context.period.1 - size as i64 * STUFFING_GAP_MS.end;
    let mut time = rng.random_range(context.period.0..latest.max(context.period.0 + 1));
    for _ in 0..size {
        time += rng.random_range(STUFFING_GAP_MS);
        let users = &population.tenants[tenant].users;
        let (account, success) = if rng.random_bool(STUFFING_KNOWN_USER_SHARE) {
            let user = users[rng.random_range(0..users.len())];
            (user, rng.random_bool(STUFFING_SUCCESS_CHANCE))
        } else {
            (leaked_account(population, tenant, rng), false)
        };
        out.push(Login {
            time_ms: time,
            account: account as u32,
            ip,
            network: network as u32,
            agent,
            device: NO_DEVICE,
            rtt_tenths: round_trip_tenths(rng, access, path_km),
            keystrokes: SampleRef::NONE,
            kind: Some(AttackKind::Stuffing),
            success,
            app: App::Web,
        });
    }
}

/// Adds a made-up user id from a leaked list, unknown to the tenant.
fn leaked_account(population: &mut Population, tenant: usize, rng: &mut impl Rng) -> usize {
    let name = LEAKED_NAMES[rng.random_range(0..LEAKED_NAMES.len())];
    let provider = LEAKED_PROVIDERS[rng.random_range(0..LEAKED_PROVIDERS.len())];
    let number = rng.random_range(1..10_000);
    population.accounts.push(Account {
        user_id: format!("{name}{number}@{provider}.example"),
        role: None,
        tenant,
    });
    population.accounts.len() - 1
}

/// Appends a password-spray campaign: one or two attempts with a common password for many
/// users of one tenant, from a few rotating addresses over half a day.
fn spray_campaign(
    context: &AttackContext<'_>,
    population: &mut Population,
    max_targets: usize,
    rng: &mut impl Rng,
    out: &mut Vec<Login>,
) {
    let catalog = context.catalog;
    let tenant = population.users[rng.random_range(0..population.users.len())].tenant;
    let site = population.tenants[tenant].place;
    let sources: Vec<(usize, std::net::IpAddr)> = (0..rng.random_range(SPRAY_ADDRESSES))
        .map(|_| {
            let network = catalog
                .pick_hosting(rng)
                .unwrap_or_else(|| rng.random_range(0..catalog.networks.len()));
            (
                network,
                catalog.draw_address(rng, network, Some(context.check)),
            )
        })
        .collect();
    let agent = population
        .agents
        .intern(agents::draw(rng, DeviceKind::Workstation));
    let users = &population.tenants[tenant].users;
    let count = rng
        .random_range(SPRAY_TARGETS)
        .min(max_targets)
        .min(users.len());
    let targets: Vec<usize> = index::sample(rng, users.len(), count)
        .into_iter()
        .map(|position| users[position])
        .collect();
    let latest = context.period.1 - 12 * HOUR_MS;
    let begin = rng.random_range(context.period.0..latest.max(context.period.0 + 1));
    for user in targets {
        let mut offsets = vec![rng.random_range(0..4 * HOUR_MS)];
        if rng.random_bool(SPRAY_SECOND_ROUND_CHANCE) {
            offsets.push(rng.random_range(6 * HOUR_MS..12 * HOUR_MS));
        }
        for offset in offsets {
            let (network, ip) = sources[rng.random_range(0..sources.len())];
            let access = if catalog.networks[network].hosting {
                Access::Hosting
            } else {
                Access::Fixed
            };
            let path_km = catalog.distance_km(catalog.networks[network].place, site);
            out.push(Login {
                time_ms: begin + offset,
                account: user as u32,
                ip,
                network: network as u32,
                agent,
                device: NO_DEVICE,
                rtt_tenths: round_trip_tenths(rng, access, path_km),
                keystrokes: SampleRef::NONE,
                kind: Some(AttackKind::Spray),
                success: rng.random_bool(SPRAY_SUCCESS_CHANCE),
                app: App::Web,
            });
        }
    }
}

fn random_time(period: (i64, i64), rng: &mut impl Rng) -> i64 {
    rng.random_range(period.0..period.1)
}

/// Draws a time between 08:00 and 18:00 local time at `place` on a random weekday of the
/// period, or on any day when the period has no weekday.
fn working_hours_time(context: &AttackContext<'_>, place: usize, rng: &mut impl Rng) -> i64 {
    use chrono::Datelike;

    let days = ((context.period.1 - context.period.0) / DAY_MS).max(1);
    let weekdays: Vec<i64> = (0..days)
        .filter(|&day| {
            let date = context.start + Duration::days(day);
            !matches!(date.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun)
        })
        .collect();
    let day = if weekdays.is_empty() {
        rng.random_range(0..days)
    } else {
        weekdays[rng.random_range(0..weekdays.len())]
    };

    let hour = rng.random_range(8.0..18.0);
    let local = (context.start + Duration::days(day))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        + Duration::milliseconds((hour * HOUR_MS as f64) as i64);
    let time = context.catalog.places[place]
        .zone
        .to_utc(local)
        .timestamp_millis();
    // A place far from UTC can push the first or last day out of the period. The same
    // hour a day later or earlier is inside, because the period has at least one day.
    let (start, end) = context.period;
    let time = if time >= end {
        time - DAY_MS
    } else if time < start {
        time + DAY_MS
    } else {
        time
    };
    time.clamp(start, end - 1)
}
