//! `nabla train`: the main job. Reads a config, trains with a progress display, and
//! writes the run directory: config.toml, metrics.jsonl, model.safetensors,
//! checkpoint.safetensors and curves.png. Ctrl-C checkpoints and exits cleanly;
//! `--resume DIR` continues exactly where the run stopped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::plot;
use super::progress::Progress;
use crate::autograd::no_grad;
use crate::checkpoint::{load_model, load_training_state, save_model, save_training_state};
use crate::data::{DataLoader, Dataset, make_batch};
use crate::error::{Error, Result};
use crate::experiment;
use crate::experiment::Config;
use crate::loss::{CrossEntropyOptions, cross_entropy};
use crate::nn::{Module, Sequential};
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use crate::train::{Control, EarlyStopping, EpochMetrics, EpochProgress, Event, FitOptions, fit};

/// Settings from the command line that override or locate the config.
pub struct TrainArgs {
    pub config: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
    pub resume: Option<PathBuf>,
}

/// How a run ended.
pub enum Outcome {
    Finished,
    Interrupted,
}

const CHECKPOINT: &str = "checkpoint.safetensors";

/// Runs `nabla train`.
pub fn run(args: TrainArgs) -> Result<Outcome> {
    let (mut config, out) = match (&args.resume, &args.config) {
        (Some(dir), _) => (Config::load(&dir.join("config.toml"))?, dir.clone()),
        (None, Some(path)) => (
            Config::load(path)?,
            args.out.clone().unwrap_or_else(|| default_run_dir(path)),
        ),
        (None, None) => return Err(Error::Config("give a config file, or --resume DIR".into())),
    };
    if let Some(epochs) = args.epochs {
        config.train.epochs = epochs;
    }
    if let Some(seed) = args.seed {
        config.train.seed = seed;
    }
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    crate::checkpoint::write_atomically(&out.join("config.toml"), config.to_toml().as_bytes())?;

    let data = experiment::load_data(&config)?;
    let mut rng = crate::rng(config.train.seed);
    let (model, _) = experiment::build_model(
        &config.model.layers,
        data.train.feature_shape(),
        data.train.num_classes(),
        &mut rng,
    )?;
    if let Some(init) = &config.train.init {
        load_model(init, &model)?;
    }
    let mut optimizer = experiment::build_optimizer(&config.train.optimizer, &model);
    let mut train_loader = DataLoader::new(data.train.as_ref(), config.data.batch_size);
    if config.data.shuffle {
        train_loader = train_loader.shuffle(config.train.seed);
    }
    let test_loader = DataLoader::new(data.test.as_ref(), 1000);
    let (schedule, schedule_per_step) = experiment::build_schedule(
        config.train.schedule.as_ref(),
        config.train.epochs,
        train_loader.num_batches(),
    );

    let mut options = FitOptions {
        epochs: config.train.epochs,
        schedule,
        schedule_per_step,
        base_lr: Some(config.train.optimizer.lr()),
        clip_grad_norm: config.train.clip_grad_norm,
        early_stopping: config.train.early_stopping.map(|e| EarlyStopping {
            patience: e.patience,
            min_delta: e.min_delta,
        }),
        ..Default::default()
    };
    let metrics_path = out.join("metrics.jsonl");
    let mut history = read_history(&metrics_path);
    if args.resume.is_some() {
        let resumed = resume_point(&out, &model, optimizer.as_mut())?;
        (options.start_epoch, options.start_step, options.carried) = resumed;
        history.retain(|m| m.epoch <= options.start_epoch);
        keep_completed_epochs(&metrics_path, options.start_epoch)?;
        println!(
            "resuming {} at epoch {}, step {}",
            out.display(),
            options.start_epoch + 1,
            options.start_step
        );
    } else {
        history.clear();
        keep_completed_epochs(&metrics_path, 0)?;
        println!("{}", model.summary(&batch_shape(data.train.as_ref())));
    }
    if options.start_epoch >= options.epochs {
        println!(
            "nothing to do: the run already finished its {} epochs",
            options.epochs
        );
        return Ok(Outcome::Finished);
    }

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        // a second registration (tests calling run twice in one process) is harmless
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let loss_options = CrossEntropyOptions {
        label_smoothing: config.train.label_smoothing,
        ..Default::default()
    };
    let loss =
        move |logits: &Tensor, labels: &[usize]| cross_entropy(logits, labels, &loss_options);
    let probe = make_batch(
        data.train.as_ref(),
        &(0..data.train.len().min(256)).collect::<Vec<_>>(),
    );
    let mut progress = Progress::new(options.epochs);
    let mut grad_norms: BTreeMap<String, f64> = BTreeMap::new();
    let mut failure: Option<Error> = None;
    let mut stopped_at: Option<(usize, usize)> = None;
    let checkpoint_every = config.train.checkpoint_every;

    let result = fit(
        &model,
        optimizer.as_mut(),
        &train_loader,
        Some(&test_loader),
        &loss,
        &options,
        &mut |event| {
            match event {
                Event::EpochStart { epoch, batches } => progress.start_epoch(*epoch, *batches),
                Event::BatchEnd {
                    epoch,
                    batch,
                    batches,
                    loss,
                    accuracy,
                    samples,
                    progress: sums,
                    optimizer,
                } => {
                    progress.step(*batch, *batches, *loss, *accuracy, *samples);
                    if *batch == *batches {
                        grad_norms = gradient_norms(&model);
                    }
                    let stop = interrupted.load(Ordering::SeqCst);
                    let due = checkpoint_every
                        .is_some_and(|n| n > 0 && batch % n == 0 && batch < batches);
                    let saved = if stop || due {
                        save_state(&out, &model, *optimizer, epoch - 1, *batch, sums)
                    } else {
                        Ok(())
                    };
                    if let Err(e) = saved {
                        failure = Some(e);
                        return Control::Stop;
                    }
                    if stop {
                        stopped_at = Some((*epoch, *batch));
                        return Control::Stop;
                    }
                }
                Event::EpochEnd { metrics, optimizer } => {
                    progress.end_epoch(metrics);
                    let health = gradient_health(&model, &probe.inputs, &grad_norms);
                    for warning in &health.warnings {
                        progress.println(&format!("  warning: {warning}"));
                    }
                    history.push((*metrics).clone());
                    let saved = append_metrics(&out.join("metrics.jsonl"), metrics, &health)
                        .and_then(|_| {
                            save_state(
                                &out,
                                &model,
                                *optimizer,
                                metrics.epoch,
                                0,
                                &EpochProgress::default(),
                            )
                        })
                        .and_then(|_| {
                            save_model(
                                out.join("model.safetensors"),
                                &model,
                                &run_metadata(metrics.epoch),
                            )
                        })
                        .and_then(|_| plot::curves(&out.join("curves.png"), &history));
                    if let Err(e) = saved {
                        failure = Some(e);
                        return Control::Stop;
                    }
                }
            }
            Control::Continue
        },
    );
    progress.abandon();
    if let Some(e) = failure {
        return Err(e);
    }
    match result {
        Err(Error::Diverged(message)) => {
            eprintln!("warning: training stopped: {message}");
            eprintln!("the last good checkpoint is kept in {}", out.display());
            Err(Error::Diverged(message))
        }
        Err(e) => Err(e),
        Ok(_) => {
            if let Some((epoch, step)) = stopped_at {
                println!(
                    "interrupted at epoch {epoch}, step {step}: checkpoint saved; continue with `nabla train --resume {}`",
                    out.display()
                );
                return Ok(Outcome::Interrupted);
            }
            if let Some(last) = history.last() {
                println!(
                    "done: test accuracy {:.2}% — run directory {}",
                    100.0 * last.test_accuracy.unwrap_or(0.0),
                    out.display()
                );
            }
            Ok(Outcome::Finished)
        }
    }
}

/// `runs/<config name>-<UTC timestamp>`.
fn default_run_dir(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    PathBuf::from("runs").join(format!("{stem}-{}", utc_timestamp()))
}

/// `YYYYMMDD-HHMMSS` in UTC, from the system clock (days-to-civil conversion).
fn utc_timestamp() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn batch_shape(dataset: &dyn Dataset) -> Vec<usize> {
    let mut shape = vec![1];
    shape.extend_from_slice(dataset.feature_shape());
    shape
}

fn run_metadata(epoch: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("epoch".to_string(), epoch.to_string()),
        ("format".to_string(), "pt".to_string()),
    ])
}

/// Saves the training state: `epoch` (0-based) in progress with `step` steps done.
fn save_state(
    out: &Path,
    model: &Sequential,
    optimizer: &dyn Optimizer<f32>,
    epoch: usize,
    step: usize,
    sums: &EpochProgress,
) -> Result<()> {
    let mut metadata = run_metadata(epoch);
    metadata.insert("step".into(), step.to_string());
    metadata.insert(
        "progress".into(),
        serde_json::to_string(sums).expect("plain numbers serialise"),
    );
    save_training_state(out.join(CHECKPOINT), model, optimizer, &metadata)
}

/// Where a saved run stands: (epoch in progress, steps done in it, its running sums).
fn resume_point(
    out: &Path,
    model: &Sequential,
    optimizer: &mut dyn Optimizer<f32>,
) -> Result<(usize, usize, EpochProgress)> {
    let path = out.join(CHECKPOINT);
    let metadata = load_training_state(&path, model, optimizer)?;
    let number = |key: &str| -> Result<usize> {
        metadata
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                Error::format(
                    &path,
                    format!(
                        "metadata `{key}`: expected a whole number, found {:?}",
                        metadata.get(key)
                    ),
                )
            })
    };
    let sums = metadata
        .get("progress")
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    Ok((number("epoch")?, number("step")?, sums))
}

fn read_history(path: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps the metrics.jsonl lines of epochs `1..=epochs` exactly as written (a
/// resumed run redoes the others), dropping anything else.
fn keep_completed_epochs(path: &Path, epochs: usize) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let kept: String = text
        .lines()
        .filter(|line| serde_json::from_str::<EpochMetrics>(line).is_ok_and(|m| m.epoch <= epochs))
        .map(|line| format!("{line}\n"))
        .collect();
    crate::checkpoint::write_atomically(path, kept.as_bytes())
}

fn append_metrics(path: &Path, metrics: &EpochMetrics, health: &GradientHealth) -> Result<()> {
    let mut line = serde_json::to_value(metrics).expect("metrics serialise");
    line["grad_norm"] = serde_json::to_value(&health.grad_norms).expect("numbers serialise");
    line["dead_relu_fraction"] =
        serde_json::to_value(&health.dead_relu).expect("numbers serialise");
    line["rss_mb"] =
        serde_json::to_value(crate::memory::resident_mb()).expect("a number serialises");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(file, "{line}").map_err(|e| Error::io(path, e))
}

/// The L2 norm of each parameter's current gradient.
fn gradient_norms(model: &Sequential) -> BTreeMap<String, f64> {
    model
        .named_parameters()
        .into_iter()
        .filter_map(|(name, p)| {
            let grad = p.grad()?;
            let norm = grad
                .data()
                .iter()
                .map(|v| (*v as f64) * (*v as f64))
                .sum::<f64>()
                .sqrt();
            Some((name, norm))
        })
        .collect()
}

/// Per-layer gradient norms and dead-ReLU fractions, with plain-words warnings.
struct GradientHealth {
    grad_norms: BTreeMap<String, f64>,
    dead_relu: BTreeMap<String, f64>,
    warnings: Vec<String>,
}

/// Runs the probe batch through the layers one by one (evaluation mode, no graph)
/// and measures, after each ReLU, the fraction of units that are zero for every
/// probe sample.
fn gradient_health(
    model: &Sequential,
    probe: &Tensor,
    grad_norms: &BTreeMap<String, f64>,
) -> GradientHealth {
    let _guard = no_grad();
    model.eval();
    let mut dead_relu = BTreeMap::new();
    let mut x = probe.clone();
    for (index, layer) in model.layers().iter().enumerate() {
        x = layer.forward(&x);
        if layer.describe().starts_with("ReLU") {
            let batch = x.shape()[0].max(1);
            let units = x.numel() / batch;
            let values = x.data();
            let dead = (0..units)
                .filter(|&u| (0..batch).all(|b| values[b * units + u] <= 0.0))
                .count();
            dead_relu.insert(index.to_string(), dead as f64 / units.max(1) as f64);
        }
    }
    model.train();
    let mut warnings = Vec::new();
    for (name, &norm) in grad_norms {
        if name.ends_with("weight") && norm < 1e-7 {
            warnings.push(format!("the gradient of {name} has almost vanished (norm {norm:.1e}): this layer has stopped learning"));
        } else if norm > 1e3 {
            warnings.push(format!("the gradient of {name} is exploding (norm {norm:.1e}): lower the learning rate or set clip_grad_norm"));
        }
    }
    for (layer, &fraction) in &dead_relu {
        if fraction > 0.5 {
            warnings.push(format!(
                "{:.0}% of the ReLUs after layer {layer} never fire on a probe batch: they no longer learn (try a lower learning rate or leaky_relu)",
                100.0 * fraction
            ));
        }
    }
    GradientHealth {
        grad_norms: grad_norms.clone(),
        dead_relu,
        warnings,
    }
}
