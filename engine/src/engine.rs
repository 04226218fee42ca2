//! The scoring pipeline: enrich, load history, evaluate signals, apply the model and the
//! rules, record the decision.
//!
//! [`Engine`] is shared by the HTTP handlers and by in-process callers such as `replay`. Rules
//! and the model sit behind `ArcSwap`, so a reload swaps them atomically while requests that
//! already hold the old set finish with it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use chrono::{Duration, Utc};
use moka::sync::Cache;
use serde::Serialize;
use thiserror::Error;

use riskgate_models::agent::{AgentInfo, parse_user_agent};
use riskgate_models::artifact::ArtifactError;
use riskgate_models::features::{FEATURE_COUNT, FeatureVector, feature_index};
use riskgate_models::freeman::{LevelKeys, LoginAttributes, freeman_scores_for_keys};
use riskgate_models::keystroke::{
    KeystrokeAssessment, KeystrokeEvent, NotEvaluable as KeystrokeNotEvaluable, TemplateConfig,
    TimingVector, extract_features,
};
use riskgate_models::linear::LinearModel;

use crate::config::{Config, SignalConfig};
use crate::error::ApiError;
use crate::geo::{AnonymousStatus, GeoError, GeoIp, GeoRecord};
use crate::iplists::{IpLists, ListError};
use crate::metrics::Metrics;
use crate::model::{ModelPrediction, RiskModel};
use crate::profile::{AttemptFacts, DecisionKind, Profile};
use crate::request::{Attempt, EventRequest, ScoreRequest, decode, parse_event};
use crate::rules::{self, RuleSet, RulesDecision};
use crate::signals::{self, ListRoles, Signal, SignalInput};
use crate::store::sqlite::SqliteStore;
use crate::store::{CounterWindows, Erased, Store, StoreError, StoredDecision};

/// Failures while starting the engine.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("geo-IP: {0}")]
    Geo(#[from] GeoError),
    #[error("IP lists: {0}")]
    Lists(#[from] ListError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("rules file `{path}` is invalid:\n{report}")]
    Rules { path: String, report: String },
    #[error("model: {0}")]
    Model(String),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// One reason in a decision.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub signal: String,
    pub detail: String,
    /// Log-odds this reason added: a signal's term of the model's logit before calibration,
    /// or a rule's adjustment.
    pub contribution: f64,
    pub value: f64,
    pub evaluable: bool,
}

/// The body of a `POST /v1/score` response.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreResponse {
    pub decision_id: String,
    pub decision: DecisionKind,
    pub risk: f64,
    pub level: String,
    pub required_factors: Vec<String>,
    pub reasons: Vec<Reason>,
    pub matched_rules: Vec<String>,
    pub shadow_rules: Vec<String>,
    pub rules_version: String,
    pub model_version: String,
    pub degraded: bool,
    pub learning: bool,
}

/// The body of a `POST /v1/events` response.
#[derive(Debug, Clone, Serialize)]
pub struct EventResponse {
    pub decision_id: String,
    pub outcome: &'static str,
    pub duplicate: bool,
    pub profile_updated: bool,
    pub failure_counted: bool,
}

/// Distinct user-agent strings whose parse the engine keeps.
const AGENT_CACHE_CAPACITY: u64 = 10_000;

/// The facts about an attempt that scoring computes before it reads stored history.
#[derive(Debug, Clone)]
struct Enrichment {
    geo: Arc<GeoRecord>,
    asn: Option<u32>,
    ip_lists: Vec<String>,
    trusted_network: bool,
    keystroke_sample: Option<Result<TimingVector, KeystrokeNotEvaluable>>,
    hour_local: Option<u32>,
    freeman_keys: LevelKeys,
}

/// The rules and the model in force, swapped together on reload.
pub struct Active {
    pub rules: Arc<RuleSet>,
    pub model: RiskModel,
}

/// The origin of the model in force, which decides what a reload does with it.
enum ModelSource {
    /// The weights and bias of the rules file, rebuilt on every rules reload.
    RulesWeights,
    /// A trained artifact file, read again on every model reload.
    Artifact(PathBuf),
    /// A model the caller passed in, kept across reloads.
    Given,
}

/// The versions in force after [`Engine::reload`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    pub rules_version: String,
    pub model_version: String,
}

/// A reload in which the rules, the model or both were rejected. A part that loaded is in
/// force, and a rejected part keeps its previous version.
#[derive(Debug)]
pub struct ReloadError {
    pub rules: Option<Box<StartError>>,
    pub model: Option<Box<StartError>>,
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(error) = &self.rules {
            parts.push(format!("rules reload rejected: {error}"));
        }
        if let Some(error) = &self.model {
            parts.push(format!("model reload rejected: {error}"));
        }
        formatter.write_str(&parts.join("\n"))
    }
}

impl std::error::Error for ReloadError {}

pub struct Engine {
    geo: GeoIp,
    lists: IpLists,
    list_names: Vec<String>,
    list_roles: ListRoles,
    store: Arc<dyn Store>,
    profiles: Cache<String, Arc<Profile>>,
    /// Parsed user agents by user-agent string; parsing runs regular expressions.
    agents: Cache<String, Arc<AgentInfo>>,
    /// Counter incremented whenever an event changes a profile. A profile read from the store
    /// is cached only if no change happened during the read, so the cache never keeps a
    /// profile older than the store's.
    profile_epoch: std::sync::atomic::AtomicU64,
    active: ArcSwap<Active>,
    signal_config: SignalConfig,
    keystroke: TemplateConfig,
    windows: CounterWindows,
    rules_path: PathBuf,
    model_source: ModelSource,
    /// Held while a reload reads and swaps, so that of two reloads racing
    /// (file watchers, SIGHUP, `POST /admin/reload`) the later read wins, and a rules
    /// reload and a model reload never swap out each other's part.
    reload_lock: std::sync::Mutex<()>,
    rules_reload_error: ArcSwap<Option<String>>,
    model_reload_error: ArcSwap<Option<String>>,
    pub metrics: Metrics,
}

/// Builds the weights model that the rules file defines, as the engine scores with it.
pub fn model_from_rules(rules: &RuleSet) -> Result<RiskModel, StartError> {
    let version = format!("weights@{}", rules.version());
    LinearModel::from_named_weights(version, rules.bias(), rules.weights().iter().copied())
        .map(RiskModel::Weights)
        .map_err(|error| StartError::Model(error.to_string()))
}

/// Returns a message for each `ip.in_list` name of `rules` that is not in `list_names`, with
/// the closest configured name when one is near.
pub fn unknown_list_names(rules: &RuleSet, list_names: &[String]) -> Vec<String> {
    rules
        .ip_lists_used()
        .iter()
        .filter(|name| !list_names.contains(name))
        .map(|name| {
            let closest = list_names
                .iter()
                .min_by_key(|known| strsim::levenshtein(known, name))
                .filter(|known| strsim::levenshtein(known, name) <= 2);
            match closest {
                Some(known) => format!("`{name}` (did you mean `{known}`?)"),
                None => format!("`{name}`"),
            }
        })
        .collect()
}

/// Loads the rules and checks that every `ip.in_list` name is a configured IP list, because
/// a misspelt list name would silently switch its rule off.
fn load_rules(path: &Path, list_names: &[String]) -> Result<RuleSet, StartError> {
    let rules = RuleSet::load(path).map_err(|diagnostics| StartError::Rules {
        path: path.display().to_string(),
        report: diagnostics.to_string(),
    })?;
    let unknown = unknown_list_names(&rules, list_names);
    if !unknown.is_empty() {
        return Err(StartError::Rules {
            path: path.display().to_string(),
            report: format!(
                "ip.in_list names IP lists that are not configured: {}; configured lists: {}",
                unknown.join(", "),
                list_names.join(", ")
            ),
        });
    }
    Ok(rules)
}

impl Engine {
    /// Opens every part named in `config`; `data_dir` overrides the configured data directory.
    pub fn open(config: &Config) -> Result<Engine, StartError> {
        let geo = GeoIp::open(&config.geo, &config.base_dir)?;
        let lists = IpLists::open(&config.iplists, &config.base_dir)?;
        let store = Arc::new(SqliteStore::open(
            &config.data_dir(),
            config.store.durability,
            config.keystroke,
        )?);
        Engine::with_store(config, geo, lists, store)
    }

    /// Builds an engine over an already opened store, with the model that `config` names.
    pub fn with_store(
        config: &Config,
        geo: GeoIp,
        lists: IpLists,
        store: Arc<dyn Store>,
    ) -> Result<Engine, StartError> {
        Engine::with_store_and_model(config, geo, lists, store, None)
    }

    /// Builds an engine over an already opened store. A given `model` is in force instead of
    /// the one `config` names, and reloads keep it. With `None`, the engine loads the
    /// artifact of `config.model`, or uses the rules file's weights when that is unset.
    pub fn with_store_and_model(
        config: &Config,
        geo: GeoIp,
        lists: IpLists,
        store: Arc<dyn Store>,
        model: Option<RiskModel>,
    ) -> Result<Engine, StartError> {
        let rules_path = config.rules_path();
        let list_names = lists.names();
        let rules = load_rules(&rules_path, &list_names)?;
        let (model, model_source) = match (model, config.model_path()) {
            (Some(model), _) => (model, ModelSource::Given),
            (None, Some(path)) => (RiskModel::load(&path)?, ModelSource::Artifact(path)),
            (None, None) => (model_from_rules(&rules)?, ModelSource::RulesWeights),
        };
        let signal_config = config.signals.clone();
        let windows = CounterWindows {
            user_failures: Duration::seconds(signal_config.user_failures_window_seconds as i64),
            ip_failures: Duration::seconds(signal_config.ip_failures_window_seconds as i64),
            ip_users: Duration::seconds(signal_config.ip_users_window_seconds as i64),
        };
        let list_roles = ListRoles {
            anonymous: signal_config.anonymous_lists.clone(),
            hosting: signal_config.hosting_lists.clone(),
        };
        Ok(Engine {
            geo,
            lists,
            list_names,
            list_roles,
            store,
            profiles: Cache::new(config.store.profile_cache_capacity),
            agents: Cache::new(AGENT_CACHE_CAPACITY),
            profile_epoch: std::sync::atomic::AtomicU64::new(0),
            active: ArcSwap::from_pointee(Active {
                rules: Arc::new(rules),
                model,
            }),
            signal_config,
            keystroke: config.keystroke,
            windows,
            rules_path,
            model_source,
            reload_lock: std::sync::Mutex::new(()),
            rules_reload_error: ArcSwap::from_pointee(None),
            model_reload_error: ArcSwap::from_pointee(None),
            metrics: Metrics::new()?,
        })
    }

    pub fn rules_version(&self) -> String {
        self.active.load().rules.version().to_owned()
    }

    /// Returns the version of the model in force.
    pub fn model_version(&self) -> String {
        self.active.load().model.version().to_owned()
    }

    /// Returns the model in force.
    pub fn model(&self) -> RiskModel {
        self.active.load().model.clone()
    }

    /// Returns the rules file or folder that reloads read.
    pub fn rules_path(&self) -> &Path {
        &self.rules_path
    }

    /// Returns the model artifact file that model reloads read, if the model is one.
    pub fn model_path(&self) -> Option<&Path> {
        match &self.model_source {
            ModelSource::Artifact(path) => Some(path),
            ModelSource::RulesWeights | ModelSource::Given => None,
        }
    }

    /// Takes the reload lock. A panic while holding it leaves nothing half-done, because
    /// each swap is one atomic store.
    fn lock_reloads(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reload_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reloads the rules file; on error the active rules stay in force. A trained model stays
    /// in force too, and the rules file's weights are rebuilt when they are the model.
    pub fn reload_rules(&self) -> Result<String, StartError> {
        let _reloading = self.lock_reloads();
        self.reload_rules_locked()
    }

    /// Reloads the model artifact file; on error the active model stays in force. Without
    /// an artifact file there is nothing to read, and this returns the version in force.
    pub fn reload_model(&self) -> Result<String, StartError> {
        let _reloading = self.lock_reloads();
        self.reload_model_locked()
    }

    /// Reloads the rules and the model artifact, each as [`Engine::reload_rules`] and
    /// [`Engine::reload_model`] do, so an invalid part keeps its previous version while the
    /// other part is swapped in.
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _reloading = self.lock_reloads();
        let rules = self.reload_rules_locked();
        let model = self.reload_model_locked();
        match (rules, model) {
            (Ok(rules_version), Ok(model_version)) => Ok(Reloaded {
                rules_version,
                model_version,
            }),
            (rules, model) => Err(ReloadError {
                rules: rules.err().map(Box::new),
                model: model.err().map(Box::new),
            }),
        }
    }

    fn reload_rules_locked(&self) -> Result<String, StartError> {
        let result = load_rules(&self.rules_path, &self.list_names).and_then(|rules| {
            let model = match self.model_source {
                ModelSource::RulesWeights => model_from_rules(&rules)?,
                ModelSource::Artifact(_) | ModelSource::Given => self.active.load().model.clone(),
            };
            Ok(Active {
                rules: Arc::new(rules),
                model,
            })
        });
        match result {
            Ok(active) => {
                let version = active.rules.version().to_owned();
                self.active.store(Arc::new(active));
                self.rules_reload_error.store(Arc::new(None));
                self.metrics
                    .reloads
                    .with_label_values(&["rules", "ok"])
                    .inc();
                tracing::info!(rules_version = %version, "rules reloaded");
                Ok(version)
            }
            Err(error) => {
                self.metrics
                    .reloads
                    .with_label_values(&["rules", "error"])
                    .inc();
                self.rules_reload_error
                    .store(Arc::new(Some(error.to_string())));
                tracing::error!(%error, "rules reload rejected; the previous rules stay in force");
                Err(error)
            }
        }
    }

    fn reload_model_locked(&self) -> Result<String, StartError> {
        let ModelSource::Artifact(path) = &self.model_source else {
            return Ok(self.model_version());
        };
        match RiskModel::load(path) {
            Ok(model) => {
                let version = model.version().to_owned();
                let rules = self.active.load().rules.clone();
                self.active.store(Arc::new(Active { rules, model }));
                self.model_reload_error.store(Arc::new(None));
                self.metrics
                    .reloads
                    .with_label_values(&["model", "ok"])
                    .inc();
                tracing::info!(path = %path.display(), model_version = %version, "model reloaded");
                Ok(version)
            }
            Err(error) => {
                let error = StartError::from(error);
                self.metrics
                    .reloads
                    .with_label_values(&["model", "error"])
                    .inc();
                self.model_reload_error
                    .store(Arc::new(Some(error.to_string())));
                tracing::error!(
                    path = %path.display(),
                    %error,
                    "model reload rejected; the previous model stays in force"
                );
                Err(error)
            }
        }
    }

    /// Returns the error of the last rejected rules reload, cleared by the next successful
    /// one.
    pub fn rules_reload_error(&self) -> Option<String> {
        self.rules_reload_error.load().as_ref().clone()
    }

    /// Returns the error of the last rejected model reload, cleared by the next successful
    /// one.
    pub fn model_reload_error(&self) -> Option<String> {
        self.model_reload_error.load().as_ref().clone()
    }

    fn profile(&self, user_id: &str) -> Result<Arc<Profile>, StoreError> {
        if !self.store.wants_profile_cache() {
            return Ok(self
                .store
                .load_profile(user_id)?
                .unwrap_or_else(|| Arc::new(Profile::new(user_id))));
        }
        if let Some(profile) = self.profiles.get(user_id) {
            self.metrics.cache_lookup("profile", true);
            return Ok(profile);
        }
        self.metrics.cache_lookup("profile", false);
        let epoch = self
            .profile_epoch
            .load(std::sync::atomic::Ordering::Acquire);
        let profile = self
            .store
            .load_profile(user_id)?
            .unwrap_or_else(|| Arc::new(Profile::new(user_id)));
        if self
            .profile_epoch
            .load(std::sync::atomic::Ordering::Acquire)
            == epoch
        {
            self.profiles.insert(user_id.to_owned(), profile.clone());
        }
        Ok(profile)
    }

    /// Scores a JSON request body.
    pub fn score_bytes(&self, body: &[u8]) -> Result<ScoreResponse, ApiError> {
        let request: ScoreRequest = decode(body)?;
        let attempt = request.into_attempt(Utc::now())?;
        self.score(&attempt)
    }

    /// Scores a request given as a JSON value.
    pub fn score_value(&self, body: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|error| ApiError::malformed(error.to_string(), None))?;
        let response = self.score_bytes(&bytes)?;
        serde_json::to_value(response).map_err(|error| ApiError::internal(error.to_string()))
    }

    /// Scores a validated attempt and records the decision.
    pub fn score(&self, attempt: &Attempt) -> Result<ScoreResponse, ApiError> {
        self.score_with_features(attempt)
            .map(|(response, _features)| response)
    }

    /// Scores a validated attempt, records the decision, and also returns the feature vector
    /// the model saw, for offline training and parity checks.
    pub fn score_with_features(
        &self,
        attempt: &Attempt,
    ) -> Result<(ScoreResponse, FeatureVector), ApiError> {
        let started = Instant::now();
        let active = self.active.load();
        let enrichment = self.enrich_with(&active, attempt);
        self.score_enriched_with(&active, attempt, enrichment, started)
    }

    /// Computes everything about an attempt that does not depend on stored history: geo-IP,
    /// IP lists, keystroke features, local hour and Freeman keys.
    fn enrich_with(&self, active: &Active, attempt: &Attempt) -> Enrichment {
        let geo = self.geo.lookup(attempt.ip);
        let asn = geo.asn.as_ref().map(|asn| asn.number);
        let ip_lists = self.lists.lists_containing(attempt.ip, asn);
        let trusted_network = active.rules.is_trusted_network(attempt.ip);
        let keystroke_sample = attempt.keystrokes.as_ref().map(|events| {
            let events: Vec<KeystrokeEvent> = events
                .iter()
                .map(|event| KeystrokeEvent {
                    down_ms: event.down_ms,
                    up_ms: event.up_ms,
                })
                .collect();
            extract_features(&events)
        });
        let time_zone = geo.city.as_ref().and_then(|city| city.time_zone.as_deref());
        let hour_local = signals::local_hour(attempt.timestamp, time_zone);
        let freeman_keys = self.freeman_keys_for(attempt.ip, attempt.user_agent.as_deref(), &geo);
        Enrichment {
            geo,
            asn,
            ip_lists,
            trusted_network,
            keystroke_sample,
            hour_local,
            freeman_keys,
        }
    }

    /// Returns the Freeman network and user-agent keys of a login from `ip` with
    /// `user_agent`, as scoring computes them for an attempt.
    pub fn freeman_keys(&self, ip: IpAddr, user_agent: Option<&str>) -> LevelKeys {
        let ip = ip.to_canonical();
        self.freeman_keys_for(ip, user_agent, &self.geo.lookup(ip))
    }

    fn freeman_keys_for(&self, ip: IpAddr, user_agent: Option<&str>, geo: &GeoRecord) -> LevelKeys {
        let agent = match user_agent {
            Some(user_agent) => self
                .agents
                .get_with_by_ref(user_agent, || Arc::new(parse_user_agent(user_agent))),
            None => Arc::new(AgentInfo::unknown()),
        };
        LevelKeys::with_agent(
            &LoginAttributes {
                ip,
                asn: geo.asn.as_ref().map(|asn| asn.number),
                country: geo.city.as_ref().and_then(|city| city.country.clone()),
                user_agent: user_agent.map(str::to_owned),
            },
            &agent,
        )
    }

    fn score_enriched_with(
        &self,
        active: &Active,
        attempt: &Attempt,
        enrichment: Enrichment,
        started: Instant,
    ) -> Result<(ScoreResponse, FeatureVector), ApiError> {
        let Enrichment {
            geo,
            asn,
            ip_lists,
            trusted_network,
            keystroke_sample,
            hour_local,
            freeman_keys,
        } = enrichment;
        let profile = self.profile(&attempt.user_id).map_err(|error| {
            tracing::error!(%error, "cannot load a profile");
            ApiError::unavailable("the history store is unavailable; retry or fall back to MFA")
        })?;
        let ip_text = attempt.ip.to_string();
        let counters = self
            .store
            .counters(&attempt.user_id, &ip_text, attempt.timestamp, &self.windows)
            .map_err(|error| {
                tracing::error!(%error, "cannot read counters");
                ApiError::unavailable("the history store is unavailable; retry or fall back to MFA")
            })?;
        let keystroke = keystroke_sample
            .as_ref()
            .map(|sample| self.assess_keystrokes(&profile, sample));
        let freeman = freeman_scores_for_keys(
            active.model.global_tables(),
            &profile.freeman,
            &freeman_keys,
        );

        let input = SignalInput {
            ip: attempt.ip,
            timestamp: attempt.timestamp,
            device_hash: attempt.device_hash.as_deref(),
            geo: &geo,
            ip_lists: &ip_lists,
            configured_lists: &self.list_names,
            list_roles: &self.list_roles,
            profile: &profile,
            counters: &counters,
            config: &self.signal_config,
            trusted_network,
            hour_local,
            keystroke: keystroke.as_ref(),
            freeman: &freeman,
        };
        let signals = signals::evaluate_all(&input);

        let mut features = FeatureVector::default();
        for signal in &signals {
            features.set(signal.name, signal.value, signal.evaluable);
        }
        let prediction = active.model.predict(&features);
        let degraded_by: Vec<&str> = signals
            .iter()
            .filter(|signal| signal.degrades())
            .map(|signal| signal.name)
            .collect();
        let degraded = !degraded_by.is_empty();
        let learning = signals::is_learning(&profile, attempt.timestamp, &self.signal_config);

        let rule_input = rules::RuleInput {
            risk: prediction.risk,
            logit: prediction.calibrated_logit,
            role: attempt.role.clone(),
            app: attempt.app.clone(),
            tenant: attempt.tenant.clone(),
            signals: signals
                .iter()
                .map(|signal| rules::SignalFact {
                    name: signal.name.to_owned(),
                    value: signal.value,
                    evaluable: signal.evaluable,
                })
                .collect(),
            geo: rules::GeoFacts {
                country: geo.city.as_ref().and_then(|city| city.country.clone()),
                city: geo.city.as_ref().and_then(|city| city.city.clone()),
                asn,
                anonymous: matches!(&geo.anonymous, AnonymousStatus::Listed(flags) if flags.anonymous),
            },
            device: rules::DeviceFacts {
                known: attempt
                    .device_hash
                    .as_ref()
                    .is_some_and(|device| profile.devices.contains_key(device)),
                seen_count: attempt
                    .device_hash
                    .as_ref()
                    .and_then(|device| profile.devices.get(device))
                    .map_or(0, |seen| seen.count),
            },
            user: rules::UserFacts {
                logins: profile.verified_logins,
                days_since_last: profile
                    .last_verified
                    .as_ref()
                    .map(|last| (attempt.timestamp - last.at).num_seconds() as f64 / 86_400.0),
                failures_15m: counters.user_failures_15m,
            },
            ip: attempt.ip,
            ip_lists: ip_lists.clone(),
            hour_local,
            degraded,
            learning,
        };
        let outcome = active.rules.decide(&rule_input);

        let decision_id = uuid::Uuid::new_v4().to_string();
        let reasons = reasons(&signals, &prediction.contributions, &outcome);
        let response = ScoreResponse {
            decision_id: decision_id.clone(),
            decision: decision_kind(&outcome),
            risk: outcome.risk,
            level: outcome.level.as_str().to_owned(),
            required_factors: outcome.required_factors.clone(),
            reasons,
            matched_rules: outcome.matched_rules.clone(),
            shadow_rules: outcome
                .shadow_rules
                .iter()
                .map(|hit| hit.id.clone())
                .collect(),
            rules_version: active.rules.version().to_owned(),
            model_version: active.model.version().to_owned(),
            degraded,
            learning,
        };

        let facts = AttemptFacts {
            at: attempt.timestamp,
            ip: ip_text,
            network: crate::request::novelty_network(attempt.ip),
            device_hash: attempt.device_hash.clone(),
            country: geo.city.as_ref().and_then(|city| city.country.clone()),
            city: geo.city.as_ref().and_then(|city| city.city.clone()),
            latitude: geo.city.as_ref().and_then(|city| city.latitude),
            longitude: geo.city.as_ref().and_then(|city| city.longitude),
            accuracy_radius_km: geo.city.as_ref().and_then(|city| city.accuracy_radius_km),
            hour_local,
            keystroke_sample: keystroke_sample
                .and_then(Result::ok)
                .map(TimingVector::into_values),
            freeman_keys: Some(freeman_keys),
        };
        let record = if self.store.keeps_records() {
            decision_record(
                &response,
                attempt,
                &geo,
                &ip_lists,
                &signals,
                &prediction,
                &outcome,
                &degraded_by,
            )
        } else {
            serde_json::Value::Null
        };
        self.store
            .record_decision(&crate::store::NewDecision {
                id: decision_id.clone(),
                user_id: attempt.user_id.clone(),
                decision: response.decision,
                record,
                facts,
            })
            .map_err(|error| {
                tracing::error!(%error, decision_id, "cannot record a decision");
                ApiError::unavailable(
                    "the decision could not be recorded; retry or fall back to MFA",
                )
            })?;

        self.observe(&response, &outcome, &degraded_by, started);
        tracing::debug!(
            decision_id,
            decision = response.decision.as_str(),
            risk = response.risk,
            degraded,
            "scored a login"
        );
        Ok((response, features))
    }

    fn assess_keystrokes(
        &self,
        profile: &Profile,
        sample: &Result<TimingVector, KeystrokeNotEvaluable>,
    ) -> KeystrokeAssessment {
        let not_evaluable = |cause: KeystrokeNotEvaluable| KeystrokeAssessment {
            evaluable: false,
            reason: cause.to_string(),
            score: 0.0,
            log_likelihood_ratio: 0.0,
            not_evaluable: Some(cause),
        };
        match (sample, &profile.keystroke_template) {
            (Err(cause), _) => not_evaluable(cause.clone()),
            (Ok(vector), Some(template)) => template.assess(vector),
            (Ok(_), None) => not_evaluable(KeystrokeNotEvaluable::TemplateNotReady {
                samples: 0,
                required: self.keystroke.min_samples,
            }),
        }
    }

    fn observe(
        &self,
        response: &ScoreResponse,
        outcome: &RulesDecision,
        degraded_by: &[&str],
        started: Instant,
    ) {
        let kind = response.decision.as_str();
        self.metrics.decisions.with_label_values(&[kind]).inc();
        self.metrics
            .score_seconds
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        for id in &outcome.matched_rules {
            self.metrics
                .rule_hits
                .with_label_values(&[id, "enforce"])
                .inc();
        }
        for hit in &outcome.shadow_rules {
            self.metrics
                .rule_hits
                .with_label_values(&[&hit.id, "shadow"])
                .inc();
        }
        for (id, message) in outcome.errored_rules() {
            self.metrics.rule_errors.with_label_values(&[id]).inc();
            tracing::warn!(
                rule = id,
                error = message,
                "rule condition failed to evaluate"
            );
        }
        for signal in degraded_by {
            self.metrics.degraded.with_label_values(&[signal]).inc();
        }
    }

    /// Applies an outcome given as JSON bytes.
    pub fn event_bytes(&self, body: &[u8]) -> Result<EventResponse, ApiError> {
        let event = parse_event(body)?;
        self.event(&event)
    }

    /// Applies an outcome given as a JSON value.
    pub fn event_value(&self, body: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|error| ApiError::malformed(error.to_string(), None))?;
        let response = self.event_bytes(&bytes)?;
        serde_json::to_value(response).map_err(|error| ApiError::internal(error.to_string()))
    }

    /// Applies an outcome to a recorded decision.
    pub fn event(&self, event: &EventRequest) -> Result<EventResponse, ApiError> {
        let received = event.timestamp.unwrap_or_else(Utc::now);
        let result = self
            .store
            .apply_event(&event.decision_id, event.outcome, received)
            .map_err(|error| {
                tracing::error!(%error, decision_id = %event.decision_id, "cannot apply an event");
                ApiError::unavailable("the event could not be recorded; retry")
            })?
            .ok_or_else(|| {
                ApiError::not_found(
                    "decision_not_found",
                    format!("no decision with id `{}`", event.decision_id),
                )
            })?;
        if result.plan.learn || result.plan.unlearn || result.plan.report_compromise {
            self.profile_epoch
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            self.profiles.invalidate(&result.user_id);
        }
        tracing::debug!(
            decision_id = %event.decision_id,
            outcome = event.outcome.as_str(),
            learn = result.plan.learn,
            "applied an event"
        );
        Ok(EventResponse {
            decision_id: event.decision_id.clone(),
            outcome: event.outcome.as_str(),
            duplicate: result.plan.duplicate,
            profile_updated: result.plan.learn
                || result.plan.unlearn
                || result.plan.report_compromise,
            failure_counted: result.plan.record_failure,
        })
    }

    /// Returns a recorded decision.
    pub fn decision(&self, id: &str) -> Result<StoredDecision, ApiError> {
        let Ok(parsed) = uuid::Uuid::parse_str(id) else {
            return Err(ApiError::invalid(
                "id",
                format!(
                    "`{}` is not a decision id (a UUID)",
                    crate::request::truncate(id)
                ),
            ));
        };
        let id = parsed.to_string();
        let id = id.as_str();
        self.store
            .decision(id)
            .map_err(|error| {
                tracing::error!(%error, decision_id = id, "cannot read a decision");
                ApiError::unavailable("the decision store is unavailable")
            })?
            .ok_or_else(|| {
                ApiError::not_found("decision_not_found", format!("no decision with id `{id}`"))
            })
    }

    /// Erases a user's history.
    pub fn erase_user(&self, raw_user_id: &str) -> Result<Erased, ApiError> {
        if raw_user_id.chars().count() > crate::request::MAX_ID_CHARS
            || raw_user_id.chars().any(char::is_control)
        {
            return Err(ApiError::invalid(
                "id",
                format!(
                    "the user id must be at most {} characters without control characters",
                    crate::request::MAX_ID_CHARS
                ),
            ));
        }
        let user_id = crate::request::normalize_user_id(raw_user_id);
        if user_id.is_empty() {
            return Err(ApiError::invalid("id", "the user id is empty"));
        }
        let erased = self.store.erase_user(&user_id).map_err(|error| {
            tracing::error!(%error, "cannot erase a user");
            ApiError::unavailable("the history store is unavailable")
        })?;
        self.profile_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.profiles.invalidate(&user_id);
        tracing::info!(
            profiles = erased.profiles,
            decisions = erased.decisions,
            "erased a user's history"
        );
        Ok(erased)
    }

    /// Checks that the store responds.
    pub fn ready(&self) -> Result<(), String> {
        self.store.ping().map_err(|error| error.to_string())
    }

    /// Renders the Prometheus metrics.
    pub fn render_metrics(&self) -> String {
        let geo = self.geo.cache_stats();
        self.metrics.render(&[("geo", geo.hits, geo.misses)])
    }
}

fn decision_kind(outcome: &RulesDecision) -> DecisionKind {
    match outcome.decision {
        rules::Decision::Allow => DecisionKind::Allow,
        rules::Decision::StepUp => DecisionKind::StepUp,
        rules::Decision::Deny => DecisionKind::Deny,
    }
}

/// Reasons in order of contribution: signals that raised the risk, rule adjustments, and the
/// signals that could not be evaluated. `contributions` is in `FEATURE_NAMES` order.
fn reasons(
    signals: &[Signal],
    contributions: &[f64; FEATURE_COUNT],
    outcome: &RulesDecision,
) -> Vec<Reason> {
    let mut reasons: Vec<Reason> = signals
        .iter()
        .map(|signal| {
            let contribution = feature_index(signal.name).map_or(0.0, |index| contributions[index]);
            (signal, contribution)
        })
        .filter(|(signal, contribution)| {
            !signal.evaluable || *contribution != 0.0 || signal.value > 0.0
        })
        .map(|(signal, contribution)| Reason {
            signal: signal.name.to_owned(),
            detail: if signal.evaluable {
                signal.detail.clone()
            } else {
                format!("not evaluable: {}", signal.detail)
            },
            contribution,
            value: signal.value,
            evaluable: signal.evaluable,
        })
        .collect();
    for (rule, delta) in &outcome.adjustments {
        reasons.push(Reason {
            signal: format!("rule:{rule}"),
            detail: format!("rule `{rule}` adjusted the log-odds"),
            contribution: *delta,
            value: 1.0,
            evaluable: true,
        });
    }
    reasons.sort_by(|a, b| {
        b.evaluable
            .cmp(&a.evaluable)
            .then(b.contribution.abs().total_cmp(&a.contribution.abs()))
    });
    reasons
}

#[allow(clippy::too_many_arguments)]
fn decision_record(
    response: &ScoreResponse,
    attempt: &Attempt,
    geo: &GeoRecord,
    ip_lists: &[String],
    signals: &[Signal],
    prediction: &ModelPrediction,
    outcome: &RulesDecision,
    degraded_by: &[&str],
) -> serde_json::Value {
    serde_json::json!({
        "decision_id": response.decision_id,
        "recorded_at": Utc::now().to_rfc3339(),
        "attempt": {
            "user_id": attempt.user_id,
            "ip": attempt.ip.to_string(),
            "timestamp": attempt.timestamp.to_rfc3339(),
            "role": attempt.role,
            "app": attempt.app,
            "tenant": attempt.tenant,
            "device_id_sha256": attempt.device_hash,
            "device_attributes_sha256": attempt.device_attributes_hash,
            "keystrokes_sent": attempt.keystrokes.as_ref().map(|events| !events.is_empty()),
            "user_agent": attempt.user_agent,
            "rtt_ms": attempt.rtt_ms,
            "inputs_digest": attempt.inputs_digest,
        },
        "geo": geo,
        "ip_lists": ip_lists,
        "signals": signals,
        "model": {
            "version": response.model_version,
            "logit": prediction.logit,
            "risk": prediction.risk,
            "calibrated_logit": prediction.calibrated_logit,
        },
        "rules": {
            "version": response.rules_version,
            "decided_by": outcome.decided_by,
            "trace": outcome.trace,
            "shadow": outcome.shadow_rules,
            "adjustments": outcome.adjustments,
        },
        "degraded_by": degraded_by,
        "response": response,
    })
}
