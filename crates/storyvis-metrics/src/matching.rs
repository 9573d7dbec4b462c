//! Minimum-cost assignment (Kuhn 1955; Munkres 1957), the matching that detection metrics
//! use to pair detected objects with ground-truth ones before counting precision, recall and
//! per-object accuracy (as GeNeVA's evaluation pairs detected and true objects, El-Nouby et al.,
//! ICCV 2019, §5). O(n²·m) with row and column potentials (the shortest augmenting path form).

use crate::MetricError;

/// The assignment of `rows` to `cols` (`cost` row-major, `rows × cols`) that pairs
/// min(rows, cols) of them at the least total cost: for each row its column, or none where
/// there are fewer columns than rows.
pub fn min_cost_assignment(
    cost: &[f64],
    rows: usize,
    cols: usize,
) -> Result<Vec<Option<usize>>, MetricError> {
    if cost.len() != rows * cols {
        return Err(MetricError::Invalid(format!(
            "{} costs do not form a {rows} × {cols} matrix",
            cost.len()
        )));
    }
    if let Some(c) = cost.iter().find(|c| !c.is_finite()) {
        return Err(MetricError::Invalid(format!("assignment cost {c} is not finite")));
    }
    if rows <= cols {
        return Ok(assign(|i, j| cost[i * cols + j], rows, cols));
    }
    // More rows than columns: assign the columns to rows instead.
    let by_col = assign(|j, i| cost[i * cols + j], cols, rows);
    let mut out = vec![None; rows];
    for (j, i) in by_col.into_iter().enumerate() {
        out[i.expect("every column is assigned when columns are fewer")] = Some(j);
    }
    Ok(out)
}

/// The pairs (row, column) of the assignment that matches the most pairs whose cost is at most
/// `max_cost` and, among those, costs least; pairs above it are never matched (a detection
/// farther than the gate from every true object stays unmatched, whatever else that frees).
/// Costs must not be negative (distances, counts of differences).
pub fn match_within(
    cost: &[f64],
    rows: usize,
    cols: usize,
    max_cost: f64,
) -> Result<Vec<(usize, usize)>, MetricError> {
    if !max_cost.is_finite() {
        return Err(MetricError::Invalid(format!("the matching gate {max_cost} is not finite")));
    }
    if cost.len() != rows * cols {
        return Err(MetricError::Invalid(format!(
            "{} costs do not form a {rows} × {cols} matrix",
            cost.len()
        )));
    }
    if let Some(c) = cost.iter().find(|&&c| c < 0.0) {
        return Err(MetricError::Invalid(format!("matching cost {c} is negative")));
    }
    let allowed_max = cost.iter().filter(|&&c| c <= max_cost).fold(0.0f64, |a, &c| a.max(c.abs()));
    // A forbidden pair costs more than every allowed pair of an assignment together, so the
    // least-cost assignment uses as few of them as it can.
    let forbidden = (rows.min(cols) as f64 + 1.0) * (allowed_max + 1.0);
    let gated: Vec<f64> = cost.iter().map(|&c| if c <= max_cost { c } else { forbidden }).collect();
    let assignment = min_cost_assignment(&gated, rows, cols)?;
    Ok(assignment
        .into_iter()
        .enumerate()
        .filter_map(|(i, j)| j.filter(|&j| cost[i * cols + j] <= max_cost).map(|j| (i, j)))
        .collect())
}

/// n ≤ m: every row gets a distinct column.
fn assign(cost: impl Fn(usize, usize) -> f64, n: usize, m: usize) -> Vec<Option<usize>> {
    // 1-based with a virtual column 0, as in the classic statement of the algorithm.
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; m + 1]);
    let (mut owner, mut way) = (vec![0usize; m + 1], vec![0usize; m + 1]);
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=m {
                if !used[j] {
                    let reduced = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if reduced < min_to[j] {
                        min_to[j] = reduced;
                        way[j] = j0;
                    }
                    if min_to[j] < delta {
                        delta = min_to[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path.
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n];
    for j in 1..=m {
        if owner[j] != 0 {
            out[owner[j] - 1] = Some(j - 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The least total cost over every injective map of the smaller side into the larger, by
    /// enumeration.
    fn brute_force(cost: &[f64], rows: usize, cols: usize) -> f64 {
        fn go(
            cost: &[f64],
            rows: usize,
            cols: usize,
            i: usize,
            used: &mut Vec<bool>,
            flip: bool,
        ) -> f64 {
            let (n, m) = if flip { (cols, rows) } else { (rows, cols) };
            if i == n {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for j in 0..m {
                if !used[j] {
                    used[j] = true;
                    let c = if flip { cost[j * cols + i] } else { cost[i * cols + j] };
                    best = best.min(c + go(cost, rows, cols, i + 1, used, flip));
                    used[j] = false;
                }
            }
            best
        }
        let flip = rows > cols;
        go(cost, rows, cols, 0, &mut vec![false; rows.max(cols)], flip)
    }

    fn total(cost: &[f64], cols: usize, a: &[Option<usize>]) -> f64 {
        a.iter().enumerate().filter_map(|(i, j)| j.map(|j| cost[i * cols + j])).sum()
    }

    #[test]
    fn the_assignment_is_the_least_cost_one_on_random_matrices() {
        let mut state = 0x1234_5678_9ABC_DEF0u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for trial in 0..300 {
            let (rows, cols) = (1 + trial % 5, 1 + (trial / 5) % 6);
            // Integer costs make ties common, which the potentials must survive.
            let cost: Vec<f64> = (0..rows * cols).map(|_| (next() * 10.0).floor() - 3.0).collect();
            let a = min_cost_assignment(&cost, rows, cols).unwrap();
            let cols_used: Vec<usize> = a.iter().flatten().copied().collect();
            assert_eq!(cols_used.len(), rows.min(cols), "{rows}×{cols}: {a:?}");
            let mut distinct = cols_used.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), cols_used.len(), "a column used twice: {a:?}");
            let (got, want) = (total(&cost, cols, &a), brute_force(&cost, rows, cols));
            assert!((got - want).abs() < 1e-9, "{rows}×{cols} {cost:?}: {got} vs {want}");
        }
    }

    #[test]
    fn greedy_nearest_pairs_are_not_what_it_returns() {
        // Greedy takes (0, 0) at 1 and must then pay 10 for (1, 1); crossing costs 2 + 2.
        let cost = [1.0, 2.0, 2.0, 10.0];
        assert_eq!(min_cost_assignment(&cost, 2, 2).unwrap(), vec![Some(1), Some(0)]);
    }

    #[test]
    fn the_gate_leaves_a_missed_object_and_an_extra_detection_unmatched() {
        // Rows: three true objects at x = 0, 10, 20; columns: detections at x = 0.5, 19, 40 (the
        // object at 10 is missed; the detection at 40 is extra). Cost: distance, gate 3.
        let truth = [0.0f64, 10.0, 20.0];
        let found = [0.5, 19.0, 40.0];
        let cost: Vec<f64> =
            truth.iter().flat_map(|t| found.iter().map(move |f| (t - f).abs())).collect();
        assert_eq!(match_within(&cost, 3, 3, 3.0).unwrap(), vec![(0, 0), (2, 1)]);
        // Without the gate every row is matched: the missed object takes the detection at 19,
        // and the object at 20 is left the extra one at 40.
        assert_eq!(min_cost_assignment(&cost, 3, 3).unwrap(), vec![Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn the_gate_prefers_more_matches_to_a_cheaper_fewer() {
        // (0, 0) at 1 with (1, 1) at 3.5 is the cheaper whole assignment (4.5 against 5), but
        // (1, 1) is past the gate 3: (0, 1) and (1, 0) at 2.5 each are two matches within it.
        let cost = [1.0, 2.5, 2.5, 3.5];
        assert_eq!(min_cost_assignment(&cost, 2, 2).unwrap(), vec![Some(0), Some(1)]);
        assert_eq!(match_within(&cost, 2, 2, 3.0).unwrap(), vec![(0, 1), (1, 0)]);
        // Empty sides match nothing.
        assert!(match_within(&[], 0, 4, 3.0).unwrap().is_empty());
        assert!(match_within(&[], 3, 0, 3.0).unwrap().is_empty());
    }

    #[test]
    fn bad_matrices_are_errors() {
        assert!(min_cost_assignment(&[1.0, 2.0, 3.0], 2, 2).is_err());
        assert!(min_cost_assignment(&[1.0, f64::NAN], 1, 2).is_err());
        assert!(match_within(&[1.0], 1, 1, f64::INFINITY).is_err());
        assert!(match_within(&[1.0, -0.5], 1, 2, 3.0).is_err());
    }
}
