//! Composition: two strategies' terms summed with weights.
//!
//! `Combined<A, B>` runs both methods on the same step view. Each side's terms are prefixed
//! with its name (`lwf/distillation`) and scaled by its weight; the aux module is the pair of
//! both aux modules, so both sides' extras are trained. Capabilities are the union. Both
//! sides return their own contrastive term, so weights summing to 1 keep `L_c`'s weight. Replay
//! streams of both sides are concatenated (first side's first), and each side sees all of them
//! in [`StepView::replay`].

use accrue_losses::LossTerms;
use burn::module::{Module, ModuleDisplay};
use burn::tensor::Device;

use crate::error::Result;
use crate::model::Student;
use crate::strategy::{Capabilities, Replay, StageInfo, StepView, Strategy, TaskSource};

/// The aux modules of two composed strategies.
#[derive(Module, Debug)]
pub struct Pair<A: Module + ModuleDisplay, B: Module + ModuleDisplay> {
    /// First strategy's aux.
    pub first: A,
    /// Second strategy's aux.
    pub second: B,
}

/// Weighted sum of two strategies.
#[derive(Clone, Debug)]
pub struct Combined<A, B> {
    /// First strategy and its weight.
    pub first: (A, f64),
    /// Second strategy and its weight.
    pub second: (B, f64),
}

impl<A: Strategy, B: Strategy> Combined<A, B> {
    /// `weight_a · A + weight_b · B`.
    pub fn new(a: A, weight_a: f64, b: B, weight_b: f64) -> Self {
        Self {
            first: (a, weight_a),
            second: (b, weight_b),
        }
    }
}

impl<A: Strategy, B: Strategy> Strategy for Combined<A, B> {
    type Aux = Pair<A::Aux, B::Aux>;

    fn name(&self) -> String {
        format!("{}+{}", self.first.0.name(), self.second.0.name())
    }

    fn capabilities(&self, stage: &StageInfo) -> Capabilities {
        self.first
            .0
            .capabilities(stage)
            .union(self.second.0.capabilities(stage))
    }

    fn begin_stage(
        &mut self,
        stage: &StageInfo,
        student: &Student,
        device: &Device,
    ) -> Result<Self::Aux> {
        Ok(Pair {
            first: self.first.0.begin_stage(stage, student, device)?,
            second: self.second.0.begin_stage(stage, student, device)?,
        })
    }

    fn teacher(&self) -> Option<&Student> {
        self.first.0.teacher().or_else(|| self.second.0.teacher())
    }

    fn fork(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            first: (self.first.0.fork(device)?, self.first.1),
            second: (self.second.0.fork(device)?, self.second.1),
        })
    }

    fn loss_terms(&self, view: &StepView<'_>, aux: &Self::Aux) -> Result<LossTerms> {
        let mut terms = LossTerms::new();
        let a = self.first.0.loss_terms(view, &aux.first)?;
        terms.extend_scaled(a, &format!("{}/", self.first.0.name()), self.first.1)?;
        let b = self.second.0.loss_terms(view, &aux.second)?;
        terms.extend_scaled(b, &format!("{}/", self.second.0.name()), self.second.1)?;
        Ok(terms)
    }

    fn replay(&mut self, stage: &StageInfo, earlier: &[TaskSource]) -> Result<Vec<Replay>> {
        let mut streams = Vec::new();
        if self.first.0.capabilities(stage).replay {
            streams.extend(self.first.0.replay(stage, earlier)?);
        }
        if self.second.0.capabilities(stage).replay {
            streams.extend(self.second.0.replay(stage, earlier)?);
        }
        Ok(streams)
    }

    fn end_stage(
        &mut self,
        stage: &StageInfo,
        student: Student,
        aux: &Self::Aux,
    ) -> Result<Student> {
        let student = self.first.0.end_stage(stage, student, &aux.first)?;
        self.second.0.end_stage(stage, student, &aux.second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskKind;
    use crate::strategies::{Cassle, CassleOptions, Lwf};
    use crate::testing::*;

    #[test]
    fn lwf_plus_cassle_trains_both_extras() {
        let s = Combined::new(
            Lwf::default(),
            0.5,
            Cassle::new(CassleOptions {
                hidden: 16,
                ..Default::default()
            }),
            0.5,
        );
        let r = run_one_step(s, TaskKind::AT, Some(TaskKind::AV));
        assert_eq!(r.counters.teacher_forwards, 1, "a shared teacher runs once");
        assert!(r.teacher_untouched);
        assert!(r.grads.aux > 0.0, "CaSSLe's predictor");
        assert!(r.grads.previous_head > 0.0, "LwF's retained head");
        assert_eq!(
            r.term_names,
            [
                "lwf/contrastive",
                "lwf/distillation",
                "cassle/contrastive",
                "cassle/distillation"
            ]
            .map(String::from)
        );
    }
}
