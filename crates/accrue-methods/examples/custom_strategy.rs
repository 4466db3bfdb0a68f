//! A continual-learning method of your own, trained through accrue's trainer from an experiment
//! file: feature-space L2 distillation, registered as `kind = "feature_l2"`.
//!
//! `L = (1 − λ)·L_c + λ·mean_b ‖f^k(x_b) − f^{k−1}(x_b)‖²`: the student's un-dropped embedding
//! is pulled towards the frozen previous encoder's (a method not in the paper).
//!
//! Everything the shipped methods get, this one gets too: loaders and supervision tables,
//! schedulers, early stopping, checkpoints and kill-and-resume (`--resume`), data-parallel
//! replicas, the metrics log, stage models that `accrue eval` scores.
//!
//! ```text
//! cargo run --release -p accrue-methods --example custom_strategy -- \
//!     crates/accrue-methods/examples/custom_strategy.toml [--resume]
//! ```
//!
//! The experiment file trains A → AV → AT on InstrumentAVT-mini with the demo encoder; it reads
//! the manifests and supervision tables that the main job writes (`./run.sh`, or
//! `accrue demo --profile smoke`). Then score every stage model:
//!
//! ```text
//! accrue eval results/custom-feature-l2 --suite crates/accrue-methods/examples/custom_strategy.suite.toml
//! ```

use accrue::continual::{
    Capabilities, ContinualError, Experiment, ExperimentConfig, LossTerms, MethodSpec, NoAux,
    ObjectiveConfig, Registry, Result, StageInfo, StepView, Strategy, Student, TeacherSlot,
    task_loss, task_loss_only,
};
use burn::tensor::Device;
use serde::Deserialize;

/// Options of `kind = "feature_l2"`: none yet, but unknown keys are still refused (with their
/// line) because the constructor deserialises into this type.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureL2Options {}

/// L2 distillation of encoder features.
#[derive(Clone, Debug, Default)]
pub struct FeatureL2 {
    teacher: TeacherSlot,
}

impl FeatureL2 {
    /// The registry constructor.
    ///
    /// # Errors
    /// Unknown option keys.
    pub fn from_spec(spec: &MethodSpec) -> Result<Self> {
        let FeatureL2Options {} = spec.options()?;
        Ok(Self::default())
    }
}

impl Strategy for FeatureL2 {
    type Aux = NoAux;

    fn name(&self) -> String {
        "feature_l2".into()
    }

    fn capabilities(&self, stage: &StageInfo) -> Capabilities {
        Capabilities {
            teacher_forward: stage.previous.is_some(),
            supervision: true,
            ..Capabilities::default()
        }
    }

    fn begin_stage(&mut self, stage: &StageInfo, student: &Student, _: &Device) -> Result<NoAux> {
        // An eval-mode, no-grad copy of the previous stage's model: its BatchNorm statistics
        // can never move.
        self.teacher.begin(stage, student);
        Ok(NoAux {})
    }

    fn teacher(&self) -> Option<&Student> {
        self.teacher.get()
    }

    fn loss_terms(&self, view: &StepView<'_>, _: &NoAux) -> Result<LossTerms> {
        let task = view.primary();
        let Some(teacher) = &task.teacher else {
            return task_loss_only(task);
        };
        let l_c = task_loss(task)?;
        let [b, _] = task.student.embedding.dims();
        let diff = task.student.embedding.clone() - teacher.embedding.clone();
        let l_kd = diff.powf_scalar(2.0).sum().div_scalar(b as f64);
        let objective = ObjectiveConfig::new().with_lambda(view.stage.lambda);
        LossTerms::objective(l_c, l_kd, &objective).map_err(ContinualError::from)
    }

    /// Data-parallel replicas on other devices get a copy of the teacher there.
    fn fork(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            teacher: self.teacher.fork(device),
        })
    }
}

/// The shipped methods plus `feature_l2`.
///
/// # Errors
/// Never on the built-in registry.
pub fn registry() -> Result<Registry> {
    let mut registry = Registry::builtin();
    registry.register("feature_l2", FeatureL2::from_spec)?;
    Ok(registry)
}

#[allow(dead_code)]
fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or(
        "usage: custom_strategy <experiment.toml> [--resume] (see examples/custom_strategy.toml)",
    )?;
    let resume = args.any(|a| a == "--resume");
    let registry = registry()?;
    // Unknown kinds and option keys are refused here, with their line.
    let config = ExperimentConfig::load_with(path.as_ref(), &registry)?;
    let summary = Experiment::new(config).registry(registry).run(resume)?;
    for stage in &summary.stages {
        println!(
            "stage {:<4} {:<12} {} epochs, {} steps, best loss {:.4} (epoch {})",
            stage.name,
            stage.strategy,
            stage.epochs,
            stage.steps,
            stage.best_loss,
            stage.best_epoch
        );
    }
    println!(
        "final model: {}; score every stage model with `accrue eval <run folder> --suite \
         crates/accrue-methods/examples/custom_strategy.suite.toml`",
        summary.final_model.display()
    );
    Ok(())
}
