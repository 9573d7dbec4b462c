//! The Fréchet distance between two Gaussians (the formula behind FID, Heusel et al. 2017):
//!
//!   d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}).
//!
//! Σ1 Σ2 is not symmetric, but it has the eigenvalues of the symmetric Lᵀ Σ2 L for any
//! factor Σ1 = L Lᵀ, so Tr((Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}) = Σ √λ_k(Lᵀ Σ2 L). L is a pivoted
//! Cholesky factor (of the numerical rank of Σ1, which is below the dimension whenever there
//! are fewer samples than features), and only eigenvalues are computed: O(d³) with small
//! constants, seconds at d = 2,048 (BENCHMARKS.md).

use crate::linalg::{congruence, pivoted_cholesky, symmetric_eigenvalues};
use crate::MetricError;
use rayon::prelude::*;

/// Pivots of Σ1 below this share of its largest variance count as zero (its numerical rank).
const RANK_TOLERANCE: f64 = 1e-13;

/// A Gaussian fitted to feature vectors: mean and covariance (row-major `dim × dim`).
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    pub dim: usize,
    pub mean: Vec<f64>,
    pub cov: Vec<f64>,
}

impl Gaussian {
    /// Fits mean and the unbiased (n − 1) covariance to `features`, `n` rows of `dim` values.
    pub fn fit(features: &[f32], dim: usize) -> Result<Gaussian, MetricError> {
        if dim == 0 || features.len() % dim != 0 {
            return Err(MetricError::Invalid(format!(
                "{} feature values do not split into rows of {dim}",
                features.len()
            )));
        }
        let n = features.len() / dim;
        if n < 2 {
            return Err(MetricError::Invalid(format!(
                "a covariance needs at least 2 samples, got {n}"
            )));
        }
        let mut mean = vec![0.0; dim];
        for row in features.chunks(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        // Centred features by feature (dim rows of n samples), so that each covariance entry
        // is a dot product of two contiguous rows.
        let mut centred = vec![0.0; dim * n];
        for (s, row) in features.chunks(dim).enumerate() {
            for k in 0..dim {
                centred[k * n + s] = row[k] as f64 - mean[k];
            }
        }
        let denom = (n - 1) as f64;
        let mut cov: Vec<f64> = (0..dim)
            .into_par_iter()
            .flat_map_iter(|i| {
                let ci = &centred[i * n..(i + 1) * n];
                let centred = &centred;
                (0..dim).map(move |j| {
                    if j < i {
                        0.0
                    } else {
                        crate::linalg::dot(ci, &centred[j * n..(j + 1) * n]) / denom
                    }
                })
            })
            .collect();
        for i in 0..dim {
            for j in 0..i {
                cov[i * dim + j] = cov[j * dim + i];
            }
        }
        Ok(Gaussian { dim, mean, cov })
    }
}

/// The Fréchet distance d² between two Gaussians of the same dimension (≥ 0 up to rounding;
/// tiny negative results from rounding are clamped to 0).
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64, MetricError> {
    if a.dim != b.dim {
        return Err(MetricError::Invalid(format!("dimensions differ: {} vs {}", a.dim, b.dim)));
    }
    let n = a.dim;
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
    let trace = |m: &[f64]| (0..n).map(|i| m[i * n + i]).sum::<f64>();
    let (lt, rank) = pivoted_cholesky(&a.cov, n, RANK_TOLERANCE);
    let values = symmetric_eigenvalues(&congruence(&lt, rank, &b.cov, n), rank);
    let trace_root: f64 = values.iter().map(|&l| l.max(0.0).sqrt()).sum();
    Ok((mean_term + trace(&a.cov) + trace(&b.cov) - 2.0 * trace_root).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg_features(n: usize, dim: usize, seed: u64, mix: bool) -> Vec<f32> {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
        };
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let row: Vec<f32> = (0..dim).map(|_| next()).collect();
            for k in 0..dim {
                // Mixing makes the covariance full rather than near-diagonal.
                out.push(if mix {
                    row[k] + 0.7 * row[(k + 1) % dim] + 0.1 * k as f32
                } else {
                    row[k]
                });
            }
        }
        out
    }

    #[test]
    fn identical_sets_are_at_distance_zero() {
        let g = Gaussian::fit(&lcg_features(200, 6, 1, true), 6).unwrap();
        assert!(frechet_distance(&g, &g).unwrap() < 1e-10);
    }

    #[test]
    fn diagonal_gaussians_match_the_closed_form() {
        // For diagonal covariances d² = ‖μ1 − μ2‖² + Σ (σ1_k − σ2_k)².
        let n = 4;
        let diag = |v: &[f64]| {
            let mut m = vec![0.0; n * n];
            (0..n).for_each(|i| m[i * n + i] = v[i]);
            m
        };
        let (v1, v2) = ([1.0, 4.0, 0.25, 2.0], [9.0, 1.0, 0.25, 0.5]);
        let a = Gaussian { dim: n, mean: vec![0.0, 1.0, -2.0, 0.5], cov: diag(&v1) };
        let b = Gaussian { dim: n, mean: vec![1.0, 1.0, 0.0, 0.0], cov: diag(&v2) };
        let mean_term = 1.0 + 0.0 + 4.0 + 0.25;
        let cov_term: f64 =
            v1.iter().zip(&v2).map(|(x, y): (&f64, &f64)| (x.sqrt() - y.sqrt()).powi(2)).sum();
        let d = frechet_distance(&a, &b).unwrap();
        assert!((d - (mean_term + cov_term)).abs() < 1e-12, "{d}");
    }

    #[test]
    fn symmetric_in_its_arguments() {
        let a = Gaussian::fit(&lcg_features(300, 8, 2, true), 8).unwrap();
        let b = Gaussian::fit(&lcg_features(300, 8, 3, false), 8).unwrap();
        let (ab, ba) = (frechet_distance(&a, &b).unwrap(), frechet_distance(&b, &a).unwrap());
        assert!(ab > 0.1 && (ab - ba).abs() < 1e-10 * ab, "{ab} vs {ba}");
    }

    #[test]
    fn dense_commuting_gaussians_match_the_closed_form_at_2048_dimensions() {
        // Σ1 = Q D1 Qᵀ and Σ2 = Q D2 Qᵀ with one dense orthogonal Q commute, so
        // (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2} = Q (D1 D2)^{1/2} Qᵀ and
        // d² = ‖μ1 − μ2‖² + Σ_k (√d1_k − √d2_k)². Σ1 has rank 1,500 of 2,048, as when there
        // are fewer samples than features.
        use crate::linalg::tests::{lcg, with_eigenvalues};
        let n = 2048;
        let mut next = lcg(42);
        let d1: Vec<f64> =
            (0..n).map(|k| if k < 1500 { 5.0 * (next() + 0.5) } else { 0.0 }).collect();
        let d2: Vec<f64> = (0..n).map(|_| 3.0 * (next() + 0.5)).collect();
        let (m1, m2): (Vec<f64>, Vec<f64>) = (0..n).map(|_| (next(), next())).unzip();
        let a = Gaussian { dim: n, mean: m1.clone(), cov: with_eigenvalues(&d1, 7) };
        let b = Gaussian { dim: n, mean: m2.clone(), cov: with_eigenvalues(&d2, 7) };
        let want: f64 = m1.iter().zip(&m2).map(|(x, y)| (x - y).powi(2)).sum::<f64>()
            + d1.iter().zip(&d2).map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2)).sum::<f64>();
        let started = std::time::Instant::now();
        let got = frechet_distance(&a, &b).unwrap();
        eprintln!(
            "d = 2048: Fréchet distance {got:.9} (closed form {want:.9}) in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
        // And in the other order (the factored covariance of full rank).
        let started = std::time::Instant::now();
        let back = frechet_distance(&b, &a).unwrap();
        eprintln!(
            "d = 2048, first covariance of full rank: {back:.9} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        assert!((back - want).abs() < 1e-6 * want, "{back} vs {want}");
    }

    #[test]
    fn fit_matches_the_textbook_covariance() {
        // Rows (1, 2), (3, 6), (5, 7): means 3 and 5; cov = [[4, 5], [5, 7]] with n − 1.
        let g = Gaussian::fit(&[1.0, 2.0, 3.0, 6.0, 5.0, 7.0], 2).unwrap();
        assert_eq!(g.mean, vec![3.0, 5.0]);
        assert_eq!(g.cov, vec![4.0, 5.0, 5.0, 7.0]);
        assert!(Gaussian::fit(&[1.0, 2.0], 2).is_err());
        assert!(Gaussian::fit(&[1.0, 2.0, 3.0], 2).is_err());
    }
}
