//! What a user sees while training: a progress bar per epoch on a terminal, plain
//! lines otherwise (logs, CI), and a summary line per epoch.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::{Control, EpochMetrics, Event, Listener};

/// Shows training progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    terminal: bool,
    epochs: usize,
    started: Instant,
    last_reported_tenth: usize,
    /// A language model trained by steps: periods of this many steps.
    steps_per_period: Option<usize>,
}

impl Progress {
    /// A bar on a terminal, plain lines elsewhere.
    pub fn new(epochs: usize) -> Self {
        Progress {
            bar: None,
            terminal: std::io::stdout().is_terminal(),
            epochs,
            started: Instant::now(),
            last_reported_tenth: 0,
            steps_per_period: None,
        }
    }

    /// Reports steps and tokens (a language model trained by `max_steps`, in
    /// periods of `steps_per_period` steps) instead of epochs and samples.
    pub fn by_steps(mut self, steps_per_period: Option<usize>) -> Self {
        self.steps_per_period = steps_per_period;
        self
    }

    /// A new epoch of `batches` steps begins.
    pub fn start_epoch(&mut self, epoch: usize, batches: usize) {
        self.started = Instant::now();
        self.last_reported_tenth = 0;
        if self.terminal {
            let bar = ProgressBar::new(batches as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(match self.steps_per_period {
                Some(steps) => format!("{epoch}/{} ({steps} steps)", self.epochs),
                None => format!("{epoch}/{}", self.epochs),
            });
            self.bar = Some(bar);
        }
    }

    /// A step finished; `loss` and `accuracy` are running means over the epoch.
    pub fn step(&mut self, batch: usize, batches: usize, loss: f64, accuracy: f64, samples: usize) {
        let rate = samples as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let unit = if self.steps_per_period.is_some() {
            "tokens"
        } else {
            "samples"
        };
        let message = format!(
            "loss {loss:.4} acc {:.2}% {rate:.0} {unit}/s",
            100.0 * accuracy
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(batch as u64);
                bar.set_message(message);
            }
            None => {
                // a plain line at each quarter of a long epoch
                let tenth = batch * 4 / batches.max(1);
                if batches >= 40 && tenth > self.last_reported_tenth && tenth < 4 {
                    self.last_reported_tenth = tenth;
                    outln!("  step {batch}/{batches}: {message}");
                }
            }
        }
    }

    /// The epoch ended: clear the bar and print its summary line.
    pub fn end_epoch(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let line = match self.steps_per_period {
            Some(steps) => steps_summary_line(m, self.epochs, steps),
            None => summary_line(m, self.epochs),
        };
        outln!("{line}");
    }

    /// A message that must not be mixed into the bar.
    pub fn println(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => outln!("{message}"),
        }
    }

    /// Removes the bar (before an early exit).
    pub fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// `epoch 3/5  train loss 0.0565 acc 98.21%  test loss 0.0911 acc 97.67%  0.85 s  lr 0.05`
pub fn summary_line(m: &EpochMetrics, epochs: usize) -> String {
    let test = match (m.test_loss, m.test_accuracy) {
        (Some(loss), Some(accuracy)) => {
            format!("  test loss {loss:.4} acc {:.2}%", 100.0 * accuracy)
        }
        _ => String::new(),
    };
    format!(
        "epoch {}/{epochs}  train loss {:.4} acc {:.2}%{test}  {:.2} s  lr {:.4e}",
        m.epoch,
        m.train_loss,
        100.0 * m.train_accuracy,
        m.seconds,
        m.lr
    )
}

/// `step 500/3000  train loss 1.9012 nats (6.69 ppl)  val loss 1.8867 nats (6.60 ppl) acc 44.1%  60.2 s  lr 1.0000e-3`:
/// a language model's period, its losses in nats per token and as perplexity.
pub fn steps_summary_line(m: &EpochMetrics, periods: usize, steps_per_period: usize) -> String {
    let val = match (m.test_loss, m.test_accuracy) {
        (Some(loss), Some(accuracy)) => format!(
            "  val loss {loss:.4} nats ({:.2} ppl) acc {:.1}%",
            loss.exp(),
            100.0 * accuracy
        ),
        _ => String::new(),
    };
    format!(
        "step {}/{}  train loss {:.4} nats ({:.2} ppl){val}  {:.1} s  lr {:.4e}",
        m.epoch * steps_per_period,
        periods * steps_per_period,
        m.train_loss,
        m.train_loss.exp(),
        m.seconds,
        m.lr
    )
}

/// As a listener: a bar (or lines) per epoch, its summary line and its health
/// warnings.
impl Listener for Progress {
    fn on_event(&mut self, event: &Event<'_>) -> crate::Result<Control> {
        match event {
            Event::EpochStart { epoch, batches } => self.start_epoch(*epoch, *batches),
            Event::BatchEnd {
                batch,
                batches,
                loss,
                accuracy,
                samples,
                ..
            } => self.step(*batch, *batches, *loss, *accuracy, *samples),
            Event::EpochEnd {
                metrics, health, ..
            } => {
                self.end_epoch(metrics);
                for warning in &health.warnings {
                    self.println(&format!("  warning: {warning}"));
                }
            }
            Event::Stopped { .. } => self.abandon(),
        }
        Ok(Control::Continue)
    }
}
