//! The safetensors loader must answer any bytes with tensors or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(loaded) = nabla::checkpoint::parse_tensors::<f32>(std::path::Path::new("fuzz.safetensors"), data) {
        for (_, tensor) in &loaded.tensors {
            assert_eq!(tensor.to_vec().len(), tensor.numel());
        }
    }
});
