//! `nabla data fetch` (feature `fetch`, the HTTP client) against a local server: good
//! files are kept byte for byte, bad ones are refused by name and never kept.
//!
//! `cargo test --features fetch --test fetch`

mod common;

use common::{ROOT, nabla, temp_dir, text};
use std::io::{Read, Write};
use std::net::TcpListener;
/// A local HTTP server on a free port, answering each request's path with
/// `answer(path)`: a status line and a body. Returns the port.
fn serve_locally(answer: impl Fn(&str) -> (&'static str, Vec<u8>) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 2048];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]);
            let (status, body) = answer(line.split_whitespace().nth(1).unwrap_or("/"));
            let header = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(header.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    port
}

#[test]
fn data_fetch_from_a_local_server() {
    let port = serve_locally(|path| {
        // /good/NAME serves the real file; /bad/NAME serves corrupted bytes
        let name = path.rsplit('/').next().unwrap_or("");
        match std::fs::read(format!("{ROOT}/data/mnist/{name}")) {
            Ok(mut bytes) => {
                if path.starts_with("/bad/") {
                    bytes[100] ^= 0xff;
                }
                ("200 OK", bytes)
            }
            Err(_) => ("404 Not Found", Vec::new()),
        }
    });
    let dir = temp_dir("fetch");
    let target = dir.join("mnist");
    let good = format!("http://127.0.0.1:{port}/good/");
    let out = nabla(&[
        "data",
        "fetch",
        "mnist",
        "--dir",
        target.to_str().unwrap(),
        "--mirror",
        &good,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    for name in ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        assert_eq!(
            std::fs::read(target.join(name)).unwrap(),
            std::fs::read(format!("{ROOT}/data/mnist/{name}")).unwrap()
        );
    }
    let bad = format!("http://127.0.0.1:{port}/bad/");
    let elsewhere = dir.join("bad");
    let out = nabla(&[
        "data",
        "fetch",
        "mnist",
        "--dir",
        elsewhere.to_str().unwrap(),
        "--mirror",
        &bad,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("checksum mismatch"), "{}", text(&out));
    assert!(
        !elsewhere.join("train-images-idx3-ubyte.gz").exists(),
        "a bad download is never kept"
    );
}

#[test]
fn cifar_fetch_keeps_nothing_but_the_published_archive() {
    // no internet here: a local server offers a file that is not the published
    // archive, and a local copy is just as wrong; both are refused by name
    let port = serve_locally(|_| ("200 OK", b"not the archive".to_vec()));
    let dir = temp_dir("fetch-cifar");
    let target = dir.join("cifar");
    let mirror = format!("http://127.0.0.1:{port}/files");
    let out = nabla(&[
        "data",
        "fetch",
        "cifar10",
        "--dir",
        target.to_str().unwrap(),
        "--mirror",
        &mirror,
    ]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("/files/cifar-10-binary.tar.gz")
            && said.contains("15 bytes, but cifar-10-binary.tar.gz is 170052171 bytes"),
        "{said}"
    );
    assert!(
        !target.exists() || std::fs::read_dir(&target).unwrap().next().is_none(),
        "nothing kept"
    );

    let copy = dir.join("cifar-100-binary.tar.gz");
    std::fs::write(&copy, vec![0u8; 168_513_733]).unwrap();
    let out = nabla(&[
        "data",
        "fetch",
        "cifar100",
        "--dir",
        target.to_str().unwrap(),
        "--archive",
        copy.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("checksum mismatch: expected MD5 03b5dce01913d631647c71ecec9e9cb8"),
        "{said}"
    );
    assert!(!target.join("train.bin").exists());
}
