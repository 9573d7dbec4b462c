//! The little dense linear algebra the Fréchet distance needs: a symmetric eigendecomposition
//! (cyclic Jacobi rotations: slow for big matrices, but exact to rounding and dependency-free)
//! and the square root of a positive semi-definite matrix built from it.
//!
//! Matrices are row-major `n × n` slices.

/// `a · b` for `n × n` matrices.
pub fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..n {
                out[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    out
}

/// Eigenvalues and eigenvectors of a symmetric matrix: returns `(values, vectors)` where column
/// `k` of the row-major `vectors` belongs to `values[k]`, so `a = V diag(values) Vᵀ`.
/// Only the symmetric part of `a` is used.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "symmetric_eigen: matrix is not n × n");
    let mut m: Vec<f64> = (0..n * n)
        .map(|idx| {
            let (i, j) = (idx / n, idx % n);
            0.5 * (a[i * n + j] + a[j * n + i])
        })
        .collect();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    if scale == 0.0 {
        return (vec![0.0; n], v);
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| m[i * n + j] * m[i * n + j]).sum::<f64>().sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                // Rotation angle that zeroes m[p][q] (Golub & Van Loan, Algorithm 8.4.1).
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // m ← Jᵀ m J, applied to rows then columns p and q.
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

/// The symmetric positive semi-definite square root `V diag(√max(λ, 0)) Vᵀ`; eigenvalues that
/// rounding pushed below zero count as zero.
pub fn sqrt_psd(a: &[f64], n: usize) -> Vec<f64> {
    let (values, v) = symmetric_eigen(a, n);
    let roots: Vec<f64> = values.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|k| v[i * n + k] * roots[k] * v[j * n + k]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_spd(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let b: Vec<f64> = (0..n * n).map(|_| next()).collect();
        let bt: Vec<f64> = (0..n * n).map(|idx| b[(idx % n) * n + idx / n]).collect();
        matmul(&b, &bt, n)
    }

    #[test]
    fn eigen_reconstructs_the_matrix() {
        let n = 9;
        let a = random_spd(n, 3);
        let (values, v) = symmetric_eigen(&a, n);
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n).map(|k| v[i * n + k] * values[k] * v[j * n + k]).sum();
                assert!((r - a[i * n + j]).abs() < 1e-12, "{i},{j}: {r} vs {}", a[i * n + j]);
            }
        }
        // Eigenvectors are orthonormal.
        for p in 0..n {
            for q in 0..n {
                let dot: f64 = (0..n).map(|k| v[k * n + p] * v[k * n + q]).sum();
                assert!((dot - if p == q { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn square_root_squares_back() {
        let n = 7;
        let a = random_spd(n, 11);
        let s = sqrt_psd(&a, n);
        let ss = matmul(&s, &s, n);
        for (x, y) in ss.iter().zip(&a) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn known_two_by_two() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut values, _) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-14 && (values[1] - 3.0).abs() < 1e-14);
    }
}
