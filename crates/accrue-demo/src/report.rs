//! The report: one evaluation artifact per run, the paper's tables (mean ± std over seeds),
//! the continual-learning table and matrices, and plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use accrue_eval::continual::{StageMatrix, summarize};
use accrue_eval::plot::{
    BarGroup, PointCi, Series, plot_forgetting_bars, plot_retention_gain, plot_stage_heatmap,
    plot_training_curves,
};
use accrue_eval::report::{
    ContinualReport, EvalArtifact, Protocol, Provenance, StageEvaluation, sha256_file, sha256_tag,
};
use accrue_eval::table::{Column, TableLayout, mean_std, render_markdown};
use serde::{Deserialize, Serialize};

use super::evaluate::{StageScores, tasks};
use super::grid::{Job, Method, Sequence};
use super::{DemoOptions, Settings, Timings};

use accrue_suite::suite::{ScoreRef, stage_matrix};
use accrue_suite::{Error, Result};

/// Seeds of the documented run (docs/results.md); a report on fewer says so.
pub const DOCUMENTED_SEEDS: usize = 10;

/// What `accrue demo` printed and wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoReport {
    /// The Markdown report (tables, CL metrics, settings, timings).
    pub markdown: String,
    /// Where it was written.
    pub path: PathBuf,
    /// The evaluation artifacts written (one per run and seed).
    pub artifacts: Vec<PathBuf>,
    /// The plots written.
    pub plots: Vec<PathBuf>,
}

/// The score standing for `task` after `stage`, per the suite's definitions (`refs`).
fn task_score(
    a: &EvalArtifact,
    stage: &str,
    task: &str,
    refs: &BTreeMap<String, ScoreRef>,
) -> Option<f64> {
    let st = a.stages.iter().find(|s| s.stage == stage)?;
    refs.get(task)?.value_in(&st.scores)
}

/// The CL-matrix definitions, for the report text.
const TASK_SCORES: &str = "A = linear-probe top-1 accuracy on the instrument test split; \
AV = zero-shot accuracy through class images (g^AV vs EfficientNet-Lite0 embeddings of the \
class images); AT = text→audio R@10 on the instrument test captions (g^AT vs MiniLM).";

fn load_scores(model: &Path) -> Result<StageScores> {
    let p = Job::scores_path(model);
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Other(format!("{}: {e}", p.display())))
}

fn stage_eval(name: &str, s: &StageScores, root: &Path) -> StageEvaluation {
    StageEvaluation {
        stage: name.to_string(),
        checkpoint: s
            .model
            .strip_prefix(root)
            .unwrap_or(&s.model)
            .display()
            .to_string(),
        checkpoint_hash: sha256_file(&s.model).ok(),
        scores: s.scores.clone(),
    }
}

struct Built {
    /// (sequence key, method label, seed, artifact)
    runs: Vec<(&'static str, String, u64, EvalArtifact)>,
}

fn label(job: &Job) -> String {
    match (job.sequence, job.method) {
        (Sequence::A, _) => "A only".into(),
        (Sequence::MtWc, _) => "MT-WC (joint triplets)".into(),
        (Sequence::Wav2Clip, _) => "Wav2CLIP".into(),
        (Sequence::Joint, _) => "Joint (A + AV + AT, upper bound)".into(),
        (Sequence::AAt, Some(Method::Finetune)) => "CLAP = fine-tuning".into(),
        (_, Some(m)) => m.label().into(),
        (_, None) => job.name.clone(),
    }
}

fn build(opts: &DemoOptions, jobs: &[Job]) -> Result<Built> {
    let (commit, dirty) = accrue_suite::provenance::git_commit();
    let root = &opts.out_dir;
    let mut out = Vec::new();
    for job in jobs {
        // The seed's own task A (`--task-a-per-seed`), else the shared one.
        let a_jobs = || jobs.iter().filter(|j| j.sequence == Sequence::A);
        let a_job = a_jobs()
            .find(|j| j.seed == job.seed && j.dir.parent() == job.dir.parent())
            .or_else(|| a_jobs().next())
            .ok_or_else(|| Error::Other("no stage-A run".into()))?;
        let a_model = &a_job.stage_models()[0];
        let mut stages = vec![stage_eval("A", &load_scores(a_model)?, root)];
        if job.sequence == Sequence::Wav2Clip {
            // Its AV stage is the fine-tuning run's, whose model it starts from.
            let ft = jobs
                .iter()
                .find(|j| {
                    j.seed == job.seed
                        && j.sequence == Sequence::AAvAt
                        && j.method == Some(Method::Finetune)
                })
                .ok_or_else(|| Error::Other("Wav2CLIP needs the fine-tuning run".into()))?;
            stages.push(stage_eval("AV", &load_scores(&ft.stage_models()[0])?, root));
        }
        if job.sequence != Sequence::A {
            for ((name, _), model) in job.stages.iter().zip(job.stage_models()) {
                stages.push(stage_eval(name, &load_scores(&model)?, root));
            }
        }
        let config = std::fs::read(job.experiment()).map_err(|e| Error::io(job.experiment(), e))?;
        let mut prov = Provenance::new(
            commit.clone(),
            sha256_tag(&config),
            job.seed,
            opts.backend.clone(),
            "f32",
        );
        prov.git_dirty = dirty;
        let towers: BTreeMap<String, String> = std::fs::read_to_string(&job.eval.data.towers)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        prov.frozen_towers = towers;
        let d = &job.eval.data;
        for (k, p) in [
            ("task_a", &d.task_a),
            ("task_av", &d.task_av),
            ("task_at", &d.task_at),
            ("test", &d.test),
            ("test_shift", &d.shift),
            ("tuxpaint", &d.tuxpaint),
        ] {
            if let Ok(h) = sha256_file(p) {
                prov.datasets.insert(k.into(), h);
            }
        }
        let mut art = EvalArtifact::new(label(job), format!("seed{}/{}", job.seed, job.name), prov);
        art.stages = stages;
        let key = match job.sequence {
            Sequence::A => "A",
            Sequence::AAt => "A-AT",
            Sequence::AAvAt => "A-AV-AT",
            Sequence::MtWc => "MT-WC",
            Sequence::Wav2Clip => "Wav2CLIP",
            Sequence::AAtAv => "A-AT-AV",
            Sequence::Joint => "Joint",
        };
        out.push((key, label(job), job.seed, art));
    }
    Ok(Built { runs: out })
}

fn col(header: &str, p: Protocol, task: &str, metric: &str, dir: Option<&str>) -> Column {
    Column::new(header, p, task, metric, dir)
}

/// A retrieval column headed `"{data} {direction} R@{k}"`, reading metric `R@{k}`.
fn retrieval(data: &str, task: &str, direction: &str, k: usize) -> Column {
    col(
        &format!("{data} {direction} R@{k}"),
        Protocol::Retrieval,
        task,
        &format!("R@{k}"),
        Some(direction),
    )
}

fn table1() -> TableLayout {
    use tasks::*;
    TableLayout {
        title: "Table 1 (A → AT, audio–text), after the last stage".into(),
        columns: vec![
            col(
                "ZS Instr. acc",
                Protocol::ZeroShot,
                INSTRUMENTS,
                "top1_acc",
                None,
            ),
            col("ZS Shift acc", Protocol::ZeroShot, SHIFT, "top1_acc", None),
            retrieval("Instr.", INSTRUMENTS, "T2A", 1),
            retrieval("Instr.", INSTRUMENTS, "T2A", 10),
            retrieval("Instr.", INSTRUMENTS, "A2T", 1),
            retrieval("Instr.", INSTRUMENTS, "A2T", 10),
            retrieval("TuxPaint", TUXPAINT, "T2A", 10),
            retrieval("TuxPaint", TUXPAINT, "A2T", 10),
        ],
        scale: 100.0,
        decimals: 1,
    }
}

fn table2() -> TableLayout {
    use tasks::*;
    TableLayout {
        title:
            "Table 2 (A → AV → AT), zero-shot and retrieval in all modalities, after the last stage"
                .into(),
        columns: vec![
            col(
                "ZS text Instr.",
                Protocol::ZeroShot,
                INSTRUMENTS,
                "top1_acc",
                None,
            ),
            col(
                "ZS image Instr.",
                Protocol::ZeroShot,
                INSTRUMENTS,
                "top1_acc",
                Some("A2I"),
            ),
            retrieval("TuxPaint", TUXPAINT, "I2A", 10),
            retrieval("TuxPaint", TUXPAINT, "A2I", 10),
            retrieval("Instr.", INSTRUMENTS, "T2A", 10),
            retrieval("Instr.", INSTRUMENTS, "A2T", 10),
            retrieval("TuxPaint", TUXPAINT, "T2A", 10),
            retrieval("TuxPaint", TUXPAINT, "A2T", 10),
        ],
        scale: 100.0,
        decimals: 1,
    }
}

/// The downstream suite's average (Table 3's last column).
fn suite_avg_column() -> Column {
    col(
        "Suite Avg.",
        Protocol::LinearProbe,
        tasks::SUITE_AVG,
        "top1_acc",
        None,
    )
}

fn table3() -> TableLayout {
    use tasks::*;
    TableLayout {
        title: "Table 3: linear probe (HEAR grid, frozen f_a embeddings), after the last stage"
            .into(),
        columns: vec![
            col(
                "Instr. acc",
                Protocol::LinearProbe,
                INSTRUMENTS,
                "top1_acc",
                None,
            ),
            col("Shift acc", Protocol::LinearProbe, SHIFT, "top1_acc", None),
            col(
                "own head g^A acc",
                Protocol::OwnHead,
                INSTRUMENTS,
                "top1_acc",
                None,
            ),
            col(
                "Register",
                Protocol::LinearProbe,
                REGISTER,
                "top1_acc",
                None,
            ),
            col(
                "Dynamics",
                Protocol::LinearProbe,
                DYNAMICS,
                "top1_acc",
                None,
            ),
            col("Variant", Protocol::LinearProbe, VARIANT, "top1_acc", None),
            col(
                "Soundfont",
                Protocol::LinearProbe,
                SOUNDFONT,
                "top1_acc",
                None,
            ),
            col(
                "TuxPaint cat.",
                Protocol::LinearProbe,
                TUX_CATEGORY,
                "top1_acc",
                None,
            ),
            suite_avg_column(),
        ],
        scale: 100.0,
        decimals: 1,
    }
}

/// The downstream suite's average of a stage (`None`: not scored).
fn suite_avg(stage: &accrue_eval::report::StageEvaluation) -> Option<f64> {
    probe_value(stage, tasks::SUITE_AVG)
}

/// A stage's linear-probe score on `task` (the suite's tasks and their average are top-1
/// accuracies, the only metric they report).
fn probe_value(stage: &accrue_eval::report::StageEvaluation, task: &str) -> Option<f64> {
    stage
        .scores
        .iter()
        .find(|s| s.protocol == Protocol::LinearProbe && s.task == task && s.direction.is_none())
        .map(|s| s.value)
}

/// Δ suite avg of a run: its suite average after the last stage − after task A (its first).
fn suite_delta(art: &EvalArtifact) -> Option<f64> {
    Some(suite_avg(art.stages.last()?)? - suite_avg(art.stages.first()?)?)
}

/// `x − y` for every seed both have, in seed order.
fn paired_differences(x: &BTreeMap<u64, f64>, y: &BTreeMap<u64, f64>) -> Vec<f64> {
    x.iter()
        .filter_map(|(seed, v)| y.get(seed).map(|b| v - b))
        .collect()
}

/// The fine-tuning run's label in a sequence (`A-AT`'s fine-tuning is CLAP).
fn finetune_label(key: &str) -> &'static str {
    if key == "A-AT" {
        "CLAP = fine-tuning"
    } else {
        Method::Finetune.label()
    }
}

/// `[−1.2, +0.4]` (×100).
fn fmt_ci(i: &accrue_eval::table::Interval) -> String {
    format!(
        "{:+.1} [{:+.1}, {:+.1}]",
        i.mean * 100.0,
        i.lo * 100.0,
        i.hi * 100.0
    )
}

/// The downstream suite's section: the positive control (does the encoder lose what it knew
/// after task A?) and each method's forgetting as a paired difference against fine-tuning.
fn suite_section(runs: &[(&'static str, String, u64, EvalArtifact)]) -> String {
    use accrue_eval::table::t_interval95;
    // (sequence, method) -> seed -> (suite avg after A, after the last stage)
    let mut deltas: BTreeMap<(&str, String), BTreeMap<u64, f64>> = BTreeMap::new();
    for (key, method, seed, art) in runs {
        if !matches!(
            *key,
            "A-AT" | "A-AV-AT" | "A-AT-AV" | "Wav2CLIP" | "MT-WC" | "Joint"
        ) {
            continue;
        }
        if let Some(d) = suite_delta(art) {
            deltas
                .entry((*key, method.clone()))
                .or_default()
                .insert(*seed, d);
        }
    }
    if deltas.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n**Downstream suite: forgetting after task A** (×100). The suite (Table 3's columns from \
         Register on) is k-fold linear probes on clips no stage trains on; Δ = suite average \
         after the last stage − after task A, per seed; mean with its 95 % t-interval over \
         seeds. The positive control is fine-tuning: the benchmark can test a method only if \
         fine-tuning's Δ is below 0 with the interval excluding 0.\n\n\
         | Sequence | Method | n | Δ suite avg [95 % CI] | verdict | vs fine-tuning, paired [95 % CI] | verdict |\n\
         |---|---|---:|---:|---|---:|---|\n",
    );
    for ((key, method), per_seed) in &deltas {
        let values: Vec<f64> = per_seed.values().copied().collect();
        let own = t_interval95(&values);
        let ft_key = if matches!(*key, "Wav2CLIP" | "MT-WC" | "Joint") {
            "A-AV-AT"
        } else {
            key
        };
        let ft = deltas.get(&(ft_key, finetune_label(ft_key).to_string()));
        let paired: Option<accrue_eval::table::Interval> = ft
            .filter(|_| method != finetune_label(key))
            .and_then(|ft| t_interval95(&paired_differences(per_seed, ft)));
        md += &format!(
            "| {key} | {method} | {} | {} | {} | {} | {} |\n",
            values.len(),
            own.as_ref().map_or("–".into(), fmt_ci),
            own.as_ref().map_or("–", |i| i.verdict()),
            paired.as_ref().map_or("–".into(), fmt_ci),
            paired.as_ref().map_or("–", |i| i.verdict()),
        );
    }
    md += &suite_tasks_section(runs);
    md
}

/// One of the paper's claims as a paired test: `run` − `baseline` on one score after the last
/// stage, per seed, with the Student-t 95 % interval over the seeds both have.
struct Claim {
    /// The claim, in the paper's words (shortened), and where the paper makes it.
    text: &'static str,
    /// (sequence key, method label) of the run the claim is about.
    run: (&'static str, &'static str),
    /// (sequence key, method label) of the run it is compared with.
    baseline: (&'static str, &'static str),
    /// The score compared (the last stage's).
    column: Column,
}

/// The paper's claims (Section 4, Tables 1–3) as paired tests against their baselines.
fn claims() -> Vec<Claim> {
    use tasks::*;
    let zs_text = || {
        col(
            "ZS text Instr. acc",
            Protocol::ZeroShot,
            INSTRUMENTS,
            "top1_acc",
            None,
        )
    };
    let zs_image = || {
        col(
            "ZS image Instr. acc",
            Protocol::ZeroShot,
            INSTRUMENTS,
            "top1_acc",
            Some("A2I"),
        )
    };
    let t2a = || retrieval("Instr.", INSTRUMENTS, "T2A", 10);
    let suite = suite_avg_column;
    let clap = ("A-AT", "CLAP = fine-tuning");
    let ft = ("A-AV-AT", "Fine-tuning");
    let w2c = ("Wav2CLIP", "Wav2CLIP");
    let c = |text, run, baseline, column| Claim {
        text,
        run,
        baseline,
        column,
    };
    vec![
        c(
            "Tab. 1: LwF beats CLAP at zero-shot after A → AT",
            ("A-AT", "LwF"),
            clap,
            zs_text(),
        ),
        c(
            "Tab. 1: LwF matches or beats CLAP at text→audio retrieval",
            ("A-AT", "LwF"),
            clap,
            t2a(),
        ),
        c(
            "Tab. 2: Mod-X (A → AV → AT) beats CLAP at zero-shot",
            ("A-AV-AT", "Mod-X"),
            clap,
            zs_text(),
        ),
        c(
            "Tab. 2: CaSSLe (A → AV → AT) beats CLAP at zero-shot",
            ("A-AV-AT", "CaSSLe"),
            clap,
            zs_text(),
        ),
        c(
            "Tab. 2: Mod-X beats Wav2CLIP at zero-shot",
            ("A-AV-AT", "Mod-X"),
            w2c,
            zs_text(),
        ),
        c(
            "Tab. 2: Mod-X beats CLAP at text→audio retrieval",
            ("A-AV-AT", "Mod-X"),
            clap,
            t2a(),
        ),
        c(
            "Tab. 2: CaSSLe beats CLAP at text→audio retrieval",
            ("A-AV-AT", "CaSSLe"),
            clap,
            t2a(),
        ),
        c(
            "Tab. 2: Mod-X keeps more audio–visual ability after AT than fine-tuning",
            ("A-AV-AT", "Mod-X"),
            ft,
            zs_image(),
        ),
        c(
            "Tab. 2: Mod-X keeps more audio–visual ability after AT than LwF",
            ("A-AV-AT", "Mod-X"),
            ("A-AV-AT", "LwF"),
            zs_image(),
        ),
        c(
            "Tab. 2: LwF protects audio–visual ability better than CaSSLe",
            ("A-AV-AT", "LwF"),
            ("A-AV-AT", "CaSSLe"),
            zs_image(),
        ),
        c(
            "Tab. 3: LwF (A → AV → AT) beats fine-tuning on the probe average",
            ("A-AV-AT", "LwF"),
            ft,
            suite(),
        ),
        c(
            "Tab. 3: CaSSLe (A → AV → AT) beats fine-tuning on the probe average",
            ("A-AV-AT", "CaSSLe"),
            ft,
            suite(),
        ),
        c(
            "Tab. 3: Mod-X (A → AV → AT) beats fine-tuning on the probe average",
            ("A-AV-AT", "Mod-X"),
            ft,
            suite(),
        ),
        c(
            "Tab. 3: LwF (A → AV → AT) beats Wav2CLIP on the probe average",
            ("A-AV-AT", "LwF"),
            w2c,
            suite(),
        ),
        c(
            "Tab. 3: Mod-X (A → AV → AT) beats Wav2CLIP on the probe average",
            ("A-AV-AT", "Mod-X"),
            w2c,
            suite(),
        ),
    ]
}

/// Each of the paper's claims as a paired difference with its 95 % t-interval over the seeds:
/// held (the interval above 0), not held (below 0: the opposite holds), or inconclusive.
fn claims_section(runs: &[(&'static str, String, u64, EvalArtifact)]) -> String {
    use accrue_eval::table::t_interval95;
    let per_seed = |(key, label): (&str, &str), column: &Column| -> BTreeMap<u64, f64> {
        runs.iter()
            .filter(|(k, m, ..)| *k == key && m == label)
            .filter_map(|(_, _, seed, a)| Some((*seed, column.value(a)?)))
            .collect()
    };
    let mut md = String::new();
    for claim in claims() {
        let x = per_seed(claim.run, &claim.column);
        let y = per_seed(claim.baseline, &claim.column);
        let Some(i) = t_interval95(&paired_differences(&x, &y)) else {
            continue;
        };
        if md.is_empty() {
            md = String::from(
                "\n**The paper's claims, tested** (×100): the run − its baseline on one score after \
                 the last stage, paired by seed; mean with its 95 % t-interval over the seeds. \
                 Held: the interval is above 0; not held: it is below 0 (the opposite holds); \
                 inconclusive: it contains 0.\n\n\
                 | Claim | Score | Run − baseline | n | Difference [95 % CI] | Verdict |\n\
                 |---|---|---|---:|---:|---|\n",
            );
        }
        let verdict = match i.verdict() {
            "above 0" => "held",
            "below 0" => "not held (opposite)",
            _ => "inconclusive",
        };
        md += &format!(
            "| {} | {} | {} ({}) − {} ({}) | {} | {} | {verdict} |\n",
            claim.text,
            claim.column.header,
            claim.run.1,
            claim.run.0,
            claim.baseline.1,
            claim.baseline.0,
            i.n,
            fmt_ci(&i),
        );
    }
    md
}

/// The positive control task by task: fine-tuning's Δ on each suite task (the average can hide
/// a task that is forgotten behind one that gains), after each stage.
fn suite_tasks_section(runs: &[(&'static str, String, u64, EvalArtifact)]) -> String {
    use accrue_eval::table::t_interval95;
    let finetuned = |seq: &str| -> Vec<&EvalArtifact> {
        runs.iter()
            .filter(|(k, m, ..)| *k == seq && m == finetune_label(seq))
            .map(|(.., a)| a)
            .collect()
    };
    let mut md = String::new();
    for seq in ["A-AT", "A-AV-AT", "A-AT-AV"] {
        let arts = finetuned(seq);
        let Some(first) = arts.first() else { continue };
        // The suite's tasks, as its average lists them.
        let Some(names) = first.stages.first().and_then(|st| {
            let avg = st.scores.iter().find(|s| s.task == tasks::SUITE_AVG)?;
            let list = avg.details.as_ref()?.get("average_of")?.as_array()?;
            Some(
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect::<Vec<_>>(),
            )
        }) else {
            continue;
        };
        if md.is_empty() {
            md = String::from(
                "\nFine-tuning (the positive control), Δ per suite task after each stage (×100, 95 % t-interval over seeds):\n\n| Sequence | after | n |",
            );
            for n in &names {
                md += &format!(" {n} |");
            }
            md += "\n|---|---|---:|";
            md += &"---:|".repeat(names.len());
            md += "\n";
        }
        for stage in first.stages.iter().skip(1).map(|s| s.stage.clone()) {
            md += &format!("| {seq} | {stage} | {} |", arts.len());
            for n in &names {
                let d: Vec<f64> = arts
                    .iter()
                    .filter_map(|a| {
                        let s0 = a.stages.first()?;
                        let s1 = a.stages.iter().find(|s| s.stage == stage)?;
                        Some(probe_value(s1, n)? - probe_value(s0, n)?)
                    })
                    .collect();
                md += &format!(
                    " {} |",
                    t_interval95(&d).as_ref().map_or("–".into(), fmt_ci)
                );
            }
            md += "\n";
        }
    }
    md
}

fn with_method(a: &EvalArtifact, method: String) -> EvalArtifact {
    let mut a = a.clone();
    a.method = method;
    a
}

fn fmt_ms(values: &[f64], scale: f64) -> String {
    match mean_std(values) {
        None => "–".into(),
        Some(m) if m.n == 1 => format!("{:+.1}", m.mean * scale),
        Some(m) => format!("{:+.1} ± {:.1}", m.mean * scale, m.std * scale),
    }
}

/// Writes artifacts, tables and plots; returns the report.
///
/// # Errors
/// Missing scores (a run that did not finish), plotting or I/O errors.
pub fn write_report(
    opts: &DemoOptions,
    settings: &Settings,
    jobs: &[Job],
    timings: &Timings,
) -> Result<DemoReport> {
    let dir = opts.out_dir.join("report");
    let art_dir = dir.join("artifacts");
    let plot_dir = dir.join("plots");
    for d in [&art_dir, &plot_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let mut built = build(opts, jobs)?;
    // The scores standing for A, AV and AT: the suite's, so the table and the artifacts agree.
    let refs = jobs
        .first()
        .map(|j| super::evaluate::suite(&j.eval).continual)
        .unwrap_or_default();
    // CL summaries per run (single-task baselines and the joint model of the same seed).
    let find = |runs: &[(&str, String, u64, EvalArtifact)], key: &str, method: &str, seed: u64| {
        runs.iter()
            .find(|(k, m, s, _)| *k == key && m == method && *s == seed)
            .map(|(_, _, _, a)| a.clone())
    };
    let snapshot = built.runs.clone();
    let mut cl_rows: BTreeMap<(&str, String), Vec<accrue_eval::continual::ContinualSummary>> =
        BTreeMap::new();
    let mut mats: BTreeMap<(&str, String), Vec<StageMatrix>> = BTreeMap::new();
    // Per run: (gain, retention) = (mean score of the sequence's contrastive tasks after the
    // last stage, suite average after the last stage − after task A).
    let mut gain_retention: BTreeMap<(&str, String), Vec<(f64, f64)>> = BTreeMap::new();
    for (key, method, seed, art) in &mut built.runs {
        let tasks_: &[&str] = match *key {
            "A-AT" => &["A", "AT"],
            "A-AV-AT" | "Wav2CLIP" => &["A", "AV", "AT"],
            "A-AT-AV" => &["A", "AT", "AV"],
            _ => continue,
        };
        let names: Vec<String> = tasks_.iter().map(|t| t.to_string()).collect();
        let r = stage_matrix(art, &names, &refs)?;
        let w2c = find(&snapshot, "A-AV-AT", Method::Finetune.label(), *seed);
        let clap = find(&snapshot, "A-AT", "CLAP = fine-tuning", *seed);
        let mt = find(&snapshot, "MT-WC", "MT-WC (joint triplets)", *seed);
        let single: Vec<Option<f64>> = tasks_
            .iter()
            .map(|t| match *t {
                "AV" => w2c.as_ref().and_then(|a| task_score(a, "AV", "AV", &refs)),
                "AT" => clap.as_ref().and_then(|a| task_score(a, "AT", "AT", &refs)),
                _ => None,
            })
            .collect();
        let joint: Vec<Option<f64>> = tasks_
            .iter()
            .map(|t| match *t {
                "A" => None,
                t => mt.as_ref().and_then(|a| task_score(a, "AV+AT", t, &refs)),
            })
            .collect();
        let summary = summarize(&r, None, Some(&single), Some(&joint))?;
        art.continual = Some(ContinualReport {
            matrix: r.clone(),
            summary: summary.clone(),
        });
        cl_rows
            .entry((*key, method.clone()))
            .or_default()
            .push(summary);
        let last = r.scores.len().saturating_sub(1);
        let gains: Vec<f64> = r
            .evaluations
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.as_str(), "AV" | "AT"))
            .filter_map(|(j, _)| {
                r.scores
                    .get(last)
                    .and_then(|row| row.get(j).copied().flatten())
            })
            .collect();
        if let (false, Some(ret)) = (gains.is_empty(), suite_delta(art)) {
            gain_retention
                .entry((*key, method.clone()))
                .or_default()
                .push((gains.iter().sum::<f64>() / gains.len() as f64, ret));
        }
        mats.entry((*key, method.clone())).or_default().push(r);
    }
    let mut artifacts = Vec::new();
    for (_, _, _, art) in &built.runs {
        art.validate()?;
        let p = art_dir.join(format!("{}.json", art.run.replace('/', "-")));
        art.write(&p)?;
        artifacts.push(p);
    }
    let of = |key: &str| -> Vec<EvalArtifact> {
        built
            .runs
            .iter()
            .filter(|(k, ..)| *k == key)
            .map(|(.., a)| a.clone())
            .collect()
    };
    let mt: Vec<EvalArtifact> = of("MT-WC");
    let mut t1 = of("A-AT");
    t1.extend(mt.iter().cloned());
    // Wav2CLIP as the paper runs it: fine-tuned on AV, then frozen with an adapter trained on
    // AT (its own run, so its text columns are measured, not left blank).
    let mut t2: Vec<EvalArtifact> = of("Wav2CLIP")
        .iter()
        .map(|a| with_method(a, "Wav2CLIP (A → AV, frozen + g^AT)".into()))
        .collect();
    t2.extend(of("A-AV-AT"));
    t2.extend(mt.iter().cloned());
    let mut t3: Vec<EvalArtifact> = of("A");
    for (key, suffix) in [
        ("A-AT", " (A→AT)"),
        ("A-AV-AT", " (A→AV→AT)"),
        ("A-AT-AV", " (A→AT→AV)"),
    ] {
        t3.extend(
            of(key)
                .iter()
                .map(|a| with_method(a, format!("{}{suffix}", a.method))),
        );
    }
    t3.extend(mt.iter().cloned());
    t3.extend(of("Joint"));

    let mut md = String::from(
        "# InstrumentAVT-mini: continual multi-modal pre-training, the paper's grid in miniature\n\n",
    );
    md += &format!(
        "Profile `{:?}`, seeds {:?}, encoder `{}` (head hidden {}), epochs A/AV/AT {:?}, batch {}, \
         lr A/AV/AT {:?}, λ = {}; backend `{}`.\n\n",
        opts.profile,
        opts.seeds,
        settings.encoder,
        settings.head_hidden,
        settings.epochs,
        settings.batch_size,
        settings.lr,
        settings.lambda,
        opts.backend
    );
    if opts.seeds.len() < DOCUMENTED_SEEDS {
        md += &format!(
            "**{} seed(s)**: fewer than the {DOCUMENTED_SEEDS} of the documented run \
             (docs/results.md, `--seeds {DOCUMENTED_SEEDS}`). The 95 % intervals below are wide at \
             this n (Student t with n − 1 degrees of freedom), so an *inconclusive* here is no \
             evidence either way; read the positive control and the claims from ≥ \
             {DOCUMENTED_SEEDS} seeds.\n\n",
            opts.seeds.len()
        );
    }
    md += &render_markdown(&table1(), &t1);
    md += "\n";
    md += &render_markdown(&table2(), &t2);
    md += "\n";
    md += &render_markdown(&table3(), &t3);
    md += &suite_section(&built.runs);
    md += &claims_section(&built.runs);
    md += "\n**Continual-learning metrics** (×100; mean ± std over seeds). ";
    md += TASK_SCORES;
    md += " BWT/ACC per GEM; FWT = R(i,i) − single-task baseline (Wav2CLIP for AV, CLAP for AT); \
           forgetting per Chaudhry; intransigence against MT-WC.\n\n\
           | Sequence | Method | n | ACC | BWT | FWT (vs single-task) | Forgetting | A after last | AV after AT |\n\
           |---|---|---:|---:|---:|---:|---:|---:|---:|\n";
    let order = |m: &str| {
        [
            "CLAP = fine-tuning",
            "Fine-tuning",
            "LwF",
            "CaSSLe",
            "Mod-X",
        ]
        .iter()
        .position(|x| *x == m)
        .unwrap_or(9)
    };
    let mut keys: Vec<&(&str, String)> = cl_rows.keys().collect();
    keys.sort_by_key(|(k, m)| (*k != "A-AT", order(m)));
    for key in keys {
        let rows = &cl_rows[key];
        let ms = &mats[key];
        let pick = |f: &dyn Fn(&accrue_eval::continual::ContinualSummary) -> Option<f64>| {
            rows.iter().filter_map(f).collect::<Vec<f64>>()
        };
        let last = |j: usize| -> Vec<f64> {
            ms.iter()
                .filter_map(|m| m.scores.last().and_then(|r| r.get(j).copied().flatten()))
                .collect()
        };
        let av_after = if key.0 == "A-AV-AT" || key.0 == "Wav2CLIP" {
            fmt_ms(&last(1), 100.0).replace('+', "")
        } else {
            "–".into()
        };
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            key.0,
            key.1,
            rows.len(),
            fmt_ms(&pick(&|s| s.acc), 100.0).replace('+', ""),
            fmt_ms(&pick(&|s| s.bwt), 100.0),
            fmt_ms(&pick(&|s| s.fwt_single_task), 100.0),
            fmt_ms(&pick(&|s| s.forgetting), 100.0).replace('+', ""),
            fmt_ms(&last(0), 100.0).replace('+', ""),
            av_after,
        );
    }

    // Mean matrices (A → AV → AT) and plots.
    let mut plots = Vec::new();
    md += "\n**Stage × task matrices, A → AV → AT** (mean over seeds, ×100; rows: after stage; columns: task score)\n\n";
    let mut bars = Vec::new();
    for ((key, method), ms) in &mats {
        if *key != "A-AV-AT" {
            continue;
        }
        let first = &ms[0];
        let mean: Vec<Vec<Option<f64>>> = (0..first.stages.len())
            .map(|i| {
                (0..first.evaluations.len())
                    .map(|j| {
                        let v: Vec<f64> = ms.iter().filter_map(|m| m.scores[i][j]).collect();
                        mean_std(&v).map(|m| m.mean)
                    })
                    .collect()
            })
            .collect();
        let m = StageMatrix::new(
            first.stages.clone(),
            first.evaluations.clone(),
            mean.clone(),
        )?;
        md += &format!("{method}: ");
        for (i, row) in mean.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .map(|v| v.map_or("–".into(), |v| format!("{:.1}", v * 100.0)))
                .collect();
            md += &format!("after {} [{}]; ", first.stages[i], cells.join(", "));
        }
        md += "\n\n";
        let slug = method.to_ascii_lowercase().replace([' ', '='], "-");
        let p = plot_dir.join(format!("matrix-a-av-at-{slug}.png"));
        plot_stage_heatmap(&m, &format!("A-AV-AT {method}: stage x task (x100)"), &p)?;
        plots.push(p);
        let rows = &cl_rows[&(*key, method.clone())];
        bars.push(BarGroup {
            name: method.clone(),
            values: (0..2)
                .map(|j| {
                    let v: Vec<f64> = rows
                        .iter()
                        .filter_map(|s| s.forgetting_per_task.get(j).copied().flatten())
                        .collect();
                    mean_std(&v).map(|m| m.mean)
                })
                .collect(),
        });
    }
    if !bars.is_empty() {
        let p = plot_dir.join("forgetting-a-av-at.png");
        plot_forgetting_bars(
            &["A (probe)".into(), "AV (image ZS)".into()],
            &bars,
            "Forgetting after A-AV-AT (x100, mean over seeds)",
            &p,
        )?;
        plots.push(p);
    }
    // Retention versus gain, one plot per sequence: does a method keep more of what task A
    // taught (y) without learning less of the new tasks (x)?
    for seq in ["A-AT", "A-AV-AT", "A-AT-AV"] {
        let interval = |v: &[f64]| -> Option<(f64, f64, f64)> {
            match v {
                [] => None,
                [x] => Some((*x, *x, *x)),
                _ => accrue_eval::table::t_interval95(v).map(|i| (i.mean, i.lo, i.hi)),
            }
        };
        let points: Vec<PointCi> = gain_retention
            .iter()
            .filter(|((k, _), _)| *k == seq)
            .filter_map(|((_, method), runs)| {
                let (g, r): (Vec<f64>, Vec<f64>) = runs.iter().copied().unzip();
                Some(PointCi {
                    name: format!("{method} (n = {})", runs.len()),
                    x: interval(&g)?,
                    y: interval(&r)?,
                })
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let p = plot_dir.join(format!("retention-gain-{}.png", seq.to_ascii_lowercase()));
        plot_retention_gain(
            &points,
            &format!("{seq}: retention vs gain (x100, 95 % t-intervals over seeds)"),
            "gain: new tasks' scores after the last stage (mean of AV, AT)",
            "retention: suite avg after last stage - after A",
            &p,
        )?;
        plots.push(p);
    }
    md += "
Retention versus gain per sequence: `plots/retention-gain-*.png` (x: the new tasks' \
           scores after the last stage, the mean of the AV and AT columns of the CL table; y: \
           suite average after the last stage − after task A; 95 % t-intervals over seeds).\n\n";
    let mut curves: Vec<Series> = Vec::new();
    if let Some(seed) = opts.seeds.first() {
        for job in jobs
            .iter()
            .filter(|j| j.seed == *seed && j.sequence == Sequence::AAvAt)
        {
            let log = accrue_continual::RunDir::new(&job.dir).metrics();
            for (k, mut s) in accrue_suite::report::loss_curves(&log)
                .into_iter()
                .enumerate()
            {
                let stage = job.stages.get(k).map_or("?", |(n, _)| n.as_str());
                s.name = format!("{} {stage}", job.method.map_or("", |m| m.label()));
                curves.push(s);
            }
        }
    }
    if !curves.is_empty() {
        let p = plot_dir.join("training-curves-a-av-at.png");
        plot_training_curves(&curves, "Training loss, A-AV-AT (first seed)", &p)?;
        plots.push(p);
    }
    md += "Plots: ";
    md += &plots
        .iter()
        .map(|p| format!("`{}`", p.strip_prefix(&opts.out_dir).unwrap_or(p).display()))
        .collect::<Vec<_>>()
        .join(", ");
    md += &format!(
        "\n\nTimings (s): data {:.1}, tower embeddings {:.1}, grid (train + eval) {:.1}.\n",
        timings.data, timings.supervision, timings.grid
    );
    let path = opts.out_dir.join("report.md");
    accrue_core::atomic::write(&path, md.as_bytes())?;
    Ok(DemoReport {
        markdown: md,
        path,
        artifacts,
        plots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use accrue_eval::report::{Score, StageEvaluation};

    /// A run whose last stage has one zero-shot (text) score.
    fn run(
        key: &'static str,
        method: &str,
        seed: u64,
        zs: f64,
    ) -> (&'static str, String, u64, EvalArtifact) {
        let mut a = EvalArtifact::new(
            method,
            format!("seed{seed}/x"),
            Provenance::new("c", "h", seed, "flex", "f32"),
        );
        a.stages = vec![StageEvaluation {
            stage: "AT".into(),
            checkpoint: "x".into(),
            checkpoint_hash: None,
            scores: vec![Score::new(
                tasks::INSTRUMENTS,
                Protocol::ZeroShot,
                "top1_acc",
                zs,
            )],
        }];
        (key, method.into(), seed, a)
    }

    #[test]
    fn a_claim_is_a_paired_difference_with_its_verdict() {
        // LwF beats CLAP by 0.05 ± 0.01 on every seed: held. Mod-X (A → AV → AT) loses to
        // CLAP on every seed: the opposite holds. Seed 3 has no CLAP run: it is not paired.
        let mut runs = Vec::new();
        for seed in 0..3 {
            let clap = 0.70 + 0.01 * seed as f64;
            runs.push(run("A-AT", "CLAP = fine-tuning", seed, clap));
            runs.push(run("A-AT", "LwF", seed, clap + 0.05 + 0.005 * seed as f64));
            runs.push(run(
                "A-AV-AT",
                "Mod-X",
                seed,
                clap - 0.10 - 0.01 * seed as f64,
            ));
        }
        runs.push(run("A-AT", "LwF", 3, 0.0));
        let md = claims_section(&runs);
        let row = |prefix: &str| {
            md.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no row {prefix}:\n{md}"))
                .to_string()
        };
        let lwf = row("| Tab. 1: LwF beats CLAP at zero-shot");
        assert!(
            lwf.contains("| 3 | +5.5 [") && lwf.ends_with("| held |"),
            "{lwf}"
        );
        let modx = row("| Tab. 2: Mod-X (A → AV → AT) beats CLAP at zero-shot");
        assert!(modx.ends_with("| not held (opposite) |"), "{modx}");
        // Claims whose runs are missing (or have another score) are left out, not guessed.
        assert!(!md.contains("Tab. 3"), "{md}");
        assert!(claims_section(&[]).is_empty());
    }
}
