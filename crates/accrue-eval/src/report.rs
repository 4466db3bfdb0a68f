//! The evaluation artifact: every score of a run plus its provenance, as one JSON document.
//!
//! The document's schema is `schema/eval-artifact.schema.json` (JSON Schema draft 2020-12) in
//! this crate; [`SCHEMA_VERSION`] names its version and is written into every artifact. A test
//! validates a produced artifact against that file.
//!
//! Scores are a flat list of [`Score`] records keyed by `(task, metric, direction)` per stage
//! so that tables ([`crate::table`]) and plots ([`crate::plot`]) can select them without knowing
//! every protocol's result type; protocol-specific detail (grid results, per-class AP) may ride
//! along in [`Score::details`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::continual::{ContinualSummary, StageMatrix};
use crate::error::{EvalError, Result};
use crate::retrieval::CrossModalRetrieval;

/// Version tag of the artifact format (bumped on incompatible changes).
pub const SCHEMA_VERSION: &str = "accrue-eval-artifact/1";

/// Where the numbers come from: enough to reproduce them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `git rev-parse HEAD` of the code that produced the checkpoints and scores.
    pub git_commit: String,
    /// Whether the working tree had uncommitted changes.
    pub git_dirty: bool,
    /// `sha256:<hex>` of the run's canonical configuration text.
    pub config_hash: String,
    /// The run's seed.
    pub seed: u64,
    /// Burn backend that ran the evaluation (e.g. `flex`, `tch-cpu`, `cuda`).
    pub backend: String,
    /// Float dtype of the evaluation (e.g. `f32`).
    pub dtype: String,
    /// Identity of every frozen tower: name → identity string (checkpoint name and hash).
    pub frozen_towers: BTreeMap<String, String>,
    /// Dataset manifest hashes: dataset/split name → `sha256:<hex>`.
    pub datasets: BTreeMap<String, String>,
    /// Version of this crate.
    pub accrue_eval_version: String,
}

impl Provenance {
    /// A provenance record with this crate's version filled in and empty maps.
    pub fn new(
        git_commit: impl Into<String>,
        config_hash: impl Into<String>,
        seed: u64,
        backend: impl Into<String>,
        dtype: impl Into<String>,
    ) -> Self {
        Self {
            git_commit: git_commit.into(),
            git_dirty: false,
            config_hash: config_hash.into(),
            seed,
            backend: backend.into(),
            dtype: dtype.into(),
            frozen_towers: BTreeMap::new(),
            datasets: BTreeMap::new(),
            accrue_eval_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

pub use accrue_core::hash::sha256_tag;

/// `sha256:<hex>` of a file's contents.
///
/// # Errors
/// [`EvalError`] naming the unreadable file.
pub fn sha256_file(path: &Path) -> Result<String> {
    accrue_core::hash::sha256_file_tag(path).map_err(EvalError::from)
}

/// The evaluation protocol a score comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HEAR linear (or MLP) probe on frozen embeddings.
    LinearProbe,
    /// Zero-shot classification through a text tower.
    ZeroShot,
    /// Cross-modal retrieval.
    Retrieval,
    /// The model's own classification head (e.g. g^A on AudioSet).
    OwnHead,
}

/// One number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The evaluation dataset / task, e.g. `ESC-50`, `Clotho`, `AudioSet`.
    pub task: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The metric, e.g. `top1_acc`, `mAP`, `R@10`, `mAP@10`.
    pub metric: String,
    /// Retrieval direction (`A2T`, `T2A`, `A2I`, `I2A`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The audio head used (`g_AV`, `g_AT`, `g_A`), when relevant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// The value (fractions in `[0, 1]` for accuracies, mAP and recalls).
    pub value: f64,
    /// Standard deviation over folds, when the protocol has folds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Number of evaluated examples / queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// Protocol-specific detail (grid, per-class scores …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Score {
    /// A score without direction, head, std, count or details.
    pub fn new(
        task: impl Into<String>,
        protocol: Protocol,
        metric: impl Into<String>,
        value: f64,
    ) -> Self {
        Self {
            task: task.into(),
            protocol,
            metric: metric.into(),
            direction: None,
            head: None,
            value,
            std: None,
            n: None,
            details: None,
        }
    }

    /// Sets the direction.
    pub fn with_direction(mut self, direction: impl Into<String>) -> Self {
        self.direction = Some(direction.into());
        self
    }

    /// Sets the head.
    pub fn with_head(mut self, head: impl Into<String>) -> Self {
        self.head = Some(head.into());
        self
    }

    /// Whether this score matches a selector (`direction: None` matches only undirected scores).
    pub fn matches(
        &self,
        protocol: Protocol,
        task: &str,
        metric: &str,
        direction: Option<&str>,
    ) -> bool {
        self.protocol == protocol
            && self.task == task
            && self.metric == metric
            && self.direction.as_deref() == direction
    }
}

/// The R@1/5/10 and mAP@10 scores of both retrieval directions as [`Score`]s.
/// `audio_to_other`/`other_to_audio` name the directions (e.g. `A2T`, `T2A`).
pub fn retrieval_scores(
    task: &str,
    r: &CrossModalRetrieval,
    audio_to_other: &str,
    other_to_audio: &str,
    head: Option<&str>,
) -> Vec<Score> {
    let mut out = Vec::new();
    for (dir, m) in [
        (audio_to_other, &r.audio_to_other),
        (other_to_audio, &r.other_to_audio),
    ] {
        for (metric, v) in [
            ("R@1", m.r_at_1),
            ("R@5", m.r_at_5),
            ("R@10", m.r_at_10),
            ("mAP@10", m.map_at_10),
        ] {
            let mut s = Score::new(task, Protocol::Retrieval, metric, v).with_direction(dir);
            s.head = head.map(str::to_string);
            s.n = Some(m.n_queries);
            out.push(s);
        }
    }
    out
}

/// The scores of one stage checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageEvaluation {
    /// Stage name (`A`, `AV`, `AT`).
    pub stage: String,
    /// The checkpoint evaluated (path relative to the experiment directory).
    pub checkpoint: String,
    /// `sha256:<hex>` of the checkpoint file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_hash: Option<String>,
    /// Every score.
    pub scores: Vec<Score>,
}

/// The continual-learning section: the stage × evaluation matrix and its summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinualReport {
    /// `R[i][j]`.
    pub matrix: StageMatrix,
    /// ACC, BWT, FWT, forgetting, intransigence.
    pub summary: ContinualSummary,
}

/// One run's evaluation artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalArtifact {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// The run's method label (`finetune`, `lwf`, `cassle`, `modx`, `mt_wc`, …).
    pub method: String,
    /// The run's name (its experiment directory name).
    pub run: String,
    /// Provenance.
    pub provenance: Provenance,
    /// One entry per evaluated stage checkpoint, in training order.
    pub stages: Vec<StageEvaluation>,
    /// Continual-learning metrics, when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continual: Option<ContinualReport>,
}

impl EvalArtifact {
    /// An artifact with no stages yet.
    pub fn new(method: impl Into<String>, run: impl Into<String>, provenance: Provenance) -> Self {
        Self {
            schema_version: SCHEMA_VERSION.to_string(),
            method: method.into(),
            run: run.into(),
            provenance,
            stages: Vec::new(),
            continual: None,
        }
    }

    /// The score of a stage (`None` stage = the last one) matching the selector.
    pub fn score(
        &self,
        stage: Option<&str>,
        protocol: Protocol,
        task: &str,
        metric: &str,
        direction: Option<&str>,
    ) -> Option<&Score> {
        let st = match stage {
            Some(name) => self.stages.iter().find(|s| s.stage == name)?,
            None => self.stages.last()?,
        };
        st.scores
            .iter()
            .find(|s| s.matches(protocol, task, metric, direction))
    }

    /// Checks invariants the schema cannot express: version, finite values, unique stage names.
    pub fn validate(&self) -> Result<()> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(EvalError::config(
                "schema_version",
                format!("{:?}, expected {SCHEMA_VERSION:?}", self.schema_version),
            ));
        }
        let mut names: Vec<&str> = self.stages.iter().map(|s| s.stage.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(EvalError::config("stages", "duplicate stage name"));
        }
        if self
            .stages
            .iter()
            .flat_map(|s| &s.scores)
            .any(|s| !s.value.is_finite() || s.std.is_some_and(|v| !v.is_finite()))
        {
            return Err(EvalError::NonFinite("score"));
        }
        if let Some(c) = &self.continual {
            c.matrix.validate()?;
        }
        Ok(())
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|source| EvalError::Json {
            context: "serialising the evaluation artifact".into(),
            source,
        })
    }

    /// Parses and validates an artifact.
    pub fn from_json(text: &str) -> Result<Self> {
        let a: Self = serde_json::from_str(text).map_err(|source| EvalError::Json {
            context: "parsing an evaluation artifact".into(),
            source,
        })?;
        a.validate()?;
        Ok(a)
    }

    /// Validates and writes the artifact.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate()?;
        // Atomic: a full disk or a kill never truncates the previous artifact.
        Ok(accrue_core::atomic::write(
            path,
            self.to_json()?.as_bytes(),
        )?)
    }

    /// Reads and validates an artifact.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            EvalError::Json { context, source } => EvalError::Json {
                context: format!("{}: {context}", path.display()),
                source,
            },
            other => other,
        })
    }
}
