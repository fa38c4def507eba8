//! SVG plots of a run: latency CDFs and deliveries per second over time.

use std::path::Path;

use plotters::prelude::*;

use crate::flood::FloodSeries;
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
    throughput(report, &dir.join("throughput.svg")).map_err(|e| e.to_string())?;
    if let Some(series) = report.scenarios.iter().find_map(|s| s.flood.as_ref()) {
        flood_latency(series, &dir.join(FLOOD_PLOT)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Scenario 6's plot, written when it ran.
pub const FLOOD_PLOT: &str = "flood-latency.svg";

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

/// Scenario 6 over time: above, the quiet apps' latency (p50 and p99 per slice, by when each
/// message was due) on a log axis; below, the flooding app's deliveries per second. Each
/// slice's point is at its middle. The flood, from its first send to its last delivery, is
/// shaded in both.
fn flood_latency(series: &FloodSeries, path: &Path) -> PlotResult {
    let slice = series.quiet.get(1).map_or(0.5, |b| b.t - series.quiet[0].t);
    let max_t = series
        .quiet
        .iter()
        .map(|b| b.t + slice)
        .chain(series.flood_rate.iter().map(|(t, _)| *t))
        .fold(series.flood_end, f64::max)
        + 0.5;
    let root = SVGBackend::new(path, (900, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(430);
    let shade = COLORS[3].mix(0.12).filled();
    let edge = COLORS[3].stroke_width(1);

    let lowest = series
        .quiet
        .iter()
        .map(|b| b.p50_ms)
        .fold(f64::MAX, f64::min);
    let highest = series.quiet.iter().map(|b| b.p99_ms).fold(1.0, f64::max);
    // From a power of ten, so the log axis labels the low decade too.
    let floor = (lowest.min(highest) * 0.8).max(0.05);
    let (y_min, y_max) = (10_f64.powf(floor.log10().floor()), highest * 1.5);
    let centre = slice / 2.0;
    let mut chart = ChartBuilder::on(&upper)
        .caption(
            "Scenario 6: quiet apps' end-to-end latency while one app floods",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            0.0_f64..max_t,
            (y_min..y_max)
                .log_scale()
                .with_key_points(one_two_five(y_min, y_max)),
        )?;
    chart
        .configure_mesh()
        .x_desc("seconds since the scenario began (quiet messages by when each was due)")
        .y_desc("latency (ms, log scale)")
        .draw()?;
    chart
        .draw_series([Rectangle::new(
            [(series.flood_start, y_min), (series.flood_end, y_max)],
            shade,
        )])?
        .label(format!(
            "flood: {:.1} s to {:.1} s (first send to last delivery)",
            series.flood_start, series.flood_end
        ))
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], shade));
    for x in [series.flood_start, series.flood_end] {
        chart.draw_series(LineSeries::new([(x, y_min), (x, y_max)], edge))?;
    }
    let percentiles = [("p50", COLORS[0]), ("p99", COLORS[1])];
    for (label, color) in percentiles {
        let value = |b: &crate::stats::LatencyBin| if label == "p50" { b.p50_ms } else { b.p99_ms };
        chart
            .draw_series(LineSeries::new(
                series
                    .quiet
                    .iter()
                    .map(|b| (b.t + centre, value(b).max(y_min))),
                color.stroke_width(2),
            ))?
            .label(format!("quiet apps' {label} per slice"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;

    let max_rate = series
        .flood_rate
        .iter()
        .map(|(_, r)| *r)
        .chain(series.single)
        .fold(1.0_f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&lower)
        .caption(
            "The flooding app's deliveries per second",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0_f64..max_t, 0.0_f64..max_rate)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the scenario began")
        .y_desc("deliveries / s")
        .draw()?;
    chart.draw_series([Rectangle::new(
        [(series.flood_start, 0.0), (series.flood_end, max_rate)],
        shade,
    )])?;
    for x in [series.flood_start, series.flood_end] {
        chart.draw_series(LineSeries::new([(x, 0.0), (x, max_rate)], edge))?;
    }
    if let Some(single) = series.single {
        chart
            .draw_series(LineSeries::new(
                [(0.0, single), (max_t, single)],
                BLACK.stroke_width(1),
            ))?
            .label(format!("scenario 1 in this run ({single:.0}/s)"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    chart
        .draw_series(LineSeries::new(
            series
                .flood_rate
                .iter()
                .map(|(t, rate)| (t + centre, *rate)),
            COLORS[2].stroke_width(2),
        ))?
        .label("flooding app, per slice")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], COLORS[2].stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// 1, 2 and 5 times each power of ten from `low` to `high`: labels a log axis can hold
/// (plotters' own labels there are every power of ten, or every unit, crowding).
fn one_two_five(low: f64, high: f64) -> Vec<f64> {
    let mut decade = 10_f64.powf(low.log10().floor());
    let mut points = Vec::new();
    while decade <= high {
        points.extend(
            [1.0, 2.0, 5.0]
                .map(|m| m * decade)
                .into_iter()
                .filter(|p| (low..=high).contains(p)),
        );
        decade *= 10.0;
    }
    points
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_log_axis_is_labelled_at_one_two_and_five_times_each_power_of_ten() {
        assert_eq!(
            super::one_two_five(1.0, 300.0),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]
        );
        assert_eq!(super::one_two_five(3.0, 4.0), Vec::<f64>::new());
    }
}
