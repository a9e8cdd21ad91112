//! PNG charts: the loss and accuracy curves of a run, and a confusion matrix.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::metrics::ConfusionMatrix;
use crate::train::EpochMetrics;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // the bytes are a valid TrueType font compiled in, so this cannot fail
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::format(path, format!("cannot draw the chart: {e}"))
}

/// Two panels, loss and accuracy per epoch, train and test, with axes and legends.
pub fn curves(
    path: &Path,
    history: &[EpochMetrics],
    steps_per_period: Option<usize>,
) -> Result<()> {
    let axis = XAxis::of(steps_per_period);
    register_font();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1100, 450)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(550);
        let (x_range, x_labels) = epoch_axis(history, axis.per_period);

        let losses: Vec<f64> = history
            .iter()
            .flat_map(|m| [Some(m.train_loss), m.test_loss])
            .flatten()
            .collect();
        let max_loss = losses.iter().cloned().fold(0.0, f64::max).max(1e-6) * 1.1;
        let mut chart = ChartBuilder::on(&left)
            .caption("Loss", ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), 0.0..max_loss)?;
        chart
            .configure_mesh()
            .x_desc(axis.name)
            .y_desc(axis.loss_name)
            .x_labels(x_labels)
            .x_label_formatter(&epoch_label)
            .light_line_style(WHITE)
            .label_style(("sans-serif", 14))
            .draw()?;
        let x = axis.per_period;
        series(
            &mut chart,
            history,
            x,
            |m| Some(m.train_loss),
            "train",
            BLUE,
        )?;
        series(&mut chart, history, x, |m| m.test_loss, axis.test_name, RED)?;
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .label_font(("sans-serif", 14))
            .draw()?;

        let accuracies: Vec<f64> = history
            .iter()
            .flat_map(|m| [Some(m.train_accuracy), m.test_accuracy])
            .flatten()
            .collect();
        let low = accuracies.iter().cloned().fold(1.0, f64::min);
        let floor = ((low * 100.0 - 2.0).floor().max(0.0)) / 100.0;
        let mut chart = ChartBuilder::on(&right)
            .caption("Accuracy", ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range, floor * 100.0..100.0)?;
        chart
            .configure_mesh()
            .x_desc(axis.name)
            .y_desc("accuracy (%)")
            .x_labels(x_labels)
            .x_label_formatter(&epoch_label)
            .y_label_formatter(&|v| format!("{v:.1}"))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 14))
            .draw()?;
        series(
            &mut chart,
            history,
            x,
            |m| Some(100.0 * m.train_accuracy),
            "train",
            BLUE,
        )?;
        series(
            &mut chart,
            history,
            x,
            |m| m.test_accuracy.map(|a| 100.0 * a),
            axis.test_name,
            RED,
        )?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .label_font(("sans-serif", 14))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| plot_error(path, e))
}

/// What the curves are plotted against: epochs, or — for a run trained by
/// `max_steps` (a language model) — steps, with losses in nats per token.
struct XAxis {
    name: &'static str,
    per_period: usize,
    loss_name: &'static str,
    test_name: &'static str,
}

impl XAxis {
    fn of(steps_per_period: Option<usize>) -> Self {
        match steps_per_period {
            Some(steps) => XAxis {
                name: "step",
                per_period: steps,
                loss_name: "cross-entropy (nats per token)",
                test_name: "validation",
            },
            None => XAxis {
                name: "epoch",
                per_period: 1,
                loss_name: "cross-entropy",
                test_name: "test",
            },
        }
    }
}

/// The x axis: a little room around the first and last period, and at most 10
/// ticks, so that plotters' tick step is a whole number of periods (epochs, or
/// `per_period` steps).
fn epoch_axis(history: &[EpochMetrics], per_period: usize) -> (std::ops::Range<f64>, usize) {
    let first = history.first().map_or(1, |m| m.epoch) as f64;
    let last = (history.last().map_or(1, |m| m.epoch) as f64).max(first);
    let ticks = ((last - first) as usize + 1).min(10);
    let scale = per_period as f64;
    (((first - 0.2) * scale)..((last + 0.2) * scale), ticks)
}

/// An epoch tick: whole epochs only (a fractional tick gets no label rather than a
/// rounded, repeated one).
fn epoch_label(value: &f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        String::new()
    }
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn series(
    chart: &mut Chart<'_, '_>,
    history: &[EpochMetrics],
    per_period: usize,
    value: impl Fn(&EpochMetrics) -> Option<f64>,
    label: &str,
    color: RGBColor,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let points: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|m| value(m).map(|v| ((m.epoch * per_period) as f64, v)))
        .collect();
    if points.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    Ok(())
}

/// A confusion matrix the way scikit-learn's `ConfusionMatrixDisplay` draws it:
/// actual classes on the rows top to bottom, predicted classes on the columns, class
/// names centred under and beside the cells, the count in every cell, and a colour
/// bar. Returns, for each cell (row-major by actual, then predicted class), a pixel
/// inside it clear of its count, where its colour can be read.
pub fn confusion(
    path: &Path,
    matrix: &ConfusionMatrix,
    class_names: &[String],
) -> Result<Vec<(i32, i32)>> {
    register_font();
    let classes = matrix.classes;
    let max = matrix.counts.iter().copied().max().unwrap_or(0);
    let draw = || -> std::result::Result<Vec<(i32, i32)>, Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (820, 700)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(700);
        let name = |i: usize| class_names.get(i).cloned().unwrap_or_else(|| i.to_string());
        let mut chart = ChartBuilder::on(&left)
            .caption("Confusion matrix", ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            // a discrete range includes its end: 0..last gives one segment per class
            .build_cartesian_2d(
                (0..classes.max(1) - 1).into_segmented(),
                (0..classes.max(1) - 1).into_segmented(),
            )?;
        // row r from the top is actual class r: it sits at y = classes − 1 − r
        let row_y = |actual: usize| classes - 1 - actual;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("actual")
            .x_labels(classes)
            .y_labels(classes)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(j) => name(*j),
                _ => String::new(),
            })
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(y) if *y < classes => name(row_y(*y)),
                _ => String::new(),
            })
            .label_style(("sans-serif", 14))
            .draw()?;
        let mut samples = Vec::with_capacity(classes * classes);
        for actual in 0..classes {
            for predicted in 0..classes {
                let count = matrix.counts[actual * classes + predicted];
                let y = row_y(actual);
                let corner = (SegmentValue::Exact(predicted), SegmentValue::Exact(y + 1));
                let far = (SegmentValue::Exact(predicted + 1), SegmentValue::Exact(y));
                chart.draw_series(std::iter::once(Rectangle::new(
                    [corner.clone(), far],
                    heat(count, max).filled(),
                )))?;
                let centre = (SegmentValue::CenterOf(predicted), SegmentValue::CenterOf(y));
                let ink = if ink_is_white(count, max) {
                    WHITE
                } else {
                    BLACK
                };
                let style = ("sans-serif", 14)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart.draw_series(std::iter::once(Text::new(count.to_string(), centre, style)))?;
                let (x0, y0) = chart.backend_coord(&corner);
                samples.push((x0 + 3, y0 + 3));
            }
        }
        colour_bar(&right, max)?;
        root.present()?;
        Ok(samples)
    };
    draw().map_err(|e| plot_error(path, e))
}

/// The colour of a cell holding `count` of at most `max`: white for 0, deepening
/// to dark blue for `max` (square-root scale, so small counts still show).
pub fn heat(count: u64, max: u64) -> RGBColor {
    let level = (count as f64 / max.max(1) as f64).sqrt();
    let channel = |white: f64, dark: f64| (white + (dark - white) * level).round() as u8;
    RGBColor(
        channel(255.0, 8.0),
        channel(255.0, 48.0),
        channel(255.0, 107.0),
    )
}

/// Whether a count is printed in white (on a dark cell) rather than black.
fn ink_is_white(count: u64, max: u64) -> bool {
    (count as f64 / max.max(1) as f64).sqrt() > 0.6
}

/// A vertical bar of the cell colours from 0 (bottom) to `max` (top), labelled.
fn colour_bar(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    max: u64,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let top = max.max(1) as f64;
    let mut bar = ChartBuilder::on(area)
        .margin_top(60)
        .margin_bottom(70)
        .margin_right(10)
        .y_label_area_size(60)
        .right_y_label_area_size(0)
        .build_cartesian_2d(0.0..1.0, 0.0..top)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&|v| format!("{}", v.round() as u64))
        .label_style(("sans-serif", 12))
        .draw()?;
    const STEPS: usize = 100;
    bar.draw_series((0..STEPS).map(|step| {
        let (low, high) = (
            top * step as f64 / STEPS as f64,
            top * (step + 1) as f64 / STEPS as f64,
        );
        let count = ((low + high) / 2.0).round() as u64;
        Rectangle::new([(0.0, low), (1.0, high)], heat(count, max).filled())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(count: usize) -> Vec<EpochMetrics> {
        (1..=count)
            .map(|epoch| EpochMetrics {
                epoch,
                train_loss: 1.0,
                train_accuracy: 0.5,
                test_loss: None,
                test_accuracy: None,
                seconds: 1.0,
                lr: 0.1,
                communication: None,
            })
            .collect()
    }

    /// The labels plotters prints on the epoch axis, as `curves` sets it up.
    fn epoch_ticks(history: &[EpochMetrics]) -> Vec<String> {
        ticks_of(history, 1)
    }

    fn ticks_of(history: &[EpochMetrics], per_period: usize) -> Vec<String> {
        use plotters::coord::ranged1d::Ranged;
        use plotters::coord::types::RangedCoordf64;
        let (range, ticks) = epoch_axis(history, per_period);
        let axis: RangedCoordf64 = range.into();
        axis.key_points(ticks)
            .iter()
            .map(epoch_label)
            .filter(|label| !label.is_empty())
            .collect()
    }

    #[test]
    fn epoch_ticks_are_whole_epochs() {
        assert_eq!(epoch_ticks(&epochs(4)), ["1", "2", "3", "4"]);
        assert_eq!(epoch_ticks(&epochs(1)), ["1"]);
        let many = epoch_ticks(&epochs(50));
        assert!(many.len() <= 11, "{many:?}");
        let numbers: Vec<i64> = many.iter().map(|t| t.parse().unwrap()).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "no repeats: {many:?}"
        );
        assert_eq!(epoch_label(&2.5), "");
    }

    /// A run trained by steps, evaluated every 200: ticks at the evaluations.
    #[test]
    fn step_ticks_fall_on_the_evaluations() {
        let ticks = ticks_of(&epochs(7), 200);
        assert_eq!(ticks, ["200", "400", "600", "800", "1000", "1200", "1400"]);
    }

    /// Each cell shows the colour of its own count: row i is actual class i, column j
    /// predicted class j (a diagonal matrix is dark on the top-left to bottom-right
    /// diagonal, as people read it).
    #[test]
    fn confusion_cells_have_their_counts_colour() {
        let dir = std::env::temp_dir().join(format!("nabla-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("confusion.png");
        let classes = 3;
        let counts = vec![50, 0, 3, 1, 40, 0, 9, 2, 30];
        let matrix = ConfusionMatrix {
            classes,
            counts: counts.clone(),
        };
        let names: Vec<String> = ["cat", "dog", "eel"].map(String::from).to_vec();
        let samples = confusion(&path, &matrix, &names).unwrap();
        let image = image::open(&path).unwrap().to_rgb8();
        for (cell, &(x, y)) in samples.iter().enumerate() {
            let RGBColor(r, g, b) = heat(counts[cell], 50);
            let pixel = image.get_pixel(x as u32, y as u32).0;
            assert_eq!(
                pixel,
                [r, g, b],
                "cell (actual {}, predicted {})",
                cell / 3,
                cell % 3
            );
        }
        // the top-left cell (actual cat, predicted cat) sits left of and above the rest
        assert!(samples[0].0 < samples[1].0 && samples[0].1 < samples[3].1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
