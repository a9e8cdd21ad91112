//! The dashboard's server and API, as scripts and browsers use them: what it
//! serves, that it serves nothing else and changes nothing, that it pushes at
//! most a few updates a second, and that watching — even by a browser that never
//! reads — does not change or slow what is trained. (The page itself is tested in
//! a real browser by tests/browser/dashboard.py.)

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::{ROOT, Spawned, temp_dir};
use nabla::dashboard::state::StepPoint;
use nabla::dashboard::{DEFAULT_ADDRESS, Dashboard, RunState, Status};
use serde_json::{Value, json};

/// One request over a fresh connection: (status, headers, body).
fn request(address: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    request_to(address, &address.to_string(), method, path)
}

/// [`request`] with the `Host` header `host` (empty: none at all).
fn request_to(address: SocketAddr, host: &str, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let host = match host {
        "" => String::new(),
        host => format!("Host: {host}\r\n"),
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\n{host}Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

fn get_json(address: SocketAddr, path: &str) -> Value {
    let (status, _, body) = request(address, "GET", path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A running `nabla`: its stdout line by line, its stderr gathered (both read on
/// threads of their own, so it never blocks on a full pipe).
struct Running {
    child: Spawned,
    lines: Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

fn spawn(args: &[&str]) -> Running {
    let mut child = Spawned::start(
        Command::new(env!("CARGO_BIN_EXE_nabla"))
            .args(args)
            .current_dir(ROOT)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let (send, lines) = channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let gathered = stderr.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buffer) {
            gathered
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    Running {
        child,
        lines,
        stderr,
    }
}

/// Waits for a line containing `needle`, returning it.
fn wait_for(lines: &Receiver<String>, needle: &str, seconds: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} within {seconds} s");
}

/// The address in "dashboard: http://ADDRESS/".
fn address_in(line: &str) -> SocketAddr {
    let url = line.split("http://").nth(1).unwrap();
    url.trim_end_matches('/').parse().unwrap()
}

/// Ctrl-C, as a person stops the server; its exit status and what it wrote to stderr.
fn interrupt(mut running: Running) -> (std::process::ExitStatus, String) {
    running.child.signal("INT");
    let status = running.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let stderr = running.stderr.lock().unwrap().clone();
    (status, stderr)
}

#[test]
fn watching_changes_nothing_and_a_browser_that_never_reads_does_not_hold_training_up() {
    let dir = temp_dir("dashboard-watch");
    let (plain, watched) = (dir.join("plain"), dir.join("watched"));
    let epochs = ["--epochs", "40"];
    let out = common::nabla(
        &[
            &[
                "train",
                "examples/spirals.toml",
                "--out",
                plain.to_str().unwrap(),
            ][..],
            &epochs,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", common::text(&out));

    let args = [
        &[
            "train",
            "examples/spirals.toml",
            "--out",
            watched.to_str().unwrap(),
            "--dashboard",
            "127.0.0.1:0",
        ][..],
        &epochs,
    ]
    .concat();
    let running = spawn(&args);
    let address = address_in(&wait_for(&running.lines, "dashboard: http://", 60));
    // as many browsers as the server takes, each of which reads the response head
    // (the server counts a stream before sending it) and then never another byte
    let stuck: Vec<TcpStream> = (0..nabla::dashboard::server::MAX_STREAMS)
        .map(|_| {
            let mut stream = TcpStream::connect(address).unwrap();
            write!(
                stream,
                "GET /api/runs/watched/events HTTP/1.1\r\nHost: localhost\r\n\r\n"
            )
            .unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            assert!(
                head.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&head)
            );
            stream
        })
        .collect();
    // so one stream too many is surely turned away (its status line is all this reads)
    let mut extra = TcpStream::connect(address).unwrap();
    write!(
        extra,
        "GET /api/runs/watched/events HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut status_line = String::new();
    BufReader::new(extra).read_line(&mut status_line).unwrap();
    assert!(
        status_line.starts_with("HTTP/1.1 503"),
        "stream {} of {}: {status_line}",
        stuck.len() + 1,
        stuck.len()
    );

    wait_for(&running.lines, "keeps serving", 120);
    // training time, epoch by epoch as metrics.jsonl records it: the stuck streams
    // may cost a little, never a wait on a client. A wait would last the server's
    // 30-second write timeout, so an epoch of 5 s is one; a busy machine (a CI run
    // beside other work made the 40 epochs 0.35 s alone and 3.1 s watched) is not.
    let epoch_seconds = |run: &std::path::Path| -> Vec<f64> {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap()["seconds"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let (alone, stuck_beside) = (epoch_seconds(&plain), epoch_seconds(&watched));
    let slowest = stuck_beside.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "40 epochs: {:.2} s alone, {:.2} s with {} stuck streams (slowest epoch {slowest:.3} s)",
        alone.iter().sum::<f64>(),
        stuck_beside.iter().sum::<f64>(),
        stuck.len()
    );
    assert!(
        slowest < 5.0,
        "stuck streams held training up: an epoch took {slowest:.2} s"
    );

    // the server still answers
    let runs = get_json(address, "/api/runs");
    assert_eq!(runs[0]["status"], "finished");
    assert_eq!(runs[0]["epochs_done"], 40);
    drop(stuck);
    assert!(
        interrupt(running).0.success(),
        "Ctrl-C after training is a clean exit"
    );

    let weights = |run: &std::path::Path| std::fs::read(run.join("model.safetensors")).unwrap();
    assert!(
        weights(&plain) == weights(&watched),
        "the dashboard changed the trained weights"
    );
}

#[test]
fn the_api_serves_what_was_recorded_and_pushes_at_most_a_few_updates_a_second() {
    let run = RunState::new("demo", "runs/demo", "[train]\nepochs = 1\n").shared();
    let dashboard = Dashboard::serve("127.0.0.1:0", vec![run.clone()]).unwrap();
    let address = dashboard.address();
    let writer = {
        let run = run.clone();
        std::thread::spawn(move || {
            // ~2000 steps a second for 1.5 s: far more than a page should be sent
            for step in 1..=3000 {
                let point = StepPoint {
                    step,
                    epoch: step as f64 / 3000.0,
                    loss: 1.0 / step as f64,
                    accuracy: 0.5,
                    lr: 0.1,
                };
                run.lock().unwrap().steps.push(point);
                std::thread::sleep(Duration::from_micros(500));
            }
            let mut state = run.lock().unwrap();
            state.metrics.push(json!({"epoch": 1, "train_loss": 0.5}));
            state.set_status(Status::Finished, None);
        })
    };

    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /api/runs/demo/events HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    while reader.read_line(&mut head).unwrap() > 2 && !head.ends_with("\r\n\r\n") {}
    assert!(head.contains("text/event-stream"), "{head}");

    let (mut updates, mut steps_seen, mut finished) = (Vec::new(), Vec::new(), false);
    let started = Instant::now();
    while !finished {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            let update: Value = serde_json::from_str(data).unwrap();
            updates.push((started.elapsed(), update["full"].as_bool().unwrap()));
            steps_seen.extend(
                update["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["step"].as_u64().unwrap()),
            );
            finished = update["status"] == "finished";
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stream never said the run finished"
        );
    }
    writer.join().unwrap();
    // every step arrives once, in order, however they were batched
    assert_eq!(steps_seen, (1..=3000).collect::<Vec<_>>());
    assert!(
        updates[0].1 && updates[1..].iter().all(|u| !u.1),
        "only the first update is full"
    );
    // a rate, not the gaps between arrivals: the network and the scheduler may
    // deliver two updates close together however far apart they were sent
    let seconds = updates.last().unwrap().0.as_secs_f64();
    let most = (seconds / 0.25).ceil() as usize + 1;
    assert!(
        updates.len() <= most,
        "{} updates in {seconds:.2} s: more than one per 250 ms",
        updates.len()
    );

    let runs = get_json(address, "/api/runs");
    assert_eq!(
        runs,
        json!([{"id": "demo", "path": "runs/demo", "status": "finished", "epochs": 0, "epochs_done": 1, "steps": 3000, "step_view": false}])
    );
    assert_eq!(
        get_json(address, "/api/runs/demo/metrics"),
        json!([{"epoch": 1, "train_loss": 0.5}])
    );
    assert_eq!(
        get_json(address, "/api/runs/demo")["steps"]
            .as_array()
            .unwrap()
            .len(),
        3000
    );
    assert_eq!(request(address, "GET", "/api/runs/other/metrics").0, 404);
}

#[test]
fn it_serves_its_own_page_and_nothing_else_and_changes_nothing() {
    let run = RunState::new("demo", "runs/demo", "").shared();
    let dashboard = Dashboard::serve("127.0.0.1:0", vec![run]).unwrap();
    let address = dashboard.address();

    let (status, head, body) = request(address, "GET", "/");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html") && body.contains("nabla dashboard"));
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    let (status, head, body) = request(address, "GET", "/dashboard.js");
    assert_eq!(status, 200);
    assert!(head.contains("text/javascript") && body.contains("EventSource"));

    // raw request lines, as no browser would normalise them
    for path in [
        "/../Cargo.toml",
        "/../../../../etc/passwd",
        "/%2e%2e/Cargo.toml",
        "/api/runs/../../Cargo.toml",
        "/api/runs/demo/../../../Cargo.toml",
        "/api/runs/%2e%2e%2fCargo.toml/metrics",
        "/dashboard.js/../../src/lib.rs",
        "//etc/passwd",
        "/src/dashboard/assets/index.html",
        "/api/runs/demo/config.toml",
    ] {
        let (status, _, body) = request(address, "GET", path);
        assert_eq!(status, 404, "GET {path}");
        assert!(
            !body.contains("[package]") && !body.contains("root:"),
            "GET {path} leaked a file"
        );
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/", "/api/runs", "/api/runs/demo", "/api/runs/demo/metrics"] {
            let (status, head, _) = request(address, method, path);
            assert_eq!(status, 405, "{method} {path}");
            assert!(head.contains("allow: get, head"));
        }
    }
}

/// A page on another site that made its own name point at 127.0.0.1 (DNS
/// rebinding) sends that name as `Host`: it is refused, for the page and the API
/// alike, while localhost, the addresses and the names allowed are answered.
#[test]
fn only_requests_addressed_to_this_machine_are_answered() {
    let run = RunState::new("demo", "/home/someone/runs/demo", "").shared();
    let names = vec!["lab-box".to_string()];
    let dashboard = Dashboard::serve_allowing("127.0.0.1:0", vec![run], names).unwrap();
    let address = dashboard.address();
    let port = address.port();
    for path in ["/", "/api/runs", "/api/runs/demo", "/api/runs/demo/events"] {
        for host in [
            "evil.example.com".to_string(),
            format!("evil.example.com:{port}"),
            format!("localhost.evil.example.com:{port}"),
            String::new(),
        ] {
            let (status, _, body) = request_to(address, &host, "GET", path);
            assert_eq!(status, 403, "GET {path} with Host {host:?}: {body}");
            assert!(!body.contains("/home/someone"), "{body}");
            assert!(body.contains("--allow-host"), "{body}");
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
        format!("lab-box:{port}"),
        "LAB-BOX".to_string(),
    ] {
        let (status, _, body) = request_to(address, &host, "GET", "/api/runs");
        assert_eq!(status, 200, "Host {host:?}: {body}");
    }
}

#[test]
fn it_listens_on_this_machine_unless_told_and_moves_off_a_busy_port() {
    let default: SocketAddr = DEFAULT_ADDRESS.parse().unwrap();
    assert!(default.ip().is_loopback() && default.port() == 6006);

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let run = RunState::new("demo", "", "").shared();
    let dashboard = Dashboard::serve(&format!("127.0.0.1:{port}"), vec![run.clone()]).unwrap();
    let moved = dashboard.address().port();
    assert!(
        moved > port && moved <= port + 20,
        "port {port} is busy; got {moved}"
    );
    assert!(!dashboard.is_exposed());
    assert_eq!(dashboard.url(), format!("http://127.0.0.1:{moved}/"));

    let wide = Dashboard::serve("0.0.0.0:0", vec![run]).unwrap();
    assert!(wide.is_exposed(), "0.0.0.0 reaches beyond this machine");
    let error = Dashboard::serve("not an address", vec![])
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("expected host:port"), "{error}");
}

#[test]
fn nabla_dashboard_serves_run_directories_side_by_side() {
    let dir = temp_dir("dashboard-dirs");
    let (first, second) = (dir.join("a").join("spirals"), dir.join("b").join("spirals"));
    for (run, epochs) in [(&first, "3"), (&second, "2")] {
        let out = common::nabla(&[
            "train",
            "examples/spirals.toml",
            "--epochs",
            epochs,
            "--out",
            run.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", common::text(&out));
    }
    let running = spawn(&[
        "dashboard",
        first.to_str().unwrap(),
        second.to_str().unwrap(),
        "--addr",
        "0.0.0.0:0",
    ]);
    let line = wait_for(&running.lines, "dashboard: http://", 60);
    let address: SocketAddr = format!("127.0.0.1:{}", address_in(&line).port())
        .parse()
        .unwrap();

    let runs = get_json(address, "/api/runs");
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["spirals", "spirals-2"],
        "two directories of one name get two ids"
    );
    assert_eq!(runs[0]["status"], "finished");
    assert_eq!(runs[1]["epochs_done"], 2);
    // no answer maps the user's disk: the page shows the folder's name
    assert_eq!(runs[0]["path"], "…/spirals");
    let temp = dir.to_str().unwrap();
    for path in ["/api/runs", "/api/runs/spirals", "/api/runs/spirals-2"] {
        let (status, _, body) = request(address, "GET", path);
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains(temp), "{path} names {temp}: {body}");
    }
    let on_disk: Vec<Value> = std::fs::read_to_string(first.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        get_json(address, "/api/runs/spirals/metrics"),
        Value::Array(on_disk)
    );

    // the saved model's pictures follow once the data is loaded
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let run = get_json(address, "/api/runs/spirals");
        if !run["regions"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        run["regions"][0]["classes"].as_array().unwrap().len(),
        64 * 64
    );
    // steps.jsonl: 3 epochs of 25 steps, in order
    let steps: Vec<u64> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=75).collect::<Vec<_>>());
    assert_eq!(run["network"]["layers"].as_array().unwrap().len(), 5);
    assert_eq!(
        run["plane"]["xy"].as_array().unwrap().len(),
        1000,
        "800 training and 200 test points"
    );

    let (status, warning) = interrupt(running);
    assert!(status.success());
    assert!(
        warning.contains("not only on this machine"),
        "binding 0.0.0.0 must say so: {warning}"
    );
}

#[test]
fn a_directory_that_is_no_run_is_refused_by_name() {
    let dir = temp_dir("dashboard-not-a-run");
    let out = common::nabla(&["dashboard", dir.to_str().unwrap(), "--addr", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let text = common::text(&out);
    assert!(
        text.contains("is not a run directory") && text.contains(dir.to_str().unwrap()),
        "{text}"
    );
}
