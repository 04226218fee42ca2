//! Per-feature likelihood ratios of Freeman et al., "Who Are You? A Statistical Approach to
//! Measuring User Authenticity" (NDSS 2016), for the network and the user-agent attributes of
//! a login.
//!
//! The paper scores a login with attribute values `x_k` for user `u` by the product over the
//! attributes of `p(x_k | attack) / p(x_k | u, legitimate)`. It approximates the attacker's
//! distribution by the global frequency `p(x_k)`. It estimates the sparse per-user
//! `p(x_k | u)` by smoothing along a hierarchy of each attribute: IP address, network and
//! country, or user agent, browser and operating system. This module returns the logarithm of
//! that ratio for two attributes, so the engine can expose them as two features:
//!
//! - network: country, then ASN, then IP address;
//! - agent: device type, then OS with major version, then browser with major version, then
//!   the full user-agent string.
//!
//! The paper's factor `p(u | attack) / p(u)`, which lowers the risk of users who log in often,
//! is left out: the engine's `learning` feature carries the size of the user's history.
//!
//! # Estimator
//!
//! The smoothing is this crate's own back-off in the paper's spirit, not a copy of the
//! paper's interpolation. Each level's value is keyed together with the values of the coarser levels, so the levels
//! nest (an ASN key is `country|ASN`). For levels `0` (coarsest) to `m - 1` (finest) the
//! probability of the login's value chains the conditional probability of each level given
//! the one above, `p(k_0) * p(k_1 | k_0) * ... * p(k_{m-1} | k_{m-2})`, and each conditional
//! is an additive (Dirichlet) smoothing of counts towards a base distribution:
//!
//! - global: `p_G(k | parent) = (c_G(k) + a_G / (d(parent) + 1)) / (c_G(parent) + a_G)`,
//!   where `d(parent)` is the number of distinct values seen under the parent, so one share
//!   of `a_G` is kept for a value never seen. At the top level the parent count is the
//!   number of logins and `d` the number of distinct top-level values.
//! - user: `p_U(k | parent) = (c_U(k) + a_U * p_G(k | parent)) / (c_U(parent) + a_U)`, so
//!   a value the user never used receives the share `a_U / (c_U(parent) + a_U)` of the
//!   user's probability, spread in proportion to the global distribution. This is the
//!   back-off: an unseen IP address borrows its probability from the user's ASN, and an
//!   unseen ASN from the user's country.
//!
//! The score is `ln p_G(x) - ln p_U(x)` summed over the levels. Every term is finite for
//! positive smoothing constants, a user without history scores exactly 0, and at the first
//! level where the user has never seen the value the term is `ln((c_U(parent) + a_U) / a_U)`
//! and the finer levels add 0. So the more history the user has under the parent, the higher
//! the risk of leaving it.
//! Because a never-used value's share follows the global distribution, its ratio does not
//! depend on how rare the value is globally. Global rarity lowers the score of values the
//! user does use, which are then strong evidence of the user.
//!
//! A missing ASN, country or user agent is a value of its own (`?`, or `none` for the agent),
//! so a user who always sends a user agent and now sends none scores as a change. IP addresses
//! and user-agent strings are stored as 64-bit prefixes of their SHA-256 digests, which keeps
//! the tables small. This is not anonymisation: an IPv4 digest is easy to reverse by search.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::agent::{AgentInfo, parse_user_agent};
use crate::linear::sigmoid;

/// Level names of the network branch, coarsest first.
pub const NETWORK_LEVELS: [&str; 3] = ["country", "asn", "ip"];
/// Level names of the agent branch, coarsest first.
pub const AGENT_LEVELS: [&str; 4] = ["device_type", "os", "browser", "user_agent"];

/// Default number of values kept per level in [`GlobalTables`].
pub const DEFAULT_GLOBAL_VALUES_PER_LEVEL: usize = 10_000;
/// Default number of values kept per level in a [`UserHistory`].
pub const DEFAULT_USER_VALUES_PER_LEVEL: usize = 64;
/// Default additive smoothing constant, for both the global and the per-user estimates.
pub const DEFAULT_SMOOTHING: f64 = 1.0;

/// Smallest smoothing constant used in a computation, so a hand-edited table with 0 cannot
/// produce a zero probability.
const MIN_SMOOTHING: f64 = 1e-9;
/// Key component for a missing ASN or country.
const MISSING: &str = "?";
/// Key component for a login without a user agent.
const NO_USER_AGENT: &str = "none";

/// The attributes of one login that the Freeman model reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginAttributes {
    pub ip: IpAddr,
    pub asn: Option<u32>,
    /// ISO 3166-1 alpha-2 country code of the IP address.
    pub country: Option<String>,
    pub user_agent: Option<String>,
}

/// The nested keys of one login, coarsest level first. Building them parses the user agent,
/// so callers that score and then learn the same login build them once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LevelKeys {
    pub network: [String; 3],
    pub agent: [String; 4],
}

impl LevelKeys {
    /// Builds the keys, parsing the user agent with [`parse_user_agent`].
    pub fn new(attributes: &LoginAttributes) -> Self {
        let agent = match attributes.user_agent.as_deref() {
            Some(user_agent) => parse_user_agent(user_agent),
            None => AgentInfo::unknown(),
        };
        Self::with_agent(attributes, &agent)
    }

    /// Builds the keys from an already parsed user agent.
    pub fn with_agent(attributes: &LoginAttributes, agent: &AgentInfo) -> Self {
        let country = attributes
            .country
            .as_deref()
            .map(|country| component(&country.trim().to_ascii_uppercase()))
            .filter(|country| !country.is_empty())
            .unwrap_or_else(|| MISSING.to_owned());
        let asn_key = match attributes.asn {
            Some(asn) => format!("{country}|AS{asn}"),
            None => format!("{country}|{MISSING}"),
        };
        let ip = attributes.ip.to_canonical().to_string();
        let ip_key = format!("{asn_key}|{}", short_digest(&ip));

        let device = agent.device_type.as_str().to_owned();
        let os_key = format!("{device}|{}", optional_component(agent.os.as_deref()));
        let browser_key = format!("{os_key}|{}", optional_component(agent.browser.as_deref()));
        let agent_key = match attributes.user_agent.as_deref() {
            Some(user_agent) => format!("{browser_key}|{}", short_digest(user_agent)),
            None => format!("{browser_key}|{NO_USER_AGENT}"),
        };
        LevelKeys {
            network: [country, asn_key, ip_key],
            agent: [device, os_key, browser_key, agent_key],
        }
    }
}

fn component(value: &str) -> String {
    value.replace('|', "/")
}

fn optional_component(value: Option<&str>) -> String {
    value.map(component).unwrap_or_else(|| MISSING.to_owned())
}

/// Returns the first 16 hex digits of the SHA-256 digest of `value`.
fn short_digest(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    hex::encode(&digest[..8])
}

/// Invalid [`GlobalTables`] settings.
#[derive(Debug, Error, PartialEq)]
pub enum FreemanError {
    #[error("smoothing constant `{name}` must be a finite number > 0, got `{value}`")]
    InvalidSmoothing { name: &'static str, value: f64 },
    #[error("`max_values_per_level` must be at least 1, got `{0}`")]
    InvalidCapacity(usize),
}

/// One value's global count and the number of distinct values seen under it at the next
/// finer level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalEntry {
    pub count: u64,
    pub children: u64,
}

/// The global counts of one level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelTable {
    pub values: BTreeMap<String, GlobalEntry>,
    /// Logins whose value was dropped from `values` to keep the table bounded.
    pub other_count: u64,
    /// Distinct values dropped from `values`.
    pub other_values: u64,
}

impl LevelTable {
    fn count(&self, key: &str) -> u64 {
        self.values.get(key).map_or(0, |entry| entry.count)
    }

    fn children(&self, key: &str) -> u64 {
        self.values.get(key).map_or(0, |entry| entry.children)
    }

    /// Number of distinct values ever seen at this level, kept or dropped.
    fn distinct(&self) -> u64 {
        self.values.len() as u64 + self.other_values
    }

    /// Keeps the `max_values` most frequent values and moves the rest into the other bucket.
    fn compact(&mut self, max_values: usize) {
        if self.values.len() <= max_values {
            return;
        }
        let mut entries: Vec<(String, GlobalEntry)> =
            std::mem::take(&mut self.values).into_iter().collect();
        // Most frequent first, ties by key so the result does not depend on insertion order.
        entries.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        for (_, entry) in entries.drain(max_values..) {
            self.other_count += entry.count;
            self.other_values += 1;
        }
        self.values = entries.into_iter().collect();
    }
}

/// Global value counts per level, learned from history and shipped in the model artifact.
///
/// Each level keeps at most `max_values_per_level` values once [`GlobalTables::compact`] has
/// run, and at most twice that while observing. A dropped value adds its count to the level's
/// other bucket, and when it is seen again it starts from zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalTables {
    pub max_values_per_level: usize,
    /// Smoothing constant `a_G` of the global estimate.
    pub global_smoothing: f64,
    /// Smoothing constant `a_U` of the per-user estimate.
    pub user_smoothing: f64,
    /// Number of logins observed.
    pub total: u64,
    pub network: [LevelTable; 3],
    pub agent: [LevelTable; 4],
}

impl Default for GlobalTables {
    fn default() -> Self {
        GlobalTables {
            max_values_per_level: DEFAULT_GLOBAL_VALUES_PER_LEVEL,
            global_smoothing: DEFAULT_SMOOTHING,
            user_smoothing: DEFAULT_SMOOTHING,
            total: 0,
            network: Default::default(),
            agent: Default::default(),
        }
    }
}

impl GlobalTables {
    /// Creates empty tables with the given bound and smoothing constants.
    pub fn new(
        max_values_per_level: usize,
        global_smoothing: f64,
        user_smoothing: f64,
    ) -> Result<Self, FreemanError> {
        let tables = GlobalTables {
            max_values_per_level,
            global_smoothing,
            user_smoothing,
            ..GlobalTables::default()
        };
        tables.validate()?;
        Ok(tables)
    }

    /// Checks the bound and the smoothing constants, for tables read from a file.
    pub fn validate(&self) -> Result<(), FreemanError> {
        if self.max_values_per_level == 0 {
            return Err(FreemanError::InvalidCapacity(self.max_values_per_level));
        }
        for (name, value) in [
            ("global_smoothing", self.global_smoothing),
            ("user_smoothing", self.user_smoothing),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(FreemanError::InvalidSmoothing { name, value });
            }
        }
        Ok(())
    }

    /// Counts one login.
    pub fn observe(&mut self, attributes: &LoginAttributes) {
        self.observe_keys(&LevelKeys::new(attributes));
    }

    /// Counts one login from keys built with [`LevelKeys`].
    pub fn observe_keys(&mut self, keys: &LevelKeys) {
        self.total += 1;
        let limit = self.max_values_per_level.max(1).saturating_mul(2);
        observe_branch(&mut self.network, &keys.network, limit);
        observe_branch(&mut self.agent, &keys.agent, limit);
    }

    /// Trims every level to `max_values_per_level` values.
    pub fn compact(&mut self) {
        let max_values = self.max_values_per_level.max(1);
        for level in self.network.iter_mut().chain(self.agent.iter_mut()) {
            level.compact(max_values);
        }
    }
}

fn observe_branch(levels: &mut [LevelTable], keys: &[String], limit: usize) {
    for index in 0..levels.len().min(keys.len()) {
        let (coarser, rest) = levels.split_at_mut(index);
        let level = &mut rest[0];
        let key = &keys[index];
        let is_new = match level.values.get_mut(key) {
            Some(entry) => {
                entry.count += 1;
                false
            }
            None => {
                level.values.insert(
                    key.clone(),
                    GlobalEntry {
                        count: 1,
                        children: 0,
                    },
                );
                true
            }
        };
        if is_new
            && let Some(parent_level) = coarser.last_mut()
            && let Some(parent) = parent_level.values.get_mut(&keys[index - 1])
        {
            parent.children += 1;
        }
        if level.values.len() > limit {
            level.compact(limit / 2);
        }
    }
}

/// One value in a user's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    pub count: u64,
    /// Time of the latest login with this value, in milliseconds since the Unix epoch.
    pub last_seen_ms: i64,
}

/// One user's value counts per level, bounded with least-recently-seen eviction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserHistory {
    pub max_values_per_level: usize,
    /// Number of logins observed, including those whose values were evicted.
    pub logins: u64,
    pub network: [BTreeMap<String, UserEntry>; 3],
    pub agent: [BTreeMap<String, UserEntry>; 4],
}

impl Default for UserHistory {
    fn default() -> Self {
        UserHistory::new(DEFAULT_USER_VALUES_PER_LEVEL)
    }
}

impl UserHistory {
    /// Creates an empty history that keeps at most `max_values_per_level` values per level
    /// (at least 1).
    pub fn new(max_values_per_level: usize) -> Self {
        UserHistory {
            max_values_per_level: max_values_per_level.max(1),
            logins: 0,
            network: Default::default(),
            agent: Default::default(),
        }
    }

    /// Learns one login made at `at`.
    pub fn observe(&mut self, attributes: &LoginAttributes, at: DateTime<Utc>) {
        self.observe_keys(&LevelKeys::new(attributes), at);
    }

    /// Learns one login from keys built with [`LevelKeys`].
    pub fn observe_keys(&mut self, keys: &LevelKeys, at: DateTime<Utc>) {
        self.logins += 1;
        let at_ms = at.timestamp_millis();
        let capacity = self.max_values_per_level.max(1);
        for (level, key) in self.network.iter_mut().zip(&keys.network) {
            remember(level, key, at_ms, capacity);
        }
        for (level, key) in self.agent.iter_mut().zip(&keys.agent) {
            remember(level, key, at_ms, capacity);
        }
    }

    /// Removes one login learned with [`UserHistory::observe_keys`], for a login later
    /// reported as not the user's. A value whose count reaches 0 is removed. The last-seen
    /// times stay as they are, because the previous ones are not kept.
    pub fn forget_keys(&mut self, keys: &LevelKeys) {
        self.logins = self.logins.saturating_sub(1);
        for (level, key) in self.network.iter_mut().zip(&keys.network) {
            forget(level, key);
        }
        for (level, key) in self.agent.iter_mut().zip(&keys.agent) {
            forget(level, key);
        }
    }
}

fn forget(level: &mut BTreeMap<String, UserEntry>, key: &str) {
    if let Some(entry) = level.get_mut(key) {
        entry.count = entry.count.saturating_sub(1);
        if entry.count == 0 {
            level.remove(key);
        }
    }
}

fn remember(level: &mut BTreeMap<String, UserEntry>, key: &str, at_ms: i64, capacity: usize) {
    if let Some(entry) = level.get_mut(key) {
        entry.count += 1;
        entry.last_seen_ms = entry.last_seen_ms.max(at_ms);
        return;
    }
    while level.len() >= capacity {
        // Least recently seen first, then the rarest, then by key for a deterministic choice.
        let oldest = level
            .iter()
            .min_by(|a, b| {
                (a.1.last_seen_ms, a.1.count, a.0).cmp(&(b.1.last_seen_ms, b.1.count, b.0))
            })
            .map(|(key, _)| key.clone());
        match oldest {
            Some(oldest) => level.remove(&oldest),
            None => break,
        };
    }
    level.insert(
        key.to_owned(),
        UserEntry {
            count: 1,
            last_seen_ms: at_ms,
        },
    );
}

/// Log-likelihood ratios `ln p(x) - ln p(x | user)` of one login. Higher means less like the
/// user; 0 means no evidence either way.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FreemanScores {
    pub network: f64,
    pub agent: f64,
    /// Logins in the user's history. With none, both scores are 0.
    pub user_logins: u64,
}

impl FreemanScores {
    /// Returns whether the user had any history, so that the scores carry evidence.
    pub fn has_history(&self) -> bool {
        self.user_logins > 0
    }

    /// Returns `sigmoid(network)`, which equals `p(x) / (p(x) + p(x | user))`: the attack
    /// probability at even prior odds, in `[0, 1]` as the feature vector expects. It is 0.5
    /// for a user without history.
    pub fn network_probability(&self) -> f64 {
        sigmoid(self.network)
    }

    /// Returns `sigmoid(agent)`, as [`FreemanScores::network_probability`] does for the
    /// network branch.
    pub fn agent_probability(&self) -> f64 {
        sigmoid(self.agent)
    }
}

/// Scores one login against the global tables and the user's history. Both scores are
/// always finite.
pub fn freeman_scores(
    global: &GlobalTables,
    user: &UserHistory,
    attributes: &LoginAttributes,
) -> FreemanScores {
    freeman_scores_for_keys(global, user, &LevelKeys::new(attributes))
}

/// Scores one login from keys built with [`LevelKeys`].
pub fn freeman_scores_for_keys(
    global: &GlobalTables,
    user: &UserHistory,
    keys: &LevelKeys,
) -> FreemanScores {
    let smoothing = Smoothing {
        global: sanitise_smoothing(global.global_smoothing),
        user: sanitise_smoothing(global.user_smoothing),
    };
    FreemanScores {
        network: branch_log_ratio(
            &global.network,
            global.total,
            &user.network,
            user.logins,
            &keys.network,
            smoothing,
        ),
        agent: branch_log_ratio(
            &global.agent,
            global.total,
            &user.agent,
            user.logins,
            &keys.agent,
            smoothing,
        ),
        user_logins: user.logins,
    }
}

#[derive(Clone, Copy)]
struct Smoothing {
    global: f64,
    user: f64,
}

fn sanitise_smoothing(value: f64) -> f64 {
    if value.is_finite() {
        value.max(MIN_SMOOTHING)
    } else {
        DEFAULT_SMOOTHING
    }
}

/// Sums `ln p_G(k | parent) - ln p_U(k | parent)` over the levels of one branch, as described
/// in the module documentation.
fn branch_log_ratio(
    global_levels: &[LevelTable],
    global_total: u64,
    user_levels: &[BTreeMap<String, UserEntry>],
    user_total: u64,
    keys: &[String],
    smoothing: Smoothing,
) -> f64 {
    if user_total == 0 {
        return 0.0;
    }
    let mut global_parent_count = global_total as f64;
    let mut global_parent_children = global_levels.first().map_or(0, LevelTable::distinct) as f64;
    let mut user_parent_count = user_total as f64;
    let mut log_ratio = 0.0;
    for ((global_level, user_level), key) in global_levels.iter().zip(user_levels).zip(keys) {
        let global_count = global_level.count(key) as f64;
        // A bounded table can drop a parent and keep its child, so the parent count is at
        // least the child's.
        let global_parent = global_parent_count.max(global_count);
        let global_probability = (global_count + smoothing.global / (global_parent_children + 1.0))
            / (global_parent + smoothing.global);

        let user_count = user_level.get(key).map_or(0, |entry| entry.count) as f64;
        let user_parent = user_parent_count.max(user_count);
        let user_probability =
            (user_count + smoothing.user * global_probability) / (user_parent + smoothing.user);

        log_ratio += global_probability.ln() - user_probability.ln();

        global_parent_count = global_count;
        global_parent_children = global_level.children(key) as f64;
        user_parent_count = user_count;
    }
    if log_ratio.is_finite() {
        log_ratio
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: f64 = 1e-12;

    fn login(ip: &str, asn: u32, country: &str) -> LoginAttributes {
        LoginAttributes {
            ip: ip.parse().unwrap(),
            asn: Some(asn),
            country: Some(country.to_owned()),
            user_agent: Some(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 \
                 Firefox/128.0"
                    .to_owned(),
            ),
        }
    }

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap()
    }

    /// Global: 6 logins from NO/AS1/A, 4 from US/AS2/B and 1 from RU/AS3/C, all with one
    /// browser. User: 5 logins from NO/AS1/A.
    fn population() -> (GlobalTables, UserHistory) {
        let mut global = GlobalTables::default();
        let mut user = UserHistory::default();
        for second in 0..6 {
            global.observe(&login("192.0.2.1", 1, "NO"));
            if second < 5 {
                user.observe(&login("192.0.2.1", 1, "NO"), at(second));
            }
        }
        for _ in 0..4 {
            global.observe(&login("198.51.100.1", 2, "US"));
        }
        global.observe(&login("203.0.113.1", 3, "RU"));
        (global, user)
    }

    /// Term of one level the user has seen in every login, with `a_G = a_U = 1`.
    fn seen_term(global: f64, user: f64, user_parent: f64) -> f64 {
        global.ln() - ((user + global) / (user_parent + 1.0)).ln()
    }

    #[test]
    fn always_used_value_scores_low() {
        let (global, user) = population();
        let scores = freeman_scores(&global, &user, &login("192.0.2.1", 1, "NO"));
        // Country NO: (6 + 1/4) / (11 + 1) globally (3 distinct countries). ASN and IP: each
        // the only value under its parent, (6 + 1/2) / (6 + 1).
        let country = 6.25 / 12.0;
        let below = 6.5 / 7.0;
        let expected = seen_term(country, 5.0, 5.0) + 2.0 * seen_term(below, 5.0, 5.0);
        assert!((scores.network - expected).abs() < TOLERANCE, "{scores:?}");
        assert!(scores.network < 0.0);
        assert!(scores.has_history());
        assert!(scores.network_probability() < 0.5);
        let ratio = scores.network.exp();
        assert!((scores.network_probability() - ratio / (1.0 + ratio)).abs() < TOLERANCE);
    }

    #[test]
    fn rare_unused_value_scores_high() {
        let (global, user) = population();
        let scores = freeman_scores(&global, &user, &login("203.0.113.1", 3, "RU"));
        // The country was never used by the user: the term is ln((5 + 1) / 1), and the finer
        // levels have no user history under them, so their terms are 0.
        assert!(
            (scores.network - 6.0_f64.ln()).abs() < TOLERANCE,
            "{scores:?}"
        );
        let usual = freeman_scores(&global, &user, &login("192.0.2.1", 1, "NO"));
        assert!(scores.network > usual.network + 2.0);
    }

    #[test]
    fn new_ip_backs_off_to_asn_then_country() {
        let (global, user) = population();
        let country = 6.25 / 12.0;
        let below = 6.5 / 7.0;

        // A new address in the user's ASN: known country and ASN, then ln 6 for the address.
        let new_ip = freeman_scores(&global, &user, &login("192.0.2.99", 1, "NO"));
        let expected_ip = seen_term(country, 5.0, 5.0) + seen_term(below, 5.0, 5.0) + 6.0_f64.ln();
        assert!(
            (new_ip.network - expected_ip).abs() < TOLERANCE,
            "{new_ip:?}"
        );

        // A new ASN in the user's country.
        let new_asn = freeman_scores(&global, &user, &login("192.0.2.99", 9, "NO"));
        let expected_asn = seen_term(country, 5.0, 5.0) + 6.0_f64.ln();
        assert!(
            (new_asn.network - expected_asn).abs() < TOLERANCE,
            "{new_asn:?}"
        );

        // A new country.
        let new_country = freeman_scores(&global, &user, &login("192.0.2.99", 9, "SE"));
        assert!((new_country.network - 6.0_f64.ln()).abs() < TOLERANCE);

        assert!(new_ip.network < new_asn.network);
        assert!(new_asn.network < new_country.network);
    }

    #[test]
    fn agent_branch_backs_off_to_browser() {
        let (global, user) = population();
        let same = freeman_scores(&global, &user, &login("192.0.2.1", 1, "NO"));
        let mut newer = login("192.0.2.1", 1, "NO");
        newer.user_agent = Some(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.1"
                .to_owned(),
        );
        let newer_build = freeman_scores(&global, &user, &newer);
        let mut other = login("192.0.2.1", 1, "NO");
        other.user_agent = Some(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
                .to_owned(),
        );
        let other_device = freeman_scores(&global, &user, &other);
        let mut missing = login("192.0.2.1", 1, "NO");
        missing.user_agent = None;
        let no_agent = freeman_scores(&global, &user, &missing);

        assert!(same.agent < 0.0, "{same:?}");
        // Same browser version and OS, new string: only the finest level is new.
        assert!(newer_build.agent > same.agent);
        assert!(other_device.agent > newer_build.agent);
        assert!(no_agent.agent > newer_build.agent);
    }

    #[test]
    fn empty_tables_and_history_are_finite() {
        let global = GlobalTables::default();
        let empty_user = UserHistory::default();
        let attempt = login("192.0.2.1", 1, "NO");
        let scores = freeman_scores(&global, &empty_user, &attempt);
        assert_eq!(scores.network, 0.0);
        assert_eq!(scores.agent, 0.0);
        assert!(!scores.has_history());
        assert_eq!(scores.agent_probability(), 0.5);

        let mut user = UserHistory::default();
        user.observe(&attempt, at(0));
        let known = freeman_scores(&global, &user, &attempt);
        assert!(known.network.is_finite());
        assert!(known.agent.is_finite());
        let unknown = freeman_scores(&global, &user, &login("2001:db8::1", 7, "SE"));
        assert!(unknown.network.is_finite());
        assert!(unknown.network > known.network);
    }

    #[test]
    fn degenerate_smoothing_stays_finite() {
        let (mut global, user) = population();
        global.global_smoothing = 0.0;
        global.user_smoothing = f64::NAN;
        let scores = freeman_scores(&global, &user, &login("203.0.113.77", 4, "XX"));
        assert!(scores.network.is_finite());
        assert!(scores.agent.is_finite());
        assert!(global.validate().is_err());
    }

    #[test]
    fn new_rejects_invalid_settings() {
        assert_eq!(
            GlobalTables::new(0, 1.0, 1.0),
            Err(FreemanError::InvalidCapacity(0))
        );
        assert!(matches!(
            GlobalTables::new(10, -1.0, 1.0),
            Err(FreemanError::InvalidSmoothing {
                name: "global_smoothing",
                ..
            })
        ));
        assert!(GlobalTables::new(10, 0.5, 2.0).is_ok());
    }

    #[test]
    fn global_tables_stay_bounded() {
        let mut global = GlobalTables::new(4, 1.0, 1.0).unwrap();
        for index in 0..100u32 {
            let country = if index % 2 == 0 { "NO" } else { "SE" };
            let ip = format!("10.0.{}.{}", index / 256, index % 256);
            global.observe(&login(&ip, index, country));
            assert!(global.network[2].values.len() <= 8);
        }
        global.compact();
        assert_eq!(global.total, 100);
        assert_eq!(global.network[0].values.len(), 2);
        assert_eq!(global.network[2].values.len(), 4);
        let ip_level = &global.network[2];
        let kept: u64 = ip_level.values.values().map(|entry| entry.count).sum();
        assert_eq!(kept + ip_level.other_count, 100);
        assert_eq!(ip_level.distinct(), 100);
        // Each of the 100 ASNs has exactly one address under it, but only the kept ASNs
        // remember it.
        assert!(
            global.network[1]
                .values
                .values()
                .all(|entry| entry.children == 1)
        );
    }

    #[test]
    fn user_history_evicts_least_recent() {
        let mut user = UserHistory::new(2);
        user.observe(&login("192.0.2.1", 1, "NO"), at(0));
        user.observe(&login("192.0.2.1", 1, "NO"), at(1));
        user.observe(&login("192.0.2.2", 2, "SE"), at(2));
        user.observe(&login("192.0.2.3", 3, "DK"), at(3));
        assert_eq!(user.logins, 4);
        let countries: Vec<&str> = user.network[0].keys().map(String::as_str).collect();
        assert_eq!(countries, ["DK", "SE"]);
        assert_eq!(user.agent[0].len(), 1);
        assert_eq!(user.agent[0]["desktop"].count, 4);
        assert_eq!(
            user.agent[0]["desktop"].last_seen_ms,
            at(3).timestamp_millis()
        );
    }

    #[test]
    fn forget_undoes_one_login() {
        let mut user = UserHistory::default();
        let home = LevelKeys::new(&login("192.0.2.1", 1, "NO"));
        let away = LevelKeys::new(&login("198.51.100.1", 2, "US"));
        user.observe_keys(&home, at(0));
        user.observe_keys(&home, at(1));
        user.observe_keys(&away, at(2));
        user.forget_keys(&away);
        assert_eq!(user.logins, 2);
        assert!(!user.network[0].contains_key("US"));
        assert_eq!(user.network[0]["NO"].count, 2);
        user.forget_keys(&home);
        assert_eq!(user.network[0]["NO"].count, 1);
        assert_eq!(user.agent[0]["desktop"].count, 1);
    }

    #[test]
    fn keys_nest_and_hash_fine_levels() {
        let keys = LevelKeys::new(&login("::ffff:192.0.2.1", 29695, " no "));
        assert_eq!(keys.network[0], "NO");
        assert_eq!(keys.network[1], "NO|AS29695");
        // The IPv4-mapped form hashes like the plain IPv4 address.
        let plain = LevelKeys::new(&login("192.0.2.1", 29695, "NO"));
        assert_eq!(keys.network[2], plain.network[2]);
        assert!(keys.network[2].starts_with("NO|AS29695|"));
        assert_eq!(keys.network[2].len(), "NO|AS29695|".len() + 16);
        assert_eq!(keys.agent[0], "desktop");
        assert_eq!(keys.agent[1], "desktop|Windows 10");
        assert_eq!(keys.agent[2], "desktop|Windows 10|Firefox 128");

        let bare = LevelKeys::new(&LoginAttributes {
            ip: "192.0.2.1".parse().unwrap(),
            asn: None,
            country: None,
            user_agent: None,
        });
        assert_eq!(bare.network[1], "?|?");
        assert_eq!(bare.agent[3], "unknown|?|?|none");
    }

    #[test]
    fn tables_round_trip_through_json() {
        let (global, user) = population();
        let global_json = serde_json::to_string(&global).unwrap();
        let user_json = serde_json::to_string(&user).unwrap();
        assert_eq!(
            serde_json::from_str::<GlobalTables>(&global_json).unwrap(),
            global
        );
        assert_eq!(
            serde_json::from_str::<UserHistory>(&user_json).unwrap(),
            user
        );
    }
}
