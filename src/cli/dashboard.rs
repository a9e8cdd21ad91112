//! `nabla train --dashboard` and `nabla dashboard RUN_DIR…`: start the server, say
//! where it is (and when it can be reached from other machines), and keep serving
//! until Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::watch::Outcome;
use crate::dashboard::step::StepView;
use crate::dashboard::{Dashboard, RunState, SharedRun, Status, disk};
use crate::error::Result;
use crate::explain::source::StepSource;

/// Starts a dashboard for the run being trained in `dir` and says where it is.
pub fn for_training(
    address: &str,
    dir: &Path,
    config_text: &str,
    host_names: Vec<String>,
) -> Result<(Dashboard, SharedRun)> {
    let (dashboard, run) = crate::dashboard::serve_run(address, dir, config_text, host_names)?;
    announce(&dashboard);
    Ok((dashboard, run))
}

/// `nabla dashboard RUN_DIR… --addr ADDR`: serves the runs (following those still
/// training) until Ctrl-C.
pub fn serve_dirs(dirs: &[PathBuf], address: &str, host_names: Vec<String>) -> Result<()> {
    let mut runs = Vec::new();
    let mut ids = Vec::new();
    for dir in dirs {
        let id = disk::run_id(dir, &ids);
        let run = disk::open(dir, &id)?;
        ids.push(id);
        disk::watch(run.clone(), dir.clone());
        runs.push(run);
    }
    let dashboard = Dashboard::serve_allowing(address, runs, host_names)?;
    announce(&dashboard);
    outln!("serving {} run(s); press Ctrl-C to stop", dirs.len());
    wait_for_ctrl_c(&super::ctrl_c_flag());
    Ok(())
}

/// `nabla explain CONFIG --dashboard ADDR`: the step view of the config's model
/// (initial weights) on training example `sample`, until Ctrl-C.
pub fn serve_step(config: &Path, sample: usize, lr: Option<f64>, address: &str) -> Result<()> {
    let mut source = StepSource::config(config)?;
    if let Some(lr) = lr {
        source = source.with_sgd(lr);
    }
    // the first example is traced before serving, so a config that cannot be
    // explained says so here rather than on the page
    source.trace_checking(sample, 0)?;
    let text = std::fs::read_to_string(config).unwrap_or_default();
    let id = disk::run_id(config, &[]);
    let mut state = RunState::new(&id, &config.display().to_string(), &text);
    state.set_status(
        Status::Finished,
        Some("a config explained, not trained".into()),
    );
    state.step = Some(StepView::new(source));
    let dashboard = Dashboard::serve(address, vec![state.shared()])?;
    announce(&dashboard);
    outln!(
        "step through one training step: {}#step/{id}/{sample}",
        dashboard.url()
    );
    outln!("press Ctrl-C to stop");
    wait_for_ctrl_c(&super::ctrl_c_flag());
    Ok(())
}

fn announce(dashboard: &Dashboard) {
    outln!("dashboard: {}", dashboard.url());
    if dashboard.is_exposed() {
        eprintln!(
            "warning: the dashboard listens on {}, not only on this machine: anyone who can \
             reach it can read these runs (metrics, config, weights drawn)",
            dashboard.address()
        );
    }
}

/// After training: the page stays up with the finished run until Ctrl-C.
pub fn keep_serving(dashboard: &Dashboard, interrupted: &Arc<AtomicBool>) {
    outln!(
        "training is over; the dashboard keeps serving the run at {} — press Ctrl-C to stop",
        dashboard.url()
    );
    interrupted.store(false, Ordering::SeqCst);
    wait_for_ctrl_c(interrupted);
}

fn wait_for_ctrl_c(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Tells the page how the run ended; after a finished (or failed) run, keeps
/// serving it until Ctrl-C.
pub fn end_of_training(
    dashboard: &Dashboard,
    run: &SharedRun,
    outcome: &Result<Outcome>,
    out: &Path,
) {
    let (status, message) = match outcome {
        Ok(Outcome::Finished) => (Status::Finished, None),
        Ok(Outcome::Interrupted) => (
            Status::Interrupted,
            Some(format!(
                "stopped by Ctrl-C; continue with `nabla train --resume {}`",
                out.display()
            )),
        ),
        Err(e) => (Status::Failed, Some(e.to_string())),
    };
    run.lock()
        .expect("the run's lock")
        .set_status(status, message);
    if status != Status::Interrupted {
        keep_serving(dashboard, &super::ctrl_c_flag());
    }
}
