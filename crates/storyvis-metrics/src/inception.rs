//! The Inception-score formula (Salimans et al. 2016) over any classifier's class probabilities:
//!
//!   IS = exp( E_x KL( p(y|x) ‖ p(y) ) ),  p(y) = E_x p(y|x),
//!
//! computed on `splits` equal parts of the samples and reported as mean and standard deviation
//! over the parts, as the original code does (it uses 10 splits).

use crate::MetricError;

/// `probs` holds one row of `classes` probabilities per sample (each row sums to 1 within 1e-3;
/// rows are renormalised). Returns `(mean, std)` of the score over `splits` parts.
pub fn inception_score(
    probs: &[f32],
    classes: usize,
    splits: usize,
) -> Result<(f64, f64), MetricError> {
    if classes == 0 || probs.len() % classes != 0 {
        return Err(MetricError::Invalid(format!(
            "{} probabilities do not split into rows of {classes}",
            probs.len()
        )));
    }
    let n = probs.len() / classes;
    if splits == 0 || n < splits {
        return Err(MetricError::Invalid(format!("{n} samples cannot form {splits} splits")));
    }
    let mut rows = Vec::with_capacity(n);
    for (i, row) in probs.chunks(classes).enumerate() {
        let sum: f64 = row.iter().map(|&p| p as f64).sum();
        if row.iter().any(|&p| p.is_nan() || p < 0.0) || (sum - 1.0).abs() > 1e-3 {
            return Err(MetricError::Invalid(format!(
                "row {i} is not a probability distribution (sum {sum})"
            )));
        }
        rows.push(row.iter().map(|&p| p as f64 / sum).collect::<Vec<f64>>());
    }
    let mut scores = Vec::with_capacity(splits);
    for s in 0..splits {
        let part = &rows[s * n / splits..(s + 1) * n / splits];
        let mut marginal = vec![0.0; classes];
        for row in part {
            marginal.iter_mut().zip(row).for_each(|(m, p)| *m += p / part.len() as f64);
        }
        let mean_kl: f64 = part
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&marginal)
                    .filter(|(&p, _)| p > 0.0) // 0 · log 0 = 0
                    .map(|(&p, &m)| p * (p / m).ln())
                    .sum::<f64>()
            })
            .sum::<f64>()
            / part.len() as f64;
        scores.push(mean_kl.exp());
    }
    let mean = scores.iter().sum::<f64>() / splits as f64;
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / splits as f64;
    Ok((mean, var.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_predictions_score_one() {
        let probs = vec![0.25f32; 4 * 40];
        let (m, s) = inception_score(&probs, 4, 4).unwrap();
        assert!((m - 1.0).abs() < 1e-12 && s < 1e-12);
    }

    #[test]
    fn confident_balanced_predictions_score_the_class_count() {
        // Each sample sure of one class, classes equally frequent in every split: IS = k.
        let k = 5;
        let mut probs = vec![0.0f32; k * 50];
        for i in 0..50 {
            probs[i * k + i % k] = 1.0;
        }
        let (m, s) = inception_score(&probs, k, 2).unwrap();
        assert!((m - k as f64).abs() < 1e-9 && s < 1e-9, "{m} ± {s}");
    }

    #[test]
    fn two_class_closed_form() {
        // Half the samples (0.9, 0.1), half (0.1, 0.9): p(y) = (½, ½), KL = 0.9 ln 1.8 + 0.1 ln 0.2.
        let probs: Vec<f32> =
            (0..20).flat_map(|i| if i % 2 == 0 { [0.9, 0.1] } else { [0.1, 0.9] }).collect();
        let kl = 0.9f64 * (0.9f32 as f64 / 0.5).ln() + 0.1f32 as f64 * (0.1f32 as f64 / 0.5).ln();
        let (m, _) = inception_score(&probs, 2, 1).unwrap();
        assert!((m - kl.exp()).abs() < 1e-6, "{m} vs {}", kl.exp());
    }

    #[test]
    fn bad_rows_are_errors() {
        assert!(inception_score(&[0.5, 0.6], 2, 1).is_err());
        assert!(inception_score(&[0.5, 0.5, 1.0], 2, 1).is_err());
        assert!(inception_score(&[0.5, 0.5], 2, 2).is_err());
    }
}
