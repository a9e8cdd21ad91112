//! The live dashboard: watch a network learn in the browser.
//!
//! `nabla train CONFIG --dashboard` records the run as it trains ([`Recorder`]) and
//! serves a page ([`Dashboard`]) that draws it: the loss and accuracy per step and
//! per epoch, the learning rate, each parameter's gradient norm and histograms, the
//! dead-ReLU fractions and warnings, the network with its weights, and — for
//! 2-feature data — the decision regions forming over the input plane, or for
//! images, test images with what the model predicts for them.
//! `nabla dashboard RUN_DIR…` serves finished or running run directories side by
//! side ([`disk`]).
//!
//! The pieces, each with one job: [`state`] (the plain data of a run, and what is new
//! since a reader last looked), [`views`] (the pictures, computed from the model in
//! evaluation mode so watching never changes what is trained), [`recorder`]
//! (training events into the state), [`server`] (HTTP and the event stream),
//! `assets/` (the page: plain HTML, canvas and JavaScript, no outside library).
//!
//! ```no_run
//! use nabla::dashboard::{Dashboard, RunState};
//! let run = RunState::new("demo", "runs/demo", "").shared();
//! let dashboard = Dashboard::serve("127.0.0.1:6006", vec![run.clone()]).unwrap();
//! println!("open {}", dashboard.url());
//! // … record into `run` while training; the page follows
//! ```

pub mod disk;
pub mod recorder;
pub mod samples;
pub mod server;
pub mod state;
pub mod step;
pub mod views;

pub use recorder::{Probes, Recorder};
pub use server::Dashboard;
pub use state::{RunState, SharedRun, Status};

/// Serves one run being trained into `dir` at `address` (its page shows `config`,
/// and answers the `host_names` too, see [`Dashboard::serve_allowing`]): the server,
/// and the run to record into.
pub fn serve_run(
    address: &str,
    dir: &std::path::Path,
    config: &str,
    host_names: Vec<String>,
) -> crate::Result<(Dashboard, SharedRun)> {
    let id = disk::run_id(dir, &[]);
    let mut state = RunState::new(&id, &dir.display().to_string(), config);
    state.step = Some(step::StepView::new(
        crate::explain::source::StepSource::run(dir),
    ));
    let run = state.shared();
    let dashboard = Dashboard::serve_allowing(address, vec![run.clone()], host_names)?;
    Ok((dashboard, run))
}

/// Serves the live dashboard at `address` for a run of `model` being trained into
/// `dir` on `train`, tested on `test`; `image_shape` is a sample's `[C, H, W]` when
/// the samples are images (their pictures are shown), and `plan` is (epochs, steps
/// per epoch). Returns the server (it serves while it lives) and the [`Recorder`],
/// the listener that feeds it (see [`crate::train::fit_with`]).
pub fn serve_training(
    address: &str,
    dir: &std::path::Path,
    model: &dyn crate::nn::Module<f32>,
    (train, test): (&dyn crate::data::Dataset, &dyn crate::data::Dataset),
    image_shape: Option<[usize; 3]>,
    plan: (usize, usize),
) -> crate::Result<(Dashboard, Recorder)> {
    let (dashboard, run) = serve_run(address, dir, &model.describe(), Vec::new())?;
    let classes = (0..train.num_classes())
        .map(|c| c.to_string())
        .collect::<Vec<_>>();
    let probes = Probes::new(train, test, &classes, image_shape);
    let (epochs, steps) = plan;
    let recorder = Recorder::new(run, model, train.feature_shape(), probes, epochs, steps);
    Ok((dashboard, recorder))
}

/// Where the dashboard listens unless told otherwise: this machine only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:6006";
