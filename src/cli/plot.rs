//! PNG charts: the loss and accuracy curves of a run, and a confusion matrix.

use std::path::Path;

use plotters::prelude::*;

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
pub fn curves(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    register_font();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1100, 450)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(550);
        let last = history.last().map_or(1, |m| m.epoch).max(1) as f64;
        let first = history.first().map_or(1, |m| m.epoch) as f64;
        let x_range = (first - 0.2)..(last + 0.2);

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
            .x_desc("epoch")
            .y_desc("cross-entropy")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 14))
            .draw()?;
        series(&mut chart, history, |m| Some(m.train_loss), "train", BLUE)?;
        series(&mut chart, history, |m| m.test_loss, "test", RED)?;
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
            .x_desc("epoch")
            .y_desc("accuracy (%)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 14))
            .draw()?;
        series(
            &mut chart,
            history,
            |m| Some(100.0 * m.train_accuracy),
            "train",
            BLUE,
        )?;
        series(
            &mut chart,
            history,
            |m| m.test_accuracy.map(|a| 100.0 * a),
            "test",
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

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn series(
    chart: &mut Chart<'_, '_>,
    history: &[EpochMetrics],
    value: impl Fn(&EpochMetrics) -> Option<f64>,
    label: &str,
    color: RGBColor,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let points: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|m| value(m).map(|v| (m.epoch as f64, v)))
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

/// A confusion matrix as a heat map with counts in each cell.
pub fn confusion(path: &Path, matrix: &ConfusionMatrix, class_names: &[String]) -> Result<()> {
    register_font();
    let classes = matrix.classes;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (700, 700)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Confusion matrix", ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0..classes, 0..classes)?;
        let name = |i: &usize| {
            class_names
                .get(*i)
                .cloned()
                .unwrap_or_else(|| i.to_string())
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("actual")
            .x_labels(classes)
            .y_labels(classes)
            .x_label_formatter(&name)
            .y_label_formatter(&name)
            .label_style(("sans-serif", 14))
            .draw()?;
        let max = matrix.counts.iter().copied().max().unwrap_or(1).max(1) as f64;
        for actual in 0..classes {
            for predicted in 0..classes {
                let count = matrix.counts[actual * classes + predicted];
                let shade = 1.0 - (count as f64 / max).sqrt() * 0.85;
                let color = RGBColor((255.0 * shade) as u8, (255.0 * shade) as u8, 255);
                // row 0 at the top, like a printed matrix
                let y = classes - 1 - actual;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(predicted, y), (predicted + 1, y + 1)],
                    color.filled(),
                )))?;
            }
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| plot_error(path, e))
}
