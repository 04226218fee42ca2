//! Prometheus metrics of the service.

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Every metric the engine exports, registered in one registry.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub decisions: IntCounterVec,
    pub score_seconds: HistogramVec,
    pub cache_requests: IntCounterVec,
    pub cache_hit_ratio: GaugeVec,
    pub rule_hits: IntCounterVec,
    pub rule_errors: IntCounterVec,
    pub degraded: IntCounterVec,
    pub reloads: IntCounterVec,
}

impl Metrics {
    /// Creates and registers the metrics.
    ///
    /// Registration only fails for duplicate or malformed names, which are constants here, so a
    /// failure is a programming error caught by the tests.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "riskgate_http_requests_total",
                "HTTP requests by endpoint and status",
            ),
            &["endpoint", "status"],
        )?;
        let decisions = IntCounterVec::new(
            Opts::new("riskgate_decisions_total", "Score decisions by kind"),
            &["decision"],
        )?;
        let score_seconds = HistogramVec::new(
            HistogramOpts::new(
                "riskgate_score_duration_seconds",
                "Time to score one login, from decoded request to recorded decision",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["decision"],
        )?;
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "riskgate_cache_requests_total",
                "Cache lookups by cache and result",
            ),
            &["cache", "result"],
        )?;
        let cache_hit_ratio = GaugeVec::new(
            Opts::new(
                "riskgate_cache_hit_ratio",
                "Share of cache lookups that hit, since start",
            ),
            &["cache"],
        )?;
        let rule_hits = IntCounterVec::new(
            Opts::new(
                "riskgate_rule_hits_total",
                "Rules that matched, by rule id and mode",
            ),
            &["rule", "mode"],
        )?;
        let rule_errors = IntCounterVec::new(
            Opts::new(
                "riskgate_rule_errors_total",
                "Rule conditions that failed to evaluate",
            ),
            &["rule"],
        )?;
        let degraded = IntCounterVec::new(
            Opts::new(
                "riskgate_degraded_total",
                "Degraded decisions by the signal that degraded them",
            ),
            &["signal"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "riskgate_reloads_total",
                "Reloads of rules and models by kind and result",
            ),
            &["kind", "result"],
        )?;
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(decisions.clone()),
            Box::new(score_seconds.clone()),
            Box::new(cache_requests.clone()),
            Box::new(cache_hit_ratio.clone()),
            Box::new(rule_hits.clone()),
            Box::new(rule_errors.clone()),
            Box::new(degraded.clone()),
            Box::new(reloads.clone()),
        ] {
            registry.register(collector)?;
        }
        Ok(Metrics {
            registry,
            requests,
            decisions,
            score_seconds,
            cache_requests,
            cache_hit_ratio,
            rule_hits,
            rule_errors,
            degraded,
            reloads,
        })
    }

    /// Counts one cache lookup.
    pub fn cache_lookup(&self, cache: &str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache_requests
            .with_label_values(&[cache, result])
            .inc();
    }

    /// Renders the Prometheus text format, updating the hit ratios first.
    pub fn render(&self, extra_cache_stats: &[(&str, u64, u64)]) -> String {
        for (cache, hits, misses) in extra_cache_stats {
            let hit_counter = self.cache_requests.with_label_values(&[cache, "hit"]);
            let miss_counter = self.cache_requests.with_label_values(&[cache, "miss"]);
            hit_counter.reset();
            miss_counter.reset();
            hit_counter.inc_by(*hits);
            miss_counter.inc_by(*misses);
        }
        let names: Vec<String> = self
            .cache_requests
            .collect()
            .iter()
            .flat_map(|family| family.get_metric().iter())
            .filter_map(|metric| {
                metric
                    .get_label()
                    .iter()
                    .find(|label| label.name() == "cache")
                    .map(|label| label.value().to_owned())
            })
            .collect();
        for cache in names {
            let hits = self
                .cache_requests
                .with_label_values(&[&cache, "hit"])
                .get();
            let misses = self
                .cache_requests
                .with_label_values(&[&cache, "miss"])
                .get();
            let total = hits + misses;
            let ratio = if total == 0 {
                0.0
            } else {
                hits as f64 / total as f64
            };
            self.cache_hit_ratio.with_label_values(&[&cache]).set(ratio);
        }
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_includes_counts_and_ratio() {
        let metrics = Metrics::new().unwrap();
        metrics.decisions.with_label_values(&["allow"]).inc();
        metrics.cache_lookup("profile", true);
        metrics.cache_lookup("profile", false);
        let text = metrics.render(&[("geo", 3, 1)]);
        assert!(
            text.contains("riskgate_decisions_total{decision=\"allow\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("riskgate_cache_hit_ratio{cache=\"profile\"} 0.5"),
            "{text}"
        );
        assert!(
            text.contains("riskgate_cache_hit_ratio{cache=\"geo\"} 0.75"),
            "{text}"
        );
    }
}
