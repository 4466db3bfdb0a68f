//! Run-time strategy selection from configuration files.
//!
//! [`StrategyConfig`] is a serde-tagged enum (`kind = "lwf"`, …, unknown keys rejected) that
//! builds an [`AnyStrategy`]: a weighted list of [`LeafStrategy`]s (one for a plain method,
//! several for `kind = "combined"`), whose aux module is the list of the leaves' aux modules.
//!
//! ```toml
//! strategy = { kind = "lwf", temperature = 2.0 }
//! strategy = { kind = "combined", parts = [
//!     { weight = 0.5, strategy = { kind = "lwf" } },
//!     { weight = 0.5, strategy = { kind = "cassle", hidden = 2048 } },
//! ] }
//! ```

use accrue_losses::{CasslePredictor, LossTerms};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ContinualError, Result};
use crate::model::Student;
use crate::strategies::{
    Cassle, CassleOptions, FineTune, FrozenAdapter, Lwf, LwfOptions, ModX, ModXOptions, MultiTask,
    MultiTaskOptions,
};
use crate::strategy::{Capabilities, NoAux, StageInfo, StepView, Strategy};

/// A strategy as written in an experiment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StrategyConfig {
    /// Sequential fine-tuning (λ = 0).
    Finetune,
    /// Learning without Forgetting.
    Lwf(LwfOptions),
    /// CaSSLe.
    Cassle(CassleOptions),
    /// Mod-X.
    Modx(ModXOptions),
    /// Frozen encoder + adapter head.
    FrozenAdapter,
    /// Multi-task MT-WC (the stage lists several tasks).
    Multitask(MultiTaskOptions),
    /// A weighted sum of strategies.
    Combined {
        /// The parts.
        parts: Vec<WeightedStrategy>,
    },
}

/// One part of a combined strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedStrategy {
    /// Weight of this part's terms.
    pub weight: f64,
    /// The part.
    pub strategy: StrategyConfig,
}

impl StrategyConfig {
    /// Builds the strategy.
    ///
    /// # Errors
    /// An empty `combined`, or a non-finite weight.
    pub fn build(&self) -> Result<AnyStrategy> {
        let mut parts = Vec::new();
        self.flatten(1.0, &mut parts)?;
        if parts.is_empty() {
            return Err(ContinualError::Config(
                "a combined strategy needs at least one part".into(),
            ));
        }
        Ok(AnyStrategy {
            combined: matches!(self, Self::Combined { .. }),
            parts,
        })
    }

    fn flatten(&self, weight: f64, out: &mut Vec<(LeafStrategy, f64)>) -> Result<()> {
        if !weight.is_finite() {
            return Err(ContinualError::Config(format!(
                "strategy weight {weight} is not finite"
            )));
        }
        let leaf = match self {
            Self::Finetune => LeafStrategy::FineTune(FineTune),
            Self::Lwf(o) => LeafStrategy::Lwf(Lwf::new(o.clone())),
            Self::Cassle(o) => LeafStrategy::Cassle(Cassle::new(o.clone())),
            Self::Modx(o) => LeafStrategy::ModX(ModX::new(o.clone())),
            Self::FrozenAdapter => LeafStrategy::FrozenAdapter(FrozenAdapter),
            Self::Multitask(o) => LeafStrategy::MultiTask(MultiTask::new(o.clone())),
            Self::Combined { parts } => {
                for p in parts {
                    p.strategy.flatten(weight * p.weight, out)?;
                }
                return Ok(());
            }
        };
        out.push((leaf, weight));
        Ok(())
    }
}

/// One of the shipped methods.
#[derive(Clone, Debug)]
pub enum LeafStrategy {
    /// [`FineTune`].
    FineTune(FineTune),
    /// [`Lwf`].
    Lwf(Lwf),
    /// [`Cassle`].
    Cassle(Cassle),
    /// [`ModX`].
    ModX(ModX),
    /// [`FrozenAdapter`].
    FrozenAdapter(FrozenAdapter),
    /// [`MultiTask`].
    MultiTask(MultiTask),
}

/// The aux module of a [`LeafStrategy`] (only CaSSLe has one).
pub type LeafAux = Option<CasslePredictor>;

macro_rules! each_leaf {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            LeafStrategy::FineTune($s) => $body,
            LeafStrategy::Lwf($s) => $body,
            LeafStrategy::Cassle($s) => $body,
            LeafStrategy::ModX($s) => $body,
            LeafStrategy::FrozenAdapter($s) => $body,
            LeafStrategy::MultiTask($s) => $body,
        }
    };
}

impl Strategy for LeafStrategy {
    type Aux = LeafAux;

    fn name(&self) -> String {
        each_leaf!(self, s => s.name())
    }

    fn capabilities(&self, stage: &StageInfo) -> Capabilities {
        each_leaf!(self, s => s.capabilities(stage))
    }

    fn begin_stage(
        &mut self,
        stage: &StageInfo,
        student: &Student,
        device: &Device,
    ) -> Result<LeafAux> {
        match self {
            Self::Cassle(s) => return s.begin_stage(stage, student, device),
            Self::FineTune(s) => s.begin_stage(stage, student, device)?,
            Self::Lwf(s) => s.begin_stage(stage, student, device)?,
            Self::ModX(s) => s.begin_stage(stage, student, device)?,
            Self::FrozenAdapter(s) => s.begin_stage(stage, student, device)?,
            Self::MultiTask(s) => s.begin_stage(stage, student, device)?,
        };
        Ok(None)
    }

    fn teacher(&self) -> Option<&Student> {
        each_leaf!(self, s => s.teacher())
    }

    fn fork(&self, device: &Device) -> Result<Self> {
        Ok(match self {
            Self::FineTune(s) => Self::FineTune(s.fork(device)?),
            Self::Lwf(s) => Self::Lwf(s.fork(device)?),
            Self::Cassle(s) => Self::Cassle(s.fork(device)?),
            Self::ModX(s) => Self::ModX(s.fork(device)?),
            Self::FrozenAdapter(s) => Self::FrozenAdapter(s.fork(device)?),
            Self::MultiTask(s) => Self::MultiTask(s.fork(device)?),
        })
    }

    fn loss_terms(&self, view: &StepView<'_>, aux: &LeafAux) -> Result<LossTerms> {
        const NONE: NoAux = NoAux {};
        match self {
            Self::Cassle(s) => s.loss_terms(view, aux),
            Self::FineTune(s) => s.loss_terms(view, &NONE),
            Self::Lwf(s) => s.loss_terms(view, &NONE),
            Self::ModX(s) => s.loss_terms(view, &NONE),
            Self::FrozenAdapter(s) => s.loss_terms(view, &NONE),
            Self::MultiTask(s) => s.loss_terms(view, &NONE),
        }
    }

    fn end_stage(&mut self, stage: &StageInfo, student: Student, aux: &LeafAux) -> Result<Student> {
        const NONE: NoAux = NoAux {};
        match self {
            Self::Cassle(s) => s.end_stage(stage, student, aux),
            Self::FineTune(s) => s.end_stage(stage, student, &NONE),
            Self::Lwf(s) => s.end_stage(stage, student, &NONE),
            Self::ModX(s) => s.end_stage(stage, student, &NONE),
            Self::FrozenAdapter(s) => s.end_stage(stage, student, &NONE),
            Self::MultiTask(s) => s.end_stage(stage, student, &NONE),
        }
    }
}

/// A weighted list of methods built from a [`StrategyConfig`]; a single method keeps its term
/// names, a combination prefixes them with the method's name.
#[derive(Clone, Debug)]
pub struct AnyStrategy {
    parts: Vec<(LeafStrategy, f64)>,
    combined: bool,
}

impl AnyStrategy {
    /// The methods and their weights.
    pub fn parts(&self) -> &[(LeafStrategy, f64)] {
        &self.parts
    }
}

impl Strategy for AnyStrategy {
    type Aux = Vec<LeafAux>;

    fn name(&self) -> String {
        let names: Vec<String> = self.parts.iter().map(|(s, _)| s.name()).collect();
        names.join("+")
    }

    fn capabilities(&self, stage: &StageInfo) -> Capabilities {
        self.parts
            .iter()
            .fold(Capabilities::default(), |c, (s, _)| {
                c.union(s.capabilities(stage))
            })
    }

    fn begin_stage(
        &mut self,
        stage: &StageInfo,
        student: &Student,
        device: &Device,
    ) -> Result<Self::Aux> {
        self.parts
            .iter_mut()
            .map(|(s, _)| s.begin_stage(stage, student, device))
            .collect()
    }

    fn teacher(&self) -> Option<&Student> {
        self.parts.iter().find_map(|(s, _)| s.teacher())
    }

    fn fork(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            parts: self
                .parts
                .iter()
                .map(|(s, w)| Ok((s.fork(device)?, *w)))
                .collect::<Result<_>>()?,
            combined: self.combined,
        })
    }

    fn loss_terms(&self, view: &StepView<'_>, aux: &Self::Aux) -> Result<LossTerms> {
        if aux.len() != self.parts.len() {
            return Err(ContinualError::strategy(
                &self.name(),
                "aux modules do not match the parts",
            ));
        }
        if !self.combined {
            return self.parts[0].0.loss_terms(view, &aux[0]);
        }
        let mut terms = LossTerms::new();
        for ((s, w), a) in self.parts.iter().zip(aux) {
            terms.extend_scaled(s.loss_terms(view, a)?, &format!("{}/", s.name()), *w)?;
        }
        Ok(terms)
    }

    fn end_stage(
        &mut self,
        stage: &StageInfo,
        student: Student,
        aux: &Self::Aux,
    ) -> Result<Student> {
        let mut student = student;
        for ((s, _), a) in self.parts.iter_mut().zip(aux) {
            student = s.end_stage(stage, student, a)?;
        }
        Ok(student)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskKind;
    use crate::testing::*;

    #[test]
    fn toml_builds_a_combined_strategy_and_rejects_unknown_keys() {
        #[derive(Deserialize)]
        struct W {
            strategy: StrategyConfig,
        }
        let text = r#"strategy = { kind = "combined", parts = [
            { weight = 0.5, strategy = { kind = "lwf", temperature = 1.0 } },
            { weight = 0.5, strategy = { kind = "cassle", hidden = 16 } } ] }"#;
        let w: W = toml::from_str(text).expect("valid config");
        let s = w.strategy.build().expect("builds");
        assert_eq!(s.name(), "lwf+cassle");
        let r = run_one_step(s, TaskKind::AT, Some(TaskKind::AV));
        assert!(r.teacher_untouched);
        assert!(r.grads.aux > 0.0);
        assert_eq!(r.term_names.len(), 4);

        let bad = "strategy = { kind = \"lwf\", temprature = 1.0 }";
        let err = toml::from_str::<W>(bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("temprature"), "{err}");
        let bad_kind = "strategy = { kind = \"ewc\" }";
        assert!(toml::from_str::<W>(bad_kind).is_err());
    }

    #[test]
    fn single_strategy_keeps_plain_term_names() {
        let s = StrategyConfig::Lwf(LwfOptions::default())
            .build()
            .expect("builds");
        let r = run_one_step(s, TaskKind::AV, Some(TaskKind::A));
        assert_eq!(
            r.term_names,
            ["contrastive", "distillation"].map(String::from)
        );
        assert_eq!(r.counters.teacher_forwards, 1);
    }
}
