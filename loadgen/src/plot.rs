//! SVG charts (plotters): latency versus throughput for `--scan`/`--search`, and ratio bars
//! for `compare`.

use std::path::Path;

use plotters::prelude::*;

use crate::scan::ScanPoint;
use crate::ReportError;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn perr(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Plot {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// p50 (solid) and p99 (dashed look: crosses) latency in ms against achieved ops/s, one
/// colour per target.
pub fn latency_vs_throughput(
    path: &Path,
    title: &str,
    series: &[(String, Vec<ScanPoint>)],
) -> Result<(), ReportError> {
    let max_x = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.achieved))
        .fold(1.0f64, f64::max)
        * 1.05;
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.p99_us as f64 / 1000.0))
        .fold(0.01f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y)
        .map_err(|e| perr(path, e))?;
    chart
        .configure_mesh()
        .x_desc("throughput (ops/s)")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
        .draw()
        .map_err(|e| perr(path, e))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts = pts.clone();
        pts.sort_by(|a, b| a.achieved.total_cmp(&b.achieved));
        let p50: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (p.achieved, p.p50_us as f64 / 1000.0))
            .collect();
        let p99: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (p.achieved, p.p99_us as f64 / 1000.0))
            .collect();
        chart
            .draw_series(LineSeries::new(p50.clone(), color.stroke_width(2)))
            .map_err(|e| perr(path, e))?
            .label(format!("{name} p50"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(p50.iter().map(|&c| Circle::new(c, 4, color.filled())))
            .map_err(|e| perr(path, e))?;
        let light = color.mix(0.6);
        chart
            .draw_series(LineSeries::new(p99.clone(), light.stroke_width(1)))
            .map_err(|e| perr(path, e))?
            .label(format!("{name} p99"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], light.stroke_width(1))
            });
        chart
            .draw_series(p99.iter().map(|&c| Cross::new(c, 5, color.stroke_width(2))))
            .map_err(|e| perr(path, e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| perr(path, e))?;
    root.present().map_err(|e| perr(path, e))?;
    Ok(())
}

/// Grouped bars: for each metric, one bar per pair (value = ratio B/A), with a line at 1.0.
pub fn ratio_bars(
    path: &Path,
    title: &str,
    metrics: &[&str],
    pairs: &[(String, Vec<f64>)],
) -> Result<(), ReportError> {
    let max_y = pairs
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(1.2f64, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(path, e))?;
    let n = metrics.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..n as f64, 0f64..max_y)
        .map_err(|e| perr(path, e))?;
    let names: Vec<String> = metrics.iter().map(|m| m.to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.26 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc("ratio (B / A)")
        .draw()
        .map_err(|e| perr(path, e))?;
    let groups = pairs.len().max(1) as f64;
    for (pi, (name, vals)) in pairs.iter().enumerate() {
        let color = PALETTE[pi % PALETTE.len()];
        let w = 0.8 / groups;
        chart
            .draw_series(
                vals.iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(mi, &v)| {
                        let x0 = mi as f64 + 0.1 + pi as f64 * w;
                        Rectangle::new([(x0, 0.0), (x0 + w * 0.9, v)], color.filled())
                    }),
            )
            .map_err(|e| perr(path, e))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 1.0), (n as f64, 1.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| perr(path, e))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| perr(path, e))?;
    root.present().map_err(|e| perr(path, e))?;
    Ok(())
}
