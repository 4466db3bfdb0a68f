//! Markdown tables in the paper's layouts, with mean ± std over seeds.
//!
//! Runs (one [`EvalArtifact`] each) are grouped by [`EvalArtifact::method`] in order of first
//! appearance; each cell is the mean ± sample standard deviation (n − 1) over that method's runs
//! of one selected [`Score`](crate::report::Score), scaled to percent. A cell with a single run
//! shows the value alone; a score no run has shows `–`.
//!
//! * [`TableLayout::table1`]: A → AT (audio-text): zero-shot ESC-50 / US8K and Clotho
//!   retrieval both ways.
//! * [`TableLayout::table2`]: A → AV → AT: zero-shot plus retrieval in every modality
//!   (VGGSound and AVE image↔audio, Clotho text↔audio).
//! * [`TableLayout::table3`]: linear probe (HEAR protocol) accuracies and AudioSet mAP.

use serde::{Deserialize, Serialize};

use crate::report::{EvalArtifact, Protocol};

/// Dataset names used by the layouts (and expected in artifacts).
pub mod tasks {
    /// ESC-50 (zero-shot and linear probe, 5 folds).
    pub const ESC50: &str = "ESC-50";
    /// UrbanSound8K (10 folds).
    pub const US8K: &str = "US8K";
    /// Clotho evaluation split (text ↔ audio retrieval).
    pub const CLOTHO: &str = "Clotho";
    /// VGGSound test split (image ↔ audio retrieval).
    pub const VGGSOUND: &str = "VGGSound";
    /// AVE test split (image ↔ audio retrieval).
    pub const AVE: &str = "AVE";
    /// AudioSet eval set (multi-label mAP).
    pub const AUDIOSET: &str = "AudioSet";
}

/// One column: which score it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Header text.
    pub header: String,
    /// Score protocol.
    pub protocol: Protocol,
    /// Score task.
    pub task: String,
    /// Score metric.
    pub metric: String,
    /// Score direction, if any.
    pub direction: Option<String>,
    /// Stage to read (`None`: the run's last stage).
    pub stage: Option<String>,
}

impl Column {
    /// The column's score in one run (its stage, or the last one), when the run has it.
    pub fn value(&self, run: &EvalArtifact) -> Option<f64> {
        run.score(
            self.stage.as_deref(),
            self.protocol,
            &self.task,
            &self.metric,
            self.direction.as_deref(),
        )
        .map(|s| s.value)
    }

    /// A column reading the last stage.
    pub fn new(
        header: &str,
        protocol: Protocol,
        task: &str,
        metric: &str,
        direction: Option<&str>,
    ) -> Self {
        Self {
            header: header.into(),
            protocol,
            task: task.into(),
            metric: metric.into(),
            direction: direction.map(str::to_string),
            stage: None,
        }
    }
}

/// A table layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableLayout {
    /// Caption.
    pub title: String,
    /// Columns after the method column.
    pub columns: Vec<Column>,
    /// Multiplier applied to values (100 for percent).
    pub scale: f64,
    /// Decimals shown.
    pub decimals: usize,
}

impl TableLayout {
    fn percent(title: &str, columns: Vec<Column>) -> Self {
        Self {
            title: title.into(),
            columns,
            scale: 100.0,
            decimals: 1,
        }
    }

    /// Table 1: A → AT audio-text (zero-shot accuracy, Clotho R@1/R@10 both ways).
    pub fn table1() -> Self {
        use tasks::*;
        Self::percent(
            "Table 1: A-AT (audio-text), after the last stage",
            vec![
                Column::new("ZS ESC-50 acc", Protocol::ZeroShot, ESC50, "top1_acc", None),
                Column::new("ZS US8K acc", Protocol::ZeroShot, US8K, "top1_acc", None),
                Column::new(
                    "Clotho T2A R@1",
                    Protocol::Retrieval,
                    CLOTHO,
                    "R@1",
                    Some("T2A"),
                ),
                Column::new(
                    "Clotho T2A R@10",
                    Protocol::Retrieval,
                    CLOTHO,
                    "R@10",
                    Some("T2A"),
                ),
                Column::new(
                    "Clotho A2T R@1",
                    Protocol::Retrieval,
                    CLOTHO,
                    "R@1",
                    Some("A2T"),
                ),
                Column::new(
                    "Clotho A2T R@10",
                    Protocol::Retrieval,
                    CLOTHO,
                    "R@10",
                    Some("A2T"),
                ),
            ],
        )
    }

    /// Table 2: A → AV → AT, zero-shot and retrieval in all modalities (R@10).
    pub fn table2() -> Self {
        use tasks::*;
        Self::percent(
            "Table 2: A-AV-AT, zero-shot and retrieval (R@10), after the last stage",
            vec![
                Column::new("ZS ESC-50 acc", Protocol::ZeroShot, ESC50, "top1_acc", None),
                Column::new("ZS US8K acc", Protocol::ZeroShot, US8K, "top1_acc", None),
                Column::new(
                    "VGGSound I2A",
                    Protocol::Retrieval,
                    VGGSOUND,
                    "R@10",
                    Some("I2A"),
                ),
                Column::new(
                    "VGGSound A2I",
                    Protocol::Retrieval,
                    VGGSOUND,
                    "R@10",
                    Some("A2I"),
                ),
                Column::new("AVE I2A", Protocol::Retrieval, AVE, "R@10", Some("I2A")),
                Column::new("AVE A2I", Protocol::Retrieval, AVE, "R@10", Some("A2I")),
                Column::new(
                    "Clotho T2A",
                    Protocol::Retrieval,
                    CLOTHO,
                    "R@10",
                    Some("T2A"),
                ),
                Column::new(
                    "Clotho A2T",
                    Protocol::Retrieval,
                    CLOTHO,
                    "R@10",
                    Some("A2T"),
                ),
            ],
        )
    }

    /// Table 3: linear probe (HEAR protocol) on ESC-50, US8K and AudioSet.
    pub fn table3() -> Self {
        use tasks::*;
        Self::percent(
            "Table 3: linear probe (HEAR protocol), after the last stage",
            vec![
                Column::new("ESC-50 acc", Protocol::LinearProbe, ESC50, "top1_acc", None),
                Column::new("US8K acc", Protocol::LinearProbe, US8K, "top1_acc", None),
                Column::new("AudioSet mAP", Protocol::LinearProbe, AUDIOSET, "mAP", None),
            ],
        )
    }
}

/// Mean, sample standard deviation and count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for a single value.
    pub std: f64,
    /// Number of values.
    pub n: usize,
}

/// Mean ± sample std of `values` (`None` if empty).
pub fn mean_std(values: &[f64]) -> Option<MeanStd> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some(MeanStd { mean, std, n })
}

/// A mean with its two-sided 95 % Student-t confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Sample mean.
    pub mean: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Number of values.
    pub n: usize,
}

impl Interval {
    /// `above 0` (the whole interval above zero), `below 0` (the whole interval below zero) or
    /// `inconclusive` (it contains zero).
    pub fn verdict(&self) -> &'static str {
        if self.lo > 0.0 {
            "above 0"
        } else if self.hi < 0.0 {
            "below 0"
        } else {
            "inconclusive"
        }
    }
}

/// Two-sided 97.5 % quantiles of Student's t for 1–30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The mean of `values` with its 95 % t-interval (`mean ± t₀.₉₇₅(n−1) · s/√n`); for paired
/// differences pass the per-seed differences. `None` for fewer than two values. Beyond 30
/// degrees of freedom the quantile is approximated by `1.96 + 2.4/df` (within 0.002).
pub fn t_interval95(values: &[f64]) -> Option<Interval> {
    let ms = mean_std(values)?;
    if ms.n < 2 {
        return None;
    }
    let df = ms.n - 1;
    let t = T975.get(df - 1).copied().unwrap_or(1.96 + 2.4 / df as f64);
    let half = t * ms.std / (ms.n as f64).sqrt();
    Some(Interval {
        mean: ms.mean,
        lo: ms.mean - half,
        hi: ms.mean + half,
        n: ms.n,
    })
}

/// Methods in order of first appearance with their runs.
pub fn group_by_method(runs: &[EvalArtifact]) -> Vec<(String, Vec<&EvalArtifact>)> {
    let mut groups: Vec<(String, Vec<&EvalArtifact>)> = Vec::new();
    for r in runs {
        match groups.iter_mut().find(|(m, _)| *m == r.method) {
            Some((_, v)) => v.push(r),
            None => groups.push((r.method.clone(), vec![r])),
        }
    }
    groups
}

/// The cell statistics of one column for one group of runs.
pub fn cell(column: &Column, runs: &[&EvalArtifact]) -> Option<MeanStd> {
    let values: Vec<f64> = runs.iter().filter_map(|r| column.value(r)).collect();
    mean_std(&values)
}

/// Renders a layout as a Markdown table.
pub fn render_markdown(layout: &TableLayout, runs: &[EvalArtifact]) -> String {
    let mut out = format!("**{}**\n\n| Method | n |", layout.title);
    for c in &layout.columns {
        out.push_str(&format!(" {} |", c.header));
    }
    out.push_str("\n|---|---:|");
    out.push_str(&"---:|".repeat(layout.columns.len()));
    out.push('\n');
    let d = layout.decimals;
    for (method, group) in group_by_method(runs) {
        out.push_str(&format!("| {method} | {} |", group.len()));
        for c in &layout.columns {
            let text = match cell(c, &group) {
                None => "–".to_string(),
                Some(ms) if ms.n == 1 => format!("{:.d$}", ms.mean * layout.scale),
                Some(ms) => format!(
                    "{:.d$} ± {:.d$}",
                    ms.mean * layout.scale,
                    ms.std * layout.scale
                ),
            };
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "\nValues ×{}; mean ± sample std over the n runs (seeds) of each method.\n",
        layout.scale
    ));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn t_interval_matches_scipy() {
        // scipy.stats.t.interval(0.95, 3, loc=2.5, scale=std/sqrt(4)) = (0.44573, 4.55427)
        let i = super::t_interval95(&[1.0, 2.0, 3.0, 4.0]).expect("interval");
        assert!(
            (i.lo - 0.44573).abs() < 1e-3 && (i.hi - 4.55427).abs() < 1e-3,
            "{i:?}"
        );
        assert_eq!(i.verdict(), "above 0");
        assert!(super::t_interval95(&[1.0]).is_none());
        // df = 40: t = 2.0211 (scipy); the approximation gives 2.02.
        let v: Vec<f64> = (0..41).map(|k| f64::from(k % 2)).collect();
        let i = super::t_interval95(&v).expect("interval");
        let s = super::mean_std(&v).expect("ms");
        let half = 2.0211 * s.std / 41f64.sqrt();
        assert!(((i.hi - i.mean) - half).abs() < 2e-3 * half);
    }
}
