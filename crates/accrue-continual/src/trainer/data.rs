//! Data wiring: a stage's manifests, splits and supervision tables become seeded loaders, and
//! their batches become [`TaskBatch`]es (waveforms plus labels or frozen-tower embeddings).
//! Also the streams of earlier data a replaying method mixes into each step.

use std::path::Path;
use std::sync::Arc;

use accrue_core::seed;
use accrue_data::{Crop, Dataset, Epoch, Loader, LoaderConfig};
use burn::tensor::{Device, Tensor};

use crate::config::{ExperimentConfig, StageConfig, TaskConfig};
use crate::error::{ContinualError, Result};
use crate::model::TaskKind;
use crate::step::TaskBatch;
use crate::strategy::{BatchMeta, Replay, Supervision, TaskSource};
use crate::supervision::SupervisionTable;

/// Seed-derivation tag of replay streams.
const REPLAY: u64 = u64::MAX - 2;

/// One task's loaders and supervision.
pub(crate) struct TaskData {
    pub kind: TaskKind,
    pub train: Loader,
    pub valid: Option<Loader>,
    pub table: Option<Arc<SupervisionTable>>,
}

/// The experiment's data side, on the trainer's (plain) device.
pub(crate) struct Wiring<'a> {
    pub config: &'a ExperimentConfig,
    pub device: &'a Device,
}

fn split_of(name: &Option<String>, ds: Dataset) -> Result<Dataset> {
    Ok(match name {
        Some(n) => ds.split(crate::config::parse_split(n)?),
        None => ds,
    })
}

impl Wiring<'_> {
    fn crop(&self, stage: &StageConfig) -> usize {
        (stage.crop_seconds * f64::from(self.config.sample_rate)).round() as usize
    }

    /// A task's training clips and supervision table, checked: clips present, every clip of a
    /// classification task labelled, classes within the head, the table as wide as the head.
    pub fn source(&self, stage: Option<usize>, t: &TaskConfig) -> Result<TaskSource> {
        let num_classes = self.config.encoder.config()?.num_classes();
        let dataset = split_of(&t.split, t.read_manifest(&t.manifest)?)?;
        if dataset.examples.is_empty() {
            return Err(ContinualError::Config(format!(
                "{}: no clips{}",
                t.manifest.display(),
                t.split
                    .as_ref()
                    .map(|s| format!(" in split `{s}`"))
                    .unwrap_or_default()
            )));
        }
        // A classification task needs every clip labelled: an unlabelled clip has no target
        // and would train at a loss of zero.
        if t.kind == TaskKind::A
            && let Some(e) = dataset.examples.iter().find(|e| e.labels.is_empty())
        {
            return Err(ContinualError::Config(format!(
                "{}: clip `{}` has no label, but task A (classification) needs one for \
                 every clip",
                t.manifest.display(),
                e.id
            )));
        }
        if t.kind == TaskKind::A && dataset.classes.len() > num_classes {
            return Err(ContinualError::Config(format!(
                "{}: {} classes but the encoder head has {num_classes}",
                t.manifest.display(),
                dataset.classes.len()
            )));
        }
        let supervision = t
            .supervision
            .as_deref()
            .map(SupervisionTable::load)
            .transpose()?;
        if let Some(table) = &supervision {
            let want = self.config.head.output_of(t.kind);
            if t.kind.is_contrastive() && table.dim != want {
                return Err(ContinualError::Config(format!(
                    "{}: the supervision table has width {} but the {} head outputs {want} \
                     (set `head.output_{}`)",
                    t.supervision.as_deref().unwrap_or(Path::new("?")).display(),
                    table.dim,
                    t.kind,
                    t.kind.to_string().to_ascii_lowercase(),
                )));
            }
        }
        Ok(TaskSource {
            stage,
            kind: t.kind,
            dataset,
            supervision: supervision.map(Arc::new),
        })
    }

    /// The loaders of every task of stage `s`.
    pub fn stage(&self, s: usize) -> Result<Vec<TaskData>> {
        let stage = &self.config.stages[s];
        let sr = self.config.sample_rate;
        let crop = self.crop(stage);
        let mut out = Vec::new();
        for (i, t) in stage.tasks.iter().enumerate() {
            let src = self.source(Some(s), t)?;
            let mut lc = LoaderConfig::train(sr, stage.batch_size, crop);
            // A joint stage gives every task the first task's stream: the same clips, order,
            // crops and captions in every step.
            let stream = if stage.joint { 0 } else { i as u64 };
            lc.seed = seed::derive(&[stage.seed, stream]);
            lc.memory_cache = true;
            let train = Loader::new(src.dataset, lc)?;
            let valid_path = match (&t.valid_manifest, &t.valid_split) {
                (Some(p), _) => Some(p),
                (None, Some(_)) => Some(&t.manifest),
                (None, None) => None,
            };
            let valid = match valid_path {
                Some(p) => {
                    let mut vc = LoaderConfig::eval(sr, stage.batch_size);
                    vc.crop = Crop::Centre(crop);
                    vc.memory_cache = true;
                    Some(Loader::new(
                        split_of(&t.valid_split, t.read_manifest(p)?)?,
                        vc,
                    )?)
                }
                None => None,
            };
            out.push(TaskData {
                kind: t.kind,
                train,
                valid,
                table: src.supervision,
            });
        }
        Ok(out)
    }

    /// The training data of every task before stage `s` (for replaying methods): the initial
    /// encoder's task when `[encoder.trained_on_data]` names it, then each earlier stage's.
    pub fn earlier(&self, s: usize) -> Result<Vec<TaskSource>> {
        let mut out = Vec::new();
        if let Some(t) = &self.config.encoder.trained_on_data {
            out.push(self.source(None, t)?);
        }
        for (i, stage) in self.config.stages.iter().enumerate().take(s) {
            for t in &stage.tasks {
                out.push(self.source(Some(i), t)?);
            }
        }
        Ok(out)
    }

    /// Seeded loaders for a method's replay streams at stage `s` (random crops of the stage's
    /// length).
    pub fn replay(&self, s: usize, method: &str, streams: Vec<Replay>) -> Result<Vec<ReplayFeed>> {
        let stage = &self.config.stages[s];
        let crop = self.crop(stage);
        streams
            .into_iter()
            .enumerate()
            .map(|(j, r)| {
                let kind = r.source.kind;
                if kind.is_contrastive() && r.source.supervision.is_none() {
                    return Err(ContinualError::strategy(
                        method,
                        format!("replay stream {j} (task {kind}) has no supervision table"),
                    ));
                }
                let mut lc = LoaderConfig::train(self.config.sample_rate, r.batch_size, crop);
                lc.seed = seed::derive(&[stage.seed, REPLAY, j as u64]);
                lc.memory_cache = true;
                let train = Loader::new(r.source.dataset, lc)?;
                let batches = train.num_batches();
                if batches == 0 {
                    return Err(ContinualError::strategy(
                        method,
                        format!(
                            "replay stream {j} (task {kind}) holds {} clips, fewer than its batch \
                             size {}",
                            train.len(),
                            r.batch_size
                        ),
                    ));
                }
                Ok(ReplayFeed {
                    data: TaskData {
                        kind,
                        train,
                        valid: None,
                        table: r.source.supervision,
                    },
                    batches,
                    current: None,
                })
            })
            .collect()
    }

    /// A loader batch as a [`TaskBatch`] on the trainer's device.
    pub fn batch(
        &self,
        data: &TaskData,
        loader: &Loader,
        batch: &accrue_data::Batch,
        meta: (usize, usize),
    ) -> Result<TaskBatch> {
        let plain = self.device;
        let b = batch.len();
        let wave =
            Tensor::<1>::from_floats(batch.audio.as_slice(), plain).reshape([b, batch.length]);
        let supervision = match data.kind {
            TaskKind::A => {
                let d = self.config.encoder.config()?.num_classes();
                let multi = loader.dataset().multi_label;
                let targets =
                    Tensor::<1>::from_floats(batch.multi_hot(d).as_slice(), plain).reshape([b, d]);
                Supervision::Labels {
                    targets,
                    multi_label: multi,
                }
            }
            kind => {
                let table = data.table.as_ref().ok_or_else(|| {
                    ContinualError::Config(format!("task {kind} has no supervision table"))
                })?;
                let rows = table.batch_embeddings(kind, batch, loader.dataset())?;
                Supervision::Embeddings(
                    Tensor::<1>::from_floats(rows.as_slice(), plain).reshape([b, table.dim]),
                )
            }
        };
        Ok(TaskBatch {
            kind: data.kind,
            wave,
            audio: Some(Arc::from(batch.audio.as_slice())),
            supervision: Some(supervision),
            meta: BatchMeta {
                epoch: meta.0,
                step: meta.1,
                clip_ids: batch.clip_ids.clone(),
                batch_size: b,
            },
            replay: false,
        })
    }
}

/// A replay stream: batch `g` of the stage (counted across epochs) is batch `g mod n` of the
/// stream's epoch `⌊g / n⌋`, so a resumed run draws exactly the batches of the uninterrupted one.
pub(crate) struct ReplayFeed {
    pub data: TaskData,
    batches: usize,
    /// The open epoch, and the index of the next batch it yields.
    current: Option<(u64, usize, Epoch)>,
}

impl ReplayFeed {
    /// The `g`-th replay batch of the stage.
    pub fn next(
        &mut self,
        wiring: &Wiring<'_>,
        g: usize,
        meta: (usize, usize),
    ) -> Result<TaskBatch> {
        let (epoch, index) = ((g / self.batches) as u64, g % self.batches);
        if !matches!(&self.current, Some((e, i, _)) if *e == epoch && *i == index) {
            self.current = None;
        }
        let train = &self.data.train;
        let (_, next, it) = self
            .current
            .get_or_insert_with(|| (epoch, index, train.epoch_from(epoch, index)));
        let raw = it.next().ok_or_else(|| {
            ContinualError::Config(format!(
                "replay loader of task {} ended early",
                self.data.kind
            ))
        })??;
        *next += 1;
        let mut batch = wiring.batch(&self.data, &self.data.train, &raw, meta)?;
        batch.replay = true;
        Ok(batch)
    }
}
