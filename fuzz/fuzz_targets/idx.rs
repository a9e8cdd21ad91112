//! The IDX reader must answer any bytes (raw or gzipped) with a value or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nabla::data::parse_idx_bytes(std::path::Path::new("fuzz.idx"), data.to_vec());
});
