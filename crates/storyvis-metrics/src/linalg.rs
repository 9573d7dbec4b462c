//! The dense linear algebra the Fréchet distance needs, sized for 2,048-dimensional features:
//!
//! * a pivoted Cholesky factor of a positive semi-definite matrix (A = L Lᵀ, L of the
//!   numerical rank r; Golub & Van Loan, "Matrix Computations", 4th ed., §4.2.8);
//! * the congruence Lᵀ B L;
//! * the eigenvalues of a symmetric matrix: Householder reduction to tridiagonal form (§8.3.1)
//!   and bisection on Sturm sequences (§8.4.1), which gives every eigenvalue to an absolute
//!   accuracy of a few ulps of ‖A‖ without eigenvectors.
//!
//! Matrices are row-major `n × n` slices; the O(n³) loops run on rayon's threads.

use rayon::prelude::*;

/// A pivoted Cholesky factor of the symmetric positive semi-definite `a` (`n × n`): returns
/// `(lt, r)` where `lt` holds the r columns of L as rows (`r × n`, in `a`'s own index order),
/// so that `a ≈ Σ_k lt[k]ᵀ lt[k]`. It stops when every remaining pivot is below `rel_tol`
/// times the largest diagonal entry: r is the numerical rank.
pub fn pivoted_cholesky(a: &[f64], n: usize, rel_tol: f64) -> (Vec<f64>, usize) {
    assert_eq!(a.len(), n * n, "pivoted_cholesky: matrix is not n × n");
    let mut residual: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    let largest = residual.iter().copied().fold(0.0, f64::max);
    // L row-major with room for n columns: row i holds l_0[i], l_1[i], … contiguously.
    let mut l = vec![0.0; n * n];
    let mut used = vec![false; n];
    let mut r = 0;
    while r < n {
        let Some((p, &pivot)) = residual
            .iter()
            .enumerate()
            .filter(|(i, _)| !used[*i])
            .max_by(|x, y| x.1.total_cmp(y.1))
        else {
            break;
        };
        if pivot.is_nan() || pivot <= rel_tol * largest || pivot <= 0.0 {
            break;
        }
        let root = pivot.sqrt();
        // Column r of L: (A[:, p] − Σ_{k<r} l_k l_k[p]) / √pivot; zero at earlier pivots.
        let lp = l[p * n..p * n + r].to_vec();
        let col: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|i| {
                if used[i] {
                    0.0
                } else if i == p {
                    root
                } else {
                    (a[i * n + p] - dot(&l[i * n..i * n + r], &lp)) / root
                }
            })
            .collect();
        used[p] = true;
        for (i, c) in col.into_iter().enumerate() {
            l[i * n + r] = c;
            residual[i] -= c * c;
        }
        r += 1;
    }
    let lt = (0..r).flat_map(|k| (0..n).map(|i| l[i * n + k]).collect::<Vec<_>>()).collect();
    (lt, r)
}

/// `lt · b · ltᵀ` for `lt` of `r × n` and the symmetric `b` of `n × n`: an `r × r` symmetric
/// matrix.
pub fn congruence(lt: &[f64], r: usize, b: &[f64], n: usize) -> Vec<f64> {
    assert!(lt.len() == r * n && b.len() == n * n, "congruence: shapes");
    // C = lt · b, row by row (row i = Σ_k lt[i, k] b[k, :]).
    let c: Vec<f64> = lt
        .par_chunks(n)
        .flat_map_iter(|row| {
            let mut out = vec![0.0; n];
            for (k, &l) in row.iter().enumerate() {
                if l != 0.0 {
                    out.iter_mut().zip(&b[k * n..(k + 1) * n]).for_each(|(o, &x)| *o += l * x);
                }
            }
            out
        })
        .collect();
    // M = C · ltᵀ: M[i, j] = ⟨C[i, :], lt[j, :]⟩, the upper triangle, then mirrored.
    let mut m: Vec<f64> = c
        .par_chunks(n)
        .enumerate()
        .flat_map_iter(|(i, ci)| {
            lt.chunks(n).enumerate().map(move |(j, lj)| if j < i { 0.0 } else { dot(ci, lj) })
        })
        .collect();
    for i in 0..r {
        for j in 0..i {
            m[i * r + j] = m[j * r + i];
        }
    }
    m
}

/// ⟨a, b⟩ over the shorter length, in four interleaved partial sums (which the compiler can
/// keep in one SIMD register; a single running sum is a serial chain of additions).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Replaces `m` by (m + mᵀ) / 2.
fn symmetrise(m: &mut [f64], n: usize) {
    for i in 0..n {
        for j in i + 1..n {
            let v = 0.5 * (m[i * n + j] + m[j * n + i]);
            m[i * n + j] = v;
            m[j * n + i] = v;
        }
    }
}

/// Householder reduction of the symmetric `a` to a tridiagonal matrix with the same
/// eigenvalues: returns its diagonal (n) and off-diagonal (n − 1). Only the symmetric part of
/// `a` is used.
pub fn tridiagonalize(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "tridiagonalize: matrix is not n × n");
    let mut m = a.to_vec();
    symmetrise(&mut m, n);
    let mut off = Vec::with_capacity(n.saturating_sub(1));
    for k in 0..n.saturating_sub(1) {
        // The reflector H = I − β v vᵀ that maps x = m[k+1.., k] onto −sign(x₀)‖x‖ e₁.
        let x: Vec<f64> = (k + 1..n).map(|i| m[i * n + k]).collect();
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            off.push(0.0);
            continue;
        }
        let alpha = if x[0] >= 0.0 { -norm } else { norm };
        let mut v = x;
        v[0] -= alpha;
        // v ≠ 0: v₀ = x₀ + sign(x₀)‖x‖ has no cancellation.
        let beta = 2.0 / v.iter().map(|t| t * t).sum::<f64>();
        off.push(alpha);
        // Trailing block A ← H A H = A − v wᵀ − w vᵀ, with p = β A v and w = p − (β pᵀv / 2) v.
        let s = k + 1;
        let len = n - s;
        let p: Vec<f64> =
            (s..n).into_par_iter().map(|i| beta * dot(&m[i * n + s..(i + 1) * n], &v)).collect();
        let half = 0.5 * beta * dot(&p, &v);
        let w: Vec<f64> = p.iter().zip(&v).map(|(pi, vi)| pi - half * vi).collect();
        m.par_chunks_mut(n).skip(s).enumerate().for_each(|(i, row)| {
            let (vi, wi) = (v[i], w[i]);
            for j in 0..len {
                row[s + j] -= vi * w[j] + wi * v[j];
            }
        });
    }
    ((0..n).map(|i| m[i * n + i]).collect(), off)
}

/// The number of eigenvalues of the symmetric tridiagonal (d, e) below `x` (Sturm count via
/// the pivots of the LDLᵀ factorisation of T − x I).
fn count_below(d: &[f64], e: &[f64], x: f64) -> usize {
    let tiny = f64::MIN_POSITIVE.sqrt();
    let mut q = d[0] - x;
    let mut count = usize::from(q < 0.0);
    for i in 1..d.len() {
        if q.abs() < tiny {
            q = if q < 0.0 { -tiny } else { tiny };
        }
        q = d[i] - x - e[i - 1] * e[i - 1] / q;
        count += usize::from(q < 0.0);
    }
    count
}

/// Eigenvalues of the symmetric tridiagonal matrix with diagonal `d` and off-diagonal `e`, in
/// ascending order, by bisection inside the Gershgorin interval.
pub fn tridiagonal_eigenvalues(d: &[f64], e: &[f64]) -> Vec<f64> {
    let n = d.len();
    if n == 0 {
        return vec![];
    }
    assert_eq!(e.len(), n - 1, "tridiagonal_eigenvalues: off-diagonal length");
    let radius = |i: usize| if i > 0 { e[i - 1].abs() } else { 0.0 } + if i + 1 < n { e[i].abs() } else { 0.0 };
    let lo = (0..n).map(|i| d[i] - radius(i)).fold(f64::INFINITY, f64::min);
    let hi = (0..n).map(|i| d[i] + radius(i)).fold(f64::NEG_INFINITY, f64::max);
    let scale = lo.abs().max(hi.abs()).max(f64::MIN_POSITIVE);
    (0..n)
        .into_par_iter()
        .map(|k| {
            // The smallest x with more than k eigenvalues below it.
            let (mut a, mut b) = (lo - 2.0 * f64::EPSILON * scale, hi + 2.0 * f64::EPSILON * scale);
            while b - a > 2.0 * f64::EPSILON * scale {
                let mid = 0.5 * (a + b);
                if mid <= a || mid >= b {
                    break;
                }
                if count_below(d, e, mid) > k {
                    b = mid;
                } else {
                    a = mid;
                }
            }
            0.5 * (a + b)
        })
        .collect()
}

/// Eigenvalues of a symmetric matrix, ascending.
pub fn symmetric_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    let (d, e) = tridiagonalize(a, n);
    tridiagonal_eigenvalues(&d, &e)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A generator of uniform numbers in [−0.5, 0.5).
    pub fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        }
    }

    /// Q diag(values) Qᵀ for Q = H₁ H₂, two Householder reflectors from `seed`: a dense
    /// symmetric matrix whose eigenvalues are exactly `values` (up to rounding).
    pub fn with_eigenvalues(values: &[f64], seed: u64) -> Vec<f64> {
        let n = values.len();
        let mut next = lcg(seed);
        let reflectors: Vec<Vec<f64>> = (0..2).map(|_| (0..n).map(|_| next()).collect()).collect();
        // Start from the diagonal and apply H X H for each reflector: O(n²) each.
        let mut m = vec![0.0; n * n];
        (0..n).for_each(|i| m[i * n + i] = values[i]);
        for v in &reflectors {
            let beta = 2.0 / dot(v, v);
            // X ← H X H = X − β v (vᵀX) − β (X v) vᵀ + β² (vᵀ X v) v vᵀ.
            let xv: Vec<f64> = (0..n).map(|i| dot(&m[i * n..(i + 1) * n], v)).collect();
            let vxv = dot(v, &xv);
            for i in 0..n {
                for j in 0..n {
                    m[i * n + j] += -beta * v[i] * xv[j] - beta * xv[i] * v[j]
                        + beta * beta * vxv * v[i] * v[j];
                }
            }
        }
        m
    }

    #[test]
    fn eigenvalues_of_a_known_two_by_two_and_of_constructed_matrices() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let v = symmetric_eigenvalues(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((v[0] - 1.0).abs() < 1e-14 && (v[1] - 3.0).abs() < 1e-14, "{v:?}");
        for (n, seed) in [(1, 1), (7, 2), (60, 3)] {
            let mut next = lcg(seed + 10);
            let mut want: Vec<f64> = (0..n).map(|_| 4.0 * next()).collect();
            // A repeated eigenvalue and an exact zero.
            if n > 3 {
                want[1] = want[0];
                want[2] = 0.0;
            }
            let got = symmetric_eigenvalues(&with_eigenvalues(&want, seed), n);
            want.sort_by(f64::total_cmp);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "n {n}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn pivoted_cholesky_reconstructs_full_and_low_rank_matrices() {
        let n = 12;
        for rank in [12, 5] {
            // A = B Bᵀ with B of n × rank.
            let mut next = lcg(rank as u64);
            let b: Vec<f64> = (0..n * rank).map(|_| next()).collect();
            let a: Vec<f64> = (0..n * n)
                .map(|idx| dot(&b[(idx / n) * rank..][..rank], &b[(idx % n) * rank..][..rank]))
                .collect();
            let (lt, r) = pivoted_cholesky(&a, n, 1e-12);
            assert_eq!(r, rank);
            for i in 0..n {
                for j in 0..n {
                    let got: f64 = (0..r).map(|k| lt[k * n + i] * lt[k * n + j]).sum();
                    assert!(
                        (got - a[i * n + j]).abs() < 1e-12,
                        "rank {rank} ({i}, {j}): {got} vs {}",
                        a[i * n + j]
                    );
                }
            }
        }
        assert_eq!(pivoted_cholesky(&[0.0; 4], 2, 1e-12).1, 0);
    }

    #[test]
    fn congruence_is_lt_b_l() {
        let (n, r) = (5, 3);
        let mut next = lcg(7);
        let lt: Vec<f64> = (0..r * n).map(|_| next()).collect();
        let b = with_eigenvalues(&[1.0, 2.0, 0.5, 3.0, 0.0], 9);
        let m = congruence(&lt, r, &b, n);
        for i in 0..r {
            for j in 0..r {
                let want: f64 = (0..n)
                    .flat_map(|k| (0..n).map(move |l| (k, l)))
                    .map(|(k, l)| lt[i * n + k] * b[k * n + l] * lt[j * n + l])
                    .sum();
                assert!((m[i * r + j] - want).abs() < 1e-12);
            }
        }
    }
}
