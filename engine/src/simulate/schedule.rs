//! Legitimate logins of one user: working windows by role and login frequency, trips with
//! door-to-door travel times, the device and network of each login, and typos.

use std::net::IpAddr;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use rand::Rng;
use rand::distr::Distribution;
use rand_distr::Poisson;

use super::agents::DeviceKind;
use super::catalog::{Catalog, random_host};
use super::keystrokes::{KeystrokeSamples, SampleRef};
use super::population::{Frequency, Population, Role, User};
use super::{Access, App, Login, round_trip_tenths};

const HOUR_MS: i64 = 3_600_000;

/// Chance that a user is off (leave, sick day) on a day they would work.
const DAY_OFF_CHANCE: f64 = 0.05;
/// Chance that a nurse works a shift on a given day: about three 12-hour shifts a week.
const NURSE_SHIFT_CHANCE: f64 = 0.45;
/// Shortest gap between two logins of a user, apart from a typo and its retry. It also
/// bounds the apparent speed between two networks of one place (see `PLACE_RADIUS_KM`).
const MIN_GAP_MS: i64 = 15 * 60 * 1000;
/// Chance, per 30 days, that a user takes a trip.
const TRIP_CHANCE_PER_30_DAYS: f64 = 0.12;
/// Share of trips that stay in the home country, when it has another city far enough away.
const DOMESTIC_TRIP_SHARE: f64 = 0.6;
/// Nearest destination of a domestic trip, in km.
const MIN_TRIP_KM: f64 = 100.0;
/// Chance that a typed login is preceded by a failed attempt with a mistyped password.
const TYPO_CHANCE: f64 = 0.04;
/// Chance that a user who types the password pastes or autofills it this time.
const PASTE_CHANCE: f64 = 0.05;
/// Chance that a home login gets a new address from the provider (a new DHCP lease).
const HOME_ADDRESS_CHANGE_CHANCE: f64 = 0.03;

/// Inputs shared by the generation of every user.
pub(super) struct Context<'a> {
    pub catalog: &'a Catalog,
    pub population: &'a Population,
    pub keystrokes: &'a KeystrokeSamples,
    pub start: NaiveDate,
    pub days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    Work,
    Home,
    Trip(usize),
}

/// Local hours in which a user logs in on one day. `end` may pass 24 for a shift that
/// ends the next morning.
struct Window {
    start: f64,
    end: f64,
    site: Site,
    /// The day's main working window; rare users log in only in this one.
    main: bool,
    /// Mean number of logins in the window for users who log in several times a day.
    mean: f64,
}

impl Window {
    fn new(start: f64, end: f64, site: Site, main: bool, mean: f64) -> Window {
        Window {
            start,
            end,
            site,
            main,
            mean,
        }
    }
}

/// A trip: leaving home at `depart_ms`, arriving at `arrive_ms`, leaving the destination
/// at `leave_ms` and home again at `back_ms`.
struct Trip {
    place: usize,
    network: usize,
    hotel_ip: IpAddr,
    depart_ms: i64,
    arrive_ms: i64,
    leave_ms: i64,
    back_ms: i64,
}

/// Appends the legitimate logins of user `index` to `out`, in no particular order.
pub(super) fn legitimate_logins(
    context: &Context<'_>,
    index: usize,
    rng: &mut impl Rng,
    out: &mut Vec<Login>,
) {
    let user = &context.population.users[index];
    let trips = plan_trips(context, user, rng);
    let mut candidates = working_candidates(context, user, rng);
    candidates.retain(|&(time, _)| {
        !trips
            .iter()
            .any(|trip| trip.depart_ms <= time && time < trip.back_ms)
    });
    for (number, trip) in trips.iter().enumerate() {
        candidates.extend(trip_candidates(context, user, trip, number, rng));
    }
    candidates.sort_by_key(|&(time, _)| time);

    let mut home_ip = user.home_ip;
    let mut last_ms: Option<i64> = None;
    for (time, site) in candidates {
        if last_ms.is_some_and(|last| time - last < MIN_GAP_MS) {
            continue;
        }
        let Some(device) = choose_device(context.population, user, site, time, rng) else {
            continue;
        };
        last_ms = Some(time);
        let login = make_login(
            context,
            index,
            site,
            &trips,
            device,
            time,
            &mut home_ip,
            rng,
        );
        if login.keystrokes != SampleRef::NONE && rng.random_bool(TYPO_CHANCE) {
            let typo = Login {
                time_ms: time - rng.random_range(4_000..40_000),
                success: false,
                keystrokes: context.keystrokes.draw(rng, user.subject),
                ..login.clone()
            };
            out.push(typo);
        }
        out.push(login);
    }
}

/// Candidate login times at work and at home, before trips and the minimum gap apply.
fn working_candidates(context: &Context<'_>, user: &User, rng: &mut impl Rng) -> Vec<(i64, Site)> {
    let zone = context.catalog.places[context.population.tenants[user.tenant].place].zone;
    let mut candidates = Vec::new();
    for offset in 0..context.days {
        let date = context.start + Duration::days(i64::from(offset));
        if rng.random_bool(DAY_OFF_CHANCE) {
            continue;
        }
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        for window in windows(user, date, rng) {
            for _ in 0..login_count(user.frequency, &window, rng) {
                let hour = rng.random_range(window.start..window.end);
                let local = midnight + Duration::milliseconds((hour * HOUR_MS as f64) as i64);
                candidates.push((zone.to_utc(local).timestamp_millis(), window.site));
            }
        }
    }
    candidates
}

/// Returns the login windows of one day, by role, in hours local to the tenant's site.
fn windows(user: &User, date: NaiveDate, rng: &mut impl Rng) -> Vec<Window> {
    let weekday = date.weekday();
    let weekend = matches!(weekday, Weekday::Sat | Weekday::Sun);
    let mut windows = Vec::new();
    match user.role {
        Role::Physician => {
            if !weekend {
                windows.push(Window::new(7.5, 18.5, Site::Work, true, 3.5));
                // Notes written at home in the evening.
                if rng.random_bool(0.15) {
                    windows.push(Window::new(19.5, 22.5, Site::Home, false, 1.0));
                }
            } else if rng.random_bool(0.25) {
                // Weekend on call, from home.
                windows.push(Window::new(9.0, 13.0, Site::Home, true, 1.5));
            }
            // Night call, from home, ending after midnight.
            if rng.random_bool(0.06) {
                windows.push(Window::new(22.0, 27.0, Site::Home, false, 1.0));
            }
        }
        Role::Nurse => {
            if rng.random_bool(NURSE_SHIFT_CHANCE) {
                let (start, end) = if user.night_shift {
                    (19.0, 31.0)
                } else {
                    (7.0, 19.0)
                };
                windows.push(Window::new(start, end, Site::Work, true, 3.0));
            }
        }
        Role::FrontDesk => {
            if !weekend {
                windows.push(Window::new(7.5, 17.5, Site::Work, true, 3.0));
            } else if weekday == Weekday::Sat && rng.random_bool(0.2) {
                windows.push(Window::new(8.0, 12.0, Site::Work, true, 1.5));
            }
        }
        Role::Billing => {
            if !weekend {
                let remote = user.remote_billing && matches!(weekday, Weekday::Mon | Weekday::Fri);
                let site = if remote { Site::Home } else { Site::Work };
                windows.push(Window::new(8.5, 17.0, site, true, 2.0));
            }
        }
        Role::Admin => {
            if !weekend {
                windows.push(Window::new(8.0, 18.0, Site::Work, true, 2.5));
                if rng.random_bool(0.1) {
                    windows.push(Window::new(20.0, 22.0, Site::Home, false, 1.0));
                }
            } else if rng.random_bool(0.05) {
                windows.push(Window::new(10.0, 14.0, Site::Home, true, 1.0));
            }
        }
    }
    windows
}

fn login_count(frequency: Frequency, window: &Window, rng: &mut impl Rng) -> u32 {
    match (frequency, window.main) {
        (Frequency::Several, true) => {
            let count =
                Poisson::new(window.mean).map_or(window.mean, |poisson| poisson.sample(rng));
            (count as u32).max(1)
        }
        (Frequency::Several, false) => 1,
        (Frequency::Daily, true) => 1 + u32::from(rng.random_bool(0.25)),
        (Frequency::Daily, false) => u32::from(rng.random_bool(0.5)),
        (Frequency::Weekly, true) => u32::from(rng.random_bool(0.2)),
        (Frequency::Monthly, true) => u32::from(rng.random_bool(0.05)),
        (Frequency::Weekly | Frequency::Monthly, false) => 0,
    }
}

/// Door-to-door travel time in hours: by road at 80 km/h below 500 km, else a flight at
/// 550 km/h of great-circle distance plus 5 hours to and from the airports. The apparent
/// speed stays below 500 km/h, where the engine's `impossible_travel` signal starts to
/// rise with the default `max_travel_speed_kmh` of 1000.
fn travel_hours(km: f64) -> f64 {
    if km < 500.0 {
        0.5 + km / 80.0
    } else {
        5.0 + km / 550.0
    }
}

fn plan_trips(context: &Context<'_>, user: &User, rng: &mut impl Rng) -> Vec<Trip> {
    let catalog = context.catalog;
    let home = context.population.tenants[user.tenant].place;
    let mut trips: Vec<Trip> = Vec::new();
    for block in 0..context.days.div_ceil(30) {
        if !rng.random_bool(TRIP_CHANCE_PER_30_DAYS) {
            continue;
        }
        let length = rng.random_range(2..=7u32);
        let first = block * 30;
        let last = ((block + 1) * 30).min(context.days).saturating_sub(length);
        if last <= first {
            continue;
        }
        let first_day = rng.random_range(first..last);
        let destination = if rng.random_bool(DOMESTIC_TRIP_SHARE) {
            catalog
                .pick_domestic_city(rng, home, MIN_TRIP_KM)
                .or_else(|| catalog.pick_foreign_city(rng, home))
        } else {
            catalog
                .pick_foreign_city(rng, home)
                .or_else(|| catalog.pick_domestic_city(rng, home, MIN_TRIP_KM))
        };
        let Some(place) = destination else {
            continue;
        };
        let travel_ms = (travel_hours(catalog.distance_km(home, place)) * HOUR_MS as f64) as i64;
        let local = |day: u32, hour: f64| {
            (context.start + Duration::days(i64::from(day)))
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                + Duration::milliseconds((hour * HOUR_MS as f64) as i64)
        };
        let depart_ms = catalog.places[home]
            .zone
            .to_utc(local(first_day, rng.random_range(6.0..20.0)))
            .timestamp_millis();
        let leave_ms = catalog.places[place]
            .zone
            .to_utc(local(first_day + length - 1, rng.random_range(8.0..18.0)))
            .timestamp_millis();
        let arrive_ms = depart_ms + travel_ms;
        let overlaps = trips.last().is_some_and(|last| depart_ms < last.back_ms);
        if leave_ms < arrive_ms + 2 * HOUR_MS || overlaps {
            continue;
        }
        let network = catalog.pick_network(rng, place, None);
        trips.push(Trip {
            place,
            network,
            hotel_ip: random_host(rng, catalog.networks[network].network),
            depart_ms,
            arrive_ms,
            leave_ms,
            back_ms: leave_ms + travel_ms,
        });
    }
    trips
}

/// Remote logins during a trip, in the destination's local evening and daytime hours.
fn trip_candidates(
    context: &Context<'_>,
    user: &User,
    trip: &Trip,
    number: usize,
    rng: &mut impl Rng,
) -> Vec<(i64, Site)> {
    let chance = match user.role {
        Role::Physician | Role::Admin => 0.6,
        _ => 0.3,
    };
    let zone = context.catalog.places[trip.place].zone;
    let mut candidates = Vec::new();
    let mut day = trip.arrive_ms;
    while day < trip.leave_ms {
        if rng.random_bool(chance) {
            let date = chrono::DateTime::from_timestamp_millis(day)
                .map(|time| time.date_naive())
                .unwrap_or(context.start);
            let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
            for _ in 0..1 + u32::from(rng.random_bool(0.3)) {
                let hour = rng.random_range(8.0..22.0);
                let local = midnight + Duration::milliseconds((hour * HOUR_MS as f64) as i64);
                let time = zone.to_utc(local).timestamp_millis();
                if trip.arrive_ms + HOUR_MS / 2 <= time && time <= trip.leave_ms - HOUR_MS / 2 {
                    candidates.push((time, Site::Trip(number)));
                }
            }
        }
        day += 24 * HOUR_MS;
    }
    candidates
}

/// Picks the device of a login: shared workstations for ward and desk staff at work,
/// mostly computers at work, portable devices at home and on trips. Returns `None` when
/// the user has no suitable device, and then the login does not happen.
fn choose_device(
    population: &Population,
    user: &User,
    site: Site,
    time: i64,
    rng: &mut impl Rng,
) -> Option<usize> {
    let own: Vec<usize> = user
        .devices
        .iter()
        .copied()
        .filter(|&device| population.devices[device].active_at(time))
        .collect();
    let of_kind = |wanted: fn(DeviceKind) -> bool| -> Vec<usize> {
        own.iter()
            .copied()
            .filter(|&device| wanted(population.devices[device].kind))
            .collect()
    };
    let shared = &population.tenants[user.tenant].shared_devices;
    match site {
        Site::Work => {
            if user.role.uses_shared_workstations()
                && rng.random_bool(0.5)
                && let Some(device) = pick(shared, rng)
            {
                return Some(device);
            }
            let phones = of_kind(|kind| kind == DeviceKind::Phone);
            let computers = of_kind(|kind| kind != DeviceKind::Phone);
            if !phones.is_empty() && (computers.is_empty() || rng.random_bool(0.2)) {
                return pick(&phones, rng);
            }
            pick(&computers, rng).or_else(|| pick(shared, rng))
        }
        Site::Home => pick(&of_kind(DeviceKind::is_portable), rng).or_else(|| pick(&own, rng)),
        Site::Trip(_) => pick(&of_kind(DeviceKind::is_portable), rng),
    }
}

fn pick(pool: &[usize], rng: &mut impl Rng) -> Option<usize> {
    (!pool.is_empty()).then(|| pool[rng.random_range(0..pool.len())])
}

#[allow(clippy::too_many_arguments)]
fn make_login(
    context: &Context<'_>,
    index: usize,
    site: Site,
    trips: &[Trip],
    device: usize,
    time: i64,
    home_ip: &mut IpAddr,
    rng: &mut impl Rng,
) -> Login {
    let catalog = context.catalog;
    let population = context.population;
    let user = &population.users[index];
    let tenant = &population.tenants[user.tenant];
    let phone = population.devices[device].kind == DeviceKind::Phone;
    let on_mobile_data = phone && rng.random_bool(0.5);
    let (network, ip, access) = match site {
        Site::Trip(number) => (trips[number].network, trips[number].hotel_ip, Access::Hotel),
        _ if on_mobile_data => {
            let network = user.mobile_network;
            let ip = random_host(rng, catalog.networks[network].network);
            (network, ip, Access::Mobile)
        }
        Site::Work => {
            let ip = tenant.nat[rng.random_range(0..tenant.nat.len())];
            (tenant.work_network, ip, Access::Fixed)
        }
        Site::Home => {
            if rng.random_bool(HOME_ADDRESS_CHANGE_CHANCE) {
                *home_ip = random_host(rng, catalog.networks[user.home_network].network);
            }
            (user.home_network, *home_ip, Access::Fixed)
        }
    };
    let path_km = catalog.distance_km(catalog.networks[network].place, tenant.place);
    let keystrokes = if user.password_manager || rng.random_bool(PASTE_CHANCE) {
        SampleRef::NONE
    } else {
        context.keystrokes.draw(rng, user.subject)
    };
    Login {
        time_ms: time,
        account: index as u32,
        ip,
        network: network as u32,
        agent: population.devices[device].agent,
        device: device as u32,
        rtt_tenths: round_trip_tenths(rng, access, path_km),
        keystrokes,
        kind: None,
        success: true,
        app: if phone { App::Mobile } else { App::Web },
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn travel_slower_than_impossible_travel() {
        // Half of the great-circle circumference is the longest trip on Earth.
        let mut km = 0.0;
        while km <= 20_040.0 {
            let speed = km / travel_hours(km);
            assert!(speed < 500.0, "{km} km at {speed} km/h");
            km += 10.0;
        }
    }

    #[test]
    fn rare_users_skip_secondary_windows() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let evening = Window::new(19.5, 22.5, Site::Home, false, 1.0);
        for frequency in [Frequency::Weekly, Frequency::Monthly] {
            assert_eq!(login_count(frequency, &evening, &mut rng), 0);
        }
        let shift = Window::new(7.0, 19.0, Site::Work, true, 3.0);
        let total: u32 = (0..1000)
            .map(|_| login_count(Frequency::Several, &shift, &mut rng))
            .sum();
        assert!(
            (2800..=3400).contains(&total),
            "{total} logins in 1000 shifts"
        );
    }
}
