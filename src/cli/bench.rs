//! `nabla bench`: the workloads of the PyTorch reference scripts
//! (`shared/bench/torch_mnist.py`, `torch_resnet.py`), run by nabla and reported in
//! the same JSON fields, so the two can be compared in one sitting.

use std::time::Instant;

use serde_json::json;

use crate::autograd::no_grad;
use crate::cpu::gemm::{MatRef, gemm};
use crate::data::{Batch, DataLoader, load_mnist};
use crate::distributed::World;
use crate::error::{Error, Result};
use crate::loss::{CrossEntropyOptions, Reduction, cross_entropy, mse_loss};
use crate::memory::{peak_resident_mb, resident_mb};
use crate::nn::{Linear, Module, Sequential, Sigmoid, Tanh};
use crate::ops::flops;
use crate::optim::{Adam, Optimizer, Sgd};
use crate::tensor::Tensor;
use crate::train::parallel::DataParallel;
use crate::train::{evaluate_in, step};

/// How to run a workload; `None` keeps the reference's setting.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Epochs of mlp and cnn.
    pub epochs: Option<usize>,
    /// Timed steps (tiny, resnet, gpt), or steps per epoch (mlp, cnn).
    pub steps: Option<usize>,
    /// Samples per step of mlp and cnn.
    pub batch: Option<usize>,
    /// Positions of context of gpt.
    pub context: Option<usize>,
}

/// Runs one workload and prints one JSON object per line. Under `mpirun` (feature
/// `mpi`), mlp, cnn, resnet and gpt run data-parallel over the ranks: each takes its
/// share of every batch, rank 0 prints, and the line says `ranks`.
pub fn run(
    workload: &str,
    options: &Options,
    data_dir: &std::path::Path,
    text: &std::path::Path,
    world: &World,
) -> Result<()> {
    let Options { epochs, steps, .. } = *options;
    if options.batch.is_some() && !matches!(workload, "mlp" | "cnn")
        || options.context.is_some() && workload != "gpt"
    {
        return Err(Error::Config(format!(
            "--batch is for the mlp and cnn workloads, --context for gpt; not for {workload}"
        )));
    }
    if world.is_distributed() && matches!(workload, "tiny" | "gemm") {
        return Err(Error::Config(format!(
            "the {workload} workload runs in one process: start it without mpirun"
        )));
    }
    match workload {
        "mlp" | "cnn" => classifier(workload, epochs, steps, options.batch, data_dir, world),
        "tiny" => tiny(steps.unwrap_or(10_000)),
        "resnet" => resnet(steps.unwrap_or(20), world),
        "gpt" => gpt(
            steps.unwrap_or(200),
            options.context.unwrap_or(128),
            text,
            world,
        ),
        "gemm" => gemm_workload(),
        other => Err(Error::Config(format!(
            "unknown workload `{other}`: expected mlp, cnn, tiny, resnet, gpt or gemm"
        ))),
    }
}

fn record(workload: &str) -> serde_json::Value {
    json!({
        "workload": workload,
        "framework": "nabla",
        "version": env!("CARGO_PKG_VERSION"),
        "device": "cpu",
        // the vector instructions the kernels used (NABLA_ISA=avx2 forces AVX2)
        "isa": crate::cpu::isa::isa().name(),
        "threads": crate::threads::num_threads(),
    })
}

/// Prints a workload's line, from rank 0 only; with several ranks it says how many,
/// and `threads` is per rank.
fn report(mut line: serde_json::Value, world: &World, stepper: &DataParallel) {
    if !world.is_root() {
        return;
    }
    if world.is_distributed() {
        let stats = stepper.stats();
        line["ranks"] = json!(world.size());
        line["gradient_bytes"] = json!(stats.gradient_bytes);
        line["all_reduce_ms_per_step"] = json!(round(
            stats.all_reduce_seconds * 1e3 / stats.steps.max(1) as f64,
            3
        ));
        line["comm_wait_ms_per_step"] = json!(round(
            stats.wait_seconds * 1e3 / stats.steps.max(1) as f64,
            3
        ));
    }
    outln!("{line}");
}

/// The reference `mlp` (784-256-128-10, SGD 0.05 momentum 0.9, batch 128, 5 epochs)
/// or `cnn` (LeNet-5, Adam 1e-3, batch 64, 2 epochs) workload; `steps` cuts each
/// epoch to its first steps.
fn classifier(
    workload: &str,
    epochs: Option<usize>,
    steps: Option<usize>,
    batch_size: Option<usize>,
    data_dir: &std::path::Path,
    world: &World,
) -> Result<()> {
    let (train, test) = load_mnist(data_dir)?;
    let mut rng = crate::rng(0);
    let (train, test, model, batch, default_epochs): (_, _, Sequential, usize, usize) =
        if workload == "mlp" {
            let model = crate::nn::zoo::mnist_mlp(&mut rng);
            (train.flattened(), test.flattened(), model, 128, 5)
        } else {
            let model = crate::nn::zoo::lenet5(&mut rng);
            (train, test, model, 64, 2)
        };
    let batch = batch_size.unwrap_or(batch);
    let mut optimizer: Box<dyn Optimizer<f32>> = if workload == "mlp" {
        // another batch size scales the rate with it (the linear scaling rule), so that
        // batch 1 does not diverge
        let lr = batch_size.map_or(0.05, |batch| 0.05 * batch as f64 / 128.0);
        Box::new(Sgd::new(model.named_parameters(), lr).momentum(0.9))
    } else {
        Box::new(Adam::new(model.named_parameters(), 1e-3))
    };
    let loader = DataLoader::new(&train, batch).shuffle(0);
    let test_loader = DataLoader::new(&test, 1000);
    let options = CrossEntropyOptions::default();
    let loss = |logits: &Tensor, labels: &[usize]| cross_entropy(logits, labels, &options);
    let mut stepper = DataParallel::new(world, &model, optimizer.as_ref());
    let rss_before = resident_mb();
    let mut flops_per_sample = None;
    for epoch in 0..epochs.unwrap_or(default_epochs) {
        let mut order = loader.order(epoch); // data order: not timed, as in the reference
        if let Some(steps) = steps {
            order.truncate(steps * batch); // a quick look, not the reference workload
        }
        stepper.reset_stats();
        let busy = CpuLoad::start();
        let started = Instant::now();
        let mut loss_sum = 0.0f64;
        for indices in order.chunks(batch) {
            let share = crate::data::make_batch(&train, &indices[world.share(indices.len())]);
            let taken = stepper
                .step(
                    &model,
                    optimizer.as_mut(),
                    &share,
                    indices.len(),
                    &loss,
                    None,
                )
                .map_err(|bad| bad.into_error(&format!("epoch {}", epoch + 1)))?;
            loss_sum += taken.loss * indices.len() as f64;
        }
        let seconds = started.elapsed().as_secs_f64();
        let other_busy = busy.other_fraction(seconds);
        // products grow with the batch: a full batch's count, per sample
        let flops_per_sample = *flops_per_sample.get_or_insert_with(|| {
            let full = crate::data::make_batch(&train, &(0..batch).collect::<Vec<_>>());
            step_flops(&model, &full.inputs, |logits| loss(logits, &full.labels)) / batch as f64
        });
        let accuracy = evaluate_in(world, &model, &test_loader, &loss).accuracy;
        model.train();
        let mut line = record(workload);
        let n = order.len() as f64;
        line["epoch"] = json!(epoch + 1);
        line["train_seconds"] = json!(round(seconds, 4));
        line["samples_per_s"] = json!(round(n / seconds, 1));
        line["test_accuracy"] = json!(accuracy);
        line["final_train_loss"] = json!(round(loss_sum / n, 6));
        line["batch_size"] = json!(batch);
        line["steps_per_epoch"] = json!(order.len().div_ceil(batch));
        line["ms_per_step"] = json!(round(seconds * 1e3 / order.len().div_ceil(batch) as f64, 4));
        line["peak_rss_mb"] = json!(peak_resident_mb().map(|v| round(v, 1)));
        line["rss_before_train_mb"] = json!(rss_before.map(|v| round(v, 1)));
        line["other_cpu_busy_frac"] = json!(other_busy.map(|v| round(v, 3)));
        let steps = order.len().div_ceil(batch) as f64;
        let flops_per_step = flops_per_sample * n / steps;
        add_arithmetic(&mut line, flops_per_step, steps, seconds, world);
        report(line, world, &stepper);
    }
    Ok(())
}

/// XOR, 4 samples, Linear(2,8)-Tanh-Linear(8,1)-Sigmoid, MSE, SGD 0.5: the per-step
/// cost of a tiny network (zero_grad + forward + backward + update).
fn tiny(steps: usize) -> Result<()> {
    let x = Tensor::<f32>::from_vec(vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], &[4, 2]);
    let y = Tensor::<f32>::from_vec(vec![0.0, 1.0, 1.0, 0.0], &[4, 1]);
    let mut rng = crate::rng(0);
    let model = Sequential::new()
        .layer(Linear::new(2, 8, &mut rng))
        .layer(Tanh)
        .layer(Linear::new(8, 1, &mut rng))
        .layer(Sigmoid);
    let mut optimizer = Sgd::new(model.named_parameters(), 0.5);
    let rss_before = resident_mb();
    let busy = CpuLoad::start();
    let started = Instant::now();
    let mut last = 0.0;
    for _ in 0..steps {
        let mse = |output: &Tensor| mse_loss(output, &y, Reduction::Mean);
        let taken = step(&model, &mut optimizer, &x, mse, None)
            .map_err(|bad| bad.into_error("the tiny workload"))?;
        last = taken.loss;
    }
    let seconds = started.elapsed().as_secs_f64();
    let other_busy = busy.other_fraction(seconds);
    let (accuracy, after, outputs) = {
        let _guard = no_grad();
        let out = model.forward(&x);
        let right = out
            .to_vec()
            .iter()
            .zip(y.to_vec())
            .filter(|(o, t)| (**o > 0.5) == (*t > 0.5))
            .count();
        let after = mse_loss(&out, &y, Reduction::Mean).item();
        (
            right as f64 / 4.0,
            after,
            out.to_vec()
                .iter()
                .map(|v| round(*v as f64, 4))
                .collect::<Vec<_>>(),
        )
    };
    let mut line = record("tiny");
    line["epoch"] = serde_json::Value::Null;
    line["steps"] = json!(steps);
    line["train_seconds"] = json!(round(seconds, 4));
    line["samples_per_s"] = json!(round(4.0 * steps as f64 / seconds, 1));
    line["us_per_step"] = json!(round(seconds / steps as f64 * 1e6, 2));
    line["test_accuracy"] = json!(accuracy);
    line["final_train_loss"] = json!(round(last, 8));
    line["loss_after_training"] = json!(round(after as f64, 8));
    line["outputs"] = json!(outputs);
    line["peak_rss_mb"] = json!(peak_resident_mb().map(|v| round(v, 1)));
    line["rss_before_train_mb"] = json!(rss_before.map(|v| round(v, 1)));
    line["other_cpu_busy_frac"] = json!(other_busy.map(|v| round(v, 3)));
    outln!("{line}");
    Ok(())
}

/// ResNet-20 on one fixed CIFAR-shaped batch (128 × 3×32×32 from N(0, 1), labels
/// i mod 10), SGD 0.1, momentum 0.9, weight decay 5e-4: 3 warm-up steps, then
/// `steps` timed ones. Times compute only, as the reference does.
fn resnet(steps: usize, world: &World) -> Result<()> {
    const BATCH: usize = 128;
    let mut rng = crate::rng(0);
    let batch = Batch {
        inputs: Tensor::<f32>::randn(&[BATCH, 3, 32, 32], 0.0, 1.0, &mut rng),
        labels: (0..BATCH).map(|i| i % 10).collect(),
    };
    let share = batch.rows(world.share(BATCH));
    let model = crate::nn::zoo::resnet20::<f32>(3, 10, &mut rng);
    let mut optimizer = Sgd::new(model.named_parameters(), 0.1)
        .momentum(0.9)
        .weight_decay(5e-4);
    let options = CrossEntropyOptions::default();
    let loss = |logits: &Tensor, labels: &[usize]| cross_entropy(logits, labels, &options);
    let mut stepper = DataParallel::new(world, &model, &optimizer);
    let take_step = |stepper: &mut DataParallel| {
        stepper
            .step(&model, &mut optimizer, &share, BATCH, &loss, None)
            .map(|taken| taken.loss)
            .map_err(|bad| bad.into_error("the resnet workload"))
    };
    let timed = timed_steps(steps, &mut stepper, take_step)?;
    let mut line = timed.record("resnet");
    line["images_per_s"] = json!(round((BATCH * steps) as f64 / timed.seconds, 1));
    line["final_loss"] = json!(round(timed.last_loss, 5));
    let flops = step_flops(&model, &batch.inputs, |logits| loss(logits, &batch.labels));
    timed.add_arithmetic(&mut line, flops, world);
    report(line, world, &stepper);
    Ok(())
}

/// What [`timed_steps`] measured.
struct Timed {
    steps: usize,
    seconds: f64,
    last_loss: f64,
    rss_before: Option<f64>,
    other_busy: Option<f64>,
}

impl Timed {
    /// The JSON line of a step-timed workload: steps, ms/step, memory and load.
    fn record(&self, workload: &str) -> serde_json::Value {
        let mut line = record(workload);
        line["steps"] = json!(self.steps);
        line["ms_per_step"] = json!(round(self.seconds * 1e3 / self.steps as f64, 2));
        line["peak_rss_mb"] = json!(peak_resident_mb().map(|v| round(v, 1)));
        line["rss_before_train_mb"] = json!(self.rss_before.map(|v| round(v, 1)));
        line["other_cpu_busy_frac"] = json!(self.other_busy.map(|v| round(v, 3)));
        line
    }

    /// [`add_arithmetic`] for these timed steps of `flops_per_step` each.
    fn add_arithmetic(&self, line: &mut serde_json::Value, flops_per_step: f64, world: &World) {
        add_arithmetic(line, flops_per_step, self.steps as f64, self.seconds, world);
    }
}

/// 3 warm-up steps, then `steps` timed ones (as the reference scripts time them).
fn timed_steps(
    steps: usize,
    stepper: &mut DataParallel,
    mut take_step: impl FnMut(&mut DataParallel) -> Result<f64>,
) -> Result<Timed> {
    for _ in 0..3 {
        take_step(stepper)?;
    }
    stepper.reset_stats();
    let rss_before = resident_mb();
    let busy = CpuLoad::start();
    let started = Instant::now();
    let mut last_loss = 0.0;
    for _ in 0..steps {
        last_loss = take_step(stepper)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Timed {
        steps,
        seconds,
        last_loss,
        rss_before,
        other_busy: busy.other_fraction(seconds),
    })
}

/// The reference `gpt` workload (`shared/bench/torch_gpt.py`): a character GPT
/// (4 blocks of 128 features, 4 heads, 128 positions) on `text`, batches of 32
/// random windows, AdamW 1e-3 (β 0.9, 0.99; decay 0.1 on matrices only), gradient
/// norm clipped at 1. 3 warm-up steps, `steps` timed ones, then the loss over 20
/// fixed validation windows.
fn gpt(steps: usize, context: usize, text: &std::path::Path, world: &World) -> Result<()> {
    use crate::data::text::{TextCorpus, Tokenizer, random_offsets, spaced_offsets, windows};
    use crate::nn::zoo::{GptShape, gpt, gpt_optimizer};
    const BATCH: usize = 32;
    let block = context;
    let corpus = TextCorpus::load(text, Tokenizer::Char, 0.1, block)?;
    let vocab = corpus.vocabulary.len();
    let shape = GptShape {
        block_size: block,
        ..GptShape::reference(vocab)
    };
    let model = gpt::<f32>(shape, &mut crate::rng(0));
    let mut optimizer = gpt_optimizer(model.named_parameters());
    let options = CrossEntropyOptions::default();
    let loss = |logits: &Tensor, targets: &[usize]| {
        let flat = logits.reshape(&[targets.len(), vocab]);
        cross_entropy(&flat, targets, &options)
    };
    let mut stepper = DataParallel::new(world, &model, &optimizer);
    let mut step_number = 0;
    let take_step = |stepper: &mut DataParallel| {
        let offsets = random_offsets(0, step_number, BATCH, corpus.train.len(), block);
        step_number += 1;
        let windows = windows(&corpus.train, &offsets[world.share(BATCH)], block);
        let share = Batch {
            inputs: windows.inputs,
            labels: windows.targets,
        };
        stepper
            .step(&model, &mut optimizer, &share, BATCH, &loss, Some(1.0))
            .map(|taken| taken.loss)
            .map_err(|bad| bad.into_error("the gpt workload"))
    };
    let timed = timed_steps(steps, &mut stepper, take_step)?;
    let val_loss = {
        let _guard = no_grad();
        let offsets = spaced_offsets(20, corpus.validation.len(), block);
        let batch = windows(&corpus.validation, &offsets, block);
        let logits = model.forward(&batch.inputs);
        let flat = logits.reshape(&[offsets.len() * block, vocab]);
        cross_entropy(&flat, &batch.targets, &options).item() as f64
    };
    let mut line = timed.record("gpt");
    line["vocab"] = json!(vocab);
    line["context"] = json!(block);
    line["params"] = json!(model.num_parameters());
    line["tokens_per_s"] = json!(round((BATCH * block * steps) as f64 / timed.seconds, 1));
    line["final_train_loss"] = json!(round(timed.last_loss, 4));
    line["val_loss"] = json!(round(val_loss, 4));
    let offsets = random_offsets(0, 0, BATCH, corpus.train.len(), block);
    let window = windows(&corpus.train, &offsets, block);
    let flops = step_flops(&model, &window.inputs, |logits| {
        loss(logits, &window.targets)
    });
    timed.add_arithmetic(&mut line, flops, world);
    report(line, world, &stepper);
    Ok(())
}

/// float32 C = A·B at n = 512, 1024, 2048: 2 warm-up and 10 timed products.
fn gemm_workload() -> Result<()> {
    for n in [512usize, 1024, 2048] {
        let busy = CpuLoad::start();
        let started = Instant::now();
        let times = gemm_times(n, 10);
        let other_busy = busy.other_fraction(started.elapsed().as_secs_f64());
        let flops = 2.0 * (n as f64).powi(3);
        let mut line = record("gemm");
        line["dtype"] = json!("float32");
        line["n"] = json!(n);
        line["reps"] = json!(10);
        line["best_seconds"] = json!(round(times[0], 6));
        line["gflops"] = json!(round(flops / times[0] / 1e9, 2));
        line["median_gflops"] = json!(round(flops / ((times[4] + times[5]) / 2.0) / 1e9, 2));
        line["peak_rss_mb"] = json!(peak_resident_mb().map(|v| round(v, 1)));
        line["other_cpu_busy_frac"] = json!(other_busy.map(|v| round(v, 3)));
        outln!("{line}");
    }
    Ok(())
}

/// The seconds of `reps` float32 products C = A·B of n × n matrices (after 2
/// warm-up ones), fastest first.
fn gemm_times(n: usize, reps: usize) -> Vec<f64> {
    let a = Tensor::<f32>::randn(&[n * n], 0.0, 1.0, &mut crate::rng(1)).to_vec();
    let b = Tensor::<f32>::randn(&[n * n], 0.0, 1.0, &mut crate::rng(2)).to_vec();
    let mut c = vec![0.0f32; n * n];
    let mut multiply = || {
        gemm(
            MatRef::row_major(&a, n, n),
            MatRef::row_major(&b, n, n),
            &mut c,
            false,
        )
    };
    multiply();
    multiply();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            multiply();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// The product arithmetic of one training step of `model` on `inputs`, counted from
/// the graph of a forward pass in evaluation mode (which moves no batch-norm
/// statistics); run after the timed steps, so that they stay as they were.
fn step_flops(model: &dyn Module, inputs: &Tensor, loss: impl Fn(&Tensor) -> Tensor) -> f64 {
    model.eval();
    let flops = flops::step(&loss(&model.forward(inputs)));
    model.train();
    flops.total() as f64
}

/// Adds how close the workload came to the machine's limit: its product arithmetic
/// per step, the rate it ran at, and that rate against the best float32 GEMM rate
/// measured now, in the same run (n = 1024, the best of 5) — the ceiling a training
/// step's products could reach. With several ranks the rate is the whole job's and no
/// percentage is given (the GEMM ran on one rank's threads).
fn add_arithmetic(
    line: &mut serde_json::Value,
    flops_per_step: f64,
    steps: f64,
    seconds: f64,
    world: &World,
) {
    let achieved = flops_per_step * steps / seconds / 1e9;
    line["gflop_per_step"] = json!(round(flops_per_step / 1e9, 6));
    line["achieved_gflops"] = json!(round(achieved, 1));
    if !world.is_distributed() {
        let peak = 2.0 * 1024f64.powi(3) / gemm_times(1024, 5)[0] / 1e9;
        line["gemm_peak_gflops"] = json!(round(peak, 1));
        line["percent_of_gemm_peak"] = json!(round(100.0 * achieved / peak, 1));
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// How busy the rest of the machine was while we measured: (machine busy time −
/// our own CPU time) / (wall time × cores), from /proc — as the reference reports it.
struct CpuLoad {
    machine: Option<f64>,
    own: Option<f64>,
}

impl CpuLoad {
    fn start() -> Self {
        CpuLoad {
            machine: machine_busy_seconds(),
            own: own_cpu_seconds(),
        }
    }

    fn other_fraction(&self, wall: f64) -> Option<f64> {
        let machine = machine_busy_seconds()? - self.machine?;
        let own = own_cpu_seconds()? - self.own?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Some(((machine - own).max(0.0) / (wall * cores)).min(1.0))
    }
}

const CLOCK_TICKS: f64 = 100.0;

fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait
    Some((fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / CLOCK_TICKS)
}

fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line (11 and 12 after the name)
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLOCK_TICKS)
}
