//! What watches training: the [`Observer`] trait and the built-in observers (progress bar,
//! JSONL metrics log, `tracing` lines, stage-model export).
//!
//! The trainer calls every observer, in order, at each event of the stage loop. An observer
//! sees read-only events (the student only as `&Student`, at a stage end), so it cannot change
//! training: a run's weights are bit-identical with and without any observer
//! (`tests/observers.rs`). An observer's error stops the run (the last checkpoint stays).
//!
//! ```text
//! stage_start ─► ( step … step ─► epoch_end ─► [checkpoint] )* ─► stage_end ─► [checkpoint] … run_end
//! ```
//!
//! Add your own with [`crate::Experiment::observer`]:
//!
//! ```ignore
//! struct Losses(Vec<f64>);
//! impl Observer for Losses {
//!     fn step(&mut self, e: &StepEnd<'_>) -> accrue_continual::Result<()> {
//!         self.0.push(e.loss);
//!         Ok(())
//!     }
//! }
//! ```

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use accrue_encoders::checkpoint::save_safetensors;
use accrue_losses::TermValue;
use burn::module::Module;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{ContinualError, Result};
use crate::model::Student;
use crate::run_dir::RunDir;
use crate::strategy::Capabilities;
use crate::trainer::{RunSummary, StageSummary};

/// A stage starts, or resumes part-way.
#[derive(Clone, Debug)]
pub struct StageStart {
    /// Stage index (0-based).
    pub index: usize,
    /// Stage name.
    pub name: String,
    /// The method's name.
    pub strategy: String,
    /// What the method asked of the trainer.
    pub capabilities: Capabilities,
    /// Maximum epochs.
    pub epochs: usize,
    /// Optimiser steps per epoch.
    pub steps_per_epoch: usize,
    /// Steps already done (a resume part-way through the stage), 0 otherwise.
    pub done: usize,
    /// Data-parallel replicas.
    pub replicas: usize,
}

/// One optimiser step was applied.
#[derive(Clone, Copy, Debug)]
pub struct StepEnd<'a> {
    /// Stage index.
    pub stage: usize,
    /// Epoch within the stage.
    pub epoch: usize,
    /// Step within the epoch.
    pub step: usize,
    /// Weighted total loss.
    pub loss: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Each term's (unweighted) value and weight.
    pub terms: &'a [TermValue],
}

/// An epoch ended (after validation, the scheduler and early stopping).
#[derive(Clone, Copy, Debug)]
pub struct EpochEnd {
    /// Stage index.
    pub stage: usize,
    /// Epoch within the stage.
    pub epoch: usize,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Mean validation loss, when the tasks have validation data.
    pub valid_loss: Option<f64>,
    /// Learning rate of the next epoch.
    pub lr: f64,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
    /// Fraction of the epoch spent waiting for batches.
    pub data_wait_fraction: f64,
    /// The monitored loss improved on the best so far.
    pub improved: bool,
    /// Early stopping ends the stage here.
    pub stop: bool,
}

/// A stage ended: `student` is the stage's model (best epoch restored, the method's
/// `end_stage` applied), about to be checkpointed and trained on by the next stage.
#[derive(Clone, Copy, Debug)]
pub struct StageEnd<'a> {
    /// Stage index.
    pub index: usize,
    /// Stage name.
    pub name: &'a str,
    /// The stage's results.
    pub summary: &'a StageSummary,
    /// The stage's model (read-only).
    pub student: &'a Student,
}

/// Watches training. Every method has a no-op default; implement the events you need.
pub trait Observer {
    /// A stage starts or resumes.
    ///
    /// # Errors
    /// Stops the run.
    fn stage_start(&mut self, _event: &StageStart) -> Result<()> {
        Ok(())
    }

    /// A step was applied.
    ///
    /// # Errors
    /// Stops the run.
    fn step(&mut self, _event: &StepEnd<'_>) -> Result<()> {
        Ok(())
    }

    /// An epoch ended (called before the epoch's checkpoint).
    ///
    /// # Errors
    /// Stops the run.
    fn epoch_end(&mut self, _event: &EpochEnd) -> Result<()> {
        Ok(())
    }

    /// A stage ended (called before the stage-end checkpoint).
    ///
    /// # Errors
    /// Stops the run.
    fn stage_end(&mut self, _event: &StageEnd<'_>) -> Result<()> {
        Ok(())
    }

    /// The run finished.
    ///
    /// # Errors
    /// Reported as the run's error (the run's models are already written).
    fn run_end(&mut self, _summary: &RunSummary) -> Result<()> {
        Ok(())
    }
}

/// Calls each observer in turn; the first error stops.
pub(crate) struct Observers(pub Vec<Box<dyn Observer>>);

impl Observers {
    pub fn each(&mut self, mut f: impl FnMut(&mut dyn Observer) -> Result<()>) -> Result<()> {
        self.0.iter_mut().try_for_each(|o| f(o.as_mut()))
    }
}

/// A progress bar per stage on the terminal (`ACCRUE_NO_PROGRESS` hides it).
#[derive(Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Observer for Progress {
    fn stage_start(&mut self, e: &StageStart) -> Result<()> {
        let bar = ProgressBar::new((e.epochs * e.steps_per_epoch) as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("stage {} {}", e.index, e.name));
        if std::env::var_os("ACCRUE_NO_PROGRESS").is_some() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_position(e.done as u64);
        self.bar = Some(bar);
        Ok(())
    }

    fn step(&mut self, e: &StepEnd<'_>) -> Result<()> {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {:.4} lr {:.1e}", e.loss, e.lr));
            bar.inc(1);
        }
        Ok(())
    }

    fn stage_end(&mut self, _e: &StageEnd<'_>) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        Ok(())
    }
}

/// The run's JSONL metrics log (`metrics.jsonl`): one line per step
/// (`{"event":"step","stage","epoch","step","loss","lr","terms":{…}}`) and per epoch
/// (`{"event":"epoch","stage","epoch","train_loss","valid_loss","lr","seconds",
/// "data_wait_fraction"}`). A resume truncates it to its length at the checkpoint.
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    /// Appends to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn line(&self, value: &serde_json::Value) -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| ContinualError::io(&self.path, e))?;
        writeln!(f, "{value}").map_err(|e| ContinualError::io(&self.path, e))
    }
}

impl Observer for MetricsLog {
    fn step(&mut self, e: &StepEnd<'_>) -> Result<()> {
        let terms: serde_json::Map<String, serde_json::Value> = e
            .terms
            .iter()
            .map(|t| (t.name.clone(), serde_json::json!(t.value)))
            .collect();
        self.line(&serde_json::json!({
            "event": "step", "stage": e.stage, "epoch": e.epoch, "step": e.step,
            "loss": e.loss, "lr": e.lr, "terms": terms,
        }))
    }

    fn epoch_end(&mut self, e: &EpochEnd) -> Result<()> {
        self.line(&serde_json::json!({
            "event": "epoch", "stage": e.stage, "epoch": e.epoch, "train_loss": e.train_loss,
            "valid_loss": e.valid_loss, "lr": e.lr, "seconds": e.seconds,
            "data_wait_fraction": e.data_wait_fraction,
        }))
    }
}

/// `tracing` lines at stage starts, epoch ends and stage ends; warns about data-bound epochs.
#[derive(Default)]
pub struct TracingLog;

impl Observer for TracingLog {
    fn stage_start(&mut self, e: &StageStart) -> Result<()> {
        tracing::info!(
            stage = e.index,
            name = e.name,
            strategy = e.strategy,
            capabilities = ?e.capabilities,
            replicas = e.replicas,
            resumed_after_steps = e.done,
            "stage start"
        );
        Ok(())
    }

    fn epoch_end(&mut self, e: &EpochEnd) -> Result<()> {
        if e.data_wait_fraction > 0.25 {
            tracing::warn!(
                stage = e.stage,
                epoch = e.epoch,
                data_wait = e.data_wait_fraction,
                "data-bound epoch: the model waited for batches (raise prefetch/threads or cache decoded audio)"
            );
        }
        tracing::info!(
            stage = e.stage,
            epoch = e.epoch,
            train_loss = e.train_loss,
            valid_loss = ?e.valid_loss,
            lr = e.lr,
            "epoch end"
        );
        Ok(())
    }

    fn stage_end(&mut self, e: &StageEnd<'_>) -> Result<()> {
        tracing::info!(
            stage = e.index,
            name = e.name,
            epochs = e.summary.epochs,
            best_epoch = e.summary.best_epoch,
            stopped_early = e.summary.stopped_early,
            "stage end"
        );
        Ok(())
    }
}

/// Exports each stage's model to `stages/<i>-<name>.safetensors` of the run folder (what
/// `accrue eval` scores). The trainer calls it before the stage-end checkpoint, and a resume
/// from a stage boundary re-exports a missing one, so no stage model is ever lost.
pub struct StageExport {
    run: RunDir,
}

impl StageExport {
    /// Exports into `run`.
    pub fn new(run: RunDir) -> Self {
        Self { run }
    }
}

impl Observer for StageExport {
    fn stage_end(&mut self, e: &StageEnd<'_>) -> Result<()> {
        save_safetensors(&e.student.valid(), &self.run.stage_model(e.index, e.name))?;
        Ok(())
    }
}
