//! How much memory the process uses and the machine has: for `rss_mb` in
//! metrics.jsonl and for refusing datasets that would not fit.

use std::path::Path;

use crate::error::{Error, Result};

/// This process's resident set size in MiB (Linux; `None` elsewhere).
pub fn resident_mb() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / (1024.0 * 1024.0))
}

/// This process's peak resident set size in MiB (`VmHWM`; Linux only).
pub fn peak_resident_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Memory the machine can still give (`MemAvailable`), in bytes (Linux only).
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses to load `path` when holding `bytes` in memory would take more than half of
/// what the machine has available — a clear error instead of filling memory.
pub fn ensure_fits(path: &Path, bytes: u64) -> Result<()> {
    match available_bytes() {
        Some(available) if bytes > available / 2 => Err(Error::format(
            path,
            format!(
                "loading it needs about {} MiB, more than half of the {} MiB of memory available; use a smaller file or a machine with more memory",
                bytes / (1 << 20),
                available / (1 << 20)
            ),
        )),
        _ => Ok(()),
    }
}
