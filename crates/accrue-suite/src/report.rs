//! `accrue report`: Markdown tables (mean ± std over the runs of each method) and plots from
//! evaluation artifacts written by `accrue eval` or `accrue demo`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use accrue_eval::plot::{
    BarGroup, Series, plot_forgetting_bars, plot_stage_heatmap, plot_training_curves,
};
use accrue_eval::report::{EvalArtifact, Protocol};
use accrue_eval::table::{Column, TableLayout, render_markdown};

use crate::error::{Error, Result};

/// What a report wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The Markdown text.
    pub markdown: String,
    /// Plots written.
    pub plots: Vec<PathBuf>,
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::LinearProbe => "probe",
        Protocol::ZeroShot => "zero-shot",
        Protocol::Retrieval => "retrieval",
        Protocol::OwnHead => "own head",
    }
}

/// One column per score of the runs' last stages (protocol, task, metric, direction), in a
/// stable order; R@5 and mAP@10 are left out to keep the table readable.
pub fn all_scores_layout(runs: &[EvalArtifact]) -> TableLayout {
    let mut keys = BTreeSet::new();
    for r in runs {
        if let Some(last) = r.stages.last() {
            for s in &last.scores {
                if s.metric == "R@5" || s.metric == "mAP@10" {
                    continue;
                }
                keys.insert((
                    s.protocol,
                    s.task.clone(),
                    s.direction.clone(),
                    s.metric.clone(),
                ));
            }
        }
    }
    TableLayout {
        title: "Every score after the last stage".into(),
        columns: keys
            .into_iter()
            .map(|(p, task, dir, metric)| {
                let header = match &dir {
                    Some(d) => format!("{task} {} {d} {metric}", protocol_name(p)),
                    None => format!("{task} {} {metric}", protocol_name(p)),
                };
                Column::new(&header, p, &task, &metric, dir.as_deref())
            })
            .collect(),
        scale: 100.0,
        decimals: 1,
    }
}

/// Training loss per optimiser step, one series per stage (x = step within the stage; the
/// log's own `step` counts within an epoch).
pub fn loss_curves(log: &Path) -> Vec<Series> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Vec::new();
    };
    let mut out: Vec<Series> = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["event"] != "step" {
            continue;
        }
        let (Some(stage), Some(loss)) = (v["stage"].as_u64(), v["loss"].as_f64()) else {
            continue;
        };
        let stage = stage as usize;
        while out.len() <= stage {
            out.push(Series {
                name: String::new(),
                points: Vec::new(),
            });
        }
        let x = out[stage].points.len() as f64;
        if loss.is_finite() {
            out[stage].points.push((x, loss));
        }
    }
    out
}

/// Renders the paper's three layouts (columns whose scores no run has are shown as "–"), the
/// all-scores table, and a stage × task heatmap and forgetting bars for every artifact with a
/// continual-learning section, and the training-loss curves of the given `metrics.jsonl` logs
/// (label, path; one series per stage). Plots go to `out_dir`.
///
/// # Errors
/// No artifacts, or plotting/I/O errors.
pub fn render(
    runs: &[EvalArtifact],
    curves: &[(String, PathBuf)],
    out_dir: &Path,
) -> Result<Report> {
    if runs.is_empty() {
        return Err(Error::Other("no evaluation artifacts given".into()));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut md = String::from("# accrue report\n\n");
    let all = all_scores_layout(runs);
    if !all.columns.is_empty() {
        md += &render_markdown(&all, runs);
        md += "\n";
    }
    for layout in [
        TableLayout::table1(),
        TableLayout::table2(),
        TableLayout::table3(),
    ] {
        let any = layout.columns.iter().any(|c| {
            runs.iter().any(|r| {
                r.score(None, c.protocol, &c.task, &c.metric, c.direction.as_deref())
                    .is_some()
            })
        });
        if any {
            md += &render_markdown(&layout, runs);
            md += "\n";
        }
    }
    let mut plots = Vec::new();
    let mut bars = Vec::new();
    let mut tasks: Vec<String> = Vec::new();
    for r in runs {
        let Some(c) = &r.continual else { continue };
        let slug: String = r
            .run
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
            .collect();
        let p = out_dir.join(format!("matrix-{slug}.png"));
        plot_stage_heatmap(&c.matrix, &format!("{} ({})", r.method, r.run), &p)?;
        plots.push(p);
        if tasks.is_empty() {
            tasks = c.matrix.evaluations.clone();
        }
        if c.matrix.evaluations == tasks {
            bars.push(BarGroup {
                name: format!("{} ({})", r.method, r.run),
                values: c.summary.forgetting_per_task.clone(),
            });
        }
    }
    if !bars.is_empty() {
        let p = out_dir.join("forgetting.png");
        plot_forgetting_bars(&tasks, &bars, "Forgetting after the last stage (x100)", &p)?;
        plots.push(p);
    }
    let mut series = Vec::new();
    for (label, log) in curves {
        for (k, mut s) in loss_curves(log).into_iter().enumerate() {
            s.name = format!("{label} stage {}", k + 1);
            series.push(s);
        }
    }
    if series.iter().any(|s| !s.points.is_empty()) {
        let p = out_dir.join("training-curves.png");
        plot_training_curves(&series, "Training loss per step", &p)?;
        plots.push(p);
    }
    if !plots.is_empty() {
        md += "Plots: ";
        md += &plots
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect::<Vec<_>>()
            .join(", ");
        md += "\n";
    }
    let path = out_dir.join("report.md");
    accrue_core::atomic::write(&path, md.as_bytes())?;
    Ok(Report {
        markdown: md,
        plots,
    })
}
