//! What the page shows about one run, as plain data: the step and epoch series, the
//! gradient health, the network, and the pictures of what the model has learned.
//! The training thread appends to it; each browser connection reads what is new
//! since its last look ([`RunState::update_since`]), so no browser ever holds up
//! the training.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};

pub use crate::metrics::Histogram;
pub use crate::train::StepPoint;

/// One run's state, shared between the training thread and the server.
pub type SharedRun = Arc<Mutex<RunState>>;

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Training, or (read from disk) not known to be done.
    Running,
    /// Every planned epoch ran (or early stopping ended it).
    Finished,
    /// Stopped by Ctrl-C; a checkpoint was saved.
    Interrupted,
    /// Stopped by an error (see [`RunState::message`]).
    Failed,
}

/// One parameter's weights and (last step's) gradient, binned.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParameterHistogram {
    /// The parameter's name (`0.weight`), as in the checkpoint.
    pub name: String,
    /// Its values at the end of the epoch.
    pub weights: Histogram,
    /// Its gradient at the epoch's last step.
    pub gradients: Option<Histogram>,
}

/// Every parameter's histograms at the end of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochHistograms {
    /// The epoch, counting from 1.
    pub epoch: usize,
    /// One entry per parameter, in the model's order.
    pub parameters: Vec<ParameterHistogram>,
}

/// A fully connected layer's weights as drawn: the first `shown_outputs ×
/// shown_inputs` of them, row by row (an output unit per row).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DenseWeights {
    /// The layer's inputs.
    pub inputs: usize,
    /// The layer's outputs.
    pub outputs: usize,
    /// How many inputs are drawn.
    pub shown_inputs: usize,
    /// How many outputs are drawn.
    pub shown_outputs: usize,
    /// `weight[o][i]` for the drawn units, row-major.
    pub values: Vec<f32>,
}

/// One layer as the page draws it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerView {
    /// What the layer is (`Linear(in=2, out=64, bias=true)`).
    pub description: String,
    /// Its output shape for one sample.
    pub output_shape: Vec<usize>,
    /// Its number of parameters.
    pub parameters: usize,
    /// A linear layer's weights, to draw as lines.
    pub dense: Option<DenseWeights>,
}

/// The network: its input shape and its layers in order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetworkView {
    /// One sample's shape.
    pub input_shape: Vec<usize>,
    /// The layers, in order.
    pub layers: Vec<LayerView>,
    /// The epoch whose weights are drawn (0: before training).
    pub epoch: usize,
}

/// Labelled points of 2-feature data, as the model sees them (after standardising).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanePoints {
    /// The drawn square of the input plane: `[x_min, x_max, y_min, y_max]`.
    pub extent: [f64; 4],
    /// Each point's `[x, y]`.
    pub xy: Vec<[f32; 2]>,
    /// Each point's class.
    pub labels: Vec<usize>,
    /// Whether each point is in the test split.
    pub test: Vec<bool>,
    /// The class names.
    pub class_names: Vec<String>,
}

/// The model's decision over the input plane at one moment: a `size × size` grid
/// of cells over [`PlanePoints::extent`], top row first (largest y).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionFrame {
    /// When it was taken, in (fractional) epochs.
    pub epoch: f64,
    /// Cells per side.
    pub size: usize,
    /// The predicted class of each cell.
    pub classes: Vec<u16>,
    /// The predicted class's probability, ×255.
    pub confidence: Vec<u8>,
}

/// A fixed set of test images (pixels scaled to 0–255 per image for display) and
/// what the model predicts for them after each epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageSamples {
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// Each image's pixels, channel-major.
    pub pixels: Vec<Vec<u8>>,
    /// Each image's true class.
    pub labels: Vec<usize>,
    /// The class names.
    pub class_names: Vec<String>,
}

/// The predictions for [`ImageSamples`] after one epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImagePredictions {
    /// The epoch, counting from 1.
    pub epoch: usize,
    /// The predicted class of each sample image.
    pub predicted: Vec<usize>,
}

/// Everything recorded about one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunState {
    /// The name the API knows it by (URL-safe).
    pub id: String,
    /// The run directory.
    pub path: String,
    /// Where it stands.
    pub status: Status,
    /// Why it failed, or how it was stopped.
    pub message: Option<String>,
    /// The resolved config (TOML).
    pub config: String,
    /// The planned number of epochs.
    pub epochs: usize,
    /// Steps per epoch (0 when unknown).
    pub steps_per_epoch: usize,
    /// Every step so far.
    pub steps: Vec<StepPoint>,
    /// The `metrics.jsonl` lines so far.
    pub metrics: Vec<Value>,
    /// The gradient-health warnings, each with its epoch.
    pub warnings: Vec<(usize, String)>,
    /// Histograms per epoch.
    pub histograms: Vec<EpochHistograms>,
    /// The latest weights, drawn.
    pub network: Option<NetworkView>,
    /// 2-feature data: its points.
    pub plane: Option<PlanePoints>,
    /// 2-feature data: the decision regions over time.
    pub regions: Vec<RegionFrame>,
    /// Image data: the sample images.
    pub images: Option<ImageSamples>,
    /// Image data: the predictions for them, per epoch.
    pub predictions: Vec<ImagePredictions>,
    /// The step view of the run's model, when it can be explained.
    #[serde(skip)]
    pub step: Option<Arc<super::step::StepView>>,
    /// Bumped whenever a field without a history (status, plane, images…) changes,
    /// so a reader knows to send them again.
    #[serde(skip)]
    version: u64,
    /// Bumped when the network is redrawn (every epoch), sent on its own so the
    /// larger, fixed fields (the plane's points, the sample images) are not resent.
    #[serde(skip)]
    network_version: u64,
    /// Bumped when the history is thrown away ([`RunState::start_over`]), so a reader
    /// knows to take everything again.
    #[serde(skip)]
    generation: u64,
}

/// How much of a [`RunState`] a reader has already seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    steps: usize,
    metrics: usize,
    warnings: usize,
    histograms: usize,
    regions: usize,
    predictions: usize,
    version: u64,
    network_version: u64,
    generation: u64,
}

impl RunState {
    /// A run about to start (or read from disk) with nothing recorded yet.
    pub fn new(id: &str, path: &str, config: &str) -> RunState {
        RunState {
            id: id.to_string(),
            path: shown_path(path),
            status: Status::Running,
            message: None,
            config: shown_config(config),
            epochs: 0,
            steps_per_epoch: 0,
            steps: Vec::new(),
            metrics: Vec::new(),
            warnings: Vec::new(),
            histograms: Vec::new(),
            network: None,
            plane: None,
            regions: Vec::new(),
            images: None,
            predictions: Vec::new(),
            step: None,
            version: 1,
            network_version: 0,
            generation: 0,
        }
    }

    /// Forgets every recorded series (a run resumed from an earlier point rewrote
    /// its history); readers are sent everything again.
    pub fn start_over(&mut self) {
        self.steps.clear();
        self.metrics.clear();
        self.warnings.clear();
        self.histograms.clear();
        self.regions.clear();
        self.predictions.clear();
        self.generation += 1;
        self.version += 1;
    }

    /// Shared between threads.
    pub fn shared(self) -> SharedRun {
        Arc::new(Mutex::new(self))
    }

    /// Sets the status (and its message).
    pub fn set_status(&mut self, status: Status, message: Option<String>) {
        (self.status, self.message) = (status, message);
        self.version += 1;
    }

    /// Replaces the drawn network.
    pub fn set_network(&mut self, network: NetworkView) {
        self.network = Some(network);
        self.network_version += 1;
    }

    /// Sets the 2-feature data's points.
    pub fn set_plane(&mut self, plane: PlanePoints) {
        self.plane = Some(plane);
        self.version += 1;
    }

    /// Sets the sample images.
    pub fn set_images(&mut self, images: ImageSamples) {
        self.images = Some(images);
        self.version += 1;
    }

    /// One line of `/api/runs`: who the run is and how far it got.
    pub fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "path": self.path,
            "status": self.status,
            "epochs": self.epochs,
            "epochs_done": self.metrics.len(),
            "steps": self.steps.len(),
            "step_view": self.step.is_some(),
        })
    }

    /// A cursor at the very start: the first update is everything.
    pub fn start() -> Cursor {
        Cursor::default()
    }

    /// What was added or changed since `cursor` (as one JSON object whose arrays
    /// hold only the new entries), moving `cursor` to now; `None` when nothing was.
    /// The first update, and the first after [`RunState::start_over`], holds
    /// everything and says `"full": true`.
    pub fn update_since(&self, cursor: &mut Cursor) -> Option<Value> {
        let full = *cursor == Cursor::default() || cursor.generation != self.generation;
        if full {
            *cursor = Cursor::default();
        }
        let now = Cursor {
            steps: self.steps.len(),
            metrics: self.metrics.len(),
            warnings: self.warnings.len(),
            histograms: self.histograms.len(),
            regions: self.regions.len(),
            predictions: self.predictions.len(),
            version: self.version,
            network_version: self.network_version,
            generation: self.generation,
        };
        if now == *cursor {
            return None;
        }
        let mut update = json!({
            "id": self.id,
            "full": full,
            "steps": &self.steps[cursor.steps..],
            "metrics": &self.metrics[cursor.metrics..],
            "warnings": &self.warnings[cursor.warnings..],
            "histograms": &self.histograms[cursor.histograms..],
            "regions": &self.regions[cursor.regions..],
            "predictions": &self.predictions[cursor.predictions..],
        });
        if full || now.version != cursor.version {
            // the fields without a history; the series went above, as slices
            let fields = json!({
                "path": self.path,
                "status": self.status,
                "message": self.message,
                "config": self.config,
                "epochs": self.epochs,
                "steps_per_epoch": self.steps_per_epoch,
                "plane": self.plane,
                "images": self.images,
            });
            if let Value::Object(fields) = fields {
                for (field, value) in fields {
                    update[field] = value;
                }
            }
        }
        if full || now.network_version != cursor.network_version {
            update["network"] = json!(self.network);
        }
        *cursor = now;
        Some(update)
    }
}

/// A path as the API shows it: a relative path as given; an absolute one relative to
/// the working directory when inside it, else `…/` and its last component. Other
/// sites cannot reach the API (the server checks `Host`), and its own page needs a
/// name to show, not a map of the user's disk.
pub fn shown_path(path: &str) -> String {
    let path = std::path::Path::new(path);
    if !path.is_absolute() {
        return path.display().to_string();
    }
    let inside_working_dir = std::env::current_dir().ok().and_then(|here| {
        path.strip_prefix(here)
            .ok()
            .map(|rest| rest.display().to_string())
    });
    match inside_working_dir {
        Some(rest) if !rest.is_empty() => rest,
        _ => match path.file_name() {
            Some(name) => format!("…/{}", name.to_string_lossy()),
            None => "/".into(),
        },
    }
}

/// The config's text with every absolute path in it shown as [`shown_path`] does
/// (untouched, comments and all, when it has none).
fn shown_config(config: &str) -> String {
    /// Hides the absolute paths in `value`; whether there were any.
    fn hide(value: &mut toml::Value) -> bool {
        match value {
            toml::Value::String(text) if std::path::Path::new(text.as_str()).is_absolute() => {
                *text = shown_path(text);
                true
            }
            toml::Value::Array(items) => items.iter_mut().map(hide).fold(false, |a, b| a | b),
            toml::Value::Table(table) => table
                .iter_mut()
                .map(|(_, value)| hide(value))
                .fold(false, |a, b| a | b),
            _ => false,
        }
    }
    let Ok(table) = config.parse::<toml::Table>() else {
        return config.to_string();
    };
    let mut value = toml::Value::Table(table);
    if !hide(&mut value) {
        return config.to_string();
    }
    toml::to_string(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_shows_no_absolute_path() {
        let here = std::env::current_dir().unwrap();
        let inside = here.join("runs/mlp");
        assert_eq!(shown_path(&inside.display().to_string()), "runs/mlp");
        assert_eq!(shown_path("runs/mlp"), "runs/mlp");
        assert_eq!(shown_path("/home/someone/secret/mlp"), "…/mlp");
        let config = "# mine\n[data]\npath = \"/home/someone/data/mnist\"\nextra = [\"/srv/x.csv\", \"y.csv\"]\n";
        let run = RunState::new("mlp", "/home/someone/runs/mlp", config);
        let everything = run
            .update_since(&mut RunState::start())
            .unwrap()
            .to_string();
        assert!(
            !everything.contains("/home/") && !everything.contains("/srv/"),
            "{everything}"
        );
        assert!(
            everything.contains("…/mnist") && everything.contains("…/x.csv"),
            "{everything}"
        );
        let plain = "# mine\n[data]\npath = \"data/mnist\"\n";
        assert_eq!(RunState::new("mlp", "runs/mlp", plain).config, plain);
    }

    #[test]
    fn an_update_holds_only_what_is_new() {
        let mut run = RunState::new("run", "runs/run", "");
        let mut cursor = RunState::start();
        let first = run
            .update_since(&mut cursor)
            .expect("the first update is everything");
        assert_eq!(first["status"], "running");
        assert!(run.update_since(&mut cursor).is_none(), "nothing changed");

        run.metrics.push(json!({"epoch": 1}));
        run.metrics.push(json!({"epoch": 2}));
        let update = run.update_since(&mut cursor).unwrap();
        assert_eq!(update["metrics"].as_array().unwrap().len(), 2);
        assert!(
            update.get("status").is_none(),
            "unchanged fields are not resent"
        );

        run.metrics.push(json!({"epoch": 3}));
        run.set_status(Status::Finished, None);
        let update = run.update_since(&mut cursor).unwrap();
        assert_eq!(update["metrics"], json!([{"epoch": 3}]));
        assert_eq!(update["status"], "finished");
        assert_eq!(update["full"], false);

        // a redrawn network comes alone, without the fixed fields
        run.set_network(NetworkView {
            input_shape: vec![2],
            layers: vec![],
            epoch: 3,
        });
        let update = run.update_since(&mut cursor).unwrap();
        assert_eq!(update["network"]["epoch"], 3);
        assert!(update.get("status").is_none() && update.get("plane").is_none());

        // history rewritten: everything again, marked full
        run.start_over();
        run.metrics.push(json!({"epoch": 1}));
        let update = run.update_since(&mut cursor).unwrap();
        assert_eq!(
            (update["full"].clone(), update["metrics"].clone()),
            (json!(true), json!([{"epoch": 1}]))
        );
        assert_eq!(update["status"], "finished");
    }
}
