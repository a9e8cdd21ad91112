//! The `nabla` command: train from a config file, evaluate, predict, check
//! gradients, and explain one step of backpropagation number by number.

pub mod bench;
pub mod dashboard;
pub mod explain;
pub mod explain_model;
pub mod export;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod generate;
pub mod inspect;
pub mod onnx;
pub mod plot;
pub mod progress;
pub mod train;
pub mod watch;

pub use watch::{Outcome, RunArgs, fit_model};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::data::text::Unknown;
use clap::{Parser, Subcommand};

/// Train neural networks by forward propagation and backpropagation.
#[derive(Parser, Debug)]
#[command(name = "nabla", version, about, long_about = None)]
struct Cli {
    /// Threads for the kernels (default: all cores; under mpirun, the cores shared among
    /// the ranks on this machine).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model described by a config file.
    #[command(
        after_help = "Examples:\n  nabla train examples/mnist-mlp.toml\n  nabla train examples/spirals.toml --out runs/spirals --epochs 50\n  nabla train --resume runs/spirals\n  nabla train examples/spirals.toml --dashboard   # then open http://127.0.0.1:6006/\n  mpirun -np 2 nabla train examples/mnist-mlp.toml   # data-parallel (built with --features mpi)"
    )]
    Train {
        /// The experiment: data, model and training settings (TOML).
        config: Option<PathBuf>,
        /// The run directory (default: runs/<config name>-<timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the number of epochs.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        epochs: Option<u32>,
        /// Override the random seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Continue the run in this directory from its last checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Watch it learn in the browser: serve the live dashboard at ADDR (default
        /// 127.0.0.1:6006; a busy port moves to the next free one). It keeps serving
        /// after training, until Ctrl-C.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::dashboard::DEFAULT_ADDRESS)]
        dashboard: Option<String>,
        /// Also write TensorBoard event files (scalars and histograms) into DIR
        /// (default: the run directory's tensorboard/); `tensorboard --logdir DIR` shows them.
        #[arg(long, value_name = "DIR", num_args = 0..=1)]
        tensorboard: Option<Option<PathBuf>>,
        /// Also answer the dashboard when it is reached by this host name (repeatable).
        /// Without it only localhost and IP addresses are answered, so that no other web
        /// site can read it through DNS rebinding.
        #[arg(long, value_name = "NAME")]
        allow_host: Vec<String>,
    },
    /// Serve run directories (finished or still training) in the browser, side by side.
    #[command(
        after_help = "Examples:\n  nabla dashboard runs/spirals\n  nabla dashboard runs/mnist-mlp-* --addr 127.0.0.1:8080"
    )]
    Dashboard {
        /// The run directories (the --out of `nabla train`).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where to listen (host:port); only this machine unless you name another address.
        #[arg(long, value_name = "ADDR", default_value = crate::dashboard::DEFAULT_ADDRESS)]
        addr: String,
        /// Also answer the dashboard when it is reached by this host name (repeatable).
        /// Without it only localhost and IP addresses are answered, so that no other web
        /// site can read it through DNS rebinding.
        #[arg(long, value_name = "NAME")]
        allow_host: Vec<String>,
    },
    /// Loss, accuracy, per-class precision/recall and the confusion matrix on the test data.
    #[command(
        after_help = "Examples:\n  nabla eval runs/mnist-mlp-20261128-101500\n  nabla eval model.safetensors --config examples/mnist-mlp.toml"
    )]
    Eval {
        /// A run directory, or a model.safetensors file (then give --config).
        target: PathBuf,
        /// The config describing the model, when TARGET is a file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Evaluate on data at this path instead of the config's.
        #[arg(long)]
        data: Option<PathBuf>,
        /// A character a text model's vocabulary lacks, in --data: `error` stops
        /// there, naming it; `skip` leaves it out and reports how many were skipped.
        #[arg(long, value_parser = ["error", "skip"], default_value = "error")]
        unknown: String,
    },
    /// Top classes with probabilities for CSV rows, IDX image files or PNG/JPEG images.
    #[command(
        after_help = "Examples:\n  nabla predict runs/mnist-mlp-20261128-101500 digit.png\n  nabla predict runs/spirals points.csv --top 2"
    )]
    Predict {
        /// A run directory, or a model.safetensors file (then give --config).
        target: PathBuf,
        /// Input files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// How many classes to show per input.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000))]
        top: u16,
        /// Invert image brightness (for dark digits on a light background).
        #[arg(long)]
        invert: bool,
    },
    /// Write a trained model as an ONNX file, for ONNX Runtime (Python, C++, the
    /// browser, phones) and other tools.
    #[command(
        after_help = "Examples:\n  nabla export runs/mnist-mlp                     # runs/mnist-mlp/model.onnx\n  nabla export runs/mnist-mlp --with-preprocessing --out mnist.onnx\n  nabla export model.safetensors --config examples/spirals.toml --opset 18"
    )]
    Export {
        /// A run directory, or a model.safetensors file (then give --config).
        target: PathBuf,
        /// The config describing the model, when TARGET is a file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The ONNX file to write (default: model.onnx in the run directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The ONNX operator set version.
        #[arg(long, default_value_t = crate::onnx::DEFAULT_OPSET, value_parser = clap::value_parser!(i64).range(crate::onnx::OPSETS))]
        opset: i64,
        /// Put the run's input preparation in the graph, so that it takes raw values:
        /// CSV features as in the file, image pixels 0–255.
        #[arg(long)]
        with_preprocessing: bool,
    },
    /// Read an ONNX model (from `nabla export`, or PyTorch's `torch.onnx.export` of a
    /// network of the layers nabla has) into a run directory: predict, evaluate,
    /// export again or train further.
    #[command(
        after_help = "Examples:\n  nabla import model.onnx --out runs/imported\n  nabla predict runs/imported digit.png\n  nabla train runs/imported/config.toml   # after filling in its [data]"
    )]
    Import {
        /// The ONNX file.
        model: PathBuf,
        /// The run directory to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Let a trained language model write: streams the text as it is sampled.
    #[command(
        after_help = "Example:\n  nabla generate runs/shakespeare --prompt \"ROMEO:\" --tokens 500 --temperature 0.8 --top-k 40"
    )]
    Generate {
        /// The run directory of a model trained on text.
        run: PathBuf,
        /// The text to continue.
        #[arg(long, default_value = "\n")]
        prompt: String,
        /// How many tokens to write.
        #[arg(long, default_value_t = 500)]
        tokens: usize,
        /// Below 1: safer, more repetitive text; above 1: wilder; 0: always the likeliest.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Draw only among the k likeliest tokens.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        top_k: Option<u32>,
        /// Same seed, same text.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Check every parameter's analytic gradient against finite differences (f64).
    #[command(after_help = "Example:\n  nabla gradcheck examples/mnist-cnn.toml")]
    Gradcheck {
        config: PathBuf,
        /// Largest accepted relative error.
        #[arg(long, default_value_t = 1e-6)]
        tolerance: f64,
        /// At most this many elements checked per tensor (spread over it).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
        max_elements: u32,
    },
    /// Show one forward and backward pass and one update, every number printed.
    #[command(
        after_help = "Examples:\n  nabla explain\n  nabla explain --input 1,0 --target 1 --dot graph.dot\n  nabla explain examples/xor.toml --input 0,1 --target 1\n  nabla explain examples/mnist-cnn.toml --sample 0\n  nabla explain examples/spirals.toml --dashboard   # step through it in the browser"
    )]
    Explain {
        /// A config (default: a 2-2-1 sigmoid network). Explained layer by layer on a
        /// training sample; with --input and --target (linear layers with sigmoid, tanh
        /// or ReLU only), neuron by neuron.
        config: Option<PathBuf>,
        /// Explain the config's model on this training sample, layer by layer.
        #[arg(long)]
        sample: Option<usize>,
        /// The input, comma-separated.
        #[arg(long)]
        input: Option<String>,
        /// The target (one value per output).
        #[arg(long)]
        target: Option<String>,
        /// The update is plain SGD at this rate (default: 0.5 for the 2-2-1 lesson;
        /// for a config, its own optimizer and rate).
        #[arg(long)]
        lr: Option<f64>,
        /// Also write the computation graph, with values and gradients, as Graphviz.
        #[arg(long)]
        dot: Option<PathBuf>,
        /// Step through it in the browser instead: serve the dashboard's step view of
        /// the config's model at ADDR (default 127.0.0.1:6006) until Ctrl-C.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::dashboard::DEFAULT_ADDRESS)]
        dashboard: Option<String>,
    },
    /// Run a reference benchmark workload; prints one JSON object per line.
    #[command(
        after_help = "Examples:\n  nabla bench --workload mlp --threads 2\n  nabla bench --workload tiny\n  nabla bench --workload gpt --steps 50\n  nabla bench --workload gemm"
    )]
    Bench {
        /// mlp, cnn, tiny, gemm (as shared/bench/torch_mnist.py defines them),
        /// resnet (shared/bench/torch_resnet.py) or gpt (shared/bench/torch_gpt.py).
        #[arg(long)]
        workload: String,
        /// Epochs (default: 5 for mlp, 2 for cnn).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        epochs: Option<u32>,
        /// Timed steps of the tiny (default 10000), resnet (default 20) or gpt
        /// (default 200) workload; for mlp and cnn, steps per epoch (default: the
        /// whole epoch, as the reference times it).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        steps: Option<u32>,
        /// The MNIST directory.
        #[arg(long, default_value = "data/mnist")]
        data_dir: PathBuf,
        /// The text of the gpt workload.
        #[arg(long, default_value = "data/shakespeare.txt")]
        text: PathBuf,
        /// Samples per step of the mlp or cnn workload, instead of the reference's
        /// (how the cost grows with the batch: bench/cost_growth.sh).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536))]
        batch: Option<u32>,
        /// Positions of context of the gpt workload, instead of 128 (how the cost
        /// grows with the context: bench/cost_growth.sh).
        #[arg(long, value_parser = clap::value_parser!(u32).range(2..=4096))]
        context: Option<u32>,
    },
    /// Download a dataset (verifying its checksums), or export one as image files.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
}

#[derive(Subcommand, Debug)]
enum DataAction {
    /// Download MNIST or Fashion-MNIST (four IDX files, checksums checked), or the
    /// CIFAR-10/100 binary archive (size and MD5 checked, data files unpacked). Needs a
    /// build with the HTTP client: `cargo build --release --features fetch`.
    #[command(
        after_help = "Examples:\n  nabla data fetch fashion-mnist --dir data/fashion-mnist\n  nabla data fetch cifar10                 # into data/cifar-10-batches-bin\n  nabla data fetch cifar100 --archive ~/Downloads/cifar-100-binary.tar.gz"
    )]
    Fetch {
        /// `mnist`, `fashion-mnist`, `cifar10` or `cifar100`.
        dataset: String,
        /// Where to put the files (default: data/<dataset>, data/cifar-10-batches-bin,
        /// data/cifar-100-binary).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use this base URL instead of the usual mirrors.
        #[arg(long)]
        mirror: Option<String>,
        /// CIFAR: unpack this already-downloaded archive (checked the same way).
        #[arg(long)]
        archive: Option<PathBuf>,
    },
    /// Write MNIST or Fashion-MNIST as an image folder of PNGs (DIR/train/<digit>/…,
    /// DIR/test/<digit>/…), the layout `kind = "image_folder"` reads.
    #[command(
        after_help = "Example:\n  nabla data export mnist data/mnist-png\n  nabla train examples/mnist-png-resnet.toml"
    )]
    Export {
        /// `mnist` or `fashion-mnist`.
        dataset: String,
        /// The image folder to write.
        dir: PathBuf,
        /// Where the IDX files are (default: data/<dataset>).
        #[arg(long)]
        from: Option<PathBuf>,
        /// At most this many images per split.
        #[arg(long)]
        limit: Option<usize>,
        /// The layout written; `image-folder` is the one there is.
        #[arg(long, default_value = "image-folder", value_parser = ["image-folder"])]
        format: String,
    },
}

/// Runs the command line; the binary's `main` is only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let world = match join_world() {
        Ok(world) => world,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::FAILURE;
        }
    };
    // The main thread trains, so it joins the kernels' pool (see `threads`); ranks
    // on one machine share its cores.
    let threads = cli.threads.map(|n| n as usize).or_else(|| {
        let chosen = std::env::var_os("NABLA_THREADS").is_some();
        (world.is_distributed() && !chosen)
            .then(|| (crate::threads::cores() / ranks_on_this_node()).max(1))
    });
    let _ = crate::threads::set_num_threads_using_this_thread(threads);
    let result = match cli.command {
        Command::Train {
            config,
            out,
            epochs,
            seed,
            resume,
            dashboard,
            tensorboard,
            allow_host,
        } => {
            let args = train::TrainArgs {
                config,
                out,
                epochs: epochs.map(|e| e as usize),
                seed,
                resume,
                dashboard,
                tensorboard,
                allow_host,
            };
            train::run(args, &world).map(|outcome| match outcome {
                train::Outcome::Finished => ExitCode::SUCCESS,
                train::Outcome::Interrupted => ExitCode::from(130),
            })
        }
        Command::Dashboard {
            runs,
            addr,
            allow_host,
        } => dashboard::serve_dirs(&runs, &addr, allow_host).map(|()| ExitCode::SUCCESS),
        Command::Eval {
            target,
            config,
            data,
            unknown,
        } => {
            let unknown = match unknown.as_str() {
                "skip" => Unknown::Skip,
                _ => Unknown::Error,
            };
            inspect::open(&target, config.as_deref())
                .and_then(|run| inspect::eval(&run, data.as_deref(), unknown))
        }
        .map(|_| ExitCode::SUCCESS),
        Command::Predict {
            target,
            inputs,
            config,
            top,
            invert,
        } => inspect::open(&target, config.as_deref())
            .and_then(|run| inspect::predict(&run, &inputs, top as usize, invert))
            .map(|_| ExitCode::SUCCESS),
        Command::Export {
            target,
            config,
            out,
            opset,
            with_preprocessing,
        } => {
            let options = crate::onnx::ExportOptions {
                opset,
                with_preprocessing,
            };
            inspect::open(&target, config.as_deref())
                .and_then(|run| onnx::export(&run, out, &options))
                .map(|_| ExitCode::SUCCESS)
        }
        Command::Import { model, out } => onnx::import(&model, &out).map(|_| ExitCode::SUCCESS),
        Command::Generate {
            run,
            prompt,
            tokens,
            temperature,
            top_k,
            seed,
        } => {
            let sampling = crate::generate::Sampling {
                temperature,
                top_k: top_k.map(|k| k as usize),
                seed,
            };
            generate::run(&run, &prompt, tokens, sampling).map(|_| ExitCode::SUCCESS)
        }
        Command::Gradcheck {
            config,
            tolerance,
            max_elements,
        } => inspect::gradcheck(&config, tolerance, max_elements as usize).map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Command::Explain {
            config,
            sample,
            input,
            target,
            lr,
            dot,
            dashboard,
        } => match (dashboard, config) {
            (None, config) => explain::run(
                config.as_deref(),
                sample,
                input.as_deref(),
                target.as_deref(),
                lr,
                dot.as_deref(),
            )
            .map(|_| ExitCode::SUCCESS),
            (Some(_), _) if input.is_some() || target.is_some() || dot.is_some() => {
                Err(crate::Error::Config(
                    "--dashboard steps through a training example (--sample N): --input, --target and --dot are for the terminal"
                        .into(),
                ))
            }
            (Some(address), Some(config)) => {
                dashboard::serve_step(&config, sample.unwrap_or(0), lr, &address)
                    .map(|()| ExitCode::SUCCESS)
            }
            (Some(_), None) => Err(crate::Error::Config(
                "--dashboard steps through a config's model: give the config".into(),
            )),
        },
        Command::Bench {
            workload,
            epochs,
            steps,
            data_dir,
            text,
            batch,
            context,
        } => {
            let options = bench::Options {
                epochs: epochs.map(|e| e as usize),
                steps: steps.map(|s| s as usize),
                batch: batch.map(|b| b as usize),
                context: context.map(|c| c as usize),
            };
            bench::run(&workload, &options, &data_dir, &text, &world).map(|_| ExitCode::SUCCESS)
        }
        Command::Data {
            action:
                DataAction::Fetch {
                    dataset,
                    dir,
                    mirror,
                    archive,
                },
        } => fetch_dataset(&dataset, dir, mirror.as_deref(), archive.as_deref())
            .map(|_| ExitCode::SUCCESS),
        Command::Data {
            action:
                DataAction::Export {
                    dataset,
                    dir,
                    from,
                    limit,
                    format: _,
                },
        } => export::run(&dataset, &dir, from, limit).map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) if world.is_distributed() => {
            // the other ranks may be waiting in a collective this one will never join
            eprintln!("error (rank {} of {}): {err}", world.rank(), world.size());
            world.abort(1)
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `nabla data fetch`. Without the `fetch` feature there is no HTTP client (and no
/// TLS stack, a third of a clean build): the command says how to get one rather than
/// disappear from the help.
fn fetch_dataset(
    dataset: &str,
    dir: Option<PathBuf>,
    mirror: Option<&str>,
    archive: Option<&std::path::Path>,
) -> crate::Result<()> {
    #[cfg(feature = "fetch")]
    return fetch::run(dataset, dir, mirror, archive);
    #[cfg(not(feature = "fetch"))]
    {
        let _unused = (dir, mirror, archive);
        Err(crate::Error::Config(format!(
            "cannot fetch `{dataset}`: this nabla was built without the `fetch` feature (the \
             HTTP client); rebuild with `cargo build --release --features fetch`"
        )))
    }
}

/// The flag Ctrl-C (and SIGTERM) sets, registered once per process: training
/// checks it after every step, a dashboard waits on it.
pub fn ctrl_c_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    let flag = FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let set = Arc::clone(&flag);
        let _ = ctrlc::set_handler(move || set.store(true, Ordering::SeqCst));
        flag
    });
    Arc::clone(flag)
}

/// The processes of this job: MPI's world when launched by `mpirun` (feature `mpi`),
/// else this process alone.
fn join_world() -> std::result::Result<crate::distributed::World, String> {
    #[cfg(feature = "mpi")]
    if crate::distributed::mpi::launched_by_mpi() {
        // SAFETY: called first thing in `main`, before this process starts any
        // other thread, so nothing reads the environment while it changes.
        unsafe { crate::distributed::mpi::prefer_yielding() };
        return crate::distributed::mpi::Mpi::init();
    }
    Ok(crate::distributed::World::single())
}

/// How many ranks share this machine's cores.
fn ranks_on_this_node() -> usize {
    #[cfg(feature = "mpi")]
    return crate::distributed::mpi::ranks_on_this_node();
    #[cfg(not(feature = "mpi"))]
    1
}
