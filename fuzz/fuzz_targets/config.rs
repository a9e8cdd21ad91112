//! The config parser, and building the model of any config it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = nabla::experiment::Config::parse(text, std::path::Path::new("fuzz.toml")) {
        let _ = config.to_toml();
        for input in [&[1usize, 28, 28][..], &[2][..]] {
            let _ = nabla::experiment::build_model::<f32>(&config.model.layers, input, 10, &mut nabla::rng(0));
        }
    }
});
