//! The CSV reader, and standardisation of whatever it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabla::data::{CsvOptions, Dataset, parse_csv};

fuzz_target!(|data: &[u8]| {
    let options = CsvOptions { label_column: "label".into() };
    if let Ok(mut table) = parse_csv(std::path::Path::new("fuzz.csv"), data, &options) {
        let rows: Vec<usize> = (0..table.len()).collect();
        let standardizer = table.fit_standardizer(&rows);
        table.standardize(&standardizer);
        let mut row = vec![0.0; table.feature_len()];
        for i in 0..table.len() {
            table.write_features(i, &mut row);
            assert!(table.label(i) < table.num_classes());
        }
    }
});
