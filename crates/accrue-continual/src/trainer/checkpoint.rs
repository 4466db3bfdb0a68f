//! Checkpoints and resume: the run state, Burn-format module files, and the checkpoint folders
//! with their `latest` pointer.
//!
//! `<output_dir>/checkpoints/ckpt-NNNNNN/` holds `state.json` (stage / epoch / loader position,
//! learning-rate and early-stopping state, counters, the sizes of the other files), `student`,
//! `aux`, `start` (the stage-start student the teacher is re-made from) and `best` as burnpack
//! files, and `optim.bin` (Burn's optimiser record). A folder is written under a temporary name
//! and renamed, then the `latest` pointer is replaced by rename: a kill at any point leaves the
//! previous checkpoint intact. The newest two are kept; a resume falls back to the older one
//! when the newest was truncated since.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleDisplay};
use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use super::StageSummary;
use super::schedule::{EarlyStopping, LrState};
use crate::error::{ContinualError, Result};
use crate::model::{Student, Trainable};
use crate::run_dir::RunDir;
use crate::step::StepCounters;

/// Everything a resumed run needs besides the module files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunState {
    pub stage: usize,
    pub epoch: usize,
    pub next_batch: usize,
    #[serde(flatten)]
    pub lr: LrState,
    #[serde(flatten)]
    pub stop: EarlyStopping,
    #[serde(with = "f64_bits")]
    pub epoch_loss_sum: f64,
    pub epoch_steps: usize,
    pub counters: (u64, u64, u64),
    /// Finished stages, their losses stored exactly (a resumed run reports the same summary).
    #[serde(with = "exact_summaries")]
    pub completed: Vec<StageSummary>,
    pub seq: u64,
    /// Length in bytes of `metrics.jsonl` when the checkpoint was written: a resumed run
    /// truncates the log to it, so the steps it replays are not logged twice.
    #[serde(default)]
    pub metrics_len: u64,
    /// sha256 of those `metrics_len` bytes: a resume warns when the lines before the
    /// checkpoint were changed since (empty in older checkpoints).
    #[serde(default)]
    pub metrics_sha256: String,
    /// Data-parallel replicas of the run that wrote the checkpoint (0 in older checkpoints:
    /// one).
    #[serde(default)]
    pub replicas: usize,
    /// Sizes in bytes of the checkpoint's other files when it was written: a resume does not
    /// trust a checkpoint whose files were truncated since (empty in older checkpoints).
    #[serde(default)]
    pub files: BTreeMap<String, u64>,
}

impl RunState {
    /// Whether the state is inside a stage (not at its start).
    pub fn mid_stage(&self) -> bool {
        self.epoch > 0 || self.next_batch > 0
    }

    pub fn set_counters(&mut self, c: &StepCounters) {
        self.counters = (c.student_forwards, c.teacher_forwards, c.steps);
    }

    pub fn step_counters(&self) -> StepCounters {
        StepCounters {
            student_forwards: self.counters.0,
            teacher_forwards: self.counters.1,
            steps: self.counters.2,
        }
    }
}

/// Floats of the run state are stored as their bit patterns: exact (JSON decimal parsing is
/// not guaranteed to round-trip) and able to hold infinities.
pub(crate) mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

/// Stage summaries with each `best_loss` also stored as its bit pattern: JSON's decimal form
/// does not always parse back to the same f64, and a resumed run must report the summary of
/// the uninterrupted one. Checkpoints without the bits read the decimal value.
mod exact_summaries {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::StageSummary;

    #[derive(Serialize, Deserialize)]
    struct Exact {
        #[serde(flatten)]
        summary: StageSummary,
        #[serde(default)]
        best_loss_bits: Option<u64>,
    }

    pub fn serialize<S: Serializer>(v: &[StageSummary], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|summary| Exact {
                summary: summary.clone(),
                best_loss_bits: Some(summary.best_loss.to_bits()),
            })
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<StageSummary>, D::Error> {
        Ok(Vec::<Exact>::deserialize(d)?
            .into_iter()
            .map(|e| {
                let mut summary = e.summary;
                if let Some(bits) = e.best_loss_bits {
                    summary.best_loss = f64::from_bits(bits);
                }
                summary
            })
            .collect())
    }
}

pub(crate) fn ckpt_err(path: &Path, detail: impl ToString) -> ContinualError {
    ContinualError::Checkpoint {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Saves a module in Burn's own burnpack format, which (unlike safetensors) keeps parameter
/// ids: the optimiser state, keyed by parameter id, re-attaches after a resume.
///
/// Burn's `RunningState` (BatchNorm statistics) applies its latest update lazily and
/// `collect` reads the value without synchronising, so the module is first synchronised through
/// `valid()` (which keeps parameter ids); otherwise the saved statistics lag one step behind.
pub(crate) fn save_module<M: Module>(module: &M, path: &Path) -> Result<()> {
    let mut store = BurnpackStore::from_file(path)
        .overwrite(true)
        .auto_extension(false);
    module
        .valid()
        .save_into(&mut store)
        .map_err(|e| ckpt_err(path, format!("{e:?}")))
}

/// Loads a module written by [`save_module`], strictly (missing, unused or mismatched tensors
/// are an error).
pub(crate) fn load_module<M: Module>(mut module: M, path: &Path) -> Result<M> {
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let r = module
        .load_from(&mut store)
        .map_err(|e| ckpt_err(path, format!("{e:?}")))?;
    if !r.errors.is_empty() || !r.missing.is_empty() || !r.unused.is_empty() {
        return Err(ckpt_err(
            path,
            format!(
                "does not match the model: missing {:?}, unused {:?}, errors {:?}",
                r.missing, r.unused, r.errors
            ),
        ));
    }
    Ok(module)
}

/// The state of the checkpoint in `dir`, after checking that its files still have the sizes
/// they were written with.
fn read_checkpoint_state(dir: &Path) -> std::result::Result<RunState, String> {
    let sp = dir.join("state.json");
    let text = fs::read_to_string(&sp).map_err(|e| format!("state.json: {e}"))?;
    let state: RunState = serde_json::from_str(&text).map_err(|e| format!("state.json: {e}"))?;
    for (file, written) in &state.files {
        let now = fs::metadata(dir.join(file)).map_or(0, |m| m.len());
        if now != *written {
            return Err(format!(
                "`{file}` is {now} bytes but was written with {written} (truncated or replaced)"
            ));
        }
    }
    Ok(state)
}

/// The checkpoint folders of one run.
pub(crate) struct Checkpoints {
    pub run: RunDir,
    /// Data-parallel replicas of this run (recorded in each state).
    pub replicas: usize,
}

/// What a checkpoint holds besides the state.
pub(crate) struct Snapshot<'a, A: Module + ModuleDisplay> {
    pub model: &'a Trainable<A>,
    /// The stage-start student (mid-stage only).
    pub start: Option<&'a Student>,
    /// The best epoch's weights so far (mid-stage, with early stopping).
    pub best: Option<&'a Path>,
    pub optim: Option<&'a ModuleOptimizer>,
}

impl Checkpoints {
    /// The file naming the newest complete checkpoint.
    fn latest_pointer(&self) -> PathBuf {
        self.run.checkpoints().join("latest")
    }

    /// Where the best epoch's weights of stage `s` are kept between checkpoints.
    pub fn best_of_stage(&self, s: usize) -> PathBuf {
        self.run.checkpoints().join(format!("best-stage{s}.bpk"))
    }

    /// The newest usable checkpoint and its state: the one `latest` names or, when that one
    /// is unreadable or truncated, the one before it (two are kept), with a warning saying
    /// why. `None` when the run has no checkpoint yet.
    pub fn latest(&self) -> Result<Option<(PathBuf, RunState)>> {
        let Some(newest) = self.pointed()? else {
            return Ok(None);
        };
        let seq = newest
            .file_name()
            .and_then(|n| n.to_str()?.strip_prefix("ckpt-")?.parse::<u64>().ok());
        let mut candidates = vec![newest];
        if let Some(seq) = seq.filter(|s| *s > 1) {
            candidates.push(self.run.checkpoints().join(format!("ckpt-{:06}", seq - 1)));
        }
        let mut problems = Vec::new();
        for dir in candidates {
            match read_checkpoint_state(&dir) {
                Ok(state) => {
                    if !problems.is_empty() {
                        tracing::warn!(
                            checkpoint = %dir.display(),
                            skipped = problems.join("; "),
                            "the newest checkpoint is unusable: resuming from the one before it"
                        );
                    }
                    return Ok(Some((dir, state)));
                }
                Err(why) => problems.push(format!("{}: {why}", dir.display())),
            }
        }
        Err(ckpt_err(
            &self.latest_pointer(),
            format!("no usable checkpoint: {}", problems.join("; ")),
        ))
    }

    /// The checkpoint folder the `latest` pointer names (unchecked), if any.
    pub fn pointed(&self) -> Result<Option<PathBuf>> {
        let pointer = self.latest_pointer();
        if !pointer.exists() {
            return Ok(None);
        }
        let name = fs::read_to_string(&pointer).map_err(|e| ContinualError::io(&pointer, e))?;
        Ok(Some(self.run.checkpoints().join(name.trim())))
    }

    /// Writes a checkpoint of `state` and `snap`, then points `latest` at it; returns its
    /// folder.
    pub fn write<A: Module + ModuleDisplay>(
        &self,
        state: &mut RunState,
        snap: &Snapshot<'_, A>,
    ) -> Result<PathBuf> {
        state.seq += 1;
        let log = fs::read(self.run.metrics()).unwrap_or_default();
        state.metrics_len = log.len() as u64;
        state.metrics_sha256 = accrue_core::hash::sha256_hex(&log);
        state.replicas = self.replicas;
        let name = format!("ckpt-{:06}", state.seq);
        let tmp = self.run.checkpoints().join(format!("{name}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| ContinualError::io(&tmp, e))?;
        save_module(&snap.model.student, &tmp.join("student.bpk"))?;
        save_module(&snap.model.aux, &tmp.join("aux.bpk"))?;
        if let Some(s) = snap.start {
            save_module(s, &tmp.join("start.bpk"))?;
        }
        if let Some(b) = snap.best {
            let dst = tmp.join("best.bpk");
            fs::copy(b, &dst).map_err(|e| ContinualError::io(b, e))?;
        }
        if let Some(o) = snap.optim {
            let bytes = o
                .into_bytes()
                .map_err(|e| ckpt_err(&tmp, format!("optimizer: {e:?}")))?;
            let p = tmp.join("optim.bin");
            fs::write(&p, &bytes[..]).map_err(|e| ContinualError::io(&p, e))?;
        }
        state.files = fs::read_dir(&tmp)
            .map_err(|e| ContinualError::io(&tmp, e))?
            .flatten()
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
            .collect();
        let sp = tmp.join("state.json");
        let json = serde_json::to_string_pretty(state).map_err(|e| ckpt_err(&sp, e))?;
        fs::write(&sp, json).map_err(|e| ContinualError::io(&sp, e))?;
        let dir = self.run.checkpoints().join(&name);
        // A same-numbered folder is a newer checkpoint found unusable at resume (see
        // `latest`): the pointer falls back past it, so it can go.
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| ContinualError::io(&dir, e))?;
        }
        fs::rename(&tmp, &dir).map_err(|e| ContinualError::io(&dir, e))?;
        accrue_core::atomic::write(&self.latest_pointer(), name.as_bytes())?;
        // Keep the newest two checkpoints.
        if state.seq > 2 {
            let old = self
                .run
                .checkpoints()
                .join(format!("ckpt-{:06}", state.seq - 2));
            let _ = fs::remove_dir_all(old);
        }
        Ok(dir)
    }

    /// Truncates the metrics log to its length at the checkpoint `state` (the steps after it
    /// run again); warns when the lines before that point were lost or changed since.
    pub fn rewind_metrics(&self, state: &RunState) -> Result<()> {
        let log = self.run.metrics();
        let bytes = fs::read(&log).unwrap_or_default();
        match log_status(&bytes, state) {
            LogStatus::Shortened => tracing::warn!(
                metrics = %log.display(),
                bytes = bytes.len(),
                at_checkpoint = state.metrics_len,
                "the metrics log is shorter than when the checkpoint was written: lines before the resume point are missing"
            ),
            LogStatus::Changed => tracing::warn!(
                metrics = %log.display(),
                "the metrics log was changed since the checkpoint was written: its lines before the resume point are not the run's"
            ),
            LogStatus::Intact => {}
        }
        if bytes.len() as u64 > state.metrics_len {
            fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .and_then(|f| f.set_len(state.metrics_len))
                .map_err(|e| ContinualError::io(&log, e))?;
        }
        Ok(())
    }
}

/// What became of the metrics log's lines up to a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogStatus {
    /// As written (or unknown: a checkpoint without a hash).
    Intact,
    /// Shorter than at the checkpoint.
    Shortened,
    /// As long, but different bytes.
    Changed,
}

/// The status of the log `bytes` against the checkpoint `state`.
pub(crate) fn log_status(bytes: &[u8], state: &RunState) -> LogStatus {
    let len = state.metrics_len as usize;
    if bytes.len() < len {
        LogStatus::Shortened
    } else if !state.metrics_sha256.is_empty()
        && accrue_core::hash::sha256_hex(&bytes[..len]) != state.metrics_sha256
    {
        LogStatus::Changed
    } else {
        LogStatus::Intact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_stages_round_trip_exactly() {
        // 1.0963703393936155 printed by JSON parses back as ...157 (the last bit lost).
        let state = RunState {
            completed: vec![StageSummary {
                best_loss: 1.096_370_339_393_615_5,
                ..StageSummary::default()
            }],
            ..RunState::default()
        };
        let json = serde_json::to_string(&state).expect("ser");
        let back: RunState = serde_json::from_str(&json).expect("de");
        assert_eq!(
            back.completed[0].best_loss.to_bits(),
            state.completed[0].best_loss.to_bits()
        );
    }

    #[test]
    fn a_lost_or_changed_metrics_log_is_noticed() {
        let written = b"{\"event\":\"step\",\"loss\":1.0}\n".to_vec();
        let state = RunState {
            metrics_len: written.len() as u64,
            metrics_sha256: accrue_core::hash::sha256_hex(&written),
            ..RunState::default()
        };
        let mut later = written.clone();
        later.extend_from_slice(b"{\"event\":\"step\",\"loss\":0.9}\n");
        assert_eq!(log_status(&later, &state), LogStatus::Intact);
        assert_eq!(log_status(&written[..10], &state), LogStatus::Shortened);
        let mut corrupt = later.clone();
        corrupt[12] = b'X';
        assert_eq!(log_status(&corrupt, &state), LogStatus::Changed);
        // Older checkpoints carry no hash: nothing to compare.
        let old = RunState {
            metrics_sha256: String::new(),
            ..state
        };
        assert_eq!(log_status(&corrupt, &old), LogStatus::Intact);
    }
}
