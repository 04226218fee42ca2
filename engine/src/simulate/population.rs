//! The simulated staff: tenants with a site, users with a role, a home, devices and a
//! typing subject, and the table of user ids that login rows refer to.

use std::net::IpAddr;

use rand::Rng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use unicode_normalization::UnicodeNormalization;

use super::agents::{self, AgentTable, DeviceKind};
use super::catalog::{Catalog, random_host};

/// Staff roles and their share of users in percent.
const ROLE_SHARES: [(Role, u32); 5] = [
    (Role::Physician, 22),
    (Role::Nurse, 38),
    (Role::FrontDesk, 15),
    (Role::Billing, 12),
    (Role::Admin, 13),
];

/// Share of nurses on the night crew.
const NIGHT_SHIFT_SHARE: f64 = 0.35;
/// Share of billing staff who work from home on Mondays and Fridays.
const REMOTE_BILLING_SHARE: f64 = 0.3;
/// Share of users whose password manager fills the password, so no keystrokes are sent.
const PASSWORD_MANAGER_SHARE: f64 = 0.15;
/// Chance, per 30 days, that a user replaces one device (a new phone or laptop).
const DEVICE_REPLACEMENT_PER_30_DAYS: f64 = 0.08;

/// Staff per public NAT address of a site, and the most addresses a site has.
const STAFF_PER_NAT_ADDRESS: usize = 250;
const MAX_NAT_ADDRESSES: usize = 8;

/// Words that name the kind of a tenant organisation.
const TENANT_KINDS: [&str; 5] = ["clinic", "hospital", "health", "care", "medical"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Physician,
    Nurse,
    FrontDesk,
    Billing,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::FrontDesk => "front_desk",
            Role::Billing => "billing",
            Role::Admin => "admin",
        }
    }

    /// Shares of the login frequencies in percent: several a day, daily, weekly, monthly.
    fn frequency_shares(self) -> [u32; 4] {
        match self {
            Role::Physician => [55, 30, 10, 5],
            Role::Nurse => [60, 30, 7, 3],
            Role::FrontDesk => [70, 25, 5, 0],
            Role::Billing => [35, 45, 15, 5],
            Role::Admin => [30, 35, 20, 15],
        }
    }

    /// Checks whether the role works mostly at shared ward or desk workstations.
    pub fn uses_shared_workstations(self) -> bool {
        matches!(self, Role::Nurse | Role::FrontDesk)
    }
}

/// How often a user logs in on a working day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frequency {
    /// Several logins per shift, as sessions time out between patients.
    Several,
    /// About one login per working day.
    Daily,
    /// About one login per week.
    Weekly,
    /// About one login per month.
    Monthly,
}

/// A user id as it appears in the output, with the role and tenant sent alongside it.
#[derive(Debug)]
pub(super) struct Account {
    pub user_id: String,
    pub role: Option<Role>,
    pub tenant: usize,
}

/// A device with a stable fingerprint id and user agent, in use from `from_ms` until
/// `until_ms` (milliseconds since the Unix epoch).
#[derive(Debug)]
pub(super) struct Device {
    pub id: String,
    pub agent: u32,
    pub kind: DeviceKind,
    pub from_ms: i64,
    pub until_ms: i64,
}

impl Device {
    pub fn active_at(&self, time_ms: i64) -> bool {
        self.from_ms <= time_ms && time_ms < self.until_ms
    }
}

/// A customer organisation with one site.
#[derive(Debug)]
pub(super) struct Tenant {
    pub name: String,
    pub place: usize,
    /// Network of the site's NAT addresses.
    pub work_network: usize,
    /// Public addresses that the site's staff share.
    pub nat: Vec<IpAddr>,
    /// Ward and desk workstations that nurses and front-desk staff share.
    pub shared_devices: Vec<usize>,
    pub users: Vec<usize>,
}

#[derive(Debug)]
pub(super) struct User {
    pub tenant: usize,
    pub role: Role,
    pub frequency: Frequency,
    pub night_shift: bool,
    pub remote_billing: bool,
    /// The user's own devices, indexes into [`Population::devices`].
    pub devices: Vec<usize>,
    pub home_network: usize,
    pub home_ip: IpAddr,
    pub mobile_network: usize,
    /// Keystroke subject whose samples the user types.
    pub subject: usize,
    pub password_manager: bool,
}

/// Everything about the simulated people and their devices.
#[derive(Debug, Default)]
pub(super) struct Population {
    pub tenants: Vec<Tenant>,
    pub users: Vec<User>,
    /// User ids; the first `users.len()` belong to the users in order, later ones are
    /// made up by credential-stuffing attacks.
    pub accounts: Vec<Account>,
    pub devices: Vec<Device>,
    pub agents: AgentTable,
}

impl Population {
    /// Creates `user_count` users over tenants sited in cities of `catalog`. Returns
    /// `None` when the catalog has no city.
    pub fn build(
        rng: &mut impl Rng,
        catalog: &Catalog,
        user_count: usize,
        subject_count: usize,
        period: (i64, i64),
    ) -> Option<Population> {
        let mut population = Population::default();
        let tenant_count = tenant_count(user_count);
        for index in 0..tenant_count {
            let place = catalog.pick_city(rng)?;
            population.add_tenant(rng, catalog, index, place, period);
        }
        // Tenant k gets a weight of 1 / (k + 1): a few large hospitals and many small
        // clinics.
        let tenant_weights =
            WeightedIndex::new((0..tenant_count).map(|k| 1.0 / (k as f64 + 1.0))).ok()?;
        let role_weights = WeightedIndex::new(ROLE_SHARES.iter().map(|(_, share)| share)).ok()?;
        for index in 0..user_count {
            let tenant = tenant_weights.sample(rng);
            let role = ROLE_SHARES[role_weights.sample(rng)].0;
            population.add_user(rng, catalog, index, tenant, role, subject_count, period);
        }
        for tenant in &mut population.tenants {
            let network = catalog.networks[tenant.work_network].network;
            let count = (tenant.users.len() / STAFF_PER_NAT_ADDRESS + 1).min(MAX_NAT_ADDRESSES);
            tenant.nat = (0..count).map(|_| random_host(rng, network)).collect();
        }
        Some(population)
    }

    fn add_tenant(
        &mut self,
        rng: &mut impl Rng,
        catalog: &Catalog,
        index: usize,
        place: usize,
        period: (i64, i64),
    ) {
        let city = catalog.places[place].city.as_deref().unwrap_or("site");
        let kind = TENANT_KINDS[rng.random_range(0..TENANT_KINDS.len())];
        let name = format!("{}-{kind}-{}", slug(city), index + 1);
        let work_network = catalog.pick_network(rng, place, None);
        let shared_devices = (0..rng.random_range(2..=6))
            .map(|_| {
                let agent = self
                    .agents
                    .intern(agents::draw(rng, DeviceKind::Workstation));
                self.devices.push(Device {
                    id: format!("ws-{:08x}", rng.random::<u32>()),
                    agent,
                    kind: DeviceKind::Workstation,
                    from_ms: period.0,
                    until_ms: i64::MAX,
                });
                self.devices.len() - 1
            })
            .collect();
        self.tenants.push(Tenant {
            name,
            place,
            work_network,
            nat: Vec::new(),
            shared_devices,
            users: Vec::new(),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn add_user(
        &mut self,
        rng: &mut impl Rng,
        catalog: &Catalog,
        index: usize,
        tenant: usize,
        role: Role,
        subject_count: usize,
        period: (i64, i64),
    ) {
        let frequency = draw_frequency(rng, role);
        let devices = self.add_devices(rng, role, period);
        let site = &self.tenants[tenant];
        let home_network = catalog.pick_network(rng, site.place, Some(site.work_network));
        let home_ip = random_host(rng, catalog.networks[home_network].network);
        let mobile_network = catalog.pick_network(rng, site.place, Some(home_network));
        self.accounts.push(Account {
            user_id: format!("user{:05}@{}.example", index + 1, site.name),
            role: Some(role),
            tenant,
        });
        self.tenants[tenant].users.push(index);
        self.users.push(User {
            tenant,
            role,
            frequency,
            night_shift: role == Role::Nurse && rng.random_bool(NIGHT_SHIFT_SHARE),
            remote_billing: role == Role::Billing && rng.random_bool(REMOTE_BILLING_SHARE),
            devices,
            home_network,
            home_ip,
            mobile_network,
            subject: index % subject_count.max(1),
            password_manager: rng.random_bool(PASSWORD_MANAGER_SHARE),
        });
    }

    /// Gives a user one to three devices of their own, and sometimes replaces one of
    /// them during the period.
    fn add_devices(&mut self, rng: &mut impl Rng, role: Role, period: (i64, i64)) -> Vec<usize> {
        let (workstation, laptop, phone) = if role.uses_shared_workstations() {
            (0.1, 0.15, 0.7)
        } else {
            (0.9, 0.5, 0.6)
        };
        let mut kinds = Vec::new();
        for (kind, chance) in [
            (DeviceKind::Workstation, workstation),
            (DeviceKind::Laptop, laptop),
            (DeviceKind::Phone, phone),
        ] {
            if rng.random_bool(chance) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            kinds.push(DeviceKind::Phone);
        }
        let mut devices: Vec<usize> = kinds
            .into_iter()
            .map(|kind| self.add_device(rng, kind, period.0, i64::MAX))
            .collect();
        let days = (period.1 - period.0) as f64 / 86_400_000.0;
        let chance = (DEVICE_REPLACEMENT_PER_30_DAYS * days / 30.0).min(0.9);
        if rng.random_bool(chance) {
            let old = devices[rng.random_range(0..devices.len())];
            let when = rng.random_range(period.0..period.1);
            self.devices[old].until_ms = when;
            let kind = self.devices[old].kind;
            devices.push(self.add_device(rng, kind, when, i64::MAX));
        }
        devices
    }

    pub fn add_device(
        &mut self,
        rng: &mut impl Rng,
        kind: DeviceKind,
        from_ms: i64,
        until_ms: i64,
    ) -> usize {
        let agent = self.agents.intern(agents::draw(rng, kind));
        self.add_device_with_agent(rng, kind, agent, from_ms, until_ms)
    }

    pub fn add_device_with_agent(
        &mut self,
        rng: &mut impl Rng,
        kind: DeviceKind,
        agent: u32,
        from_ms: i64,
        until_ms: i64,
    ) -> usize {
        self.devices.push(Device {
            id: format!("dev-{:012x}", rng.random::<u64>() >> 16),
            agent,
            kind,
            from_ms,
            until_ms,
        });
        self.devices.len() - 1
    }
}

/// Returns sqrt(users) / 4 tenants, rounded and at least 1: 1 for 16 users, 35 for
/// 20,000.
fn tenant_count(users: usize) -> usize {
    ((users as f64).sqrt() / 4.0)
        .round()
        .clamp(1.0, users.max(1) as f64) as usize
}

fn draw_frequency(rng: &mut impl Rng, role: Role) -> Frequency {
    let shares = role.frequency_shares();
    let total: u32 = shares.iter().sum();
    let ticket = rng.random_range(0..total);
    let frequencies = [
        Frequency::Several,
        Frequency::Daily,
        Frequency::Weekly,
        Frequency::Monthly,
    ];
    let mut upper = 0;
    for (frequency, share) in frequencies.into_iter().zip(shares) {
        upper += share;
        if ticket < upper {
            return frequency;
        }
    }
    Frequency::Monthly
}

/// Lowercase ASCII letters and digits of `name`, with accents removed and every other
/// run of characters turned into one `-`: `Linköping` becomes `linkoping`.
fn slug(name: &str) -> String {
    let mut slug = String::new();
    for character in name.nfd() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if character.is_ascii() && !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        "site".to_owned()
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_removes_accents() {
        assert_eq!(slug("Linköping"), "linkoping");
        assert_eq!(slug("Mumbai (Dadar West)"), "mumbai-dadar-west");
        assert_eq!(slug("東京"), "site");
    }

    #[test]
    fn tenant_count_grows_with_users() {
        assert_eq!(tenant_count(1), 1);
        assert_eq!(tenant_count(16), 1);
        assert_eq!(tenant_count(400), 5);
        assert_eq!(tenant_count(20_000), 35);
    }
}
