//! The rules engine: a TOML rules file (or a folder of them) that the
//! security team tunes, with CEL conditions, turned into allow, step_up or
//! deny and the acceptable MFA factors.
//!
//! Loading goes through separate stages, and each reports all of its
//! errors with `file:line:column`. `raw` reads TOML into values with spans.
//! `settings` and `rule` check their meaning, and `schema` and `condition`
//! resolve CEL conditions against the variables and compile them once.
//! `decide` evaluates a compiled set per request. The format is documented
//! in `rules/README.md`.

pub mod cases;
mod condition;
mod decide;
mod diagnostic;
pub mod explain;
mod raw;
mod rule;
mod schema;
pub mod schema_json;
mod settings;
mod source;
mod toml_string;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod decide_tests;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use cel::{Context, Env};
use sha2::{Digest, Sha256};

use riskgate_models::features::{FEATURE_COUNT, FEATURE_NAMES};

pub use condition::{MAX_CONDITION_BYTES, MAX_CONDITION_DEPTH};
pub use decide::{
    Decision, DeviceFacts, GeoFacts, Level, RuleInput, RuleOutcome, RuleTrace, RulesDecision,
    ShadowHit, SignalFact, SkipReason, UserFacts,
};
pub use diagnostic::{CheckError, Diagnostic, Diagnostics, render_human, render_json};
pub use rule::{ActionKind, MAX_RULES, RuleMode, RuleSummary};
pub use schema::variables_reference;
pub use settings::Thresholds;
pub use source::{MAX_FILE_BYTES, MAX_FILES};

use diagnostic::Reporter;
use rule::Rule;
use settings::{Lists, Settings};
use source::SourceFile;

/// Signals the engine computes, and the only names `[scoring.weights]` and
/// `signals.<name>` accept.
pub const SIGNAL_NAMES: [&str; FEATURE_COUNT] = FEATURE_NAMES;

/// MFA factors a rules file may require.
pub const FACTOR_NAMES: [&str; 7] = [
    "webauthn",
    "platform_biometric",
    "hardware_key",
    "totp",
    "push",
    "sms",
    "email_otp",
];

/// Stack size of the thread that parses and checks rules. The cel 0.15
/// parser needs roughly 150 KiB of stack per nested bracket in a debug
/// build, so even the nesting limit of conditions needs more than the
/// 2 MiB of an ordinary thread; 64 MiB parsed 90 nested brackets.
const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// A loaded, checked and compiled rule set. Share it behind an `Arc`: it
/// is immutable, and `decide` takes `&self`.
pub struct RuleSet {
    version: String,
    settings: Settings,
    /// Enforce rules with `then = "adjust"`, by priority.
    adjust_rules: Vec<Rule>,
    /// Enforce rules that decide, by priority, then severity, then file
    /// order.
    decision_rules: Vec<Rule>,
    /// Shadow rules of every action, in file order.
    shadow_rules: Vec<Rule>,
    /// Top-level variables any condition reads; only these are bound.
    roots: BTreeSet<&'static str>,
    /// Signals any condition reads; only these are bound under `signals`.
    signals: BTreeSet<&'static str>,
    ip_lists: BTreeSet<String>,
    /// Root CEL context with the standard library and `in_list`. Each
    /// decision binds its variables in an inner scope of it, because that
    /// is much cheaper than building a context per request.
    root: Context<'static, 'static>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("name", &self.settings.name)
            .field("version", &self.version)
            .field("adjust_rules", &self.adjust_rules.len())
            .field("decision_rules", &self.decision_rules.len())
            .field("shadow_rules", &self.shadow_rules.len())
            .finish()
    }
}

impl RuleSet {
    /// Loads a rules file, or every `*.toml` file of a folder merged in
    /// file-name order: later files override earlier settings key by key,
    /// and rules accumulate, with ids unique across files.
    pub fn load(path: &Path) -> Result<RuleSet, Diagnostics> {
        let sources = source::read_sources(path).map_err(Diagnostics)?;
        let version = version_of(&sources);
        let default_name = path.file_stem().map_or_else(
            || "rules".to_string(),
            |stem| stem.to_string_lossy().into_owned(),
        );

        let result = std::thread::scope(|scope| {
            let compile = std::thread::Builder::new()
                .name("rules-compile".into())
                .stack_size(COMPILE_STACK_BYTES)
                .spawn_scoped(scope, || build(&sources, version, &default_name));
            match compile {
                Ok(handle) => handle
                    .join()
                    .map_err(|_| "the rules compiler panicked".to_string()),
                Err(error) => Err(format!("cannot start the rules compiler thread: {error}")),
            }
        });
        match result {
            Ok(built) => built,
            Err(detail) => Err(Diagnostics(vec![Diagnostic::without_position(
                path,
                CheckError::CompilerPanicked { detail },
            )])),
        }
    }

    /// Returns `"sha256:"` and the first 16 hex digits of the SHA-256 of
    /// the file bytes, concatenated in load order for a folder.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Returns the `name` of the rules file, or its file stem.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Returns the log-odds weight of every known signal, in
    /// `SIGNAL_NAMES` order; 0 for signals the file gives no weight.
    pub fn weights(&self) -> &[(&'static str, f64)] {
        &self.settings.scoring.weights
    }

    /// Returns the log-odds with no evidence.
    pub fn bias(&self) -> f64 {
        self.settings.scoring.bias
    }

    pub fn thresholds(&self) -> Thresholds {
        self.settings.scoring.thresholds
    }

    /// Returns `[policy] learning`: the decision that replaces an allow for
    /// a user in the learning state, unless an enforce rule or the allow
    /// list allowed the login explicitly.
    pub fn learning_policy(&self) -> Decision {
        self.settings.policy.learning
    }

    /// Checks whether `ip` is in `trusted_networks`, where a missing geo
    /// record does not make a request degraded.
    pub fn is_trusted_network(&self, ip: IpAddr) -> bool {
        Lists::contains(&self.settings.lists.trusted_networks, ip)
    }

    /// Returns the names conditions pass to `ip.in_list(...)`, so that the
    /// engine can warn about lists it does not load: such a rule never
    /// matches.
    pub fn ip_lists_used(&self) -> &BTreeSet<String> {
        &self.ip_lists
    }

    /// Returns every rule in evaluation order: adjust rules, decision
    /// rules, then shadow rules.
    pub fn rules(&self) -> Vec<RuleSummary> {
        self.adjust_rules
            .iter()
            .chain(&self.decision_rules)
            .chain(&self.shadow_rules)
            .map(|rule| RuleSummary {
                id: rule.id.clone(),
                description: rule.description.clone(),
                mode: rule.mode,
                action: rule.action.kind(),
                priority: rule.priority,
            })
            .collect()
    }
}

/// Checks a rules file or folder and returns every error found, or none.
pub fn check_path(path: &Path) -> Vec<Diagnostic> {
    match RuleSet::load(path) {
        Ok(_) => Vec::new(),
        Err(Diagnostics(diagnostics)) => diagnostics,
    }
}

fn version_of(sources: &[SourceFile]) -> String {
    let mut hasher = Sha256::new();
    for source in sources {
        hasher.update(source.text.as_bytes());
    }
    let digest = hex::encode(hasher.finalize());
    format!("sha256:{}", &digest[..16])
}

/// Runs the stages after reading; called on the large-stack thread.
fn build(
    sources: &[SourceFile],
    version: String,
    default_name: &str,
) -> Result<RuleSet, Diagnostics> {
    let mut reporter = Reporter::new(sources);

    // Stage 1: TOML. Syntax errors stop here, since what follows them in
    // a file cannot be read reliably.
    let mut raw = raw::RawRuleSet::default();
    let mut parsed = true;
    for source in sources {
        parsed &= raw::read_into(&mut raw, source, &mut reporter);
    }
    if !parsed {
        return Err(Diagnostics(reporter.into_sorted()));
    }

    // Stage 2: meanings of settings and rules, and conditions compiled.
    let env = Arc::new(Env::stdlib());
    let mut root = Context::with_env(Arc::clone(&env));
    if let Err(error) = root.add_function("in_list", decide::in_list) {
        let path = sources.first().map_or(Path::new(""), |s| s.path.as_path());
        return Err(Diagnostics(vec![Diagnostic::without_position(
            path,
            CheckError::CompilerPanicked {
                detail: format!("cannot declare `in_list`: {error}"),
            },
        )]));
    }
    let settings = settings::check(&raw, default_name, &mut reporter);
    let rules = rule::build(&raw, sources, &env, &mut reporter);
    let (Some(settings), Some(rules)) = (settings, rules) else {
        return Err(Diagnostics(reporter.into_sorted()));
    };
    if !reporter.diagnostics.is_empty() {
        return Err(Diagnostics(reporter.into_sorted()));
    }

    // Stage 3: order rules for evaluation.
    let mut adjust_rules = Vec::new();
    let mut decision_rules = Vec::new();
    let mut shadow_rules = Vec::new();
    for rule in rules.rules {
        match (rule.mode, &rule.action) {
            (RuleMode::Shadow, _) => shadow_rules.push(rule),
            (RuleMode::Enforce, rule::Action::Adjust(_)) => adjust_rules.push(rule),
            (RuleMode::Enforce, _) => decision_rules.push(rule),
        }
    }
    // Stable sorts keep file order among equals.
    adjust_rules.sort_by_key(|rule| std::cmp::Reverse(rule.priority));
    decision_rules.sort_by_key(|rule| {
        (
            std::cmp::Reverse(rule.priority),
            std::cmp::Reverse(rule.action.severity()),
        )
    });

    Ok(RuleSet {
        version,
        settings,
        adjust_rules,
        decision_rules,
        shadow_rules,
        roots: rules.roots,
        signals: rules.signals,
        ip_lists: rules.ip_lists,
        root,
    })
}
