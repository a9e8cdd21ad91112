//! The training loop: for each batch, forward propagation, the loss, backward
//! propagation, an optimizer step — repeated over the data for a number of epochs,
//! with evaluation after each one.
//!
//! One step ([`step`]) and one evaluation ([`evaluate_with`]) serve everything that
//! trains or measures: [`fit`], `nabla train`, `nabla eval` and `nabla bench`, so the
//! benchmark times exactly what training does.

pub mod health;
pub mod listener;
pub mod parallel;

pub use listener::{Interrupt, Listener};

use std::time::Instant;

use crate::autograd::no_grad;
use crate::data::{DataLoader, Dataset};
use crate::distributed::{CommStats, World};
use crate::error::{Error, Result};
use crate::metrics::correct_count;
use crate::nn::Module;
use crate::optim::{Optimizer, Schedule, clip_grad_norm as clip_grad_norm_};
use crate::tensor::Tensor;
use health::GradientHealth;

/// A loss from logits and class labels, e.g. `|logits, labels| cross_entropy(logits, labels, &options)`.
pub type LossFn<'a> = &'a dyn Fn(&Tensor<f32>, &[usize]) -> Tensor<f32>;

/// How to train.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Train epochs `start_epoch..epochs` (so a resumed run continues where it stopped).
    pub epochs: usize,
    /// The first epoch to run, counting from 0.
    pub start_epoch: usize,
    /// Steps of `start_epoch` already done (a run resumed mid-epoch), and the running
    /// sums of that epoch so far.
    pub start_step: usize,
    /// Running sums of `start_epoch` from before an interruption.
    pub carried: EpochProgress,
    /// Learning rate as a function of the epoch (or, with `schedule_per_step`, of the
    /// global step), scaling the optimizer's base rate.
    pub schedule: Schedule,
    /// Advance the schedule every step instead of every epoch.
    pub schedule_per_step: bool,
    /// The rate the schedule scales; `None` takes the optimizer's rate when `fit`
    /// starts (give it explicitly when resuming, as a restored optimizer holds the
    /// rate of its last step).
    pub base_lr: Option<f64>,
    /// Rescale gradients to at most this global norm before each step.
    pub clip_grad_norm: Option<f64>,
    /// Stop when the test loss has not improved by `min_delta` for `patience` epochs.
    pub early_stopping: Option<EarlyStopping>,
    /// The processes training together ([`World::single`]: this one alone). With
    /// more, every batch is split across them ([`parallel`]); give every rank the
    /// same loaders, `fit` takes each rank's share.
    pub world: World,
    /// With more than one rank, compare a hash of every rank's weights after every
    /// step, not only at the end of each epoch (a debugging aid, and what the tests do).
    pub check_replicas_every_step: bool,
    /// Cut every batch into this many fixed chunks whose gradients are added in a
    /// fixed tree, so that any power-of-two rank count that divides it trains the
    /// same bits ([`parallel::DataParallel::fixed_chunks`]).
    pub fixed_chunks: Option<usize>,
    /// Measure gradient health at the end of every epoch (gradient norms at its last
    /// step, dead ReLUs on the first 256 training samples): it goes into
    /// [`Event::EpochEnd`] and the metrics line.
    pub health: bool,
    /// The run is counted in steps (`max_steps`): each "epoch" is a period of steps,
    /// and its metrics line also says the global `step`.
    pub by_steps: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            start_epoch: 0,
            start_step: 0,
            carried: EpochProgress::default(),
            schedule: Schedule::Constant,
            schedule_per_step: false,
            base_lr: None,
            clip_grad_norm: None,
            early_stopping: None,
            world: World::single(),
            check_replicas_every_step: false,
            fixed_chunks: None,
            health: false,
            by_steps: false,
        }
    }
}

/// Early stopping on the test (validation) loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement tolerated before stopping.
    pub patience: usize,
    /// The smallest decrease of the test loss that counts as an improvement.
    pub min_delta: f64,
}

/// One epoch's results (the fields of a `metrics.jsonl` line).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// Counting from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Fraction of training samples classified right during the epoch.
    pub train_accuracy: f64,
    /// Mean loss on the test data after the epoch (none without test data).
    pub test_loss: Option<f64>,
    /// Accuracy on the test data after the epoch.
    pub test_accuracy: Option<f64>,
    /// Training time of the epoch (no evaluation).
    pub seconds: f64,
    /// The learning rate of the epoch's first step.
    pub lr: f64,
    /// With more than one rank: the epoch's communication (per-step bytes, seconds
    /// spent in all-reduce, seconds waited for it after backward).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication: Option<CommStats>,
}

impl EpochMetrics {
    /// The epoch's `metrics.jsonl` line: these fields, the gradient health
    /// (`grad_norm` per parameter, `dead_relu_fraction` per ReLU layer), the resident
    /// memory (`rss_mb`) and, for a run counted in steps of `steps_per_period`, the
    /// global `step`.
    pub fn line(
        &self,
        health: &GradientHealth,
        steps_per_period: Option<usize>,
    ) -> serde_json::Value {
        let mut line = serde_json::to_value(self).expect("metrics serialise");
        if let Some(steps) = steps_per_period {
            line["step"] = (self.epoch * steps).into();
        }
        line["grad_norm"] = serde_json::to_value(&health.grad_norms).expect("numbers serialise");
        line["dead_relu_fraction"] =
            serde_json::to_value(&health.dead_relu).expect("numbers serialise");
        line["rss_mb"] =
            serde_json::to_value(crate::memory::resident_mb()).expect("a number serialises");
        line
    }
}

/// Running sums of an epoch in progress (what a mid-epoch checkpoint must keep).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochProgress {
    /// Σ batch loss × batch size.
    pub loss_sum: f64,
    /// Samples classified right so far.
    pub correct: usize,
    /// Samples seen so far.
    pub seen: usize,
    /// Training seconds spent in this epoch.
    pub seconds: f64,
}

/// One optimizer step's own numbers (not the epoch's running means).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepPoint {
    /// The global step, counting from 1.
    pub step: usize,
    /// The epoch as a fraction: 1.5 is half-way through the second epoch.
    pub epoch: f64,
    /// The mean loss over the step's batch.
    pub loss: f64,
    /// The fraction of the batch classified right.
    pub accuracy: f64,
    /// The learning rate the step used.
    pub lr: f64,
}

/// What the loop reports as it runs, to [`Listener`]s: progress bars, the run
/// directory, loggers, a Ctrl-C watch. The model and optimizer are lent so their
/// state can be saved.
pub enum Event<'a> {
    /// An epoch is about to start.
    EpochStart {
        /// The epoch, counting from 1.
        epoch: usize,
        /// Steps per epoch.
        batches: usize,
    },
    /// After each optimizer step.
    BatchEnd {
        /// The epoch, counting from 1.
        epoch: usize,
        /// The step just taken, counting from 1.
        batch: usize,
        /// Steps per epoch.
        batches: usize,
        /// Mean training loss over the epoch so far.
        loss: f64,
        /// Training accuracy over the epoch so far.
        accuracy: f64,
        /// Samples seen in the epoch so far.
        samples: usize,
        /// The running sums, for a mid-epoch checkpoint.
        progress: EpochProgress,
        /// This step's own loss, accuracy and learning rate.
        step: StepPoint,
        /// The model, just updated.
        model: &'a dyn Module<f32>,
        /// The optimizer.
        optimizer: &'a dyn Optimizer<f32>,
    },
    /// A listener stopped the run after step `batch` of `epoch` (Ctrl-C): the place
    /// to save a checkpoint to resume from.
    Stopped {
        /// The epoch, counting from 1.
        epoch: usize,
        /// The last step taken in it, counting from 1.
        batch: usize,
        /// The epoch's running sums so far.
        progress: EpochProgress,
        /// The model.
        model: &'a dyn Module<f32>,
        /// The optimizer.
        optimizer: &'a dyn Optimizer<f32>,
    },
    /// An epoch ended (after evaluation).
    EpochEnd {
        /// The epoch's results.
        metrics: &'a EpochMetrics,
        /// Its gradient health (empty unless [`FitOptions::health`]).
        health: &'a GradientHealth,
        /// Its `metrics.jsonl` line ([`EpochMetrics::line`]).
        line: &'a serde_json::Value,
        /// Steps taken since the start of the run.
        global_step: usize,
        /// The model.
        model: &'a dyn Module<f32>,
        /// The optimizer.
        optimizer: &'a dyn Optimizer<f32>,
    },
}

/// What a callback wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop: after this step, or after this epoch at its end.
    Stop,
}

/// Trains `model` and evaluates it on `test` after each epoch; `on_event` sees every
/// step and may stop the run. Returns the metrics of the epochs that completed (a
/// stop in the middle of an epoch ends the run without that epoch's metrics).
///
/// A loss that stops being finite ends training with [`Error::Diverged`], naming
/// the epoch and step, before the optimizer applies the bad step.
pub fn fit<D: Dataset + ?Sized, E: Dataset + ?Sized>(
    model: &dyn Module<f32>,
    optimizer: &mut dyn Optimizer<f32>,
    train: &DataLoader<'_, D>,
    test: Option<&DataLoader<'_, E>>,
    loss_fn: LossFn<'_>,
    options: &FitOptions,
    on_event: &mut dyn FnMut(&Event<'_>) -> Control,
) -> Result<Vec<EpochMetrics>> {
    let mut on_event = on_event;
    let fitted = fit_with(
        model,
        optimizer,
        train,
        test,
        loss_fn,
        options,
        &mut [&mut on_event],
    )?;
    Ok(fitted.history)
}

/// How a run of [`fit_with`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Fitted {
    /// The metrics of the epochs that completed.
    pub history: Vec<EpochMetrics>,
    /// `(epoch, step)`, both from 1, where a listener stopped the run mid-epoch.
    pub stopped_at: Option<(usize, usize)>,
}

/// [`fit`], reporting every event to each of `listeners` in turn (all of them see
/// every event, whichever asks to stop). A listener's error ends the run with it.
pub fn fit_with<D: Dataset + ?Sized, E: Dataset + ?Sized>(
    model: &dyn Module<f32>,
    optimizer: &mut dyn Optimizer<f32>,
    train: &DataLoader<'_, D>,
    test: Option<&DataLoader<'_, E>>,
    loss_fn: LossFn<'_>,
    options: &FitOptions,
    listeners: &mut [&mut dyn Listener],
) -> Result<Fitted> {
    let mut tell = |event: &Event<'_>| -> Result<Control> {
        let mut control = Control::Continue;
        for listener in listeners.iter_mut() {
            if listener.on_event(event)? == Control::Stop {
                control = Control::Stop;
            }
        }
        Ok(control)
    };
    let base_lr = options.base_lr.unwrap_or_else(|| optimizer.lr());
    let batches = train.num_batches();
    let probe = options.health.then(|| {
        let dataset = train.dataset();
        let first = (0..dataset.len().min(256)).collect::<Vec<_>>();
        crate::data::make_batch(dataset, &first).inputs
    });
    let world = &options.world;
    let (train, test) = (
        world.shard_loader(train),
        test.map(|t| world.shard_loader(t)),
    );
    let (train, test) = (&train, test.as_ref());
    let mut stepper = parallel::DataParallel::new(world, model, &*optimizer);
    if let Some(chunks) = options.fixed_chunks {
        stepper = stepper.fixed_chunks(chunks)?;
    }
    let mut history = Vec::new();
    let mut stopped_at = None;
    let (mut best_loss, mut epochs_without_improvement) = (f64::INFINITY, 0);
    for epoch in options.start_epoch..options.epochs {
        // the rate of the epoch's first step, whichever way the schedule advances
        let lr = if options.schedule_per_step {
            options.schedule.lr_at(epoch * batches, base_lr)
        } else {
            options.schedule.lr_at(epoch, base_lr)
        };
        optimizer.set_lr(lr);
        if tell(&Event::EpochStart {
            epoch: epoch + 1,
            batches,
        })? == Control::Stop
        {
            stopped_at = Some((epoch + 1, 0));
            break;
        }
        model.train();
        let started = Instant::now();
        let resuming = epoch == options.start_epoch && options.start_step > 0;
        let carried = if resuming {
            options.carried
        } else {
            EpochProgress::default()
        };
        let skip = if resuming { options.start_step } else { 0 };
        let (mut loss_sum, mut correct, mut seen) =
            (carried.loss_sum, carried.correct, carried.seen);
        let mut grad_norms = Default::default();
        stepper.reset_stats();
        for (batch_index, batch) in train.epoch(epoch).enumerate().skip(skip) {
            if options.schedule_per_step {
                optimizer.set_lr(
                    options
                        .schedule
                        .lr_at(epoch * batches + batch_index, base_lr),
                );
            }
            let samples = train.batch_len(batch_index);
            let clip = options.clip_grad_norm;
            let taken = stepper
                .step(model, optimizer, &batch, samples, loss_fn, clip)
                .map_err(|bad| {
                    let at = format!("epoch {}, step {} of {batches}", epoch + 1, batch_index + 1);
                    bad.into_error(&at)
                })?;
            if options.check_replicas_every_step {
                stepper.check_replicas(model)?;
            }
            if options.health && batch_index + 1 == batches {
                grad_norms = health::gradient_norms(model);
            }
            loss_sum += taken.loss * taken.labels as f64;
            correct += taken.correct;
            seen += taken.labels;
            let progress = EpochProgress {
                loss_sum,
                correct,
                seen,
                seconds: carried.seconds + started.elapsed().as_secs_f64(),
            };
            let step = StepPoint {
                step: epoch * batches + batch_index + 1,
                epoch: epoch as f64 + (batch_index + 1) as f64 / batches.max(1) as f64,
                loss: taken.loss,
                accuracy: taken.correct as f64 / taken.labels.max(1) as f64,
                lr: optimizer.lr(),
            };
            let event = Event::BatchEnd {
                epoch: epoch + 1,
                batch: batch_index + 1,
                batches,
                loss: loss_sum / seen as f64,
                accuracy: correct as f64 / seen as f64,
                samples: seen,
                progress,
                step,
                model,
                optimizer: &*optimizer,
            };
            if tell(&event)? == Control::Stop {
                stopped_at = Some((epoch + 1, batch_index + 1));
                tell(&Event::Stopped {
                    epoch: epoch + 1,
                    batch: batch_index + 1,
                    progress,
                    model,
                    optimizer: &*optimizer,
                })?;
                break;
            }
        }
        if stopped_at.is_some() {
            break;
        }
        let seconds = carried.seconds + started.elapsed().as_secs_f64();
        let communication = world.is_distributed().then(|| stepper.stats());
        let (test_loss, test_accuracy) = match test {
            Some(test) => {
                let result = evaluate_in(world, model, test, loss_fn);
                (Some(result.loss), Some(result.accuracy))
            }
            None => (None, None),
        };
        stepper.check_replicas(model)?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            test_loss,
            test_accuracy,
            seconds,
            lr,
            communication,
        };
        let health = match &probe {
            Some(probe) => health::gradient_health(model, probe, &grad_norms),
            None => GradientHealth::default(),
        };
        let line = metrics.line(&health, options.by_steps.then_some(batches));
        let control = tell(&Event::EpochEnd {
            metrics: &metrics,
            health: &health,
            line: &line,
            global_step: (epoch + 1) * batches,
            model,
            optimizer: &*optimizer,
        })?;
        history.push(metrics);
        if control == Control::Stop {
            break;
        }
        if let (Some(rule), Some(loss)) = (options.early_stopping, test_loss) {
            if loss < best_loss - rule.min_delta {
                (best_loss, epochs_without_improvement) = (loss, 0);
            } else {
                epochs_without_improvement += 1;
                if epochs_without_improvement >= rule.patience {
                    break;
                }
            }
        }
    }
    Ok(Fitted {
        history,
        stopped_at,
    })
}

/// What one training step did.
pub struct StepResult {
    /// The batch's loss, before the update.
    pub loss: f64,
    /// The model's output for the batch, before the update (logits, for a classifier).
    pub output: Tensor<f32>,
}

/// Why a step was refused: the loss or a gradient stopped being finite.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// The loss of the step.
    pub loss: f64,
    /// The first parameter whose gradient holds a NaN or infinity, if any does.
    pub parameter: Option<String>,
}

impl Divergence {
    /// [`Error::Diverged`], saying where (`at`, e.g. "epoch 2, step 7 of 469").
    pub fn into_error(self, at: &str) -> Error {
        let layer = self.parameter.map_or_else(
            || "every gradient is still finite".to_string(),
            |name| format!("the first parameter whose gradient went bad is `{name}`"),
        );
        Error::Diverged(format!(
            "the loss became {} at {at} ({layer}); the weights before this step are unchanged",
            self.loss
        ))
    }
}

/// One training step on one batch: forward propagation, the loss (`loss_of` the
/// model's output), backward propagation, a check that the loss and every gradient
/// are finite (before anything moves, so the weights stay good), optional gradient
/// clipping, and the optimizer's update.
///
/// ```
/// use nabla::nn::{Linear, Module, Sequential, Sigmoid};
/// use nabla::optim::{Optimizer, Sgd};
/// use nabla::{Tensor, loss};
/// let model = Sequential::new().layer(Linear::new(2, 1, &mut nabla::rng(0))).layer(Sigmoid);
/// let mut optimizer = Sgd::new(model.named_parameters(), 0.5);
/// let (x, y) = (Tensor::from_vec(vec![1.0, 0.0], &[1, 2]), Tensor::from_vec(vec![1.0], &[1, 1]));
/// let mse = |output: &Tensor| loss::mse_loss(output, &y, loss::Reduction::Mean);
/// let first = nabla::train::step(&model, &mut optimizer, &x, mse, None).unwrap();
/// let second = nabla::train::step(&model, &mut optimizer, &x, mse, None).unwrap();
/// assert!(second.loss < first.loss);
/// ```
pub fn step(
    model: &dyn Module<f32>,
    optimizer: &mut dyn Optimizer<f32>,
    inputs: &Tensor<f32>,
    loss_of: impl FnOnce(&Tensor<f32>) -> Tensor<f32>,
    clip_grad_norm: Option<f64>,
) -> std::result::Result<StepResult, Divergence> {
    let output = model.forward(inputs);
    let loss = loss_of(&output);
    let loss_value = loss.item() as f64;
    optimizer.zero_grad();
    loss.backward();
    update(model, optimizer, loss_value, clip_grad_norm)?;
    Ok(StepResult {
        loss: loss_value,
        output,
    })
}

/// The end of every training step, once the gradients are in (one process's, or
/// the ranks' mean): refuse a step whose loss or any gradient is not finite (before
/// anything moves, so the weights stay good), clip the gradients if asked, and let
/// the optimizer update the weights.
pub(crate) fn update(
    model: &dyn Module<f32>,
    optimizer: &mut dyn Optimizer<f32>,
    loss: f64,
    clip_grad_norm: Option<f64>,
) -> std::result::Result<(), Divergence> {
    let bad_gradient = first_non_finite_gradient(optimizer.params());
    if !loss.is_finite() || bad_gradient.is_some() {
        return Err(Divergence {
            loss,
            parameter: bad_gradient,
        });
    }
    if let Some(max_norm) = clip_grad_norm {
        clip_grad_norm_(&model.parameters(), max_norm);
    }
    optimizer.step();
    Ok(())
}

/// The name of the first parameter whose gradient holds a NaN or infinity.
fn first_non_finite_gradient(params: &[(String, Tensor<f32>)]) -> Option<String> {
    params.iter().find_map(|(name, p)| {
        let grad = p.grad()?;
        let finite = crate::cpu::reduce::all_finite(&grad.data());
        (!finite).then(|| name.clone())
    })
}

/// A model's mean loss and accuracy over a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss per sample.
    pub loss: f64,
    /// Fraction of samples classified right.
    pub accuracy: f64,
    /// Samples evaluated.
    pub samples: usize,
}

/// The mean loss and the accuracy of `model` over every sample of `loader`, in
/// evaluation mode (left set) and without recording a graph.
pub fn evaluate<D: Dataset + ?Sized>(
    model: &dyn Module<f32>,
    loader: &DataLoader<'_, D>,
    loss_fn: LossFn<'_>,
) -> (f64, f64) {
    let result = evaluate_with(model, loader, loss_fn, |_, _| {});
    (result.loss, result.accuracy)
}

/// [`evaluate`], also showing every batch's logits and labels to `visit` (for a
/// confusion matrix, say).
pub fn evaluate_with<D: Dataset + ?Sized>(
    model: &dyn Module<f32>,
    loader: &DataLoader<'_, D>,
    loss_fn: LossFn<'_>,
    mut visit: impl FnMut(&Tensor<f32>, &[usize]),
) -> Evaluation {
    let _guard = no_grad();
    model.eval();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    for batch in loader.epoch(0) {
        if batch.labels.is_empty() {
            continue; // a rank's empty share of a small last batch
        }
        let logits = model.forward(&batch.inputs);
        let size = batch.labels.len();
        loss_sum += loss_fn(&logits, &batch.labels).item() as f64 * size as f64;
        correct += correct_count(&logits, &batch.labels);
        seen += size;
        visit(&logits, &batch.labels);
    }
    Evaluation {
        loss: loss_sum / seen.max(1) as f64,
        accuracy: correct as f64 / seen.max(1) as f64,
        samples: seen,
    }
}

/// [`evaluate_with`] over all ranks of `world`: each evaluates its share of every
/// batch, and the sums are combined, so every rank gets the result over all samples.
pub fn evaluate_in<D: Dataset + ?Sized>(
    world: &World,
    model: &dyn Module<f32>,
    loader: &DataLoader<'_, D>,
    loss_fn: LossFn<'_>,
) -> Evaluation {
    if !world.is_distributed() {
        return evaluate_with(model, loader, loss_fn, |_, _| {});
    }
    let share = world.shard_loader(loader);
    let mine = evaluate_with(model, &share, loss_fn, |_, _| {});
    let mut sums = [
        mine.loss * mine.samples as f64,
        (mine.accuracy * mine.samples as f64).round(), // the count of right answers
        mine.samples as f64,
    ];
    world.sum_f64(&mut sums);
    let seen = sums[2].max(1.0);
    Evaluation {
        loss: sums[0] / seen,
        accuracy: sums[1] / seen,
        samples: sums[2] as usize,
    }
}

#[cfg(test)]
mod progress_tests {
    use super::EpochProgress;

    /// A checkpoint carries an epoch's running sums as JSON; resuming must get back
    /// the very same bits, or the resumed epoch's train loss differs in its last digit
    /// (serde_json's default float parsing is only nearly exact: `float_roundtrip`).
    #[test]
    fn progress_round_trips_exactly() {
        let mut value = 1.2729074885447822f64;
        for step in 0..10_000 {
            value = value * 1.000_173 + step as f64 * 1e-7;
            let sums = EpochProgress {
                loss_sum: value * 3_000.0,
                correct: step,
                seen: 3_000,
                seconds: value / 7.0,
            };
            let text = serde_json::to_string(&sums).unwrap();
            let back: EpochProgress = serde_json::from_str(&text).unwrap();
            assert_eq!(back, sums, "{text}");
        }
    }
}
