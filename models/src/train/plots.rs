//! Evaluation plots as SVG files, drawn with plotters.
//!
//! SVG text is laid out with plotters' built-in size estimate and rendered by the viewer,
//! so no font files are needed on the machine that draws.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::TrainError;
use super::evaluate::{EvaluationReport, EvaluationRow, HistoryReauth, REPORTED_KINDS};
use super::metrics::{
    HistoryBucket, RocPoint, ScoredLogin, by_history, reauth_at_caught, roc_curve,
};
use super::read::AttackKind;

const SIZE: (u32, u32) = (900, 600);
/// Reads one rate of a history bucket.
type BucketRate = fn(&HistoryBucket) -> Option<f64>;
/// ROC points closer than this to the last drawn point, on both axes, are skipped, which
/// keeps the SVG small for millions of logins without a visible change.
const ROC_RESOLUTION: f64 = 1e-3;

/// Draws one ROC curve per `(name, points)` pair, with the chance diagonal.
pub fn plot_roc_curves(path: &Path, curves: &[(String, Vec<RocPoint>)]) -> Result<(), TrainError> {
    plot_roc_curves_titled(path, "ROC curves", curves)
}

/// Draws one ROC curve per `(name, points)` pair, with the chance diagonal, under `title`.
pub fn plot_roc_curves_titled(
    path: &Path,
    title: &str,
    curves: &[(String, Vec<RocPoint>)],
) -> Result<(), TrainError> {
    let error = plot_error(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(&error)?;
    chart
        .configure_mesh()
        .x_desc("legitimate logins re-authenticated (false positive rate)")
        .y_desc("attacks caught (true positive rate)")
        .draw()
        .map_err(&error)?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
        .map_err(&error)?;
    for (index, (name, points)) in curves.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(thin_roc(points), color.stroke_width(2)))
            .map_err(&error)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(&error)?;
    root.present().map_err(&error)
}

/// Draws the score distribution of legitimate logins and of each attack kind as the share of
/// the group's logins in each of `bins` equal-width score bins.
pub fn plot_score_distributions(
    path: &Path,
    logins: &[ScoredLogin],
    bins: usize,
) -> Result<(), TrainError> {
    plot_score_distributions_titled(path, "Score distributions", logins, bins)
}

/// Draws the score distributions of [`plot_score_distributions`] under `title`.
pub fn plot_score_distributions_titled(
    path: &Path,
    title: &str,
    logins: &[ScoredLogin],
    bins: usize,
) -> Result<(), TrainError> {
    let error = plot_error(path);
    let bins = bins.max(1);
    let finite = || {
        logins
            .iter()
            .map(|login| login.score)
            .filter(|s| s.is_finite())
    };
    let low = finite().fold(f64::INFINITY, f64::min);
    let high = finite().fold(f64::NEG_INFINITY, f64::max);
    let (low, high) = if low < high {
        (low, high)
    } else if low.is_finite() {
        (low - 0.5, low + 0.5)
    } else {
        (0.0, 1.0)
    };
    let width = (high - low) / bins as f64;

    let mut groups: Vec<(String, Vec<f64>)> = vec![("legitimate".to_owned(), vec![0.0; bins])];
    for login in logins.iter().filter(|login| login.score.is_finite()) {
        let name = match (login.is_attack, login.attack_kind) {
            (false, _) => "legitimate",
            (true, Some(kind)) => kind.as_str(),
            (true, None) => "unlabelled",
        };
        let group = match groups.iter().position(|(existing, _)| existing == name) {
            Some(index) => index,
            None => {
                groups.push((name.to_owned(), vec![0.0; bins]));
                groups.len() - 1
            }
        };
        let bin = (((login.score - low) / width) as usize).min(bins - 1);
        groups[group].1[bin] += 1.0;
    }
    for (_, counts) in &mut groups {
        let total: f64 = counts.iter().sum();
        if total > 0.0 {
            counts.iter_mut().for_each(|count| *count /= total);
        }
    }
    let peak = groups
        .iter()
        .flat_map(|(_, shares)| shares.iter().copied())
        .fold(0.0, f64::max)
        .max(0.01);

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(low..high, 0.0..peak * 1.05)
        .map_err(&error)?;
    chart
        .configure_mesh()
        .x_desc("score")
        .y_desc("share of the group's logins")
        .draw()
        .map_err(&error)?;
    for (index, (name, shares)) in groups.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let points = shares
            .iter()
            .enumerate()
            .map(|(bin, share)| (low + (bin as f64 + 0.5) * width, *share));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(&error)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(&error)?;
    root.present().map_err(&error)
}

/// Draws the re-authentication rate of legitimate logins and the share of attacks caught
/// against the user's number of previous logins, one point per bucket.
pub fn plot_reauth_by_history(path: &Path, buckets: &[HistoryBucket]) -> Result<(), TrainError> {
    let labels: Vec<String> = buckets.iter().map(HistoryBucket::label).collect();
    let series: [(&str, BucketRate); 2] = [
        ("legitimate logins re-authenticated", |bucket| {
            bucket.reauth_rate
        }),
        ("attacks caught", |bucket| bucket.caught),
    ];
    let series: Vec<(String, Vec<Option<f64>>)> = series
        .into_iter()
        .map(|(name, value)| (name.to_owned(), buckets.iter().map(value).collect()))
        .collect();
    plot_rates_by_history(path, "Re-authentication by history size", &labels, &series)
}

/// Draws rates against history-size buckets, one point per bucket and one line per
/// `(name, rates)` pair. `labels` names the buckets, and `rates[i]` belongs to `labels[i]`.
/// A `None` rate leaves its point out.
pub fn plot_rates_by_history(
    path: &Path,
    title: &str,
    labels: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> Result<(), TrainError> {
    let error = plot_error(path);
    let last = (labels.len().max(2) - 1) as i32;

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0..last, 0f64..1f64)
        .map_err(&error)?;
    chart
        .configure_mesh()
        .x_labels(labels.len().max(2))
        .x_label_formatter(&|index| {
            labels
                .get(usize::try_from(*index).unwrap_or(usize::MAX))
                .cloned()
                .unwrap_or_default()
        })
        .x_desc("previous logins of the user")
        .y_desc("share of logins")
        .draw()
        .map_err(&error)?;

    for (index, (name, rates)) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let points: Vec<(i32, f64)> = rates
            .iter()
            .enumerate()
            .filter_map(|(position, rate)| Some((position as i32, (*rate)?)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(&error)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|point| Circle::new(point, 4, color.filled())),
            )
            .map_err(&error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(&error)?;
    root.present().map_err(&error)
}

/// Writes `roc.svg` (all attacks and each kind), `scores.svg` and `reauth-by-history.svg`
/// into `folder`. The history plot uses the threshold that catches at least `caught` of all
/// attacks. Returns the paths written.
pub fn write_evaluation_plots(
    folder: &Path,
    logins: &[ScoredLogin],
    bucket_starts: &[u32],
    caught: f64,
) -> Result<Vec<PathBuf>, TrainError> {
    let scores: Vec<f64> = logins.iter().map(|login| login.score).collect();
    let labels: Vec<bool> = logins.iter().map(|login| login.is_attack).collect();
    let legitimate: Vec<f64> = logins
        .iter()
        .filter(|login| !login.is_attack)
        .map(|login| login.score)
        .collect();

    let mut curves = Vec::new();
    if let Some(points) = roc_curve(&scores, &labels) {
        curves.push(("all attacks".to_owned(), points));
    }
    for kind in AttackKind::ALL {
        let (kind_scores, kind_labels): (Vec<f64>, Vec<bool>) = logins
            .iter()
            .filter(|login| !login.is_attack || login.attack_kind == Some(kind))
            .map(|login| (login.score, login.is_attack))
            .unzip();
        if let Some(points) = roc_curve(&kind_scores, &kind_labels) {
            curves.push((kind.as_str().to_owned(), points));
        }
    }
    let attacks: Vec<f64> = logins
        .iter()
        .filter(|login| login.is_attack)
        .map(|login| login.score)
        .collect();
    // Without attacks or legitimate logins there is no threshold, so nothing is flagged.
    let threshold = reauth_at_caught(&legitimate, &attacks, caught)
        .map_or(f64::INFINITY, |point| point.threshold);

    let roc = folder.join("roc.svg");
    plot_roc_curves(&roc, &curves)?;
    let distributions = folder.join("scores.svg");
    // About sqrt(n) bins, between 10 and 50, so a small evaluation is not all spikes.
    let bins = ((logins.len() as f64).sqrt() as usize).clamp(10, 50);
    plot_score_distributions(&distributions, logins, bins)?;
    let history = folder.join("reauth-by-history.svg");
    plot_reauth_by_history(&history, &by_history(logins, bucket_starts, threshold))?;
    Ok(vec![roc, distributions, history])
}

/// Writes the plots of an evaluation that compares the trained model with the baseline
/// weights into `folder`, which must exist:
///
/// - `roc.svg`: all attacks, and `roc-<kind>.svg` for each of the [`REPORTED_KINDS`], each
///   with the model's and the baseline's curve. A kind without rows gets a chart without
///   curves.
/// - `scores.svg` and `scores-baseline.svg`: risk distributions per group.
/// - `reauth-by-history.svg`: the by-history figures of `report`, at the thresholds that
///   catch 99% of targeted attacks.
///
/// Returns the paths written.
pub fn write_comparison_plots(
    folder: &Path,
    rows: &[EvaluationRow],
    report: &EvaluationReport,
) -> Result<Vec<PathBuf>, TrainError> {
    let scored = |risk: fn(&EvaluationRow) -> f64| -> Vec<ScoredLogin> {
        rows.iter()
            .map(|row| ScoredLogin {
                score: risk(row),
                is_attack: row.is_attack,
                attack_kind: row.kind,
                previous_logins: u32::try_from(row.previous_logins).unwrap_or(u32::MAX),
            })
            .collect()
    };
    let model = scored(|row| row.risk);
    let baseline = scored(|row| row.baseline_risk);
    let mut paths = Vec::new();

    let groups = std::iter::once((None, "all attacks".to_owned(), "roc.svg".to_owned())).chain(
        REPORTED_KINDS.iter().map(|kind| {
            (
                Some(*kind),
                format!("{kind} attacks"),
                format!("roc-{kind}.svg"),
            )
        }),
    );
    for (kind, name, file) in groups {
        let mut curves = Vec::new();
        for (scorer, logins) in [("model", &model), ("baseline", &baseline)] {
            let (scores, labels): (Vec<f64>, Vec<bool>) = logins
                .iter()
                .filter(|login| {
                    !login.is_attack || kind.is_none_or(|kind| login.attack_kind == Some(kind))
                })
                .map(|login| (login.score, login.is_attack))
                .unzip();
            if let Some(points) = roc_curve(&scores, &labels) {
                curves.push((scorer.to_owned(), points));
            }
        }
        let title = if curves.is_empty() {
            format!("ROC curves: {name} (no rows)")
        } else {
            format!("ROC curves: {name}")
        };
        let path = folder.join(file);
        plot_roc_curves_titled(&path, &title, &curves)?;
        paths.push(path);
    }

    // About sqrt(n) bins, between 10 and 50, so a small evaluation is not all spikes.
    let bins = ((rows.len() as f64).sqrt() as usize).clamp(10, 50);
    for (title, file, logins) in [
        ("Risk distributions: model", "scores.svg", &model),
        (
            "Risk distributions: baseline",
            "scores-baseline.svg",
            &baseline,
        ),
    ] {
        let path = folder.join(file);
        plot_score_distributions_titled(&path, title, logins, bins)?;
        paths.push(path);
    }

    let buckets = &report.reauth_at_caught_99pct_targeted_by_history.buckets;
    let labels: Vec<String> = buckets
        .iter()
        .map(|bucket| bucket.previous_logins.clone())
        .collect();
    let rates = |rate: fn(&HistoryReauth) -> Option<f64>| -> Vec<Option<f64>> {
        buckets.iter().map(rate).collect()
    };
    let series = [
        (
            "legitimate stepped up, model".to_owned(),
            rates(|bucket| bucket.reauth_rate),
        ),
        (
            "legitimate stepped up, baseline".to_owned(),
            rates(|bucket| bucket.baseline_reauth_rate),
        ),
        (
            "targeted caught, model".to_owned(),
            rates(|bucket| bucket.caught),
        ),
        (
            "targeted caught, baseline".to_owned(),
            rates(|bucket| bucket.baseline_caught),
        ),
    ];
    let path = folder.join("reauth-by-history.svg");
    plot_rates_by_history(
        &path,
        "Stepped up when 99% of targeted attacks are caught",
        &labels,
        &series,
    )?;
    paths.push(path);
    Ok(paths)
}

fn plot_error<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> TrainError + '_ {
    move |error| TrainError::Plot {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// Keeps the first and last points and every point at least [`ROC_RESOLUTION`] away from the
/// last kept one on either axis.
fn thin_roc(points: &[RocPoint]) -> Vec<(f64, f64)> {
    let mut kept: Vec<(f64, f64)> = Vec::new();
    for (index, point) in points.iter().enumerate() {
        let xy = (point.false_positive_rate, point.true_positive_rate);
        let far = kept.last().is_none_or(|last| {
            (xy.0 - last.0).abs() >= ROC_RESOLUTION || (xy.1 - last.1).abs() >= ROC_RESOLUTION
        });
        if far || index + 1 == points.len() {
            kept.push(xy);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins() -> Vec<ScoredLogin> {
        let mut logins = Vec::new();
        for index in 0..200u32 {
            logins.push(ScoredLogin {
                score: f64::from(index % 50) / 100.0,
                is_attack: false,
                attack_kind: None,
                previous_logins: index % 45,
            });
        }
        for (index, kind) in [AttackKind::Naive, AttackKind::Targeted, AttackKind::Vpn]
            .into_iter()
            .cycle()
            .take(30)
            .enumerate()
        {
            logins.push(ScoredLogin {
                score: 0.3 + index as f64 / 50.0,
                is_attack: true,
                attack_kind: Some(kind),
                previous_logins: index as u32,
            });
        }
        logins
    }

    fn assert_svg(path: &Path) {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.len() > 1_000,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        assert!(text.contains("<svg"), "{}", path.display());
        assert!(text.trim_end().ends_with("</svg>"), "{}", path.display());
    }

    #[test]
    fn evaluation_plots_are_svg() {
        let dir = tempfile::tempdir().unwrap();
        let paths =
            write_evaluation_plots(dir.path(), &logins(), &[0, 1, 2, 5, 10, 20, 40], 0.9).unwrap();
        assert_eq!(paths.len(), 3);
        for path in &paths {
            assert_svg(path);
        }
        let roc = std::fs::read_to_string(&paths[0]).unwrap();
        for name in ["all attacks", "naive", "targeted", "vpn"] {
            assert!(roc.contains(name), "legend misses {name}");
        }
        let history = std::fs::read_to_string(&paths[2]).unwrap();
        assert!(history.contains("2-4"));
        assert!(history.contains("40+"));
    }

    #[test]
    fn comparison_plots_are_svg() {
        let rows: Vec<EvaluationRow> = logins()
            .into_iter()
            .map(|login| EvaluationRow {
                risk: login.score,
                baseline_risk: 1.0 - login.score,
                is_attack: login.is_attack,
                kind: login.attack_kind,
                previous_logins: u64::from(login.previous_logins),
                policy_step_up: false,
            })
            .collect();
        let report = crate::train::evaluate(&rows);

        let dir = tempfile::tempdir().unwrap();
        let paths = write_comparison_plots(dir.path(), &rows, &report).unwrap();
        let names: Vec<String> = paths
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "roc.svg",
                "roc-naive.svg",
                "roc-vpn.svg",
                "roc-targeted.svg",
                "roc-stuffing.svg",
                "roc-spray.svg",
                "scores.svg",
                "scores-baseline.svg",
                "reauth-by-history.svg",
            ]
        );
        for path in &paths {
            assert_svg(path);
        }

        let naive = std::fs::read_to_string(&paths[1]).unwrap();
        assert!(naive.contains("model"));
        assert!(naive.contains("baseline"));
        let stuffing = std::fs::read_to_string(&paths[4]).unwrap();
        assert!(stuffing.contains("no rows"));
        let history = std::fs::read_to_string(&paths[8]).unwrap();
        assert!(history.contains("50+"));
        assert!(history.contains("targeted caught, baseline"));
    }

    #[test]
    fn plots_handle_empty_input() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_evaluation_plots(dir.path(), &[], &[0, 10], 0.99).unwrap();
        for path in &paths {
            assert_svg(path);
        }
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = plot_roc_curves(&dir.path().join("missing/roc.svg"), &[]).unwrap_err();
        assert!(matches!(error, TrainError::Plot { .. }), "{error}");
    }

    #[test]
    fn thin_roc_keeps_ends() {
        let points: Vec<RocPoint> = (0..=10_000)
            .map(|step| {
                let rate = f64::from(step) / 10_000.0;
                RocPoint {
                    threshold: 1.0 - rate,
                    false_positive_rate: rate,
                    true_positive_rate: rate,
                }
            })
            .collect();
        let kept = thin_roc(&points);
        assert!(kept.len() <= 1_002, "{}", kept.len());
        assert_eq!(kept.first(), Some(&(0.0, 0.0)));
        assert_eq!(kept.last(), Some(&(1.0, 1.0)));
    }
}
