//! Runs read from their directories (`nabla dashboard RUN_DIR…`): the config, the
//! `metrics.jsonl` and `steps.jsonl` lines, and the pictures of the saved model. A watcher thread per
//! run picks up new lines and a newer model while the run is still training.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::recorder::Probes;
use super::samples::SavedSamples;
use super::state::{RunState, SharedRun, Status};
use super::views;
use crate::error::Result;
use crate::experiment::{self, Config};
use crate::run::{SavedRun, files};

/// How often a run directory is looked at again.
const POLL: Duration = Duration::from_secs(1);
/// A run that has not written for this long, short of its last epoch, has stopped.
const QUIET: Duration = Duration::from_secs(600);

/// A URL-safe id for a run directory (its name), distinct from `taken`.
pub fn run_id(dir: &Path, taken: &[String]) -> String {
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.trim_matches('.').is_empty() {
        "run".to_string()
    } else {
        name
    };
    let mut id = name.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{name}-{n}");
        n += 1;
    }
    id
}

pub use crate::run::dir::{read_metrics, read_steps};

/// Opens a run directory: its config and the epochs it has recorded. The
/// pictures follow from [`watch`].
pub fn open(dir: &Path, id: &str) -> Result<SharedRun> {
    let config_path = dir.join(files::CONFIG);
    if !config_path.is_file() {
        return Err(crate::Error::format(
            dir,
            "is not a run directory: it has no config.toml (give the --out directory of `nabla train`)",
        ));
    }
    let config = Config::load(&config_path)?;
    let mut state = RunState::new(id, &dir.display().to_string(), &config.to_toml());
    state.step = Some(super::step::StepView::new(
        crate::explain::source::StepSource::run(dir),
    ));
    state.epochs = config.train.periods();
    state.metrics = read_metrics(dir);
    let (status, message) = status_of(dir, state.metrics.len(), state.epochs);
    state.set_status(status, message);
    Ok(state.shared())
}

/// Finished when every epoch is recorded; stopped when nothing was written for a
/// while; otherwise still running.
fn status_of(dir: &Path, epochs_done: usize, epochs: usize) -> (Status, Option<String>) {
    if epochs_done >= epochs {
        return (Status::Finished, None);
    }
    let quiet = [files::METRICS, files::CHECKPOINT, files::CONFIG]
        .iter()
        .filter_map(|file| modified(&dir.join(file)))
        .max()
        .and_then(|last| last.elapsed().ok())
        .is_none_or(|since| since > QUIET);
    if quiet {
        let message = format!(
            "stopped after {epochs_done} of {epochs} epochs; continue with `nabla train --resume {}`",
            dir.display()
        );
        (Status::Interrupted, Some(message))
    } else {
        (Status::Running, None)
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Follows a run directory on a thread of its own: new metrics lines as they are
/// written and, whenever `model.safetensors` changes, the network, histograms and
/// decision regions of the saved model (the data is loaded once, if it still can be).
pub fn watch(run: SharedRun, dir: PathBuf) {
    let shown = dir.display().to_string();
    let spawned = std::thread::Builder::new()
        .name("dashboard-watch".into())
        .spawn(move || {
            let mut pictures = Pictures::new(&dir);
            let mut model_time = None;
            let mut steps_read = 0;
            loop {
                let lines = read_metrics(&dir);
                let shrunk = |file: &str, read: u64| {
                    std::fs::metadata(dir.join(file)).is_ok_and(|m| m.len() < read)
                };
                // a run resumed from an earlier checkpoint rewrote its history: start over
                let rewound = shrunk(files::STEPS, steps_read)
                    || lines.len() < run.lock().expect("the run's lock").metrics.len();
                if rewound {
                    run.lock().expect("the run's lock").start_over();
                    (steps_read, model_time) = (0, None);
                }
                let (steps, offset) = read_steps(&dir, steps_read);
                steps_read = offset;
                let model_now = modified(&dir.join(files::MODEL));
                if model_now != model_time {
                    model_time = model_now;
                    pictures.refresh(&run, &dir, lines.len());
                }
                {
                    let mut state = run.lock().expect("the run's lock");
                    state.steps.extend(steps);
                    if lines.len() > state.metrics.len() {
                        let new = lines[state.metrics.len()..].to_vec();
                        state.metrics.extend(new);
                    }
                    let (status, message) = status_of(&dir, state.metrics.len(), state.epochs);
                    if status != state.status {
                        state.set_status(status, message);
                    }
                }
                std::thread::sleep(POLL);
            }
        });
    if spawned.is_err() {
        eprintln!("warning: dashboard: could not start watching {shown}");
    }
}

/// What a saved run's pictures are drawn from: the run directory alone — the model
/// and `samples.safetensors` — or, for a run written before it saved its samples,
/// its data while it can still be read.
struct Pictures {
    samples: Option<SavedSamples>,
}

impl Pictures {
    /// The run's saved samples, or its data's (a note when neither can be had).
    fn new(dir: &Path) -> Pictures {
        let samples = SavedSamples::load(dir).and_then(|saved| match saved {
            Some(saved) => Ok(Some(saved)),
            None => {
                let config = Config::load(&dir.join(files::CONFIG))?;
                Ok(SavedSamples::of(&experiment::load_data(&config)?))
            }
        });
        match samples {
            Ok(samples) => Pictures { samples },
            Err(e) => {
                eprintln!(
                    "note: {}: no decision regions or test images: the run has no {} and its data did not load: {e}",
                    dir.display(),
                    files::SAMPLES
                );
                Pictures { samples: None }
            }
        }
    }

    /// Opens the saved model and redraws.
    fn refresh(&mut self, run: &SharedRun, dir: &Path, epoch: usize) {
        let Ok(saved) = SavedRun::open(dir) else {
            return;
        };
        let (model, input_shape) = (&saved.model, &saved.preprocessing.input_shape);
        let network = views::network_view(model, input_shape, epoch);
        let histograms = views::histograms(model, epoch, &[]);
        let probes = self.samples.as_ref().map(SavedSamples::probes);
        let probes = probes.as_ref();
        let frame = probes
            .and_then(Probes::regions)
            .map(|probe| probe.frame(model, epoch as f64));
        let predicted = probes
            .and_then(Probes::images)
            .map(|probe| probe.predict(model));
        let mut state = run.lock().expect("the run's lock");
        state.set_network(network);
        if state.histograms.last().is_none_or(|h| h.epoch != epoch) {
            state.histograms.push(histograms);
        }
        if let Some(probe) = probes.and_then(Probes::regions) {
            state.set_plane(probe.plane().clone());
        }
        if let Some(frame) = frame {
            state.regions.push(frame);
        }
        if let (Some(probe), Some(predicted)) = (probes.and_then(Probes::images), predicted) {
            if state.images.is_none() {
                state.set_images(probe.samples().clone());
            }
            state
                .predictions
                .push(super::state::ImagePredictions { epoch, predicted });
        }
    }
}
