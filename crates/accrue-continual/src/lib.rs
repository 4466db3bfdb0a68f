//! # accrue-continual
//!
//! Continual multi-modal pre-training of audio encoders (Kim, Wu, Bondi, Liu, ICASSP 2024;
//! method-spec §3–§5): the strategy API, the shipped methods and the stage trainer.
//!
//! - [`strategy`]: the [`Strategy`] trait — narrow typed hooks (`begin_stage`, `loss_terms`,
//!   `end_stage`), declared [`Capabilities`], the read-only [`StepView`].
//! - [`strategies`]: sequential fine-tuning, LwF, CaSSLe, Mod-X, frozen encoder + adapter,
//!   MT-WC, [`strategies::Combined`], and the TOML-driven [`strategies::AnyStrategy`].
//! - [`registry`]: methods by `kind` ([`Registry`], [`MethodSpec`]): the shipped ones and a
//!   user's, all built the same way and trained by the same stage loop.
//! - [`observe`]: the [`Observer`] trait and the built-in observers (progress bar, metrics
//!   log, `tracing`, stage export).
//! - [`model`]: the [`Student`] (encoder + one projection head per task) and the
//!   [`Trainable`] module the optimiser updates (`{ student, aux }`).
//! - [`step`]: one optimisation step, shared by the trainer and the tests.
//! - [`config`], [`trainer`], [`supervision`]: TOML experiments (unknown keys rejected with
//!   key and line), the stage trainer ([`Experiment`], [`run_experiment`]) with Adam/AMSGrad, StepLR,
//!   ReduceLROnPlateau, early stopping keeping the best weights, gradient clipping, atomic
//!   checkpoints with bit-identical resume on the CPU backend, NaN/inf stops naming the term,
//!   progress bars (`ACCRUE_NO_PROGRESS` hides them), `tracing` logs and a JSONL metrics log;
//!   supervision embeddings come from precomputed tables, never from a tower in the loop.
//!
//! ## Devices
//!
//! Any backend the [`burn::tensor::Device`] selects (CPU `flex` is tested; bit-identical resume
//! is only claimed there). [`parallel`] trains data-parallel over several local devices
//! ([`run_experiment_on`], `accrue train --replicas N`) with Burn's own primitives, as
//! burn-train's multi-device strategy does: replicas forked per device, gradients moved to the
//! main device and summed. Contrastive negatives and BatchNorm statistics are per replica; Burn
//! 0.22's gradient all-reduce exists on CUDA only, so nothing is gathered (see [`parallel`]).
//!
//! ## Writing a method
//!
//! Implement [`Strategy`], register it under a kind ([`Registry::register`]) and run the
//! experiment with [`Experiment`]: the complete program is `accrue-methods`'
//! `examples/custom_strategy.rs` (feature-space L2 distillation), and that crate's `replay.rs` and
//! `wise_ft.rs` are two more methods written against the public API only. Compose in code with
//! [`strategies::Combined`] or, shipped methods from TOML, `kind = "combined"`.
//!
//! Architecture invariant: strategies compute loss terms from read-only views; only the
//! trainer optimises, checkpoints and logs.

pub mod config;
pub mod error;
pub mod model;
pub mod observe;
pub mod parallel;
pub mod registry;
pub mod run_dir;
pub mod step;
pub mod strategies;
pub mod strategy;
pub mod supervision;
#[doc(hidden)]
pub mod testing;
pub mod trainer;

pub use accrue_losses::{LossTerms, ObjectiveConfig};
pub use config::ExperimentConfig;
pub use error::{ContinualError, Result};
pub use model::{ContrastiveHead, ProjectionHeadConfig, Student, TaskKind, Trainable};
pub use observe::Observer;
pub use parallel::DataParallel;
pub use registry::{Method, MethodSpec, Registry};
pub use run_dir::RunDir;
pub use step::{ComputedStep, StepCounters, TaskBatch, apply_step, compute_step};
pub use strategy::{
    BatchMeta, Capabilities, NoAux, Replay, StageInfo, StepView, Strategy, Supervision, TaskSource,
    TaskView, TeacherSlot, mixed_objective, snapshot_teacher, task_loss, task_loss_only,
};
pub use supervision::SupervisionTable;
pub use trainer::{
    Experiment, RunSummary, StageSummary, load_model_file, load_student_or_encoder, run_experiment,
    run_experiment_config, run_experiment_on,
};
