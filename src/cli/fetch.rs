//! `nabla data fetch`: downloads MNIST or Fashion-MNIST from the usual public
//! mirrors, verifies each file's published checksum, and writes it atomically.

use std::path::PathBuf;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A file of a dataset and its expected digest.
struct Resource {
    name: &'static str,
    digest: Checksum,
}

#[derive(Clone, Copy)]
enum Checksum {
    Sha256(&'static str),
    Md5(&'static str),
}

impl Checksum {
    fn matches(self, bytes: &[u8]) -> (bool, String) {
        let (expected, actual) = match self {
            Checksum::Sha256(expected) => (expected, hex(&Sha256::digest(bytes))),
            Checksum::Md5(expected) => (expected, hex(&Md5::digest(bytes))),
        };
        (expected == actual, actual)
    }

    fn expected(self) -> &'static str {
        match self {
            Checksum::Sha256(e) | Checksum::Md5(e) => e,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MNIST: SHA-256 of the canonical gzipped files (as committed in data/mnist).
const MNIST: [Resource; 4] = [
    Resource {
        name: "train-images-idx3-ubyte.gz",
        digest: Checksum::Sha256(
            "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
        ),
    },
    Resource {
        name: "train-labels-idx1-ubyte.gz",
        digest: Checksum::Sha256(
            "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
        ),
    },
    Resource {
        name: "t10k-images-idx3-ubyte.gz",
        digest: Checksum::Sha256(
            "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
        ),
    },
    Resource {
        name: "t10k-labels-idx1-ubyte.gz",
        digest: Checksum::Sha256(
            "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
        ),
    },
];

/// Fashion-MNIST: the MD5 sums its authors publish.
const FASHION_MNIST: [Resource; 4] = [
    Resource {
        name: "train-images-idx3-ubyte.gz",
        digest: Checksum::Md5("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    },
    Resource {
        name: "train-labels-idx1-ubyte.gz",
        digest: Checksum::Md5("25c81989df183df01b3e8a0aad5dffbe"),
    },
    Resource {
        name: "t10k-images-idx3-ubyte.gz",
        digest: Checksum::Md5("bef4ecab320f06d8554ea6380940ec79"),
    },
    Resource {
        name: "t10k-labels-idx1-ubyte.gz",
        digest: Checksum::Md5("bb300cfdad3c16e7a12a480ee83cd310"),
    },
];

const MNIST_MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];
const FASHION_MIRRORS: [&str; 2] = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
];

/// The largest file accepted (the MNIST training images are 9.9 MB gzipped).
const MAX_BYTES: u64 = 200 * 1024 * 1024;

/// Runs `nabla data fetch DATASET [--dir DIR] [--mirror URL]`.
pub fn run(dataset: &str, dir: Option<PathBuf>, mirror: Option<&str>) -> Result<()> {
    let (resources, mirrors): (&[Resource], &[&str]) = match dataset {
        "mnist" => (&MNIST, &MNIST_MIRRORS),
        "fashion-mnist" => (&FASHION_MNIST, &FASHION_MIRRORS),
        other => {
            return Err(Error::Config(format!(
                "unknown dataset `{other}`: expected `mnist` or `fashion-mnist`"
            )));
        }
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from("data").join(dataset));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mirrors: Vec<String> = match mirror {
        Some(m) => vec![if m.ends_with('/') {
            m.to_string()
        } else {
            format!("{m}/")
        }],
        None => mirrors.iter().map(|m| m.to_string()).collect(),
    };
    for resource in resources {
        let path = dir.join(resource.name);
        if std::fs::read(&path).is_ok_and(|existing| resource.digest.matches(&existing).0) {
            println!("{}: already present, checksum ok", path.display());
            continue;
        }
        let mut failures = Vec::new();
        let mut done = false;
        for base in &mirrors {
            let url = format!("{base}{}", resource.name);
            match download(&url) {
                Ok(bytes) => {
                    let (ok, actual) = resource.digest.matches(&bytes);
                    if ok {
                        crate::checkpoint::write_atomically(&path, &bytes)?;
                        println!(
                            "{}: {} bytes from {url}, checksum ok",
                            path.display(),
                            bytes.len()
                        );
                        done = true;
                        break;
                    }
                    failures.push(format!(
                        "{url}: checksum mismatch: expected {}, found {actual}",
                        resource.digest.expected()
                    ));
                }
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        if !done {
            return Err(Error::format(
                &path,
                format!(
                    "could not download a good copy:\n  {}",
                    failures.join("\n  ")
                ),
            ));
        }
    }
    println!("{dataset} is in {}", dir.display());
    Ok(())
}

fn download(url: &str) -> std::result::Result<Vec<u8>, String> {
    let mut response = ureq::get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_BYTES)
        .read_to_vec()
        .map_err(|e| e.to_string())
}
