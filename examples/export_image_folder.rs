//! Writes MNIST (or Fashion-MNIST) as an image folder of PNGs, the layout
//! `kind = "image_folder"` reads: `OUT/train/<digit>/<index>.png` and
//! `OUT/test/<digit>/<index>.png`.
//!
//! Run: `cargo run --release --example export_image_folder -- data/mnist data/mnist-png [LIMIT]`
//! (LIMIT: at most that many images per split).

use std::path::Path;

use nabla::data::read_idx;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: export_image_folder MNIST_DIR OUT_DIR [LIMIT]");
        std::process::exit(2);
    }
    let (mnist, out) = (Path::new(&args[1]), Path::new(&args[2]));
    let limit: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    for (split, prefix) in [("train", "train"), ("test", "t10k")] {
        let images = read_idx(idx_file(mnist, &format!("{prefix}-images-idx3-ubyte")))
            .unwrap_or_else(|e| fail(&e.to_string()));
        let labels = read_idx(idx_file(mnist, &format!("{prefix}-labels-idx1-ubyte")))
            .unwrap_or_else(|e| fail(&e.to_string()));
        let [count, rows, cols] = images.dims[..] else {
            fail("expected images [count, rows, columns]")
        };
        let written = count.min(limit);
        for index in 0..written {
            let folder = out.join(split).join(labels.data[index].to_string());
            std::fs::create_dir_all(&folder).unwrap_or_else(|e| fail(&e.to_string()));
            let pixels = images.data[index * rows * cols..][..rows * cols].to_vec();
            let image = image::GrayImage::from_raw(cols as u32, rows as u32, pixels)
                .expect("rows × columns bytes");
            image
                .save(folder.join(format!("{index:05}.png")))
                .unwrap_or_else(|e| fail(&e.to_string()));
        }
        println!(
            "{split}: {written} images under {}",
            out.join(split).display()
        );
    }
}

/// The IDX file, gzipped or not.
fn idx_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() { gz } else { dir.join(name) }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
