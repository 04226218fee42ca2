//! Evaluation metrics for login risk scores: ROC AUC, the share of attacks caught at a given
//! re-authentication rate of legitimate logins and the converse, and both grouped by attack
//! kind and by the size of the user's login history.
//!
//! A higher score means riskier. Every function returns `None` rather than a number when the
//! metric is undefined: an empty class, a NaN score, or a rate outside `[0, 1]`.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::read::AttackKind;

/// Slack for rates that are products of decimal fractions, so that `0.29 * 100` counts 29
/// logins rather than 28.
const RATE_EPSILON: f64 = 1e-9;

/// One point of a ROC curve: logins scoring at or above `threshold` are flagged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub threshold: f64,
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
}

/// A decision threshold with the shares of logins at or above it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub threshold: f64,
    /// Share of legitimate logins asked to re-authenticate (score at or above the threshold).
    pub reauth_rate: f64,
    /// Share of attacks caught (score at or above the threshold).
    pub caught: f64,
}

/// One scored login, for the grouped metrics and the plots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredLogin {
    pub score: f64,
    pub is_attack: bool,
    pub attack_kind: Option<AttackKind>,
    /// Logins of the same user before this one.
    pub previous_logins: u32,
}

/// Metrics of one attack kind against all legitimate logins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindReport {
    /// An [`AttackKind`] name, `all` for every attack, or `unlabelled` for attacks without a
    /// kind.
    pub kind: String,
    pub attacks: usize,
    pub roc_auc: Option<f64>,
    /// One operating point per requested re-authentication rate, in the requested order;
    /// `None` where undefined.
    pub caught_at_reauth: Vec<Option<OperatingPoint>>,
}

/// Re-authentication and catch rates of the logins whose user had `first..=last` previous
/// logins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryBucket {
    pub first: u32,
    /// `None` for the open-ended last bucket.
    pub last: Option<u32>,
    pub legitimate: usize,
    pub reauthenticated: usize,
    pub reauth_rate: Option<f64>,
    pub attacks: usize,
    pub caught: Option<f64>,
}

impl HistoryBucket {
    /// Returns a short label such as `0`, `2-4` or `40+`.
    pub fn label(&self) -> String {
        match self.last {
            Some(last) if last == self.first => self.first.to_string(),
            Some(last) => format!("{}-{last}", self.first),
            None => format!("{}+", self.first),
        }
    }
}

/// Returns the area under the ROC curve: the probability that a random attack scores above a
/// random legitimate login, counting ties as one half (the Mann-Whitney U statistic).
///
/// `labels[i]` is true when login `i` is an attack. Returns `None` when the lengths differ,
/// a score is NaN or either class is empty.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|score| score.is_nan()) {
        return None;
    }
    let positives = labels.iter().filter(|&&label| label).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.par_sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));

    // Sum of the 1-based ranks of the attacks, giving tied scores their mean rank.
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        positive_rank_sum += mean_rank * tied_positives as f64;
        start = end;
    }
    let positives = positives as f64;
    let u = positive_rank_sum - positives * (positives + 1.0) / 2.0;
    Some(u / (positives * negatives as f64))
}

/// Returns the ROC curve from `(0, 0)` (threshold `+inf`) to `(1, 1)`, with one point per
/// distinct score, highest score first. Returns `None` under the conditions of [`roc_auc`].
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Option<Vec<RocPoint>> {
    if scores.len() != labels.len() || scores.iter().any(|score| score.is_nan()) {
        return None;
    }
    let positives = labels.iter().filter(|&&label| label).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.par_sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));

    let mut points = vec![RocPoint {
        threshold: f64::INFINITY,
        false_positive_rate: 0.0,
        true_positive_rate: 0.0,
    }];
    let (mut true_positives, mut false_positives) = (0usize, 0usize);
    let mut start = 0;
    while start < order.len() {
        let threshold = scores[order[start]];
        let mut end = start;
        while end < order.len() && scores[order[end]] == threshold {
            if labels[order[end]] {
                true_positives += 1;
            } else {
                false_positives += 1;
            }
            end += 1;
        }
        points.push(RocPoint {
            threshold,
            false_positive_rate: false_positives as f64 / negatives as f64,
            true_positive_rate: true_positives as f64 / positives as f64,
        });
        start = end;
    }
    Some(points)
}

/// Returns the share of attacks caught when at most `rate` of the legitimate logins are
/// asked to re-authenticate.
///
/// The threshold is the upper `(1 - rate)` quantile of the legitimate scores: the lowest
/// legitimate score at or above which at most `floor(rate * n)` of the `n` legitimate logins
/// fall. When tied scores straddle that count, the threshold moves just above the tie, so the
/// realised `reauth_rate` never exceeds `rate`.
pub fn caught_at_reauth(legitimate: &[f64], attacks: &[f64], rate: f64) -> Option<OperatingPoint> {
    if !(0.0..=1.0).contains(&rate) {
        return None;
    }
    let legitimate = sorted_descending(legitimate)?;
    let attacks = sorted_descending(attacks)?;
    let allowed = ((rate * legitimate.len() as f64) + RATE_EPSILON).floor() as usize;
    let threshold = if allowed == 0 {
        legitimate[0].next_up()
    } else {
        let candidate = legitimate[allowed - 1];
        if count_at_or_above(&legitimate, candidate) <= allowed {
            candidate
        } else {
            candidate.next_up()
        }
    };
    Some(operating_point(&legitimate, &attacks, threshold))
}

/// Returns the share of legitimate logins asked to re-authenticate when at least `caught` of
/// the attacks must be caught.
///
/// The threshold is the score of the `ceil(caught * m)`-th highest of the `m` attacks, so the
/// realised `caught` is at least the requested share. `caught = 0` sets the threshold just
/// above the highest attack.
pub fn reauth_at_caught(
    legitimate: &[f64],
    attacks: &[f64],
    caught: f64,
) -> Option<OperatingPoint> {
    if !(0.0..=1.0).contains(&caught) {
        return None;
    }
    let legitimate = sorted_descending(legitimate)?;
    let attacks = sorted_descending(attacks)?;
    let needed = ((caught * attacks.len() as f64) - RATE_EPSILON)
        .ceil()
        .max(0.0) as usize;
    let threshold = if needed == 0 {
        attacks[0].next_up()
    } else {
        attacks[needed.min(attacks.len()) - 1]
    };
    Some(operating_point(&legitimate, &attacks, threshold))
}

/// Reports ROC AUC and the attacks caught at each of `reauth_rates`, for all attacks together
/// (`all`) and then for each attack kind present, in [`AttackKind::ALL`] order.
pub fn by_attack_kind(logins: &[ScoredLogin], reauth_rates: &[f64]) -> Vec<KindReport> {
    let legitimate: Vec<f64> = logins
        .iter()
        .filter(|login| !login.is_attack)
        .map(|login| login.score)
        .collect();
    let mut groups: BTreeMap<(usize, String), Vec<f64>> = BTreeMap::new();
    for login in logins.iter().filter(|login| login.is_attack) {
        groups
            .entry((0, "all".to_owned()))
            .or_default()
            .push(login.score);
        let key = match login.attack_kind {
            Some(kind) => {
                let position = AttackKind::ALL
                    .iter()
                    .position(|candidate| *candidate == kind)
                    .unwrap_or(AttackKind::ALL.len());
                (1 + position, kind.as_str().to_owned())
            }
            None => (1 + AttackKind::ALL.len(), "unlabelled".to_owned()),
        };
        groups.entry(key).or_default().push(login.score);
    }
    groups
        .into_iter()
        .map(|((_, kind), attacks)| {
            let mut scores = legitimate.clone();
            scores.extend_from_slice(&attacks);
            let mut labels = vec![false; legitimate.len()];
            labels.resize(scores.len(), true);
            KindReport {
                kind,
                attacks: attacks.len(),
                roc_auc: roc_auc(&scores, &labels),
                caught_at_reauth: reauth_rates
                    .iter()
                    .map(|&rate| caught_at_reauth(&legitimate, &attacks, rate))
                    .collect(),
            }
        })
        .collect()
}

/// Splits logins by the user's number of previous logins and reports, at `threshold`, the
/// re-authentication rate of the legitimate logins and the share of attacks caught in each
/// bucket. `bucket_starts` gives each bucket's first history size. It is sorted and
/// deduplicated, and a bucket starting at 0 is added when missing.
pub fn by_history(
    logins: &[ScoredLogin],
    bucket_starts: &[u32],
    threshold: f64,
) -> Vec<HistoryBucket> {
    let mut starts = bucket_starts.to_vec();
    starts.push(0);
    starts.sort_unstable();
    starts.dedup();
    let mut buckets: Vec<HistoryBucket> = starts
        .iter()
        .enumerate()
        .map(|(index, &first)| HistoryBucket {
            first,
            last: starts.get(index + 1).map(|next| next - 1),
            legitimate: 0,
            reauthenticated: 0,
            reauth_rate: None,
            attacks: 0,
            caught: None,
        })
        .collect();
    let mut caught_counts = vec![0usize; buckets.len()];
    for login in logins {
        let index = starts.partition_point(|&first| first <= login.previous_logins) - 1;
        let flagged = login.score >= threshold;
        let bucket = &mut buckets[index];
        if login.is_attack {
            bucket.attacks += 1;
            caught_counts[index] += usize::from(flagged);
        } else {
            bucket.legitimate += 1;
            bucket.reauthenticated += usize::from(flagged);
        }
    }
    for (bucket, caught) in buckets.iter_mut().zip(caught_counts) {
        bucket.reauth_rate = (bucket.legitimate > 0)
            .then(|| bucket.reauthenticated as f64 / bucket.legitimate as f64);
        bucket.caught = (bucket.attacks > 0).then(|| caught as f64 / bucket.attacks as f64);
    }
    buckets
}

/// Returns the scores sorted from highest to lowest, or `None` when empty or one is NaN.
fn sorted_descending(scores: &[f64]) -> Option<Vec<f64>> {
    if scores.is_empty() || scores.iter().any(|score| score.is_nan()) {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.par_sort_unstable_by(|a, b| b.total_cmp(a));
    Some(sorted)
}

/// Counts the scores at or above `threshold` in a descending slice.
fn count_at_or_above(descending: &[f64], threshold: f64) -> usize {
    descending.partition_point(|&score| score >= threshold)
}

fn operating_point(legitimate: &[f64], attacks: &[f64], threshold: f64) -> OperatingPoint {
    OperatingPoint {
        threshold,
        reauth_rate: count_at_or_above(legitimate, threshold) as f64 / legitimate.len() as f64,
        caught: count_at_or_above(attacks, threshold) as f64 / attacks.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGITIMATE: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
    const ATTACKS: [f64; 4] = [0.95, 0.85, 0.5, 0.05];

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 1e-12
    }

    #[test]
    fn roc_auc_hand_computed() {
        // Pairs (attack, legitimate): 0.35 beats 0.1 only, 0.8 beats both: 3 of 4.
        let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!(close(auc, 0.75), "{auc}");
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.1, 0.9], &[false, true]), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.1], &[false, true]), Some(0.0));
        // Ties across classes count one half: (1 + 0.5 + 1 + 1) / 4.
        let tied = roc_auc(&[0.2, 0.5, 0.5, 0.9], &[false, false, true, true]).unwrap();
        assert!(close(tied, 3.5 / 4.0), "{tied}");
    }

    #[test]
    fn roc_auc_undefined_cases() {
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[], &[]), None);
        assert_eq!(roc_auc(&[0.1, f64::NAN], &[true, false]), None);
        assert_eq!(roc_auc(&[0.1], &[true, false]), None);
    }

    #[test]
    fn roc_curve_hand_computed() {
        let points = roc_curve(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        let rates: Vec<(f64, f64)> = points
            .iter()
            .map(|point| (point.false_positive_rate, point.true_positive_rate))
            .collect();
        assert_eq!(
            rates,
            [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
        );
        assert_eq!(points[0].threshold, f64::INFINITY);
        assert_eq!(points[2].threshold, 0.4);

        let tied = roc_curve(&[0.5, 0.5], &[true, false]).unwrap();
        assert_eq!(tied.len(), 2);
        assert_eq!(tied[1].false_positive_rate, 1.0);
        assert_eq!(tied[1].true_positive_rate, 1.0);
    }

    #[test]
    fn caught_at_reauth_hand_computed() {
        // 20%: the 2nd highest legitimate score, 0.9, flags 0.9 and 1.0; only 0.95 of the
        // attacks reaches it.
        let point = caught_at_reauth(&LEGITIMATE, &ATTACKS, 0.2).unwrap();
        assert_eq!(point.threshold, 0.9);
        assert!(close(point.reauth_rate, 0.2));
        assert!(close(point.caught, 0.25));

        let point = caught_at_reauth(&LEGITIMATE, &ATTACKS, 0.3).unwrap();
        assert_eq!(point.threshold, 0.8);
        assert!(close(point.caught, 0.5));

        let none = caught_at_reauth(&LEGITIMATE, &ATTACKS, 0.0).unwrap();
        assert!(none.threshold > 1.0);
        assert_eq!(none.reauth_rate, 0.0);
        assert_eq!(none.caught, 0.0);

        let all = caught_at_reauth(&LEGITIMATE, &ATTACKS, 1.0).unwrap();
        assert_eq!(all.threshold, 0.1);
        assert_eq!(all.reauth_rate, 1.0);
        assert!(close(all.caught, 0.75));
    }

    #[test]
    fn caught_at_reauth_respects_ties() {
        // Three legitimate logins tie at 0.5, so allowing two moves the threshold above 0.5.
        let point = caught_at_reauth(&[0.5, 0.5, 0.5, 0.1], &[0.6, 0.5], 0.5).unwrap();
        assert!(point.threshold > 0.5);
        assert_eq!(point.reauth_rate, 0.0);
        assert_eq!(point.caught, 0.5);

        // 0.29 * 100 is 28.999999999999996 in floating point, and still allows 29 logins.
        let legitimate: Vec<f64> = (0..100).map(f64::from).collect();
        let point = caught_at_reauth(&legitimate, &[50.0], 0.29).unwrap();
        assert_eq!(point.threshold, 71.0);
        assert!(close(point.reauth_rate, 0.29));
    }

    #[test]
    fn reauth_at_caught_hand_computed() {
        // Half of the attacks: the 2nd highest attack, 0.85, flags 0.9 and 1.0.
        let point = reauth_at_caught(&LEGITIMATE, &ATTACKS, 0.5).unwrap();
        assert_eq!(point.threshold, 0.85);
        assert!(close(point.reauth_rate, 0.2));
        assert!(close(point.caught, 0.5));

        let point = reauth_at_caught(&LEGITIMATE, &ATTACKS, 0.75).unwrap();
        assert_eq!(point.threshold, 0.5);
        assert!(close(point.reauth_rate, 0.6));

        let point = reauth_at_caught(&LEGITIMATE, &ATTACKS, 1.0).unwrap();
        assert_eq!(point.threshold, 0.05);
        assert_eq!(point.reauth_rate, 1.0);

        let point = reauth_at_caught(&LEGITIMATE, &ATTACKS, 0.0).unwrap();
        assert!(point.threshold > 0.95);
        assert_eq!(point.caught, 0.0);
    }

    #[test]
    fn operating_points_undefined_cases() {
        assert_eq!(caught_at_reauth(&[], &ATTACKS, 0.1), None);
        assert_eq!(caught_at_reauth(&LEGITIMATE, &[], 0.1), None);
        assert_eq!(caught_at_reauth(&LEGITIMATE, &ATTACKS, 1.5), None);
        assert_eq!(caught_at_reauth(&LEGITIMATE, &ATTACKS, f64::NAN), None);
        assert_eq!(reauth_at_caught(&LEGITIMATE, &[f64::NAN], 0.5), None);
        assert_eq!(reauth_at_caught(&LEGITIMATE, &ATTACKS, -0.1), None);
    }

    fn login(score: f64, kind: Option<AttackKind>, previous_logins: u32) -> ScoredLogin {
        ScoredLogin {
            score,
            is_attack: kind.is_some(),
            attack_kind: kind,
            previous_logins,
        }
    }

    #[test]
    fn by_attack_kind_groups_attacks() {
        let mut logins: Vec<ScoredLogin> = LEGITIMATE
            .iter()
            .map(|&score| login(score, None, 3))
            .collect();
        logins.push(login(0.95, Some(AttackKind::Naive), 0));
        logins.push(login(0.85, Some(AttackKind::Naive), 0));
        logins.push(login(0.05, Some(AttackKind::Targeted), 0));
        logins.push(ScoredLogin {
            score: 0.5,
            is_attack: true,
            attack_kind: None,
            previous_logins: 0,
        });
        let reports = by_attack_kind(&logins, &[0.2]);
        let kinds: Vec<&str> = reports.iter().map(|report| report.kind.as_str()).collect();
        assert_eq!(kinds, ["all", "naive", "targeted", "unlabelled"]);

        let naive = &reports[1];
        assert_eq!(naive.attacks, 2);
        // 0.95 beats 9 of 10, 0.85 beats 8 of 10: 17 of 20 pairs.
        assert!(close(naive.roc_auc.unwrap(), 0.85));
        assert!(close(naive.caught_at_reauth[0].unwrap().caught, 0.5));

        let targeted = &reports[2];
        assert_eq!(targeted.roc_auc, Some(0.0));
        assert_eq!(targeted.caught_at_reauth[0].unwrap().caught, 0.0);
        assert_eq!(reports[0].attacks, 4);
    }

    #[test]
    fn by_history_buckets_logins() {
        let logins = [
            login(0.9, None, 0),
            login(0.1, None, 0),
            login(0.9, None, 3),
            login(0.2, None, 4),
            login(0.3, None, 4),
            login(0.1, None, 50),
            login(0.7, Some(AttackKind::Targeted), 4),
            login(0.4, Some(AttackKind::Targeted), 50),
        ];
        let buckets = by_history(&logins, &[2, 1, 40, 2], 0.5);
        let labels: Vec<String> = buckets.iter().map(HistoryBucket::label).collect();
        assert_eq!(labels, ["0", "1", "2-39", "40+"]);

        assert_eq!(buckets[0].legitimate, 2);
        assert_eq!(buckets[0].reauth_rate, Some(0.5));
        assert_eq!(buckets[1].legitimate, 0);
        assert_eq!(buckets[1].reauth_rate, None);
        assert_eq!(buckets[2].legitimate, 3);
        assert_eq!(buckets[2].reauthenticated, 1);
        assert!(close(buckets[2].reauth_rate.unwrap(), 1.0 / 3.0));
        assert_eq!(buckets[2].caught, Some(1.0));
        assert_eq!(buckets[3].reauth_rate, Some(0.0));
        assert_eq!(buckets[3].caught, Some(0.0));
        assert_eq!(buckets[0].caught, None);
    }
}
