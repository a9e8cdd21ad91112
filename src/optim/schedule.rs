//! Learning-rate schedules, as PyTorch's `lr_scheduler` classes compute them.

use std::f64::consts::PI;

/// A learning rate as a function of the step (or epoch) count `t` and the base rate.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `base · γ^⌊t / step_size⌋` (StepLR).
    Step {
        /// Epochs (or steps) between decays.
        step_size: usize,
        /// The decay factor γ.
        gamma: f64,
    },
    /// `base · γ^(number of milestones ≤ t)` (MultiStepLR).
    MultiStep {
        /// When to decay.
        milestones: Vec<usize>,
        /// The decay factor γ.
        gamma: f64,
    },
    /// `base · γᵗ` (ExponentialLR).
    Exponential {
        /// The decay factor γ.
        gamma: f64,
    },
    /// `η_min + (base − η_min)·(1 + cos(π·t/T_max))/2` (CosineAnnealingLR).
    Cosine {
        /// T_max: the length of the half cosine.
        t_max: usize,
        /// η_min: the rate at the end.
        eta_min: f64,
    },
    /// `base · (s + (1 − s)·min(t, n)/n)`: a linear ramp from `s·base` over `n` steps (LinearLR).
    LinearWarmup {
        /// s: the starting fraction of the base rate.
        start_factor: f64,
        /// n: the length of the ramp.
        warmup: usize,
    },
    /// OneCycleLR (cosine): from `max_lr/div_factor` up to `max_lr` over the first
    /// `pct_start` of `total_steps`, then down to `max_lr/(div_factor·final_div_factor)`.
    OneCycle {
        /// The peak learning rate.
        max_lr: f64,
        /// Steps in the whole run.
        total_steps: usize,
        /// Fraction of the steps spent rising.
        pct_start: f64,
        /// The starting rate is max_lr / div_factor.
        div_factor: f64,
        /// The final rate is the starting rate / final_div_factor.
        final_div_factor: f64,
    },
}

impl Schedule {
    /// The learning rate at step `t` (counting from 0).
    pub fn lr_at(&self, t: usize, base_lr: f64) -> f64 {
        match self {
            Schedule::Constant => base_lr,
            Schedule::Step { step_size, gamma } => {
                base_lr * gamma.powi((t / (*step_size).max(1)) as i32)
            }
            Schedule::MultiStep { milestones, gamma } => {
                base_lr * gamma.powi(milestones.iter().filter(|&&m| m <= t).count() as i32)
            }
            Schedule::Exponential { gamma } => base_lr * gamma.powi(t as i32),
            Schedule::Cosine { t_max, eta_min } => {
                let progress = t.min(*t_max) as f64 / (*t_max).max(1) as f64;
                eta_min + (base_lr - eta_min) * (1.0 + (PI * progress).cos()) / 2.0
            }
            Schedule::LinearWarmup {
                start_factor,
                warmup,
            } => {
                let progress = t.min(*warmup) as f64 / (*warmup).max(1) as f64;
                base_lr * (start_factor + (1.0 - start_factor) * progress)
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let initial = max_lr / div_factor;
                let minimum = initial / final_div_factor;
                let warm_end = pct_start * *total_steps as f64 - 1.0;
                let end = *total_steps as f64 - 1.0;
                let t = t as f64;
                let anneal = |start: f64, stop: f64, pct: f64| {
                    stop + (start - stop) / 2.0 * ((PI * pct).cos() + 1.0)
                };
                if t <= warm_end {
                    anneal(initial, *max_lr, t / warm_end)
                } else {
                    anneal(
                        *max_lr,
                        minimum,
                        ((t - warm_end) / (end - warm_end)).min(1.0),
                    )
                }
            }
        }
    }
}

/// Lowers the learning rate by `factor` when a metric (say, validation loss) has not
/// improved for `patience` epochs — PyTorch's ReduceLROnPlateau in `min` mode with a
/// relative threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    /// Multiplies the rate on a plateau.
    pub factor: f64,
    /// Epochs without improvement before lowering the rate.
    pub patience: usize,
    /// Relative improvement that counts as better.
    pub threshold: f64,
    /// Epochs to wait after a reduction before counting again.
    pub cooldown: usize,
    /// The rate never goes below this.
    pub min_lr: f64,
    best: f64,
    bad_epochs: usize,
    cooldown_left: usize,
}

impl Default for ReduceLrOnPlateau {
    fn default() -> Self {
        ReduceLrOnPlateau {
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            best: f64::INFINITY,
            bad_epochs: 0,
            cooldown_left: 0,
        }
    }
}

impl ReduceLrOnPlateau {
    /// Records this epoch's metric and returns the learning rate to use next.
    pub fn step(&mut self, metric: f64, lr: f64) -> f64 {
        if metric < self.best * (1.0 - self.threshold) {
            self.best = metric;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > self.patience {
            self.cooldown_left = self.cooldown;
            self.bad_epochs = 0;
            return (lr * self.factor).max(self.min_lr);
        }
        lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn closed_forms() {
        // StepLR at t = 5 with step 2: γ^⌊5/2⌋ = 0.5² = 0.25
        assert!(close(
            Schedule::Step {
                step_size: 2,
                gamma: 0.5
            }
            .lr_at(5, 1.0),
            0.25
        ));
        assert!(close(
            Schedule::MultiStep {
                milestones: vec![2, 4],
                gamma: 0.1
            }
            .lr_at(4, 1.0),
            0.01
        ));
        assert!(close(
            Schedule::Exponential { gamma: 0.9 }.lr_at(2, 1.0),
            0.81
        ));
        // halfway through a cosine: the mean of base and η_min
        assert!(close(
            Schedule::Cosine {
                t_max: 10,
                eta_min: 0.0
            }
            .lr_at(5, 1.0),
            0.5
        ));
        assert!(close(
            Schedule::LinearWarmup {
                start_factor: 0.5,
                warmup: 4
            }
            .lr_at(2, 1.0),
            0.75
        ));
    }

    #[test]
    fn one_cycle_rises_then_falls() {
        let s = Schedule::OneCycle {
            max_lr: 1.0,
            total_steps: 100,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        };
        assert!(close(s.lr_at(0, 0.0), 0.04));
        assert!(close(s.lr_at(29, 0.0), 1.0));
        assert!(close(s.lr_at(99, 0.0), 0.04 / 1e4));
        assert!(s.lr_at(60, 0.0) < s.lr_at(40, 0.0));
    }

    #[test]
    fn plateau_reduces_after_patience() {
        let mut plateau = ReduceLrOnPlateau {
            patience: 2,
            ..Default::default()
        };
        let mut lr = 1.0;
        for metric in [1.0, 0.9, 0.9, 0.9] {
            lr = plateau.step(metric, lr);
        }
        assert!(close(lr, 1.0), "two bad epochs are within patience");
        lr = plateau.step(0.95, lr);
        assert!(close(lr, 0.1));
    }
}
