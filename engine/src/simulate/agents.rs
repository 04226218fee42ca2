//! Browser user agents in the form that current browsers send: Chromium browsers report a
//! frozen platform (`Windows NT 10.0`, `Intel Mac OS X 10_15_7`, `Android 10; K`) and only
//! their major version, Firefox its major version, Safari its version and, on iOS, the iOS
//! version.
//!
//! NOTE: the versions are drawn from fixed ranges and the browser shares are rough
//! assumptions for a hospital's managed Windows fleet, not measurements, and neither follows
//! the simulated dates.

use std::collections::HashMap;

use rand::Rng;

/// Kind of device a user logs in from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeviceKind {
    Workstation,
    Laptop,
    Phone,
}

impl DeviceKind {
    pub fn is_portable(self) -> bool {
        self != DeviceKind::Workstation
    }
}

#[derive(Debug, Clone, Copy)]
enum Browser {
    WindowsChrome,
    WindowsEdge,
    WindowsFirefox,
    MacChrome,
    MacSafari,
    LinuxFirefox,
    LinuxChrome,
    IphoneSafari,
    AndroidChrome,
}

/// Browser shares per device kind, in percent.
const WORKSTATION: [(Browser, u32); 6] = [
    (Browser::WindowsChrome, 45),
    (Browser::WindowsEdge, 35),
    (Browser::WindowsFirefox, 8),
    (Browser::MacChrome, 5),
    (Browser::MacSafari, 4),
    (Browser::LinuxFirefox, 3),
];
const LAPTOP: [(Browser, u32); 7] = [
    (Browser::WindowsChrome, 33),
    (Browser::WindowsEdge, 20),
    (Browser::MacSafari, 20),
    (Browser::MacChrome, 15),
    (Browser::WindowsFirefox, 5),
    (Browser::LinuxFirefox, 4),
    (Browser::LinuxChrome, 3),
];
const PHONE: [(Browser, u32); 2] = [(Browser::IphoneSafari, 55), (Browser::AndroidChrome, 45)];

/// Major versions of Chrome, Edge and Firefox.
const MAJOR_VERSIONS: std::ops::RangeInclusive<u32> = 128..=140;
/// Safari and iOS versions as (major, minor).
const APPLE_VERSIONS: [(u32, u32); 8] = [
    (17, 4),
    (17, 5),
    (17, 6),
    (18, 0),
    (18, 1),
    (18, 3),
    (18, 5),
    (18, 6),
];

/// Draws a user agent for a device of `kind`.
pub(super) fn draw(rng: &mut impl Rng, kind: DeviceKind) -> String {
    let table: &[(Browser, u32)] = match kind {
        DeviceKind::Workstation => &WORKSTATION,
        DeviceKind::Laptop => &LAPTOP,
        DeviceKind::Phone => &PHONE,
    };
    let total: u32 = table.iter().map(|(_, share)| share).sum();
    let mut ticket = rng.random_range(0..total);
    let mut browser = table[0].0;
    for &(candidate, share) in table {
        if ticket < share {
            browser = candidate;
            break;
        }
        ticket -= share;
    }
    format_agent(rng, browser)
}

/// Draws a device kind and a user agent for it with equal chances for each kind, as a
/// naive attacker's setup unrelated to the victim.
pub(super) fn draw_any(rng: &mut impl Rng) -> (DeviceKind, String) {
    let kind = [
        DeviceKind::Workstation,
        DeviceKind::Laptop,
        DeviceKind::Phone,
    ][rng.random_range(0..3)];
    (kind, draw(rng, kind))
}

fn format_agent(rng: &mut impl Rng, browser: Browser) -> String {
    let major = rng.random_range(MAJOR_VERSIONS);
    let (apple_major, apple_minor) = APPLE_VERSIONS[rng.random_range(0..APPLE_VERSIONS.len())];
    const WEBKIT: &str = "AppleWebKit/537.36 (KHTML, like Gecko)";
    match browser {
        Browser::WindowsChrome => format!(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) {WEBKIT} Chrome/{major}.0.0.0 Safari/537.36"
        ),
        Browser::WindowsEdge => format!(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) {WEBKIT} Chrome/{major}.0.0.0 \
             Safari/537.36 Edg/{major}.0.0.0"
        ),
        Browser::WindowsFirefox => format!(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{major}.0) Gecko/20100101 \
             Firefox/{major}.0"
        ),
        Browser::MacChrome => format!(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {WEBKIT} Chrome/{major}.0.0.0 \
             Safari/537.36"
        ),
        Browser::MacSafari => format!(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/{apple_major}.{apple_minor} Safari/605.1.15"
        ),
        Browser::LinuxFirefox => format!(
            "Mozilla/5.0 (X11; Linux x86_64; rv:{major}.0) Gecko/20100101 Firefox/{major}.0"
        ),
        Browser::LinuxChrome => {
            format!("Mozilla/5.0 (X11; Linux x86_64) {WEBKIT} Chrome/{major}.0.0.0 Safari/537.36")
        }
        Browser::IphoneSafari => format!(
            "Mozilla/5.0 (iPhone; CPU iPhone OS {apple_major}_{apple_minor} like Mac OS X) \
             AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{apple_major}.{apple_minor} \
             Mobile/15E148 Safari/604.1"
        ),
        Browser::AndroidChrome => format!(
            "Mozilla/5.0 (Linux; Android 10; K) {WEBKIT} Chrome/{major}.0.0.0 Mobile \
             Safari/537.36"
        ),
    }
}

/// User agent strings stored once and referred to by index.
#[derive(Debug, Default)]
pub(super) struct AgentTable {
    agents: Vec<String>,
    index: HashMap<String, u32>,
}

impl AgentTable {
    pub fn intern(&mut self, agent: String) -> u32 {
        if let Some(&index) = self.index.get(&agent) {
            return index;
        }
        let index = self.agents.len() as u32;
        self.agents.push(agent.clone());
        self.index.insert(agent, index);
        index
    }

    pub fn get(&self, index: u32) -> &str {
        &self.agents[index as usize]
    }
}
