//! The dashboard's HTTP server: the page (three files compiled into the binary),
//! a read-only JSON API, and a stream of updates per run (Server-Sent Events).
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/runs` | `[{id, path, status, epochs, epochs_done, steps}]` |
//! | `GET /api/runs/<id>` | everything recorded about the run |
//! | `GET /api/runs/<id>/metrics` | the `metrics.jsonl` lines, as one JSON array |
//! | `GET /api/runs/<id>/events` | `event: update` messages, at most [`PUSH_INTERVAL`] apart |
//!
//! Nothing else is served: URLs name runs by id, never by path, so no request can
//! reach a file outside the page's own. Every other method gets 405.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tiny_http::{Header, Method, Request, Response};

use super::state::{RunState, SharedRun};
use crate::error::{Error, Result};

/// The shortest time between two updates sent to one browser, whatever the step rate.
pub const PUSH_INTERVAL: Duration = Duration::from_millis(250);
/// Event streams open at once; more get 503 (each holds a thread).
pub const MAX_STREAMS: usize = 32;
/// Ports tried after a busy one.
const PORTS_TRIED: u16 = 20;
/// An idle stream sends a comment this often, so a closed browser is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// A running dashboard server; dropping it stops the server.
pub struct Dashboard {
    address: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Dashboard {
    /// Serves `runs` at `address` (`host:port`); a busy port moves on to the next
    /// free one (up to 20 further).
    pub fn serve(address: &str, runs: Vec<SharedRun>) -> Result<Dashboard> {
        let listener = bind(address)?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("dashboard address {address}: {e}")))?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| Error::Config(format!("dashboard at {address}: {e}")))?;
        let server = Arc::new(server);
        let accepting = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || accept(&accepting, &runs))
            .expect("a thread can be started");
        Ok(Dashboard {
            address,
            server,
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
        self.server.unblock();
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

fn accept(server: &tiny_http::Server, runs: &[SharedRun]) {
    let streams = Arc::new(AtomicUsize::new(0));
    for request in server.incoming_requests() {
        answer(request, runs, &streams);
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
    NotFound,
}

fn route(url: &str) -> Route {
    let path = url.split(['?', '#']).next().unwrap_or("");
    match path {
        "/" | "/index.html" => return Route::Asset(INDEX_HTML, "text/html; charset=utf-8"),
        "/dashboard.js" => return Route::Asset(DASHBOARD_JS, "text/javascript; charset=utf-8"),
        "/dashboard.css" => return Route::Asset(DASHBOARD_CSS, "text/css; charset=utf-8"),
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
        _ => Route::NotFound,
    }
}

fn answer(request: Request, runs: &[SharedRun], streams: &Arc<AtomicUsize>) {
    if !matches!(request.method(), Method::Get | Method::Head) {
        let response = Response::from_string("the dashboard is read-only: GET only\n")
            .with_status_code(405)
            .with_header(header("Allow", "GET, HEAD"));
        let _ = request.respond(response);
        return;
    }
    let find = |id: &str| runs.iter().find(|run| lock(run).id == id).cloned();
    let response = match route(request.url()) {
        Route::Asset(body, kind) => {
            Response::from_string(body).with_header(header("Content-Type", kind))
        }
        Route::Runs => json(&Value::Array(
            runs.iter().map(|r| lock(r).summary()).collect(),
        )),
        Route::Run(id) => match find(&id) {
            Some(run) => json(&serde_json::to_value(&*lock(&run)).expect("plain data serialises")),
            None => not_found(),
        },
        Route::Metrics(id) => match find(&id) {
            Some(run) => json(&Value::Array(lock(&run).metrics.clone())),
            None => not_found(),
        },
        Route::Events(id) => match find(&id) {
            Some(run) => return open_stream(request, run, streams),
            None => not_found(),
        },
        Route::NotFound => not_found(),
    };
    let _ = request.respond(security_headers(response));
}

/// Starts streaming a run's updates on a thread of its own, or answers 503 when
/// too many streams are open.
fn open_stream(request: Request, run: SharedRun, streams: &Arc<AtomicUsize>) {
    if streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
        streams.fetch_sub(1, Ordering::SeqCst);
        let busy = Response::from_string("too many open event streams\n").with_status_code(503);
        let _ = request.respond(busy);
        return;
    }
    let streams = Arc::clone(streams);
    let spawned = std::thread::Builder::new()
        .name("dashboard-events".into())
        .spawn(move || {
            stream_updates(request.into_writer(), &run);
            streams.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        eprintln!("warning: dashboard: could not start a thread for an event stream");
    }
}

/// Writes `event: update` messages until the browser goes away. The first holds
/// everything (`"full": true`); each later one what is new, at most every
/// [`PUSH_INTERVAL`]. The run is locked only to copy the update, never while
/// writing, so a browser that stops reading blocks only this thread.
fn stream_updates(mut out: Box<dyn Write + Send>, run: &SharedRun) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut cursor = RunState::start();
    let mut first = true;
    let mut last_write = Instant::now();
    loop {
        let update = lock(run).update_since(&mut cursor);
        let written = match update {
            Some(mut update) => {
                update["full"] = first.into();
                first = false;
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

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

fn json(value: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(value.to_string())
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Cache-Control", "no-store"))
}

fn not_found() -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string("not found\n").with_status_code(404)
}

/// The page runs only its own script and style, and nothing may frame it.
fn security_headers<R: std::io::Read>(response: Response<R>) -> Response<R> {
    response
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("X-Frame-Options", "DENY"))
        .with_header(header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ))
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
}
