//! Plots with `plotters`: the stage × evaluation heatmap, training curves, forgetting bars,
//! retention versus gain.
//!
//! The output format follows the file extension: `.svg` (vector, text as SVG `<text>`, no
//! font needed to write it) or `.png` (bitmap; text is rasterised through `font-kit`, which
//! uses the system's fontconfig/FreeType and needs one sans-serif font installed).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::continual::StageMatrix;
use crate::error::{EvalError, Result};

/// Pixel size of every plot.
pub const PLOT_SIZE: (u32, u32) = (900, 600);

/// One named line of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// One method's point of a retention-versus-gain plot: each coordinate a mean with its
/// interval (e.g. the 95 % t-interval over seeds), drawn as error bars.
#[derive(Debug, Clone, PartialEq)]
pub struct PointCi {
    /// Label written beside the point.
    pub name: String,
    /// `(mean, lo, hi)` on the x axis.
    pub x: (f64, f64, f64),
    /// `(mean, lo, hi)` on the y axis.
    pub y: (f64, f64, f64),
}

/// One group of bars (e.g. a method), one bar per category (e.g. a task).
#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    /// Legend label.
    pub name: String,
    /// One value per category (`None` draws no bar).
    pub values: Vec<Option<f64>>,
}

fn plot_err(path: &Path, e: impl std::fmt::Debug) -> EvalError {
    EvalError::Plot {
        path: path.display().to_string(),
        reason: format!("{e:?}"),
    }
}

macro_rules! with_backend {
    ($path:expr, |$root:ident| $body:expr) => {{
        let path: &Path = $path;
        match path.extension().and_then(|e| e.to_str()) {
            Some("svg") => {
                let $root = SVGBackend::new(path, PLOT_SIZE).into_drawing_area();
                $body;
                $root.present().map_err(|e| plot_err(path, e))
            }
            Some("png") => {
                let $root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
                $body;
                $root.present().map_err(|e| plot_err(path, e))
            }
            _ => Err(EvalError::Plot {
                path: path.display().to_string(),
                reason: "unsupported extension (use .svg or .png)".into(),
            }),
        }
    }};
}

/// Colour of a value in `[lo, hi]`: white → blue.
fn heat(v: f64, lo: f64, hi: f64) -> RGBColor {
    let t = if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 69.0), lerp(255.0, 148.0))
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    m: &StageMatrix,
    title: &str,
    path: &Path,
) -> Result<()> {
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let t = m.n_stages();
    let values: Vec<f64> = m.scores.iter().flatten().flatten().copied().collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let n = t as i32;
    // A segmented `0..n - 1` has the `n` segments `0, 1, …, n − 1`.
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(120)
        .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
        .map_err(|e| plot_err(path, e))?;
    let evals = m.evaluations.clone();
    let stages = m.stages.clone();
    // Row 0 (the first stage) at the top.
    let stage_at = move |y: i32| -> String {
        usize::try_from(n - 1 - y)
            .ok()
            .and_then(|i| stages.get(i).cloned())
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(t)
        .y_labels(t)
        .x_desc("evaluation")
        .y_desc("after stage")
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(j) => evals.get(*j as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => stage_at(*i),
            _ => String::new(),
        })
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, row) in m.scores.iter().enumerate() {
        let y = n - 1 - i as i32;
        for (j, v) in row.iter().enumerate() {
            let x = j as i32;
            let color = v.map_or(RGBColor(220, 220, 220), |v| heat(v, lo, hi));
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(x), SegmentValue::Exact(y + 1)),
                        (SegmentValue::Exact(x + 1), SegmentValue::Exact(y)),
                    ],
                    color.filled(),
                )))
                .map_err(|e| plot_err(path, e))?;
            let text = v.map_or("n/a".to_string(), |v| format!("{:.1}", v * 100.0));
            let dark = v.is_some_and(|v| hi > lo && (v - lo) / (hi - lo) > 0.55);
            let style = TextStyle::from(("sans-serif", 24).into_font())
                .color(if dark { &WHITE } else { &BLACK })
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                    style,
                )))
                .map_err(|e| plot_err(path, e))?;
        }
    }
    Ok(())
}

/// Stage × evaluation heatmap (values shown ×100; missing entries grey, "n/a").
pub fn plot_stage_heatmap(m: &StageMatrix, title: &str, path: &Path) -> Result<()> {
    m.validate()?;
    with_backend!(path, |root| draw_heatmap(&root, m, title, path)?)
}

fn palette(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    P[i % P.len()]
}

/// The legend of every plot: its series' labels in a framed box.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    path: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| plot_err(path, e))
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[Series],
    title: &str,
    x_desc: &str,
    y_desc: &str,
    path: &Path,
) -> Result<()> {
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.0), b.max(p.0))
    });
    let (y0, y1) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.1), b.max(p.1))
    });
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1.max(x0 + 1e-9), (y0 - pad)..(y1 + pad))
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let c = palette(i);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(3)));
    }
    draw_legend(&mut chart, path)
}

/// Training curves (e.g. loss per step, one series per stage or run).
pub fn plot_training_curves(series: &[Series], title: &str, path: &Path) -> Result<()> {
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(EvalError::Empty("training curves"));
    }
    if series
        .iter()
        .flat_map(|s| &s.points)
        .any(|p| !p.0.is_finite() || !p.1.is_finite())
    {
        return Err(EvalError::NonFinite("training curve point"));
    }
    with_backend!(path, |root| draw_curves(
        &root, series, title, "step", "loss", path
    )?)
}

/// Reads `(x, y)` series from a JSONL log: every line is a JSON object; lines lacking a
/// numeric `x_key` or `y_key` are skipped (other events share the log). With `group_key`, one
/// series per distinct value of that field (e.g. `"stage"`), in order of first appearance.
pub fn read_jsonl_series(
    path: &Path,
    x_key: &str,
    y_key: &str,
    group_key: Option<&str>,
) -> Result<Vec<Series>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let mut out: Vec<Series> = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|source| EvalError::Json {
                context: format!("{} line {}", path.display(), lineno + 1),
                source,
            })?;
        let (Some(x), Some(y)) = (v[x_key].as_f64(), v[y_key].as_f64()) else {
            continue;
        };
        let name = match group_key {
            Some(g) => match &v[g] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => y_key.to_string(),
                other => other.to_string(),
            },
            None => y_key.to_string(),
        };
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((x, y)),
            None => out.push(Series {
                name,
                points: vec![(x, y)],
            }),
        }
    }
    Ok(out)
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    categories: &[String],
    groups: &[BarGroup],
    title: &str,
    y_desc: &str,
    path: &Path,
) -> Result<()> {
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let vals = || {
        groups
            .iter()
            .flat_map(|g| g.values.iter().flatten().copied())
    };
    let lo = vals().fold(0.0f64, f64::min);
    let hi = vals().fold(0.0f64, f64::max);
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let n = categories.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..n as f64, (lo - pad)..(hi + pad))
        .map_err(|e| plot_err(path, e))?;
    let cats = categories.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let f = x.fract();
            if (f - 0.5).abs() < 1e-6 {
                cats.get(x.floor() as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .y_label_formatter(&|y| format!("{:.1}", y * 100.0))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    let width = 0.8 / groups.len().max(1) as f64;
    for (gi, g) in groups.iter().enumerate() {
        let c = palette(gi);
        chart
            .draw_series(g.values.iter().enumerate().filter_map(|(k, v)| {
                let v = (*v)?;
                let x = k as f64 + 0.1 + gi as f64 * width;
                Some(Rectangle::new(
                    [(x, 0.0), (x + width * 0.95, v)],
                    c.filled(),
                ))
            }))
            .map_err(|e| plot_err(path, e))?
            .label(g.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (n as f64, 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| plot_err(path, e))?;
    draw_legend(&mut chart, path)
}

/// Grouped bars: one group per method, one bar per task (values shown ×100, e.g. Chaudhry
/// forgetting per task after the last stage).
pub fn plot_forgetting_bars(
    tasks: &[String],
    groups: &[BarGroup],
    title: &str,
    path: &Path,
) -> Result<()> {
    if tasks.is_empty() || groups.is_empty() {
        return Err(EvalError::Empty("forgetting bars"));
    }
    if let Some(g) = groups.iter().find(|g| g.values.len() != tasks.len()) {
        return Err(EvalError::shape(
            "forgetting bars",
            format!(
                "group {} has {} values for {} tasks",
                g.name,
                g.values.len(),
                tasks.len()
            ),
        ));
    }
    if groups
        .iter()
        .flat_map(|g| g.values.iter().flatten())
        .any(|v| !v.is_finite())
    {
        return Err(EvalError::NonFinite("forgetting value"));
    }
    with_backend!(path, |root| draw_bars(
        &root,
        tasks,
        groups,
        title,
        "forgetting (×100)",
        path
    )?)
}

/// Retention versus gain: one point per method with its x and y intervals as error bars, and
/// the line y = 0 (no change since the reference stage). Values are drawn ×100.
///
/// # Errors
/// No point, a non-finite value, an interval that does not contain its mean, or a
/// plotting/I/O error.
pub fn plot_retention_gain(
    points: &[PointCi],
    title: &str,
    x_desc: &str,
    y_desc: &str,
    path: &Path,
) -> Result<()> {
    if points.is_empty() {
        return Err(EvalError::Empty("retention-versus-gain points"));
    }
    for p in points {
        let (x, y) = (p.x, p.y);
        if [x.0, x.1, x.2, y.0, y.1, y.2]
            .iter()
            .any(|v| !v.is_finite())
        {
            return Err(EvalError::NonFinite("retention-versus-gain value"));
        }
        if !(x.1 <= x.0 && x.0 <= x.2 && y.1 <= y.0 && y.0 <= y.2) {
            return Err(EvalError::shape(
                "retention-versus-gain point",
                format!("{}: an interval does not contain its mean", p.name),
            ));
        }
    }
    with_backend!(path, |root| draw_points(
        &root, points, title, x_desc, y_desc, path
    )?)
}

fn draw_points<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[PointCi],
    title: &str,
    x_desc: &str,
    y_desc: &str,
    path: &Path,
) -> Result<()> {
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let range = |lo: f64, hi: f64| {
        let pad = ((hi - lo) * 0.15).max(2e-3);
        (lo - pad)..(hi + pad)
    };
    let x_lo = points.iter().map(|p| p.x.1).fold(f64::INFINITY, f64::min);
    let x_hi = points
        .iter()
        .map(|p| p.x.2)
        .fold(f64::NEG_INFINITY, f64::max);
    let y_lo = points.iter().map(|p| p.y.1).fold(0.0f64, f64::min);
    let y_hi = points.iter().map(|p| p.y.2).fold(0.0f64, f64::max);
    let (xr, yr) = (range(x_lo, x_hi), range(y_lo, y_hi));
    let (x0, x1) = (xr.start, xr.end);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(xr, yr)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{:.1}", x * 100.0))
        .y_label_formatter(&|y| format!("{:.1}", y * 100.0))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    chart
        .draw_series(LineSeries::new(
            [(x0, 0.0), (x1, 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| plot_err(path, e))?;
    for (i, p) in points.iter().enumerate() {
        let c = palette(i);
        let (x, y) = (p.x, p.y);
        chart
            .draw_series([
                PathElement::new(vec![(x.1, y.0), (x.2, y.0)], c.stroke_width(2)),
                PathElement::new(vec![(x.0, y.1), (x.0, y.2)], c.stroke_width(2)),
            ])
            .map_err(|e| plot_err(path, e))?;
        chart
            .draw_series([Circle::new((x.0, y.0), 6, c.filled())])
            .map_err(|e| plot_err(path, e))?
            .label(p.name.clone())
            .legend(move |(lx, ly)| Circle::new((lx + 7, ly), 6, c.filled()));
    }
    draw_legend(&mut chart, path)
}
