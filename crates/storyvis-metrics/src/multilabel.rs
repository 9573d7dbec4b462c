//! Multi-label classification scores: per-label and micro/macro precision, recall and F1, and
//! exact-match accuracy (every label of a sample right). An undefined ratio (0 / 0) counts as
//! 0, as scikit-learn's `zero_division=0` does.

use crate::MetricError;

/// Confusion counts accumulated over samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiLabelCounts {
    pub true_pos: Vec<u64>,
    pub false_pos: Vec<u64>,
    pub false_neg: Vec<u64>,
    pub samples: u64,
    pub exact: u64,
}

/// Precision, recall and F1 of one label or of a pooled count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Scores {
    fn from_counts(tp: u64, fp: u64, fn_: u64) -> Scores {
        Scores {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
        }
    }
}

impl MultiLabelCounts {
    pub fn new(labels: usize) -> MultiLabelCounts {
        MultiLabelCounts {
            true_pos: vec![0; labels],
            false_pos: vec![0; labels],
            false_neg: vec![0; labels],
            samples: 0,
            exact: 0,
        }
    }

    pub fn labels(&self) -> usize {
        self.true_pos.len()
    }

    /// Adds one sample's predicted and true label sets.
    pub fn add(&mut self, predicted: &[bool], truth: &[bool]) -> Result<(), MetricError> {
        for (what, v) in [("predicted labels", predicted), ("true labels", truth)] {
            if v.len() != self.labels() {
                return Err(MetricError::Length { what, expected: self.labels(), got: v.len() });
            }
        }
        for k in 0..self.labels() {
            match (predicted[k], truth[k]) {
                (true, true) => self.true_pos[k] += 1,
                (true, false) => self.false_pos[k] += 1,
                (false, true) => self.false_neg[k] += 1,
                (false, false) => {}
            }
        }
        self.samples += 1;
        self.exact += u64::from(predicted == truth);
        Ok(())
    }

    pub fn per_label(&self, k: usize) -> Scores {
        Scores::from_counts(self.true_pos[k], self.false_pos[k], self.false_neg[k])
    }

    /// Scores of the counts pooled over labels.
    pub fn micro(&self) -> Scores {
        let sum = |v: &[u64]| v.iter().sum::<u64>();
        Scores::from_counts(sum(&self.true_pos), sum(&self.false_pos), sum(&self.false_neg))
    }

    /// The unweighted mean of the per-label scores.
    pub fn macro_avg(&self) -> Scores {
        let n = self.labels().max(1) as f64;
        let all: Vec<Scores> = (0..self.labels()).map(|k| self.per_label(k)).collect();
        Scores {
            precision: all.iter().map(|s| s.precision).sum::<f64>() / n,
            recall: all.iter().map(|s| s.recall).sum::<f64>() / n,
            f1: all.iter().map(|s| s.f1).sum::<f64>() / n,
        }
    }

    /// The fraction of samples with every label right.
    pub fn exact_match(&self) -> f64 {
        ratio(self.exact, self.samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_scores_by_hand() {
        let mut c = MultiLabelCounts::new(3);
        c.add(&[true, false, true], &[true, true, false]).unwrap(); // label0 TP, label1 FN, label2 FP
        c.add(&[true, true, false], &[true, true, false]).unwrap(); // exact
        c.add(&[false, false, false], &[false, false, true]).unwrap(); // label2 FN
        assert_eq!(
            (c.true_pos.clone(), c.false_pos.clone(), c.false_neg.clone()),
            (vec![2, 1, 0], vec![0, 0, 1], vec![0, 1, 1])
        );
        assert!((c.exact_match() - 1.0 / 3.0).abs() < 1e-15);
        // Micro: TP 3, FP 1, FN 2 → P 3/4, R 3/5, F1 6/9.
        let m = c.micro();
        assert!((m.precision - 0.75).abs() < 1e-15 && (m.recall - 0.6).abs() < 1e-15);
        assert!((m.f1 - 6.0 / 9.0).abs() < 1e-15);
        // Per label F1: 1, 2/3, 0 → macro 5/9.
        assert!((c.macro_avg().f1 - 5.0 / 9.0).abs() < 1e-15);
        assert!(c.add(&[true], &[true, false, false]).is_err());
    }
}
