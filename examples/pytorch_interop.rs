//! Checkpoints across frameworks: a model saved by nabla loads in PyTorch with
//! identical outputs, and one saved by PyTorch loads in nabla.
//!
//! ```sh
//! cargo run --release --example pytorch_interop -- export /tmp/interop
//! python scripts/pytorch_interop.py /tmp/interop      # needs torch + safetensors
//! cargo run --release --example pytorch_interop -- check /tmp/interop
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use nabla::checkpoint::{load_model, load_tensors, save_model, save_tensors};
use nabla::nn::{BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Module, Relu, Sequential};
use nabla::{Conv2dOptions, Tensor};

/// The same network as `scripts/pytorch_interop.py` builds in PyTorch.
fn network(seed: u64) -> Sequential {
    let mut rng = nabla::rng(seed);
    Sequential::new()
        .layer(Conv2d::new(
            1,
            4,
            3,
            Conv2dOptions::default().padding(1),
            &mut rng,
        ))
        .layer(BatchNorm2d::new(4))
        .layer(Relu)
        .layer(MaxPool2d::new(2))
        .layer(Flatten)
        .layer(Linear::new(4 * 4 * 4, 10, &mut rng))
}

fn main() -> nabla::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pytorch_interop export|check DIR");
        std::process::exit(2);
    };
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).map_err(|e| nabla::Error::io(dir, e))?;
    let none = BTreeMap::new();
    match mode.as_str() {
        "export" => {
            let model = network(0);
            // move batch norm's running statistics off their defaults
            model.forward(&Tensor::randn(&[16, 1, 8, 8], 1.0, 2.0, &mut nabla::rng(1)));
            model.eval();
            let x = Tensor::randn(&[3, 1, 8, 8], 0.0, 1.0, &mut nabla::rng(2));
            save_model(dir.join("nabla_model.safetensors"), &model, &none)?;
            save_tensors(
                dir.join("input.safetensors"),
                &[("x".into(), x.clone())],
                &none,
            )?;
            save_tensors(
                dir.join("nabla_output.safetensors"),
                &[("y".into(), model.forward(&x))],
                &none,
            )?;
            println!(
                "wrote nabla_model, input and nabla_output to {}",
                dir.display()
            );
        }
        "check" => {
            let model = network(42);
            load_model(dir.join("torch_model.safetensors"), &model)?;
            model.eval();
            let x = load_tensors::<f32>(dir.join("input.safetensors"))?
                .tensors
                .remove(0)
                .1;
            let expected = load_tensors::<f32>(dir.join("torch_output.safetensors"))?
                .tensors
                .remove(0)
                .1;
            let ours = model.forward(&x);
            let max_diff = ours
                .to_vec()
                .iter()
                .zip(expected.to_vec())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            println!("PyTorch-saved model in nabla: max |difference| of outputs = {max_diff:e}");
            if max_diff > 1e-5 {
                eprintln!("outputs differ");
                std::process::exit(1);
            }
        }
        other => {
            eprintln!("unknown mode {other}: use export or check");
            std::process::exit(2);
        }
    }
    Ok(())
}
