//! Classification metrics: accuracy, top-k accuracy, the confusion matrix and
//! per-class precision, recall and F1.

use std::fmt;

use crate::element::Float;
use crate::tensor::Tensor;

/// The fraction of rows of `logits` (`[batch, classes]`) whose largest entry is
/// at the label.
pub fn accuracy<T: Float>(logits: &Tensor<T>, labels: &[usize]) -> f64 {
    correct_count(logits, labels) as f64 / labels.len().max(1) as f64
}

/// The number of rows whose arg-max equals the label.
pub fn correct_count<T: Float>(logits: &Tensor<T>, labels: &[usize]) -> usize {
    logits
        .argmax(-1)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count()
}

/// The fraction of rows whose label is among the `k` largest entries.
pub fn top_k_accuracy<T: Float>(logits: &Tensor<T>, labels: &[usize], k: usize) -> f64 {
    let classes = logits.dim(-1);
    let data = logits.data();
    let hits = labels
        .iter()
        .enumerate()
        .filter(|&(row, &label)| {
            let scores = &data[row * classes..(row + 1) * classes];
            // the label is in the top k if fewer than k classes score strictly higher
            scores.iter().filter(|&&s| s > scores[label]).count() < k
        })
        .count();
    hits as f64 / labels.len().max(1) as f64
}

/// Counts of (actual, predicted) class pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// The number of classes.
    pub classes: usize,
    /// `counts[actual * classes + predicted]`.
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Adds a batch of logits and their labels.
    pub fn add_batch<T: Float>(&mut self, logits: &Tensor<T>, labels: &[usize]) {
        for (predicted, &actual) in logits.argmax(-1).into_iter().zip(labels) {
            self.add(actual, predicted);
        }
    }

    /// Adds one prediction.
    pub fn add(&mut self, actual: usize, predicted: usize) {
        self.counts[actual * self.classes + predicted] += 1;
    }

    fn count(&self, actual: usize, predicted: usize) -> u64 {
        self.counts[actual * self.classes + predicted]
    }

    /// The fraction of all predictions that are right.
    pub fn accuracy(&self) -> f64 {
        let right: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        right as f64 / self.counts.iter().sum::<u64>().max(1) as f64
    }

    /// Of the samples predicted as `class`, the fraction that are `class`.
    pub fn precision(&self, class: usize) -> f64 {
        let predicted: u64 = (0..self.classes).map(|a| self.count(a, class)).sum();
        self.count(class, class) as f64 / predicted.max(1) as f64
    }

    /// Of the samples of `class`, the fraction predicted as `class`.
    pub fn recall(&self, class: usize) -> f64 {
        let actual: u64 = (0..self.classes).map(|p| self.count(class, p)).sum();
        self.count(class, class) as f64 / actual.max(1) as f64
    }

    /// The harmonic mean of precision and recall.
    pub fn f1(&self, class: usize) -> f64 {
        let (p, r) = (self.precision(class), self.recall(class));
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .counts
            .iter()
            .max()
            .map_or(1, |m| m.to_string().len())
            .max(3);
        write!(f, "actual\\pred")?;
        for p in 0..self.classes {
            write!(f, " {p:>width$}")?;
        }
        writeln!(f)?;
        for a in 0..self.classes {
            write!(f, "{a:>11}")?;
            for p in 0..self.classes {
                write!(f, " {:>width$}", self.count(a, p))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// A histogram of a tensor's values: `counts[i]` values lie in the `i`-th of equal
/// bins spanning `[min, max]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Histogram {
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// Values per bin.
    pub counts: Vec<u32>,
}

impl Histogram {
    /// Bins `values` into `bins` equal bins over their range (a single value, or
    /// none, gives one full bin).
    pub fn of(values: &[f32], bins: usize) -> Histogram {
        let finite = values.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
        let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if min > max {
            return Histogram {
                min: 0.0,
                max: 0.0,
                counts: vec![0; bins],
            };
        }
        let mut counts = vec![0u32; bins];
        let width = (max - min) / bins as f64;
        for &v in values.iter().filter(|v| v.is_finite()) {
            let bin = if width > 0.0 {
                (((v as f64 - min) / width) as usize).min(bins - 1)
            } else {
                0
            };
            counts[bin] += 1;
        }
        Histogram { min, max, counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        // rows predict 1, 0, 2, 2; labels 1, 1, 2, 0
        let logits = Tensor::<f32>::from_vec(
            vec![0.0, 1.0, 0.5, 2.0, 1.0, 0.0, 0.0, 0.1, 3.0, 0.2, 0.0, 0.9],
            &[4, 3],
        );
        let labels = [1, 1, 2, 0];
        assert_eq!(accuracy(&logits, &labels), 0.5);
        // row 1 ranks class 1 second; row 3 ranks class 0 second
        assert_eq!(top_k_accuracy(&logits, &labels, 2), 1.0);
        let mut cm = ConfusionMatrix::new(3);
        cm.add_batch(&logits, &labels);
        assert_eq!(cm.accuracy(), 0.5);
        assert_eq!(cm.precision(2), 0.5); // predicted 2 twice, right once
        assert_eq!(cm.recall(1), 0.5); // class 1 twice, found once
        assert!((cm.f1(2) - 2.0 / 3.0).abs() < 1e-12); // p = 0.5, r = 1
    }

    #[test]
    fn a_histogram_puts_every_value_in_its_bin() {
        // bins of width 1 over [0, 4]: 0 and 0.5 → bin 0, 1.5 → 1, 3 → 3, 4 (the max) → 3
        let histogram = Histogram::of(&[0.0, 0.5, 1.5, 3.0, 4.0, f32::NAN], 4);
        assert_eq!((histogram.min, histogram.max), (0.0, 4.0));
        assert_eq!(histogram.counts, vec![2, 1, 0, 2]);
        assert_eq!(Histogram::of(&[2.0, 2.0], 3).counts, vec![2, 0, 0]);
    }
}
