//! TensorBoard event files: scalars and histograms in the format TensorBoard reads
//! (`events.out.tfevents.*`), so `tensorboard --logdir runs/` shows nabla's runs
//! beside other frameworks'.
//!
//! The file is a sequence of TFRecords, each holding one `Event` protocol buffer:
//!
//! ```text
//! record = u64 length (little-endian) · u32 masked CRC-32C of the length
//!          · length bytes of data · u32 masked CRC-32C of the data
//! Event  = { 1: double wall_time, 2: int64 step, 3: string file_version, 5: Summary }
//! Summary = { 1: repeated Value }     Value = { 1: string tag, 2: float simple_value,
//!                                               5: HistogramProto histo }
//! HistogramProto = { 1: min, 2: max, 3: num, 4: sum, 5: sum_squares (doubles),
//!                    6: packed double bucket_limit, 7: packed double bucket }
//! ```
//!
//! Only these few messages are needed, so they are encoded here by hand (a
//! protobuf code generator would cost more build time than the encoding's lines).
//!
//! ```no_run
//! use nabla::tensorboard::EventWriter;
//! let mut log = EventWriter::create("runs/demo/tensorboard").unwrap();
//! log.scalar("loss/train", 1, 0.69);
//! log.histogram("weights/0.weight", 1, &[0.1, -0.2, 0.3]);
//! log.flush().unwrap();
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::metrics::Histogram;
use crate::nn::Module;
use crate::protobuf::Message;
use crate::train::{Control, Event, Listener};

/// Buckets per histogram.
const BUCKETS: usize = 30;

/// Appends events to one `events.out.tfevents.*` file.
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
    failed: Option<std::io::Error>,
}

impl EventWriter {
    /// Creates `dir` (if needed) and a new event file in it, starting with the
    /// version record TensorBoard expects first.
    pub fn create(dir: impl AsRef<Path>) -> Result<EventWriter> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let name = format!(
            "events.out.tfevents.{}.{host}.{}.{}",
            now.as_secs(),
            std::process::id(),
            now.subsec_nanos()
        );
        let path = dir.join(name);
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut writer = EventWriter {
            path,
            file: BufWriter::new(file),
            failed: None,
        };
        let mut event = event_header(0);
        event.string(3, "brain.Event:2");
        writer.record(event.as_bytes());
        writer.flush()?;
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs `value` under `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) {
        let mut value_message = Message::new();
        value_message.string(1, tag).f32(2, value as f32);
        self.summary(step, &value_message);
    }

    /// Logs a histogram of `values` under `tag` at `step`: `BUCKETS` equal
    /// buckets over the values' range, binned as the dashboard bins them
    /// ([`Histogram::of`]; non-finite values are left out).
    pub fn histogram(&mut self, tag: &str, step: u64, values: &[f32]) {
        let binned = Histogram::of(values, BUCKETS);
        let finite = values.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
        let (num, sum, sum_squares) =
            finite.fold((0.0, 0.0, 0.0), |(n, s, q), v| (n + 1.0, s + v, q + v * v));
        // bucket i holds the values up to its right edge, bucket_limit[i]
        let width = (binned.max - binned.min) / BUCKETS as f64;
        let limits: Vec<f64> = (1..=BUCKETS)
            .map(|i| binned.min + width * i as f64)
            .collect();
        let counts: Vec<f64> = binned.counts.iter().map(|&c| c as f64).collect();
        let mut histogram = Message::new();
        histogram
            .f64(1, binned.min)
            .f64(2, binned.max)
            .f64(3, num)
            .f64(4, sum)
            .f64(5, sum_squares)
            .packed_f64(6, &limits)
            .packed_f64(7, &counts);
        let mut value_message = Message::new();
        value_message.string(1, tag).message(5, &histogram);
        self.summary(step, &value_message);
    }

    /// Writes what is buffered to the file (TensorBoard reads it as it grows).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(Error::io(&self.path, e));
        }
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }

    /// One event holding one summary value.
    fn summary(&mut self, step: u64, value_message: &Message) {
        let mut summary = Message::new();
        summary.message(1, value_message);
        let mut event = event_header(step);
        event.message(5, &summary);
        self.record(event.as_bytes());
    }

    /// Frames `data` as a TFRecord; the first write error is kept for `flush`.
    fn record(&mut self, data: &[u8]) {
        let length = (data.len() as u64).to_le_bytes();
        let mut framed = Vec::with_capacity(data.len() + 16);
        framed.extend(length);
        framed.extend(masked_crc(&length).to_le_bytes());
        framed.extend(data);
        framed.extend(masked_crc(data).to_le_bytes());
        if let Err(e) = self.file.write_all(&framed) {
            self.failed.get_or_insert(e);
        }
    }
}

/// TFRecord's checksum: CRC-32C, rotated and offset so that a CRC of data that
/// holds CRCs stays meaningful.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// An event's wall time (seconds since 1970) and step.
fn event_header(step: u64) -> Message {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut event = Message::new();
    event.f64(1, now.as_secs_f64()).int(2, step as i64);
    event
}

/// As a listener, an event writer logs each step's loss, accuracy and learning
/// rate; at an epoch's last step every gradient as a histogram; at its end the
/// epoch's metrics (losses, accuracies, gradient norms, dead ReLU fractions) and
/// every parameter as a histogram.
impl Listener for EventWriter {
    fn on_event(&mut self, event: &Event<'_>) -> Result<Control> {
        match event {
            Event::BatchEnd {
                batch,
                batches,
                step,
                model,
                ..
            } => {
                let at = step.step as u64;
                self.scalar("loss/train_step", at, step.loss);
                self.scalar("accuracy/train_step", at, step.accuracy);
                self.scalar("lr", at, step.lr);
                if batch == batches {
                    for (name, parameter) in model.named_parameters() {
                        if let Some(grad) = parameter.grad() {
                            self.histogram(&format!("gradients/{name}"), at, &grad.data());
                        }
                    }
                }
            }
            Event::EpochEnd {
                line,
                global_step,
                model,
                ..
            } => self.log_epoch(line, *model, *global_step as u64)?,
            Event::EpochStart { .. } | Event::Stopped { .. } => {}
        }
        Ok(Control::Continue)
    }
}

impl EventWriter {
    /// An epoch's metrics line as scalars and every parameter as a histogram, at `step`.
    fn log_epoch(
        &mut self,
        line: &serde_json::Value,
        model: &dyn Module<f32>,
        step: u64,
    ) -> Result<()> {
        for (key, tag) in [
            ("train_loss", "loss/train"),
            ("test_loss", "loss/test"),
            ("train_accuracy", "accuracy/train"),
            ("test_accuracy", "accuracy/test"),
        ] {
            if let Some(value) = line[key].as_f64() {
                self.scalar(tag, step, value);
            }
        }
        for (group, tag) in [
            ("grad_norm", "grad_norm"),
            ("dead_relu_fraction", "dead_relu"),
        ] {
            for (name, value) in line[group].as_object().into_iter().flatten() {
                if let Some(value) = value.as_f64() {
                    self.scalar(&format!("{tag}/{name}"), step, value);
                }
            }
        }
        for (name, parameter) in model.named_parameters() {
            self.histogram(&format!("weights/{name}"), step, &parameter.data());
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_masked_crc_of_known_data() {
        // CRC-32C("123456789") = 0xE3069283, the check value of the Castagnoli
        // polynomial; masked: rotated right by 15 (0x2507C60D) plus 0xA282EAD8
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn records_frame_their_events() {
        let dir = std::env::temp_dir().join(format!("nabla-tfevents-{}", std::process::id()));
        let mut log = EventWriter::create(&dir).unwrap();
        log.scalar("loss", 7, 0.5);
        log.flush().unwrap();
        let bytes = std::fs::read(log.path()).unwrap();
        // walk the records: each length, its checksum, the data, the data's checksum
        let mut records = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let length = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            assert_eq!(
                bytes[at + 8..at + 12],
                masked_crc(&bytes[at..at + 8]).to_le_bytes()
            );
            let data = &bytes[at + 12..at + 12 + length];
            assert_eq!(
                bytes[at + 12 + length..at + 16 + length],
                masked_crc(data).to_le_bytes()
            );
            records.push(data.to_vec());
            at += 16 + length;
        }
        assert_eq!(records.len(), 2);
        assert!(records[0].windows(13).any(|w| w == b"brain.Event:2"));
        // the scalar: step 7 as a varint after key 0x10, 0.5f32 after key 0x15
        assert!(records[1].windows(2).any(|w| w == [0x10, 7]));
        let half = 0.5f32.to_le_bytes();
        assert!(
            records[1]
                .windows(5)
                .any(|w| w[0] == 0x15 && w[1..] == half)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
