//! The scoring pipeline: enrich, load history, evaluate signals, apply the model and the
//! rules, record the decision.
//!
//! [`Engine`] is shared by the HTTP handlers and by in-process callers such as `replay`. Rules
//! and the model sit behind `ArcSwap`, so a reload swaps them atomically while requests that
//! already hold the old set finish with it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use chrono::{Duration, Utc};
use moka::sync::Cache;
use serde::Serialize;
use thiserror::Error;

use riskgate_models::features::FeatureVector;
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
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// One reason in a decision.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub signal: String,
    pub detail: String,
    /// Log-odds this reason added to the risk.
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

/// The rules and the model in force, swapped together on reload.
pub struct Active {
    pub rules: RuleSet,
    pub model: LinearModel,
}

pub struct Engine {
    geo: GeoIp,
    lists: IpLists,
    list_names: Vec<String>,
    list_roles: ListRoles,
    store: Arc<dyn Store>,
    profiles: Cache<String, Arc<Profile>>,
    /// Counter incremented whenever an event changes a profile. A profile read from the store
    /// is cached only if no change happened during the read, so the cache never keeps a
    /// profile older than the store's.
    profile_epoch: std::sync::atomic::AtomicU64,
    active: ArcSwap<Active>,
    signal_config: SignalConfig,
    keystroke: TemplateConfig,
    windows: CounterWindows,
    rules_path: std::path::PathBuf,
    /// Held while a reload reads and swaps, so that of two reloads racing
    /// (file watcher, SIGHUP, `POST /admin/reload`) the later read wins.
    reload_lock: std::sync::Mutex<()>,
    last_reload_error: ArcSwap<Option<String>>,
    pub metrics: Metrics,
}

/// Builds the weights model that the rules file defines, as the engine scores with it.
pub fn model_from_rules(rules: &RuleSet) -> Result<LinearModel, StartError> {
    let version = format!("weights@{}", rules.version());
    LinearModel::from_named_weights(version, rules.bias(), rules.weights().iter().copied())
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

    /// Builds an engine over an already opened store.
    pub fn with_store(
        config: &Config,
        geo: GeoIp,
        lists: IpLists,
        store: Arc<dyn Store>,
    ) -> Result<Engine, StartError> {
        let rules_path = config.rules_path();
        let list_names = lists.names();
        let rules = load_rules(&rules_path, &list_names)?;
        let model = model_from_rules(&rules)?;
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
            profile_epoch: std::sync::atomic::AtomicU64::new(0),
            active: ArcSwap::from_pointee(Active { rules, model }),
            signal_config,
            keystroke: config.keystroke,
            windows,
            rules_path,
            reload_lock: std::sync::Mutex::new(()),
            last_reload_error: ArcSwap::from_pointee(None),
            metrics: Metrics::new()?,
        })
    }

    pub fn rules_version(&self) -> String {
        self.active.load().rules.version().to_owned()
    }

    /// Returns the rules file or folder that reloads read.
    pub fn rules_path(&self) -> &Path {
        &self.rules_path
    }

    /// Reloads the rules file; on error the active rules stay in force.
    pub fn reload_rules(&self) -> Result<String, StartError> {
        // A panic while holding the lock leaves nothing half-done: the swap
        // is one atomic store.
        let _reloading = self
            .reload_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = load_rules(&self.rules_path, &self.list_names).and_then(|rules| {
            let model = model_from_rules(&rules)?;
            Ok(Active { rules, model })
        });
        match result {
            Ok(active) => {
                let version = active.rules.version().to_owned();
                self.active.store(Arc::new(active));
                self.last_reload_error.store(Arc::new(None));
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
                self.last_reload_error
                    .store(Arc::new(Some(error.to_string())));
                tracing::error!(%error, "rules reload rejected; the previous rules stay in force");
                Err(error)
            }
        }
    }

    /// Returns the error of the last rejected reload, cleared by the next successful one.
    pub fn last_reload_error(&self) -> Option<String> {
        self.last_reload_error.load().as_ref().clone()
    }

    fn profile(&self, user_id: &str) -> Result<Arc<Profile>, StoreError> {
        if let Some(profile) = self.profiles.get(user_id) {
            self.metrics.cache_lookup("profile", true);
            return Ok(profile);
        }
        self.metrics.cache_lookup("profile", false);
        let epoch = self
            .profile_epoch
            .load(std::sync::atomic::Ordering::Acquire);
        let profile = Arc::new(
            self.store
                .load_profile(user_id)?
                .unwrap_or_else(|| Profile::new(user_id)),
        );
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

        let geo = self.geo.lookup(attempt.ip);
        let asn = geo.asn.as_ref().map(|asn| asn.number);
        let ip_lists = self.lists.lists_containing(attempt.ip, asn);
        let trusted_network = active.rules.is_trusted_network(attempt.ip);

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
        let keystroke = keystroke_sample
            .as_ref()
            .map(|sample| self.assess_keystrokes(&profile, sample));
        let time_zone = geo.city.as_ref().and_then(|city| city.time_zone.as_deref());
        let hour_local = signals::local_hour(attempt.timestamp, time_zone);

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
            logit: prediction.logit,
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
            model_version: active.model.version.clone(),
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
        };
        let record = decision_record(
            &response,
            attempt,
            &geo,
            &ip_lists,
            &signals,
            &prediction.logit,
            &outcome,
            &degraded_by,
        );
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
/// signals that could not be evaluated.
fn reasons(signals: &[Signal], contributions: &[f64], outcome: &RulesDecision) -> Vec<Reason> {
    let mut reasons: Vec<Reason> = signals
        .iter()
        .zip(contributions)
        .filter(|(signal, contribution)| {
            !signal.evaluable || **contribution != 0.0 || signal.value > 0.0
        })
        .map(|(signal, contribution)| Reason {
            signal: signal.name.to_owned(),
            detail: if signal.evaluable {
                signal.detail.clone()
            } else {
                format!("not evaluable: {}", signal.detail)
            },
            contribution: *contribution,
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
    logit: &f64,
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
        "model": { "version": response.model_version, "logit": logit },
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
