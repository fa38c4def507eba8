//! SVG plots of a run: latency CDFs and deliveries per second over time.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

const COLORS: [RGBColor; 6] = [
    RGBColor(36, 84, 214),
    RGBColor(214, 69, 53),
    RGBColor(21, 115, 71),
    RGBColor(138, 90, 0),
    RGBColor(120, 60, 170),
    RGBColor(90, 90, 90),
];

pub fn write(report: &Report, dir: &Path) -> Result<(), String> {
    latency_cdf(report, &dir.join("latency-cdf.svg")).map_err(|e| e.to_string())?;
    throughput(report, &dir.join("throughput.svg")).map_err(|e| e.to_string())
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Fraction of deliveries at or below each latency, per scenario, on a log time axis.
fn latency_cdf(report: &Report, path: &Path) -> PlotResult {
    let series: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| !s.cdf.is_empty())
        .collect();
    let max_ms = series
        .iter()
        .flat_map(|s| s.cdf.iter().map(|(ms, _)| *ms))
        .fold(1.0_f64, f64::max);
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "End-to-end latency (create request due → receiver has the body)",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((0.1_f64..max_ms * 1.2).log_scale(), 0.0_f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("fraction of deliveries")
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.cdf.iter().map(|(ms, f)| (ms.max(0.1), *f)),
                color.stroke_width(2),
            ))?
            .label(format!(
                "{} {} (p99 {:.1} ms)",
                s.id, s.name, s.latency.p99_ms
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Deliveries per second over each scenario's run, against the broker ceiling.
fn throughput(report: &Report, path: &Path) -> PlotResult {
    let series: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| !s.timeline.is_empty())
        .collect();
    let max_t = series
        .iter()
        .flat_map(|s| s.timeline.iter().map(|(t, _)| *t))
        .fold(1.0_f64, f64::max);
    let max_rate = series
        .iter()
        .flat_map(|s| s.timeline.iter().map(|(_, r)| *r))
        .fold(report.ceiling.rabbitmq_per_second, f64::max);
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Deliveries per second over time (500 ms buckets)",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0_f64..max_t + 0.5, 0.0_f64..max_rate * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the scenario's first delivery")
        .y_desc("deliveries / s")
        .draw()?;
    let ceiling = report.ceiling.rabbitmq_per_second;
    chart
        .draw_series(LineSeries::new(
            [(0.0, ceiling), (max_t + 0.5, ceiling)],
            BLACK.stroke_width(1),
        ))?
        .label(format!("raw RabbitMQ ceiling ({ceiling:.0}/s)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.timeline.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(format!("{} {}", s.id, s.name))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
