//! Experience replay: a bounded memory of earlier tasks' clips, replayed next to every batch of
//! a later stage.
//!
//! Rolnick, Ahuja, Schwarz, Lillicrap, Wayne, "Experience Replay for Continual Learning",
//! NeurIPS 2019; the memory follows Chaudhry et al., "On Tiny Episodic Memories in Continual
//! Learning", 2019 (a fixed budget shared equally by the tasks seen so far, random selection).
//!
//! At a stage, the memory holds `capacity` clips in all, split equally over the earlier tasks
//! (the initial encoder's task when `[encoder.trained_on_data]` names it, then each earlier
//! stage's tasks), with their supervision (labels, or the frozen tower's embeddings). Each
//! task's clips are a fixed seeded permutation cut to its share, so a task's memory only
//! shrinks as tasks arrive (the evicted clips are the last of the permutation) and a resumed
//! run holds exactly the memory of the interrupted one. Every step carries `batch_size`
//! memory clips per earlier task, and the objective is
//!
//! `L = (1 − λ)·L_c(current batch) + λ·mean_j L_j(replayed batch of task j)`
//!
//! with each task's own loss (CLIP loss through its own head for AV/AT, BCE/CE for A). Term
//! names: `contrastive` and `replay`. In a first stage without earlier data it is fine-tuning.
//!
//! ```toml
//! strategy = { kind = "replay", capacity = 64, batch_size = 8, seed = 0 }
//! ```
//!
//! Written only against accrue's public API.

use accrue::continual::{
    Capabilities, LossTerms, MethodSpec, NoAux, Replay, Result, StageInfo, StepView, Strategy,
    Student, TaskSource, task_loss, task_loss_only,
};
use accrue::core::seed;
use burn::tensor::Device;
use serde::Deserialize;

/// Options of `kind = "replay"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayOptions {
    /// Clips kept in memory in all, shared equally by the earlier tasks.
    pub capacity: usize,
    /// Memory clips per earlier task in each step (≥ 2: a contrastive loss needs negatives).
    pub batch_size: usize,
    /// Seed of the memory's selection (the same memory at every stage and on every resume).
    pub seed: u64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            capacity: 64,
            batch_size: 8,
            seed: 0,
        }
    }
}

/// Experience replay. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct ExperienceReplay {
    options: ReplayOptions,
}

/// Seed-derivation tag of the memory's permutations.
const MEMORY: u64 = 0x4d45_4d4f_5259;

impl ExperienceReplay {
    /// A replay method with `options`.
    pub fn new(options: ReplayOptions) -> Self {
        Self { options }
    }

    /// The registry constructor: options from the experiment file.
    ///
    /// # Errors
    /// Unknown keys (named, with their line) or values out of range.
    pub fn from_spec(spec: &MethodSpec) -> Result<Self> {
        let options: ReplayOptions = spec.options()?;
        if options.batch_size < 2 {
            return Err(spec.error(format!(
                "`batch_size` = {} but a replayed batch needs at least 2 clips",
                options.batch_size
            )));
        }
        if options.capacity < options.batch_size {
            return Err(spec.error(format!(
                "`capacity` = {} is below one replayed batch (`batch_size` = {})",
                options.capacity, options.batch_size
            )));
        }
        Ok(Self::new(options))
    }

    /// The indices of the clips of `source` that the memory keeps when it holds `share` clips
    /// of it: the first `share` of a permutation seeded by the method's seed and the task's
    /// position (so the same task keeps a prefix of the same permutation at every stage).
    pub fn memory(&self, source: &TaskSource, position: usize, share: usize) -> Vec<usize> {
        let n = source.dataset.examples.len();
        let mut order: Vec<usize> = (0..n).collect();
        seed::SplitMix64::new(seed::derive(&[self.options.seed, MEMORY, position as u64]))
            .shuffle(&mut order);
        order.truncate(share.min(n));
        order
    }
}

impl Strategy for ExperienceReplay {
    type Aux = NoAux;

    fn name(&self) -> String {
        "replay".into()
    }

    fn capabilities(&self, _stage: &StageInfo) -> Capabilities {
        Capabilities {
            supervision: true,
            replay: true,
            ..Capabilities::default()
        }
    }

    fn begin_stage(
        &mut self,
        _stage: &StageInfo,
        _student: &Student,
        _d: &Device,
    ) -> Result<NoAux> {
        Ok(NoAux {})
    }

    fn replay(&mut self, stage: &StageInfo, earlier: &[TaskSource]) -> Result<Vec<Replay>> {
        if earlier.is_empty() {
            return Ok(Vec::new());
        }
        let share = self.options.capacity / earlier.len();
        if share < self.options.batch_size {
            return Err(accrue::continual::ContinualError::strategy(
                &self.name(),
                format!(
                    "stage {}: a memory of {} clips over {} earlier tasks keeps {share} per task, \
                     fewer than one replayed batch ({}); raise `capacity`",
                    stage.index,
                    self.options.capacity,
                    earlier.len(),
                    self.options.batch_size
                ),
            ));
        }
        Ok(earlier
            .iter()
            .enumerate()
            .map(|(position, source)| {
                let keep = self.memory(source, position, share);
                let mut source = source.clone();
                let all = std::mem::take(&mut source.dataset.examples);
                source.dataset.examples = keep.into_iter().map(|i| all[i].clone()).collect();
                Replay {
                    source,
                    batch_size: self.options.batch_size,
                }
            })
            .collect())
    }

    fn loss_terms(&self, view: &StepView<'_>, _aux: &NoAux) -> Result<LossTerms> {
        let current = view.primary();
        let mut replayed = view.replay.iter();
        let Some(first) = replayed.next() else {
            return task_loss_only(current);
        };
        let mut sum = task_loss(first)?;
        for task in replayed {
            sum = sum + task_loss(task)?;
        }
        let l_replay = sum.div_scalar(view.replay.len() as f64);
        let lambda = view.stage.lambda;
        Ok(LossTerms::new()
            .with(
                accrue::losses::CONTRASTIVE_TERM,
                task_loss(current)?,
                1.0 - lambda,
            )?
            .with("replay", l_replay, lambda)?)
    }

    fn fork(&self, _device: &Device) -> Result<Self> {
        Ok(self.clone())
    }
}
