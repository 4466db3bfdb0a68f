//! Evaluating a model, a stage model and a whole run; the stage × task matrix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use accrue_continual::{ExperimentConfig, RunDir, Student};
use accrue_encoders::Preset;
use accrue_eval::continual::{StageMatrix, summarize};
use accrue_eval::report::{
    ContinualReport, EvalArtifact, Provenance, Score, StageEvaluation, sha256_file, sha256_tag,
};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::embedding::Ctx;
use super::schema::{EvalSuite, ScoreRef};
use super::{probe, retrieval, zero_shot};
use crate::error::{Error, Result};
use crate::provenance::git_commit;

/// The stage × task matrix of an artifact: row `i` is its stage `i`, column `j` the score
/// `refs[tasks[j]]` after that stage (`None` when absent).
///
/// # Errors
/// A matrix that is not square (one task per stage).
pub fn stage_matrix(
    art: &EvalArtifact,
    tasks: &[String],
    refs: &BTreeMap<String, ScoreRef>,
) -> Result<StageMatrix> {
    let scores = art
        .stages
        .iter()
        .map(|st| {
            tasks
                .iter()
                .map(|k| refs.get(k).and_then(|r| r.value_in(&st.scores)))
                .collect()
        })
        .collect();
    Ok(StageMatrix::new(
        art.stages.iter().map(|s| s.stage.clone()).collect(),
        tasks.to_vec(),
        scores,
    )?)
}

/// Every score of `suite` for one loaded model. Tasks needing a head the model does not have
/// yet are skipped (e.g. retrieval before the first AT stage). `model_sha256` identifies the
/// model for the suite's embedding cache (no caching without it).
///
/// # Errors
/// Unreadable data or tables, missing embeddings, evaluation errors.
pub fn evaluate_model(
    suite: &EvalSuite,
    student: &Student,
    model_sha256: Option<&str>,
    sample_rate: u32,
    device: &Device,
) -> Result<Vec<Score>> {
    evaluate_model_at(suite, student, model_sha256, sample_rate, None, device)
}

/// As [`evaluate_model`] for a model whose latest contrastive stage trained `latest` (what
/// [`crate::suite::HeadChoice::Latest`] uses).
///
/// # Errors
/// As [`evaluate_model`].
pub fn evaluate_model_at(
    suite: &EvalSuite,
    student: &Student,
    model_sha256: Option<&str>,
    sample_rate: u32,
    latest: Option<accrue_continual::TaskKind>,
    device: &Device,
) -> Result<Vec<Score>> {
    let mut ctx = Ctx::new(
        student,
        suite
            .cache_dir
            .clone()
            .zip(model_sha256.map(str::to_string)),
        device.clone().inner(),
        sample_rate,
    )
    .with_heads(suite.head_choice, latest);
    let mut scores = Vec::new();
    for t in &suite.probe {
        scores.extend(probe::scores(&mut ctx, t)?);
    }
    for t in &suite.kfold_probe {
        scores.extend(probe::kfold_scores(&mut ctx, t)?);
    }
    for t in &suite.zero_shot {
        scores.extend(zero_shot::score(&mut ctx, t)?);
    }
    for t in &suite.retrieval {
        scores.extend(retrieval::scores(&mut ctx, t)?);
    }
    for a in &suite.average {
        match a.score(&scores) {
            Some(s) => scores.push(s),
            None => tracing::warn!(average = %a.name, "not every averaged task was scored"),
        }
    }
    Ok(scores)
}

/// The scores of one stage model, with timing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageScores {
    /// The model file.
    pub model: PathBuf,
    /// Every score.
    pub scores: Vec<Score>,
    /// Evaluation time, seconds.
    pub seconds: f64,
    /// `sha256:<hex>` of the suite the scores come from (its JSON), so that a cache of scores
    /// is recognised as stale when the suite changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
}

impl EvalSuite {
    /// `sha256:<hex>` of the suite's JSON form: its identity for score caches.
    pub fn fingerprint(&self) -> String {
        accrue_eval::report::sha256_tag(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }
}

/// Loads and evaluates one stage model.
///
/// # Errors
/// As [`super::embedding::load_model`] and [`evaluate_model`].
pub fn evaluate_stage_model(
    suite: &EvalSuite,
    preset: Preset,
    num_classes: Option<usize>,
    model: &Path,
    device: &Device,
) -> Result<StageScores> {
    evaluate_stage_model_at(suite, preset, num_classes, model, None, device)
}

/// As [`evaluate_stage_model`] for a model whose latest contrastive stage trained `latest`.
///
/// # Errors
/// As [`evaluate_stage_model`].
pub fn evaluate_stage_model_at(
    suite: &EvalSuite,
    preset: Preset,
    num_classes: Option<usize>,
    model: &Path,
    latest: Option<accrue_continual::TaskKind>,
    device: &Device,
) -> Result<StageScores> {
    let spec = accrue_continual::config::EncoderSpec::preset(preset, num_classes);
    evaluate_stage_model_spec(suite, &spec, model, latest, device)
}

/// As [`evaluate_stage_model_at`] with an experiment's whole encoder spec: the model runs with
/// the front end (sample rate, mel settings) it was trained with.
///
/// # Errors
/// As [`evaluate_stage_model`].
pub fn evaluate_stage_model_spec(
    suite: &EvalSuite,
    spec: &accrue_continual::config::EncoderSpec,
    model: &Path,
    latest: Option<accrue_continual::TaskKind>,
    device: &Device,
) -> Result<StageScores> {
    let t0 = Instant::now();
    let student = super::embedding::load_model_spec(spec, model, device)?;
    let sample_rate = spec.config()?.front_end().sample_rate;
    let hash = if suite.cache_dir.is_some() {
        Some(sha256_file(model)?)
    } else {
        None
    };
    let scores = evaluate_model_at(
        suite,
        &student,
        hash.as_deref(),
        sample_rate,
        latest,
        device,
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    tracing::info!(model = %model.display(), seconds, "stage model evaluated");
    Ok(StageScores {
        model: model.to_path_buf(),
        scores,
        seconds,
        suite: Some(suite.fingerprint()),
    })
}

/// `accrue eval`: evaluates every stage model of a run on `suite` and returns the artifact
/// (stages in training order). `run` is the experiment file, or a directory holding it as
/// `experiment.toml`. With `partial`, stages without a model yet (a run still training) are
/// skipped and named in a warning; otherwise they are an error.
///
/// # Errors
/// No `experiment.toml` in `run_dir`; no stage model at all, or (without `partial`) any stage
/// model missing, each named, before anything is evaluated; or as [`evaluate_stage_model`].
pub fn evaluate_run(
    run_dir: &Path,
    suite: &EvalSuite,
    method: Option<&str>,
    backend: &str,
    partial: bool,
    device: &Device,
) -> Result<EvalArtifact> {
    let exp_path = if run_dir.is_dir() {
        RunDir::new(run_dir).experiment()
    } else {
        run_dir.to_path_buf()
    };
    // A run trained with a user's own method is scored too: its kind need not be known here.
    let exp = ExperimentConfig::load_any_method(&exp_path)?;
    let run = RunDir::new(&exp.output_dir);
    let models: Vec<PathBuf> = exp
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| run.stage_model(i, &stage.name))
        .collect();
    let missing: Vec<String> = models
        .iter()
        .filter(|m| !m.is_file())
        .map(|m| m.display().to_string())
        .collect();
    if missing.len() == models.len() || (!partial && !missing.is_empty()) {
        return Err(Error::Missing(format!(
            "{}: no stage model {} (train the run first{})",
            exp_path.display(),
            missing.join(", "),
            if partial {
                ""
            } else {
                ", or evaluate what exists with --partial"
            }
        )));
    }
    let (commit, dirty) = git_commit();
    let bytes = std::fs::read(&exp_path).map_err(|e| Error::io(&exp_path, e))?;
    let seed = exp.stages.first().map_or(0, |s| s.seed);
    let mut prov = Provenance::new(commit, sha256_tag(&bytes), seed, backend, "f32");
    prov.git_dirty = dirty;
    for stage in &exp.stages {
        for t in &stage.tasks {
            if let Some(table) = &t.supervision
                && let Ok(h) = sha256_file(table)
            {
                prov.frozen_towers
                    .insert(format!("{} table {}", t.kind, table.display()), h);
            }
            if let Ok(h) = sha256_file(&t.manifest) {
                prov.datasets.insert(t.manifest.display().to_string(), h);
            }
        }
    }
    let method = method.map_or_else(
        || {
            exp.stages.last().map_or("unknown".into(), |s| {
                accrue_continual::Registry::builtin()
                    .build(&s.strategy)
                    .map_or_else(|_| s.strategy.kind.clone(), |m| m.method_name())
            })
        },
        str::to_string,
    );
    let suite = &with_head_classes(suite, &exp)?;
    let mut art = EvalArtifact::new(method, exp.name.clone(), prov);
    // The initial model is the row of the task it was trained on (the paper's task A), so
    // that BWT and forgetting cover that task: evaluated when it is one of accrue's own
    // safetensors files (a PANNs `.pth`: `accrue import` it first).
    if let (Some(kind), Some(path)) = (exp.encoder.trained_on, exp.encoder.checkpoint.as_ref()) {
        if path.extension().is_some_and(|e| e == "safetensors") && path.is_file() {
            let s = evaluate_stage_model_spec(suite, &exp.encoder, path, None, device)?;
            art.stages.push(StageEvaluation {
                stage: initial_stage_name(kind),
                checkpoint: path.display().to_string(),
                checkpoint_hash: sha256_file(path).ok(),
                scores: s.scores,
            });
        } else {
            tracing::warn!(checkpoint = %path.display(), "the initial model is not an accrue safetensors file: its row of the CL matrix is left out (convert it with `accrue import`)");
        }
    }
    for (stage, model) in exp.stages.iter().zip(models) {
        if !model.is_file() {
            tracing::warn!(stage = stage.name, model = %model.display(), "no stage model yet; skipped");
            continue;
        }
        // The latest contrastive task trained up to this stage (for `head_choice = "latest"`).
        let latest = exp
            .stages
            .iter()
            .take_while(|s| s.name != stage.name)
            .chain(std::iter::once(stage))
            .flat_map(|s| s.tasks.iter().map(|t| t.kind))
            .filter(|k| k.is_contrastive())
            .last();
        let s = evaluate_stage_model_spec(suite, &exp.encoder, &model, latest, device)?;
        art.stages.push(StageEvaluation {
            stage: stage.name.clone(),
            checkpoint: model.display().to_string(),
            checkpoint_hash: sha256_file(&model).ok(),
            scores: s.scores,
        });
    }
    if !suite.continual.is_empty() {
        art.continual = continual_section(&art, &exp, suite)?;
    }
    art.validate()?;
    Ok(art)
}

/// The suite with each own-head probe's `head_classes` filled, where not given, from the
/// run's task-A data (a stage's task A, else `[encoder.trained_on_data]`): its `classes` list,
/// or else the manifest's sorted class names — as the trainer numbers them.
fn with_head_classes(suite: &EvalSuite, exp: &ExperimentConfig) -> Result<EvalSuite> {
    let mut suite = suite.clone();
    let wanted = |p: &crate::suite::schema::ProbeTask| p.own_head && p.head_classes.is_none();
    if !suite.probe.iter().any(wanted) {
        return Ok(suite);
    }
    let a_task = exp
        .stages
        .iter()
        .flat_map(|s| &s.tasks)
        .find(|t| t.kind == accrue_continual::TaskKind::A)
        .or(exp
            .encoder
            .trained_on_data
            .as_ref()
            .filter(|t| t.kind == accrue_continual::TaskKind::A));
    if let Some(t) = a_task {
        let classes = t.read_manifest(&t.manifest)?.classes;
        for p in suite.probe.iter_mut().filter(|p| wanted(p)) {
            p.head_classes = Some(classes.clone());
        }
    }
    Ok(suite)
}

/// The name of the initial model's row: `"<task> (initial)"`.
pub fn initial_stage_name(kind: accrue_continual::TaskKind) -> String {
    format!("{kind} (initial)")
}

/// The stage × task matrix of a run: task `j` is stage `j`'s (first) task kind, scored by the
/// suite's [`ScoreRef`] for that kind; a missing score is `None`.
fn continual_section(
    art: &EvalArtifact,
    exp: &ExperimentConfig,
    suite: &EvalSuite,
) -> Result<Option<ContinualReport>> {
    let initial = exp
        .encoder
        .trained_on
        .filter(|k| art.stages.iter().any(|e| e.stage == initial_stage_name(*k)))
        .map(|k| k.to_string());
    let kinds: Vec<String> = initial
        .into_iter()
        .chain(
            exp.stages
                .iter()
                .filter(|s| art.stages.iter().any(|e| e.stage == s.name))
                .filter_map(|s| s.tasks.first().map(|t| t.kind.to_string())),
        )
        .collect();
    if kinds.len() < 2 || kinds.iter().any(|k| !suite.continual.contains_key(k)) {
        return Ok(None);
    }
    let matrix = stage_matrix(art, &kinds, &suite.continual)?;
    let summary = summarize(&matrix, None, None, None)?;
    Ok(Some(ContinualReport { matrix, summary }))
}
