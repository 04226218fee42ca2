//! The evaluation report of a trained model against the hand-set weights of the rules file,
//! on the same labelled logins.
//!
//! Every login gets two risks: the trained model's and the baseline's (the default rules'
//! weights). The engine decides on more than the risk: when the rules file's
//! `[policy] learning` is not `allow`, every login of a user in the learning state is stepped
//! up or denied whatever its risk ([`EvaluationRow::policy_step_up`], "under the policy").
//! The policy does not depend on the scorer, so it applies to both. A login is stepped up
//! (asked to re-authenticate, or denied) at a threshold `t` when it is under the policy or
//! its risk is at or above `t`, so a risk equal to the threshold counts as stepped up. The
//! figures:
//!
//! - `auc`: ROC AUC of attacks against legitimate logins on the raw risks, ties counting one
//!   half. The policy plays no part: the AUC measures the ranking alone.
//! - `legitimate_policy_step_up`: the legitimate logins under the policy, and
//!   `legitimate_policy_step_up_share` their share of all legitimate logins.
//! - `caught_at_reauth_<r>pct`, for `r` in [`REAUTH_RATES`]: the threshold steps up at most
//!   `r`% of the legitimate logins outside the policy (see [`caught_at_reauth`]). When tied
//!   legitimate risks straddle that share, the threshold moves just above the tie, so the
//!   realised rate never exceeds `r`%. The figure is the share of the kind's attacks stepped
//!   up at that threshold, those under the policy included. The rate leaves out the
//!   legitimate logins under the policy because no threshold changes their decision, and
//!   counting them would make every rate below their share unreachable.
//! - `reauth_at_caught_99pct_experienced`: the threshold is the highest at which at least
//!   99% of the kind's `m` attacks are stepped up. With `p` of them under the policy, it is
//!   the risk of the `(ceil(0.99 * m) - p)`-th riskiest of the other attacks, or above every
//!   risk when the policy alone steps up enough (see [`reauth_at_caught`]). The figure is the
//!   share of legitimate logins stepped up at that threshold, by the policy or by their risk,
//!   among those whose user has [`EXPERIENCED_PREVIOUS_LOGINS`] or more previous logins.
//! - `reauth_at_caught_99pct_targeted_by_history`: one threshold, chosen as above over all
//!   targeted attacks, and per history-size bucket the share of legitimate logins stepped up
//!   at it (by the policy or by their risk) and the share of targeted attacks stepped up.
//!   When the policy alone steps up enough, the reported threshold is the next `f64` above
//!   the highest risk of the legitimate and targeted logins.
//!
//! A figure is `None` (JSON `null`) when it is undefined: no attack of the kind, no
//! legitimate login in the group (for `caught_at_reauth_<r>pct`, none outside the policy), or
//! a NaN risk. A NaN risk of a login under the policy leaves the threshold figures defined,
//! because they do not read it.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use super::metrics::{
    HistoryBucket, ScoredLogin, by_history, caught_at_reauth, reauth_at_caught, roc_auc,
};
use super::read::{AttackKind, LoginRecord};

/// Attack kinds that the report always lists, in report order.
pub const REPORTED_KINDS: [AttackKind; 5] = [
    AttackKind::Naive,
    AttackKind::Vpn,
    AttackKind::Targeted,
    AttackKind::Stuffing,
    AttackKind::Spray,
];

/// Maximum shares of the legitimate logins outside the policy stepped up by the threshold, at
/// which the caught attacks are reported.
pub const REAUTH_RATES: [f64; 4] = [0.01, 0.02, 0.05, 0.10];

/// Minimum share of a kind's attacks that the re-authentication figures catch.
pub const CAUGHT_SHARE: f64 = 0.99;

/// Minimum number of previous logins of an experienced user.
pub const EXPERIENCED_PREVIOUS_LOGINS: u64 = 10;

/// First history size of each bucket of the targeted-by-history figures.
pub const HISTORY_BUCKET_STARTS: [u32; 6] = [0, 1, 5, 10, 20, 50];

/// One scored login of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRow {
    /// Risk from the trained model.
    pub risk: f64,
    /// Risk from the hand-set weights of the rules file.
    pub baseline_risk: f64,
    pub is_attack: bool,
    /// Kind of the attack, or `None` for legitimate logins and unlabelled attacks.
    pub kind: Option<AttackKind>,
    /// Earlier legitimate successful logins of the same user (see [`previous_logins`]).
    pub previous_logins: u64,
    /// The decision steps up or denies this login whatever its risk: the user is in the
    /// learning state and the rules file's learning policy is not `allow`.
    #[serde(default)]
    pub policy_step_up: bool,
}

/// Figures of one attack kind against all legitimate logins, for both scorers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindEvaluation {
    /// Attacks of this kind.
    pub count: usize,
    pub auc: Option<f64>,
    pub baseline_auc: Option<f64>,
    pub caught_at_reauth_1pct: Option<f64>,
    pub caught_at_reauth_2pct: Option<f64>,
    pub caught_at_reauth_5pct: Option<f64>,
    pub caught_at_reauth_10pct: Option<f64>,
    pub baseline_caught_at_reauth_1pct: Option<f64>,
    pub baseline_caught_at_reauth_2pct: Option<f64>,
    pub baseline_caught_at_reauth_5pct: Option<f64>,
    pub baseline_caught_at_reauth_10pct: Option<f64>,
    pub reauth_at_caught_99pct_experienced: Option<f64>,
    pub baseline_reauth_at_caught_99pct_experienced: Option<f64>,
}

/// The figures of each of the [`REPORTED_KINDS`], present even when a kind has no rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindEvaluations {
    pub naive: KindEvaluation,
    pub vpn: KindEvaluation,
    pub targeted: KindEvaluation,
    pub stuffing: KindEvaluation,
    pub spray: KindEvaluation,
}

impl KindEvaluations {
    /// Returns the figures of `kind`, or `None` for a kind outside [`REPORTED_KINDS`].
    pub fn get(&self, kind: AttackKind) -> Option<&KindEvaluation> {
        match kind {
            AttackKind::Naive => Some(&self.naive),
            AttackKind::Vpn => Some(&self.vpn),
            AttackKind::Targeted => Some(&self.targeted),
            AttackKind::Stuffing => Some(&self.stuffing),
            AttackKind::Spray => Some(&self.spray),
            AttackKind::Takeover | AttackKind::AttackIp => None,
        }
    }

    /// Returns each reported kind with its figures, in [`REPORTED_KINDS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (AttackKind, &KindEvaluation)> {
        [
            (AttackKind::Naive, &self.naive),
            (AttackKind::Vpn, &self.vpn),
            (AttackKind::Targeted, &self.targeted),
            (AttackKind::Stuffing, &self.stuffing),
            (AttackKind::Spray, &self.spray),
        ]
        .into_iter()
    }
}

/// Legitimate re-authentication and targeted attacks caught in one history-size bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryReauth {
    /// Bucket label such as `0`, `1-4` or `50+`.
    pub previous_logins: String,
    pub first: u32,
    /// `None` for the open-ended last bucket.
    pub last: Option<u32>,
    pub legitimate: usize,
    pub targeted: usize,
    pub reauth_rate: Option<f64>,
    pub baseline_reauth_rate: Option<f64>,
    pub caught: Option<f64>,
    pub baseline_caught: Option<f64>,
}

/// Legitimate re-authentication by history size at the thresholds that catch at least 99%
/// of all targeted attacks, counting those under the policy as caught.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetedByHistory {
    /// Threshold on the trained model's risk, or `None` without targeted or legitimate
    /// logins.
    pub threshold: Option<f64>,
    pub baseline_threshold: Option<f64>,
    pub buckets: Vec<HistoryReauth>,
}

/// The evaluation report. Its JSON keys are a stable interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationReport {
    pub rows: usize,
    pub legitimate: usize,
    pub attacks_total: usize,
    /// Attacks without a kind or of a kind outside [`REPORTED_KINDS`], such as the RBA
    /// dataset's `takeover`. They count in `attacks_total` and the overall AUC only.
    pub attacks_other_kinds: usize,
    /// Legitimate logins that the learning policy steps up whatever their risk.
    pub legitimate_policy_step_up: usize,
    /// `legitimate_policy_step_up` over `legitimate`, or `None` without legitimate logins.
    pub legitimate_policy_step_up_share: Option<f64>,
    /// Trained model, all attacks against legitimate logins.
    pub auc: Option<f64>,
    /// Hand-set weights, all attacks against legitimate logins.
    pub baseline_auc: Option<f64>,
    pub attacks: KindEvaluations,
    pub reauth_at_caught_99pct_targeted_by_history: TargetedByHistory,
}

/// Counts, for each record, the earlier records of the same user that are legitimate
/// successful logins (`is_attack` false, `login_successful` true).
///
/// "Earlier" is by timestamp, and records with equal timestamps count in slice order, as
/// [`read_logins`](super::read_logins) sorts them. `user_key` maps a record to its user, so
/// the caller can apply the engine's user id normalisation. Returns one count per record,
/// in slice order.
pub fn previous_logins<K, F>(records: &[LoginRecord], user_key: F) -> Vec<u64>
where
    K: Eq + Hash,
    F: Fn(&LoginRecord) -> K,
{
    let mut order: Vec<usize> = (0..records.len()).collect();
    // A stable sort keeps slice order among equal timestamps.
    order.sort_by_key(|&index| records[index].timestamp);
    let mut verified: HashMap<K, u64> = HashMap::new();
    let mut counts = vec![0; records.len()];
    for index in order {
        let record = &records[index];
        let count = verified.entry(user_key(record)).or_insert(0);
        counts[index] = *count;
        if !record.is_attack && record.login_successful {
            *count += 1;
        }
    }
    counts
}

/// Returns the score that decides a login at a threshold: `+inf` for a login under the
/// policy, which is at or above every finite threshold, and its risk otherwise.
fn decision_score(risk: f64, policy_step_up: bool) -> f64 {
    if policy_step_up { f64::INFINITY } else { risk }
}

/// Risks of one group of logins under one scorer.
#[derive(Default)]
struct Scores {
    /// Raw risks of every login, for the AUCs.
    risks: Vec<f64>,
    /// Risks of the logins outside the policy, the only ones a threshold decides.
    risk_decided: Vec<f64>,
    /// [`decision_score`] of every login.
    decision: Vec<f64>,
}

impl Scores {
    fn push(&mut self, risk: f64, policy_step_up: bool) {
        self.risks.push(risk);
        if !policy_step_up {
            self.risk_decided.push(risk);
        }
        self.decision.push(decision_score(risk, policy_step_up));
    }
}

/// One group of logins under both scorers.
#[derive(Default)]
struct Risks {
    model: Scores,
    baseline: Scores,
}

impl Risks {
    fn push(&mut self, row: &EvaluationRow) {
        self.model.push(row.risk, row.policy_step_up);
        self.baseline.push(row.baseline_risk, row.policy_step_up);
    }

    fn len(&self) -> usize {
        self.model.risks.len()
    }
}

/// Builds the report over `rows`. The rows need no particular order.
pub fn evaluate(rows: &[EvaluationRow]) -> EvaluationReport {
    let mut legitimate = Risks::default();
    let mut experienced = Risks::default();
    let mut attacks = Risks::default();
    let mut by_kind: [Risks; REPORTED_KINDS.len()] = std::array::from_fn(|_| Risks::default());
    let mut other_kinds = 0;
    for row in rows {
        if !row.is_attack {
            legitimate.push(row);
            if row.previous_logins >= EXPERIENCED_PREVIOUS_LOGINS {
                experienced.push(row);
            }
            continue;
        }
        attacks.push(row);
        match row
            .kind
            .and_then(|kind| REPORTED_KINDS.iter().position(|reported| *reported == kind))
        {
            Some(position) => by_kind[position].push(row),
            None => other_kinds += 1,
        }
    }

    // The same order as REPORTED_KINDS.
    let [naive, vpn, targeted, stuffing, spray] =
        by_kind.map(|kind| evaluate_kind(&legitimate, &experienced, &kind));
    let evaluations = KindEvaluations {
        naive,
        vpn,
        targeted,
        stuffing,
        spray,
    };
    let legitimate_policy_step_up = legitimate.len() - legitimate.model.risk_decided.len();
    EvaluationReport {
        rows: rows.len(),
        legitimate: legitimate.len(),
        attacks_total: attacks.len(),
        attacks_other_kinds: other_kinds,
        legitimate_policy_step_up,
        legitimate_policy_step_up_share: (legitimate.len() > 0)
            .then(|| legitimate_policy_step_up as f64 / legitimate.len() as f64),
        auc: auc(&legitimate.model.risks, &attacks.model.risks),
        baseline_auc: auc(&legitimate.baseline.risks, &attacks.baseline.risks),
        attacks: evaluations,
        reauth_at_caught_99pct_targeted_by_history: targeted_by_history(rows),
    }
}

fn evaluate_kind(legitimate: &Risks, experienced: &Risks, attacks: &Risks) -> KindEvaluation {
    // The threshold comes from the legitimate logins outside the policy, and the attacks
    // under the policy score +inf, so they count as caught at any threshold.
    let caught = |legitimate: &Scores, attacks: &Scores, rate: f64| {
        caught_at_reauth(&legitimate.risk_decided, &attacks.decision, rate)
            .map(|point| point.caught)
    };

    // The threshold depends on the attacks only, so scoring the experienced users' logins
    // against it gives their re-authentication rate directly. Attacks under the policy score
    // +inf, so they fill the caught share first and the threshold is +inf when they alone
    // reach it. Legitimate logins under the policy score +inf, so they always count as
    // stepped up.
    let reauth = |experienced: &Scores, attacks: &Scores| {
        reauth_at_caught(&experienced.decision, &attacks.decision, CAUGHT_SHARE)
            .map(|point| point.reauth_rate)
    };

    let [one, two, five, ten] = REAUTH_RATES;
    let (model, baseline) = (&legitimate.model, &legitimate.baseline);
    KindEvaluation {
        count: attacks.len(),
        auc: auc(&model.risks, &attacks.model.risks),
        baseline_auc: auc(&baseline.risks, &attacks.baseline.risks),
        caught_at_reauth_1pct: caught(model, &attacks.model, one),
        caught_at_reauth_2pct: caught(model, &attacks.model, two),
        caught_at_reauth_5pct: caught(model, &attacks.model, five),
        caught_at_reauth_10pct: caught(model, &attacks.model, ten),
        baseline_caught_at_reauth_1pct: caught(baseline, &attacks.baseline, one),
        baseline_caught_at_reauth_2pct: caught(baseline, &attacks.baseline, two),
        baseline_caught_at_reauth_5pct: caught(baseline, &attacks.baseline, five),
        baseline_caught_at_reauth_10pct: caught(baseline, &attacks.baseline, ten),
        reauth_at_caught_99pct_experienced: reauth(&experienced.model, &attacks.model),
        baseline_reauth_at_caught_99pct_experienced: reauth(
            &experienced.baseline,
            &attacks.baseline,
        ),
    }
}

/// Returns the ROC AUC of `attacks` against `legitimate`.
fn auc(legitimate: &[f64], attacks: &[f64]) -> Option<f64> {
    let mut scores = legitimate.to_vec();
    scores.extend_from_slice(attacks);
    let mut labels = vec![false; legitimate.len()];
    labels.resize(scores.len(), true);
    roc_auc(&scores, &labels)
}

fn targeted_by_history(rows: &[EvaluationRow]) -> TargetedByHistory {
    let relevant: Vec<&EvaluationRow> = rows
        .iter()
        .filter(|row| !row.is_attack || row.kind == Some(AttackKind::Targeted))
        .collect();

    // Scored by decision score, so that `by_history` counts the logins under the policy as
    // stepped up at any finite threshold.
    let scored = |risk: fn(&EvaluationRow) -> f64| -> Vec<ScoredLogin> {
        relevant
            .iter()
            .map(|row| ScoredLogin {
                score: decision_score(risk(row), row.policy_step_up),
                is_attack: row.is_attack,
                attack_kind: row.kind,
                previous_logins: u32::try_from(row.previous_logins).unwrap_or(u32::MAX),
            })
            .collect()
    };
    let highest = |risk: fn(&EvaluationRow) -> f64| {
        relevant
            .iter()
            .map(|row| risk(row))
            .fold(f64::NEG_INFINITY, f64::max)
    };

    let model = scored(|row| row.risk);
    let baseline = scored(|row| row.baseline_risk);
    let threshold = targeted_threshold(&model, highest(|row| row.risk));
    let baseline_threshold = targeted_threshold(&baseline, highest(|row| row.baseline_risk));
    let model_buckets = buckets_at(&model, threshold);
    let baseline_buckets = buckets_at(&baseline, baseline_threshold);

    let buckets = model_buckets
        .into_iter()
        .zip(baseline_buckets)
        .map(|(model, baseline)| HistoryReauth {
            previous_logins: model.label(),
            first: model.first,
            last: model.last,
            legitimate: model.legitimate,
            targeted: model.attacks,
            reauth_rate: model.reauth_rate,
            baseline_reauth_rate: baseline.reauth_rate,
            caught: model.caught,
            baseline_caught: baseline.caught,
        })
        .collect();
    TargetedByHistory {
        threshold,
        baseline_threshold,
        buckets,
    }
}

/// Returns the threshold that catches at least [`CAUGHT_SHARE`] of the targeted attacks
/// among `logins`, which are legitimate or targeted and scored by [`decision_score`].
///
/// When the attacks under the policy alone reach that share, returns the next `f64` above
/// `highest_risk`, the highest raw risk of `logins`, so that no risk reaches the threshold.
fn targeted_threshold(logins: &[ScoredLogin], highest_risk: f64) -> Option<f64> {
    let (attacks, legitimate): (Vec<&ScoredLogin>, Vec<&ScoredLogin>) =
        logins.iter().partition(|login| login.is_attack);
    let attacks: Vec<f64> = attacks.iter().map(|login| login.score).collect();
    let legitimate: Vec<f64> = legitimate.iter().map(|login| login.score).collect();
    let threshold = reauth_at_caught(&legitimate, &attacks, CAUGHT_SHARE)?.threshold;
    Some(if threshold.is_finite() {
        threshold
    } else {
        highest_risk.next_up()
    })
}

/// Splits `logins` into the [`HISTORY_BUCKET_STARTS`] buckets and, when there is a
/// threshold, fills in the rates at it.
fn buckets_at(logins: &[ScoredLogin], threshold: Option<f64>) -> Vec<HistoryBucket> {
    let mut buckets = by_history(
        logins,
        &HISTORY_BUCKET_STARTS,
        threshold.unwrap_or(f64::INFINITY),
    );
    if threshold.is_none() {
        for bucket in &mut buckets {
            bucket.reauthenticated = 0;
            bucket.reauth_rate = None;
            bucket.caught = None;
        }
    }
    buckets
}

/// Formats a figure with four decimals, or `-` when undefined.
fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.4}"))
}

/// Formats a threshold with six decimals, since risks of well-separated logins sit close to
/// 0 or 1, or `-` when undefined.
fn threshold(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.6}"))
}

impl fmt::Display for EvaluationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} logins: {} legitimate, {} attacks ({} of other or no kind)",
            self.rows, self.legitimate, self.attacks_total, self.attacks_other_kinds
        )?;
        writeln!(
            f,
            "ROC AUC, all attacks: model {}, baseline {}",
            figure(self.auc),
            figure(self.baseline_auc)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "policy: logins in the learning state step up by the rules file's learning policy \
             whatever their risk ({} legitimate, {}).",
            self.legitimate_policy_step_up,
            figure(self.legitimate_policy_step_up_share)
        )?;
        writeln!(
            f,
            "caught@r: share of the kind's attacks stepped up, by policy or risk, when the \
             threshold steps up at most r of the legitimate logins outside the policy."
        )?;
        writeln!(
            f,
            "reauth@99%: share of legitimate logins of users with {EXPERIENCED_PREVIOUS_LOGINS}+ \
             previous logins stepped up, by policy or risk, when 99% of the kind is."
        )?;
        writeln!(
            f,
            "{:<10} {:>7}  {:<8} {:>7} {:>9} {:>9} {:>9} {:>10} {:>10}",
            "kind",
            "count",
            "scorer",
            "AUC",
            "caught@1%",
            "caught@2%",
            "caught@5%",
            "caught@10%",
            "reauth@99%"
        )?;
        for (kind, figures) in self.attacks.iter() {
            writeln!(
                f,
                "{:<10} {:>7}  {:<8} {:>7} {:>9} {:>9} {:>9} {:>10} {:>10}",
                kind.as_str(),
                figures.count,
                "model",
                figure(figures.auc),
                figure(figures.caught_at_reauth_1pct),
                figure(figures.caught_at_reauth_2pct),
                figure(figures.caught_at_reauth_5pct),
                figure(figures.caught_at_reauth_10pct),
                figure(figures.reauth_at_caught_99pct_experienced),
            )?;
            writeln!(
                f,
                "{:<10} {:>7}  {:<8} {:>7} {:>9} {:>9} {:>9} {:>10} {:>10}",
                "",
                "",
                "baseline",
                figure(figures.baseline_auc),
                figure(figures.baseline_caught_at_reauth_1pct),
                figure(figures.baseline_caught_at_reauth_2pct),
                figure(figures.baseline_caught_at_reauth_5pct),
                figure(figures.baseline_caught_at_reauth_10pct),
                figure(figures.baseline_reauth_at_caught_99pct_experienced),
            )?;
        }

        let history = &self.reauth_at_caught_99pct_targeted_by_history;
        writeln!(f)?;
        writeln!(
            f,
            "Legitimate logins stepped up, by policy or risk, when 99% of targeted attacks are \
             (threshold: model {}, baseline {}):",
            threshold(history.threshold),
            threshold(history.baseline_threshold)
        )?;
        writeln!(
            f,
            "{:<16} {:>10} {:>8} {:>12} {:>15}",
            "previous logins", "legitimate", "targeted", "reauth model", "reauth baseline"
        )?;
        for bucket in &history.buckets {
            writeln!(
                f,
                "{:<16} {:>10} {:>8} {:>12} {:>15}",
                bucket.previous_logins,
                bucket.legitimate,
                bucket.targeted,
                figure(bucket.reauth_rate),
                figure(bucket.baseline_reauth_rate),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use chrono::{DateTime, TimeZone, Utc};

    use super::*;

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|actual| (actual - expected).abs() < 1e-12)
    }

    fn row(risk: f64, kind: Option<AttackKind>, is_attack: bool, previous: u64) -> EvaluationRow {
        EvaluationRow {
            risk,
            baseline_risk: 1.0 - risk,
            is_attack,
            kind,
            previous_logins: previous,
            policy_step_up: false,
        }
    }

    /// Builds a row of a login that the learning policy steps up.
    fn policy_row(
        risk: f64,
        kind: Option<AttackKind>,
        is_attack: bool,
        previous: u64,
    ) -> EvaluationRow {
        EvaluationRow {
            policy_step_up: true,
            ..row(risk, kind, is_attack, previous)
        }
    }

    /// Builds 100 legitimate logins outside the policy with risk `i / 100` and `i` previous
    /// logins.
    fn legitimate_ramp() -> Vec<EvaluationRow> {
        (0..100u32)
            .map(|i| row(f64::from(i) / 100.0, None, false, u64::from(i)))
            .collect()
    }

    /// 100 legitimate logins with risk `i / 100` and `i` previous logins, and attacks whose
    /// risks fall between the legitimate ones except where a tie is wanted.
    fn sample() -> Vec<EvaluationRow> {
        let mut rows = legitimate_ramp();
        for risk in [0.995, 0.965, 0.925, 0.505] {
            rows.push(row(risk, Some(AttackKind::Naive), true, 0));
        }
        rows.push(row(0.999, Some(AttackKind::Targeted), true, 0));
        // Ties with the legitimate login of risk 0.15.
        rows.push(row(0.15, Some(AttackKind::Targeted), true, 30));
        // Ties with the legitimate login of risk 0.
        rows.push(row(0.0, Some(AttackKind::Vpn), true, 3));
        rows.push(row(0.6, None, true, 0));
        rows
    }

    #[test]
    fn counts_rows_and_classes() {
        let report = evaluate(&sample());
        assert_eq!(report.rows, 108);
        assert_eq!(report.legitimate, 100);
        assert_eq!(report.attacks_total, 8);
        assert_eq!(report.attacks_other_kinds, 1);
        assert_eq!(report.attacks.naive.count, 4);
        assert_eq!(report.attacks.targeted.count, 2);
        assert_eq!(report.attacks.vpn.count, 1);
    }

    #[test]
    fn auc_hand_computed() {
        let report = evaluate(&sample());
        // Naive: 0.995 beats 100 legitimate, 0.965 beats 97, 0.925 beats 93, 0.505 beats 51.
        assert!(close(report.attacks.naive.auc, 341.0 / 400.0));
        // Targeted: 0.999 beats 100, 0.15 beats 15 and ties 1.
        assert!(close(report.attacks.targeted.auc, 115.5 / 200.0));
        // Vpn: 0.0 ties the lowest legitimate login.
        assert!(close(report.attacks.vpn.auc, 0.5 / 100.0));
        // All: 341 + 115.5 + 0.5, and 0.6 beats 60 and ties 1.
        assert!(close(report.auc, 517.5 / 800.0));
        // The baseline reverses every risk, so it ranks every pair the other way.
        assert!(close(report.baseline_auc, 1.0 - 517.5 / 800.0));
        assert!(close(
            report.attacks.naive.baseline_auc,
            1.0 - 341.0 / 400.0
        ));
    }

    #[test]
    fn caught_at_reauth_hand_computed() {
        let naive = evaluate(&sample()).attacks.naive;
        // Thresholds 0.99, 0.98, 0.95 and 0.90 step up 1, 2, 5 and 10 of the 100 legitimate
        // logins.
        assert!(close(naive.caught_at_reauth_1pct, 0.25));
        assert!(close(naive.caught_at_reauth_2pct, 0.25));
        assert!(close(naive.caught_at_reauth_5pct, 0.5));
        assert!(close(naive.caught_at_reauth_10pct, 0.75));
        // Reversed, the naive attacks score 0.005 to 0.495, below the baseline thresholds
        // of 0.99 and above.
        assert!(close(naive.baseline_caught_at_reauth_10pct, 0.0));
    }

    #[test]
    fn reauth_at_caught_counts_experienced_users() {
        let naive = evaluate(&sample()).attacks.naive;
        // 99% of 4 attacks needs all 4, so the threshold is 0.505. Of the 90 logins with 10
        // or more previous logins (risks 0.10 to 0.99), 0.51 to 0.99 are stepped up.
        assert!(close(naive.reauth_at_caught_99pct_experienced, 49.0 / 90.0));
        // Reversed, the threshold is 1 - 0.995, below every experienced login.
        assert!(close(
            naive.baseline_reauth_at_caught_99pct_experienced,
            1.0
        ));
    }

    #[test]
    fn targeted_by_history_counts_ties_as_stepped_up() {
        let history = evaluate(&sample()).reauth_at_caught_99pct_targeted_by_history;
        assert_eq!(history.threshold, Some(0.15));

        let labels: Vec<&str> = history
            .buckets
            .iter()
            .map(|bucket| bucket.previous_logins.as_str())
            .collect();
        assert_eq!(labels, ["0", "1-4", "5-9", "10-19", "20-49", "50+"]);

        let rates: Vec<Option<f64>> = history
            .buckets
            .iter()
            .map(|bucket| bucket.reauth_rate)
            .collect();
        // Bucket 10-19 contains risks 0.10 to 0.19, and 0.15 ties the threshold, so half of
        // it is stepped up.
        assert_eq!(
            rates,
            [
                Some(0.0),
                Some(0.0),
                Some(0.0),
                Some(0.5),
                Some(1.0),
                Some(1.0)
            ]
        );
        let legitimate: Vec<usize> = history
            .buckets
            .iter()
            .map(|bucket| bucket.legitimate)
            .collect();
        assert_eq!(legitimate, [1, 4, 5, 10, 30, 50]);

        let targeted: Vec<usize> = history.buckets.iter().map(|b| b.targeted).collect();
        assert_eq!(targeted, [1, 0, 0, 0, 1, 0]);
        assert_eq!(history.buckets[0].caught, Some(1.0));
        assert_eq!(history.buckets[1].caught, None);
        assert_eq!(history.buckets[5].last, None);
    }

    #[test]
    fn kind_without_rows_is_null() {
        let report = evaluate(&sample());
        let stuffing = &report.attacks.stuffing;
        assert_eq!(stuffing.count, 0);
        assert_eq!(stuffing.auc, None);
        assert_eq!(stuffing.baseline_auc, None);
        assert_eq!(stuffing.caught_at_reauth_1pct, None);
        assert_eq!(stuffing.reauth_at_caught_99pct_experienced, None);

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["attacks"]["stuffing"]["count"], 0);
        assert!(json["attacks"]["stuffing"]["auc"].is_null());
        assert!(json["attacks"]["spray"]["caught_at_reauth_5pct"].is_null());
    }

    #[test]
    fn all_equal_risks() {
        let mut rows: Vec<EvaluationRow> = (0..10).map(|_| row(0.5, None, false, 10)).collect();
        rows.extend((0..3).map(|_| row(0.5, Some(AttackKind::Spray), true, 0)));
        let report = evaluate(&rows);
        let spray = &report.attacks.spray;
        assert_eq!(spray.auc, Some(0.5));
        // Stepping up any one legitimate login steps up all ten, which exceeds 10%, so the
        // threshold moves above 0.5 and catches nothing.
        assert_eq!(spray.caught_at_reauth_1pct, Some(0.0));
        assert_eq!(spray.caught_at_reauth_10pct, Some(0.0));
        // Catching the attacks at 0.5 steps up every legitimate login.
        assert_eq!(spray.reauth_at_caught_99pct_experienced, Some(1.0));
        assert_eq!(report.auc, Some(0.5));
    }

    #[test]
    fn without_legitimate_logins_figures_are_null() {
        let rows = [row(0.9, Some(AttackKind::Targeted), true, 0)];
        let report = evaluate(&rows);
        assert_eq!(report.auc, None);
        assert_eq!(report.attacks.targeted.count, 1);
        assert_eq!(report.attacks.targeted.caught_at_reauth_5pct, None);
        let history = &report.reauth_at_caught_99pct_targeted_by_history;
        assert_eq!(history.threshold, None);
        assert_eq!(history.buckets[0].targeted, 1);
        assert_eq!(history.buckets[0].caught, None);

        let empty = evaluate(&[]);
        assert_eq!(empty.rows, 0);
        assert_eq!(empty.attacks.naive.auc, None);
    }

    #[test]
    fn experienced_figure_needs_experienced_users() {
        let rows = [
            row(0.1, None, false, 9),
            row(0.9, Some(AttackKind::Naive), true, 0),
        ];
        let naive = evaluate(&rows).attacks.naive;
        assert_eq!(naive.auc, Some(1.0));
        assert_eq!(naive.reauth_at_caught_99pct_experienced, None);
    }

    #[test]
    fn json_has_stable_keys() {
        let json = serde_json::to_value(evaluate(&sample())).unwrap();
        for key in [
            "auc",
            "baseline_auc",
            "rows",
            "legitimate",
            "attacks_total",
            "attacks_other_kinds",
            "legitimate_policy_step_up",
            "legitimate_policy_step_up_share",
            "attacks",
            "reauth_at_caught_99pct_targeted_by_history",
        ] {
            assert!(json.get(key).is_some(), "missing `{key}`");
        }
        for kind in ["naive", "vpn", "targeted", "stuffing", "spray"] {
            for key in [
                "count",
                "auc",
                "baseline_auc",
                "caught_at_reauth_1pct",
                "caught_at_reauth_2pct",
                "caught_at_reauth_5pct",
                "caught_at_reauth_10pct",
                "baseline_caught_at_reauth_1pct",
                "baseline_caught_at_reauth_2pct",
                "baseline_caught_at_reauth_5pct",
                "baseline_caught_at_reauth_10pct",
                "reauth_at_caught_99pct_experienced",
                "baseline_reauth_at_caught_99pct_experienced",
            ] {
                assert!(
                    json["attacks"][kind].get(key).is_some(),
                    "missing `attacks.{kind}.{key}`"
                );
            }
        }
        let back: EvaluationReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, evaluate(&sample()));
    }

    #[test]
    fn text_table_lists_every_kind() {
        let text = evaluate(&sample()).to_string();
        assert!(
            text.starts_with("108 logins: 100 legitimate, 8 attacks"),
            "{text}"
        );
        for kind in ["naive", "vpn", "targeted", "stuffing", "spray"] {
            assert!(
                text.lines().any(|line| line.starts_with(kind)),
                "no row for {kind}:\n{text}"
            );
        }
        assert!(text.contains("0.8525"), "{text}");
        assert!(text.contains("caught@2%"), "{text}");
        assert!(
            text.contains("learning policy whatever their risk (0 legitimate, 0.0000)"),
            "{text}"
        );
        assert!(text.contains("10-19"), "{text}");
        assert!(text.contains("50+"), "{text}");
    }

    #[test]
    fn caught_at_reauth_2pct_hand_computed() {
        let mut rows = legitimate_ramp();
        for risk in [0.995, 0.985, 0.975, 0.5] {
            rows.push(row(risk, Some(AttackKind::Naive), true, 0));
        }
        let report = evaluate(&rows);
        let naive = &report.attacks.naive;
        // Thresholds 0.99, 0.98 and 0.95 catch one, two and three of the four attacks.
        assert!(close(naive.caught_at_reauth_1pct, 0.25));
        assert!(close(naive.caught_at_reauth_2pct, 0.5));
        assert!(close(naive.caught_at_reauth_5pct, 0.75));
        // Reversed, the attacks score 0.005 to 0.5, below the baseline threshold of 0.99.
        assert!(close(naive.baseline_caught_at_reauth_2pct, 0.0));

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["attacks"]["naive"]["caught_at_reauth_2pct"], 0.5);
        assert_eq!(
            json["attacks"]["naive"]["baseline_caught_at_reauth_2pct"],
            0.0
        );
    }

    #[test]
    fn policy_caught_attacks_count_as_caught() {
        let mut rows = legitimate_ramp();
        rows.push(row(0.995, Some(AttackKind::Naive), true, 0));
        rows.push(row(0.505, Some(AttackKind::Naive), true, 0));
        rows.push(policy_row(0.2, Some(AttackKind::Naive), true, 0));
        rows.push(policy_row(0.0, Some(AttackKind::Naive), true, 0));
        let report = evaluate(&rows);
        let naive = &report.attacks.naive;

        // The AUC reads the raw risks: 0.995 beats 100 legitimate logins, 0.505 beats 51,
        // 0.2 beats 20 and ties 1, 0.0 ties 1.
        assert!(close(naive.auc, 172.0 / 400.0));
        // At 0.99 and at 0.90, only 0.995 of the risk-decided attacks is caught, and both
        // policy attacks are.
        assert!(close(naive.caught_at_reauth_1pct, 0.75));
        assert!(close(naive.caught_at_reauth_10pct, 0.75));
        // The baseline threshold at 1% is 1.0, above both risk-decided attacks (0.005 and
        // 0.495), so only the policy attacks are caught.
        assert!(close(naive.baseline_caught_at_reauth_1pct, 0.5));
        // 99% of 4 attacks needs all 4. The policy catches 2, so the threshold is the
        // second riskiest of the others, 0.505, and not 0.0: of the 90 experienced logins,
        // 0.51 to 0.99 are stepped up.
        assert!(close(naive.reauth_at_caught_99pct_experienced, 49.0 / 90.0));
        assert_eq!(report.legitimate_policy_step_up, 0);
        assert_eq!(report.legitimate_policy_step_up_share, Some(0.0));
    }

    #[test]
    fn kind_entirely_under_policy() {
        let mut rows = legitimate_ramp();
        for risk in [0.0, 0.3, 0.1] {
            rows.push(policy_row(risk, Some(AttackKind::Spray), true, 0));
        }
        rows.push(policy_row(0.0, Some(AttackKind::Targeted), true, 0));
        rows.push(policy_row(0.2, Some(AttackKind::Targeted), true, 30));
        let report = evaluate(&rows);

        let spray = &report.attacks.spray;
        // Raw risks: 0.0 ties 1, 0.3 beats 30 and ties 1, 0.1 beats 10 and ties 1.
        assert!(close(spray.auc, 41.5 / 300.0));
        for caught in [
            spray.caught_at_reauth_1pct,
            spray.caught_at_reauth_2pct,
            spray.caught_at_reauth_5pct,
            spray.caught_at_reauth_10pct,
            spray.baseline_caught_at_reauth_1pct,
            spray.baseline_caught_at_reauth_10pct,
        ] {
            assert_eq!(caught, Some(1.0));
        }
        // The policy alone catches every attack, so no legitimate login outside it needs to
        // step up.
        assert_eq!(spray.reauth_at_caught_99pct_experienced, Some(0.0));
        assert_eq!(spray.baseline_reauth_at_caught_99pct_experienced, Some(0.0));

        let history = &report.reauth_at_caught_99pct_targeted_by_history;
        // Just above the highest risk: 0.99 for the model, 1.0 for the reversed baseline.
        assert_eq!(history.threshold, Some(0.99f64.next_up()));
        assert_eq!(history.baseline_threshold, Some(1.0f64.next_up()));
        for bucket in &history.buckets {
            assert_eq!(bucket.reauth_rate, Some(0.0), "{}", bucket.previous_logins);
            assert_eq!(bucket.baseline_reauth_rate, Some(0.0));
        }
        assert_eq!(history.buckets[0].caught, Some(1.0));
        assert_eq!(history.buckets[4].caught, Some(1.0));
        assert_eq!(history.buckets[4].baseline_caught, Some(1.0));
    }

    #[test]
    fn legitimate_policy_step_ups_in_rates() {
        let mut rows = legitimate_ramp();
        // Experienced users in the learning state, such as after a compromise report. Their
        // risks, if the threshold at 1% counted them, would push it above 0.995.
        rows.extend((0..20).map(|_| policy_row(0.995, None, false, 50)));
        for risk in [0.995, 0.965, 0.925, 0.505] {
            rows.push(row(risk, Some(AttackKind::Naive), true, 0));
        }
        let report = evaluate(&rows);
        assert_eq!(report.legitimate, 120);
        assert_eq!(report.legitimate_policy_step_up, 20);
        assert!(close(report.legitimate_policy_step_up_share, 20.0 / 120.0));

        let naive = &report.attacks.naive;
        // The thresholds come from the 100 legitimate logins outside the policy, as in
        // `caught_at_reauth_hand_computed`.
        assert!(close(naive.caught_at_reauth_1pct, 0.25));
        assert!(close(naive.caught_at_reauth_5pct, 0.5));
        assert!(close(naive.caught_at_reauth_10pct, 0.75));
        // Threshold 0.505: 49 of the 90 experienced logins outside the policy, and all 20
        // under it.
        assert!(close(
            naive.reauth_at_caught_99pct_experienced,
            69.0 / 110.0
        ));
        // The baseline threshold of 0.005 steps up everyone, the policy logins whose
        // baseline risk is 0.005 included.
        assert!(close(
            naive.baseline_reauth_at_caught_99pct_experienced,
            1.0
        ));

        let text = report.to_string();
        assert!(text.contains("(20 legitimate, 0.1667)"), "{text}");
    }

    #[test]
    fn targeted_by_history_counts_policy() {
        let mut rows = legitimate_ramp();
        rows.push(policy_row(0.0, None, false, 0));
        rows.push(row(0.999, Some(AttackKind::Targeted), true, 0));
        rows.push(policy_row(0.15, Some(AttackKind::Targeted), true, 30));
        let report = evaluate(&rows);
        let history = &report.reauth_at_caught_99pct_targeted_by_history;
        // The policy catches one of the two attacks, so the threshold only has to catch 0.999.
        assert_eq!(history.threshold, Some(0.999));

        let legitimate: Vec<usize> = history.buckets.iter().map(|b| b.legitimate).collect();
        assert_eq!(legitimate, [2, 4, 5, 10, 30, 50]);
        let rates: Vec<Option<f64>> = history.buckets.iter().map(|b| b.reauth_rate).collect();
        // Only the policy login of bucket 0 is stepped up: every other risk is below 0.999.
        assert_eq!(
            rates,
            [
                Some(0.5),
                Some(0.0),
                Some(0.0),
                Some(0.0),
                Some(0.0),
                Some(0.0)
            ]
        );
        assert_eq!(history.buckets[0].caught, Some(1.0));
        assert_eq!(history.buckets[4].caught, Some(1.0));
        assert_eq!(
            report.attacks.targeted.reauth_at_caught_99pct_experienced,
            Some(0.0)
        );
    }

    #[test]
    fn row_without_policy_field() {
        let json = r#"{"risk": 0.4, "baseline_risk": 0.6, "is_attack": false, "kind": null,
            "previous_logins": 3}"#;
        let row: EvaluationRow = serde_json::from_str(json).unwrap();
        assert!(!row.policy_step_up);
    }

    fn record(user: &str, seconds: i64, is_attack: bool, login_successful: bool) -> LoginRecord {
        let timestamp: DateTime<Utc> = Utc.timestamp_opt(1_767_600_000 + seconds, 0).unwrap();
        LoginRecord {
            row: 0,
            timestamp,
            user_id: user.to_owned(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: None,
            role: None,
            app: None,
            tenant: None,
            device_id: None,
            login_successful,
            is_attack,
            attack_kind: None,
            rtt_ms: None,
            keystrokes: None,
            country: None,
            region: None,
            city: None,
            asn: None,
        }
    }

    #[test]
    fn previous_logins_counts_legitimate_successes() {
        let records = [
            record("alice", 0, false, true),
            record("alice", 10, false, false),
            record("bob", 15, false, true),
            record("alice", 20, true, true),
            record("alice", 30, false, true),
            record("alice", 40, false, true),
        ];
        let counts = previous_logins(&records, |record| record.user_id.clone());
        // The failed login and the attack do not count. Bob's login is another user's.
        assert_eq!(counts, [0, 1, 0, 1, 1, 2]);
    }

    #[test]
    fn previous_logins_follows_time_order() {
        let records = [
            record("alice", 30, false, true),
            record("alice", 0, false, true),
            // Same timestamp as the first: it counts as later because it comes later.
            record("alice", 30, false, true),
            record("ALICE", 40, false, true),
        ];
        let counts = previous_logins(&records, |record| record.user_id.clone());
        assert_eq!(counts, [1, 0, 2, 0]);
        let folded = previous_logins(&records, |record| record.user_id.to_lowercase());
        assert_eq!(folded, [1, 0, 2, 3]);
    }
}
