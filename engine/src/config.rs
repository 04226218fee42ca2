//! The service configuration file (`riskgate.toml`).
//!
//! Relative paths in the file resolve against the directory that contains it, so the shipped
//! configuration works from any working directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::geo::GeoConfig;
use crate::iplists::IpListsConfig;
use crate::store::sqlite::Durability;
use riskgate_models::keystroke::TemplateConfig;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration in `{path}`: {message}")]
    Invalid { path: String, message: String },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds to.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory of the SQLite file and decision records.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Rules file or folder.
    #[serde(default = "default_rules")]
    pub rules: PathBuf,
    /// Trained model artifact (JSON). When set, its calibrated risk replaces the rules
    /// file's weights and bias, and the rules still decide with that risk.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// HTTP worker threads; 0 uses one per CPU core.
    #[serde(default)]
    pub workers: usize,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub geo: GeoConfig,
    #[serde(default)]
    pub iplists: IpListsConfig,
    #[serde(default)]
    pub signals: SignalConfig,
    /// Keystroke templates: detector, samples needed before scoring, rolling window.
    #[serde(default)]
    pub keystroke: TemplateConfig,
    /// API keys; with none configured the API accepts unauthenticated requests.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Directory the relative paths resolve against; set when the file is loaded.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    pub durability: Durability,
    /// Profiles kept in the in-memory cache.
    #[serde(default = "default_profile_cache")]
    pub profile_cache_capacity: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::default(),
            profile_cache_capacity: default_profile_cache(),
        }
    }
}

/// Tuning of the signals. Windows are in seconds; a saturation is the count at which a
/// counter signal reaches its full value of 1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalConfig {
    /// Verified logins before a user leaves the learning state.
    pub learning_logins: u64,
    /// Days after a login reported as not the user's during which every login steps up as
    /// if the user were learning.
    pub compromise_step_up_days: u32,
    pub user_failures_window_seconds: u64,
    pub user_failures_saturation: u64,
    pub ip_failures_window_seconds: u64,
    pub ip_failures_saturation: u64,
    pub ip_users_window_seconds: u64,
    /// Other users seen from one IP before `ip_many_users` starts to rise.
    pub ip_users_threshold: u64,
    pub ip_users_saturation: u64,
    /// Speed above which travel between two verified logins is impossible, in km/h.
    pub max_travel_speed_kmh: f64,
    /// IP lists whose members count as anonymisers for `anonymous_ip`.
    pub anonymous_lists: Vec<String>,
    /// IP lists whose members count as hosting networks for `hosting_network`.
    pub hosting_lists: Vec<String>,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            learning_logins: 5,
            compromise_step_up_days: 30,
            user_failures_window_seconds: 900,
            user_failures_saturation: 10,
            ip_failures_window_seconds: 3600,
            ip_failures_saturation: 20,
            ip_users_window_seconds: 3600,
            ip_users_threshold: 2,
            ip_users_saturation: 10,
            max_travel_speed_kmh: 1000.0,
            anonymous_lists: ["tor_exit", "tor_node", "vpn", "vpn_asn"]
                .map(String::from)
                .to_vec(),
            hosting_lists: ["hosting", "datacenter"].map(String::from).to_vec(),
        }
    }
}

/// One API key. Only the SHA-256 of the key is stored in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub name: String,
    /// Hex SHA-256 of the key, e.g. from `printf %s "$KEY" | sha256sum`.
    pub sha256: String,
    /// Any of `score`, `events`, `admin`.
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Score,
    Events,
    Admin,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("var/data")
}

fn default_rules() -> PathBuf {
    PathBuf::from("rules/default.toml")
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}

fn default_profile_cache() -> u64 {
    100_000
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base_dir = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Config::parse(&text, &path.display().to_string(), base_dir)
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, base_dir: PathBuf) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|error| ConfigError::Invalid {
            path: origin.to_owned(),
            message: error.to_string(),
        })?;
        config.base_dir = base_dir;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: origin.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.max_body_bytes < 1024 {
            return Err(format!(
                "`max_body_bytes` = {} is below the minimum of 1024",
                self.max_body_bytes
            ));
        }
        let signals = &self.signals;
        if !(signals.max_travel_speed_kmh.is_finite() && signals.max_travel_speed_kmh > 0.0) {
            return Err("`signals.max_travel_speed_kmh` must be a positive number".into());
        }
        for (name, value) in [
            ("user_failures_saturation", signals.user_failures_saturation),
            ("ip_failures_saturation", signals.ip_failures_saturation),
            ("ip_users_saturation", signals.ip_users_saturation),
            (
                "user_failures_window_seconds",
                signals.user_failures_window_seconds,
            ),
            (
                "ip_failures_window_seconds",
                signals.ip_failures_window_seconds,
            ),
            ("ip_users_window_seconds", signals.ip_users_window_seconds),
        ] {
            if value == 0 {
                return Err(format!("`signals.{name}` must be at least 1"));
            }
        }
        self.keystroke
            .validate()
            .map_err(|error| format!("`keystroke`: {error}"))?;
        for key in &self.api_keys {
            let valid = key.sha256.len() == 64 && key.sha256.chars().all(|c| c.is_ascii_hexdigit());
            if !valid {
                return Err(format!(
                    "API key `{}`: `sha256` must be 64 hex digits (the SHA-256 of the key)",
                    key.name
                ));
            }
        }
        Ok(())
    }

    /// Resolves a path from the file against [`Config::base_dir`].
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.data_dir)
    }

    pub fn rules_path(&self) -> PathBuf {
        self.resolve(&self.rules)
    }

    /// Returns the resolved model artifact path, when one is configured.
    pub fn model_path(&self) -> Option<PathBuf> {
        self.model.as_deref().map(|path| self.resolve(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_an_empty_file() {
        let config = Config::parse("", "test", PathBuf::from("/etc/riskgate")).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir(), PathBuf::from("/etc/riskgate/var/data"));
        assert_eq!(config.signals.learning_logins, 5);
    }

    #[test]
    fn model_path_resolves_against_base_dir() {
        let config = Config::parse("", "test", PathBuf::from("/etc/riskgate")).unwrap();
        assert_eq!(config.model_path(), None);

        let text = "model = \"models/login.json\"";
        let config = Config::parse(text, "test", PathBuf::from("/etc/riskgate")).unwrap();
        assert_eq!(
            config.model_path(),
            Some(PathBuf::from("/etc/riskgate/models/login.json"))
        );

        let text = "model = \"/var/lib/riskgate/model.json\"";
        let config = Config::parse(text, "test", PathBuf::from("/etc/riskgate")).unwrap();
        assert_eq!(
            config.model_path(),
            Some(PathBuf::from("/var/lib/riskgate/model.json"))
        );
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let error = Config::parse("listne = \"x\"", "test", PathBuf::new()).unwrap_err();
        assert!(error.to_string().contains("listne"), "{error}");
    }

    #[test]
    fn bad_api_key_digest_is_rejected() {
        let text = "[[api_keys]]\nname = \"crm\"\nsha256 = \"abc\"\nscopes = [\"score\"]\n";
        let error = Config::parse(text, "test", PathBuf::new()).unwrap_err();
        assert!(error.to_string().contains("64 hex digits"), "{error}");
    }
}
