//! The suite file: tasks over manifests, the scores standing for tasks in the CL matrix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use accrue_continual::TaskKind;
use accrue_data::readers::manifest::{self, ManifestOptions};
use accrue_data::{Dataset, Split};
use accrue_eval::report::{Protocol, Score};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A manifest, optionally restricted to one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// accrue-data JSONL/CSV manifest.
    pub manifest: PathBuf,
    /// Keep only this split (`train`, `valid`, `test` or a dataset's own name for them).
    #[serde(default)]
    pub split: Option<String>,
    /// Clips per forward pass. Only clips of one length share a pass (each clip is processed
    /// as on its own, zero-padded only to 1 s), so this changes speed, not embeddings; a clip
    /// that several parts of a suite share is embedded once per model.
    #[serde(default = "one")]
    pub batch_size: usize,
}

fn one() -> usize {
    1
}

impl Part {
    /// A whole manifest.
    pub fn all(manifest: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            split: None,
            batch_size: 1,
        }
    }

    /// One split of a manifest.
    pub fn split(manifest: impl Into<PathBuf>, split: &str) -> Self {
        Self {
            manifest: manifest.into(),
            split: Some(split.to_string()),
            batch_size: 1,
        }
    }

    /// The same clips embedded up to `n` at a time (clips of one length share a pass).
    pub fn batched(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Reads the clips.
    ///
    /// # Errors
    /// Unreadable manifest or an unknown split name.
    pub fn read(&self) -> Result<Dataset> {
        let ds = manifest::read(&self.manifest, &ManifestOptions::default())?;
        Ok(match &self.split {
            Some(name) => ds.split(Split::parse(name).ok_or_else(|| {
                Error::Other(format!(
                    "{}: unknown split `{name}`",
                    self.manifest.display()
                ))
            })?),
            None => ds,
        })
    }
}

/// An extra test set of a probe task, scored under its own name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPart {
    /// Task name in the scores.
    pub name: String,
    /// The clips.
    #[serde(flatten)]
    pub part: Part,
}

fn default_probe_epochs() -> usize {
    500
}

/// A HEAR linear probe on the frozen encoder embedding over fixed train / valid / test parts:
/// single-label (top-1 accuracy) or, when the training clips carry several labels, multi-label
/// (sigmoid/BCE, macro mAP).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTask {
    /// Task name in the scores.
    pub name: String,
    /// Training clips.
    pub train: Part,
    /// Validation clips (grid selection, early stopping).
    pub valid: Part,
    /// Test clips.
    pub test: Part,
    /// Further test sets scored with the selected probe (e.g. a domain shift).
    #[serde(default)]
    pub extra_tests: Vec<NamedPart>,
    /// Maximum epochs per grid point (HEAR: 500).
    #[serde(default = "default_probe_epochs")]
    pub max_epochs: usize,
    /// Also score the model's own classifier g^A on `test`, when its class list
    /// (`head_classes`) is the task's (the `train` manifest's classes, in order).
    #[serde(default)]
    pub own_head: bool,
    /// The class names of the model's g^A, in index order. `accrue eval` fills it from the
    /// run's task-A manifest (sorted names, as the trainer numbers them) when it is not given.
    /// Without it, or when it differs from the task's, no own-head score is reported.
    #[serde(default)]
    pub head_classes: Option<Vec<String>>,
}

/// A HEAR k-fold linear probe over the folds of one manifest (ESC-50, US8K, …): split `i`
/// tests fold `i`, validates on the next fold and trains on the rest; the score is the mean
/// over folds (top-1 accuracy, or mAP for a multi-label manifest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KFoldProbeTask {
    /// Task name in the scores.
    pub name: String,
    /// The clips, each with its fold (at least 3 folds).
    pub data: Part,
    /// Maximum epochs per grid point (HEAR: 500).
    #[serde(default = "default_probe_epochs")]
    pub max_epochs: usize,
}

/// Zero-shot classification through a contrastive head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotTask {
    /// Task name in the scores.
    pub name: String,
    /// `AT`: class prompts through the text table; `AV`: class images through the image table.
    pub head: TaskKind,
    /// The labelled clips.
    pub data: Part,
    /// Supervision table holding the prompt (AT) or image (AV) embeddings.
    pub table: PathBuf,
    /// Candidate classes in order (default: the manifest's classes).
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Prompt templates with `{label}` (AT; ensembled).
    #[serde(default)]
    pub templates: Vec<String>,
    /// Class name → image files (AV; their embeddings are averaged).
    #[serde(default)]
    pub class_images: BTreeMap<String, Vec<PathBuf>>,
}

/// Cross-modal retrieval, both directions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalTask {
    /// Task name in the scores.
    pub name: String,
    /// `AT`: every caption of every clip (Clotho rule); `AV`: each clip's images, averaged as
    /// in training.
    pub head: TaskKind,
    /// The clips.
    pub data: Part,
    /// Supervision table of the captions / images.
    pub table: PathBuf,
    /// Count a retrieved item as correct when it duplicates a positive: a clip with the same
    /// audio (sha256 of the file), or a caption (AT) / image set (AV) identical to one of the
    /// clip's own. The rule for sets with known duplicates (Tux Paint, docs/benchmark-data.md);
    /// off for Clotho-style benchmarks, whose protocol counts only a clip's own captions.
    #[serde(default)]
    pub duplicates: bool,
}

/// The score that stands for a task in the stage × task matrix (method-spec §6.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRef {
    /// Protocol of the score.
    pub protocol: Protocol,
    /// Task name of the score.
    pub task: String,
    /// Metric (`top1_acc`, `R@10`, …).
    pub metric: String,
    /// Retrieval direction, if any.
    #[serde(default)]
    pub direction: Option<String>,
}

impl ScoreRef {
    /// The value of the matching score among `scores`.
    pub fn value_in(&self, scores: &[Score]) -> Option<f64> {
        scores
            .iter()
            .find(|s| {
                s.matches(
                    self.protocol,
                    &self.task,
                    &self.metric,
                    self.direction.as_deref(),
                )
            })
            .map(|s| s.value)
    }
}

/// An evaluation suite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSuite {
    /// Scores standing for the tasks `A`, `AV`, `AT` in the continual-learning matrix
    /// (e.g. `[continual.AT] protocol = "retrieval", task = "Clotho", metric = "R@10",
    /// direction = "T2A"`). With them, `accrue eval` adds the matrix, BWT, ACC and forgetting.
    #[serde(default)]
    pub continual: BTreeMap<String, ScoreRef>,
    /// Keep each model's embeddings of each dataset here (keyed by the sha256 of the model
    /// file and of the manifest, the split and the batch size), so that evaluating the same
    /// model again — another suite, another probe grid — never re-runs it. Default: none.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Linear-probe tasks over fixed parts.
    #[serde(default)]
    pub probe: Vec<ProbeTask>,
    /// Linear-probe tasks under HEAR's k-fold protocol.
    #[serde(default)]
    pub kfold_probe: Vec<KFoldProbeTask>,
    /// Zero-shot tasks.
    #[serde(default)]
    pub zero_shot: Vec<ZeroShotTask>,
    /// Retrieval tasks.
    #[serde(default)]
    pub retrieval: Vec<RetrievalTask>,
    /// Which head scores an earlier modality after a later stage (default: the model's own).
    #[serde(default)]
    pub head_choice: HeadChoice,
    /// Averages over tasks (HEAR's and the paper's Table 3 "Avg."): each adds one score, the
    /// mean of the named tasks' scores of one protocol and metric (no direction), when every
    /// one of them was computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub average: Vec<AverageTask>,
}

/// An average over a suite's tasks, reported as a score of its own
/// (`[[average]] name = "Avg.", protocol = "linear_probe", metric = "top1_acc", tasks = [...]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AverageTask {
    /// The average's task name in the scores.
    pub name: String,
    /// Protocol of the averaged scores (and of the average).
    pub protocol: Protocol,
    /// Metric of the averaged scores (and of the average).
    pub metric: String,
    /// The averaged tasks (at least one).
    pub tasks: Vec<String>,
}

impl AverageTask {
    /// The average of `scores` over [`AverageTask::tasks`], `None` when one is missing.
    pub fn score(&self, scores: &[Score]) -> Option<Score> {
        let values: Vec<f64> = self
            .tasks
            .iter()
            .map(|t| {
                scores
                    .iter()
                    .find(|s| {
                        s.task == *t
                            && s.protocol == self.protocol
                            && s.metric == self.metric
                            && s.direction.is_none()
                    })
                    .map(|s| s.value)
            })
            .collect::<Option<_>>()?;
        if values.is_empty() {
            return None;
        }
        let mut s = Score::new(
            &self.name,
            self.protocol,
            &self.metric,
            values.iter().sum::<f64>() / values.len() as f64,
        );
        s.n = Some(values.len());
        s.details = Some(serde_json::json!({ "average_of": self.tasks, "values": values }));
        Some(s)
    }
}

/// Which projection head maps audio for a zero-shot or retrieval task of one modality when a
/// later stage trained another (method-spec §10 item 10). The head used is reported in each
/// score (`head`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadChoice {
    /// The task's own head (g^AV for images, g^AT for text), however long ago it was trained.
    /// A stale head favours methods that keep it working (distillation through it, as LwF's).
    #[default]
    Own,
    /// The head of the latest contrastive stage when its output lives in the task's supervision
    /// space (the same width: towers sharing a space, as CLIP's image and text towers);
    /// otherwise the own head.
    Latest,
}

impl EvalSuite {
    /// Reads a suite (TOML, or JSON by extension); relative paths are relative to its folder.
    ///
    /// # Errors
    /// Unreadable or malformed file (unknown keys are rejected).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut suite: Self = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?
        } else {
            toml::from_str(&text).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for t in &mut suite.probe {
            for p in [&mut t.train, &mut t.valid, &mut t.test] {
                fix(&mut p.manifest);
            }
            for e in &mut t.extra_tests {
                fix(&mut e.part.manifest);
            }
        }
        for t in &mut suite.kfold_probe {
            fix(&mut t.data.manifest);
        }
        for t in &mut suite.zero_shot {
            fix(&mut t.data.manifest);
            fix(&mut t.table);
            for imgs in t.class_images.values_mut() {
                imgs.iter_mut().for_each(fix);
            }
        }
        for t in &mut suite.retrieval {
            fix(&mut t.data.manifest);
            fix(&mut t.table);
        }
        if let Some(c) = suite.cache_dir.as_mut() {
            fix(c);
        }
        Ok(suite)
    }
}
