//! Covariance, symmetric eigendecomposition and the Moore-Penrose whitening used by the
//! Mahalanobis detectors.
//!
//! Keystroke covariance matrices are singular by construction (`DD = H + UD` for every key
//! pair), so the detectors need a pseudo-inverse. A cyclic Jacobi eigendecomposition is exact
//! enough for the 31 x 31 matrices of a password and keeps the crate free of BLAS and LAPACK.

use ndarray::{Array1, Array2, ArrayView1, Axis};
use serde::{Deserialize, Serialize};

/// Sweep limit of the Jacobi iteration. Cyclic Jacobi converges quadratically, and 31 x 31
/// covariance matrices need about 8 sweeps.
const MAX_JACOBI_SWEEPS: usize = 64;

/// Sample mean of each column.
pub(crate) fn column_means(rows: &Array2<f64>) -> Array1<f64> {
    rows.mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(rows.ncols()))
}

/// Sample covariance with the `n - 1` denominator, as R's `cov` computes it. A single row gives
/// the zero matrix.
pub(crate) fn covariance(rows: &Array2<f64>, mean: &Array1<f64>) -> Array2<f64> {
    let centred = rows - mean;
    let denominator = rows.nrows().saturating_sub(1).max(1) as f64;
    centred.t().dot(&centred) / denominator
}

/// Eigenvalues and eigenvectors (as columns, in the same order) of a symmetric matrix, by cyclic
/// Jacobi rotations.
pub(crate) fn symmetric_eigen(matrix: &Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = matrix.nrows();
    let mut a = matrix.clone();
    let mut vectors = Array2::<f64>::eye(n);
    let scale: f64 = a.iter().map(|x| x * x).sum();
    for _ in 0..MAX_JACOBI_SWEEPS {
        let mut off_diagonal = 0.0;
        for p in 0..n {
            for q in (p + 1)..n {
                off_diagonal += a[[p, q]] * a[[p, q]];
            }
        }
        if off_diagonal <= scale * 1e-30 || off_diagonal == 0.0 {
            break;
        }
        for p in 0..n {
            for q in (p + 1)..n {
                let apq = a[[p, q]];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[[k, p]];
                    let akq = a[[k, q]];
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[[p, k]];
                    let aqk = a[[q, k]];
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                a[[p, q]] = 0.0;
                a[[q, p]] = 0.0;
                for k in 0..n {
                    let vkp = vectors[[k, p]];
                    let vkq = vectors[[k, q]];
                    vectors[[k, p]] = c * vkp - s * vkq;
                    vectors[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    (a.diag().to_owned(), vectors)
}

/// Linear map `P` with `P^T P = S^+`, the Moore-Penrose inverse of a covariance matrix `S`, so
/// that the squared Mahalanobis distance of `d` is `|P d|^2`.
///
/// Eigenvalues at or below `sqrt(machine epsilon)` times the largest are treated as zero, the
/// tolerance of R's `MASS::ginv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Whitening {
    /// Row-major `rank x dimension` matrix.
    rows: Vec<f64>,
    dimension: usize,
}

impl Whitening {
    pub(crate) fn from_covariance(covariance: &Array2<f64>) -> Self {
        let dimension = covariance.nrows();
        let (values, vectors) = symmetric_eigen(covariance);
        let largest = values.iter().copied().fold(0.0_f64, f64::max);
        let tolerance = f64::EPSILON.sqrt() * largest;
        let mut rows = Vec::new();
        for (k, &value) in values.iter().enumerate() {
            if value > tolerance && value > 0.0 {
                let factor = 1.0 / value.sqrt();
                rows.extend(vectors.column(k).iter().map(|v| v * factor));
            }
        }
        Self { rows, dimension }
    }

    /// Number of features.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Rank of the covariance, which is the number of whitened coordinates.
    pub fn rank(&self) -> usize {
        self.rows.len().checked_div(self.dimension).unwrap_or(0)
    }

    /// Projects `x - centre` into whitened coordinates.
    pub(crate) fn project(&self, x: &[f64], centre: &[f64]) -> Vec<f64> {
        self.rows
            .chunks_exact(self.dimension)
            .map(|row| {
                row.iter()
                    .zip(x.iter().zip(centre))
                    .map(|(w, (a, b))| w * (a - b))
                    .sum()
            })
            .collect()
    }

    /// Projects `x` (no centring).
    pub(crate) fn project_point(&self, x: ArrayView1<f64>) -> Vec<f64> {
        self.rows
            .chunks_exact(self.dimension)
            .map(|row| row.iter().zip(x.iter()).map(|(w, a)| w * a).sum())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn eigen_reconstructs_matrix() {
        let m = array![[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let (values, vectors) = symmetric_eigen(&m);
        let rebuilt = vectors.dot(&Array2::from_diag(&values)).dot(&vectors.t());
        for (a, b) in rebuilt.iter().zip(m.iter()) {
            assert!((a - b).abs() < 1e-12, "{a} != {b}");
        }
    }

    #[test]
    fn whitening_of_singular_covariance_is_pseudo_inverse() {
        // Rank 1: S = u u^T with u = (1, 2), so S^+ = u u^T / |u|^4.
        let s = array![[1.0, 2.0], [2.0, 4.0]];
        let w = Whitening::from_covariance(&s);
        assert_eq!(w.rank(), 1);
        let d = [3.0, -1.0];
        let projected = w.project(&d, &[0.0, 0.0]);
        let squared: f64 = projected.iter().map(|v| v * v).sum();
        // d^T S^+ d = (u . d)^2 / |u|^4 = (3 - 2)^2 / 25.
        assert!((squared - 1.0 / 25.0).abs() < 1e-12, "{squared}");
    }

    #[test]
    fn covariance_uses_n_minus_one() {
        let rows = array![[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]];
        let mean = column_means(&rows);
        let cov = covariance(&rows, &mean);
        assert!((cov[[0, 0]] - 4.0).abs() < 1e-12);
        assert!((cov[[0, 1]] - 2.0).abs() < 1e-12);
        assert!((cov[[1, 1]] - 4.0).abs() < 1e-12);
    }
}
