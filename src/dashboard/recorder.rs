//! The training side of the dashboard: turns what the training loop reports
//! (steps, epochs) into the run's [`RunState`](super::RunState), on the training thread. Each call
//! holds the run's lock only to append; the pictures are computed before taking it.

use std::time::Instant;

use serde_json::Value;

use super::state::{Histogram, ImagePredictions, SharedRun, Status, StepPoint};
use super::views::{self, ImageProbe, RegionProbe};
use crate::data::Dataset;
use crate::nn::Module;
use crate::train::{Control, Event, Listener};

/// Decision-region frames kept one per epoch; after that, every 2nd epoch, then
/// every 4th…, so a long run's history stays small.
const FRAMES_EVERY_EPOCH: usize = 500;
/// An epoch that runs longer than this gets frames during it, this far apart.
const SECONDS_BETWEEN_FRAMES: f64 = 0.5;

/// What the run's data lets the page show besides curves.
#[derive(Default)]
pub struct Probes {
    regions: Option<RegionProbe>,
    images: Option<ImageProbe>,
}

impl Probes {
    /// Decision regions for 2-feature data, sample predictions for images
    /// (`image_shape`: `[channels, height, width]`, when the samples are images).
    pub fn new(
        train: &dyn Dataset,
        test: &dyn Dataset,
        class_names: &[String],
        image_shape: Option<[usize; 3]>,
    ) -> Probes {
        Probes {
            regions: RegionProbe::new(train, test, class_names),
            images: image_shape
                .filter(|_| !test.is_empty())
                .map(|shape| ImageProbe::new(test, shape, class_names)),
        }
    }

    /// The decision-region probe (2-feature data).
    pub fn regions(&self) -> Option<&RegionProbe> {
        self.regions.as_ref()
    }

    /// The sample-image probe (image data).
    pub fn images(&self) -> Option<&ImageProbe> {
        self.images.as_ref()
    }
}

/// Records a training run into its [`SharedRun`].
pub struct Recorder {
    run: SharedRun,
    input_shape: Vec<usize>,
    probes: Probes,
    last_frame: Instant,
    /// The gradients at the epoch's last step, binned.
    gradients: Vec<(String, Histogram)>,
}

impl Recorder {
    /// Starts recording: the network as it is now, the data's points or images,
    /// the plan (`epochs` of `steps_per_epoch`).
    pub fn new(
        run: SharedRun,
        model: &dyn Module<f32>,
        input_shape: &[usize],
        probes: Probes,
        epochs: usize,
        steps_per_epoch: usize,
    ) -> Recorder {
        let network = views::network_view(model, input_shape, 0);
        let frame = probes.regions.as_ref().map(|probe| probe.frame(model, 0.0));
        {
            let mut state = run.lock().expect("the run's lock");
            let epochs_done = state.metrics.len() as f64;
            state.epochs = epochs;
            state.steps_per_epoch = steps_per_epoch;
            state.set_network(network);
            if let Some(probe) = &probes.regions {
                state.set_plane(probe.plane().clone());
            }
            if let Some(mut frame) = frame {
                frame.epoch = epochs_done;
                state.regions.push(frame);
            }
            if let Some(probe) = &probes.images {
                state.set_images(probe.samples().clone());
            }
        }
        Recorder {
            run,
            input_shape: input_shape.to_vec(),
            probes,
            last_frame: Instant::now(),
            gradients: Vec::new(),
        }
    }

    /// The recorder of a run of a config's `data`; a resumed run (`resumed_from` its
    /// directory) first shows what it had recorded.
    pub fn for_data(
        run: SharedRun,
        resumed_from: Option<&std::path::Path>,
        data: &crate::experiment::Data,
        model: &dyn Module<f32>,
        (epochs, steps_per_epoch): (usize, usize),
    ) -> Recorder {
        if let Some(dir) = resumed_from {
            let mut state = run.lock().expect("the run's lock");
            state.metrics = super::disk::read_metrics(dir);
            state.steps = super::disk::read_steps(dir, 0).0;
        }
        let probes = super::samples::SavedSamples::of(data)
            .map_or_else(Probes::default, |samples| samples.probes());
        let input_shape = data.train.feature_shape();
        Recorder::new(run, model, input_shape, probes, epochs, steps_per_epoch)
    }

    /// After step `batch` of `batches` of `epoch` (from 1): the step's own loss and
    /// accuracy (`None` for the first step after resuming mid-epoch), the gradients
    /// at an epoch's last step, and, in a long epoch, a frame.
    pub fn step(
        &mut self,
        model: &dyn Module<f32>,
        (epoch, batch, batches): (usize, usize, usize),
        point: Option<StepPoint>,
    ) {
        if batch == batches {
            self.gradients = views::gradient_histograms(model);
        }
        let fraction = (epoch - 1) as f64 + batch as f64 / batches.max(1) as f64;
        let frame = self
            .probes
            .regions
            .as_ref()
            .filter(|_| batch < batches)
            .filter(|_| self.last_frame.elapsed().as_secs_f64() >= SECONDS_BETWEEN_FRAMES)
            .map(|probe| probe.frame(model, fraction));
        let mut state = self.run.lock().expect("the run's lock");
        state.steps.extend(point);
        if let Some(frame) = frame {
            state.regions.push(frame);
            self.last_frame = Instant::now();
        }
    }

    /// After an epoch: its `metrics.jsonl` line, the health warnings, the
    /// histograms, the network's new weights, a decision-region frame and the
    /// sample images' predictions.
    pub fn end_epoch(&mut self, model: &dyn Module<f32>, line: Value, warnings: &[String]) {
        let epoch = line["epoch"].as_u64().unwrap_or(0) as usize;
        let histograms = views::histograms(model, epoch, &self.gradients);
        let network = views::network_view(model, &self.input_shape, epoch);
        let (last, frames) = {
            let state = self.run.lock().expect("the run's lock");
            (state.epochs == epoch, state.regions.len())
        };
        let stride = 1usize
            << frames
                .saturating_sub(FRAMES_EVERY_EPOCH)
                .div_ceil(FRAMES_EVERY_EPOCH / 2);
        let frame = self
            .probes
            .regions
            .as_ref()
            .filter(|_| epoch.is_multiple_of(stride) || last)
            .map(|probe| probe.frame(model, epoch as f64));
        let predicted = self
            .probes
            .images
            .as_ref()
            .map(|probe| probe.predict(model));
        let mut state = self.run.lock().expect("the run's lock");
        state.metrics.push(line);
        state
            .warnings
            .extend(warnings.iter().map(|warning| (epoch, warning.clone())));
        state.histograms.push(histograms);
        state.set_network(network);
        if let Some(frame) = frame {
            state.regions.push(frame);
            self.last_frame = Instant::now();
        }
        if let Some(predicted) = predicted {
            state
                .predictions
                .push(ImagePredictions { epoch, predicted });
        }
    }

    /// The run it records into.
    pub fn run(&self) -> &SharedRun {
        &self.run
    }

    /// How the run ended.
    pub fn finish(&self, status: Status, message: Option<String>) {
        self.run
            .lock()
            .expect("the run's lock")
            .set_status(status, message);
    }
}

/// As a listener, the recorder shows each step, and each epoch's line, health
/// warnings and pictures.
impl Listener for Recorder {
    fn on_event(&mut self, event: &Event<'_>) -> crate::Result<Control> {
        match event {
            Event::BatchEnd {
                epoch,
                batch,
                batches,
                step,
                model,
                ..
            } => self.step(*model, (*epoch, *batch, *batches), Some(*step)),
            Event::EpochEnd {
                line,
                health,
                model,
                ..
            } => self.end_epoch(*model, (*line).clone(), &health.warnings),
            Event::EpochStart { .. } | Event::Stopped { .. } => {}
        }
        Ok(Control::Continue)
    }
}
