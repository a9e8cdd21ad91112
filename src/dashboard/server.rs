//! The dashboard's HTTP server: the page (four files compiled into the binary),
//! a read-only JSON API, and a stream of updates per run (Server-Sent Events).
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/runs` | `[{id, path, status, epochs, epochs_done, steps}]` |
//! | `GET /api/runs/<id>` | everything recorded about the run |
//! | `GET /api/runs/<id>/metrics` | the `metrics.jsonl` lines, as one JSON array |
//! | `GET /api/runs/<id>/events` | `event: update` messages, at most [`PUSH_INTERVAL`] apart |
//! | `GET /api/runs/<id>/step…` | one training step explained ([`super::step`]) |
//!
//! Nothing else is served: URLs name runs by id, never by path, so no request can
//! reach a file outside the page's own. Every other method gets 405.
//!
//! Only requests addressed to this machine are answered: the `Host` header must be
//! `localhost`, an IP address (the bound one, or any other when it listens on all
//! of them), or a name given with `--allow-host`; anything else gets 403. A web page
//! on another site could otherwise read the dashboard through DNS rebinding (its own
//! name made to point at 127.0.0.1), since the browser would take it for that site.
//!
//! The server is a few dozen lines of `std::net`, a thread per connection: it only
//! answers GET with `Connection: close`, and an event stream lives as long as the
//! page is open, which general-purpose thread-pool servers (tiny_http's pool, for
//! one) can starve under a burst of connections. Limits keep it safe: request heads
//! of at most 8 KiB, read and write timeouts, at most [`MAX_CONNECTIONS`] at once.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::state::{RunState, SharedRun};
use super::step::StepRequest;
use crate::error::{Error, Result};

/// The shortest time between two updates sent to one browser, whatever the step rate.
pub const PUSH_INTERVAL: Duration = Duration::from_millis(250);
/// Event streams open at once; more get 503.
pub const MAX_STREAMS: usize = 32;
/// Connections served at once (each holds a thread); more get 503.
pub const MAX_CONNECTIONS: usize = 64;
/// Ports tried after a busy one.
const PORTS_TRIED: u16 = 20;
/// An idle stream sends a comment this often, so a closed browser is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request, or to take a write.
const TIMEOUT: Duration = Duration::from_secs(30);

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");
const STEP_JS: &str = include_str!("assets/step.js");

/// A running dashboard server; dropping it stops the server.
pub struct Dashboard {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dashboard {
    /// Serves `runs` at `address` (`host:port`); a busy port moves on to the next
    /// free one (up to 20 further).
    pub fn serve(address: &str, runs: Vec<SharedRun>) -> Result<Dashboard> {
        Dashboard::serve_allowing(address, runs, Vec::new())
    }

    /// [`Dashboard::serve`], also answering requests whose `Host` is one of
    /// `host_names` (a name this machine is reached by, beside `localhost` and its
    /// addresses).
    pub fn serve_allowing(
        address: &str,
        runs: Vec<SharedRun>,
        host_names: Vec<String>,
    ) -> Result<Dashboard> {
        let listener = bind(address)?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("dashboard address {address}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || accept(&listener, &runs, &host_names, &stopped))
            .expect("a thread can be started");
        Ok(Dashboard {
            address,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Whether other machines can reach it (it listens on more than loopback).
    pub fn is_exposed(&self) -> bool {
        !self.address.ip().is_loopback()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accepting thread with a connection of our own
        let local = match self.address.ip().is_unspecified() {
            true => SocketAddr::from(([127, 0, 0, 1], self.address.port())),
            false => self.address,
        };
        let _ = TcpStream::connect_timeout(&local, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds the first free port from the given one on.
fn bind(address: &str) -> Result<TcpListener> {
    let bad = |why: String| Error::Config(format!("dashboard address `{address}`: {why}"));
    let first = address
        .to_socket_addrs()
        .map_err(|e| bad(format!("{e} (expected host:port, e.g. 127.0.0.1:6006)")))?
        .next()
        .ok_or_else(|| bad("names no address".into()))?;
    let mut last_error = None;
    for offset in 0..=PORTS_TRIED {
        let Some(port) = first.port().checked_add(offset) else {
            break;
        };
        match TcpListener::bind(SocketAddr::new(first.ip(), port)) {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && first.port() != 0 => {
                last_error = Some(e)
            }
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    Err(bad(format!(
        "ports {} to {} are all in use ({})",
        first.port(),
        first.port().saturating_add(PORTS_TRIED),
        last_error.map_or_else(String::new, |e| e.to_string())
    )))
}

/// Takes connections until stopped, each on a thread of its own.
fn accept(listener: &TcpListener, runs: &[SharedRun], host_names: &[String], stop: &AtomicBool) {
    let host_names = Arc::new(host_names.to_vec());
    let connections = Arc::new(AtomicUsize::new(0));
    let streams = Arc::new(AtomicUsize::new(0));
    for connection in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut connection) = connection else {
            continue;
        };
        if connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            connections.fetch_sub(1, Ordering::SeqCst);
            let _ = connection.set_write_timeout(Some(TIMEOUT));
            let _ = respond(
                &mut connection,
                false,
                Response::text(503, "too many connections\n"),
            );
            continue;
        }
        let (runs, connections, streams) = (runs.to_vec(), connections.clone(), streams.clone());
        let host_names = host_names.clone();
        let spawned = std::thread::Builder::new()
            .name("dashboard-connection".into())
            .spawn(move || {
                serve_connection(connection, &runs, &host_names, &streams);
                connections.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            eprintln!("warning: dashboard: could not start a thread for a connection");
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Asset(&'static str, &'static str),
    Runs,
    Run(String),
    Metrics(String),
    Events(String),
    Step(String, StepRequest),
    NotFound,
}

fn route(url: &str) -> Route {
    let url = url.split('#').next().unwrap_or("");
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    match path {
        "/" | "/index.html" => return Route::Asset(INDEX_HTML, "text/html; charset=utf-8"),
        "/dashboard.js" => return Route::Asset(DASHBOARD_JS, "text/javascript; charset=utf-8"),
        "/dashboard.css" => return Route::Asset(DASHBOARD_CSS, "text/css; charset=utf-8"),
        "/step.js" => return Route::Asset(STEP_JS, "text/javascript; charset=utf-8"),
        "/api/runs" | "/api/runs/" => return Route::Runs,
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/api/runs/") else {
        return Route::NotFound;
    };
    match rest.split('/').collect::<Vec<_>>()[..] {
        [id] => Route::Run(id.into()),
        [id, "metrics"] => Route::Metrics(id.into()),
        [id, "events"] => Route::Events(id.into()),
        [id, "step", ref rest @ ..] if rest.len() <= 1 => {
            let rest = rest
                .first()
                .map_or(String::new(), |part| format!("/{part}"));
            StepRequest::parse(&rest, query)
                .map_or(Route::NotFound, |request| Route::Step(id.into(), request))
        }
        _ => Route::NotFound,
    }
}

/// A response with a body of known length.
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    extra: &'static str,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            extra: "",
        }
    }

    fn json(value: &Value) -> Response {
        Response {
            status: 200,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            extra: "",
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        422 => "Unprocessable Content",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Reads one request and answers it; an event stream keeps the connection.
fn serve_connection(
    mut connection: TcpStream,
    runs: &[SharedRun],
    host_names: &[String],
    streams: &Arc<AtomicUsize>,
) {
    let _ = connection.set_read_timeout(Some(TIMEOUT));
    let _ = connection.set_write_timeout(Some(TIMEOUT));
    let Request {
        method,
        target,
        host,
    } = match read_request(&mut connection) {
        Ok(request) => request,
        Err(status) => {
            let _ = respond(
                &mut connection,
                false,
                Response::text(status, "bad request\n"),
            );
            return;
        }
    };
    if !host
        .as_deref()
        .is_some_and(|host| host_allowed(host, host_names))
    {
        let refused = Response::text(
            403,
            "this dashboard answers requests to localhost or an IP address only; \
             start it with --allow-host NAME to reach it by another name\n",
        );
        let _ = respond(&mut connection, false, refused);
        return;
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        let mut refused = Response::text(405, "the dashboard is read-only: GET only\n");
        refused.extra = "Allow: GET, HEAD\r\n";
        let _ = respond(&mut connection, false, refused);
        return;
    }
    let find = |id: &str| runs.iter().find(|run| lock(run).id == id).cloned();
    let not_found = || Response::text(404, "not found\n");
    let response = match route(&target) {
        Route::Asset(body, content_type) => Response {
            status: 200,
            content_type,
            body: body.as_bytes().to_vec(),
            extra: "",
        },
        Route::Runs => Response::json(&Value::Array(
            runs.iter().map(|r| lock(r).summary()).collect(),
        )),
        Route::Run(id) => find(&id).map_or_else(not_found, |run| {
            Response::json(&serde_json::to_value(&*lock(&run)).expect("plain data serialises"))
        }),
        Route::Metrics(id) => find(&id).map_or_else(not_found, |run| {
            Response::json(&Value::Array(lock(&run).metrics.clone()))
        }),
        Route::Events(id) => match find(&id) {
            Some(run) if !head_only => return stream(connection, &run, streams),
            Some(_) => Response::text(200, ""),
            None => not_found(),
        },
        Route::Step(id, request) => {
            let view = find(&id).and_then(|run| lock(&run).step.clone());
            match view {
                // the lock is not held while the step is computed
                Some(view) => match view.answer(request) {
                    Ok(answer) => Response::json(&answer),
                    Err(error) => Response::text(422, &format!("{error}\n")),
                },
                None => not_found(),
            }
        }
        Route::NotFound => not_found(),
    };
    let _ = respond(&mut connection, head_only, response);
}

/// What the server reads of a request.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    target: String,
    /// The `Host` header, if there is one.
    host: Option<String>,
}

/// Whether a `Host` header names this machine: `localhost` or an IP address (with
/// or without a port), or one of `host_names`. A DNS-rebinding page always sends a
/// name of its own, never an address.
fn host_allowed(host: &str, host_names: &[String]) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map_or("", |(name, _)| name),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host.as_str(),
        },
    };
    name == "localhost"
        || name.parse::<std::net::IpAddr>().is_ok()
        || host_names
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
}

/// The method, target and `Host` of a request, from a head of at most [`MAX_HEAD`]
/// bytes (the other headers are read and ignored: nothing here depends on them).
fn read_request(connection: &mut impl Read) -> std::result::Result<Request, u16> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = connection.read(&mut buffer).map_err(|_| 400u16)?;
        if read == 0 {
            return Err(400);
        }
        head.extend_from_slice(&buffer[..read]);
        if head.len() > MAX_HEAD {
            return Err(431);
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let mut words = lines.next().unwrap_or("").split(' ');
    let (method, target) = match (words.next(), words.next(), words.next()) {
        (Some(method), Some(target), Some(version)) if version.starts_with("HTTP/1.") => {
            (method.to_string(), target.to_string())
        }
        _ => return Err(400),
    };
    let host = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("host")
            .then(|| value.trim().to_string())
    });
    Ok(Request {
        method,
        target,
        host,
    })
}

/// Writes a whole response and closes the connection.
fn respond(connection: &mut TcpStream, head_only: bool, response: Response) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\
         Content-Security-Policy: default-src 'self'; img-src 'self' data:; frame-ancestors 'none'\r\n\
         {}Connection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        response.extra,
    );
    connection.write_all(head.as_bytes())?;
    if !head_only {
        connection.write_all(&response.body)?;
    }
    connection.flush()?;
    connection.shutdown(Shutdown::Write)
}

/// Streams a run's updates, or answers 503 when too many streams are open.
fn stream(mut connection: TcpStream, run: &SharedRun, streams: &AtomicUsize) {
    if streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
        streams.fetch_sub(1, Ordering::SeqCst);
        let _ = respond(
            &mut connection,
            false,
            Response::text(503, "too many open event streams\n"),
        );
        return;
    }
    stream_updates(connection, run);
    streams.fetch_sub(1, Ordering::SeqCst);
}

/// Writes `event: update` messages until the browser goes away (or stops taking
/// them for [`TIMEOUT`]). The first holds everything (`"full": true`); each later
/// one what is new, at most every [`PUSH_INTERVAL`]. The run is locked only to copy
/// the update, never while writing, so a browser that stops reading blocks only
/// this connection's thread.
fn stream_updates(mut out: TcpStream, run: &SharedRun) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut cursor = RunState::start();
    let mut last_write = Instant::now();
    loop {
        let update = lock(run).update_since(&mut cursor);
        let written = match update {
            Some(update) => {
                last_write = Instant::now();
                write!(out, "event: update\ndata: {update}\n\n")
            }
            None if last_write.elapsed() >= KEEP_ALIVE => {
                last_write = Instant::now();
                out.write_all(b": still here\n\n")
            }
            None => Ok(()),
        };
        if written.and_then(|()| out.flush()).is_err() {
            return;
        }
        std::thread::sleep(PUSH_INTERVAL);
    }
}

/// Locks a run; a panic elsewhere while it was held leaves plain data behind, still
/// worth showing.
fn lock(run: &SharedRun) -> std::sync::MutexGuard<'_, RunState> {
    run.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_runs_and_never_files() {
        assert_eq!(route("/api/runs"), Route::Runs);
        assert_eq!(
            route("/api/runs/spirals/metrics?x=1"),
            Route::Metrics("spirals".into())
        );
        assert_eq!(
            route("/api/runs/spirals/events"),
            Route::Events("spirals".into())
        );
        assert_eq!(route("/api/runs/spirals"), Route::Run("spirals".into()));
        for bad in [
            "/../Cargo.toml",
            "/api/runs/../../etc/passwd",
            "/api/runs/a/../../metrics",
            "/assets/../../src/lib.rs",
            "/dashboard.js/../../x",
            "/etc/passwd",
        ] {
            assert_eq!(route(bad), Route::NotFound, "{bad}");
        }
    }

    /// A fresh seed each run, printed so that a failure's log says how to replay it
    /// (`PROPTEST_RNG_SEED=N`), as tests/common's `config` does for the integration tests.
    fn seeded() -> proptest::test_runner::Config {
        use std::hash::BuildHasher;
        let seed = std::env::var("PROPTEST_RNG_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| std::hash::RandomState::new().hash_one(std::process::id()));
        eprintln!("property test seed {seed}: replay with PROPTEST_RNG_SEED={seed}");
        proptest::test_runner::Config {
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
            ..Default::default()
        }
    }

    // Release builds abort on a panic, so a connection's thread must not panic on any
    // input: it would end the training run serving the dashboard.
    proptest::proptest! {
        #![proptest_config(seeded())]
        #[test]
        fn any_url_routes_without_panicking_and_ids_never_hold_a_slash(url in ".{0,80}") {
            let id = match route(&url) {
                Route::Run(id) | Route::Metrics(id) | Route::Events(id) => id,
                _ => String::new(),
            };
            proptest::prop_assert!(!id.contains('/'), "{url:?} → {id:?}");
        }

        #[test]
        fn any_host_is_judged_without_panicking(host in ".{0,40}") {
            let _ = host_allowed(&host, &["box.local".to_string()]);
        }

        #[test]
        fn any_bytes_read_as_a_request_or_refused_without_panicking(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            end_head in proptest::bool::ANY,
        ) {
            let mut input = bytes;
            if end_head {
                input.extend_from_slice(b"\r\n\r\n");
            }
            match read_request(&mut input.as_slice()) {
                Ok(Request { method, target, .. }) => {
                    proptest::prop_assert!(!method.contains(' ') && !target.contains(' '));
                }
                Err(status) => proptest::prop_assert!(status == 400 || status == 431),
            }
        }
    }

    #[test]
    fn a_request_gives_its_method_target_and_host() {
        let mut request: &[u8] =
            b"GET /api/runs HTTP/1.1\r\nAccept: */*\r\nhost: 127.0.0.1:6006\r\n\r\n";
        let parsed = read_request(&mut request);
        let expected = Request {
            method: "GET".into(),
            target: "/api/runs".into(),
            host: Some("127.0.0.1:6006".into()),
        };
        assert_eq!(parsed, Ok(expected));
        let mut no_host: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(read_request(&mut no_host).map(|r| r.host), Ok(None));
        let mut too_long = vec![b'a'; MAX_HEAD + 2048];
        too_long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(read_request(&mut too_long.as_slice()), Err(431));
        let mut cut_short: &[u8] = b"GET / HTTP/1.1\r\n";
        assert_eq!(read_request(&mut cut_short), Err(400));
    }

    #[test]
    fn only_hosts_that_name_this_machine_are_answered() {
        let names = ["box.local".to_string()];
        for host in [
            "localhost",
            "localhost:6006",
            "LOCALHOST:6006",
            "127.0.0.1",
            "127.0.0.1:6006",
            "[::1]",
            "[::1]:6006",
            "192.168.1.20:6006",
            "box.local:6006",
        ] {
            assert!(host_allowed(host, &names), "{host}");
        }
        for host in [
            "evil.example.com",
            "evil.example.com:6006",
            "localhost.evil.example.com",
            "127.0.0.1.nip.io:6006",
            "box.local.evil.example.com",
            "",
            "[::1",
        ] {
            assert!(!host_allowed(host, &names), "{host}");
        }
    }
}
