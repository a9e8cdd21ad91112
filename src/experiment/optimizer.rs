//! The optimizer and learning-rate schedule a config names.

use super::config::{OptimizerConfig, ScheduleConfig};
use crate::element::Float;
use crate::nn::Module;
use crate::optim::{Adagrad, Adam, AdamW, Optimizer, RmsProp, Schedule, Sgd};

/// The optimizer a config names, over the model's parameters.
pub fn build_optimizer<T: Float>(
    config: &OptimizerConfig,
    model: &dyn Module<T>,
) -> Box<dyn Optimizer<T>> {
    let params = model.named_parameters();
    match *config {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } => Box::new(
            Sgd::new(params, lr)
                .momentum(momentum)
                .dampening(dampening)
                .nesterov(nesterov)
                .weight_decay(weight_decay),
        ),
        OptimizerConfig::Adam {
            lr,
            betas,
            eps,
            weight_decay,
        } => Box::new(
            Adam::new(params, lr)
                .betas(betas.0, betas.1)
                .eps(eps)
                .weight_decay(weight_decay),
        ),
        OptimizerConfig::Adamw {
            lr,
            betas,
            eps,
            weight_decay,
            decay_matrices_only,
        } => {
            let adamw = AdamW::new(params, lr)
                .betas(betas.0, betas.1)
                .eps(eps)
                .weight_decay(weight_decay);
            Box::new(if decay_matrices_only {
                adamw.decay_matrices_only()
            } else {
                adamw
            })
        }
        OptimizerConfig::Rmsprop {
            lr,
            alpha,
            momentum,
            centered,
            weight_decay,
        } => Box::new(
            RmsProp::new(params, lr)
                .alpha(alpha)
                .momentum(momentum)
                .centered(centered)
                .weight_decay(weight_decay),
        ),
        OptimizerConfig::Adagrad {
            lr,
            lr_decay,
            weight_decay,
        } => Box::new(
            Adagrad::new(params, lr)
                .lr_decay(lr_decay)
                .weight_decay(weight_decay),
        ),
    }
}

/// The schedule a config names, and whether it advances per step (else per epoch).
pub fn build_schedule(
    config: Option<&ScheduleConfig>,
    epochs: usize,
    steps_per_epoch: usize,
) -> (Schedule, bool) {
    match config {
        None => (Schedule::Constant, false),
        Some(ScheduleConfig::Step { step_size, gamma }) => (
            Schedule::Step {
                step_size: *step_size,
                gamma: *gamma,
            },
            false,
        ),
        Some(ScheduleConfig::MultiStep { milestones, gamma }) => (
            Schedule::MultiStep {
                milestones: milestones.clone(),
                gamma: *gamma,
            },
            false,
        ),
        Some(ScheduleConfig::Exponential { gamma }) => {
            (Schedule::Exponential { gamma: *gamma }, false)
        }
        Some(ScheduleConfig::Cosine { eta_min }) => (
            Schedule::Cosine {
                t_max: epochs,
                eta_min: *eta_min,
            },
            false,
        ),
        Some(ScheduleConfig::Warmup {
            start_factor,
            epochs,
        }) => (
            Schedule::LinearWarmup {
                start_factor: *start_factor,
                warmup: *epochs,
            },
            false,
        ),
        Some(ScheduleConfig::OneCycle { max_lr, pct_start }) => (
            Schedule::OneCycle {
                max_lr: *max_lr,
                total_steps: epochs * steps_per_epoch,
                pct_start: *pct_start,
                div_factor: 25.0,
                final_div_factor: 1e4,
            },
            true,
        ),
    }
}
