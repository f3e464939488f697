//! Plots as SVG files (text needs no font files, and browsers render them as images).

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use plotters::prelude::*;
use std::path::Path;

fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |e| Error::input(path, format!("plot failed: {e}"))
}

/// A bar chart of `(label, value)` pairs.
pub fn bar_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    bars: &[(String, f64)],
) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 320)).into_drawing_area();
        let err = plot_err(path);
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let top = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-9) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d((0..bars.len()).into_segmented(), 0.0..top)
            .map_err(|e| err(e.to_string()))?;
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(bars.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(RGBColor(179, 38, 30).filled())
                    .margin(4)
                    .data(bars.iter().enumerate().map(|(i, b)| (i, b.1))),
            )
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_atomic(path, svg.as_bytes())
}

/// Line plot of several named series over a shared x axis (e.g. metrics per epoch).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    // The legend sits above the curves, never over them: the canvas grows by a line a series
    // and the y range leaves the legend's share of the plot free at the top.
    let legend = 18.0 * series.len() as f64 + 12.0;
    let height = 320 + 18 * series.len() as u32;
    let plot = f64::from(height) - 100.0;
    let headroom = legend / (plot - legend).max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, height)).into_drawing_area();
        let err = plot_err(path);
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let points = series.iter().flat_map(|s| s.1.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in points {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        let top = y1 + pad + (y1 - y0 + pad) * headroom;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1.max(x0 + 1e-9), (y0 - pad)..top)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_atomic(path, svg.as_bytes())
}

/// Two heat maps side by side of the |correlation| between a head's deciding channels: rotated
/// (left) and raw (right), in the same order, white 0 to dark red 1. Returned as SVG text, for
/// the report to write and the viewer to inline.
pub fn correlation_svg(c: &crate::metrics::correlation::ChannelCorrelation) -> Result<String> {
    let m = c.channels.len();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 400)).into_drawing_area();
        let err = |e: String| Error::Config(format!("correlation plot failed: {e}"));
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (left, right) = root.split_horizontally(380);
        for (area, title, matrix) in [
            (left, "rotated (InfoDisent)", &c.rotated),
            (right, "raw (backbone)", &c.raw),
        ] {
            let caption = format!("{title}: mean |r| {:.2}", c.mean_off_diagonal(matrix));
            let mut chart = ChartBuilder::on(&area)
                .caption(caption, ("sans-serif", 16))
                .margin(10)
                .build_cartesian_2d(0..m.max(1), 0..m.max(1))
                .map_err(|e| err(e.to_string()))?;
            // No mesh: plotters' axis key points never finish for zero labels, and the order of
            // the channels (grouped by class) is said in the caption of the page around it.
            chart
                .draw_series((0..m * m).map(|p| {
                    let (i, j) = (p / m, p % m);
                    let r = f64::from(matrix[p]).clamp(0.0, 1.0);
                    let shade = |full: f64| (255.0 - (255.0 - full) * r) as u8;
                    let color = RGBColor(shade(140.0), shade(20.0), shade(20.0));
                    Rectangle::new([(j, m - 1 - i), (j + 1, m - i)], color.filled())
                }))
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::correlation::ChannelCorrelation;

    #[test]
    fn the_correlation_picture_draws_one_cell_per_channel_pair_in_each_map() {
        let c = ChannelCorrelation {
            channels: vec![4, 9, 2],
            classes: vec![0, 0, 1],
            rotated: vec![1.0, 0.1, 0.0, 0.1, 1.0, 0.2, 0.0, 0.2, 1.0],
            raw: vec![1.0, 0.9, 0.5, 0.9, 1.0, 0.7, 0.5, 0.7, 1.0],
            images: 40,
        };
        let svg = correlation_svg(&c).unwrap();
        assert_eq!(svg.matches("<rect").count() - 1, 2 * 9, "{svg}");
        assert!(
            svg.contains("mean |r| 0.10") && svg.contains("mean |r| 0.70"),
            "{svg}"
        );
    }
}
