//! Weight-space ensembling at stage ends (WiSE-FT): the stage's model is an interpolation
//! between the weights the stage started from and the weights it trained to.
//!
//! Wortsman, Ilharco, Kim, Li, Kornblith, Roelofs, Gontijo-Lopes, Hajishirzi, Farhadi,
//! Namkoong, Schmidt, "Robust fine-tuning of zero-shot models", CVPR 2022, eq. (1):
//! `θ = (1 − α)·θ₀ + α·θ₁`, applied to every entry of the state dict (reference:
//! github.com/mlfoundations/wise-ft, `src/models/wise_ft.py`, `_merge`); used between
//! consecutive tasks as in Stojanovski, Roth, Akata, "Momentum-based Weight Interpolation of
//! Strong Zero-Shot Models for Continual Learning", 2022.
//!
//! During the stage it trains as fine-tuning (`L = L_c`, optionally with an L2 pull
//! `λ·‖θ − θ₀‖²/P` towards the stage-start weights, `pull = true`); at the stage end every
//! tensor of the encoder (parameters, BatchNorm statistics, its own classification head) is
//! interpolated with `alpha` (α = 1: plain fine-tuning, α = 0: the stage's training of the
//! encoder is discarded). The projection heads are kept as trained: the stage's own head was
//! created by the stage and has no θ₀ worth returning to, and the others are not trained. A
//! first stage is fine-tuning unless `[encoder]` was trained on a task (`trained_on`).
//!
//! ```toml
//! strategy = { kind = "wise_ft", alpha = 0.5 }
//! ```
//!
//! Written only against accrue's public API and Burn's module visitors.

use std::collections::HashMap;

use accrue::continual::{
    Capabilities, LossTerms, MethodSpec, NoAux, Result, StageInfo, StepView, Strategy, Student,
    task_loss, task_loss_only,
};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

/// Options of `kind = "wise_ft"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WiseFtOptions {
    /// Weight of the trained weights θ₁ in the interpolation, in `[0, 1]`.
    pub alpha: f64,
    /// Also pull the weights towards θ₀ during the stage (`λ`-weighted mean squared distance).
    pub pull: bool,
}

impl Default for WiseFtOptions {
    fn default() -> Self {
        Self {
            alpha: 0.5,
            pull: false,
        }
    }
}

/// WiSE-FT between stages. See the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct WiseFt {
    options: WiseFtOptions,
    /// θ₀ by parameter id (parameters and BatchNorm statistics), on the host.
    start: HashMap<ParamId, TensorData>,
    /// θ₀ as tensors on the training device, for the pull term.
    start_tensors: Vec<(ParamId, Tensor<1>)>,
    interpolate: bool,
}

impl WiseFt {
    /// A WiSE-FT method with `options`.
    pub fn new(options: WiseFtOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    /// The registry constructor: options from the experiment file.
    ///
    /// # Errors
    /// Unknown keys (named, with their line) or `alpha` outside `[0, 1]`.
    pub fn from_spec(spec: &MethodSpec) -> Result<Self> {
        let options: WiseFtOptions = spec.options()?;
        if !(0.0..=1.0).contains(&options.alpha) {
            return Err(spec.error(format!("`alpha` = {} is not in [0, 1]", options.alpha)));
        }
        Ok(Self::new(options))
    }
}

/// Every float tensor of a module (parameters and running statistics), by id.
struct Collect(HashMap<ParamId, TensorData>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.insert(param.id, param.val().into_data());
    }
}

/// `(1 − α)·θ₀ + α·θ` for every tensor with a θ₀; the parameter keeps its id, device and
/// gradient requirement.
struct Interpolate<'a> {
    start: &'a HashMap<ParamId, TensorData>,
    alpha: f64,
    mixed: usize,
}

impl ModuleMapper for Interpolate<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(theta0) = self.start.get(&param.id) else {
            return param;
        };
        self.mixed += 1;
        let alpha = self.alpha;
        param.map(|theta1| {
            let autodiff = theta1.is_autodiff();
            let grad = theta1.is_require_grad();
            let theta1 = theta1.inner();
            let theta0 = Tensor::<D>::from_data(theta0.clone(), &theta1.device());
            let mixed = theta0.mul_scalar(1.0 - alpha) + theta1.mul_scalar(alpha);
            match (autodiff, grad) {
                (true, true) => mixed.autodiff().require_grad(),
                (true, false) => mixed.autodiff(),
                _ => mixed,
            }
        })
    }
}

/// Trainable parameters as flat tensors, by id (for the pull term).
struct Flat(Vec<(ParamId, Tensor<1>)>);

impl ModuleVisitor for Flat {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = param.val();
        if v.is_require_grad() {
            let n = v.shape().num_elements();
            self.0.push((param.id, v.reshape([n])));
        }
    }
}

impl Strategy for WiseFt {
    type Aux = NoAux;

    fn name(&self) -> String {
        "wise_ft".into()
    }

    fn capabilities(&self, _stage: &StageInfo) -> Capabilities {
        Capabilities {
            supervision: true,
            ..Capabilities::default()
        }
    }

    fn begin_stage(&mut self, stage: &StageInfo, student: &Student, _d: &Device) -> Result<NoAux> {
        self.interpolate = stage.previous.is_some();
        self.start.clear();
        self.start_tensors.clear();
        if self.interpolate {
            // `valid()` is a synchronised copy (BatchNorm statistics up to date) with the same
            // parameter ids.
            let snapshot = student.encoder.valid();
            let mut c = Collect(HashMap::new());
            snapshot.visit(&mut c);
            self.start = c.0;
            if self.options.pull {
                let mut f = Flat(Vec::new());
                student.encoder.visit(&mut f);
                self.start_tensors = f.0.into_iter().map(|(id, t)| (id, t.inner())).collect();
            }
        }
        Ok(NoAux {})
    }

    fn loss_terms(&self, view: &StepView<'_>, _aux: &NoAux) -> Result<LossTerms> {
        let task = view.primary();
        if !(self.options.pull && self.interpolate) {
            return task_loss_only(task);
        }
        let mut now = Flat(Vec::new());
        view.student.encoder.visit(&mut now);
        let start: HashMap<ParamId, &Tensor<1>> =
            self.start_tensors.iter().map(|(id, t)| (*id, t)).collect();
        let (mut sum, mut count) = (None::<Tensor<1>>, 0usize);
        for (id, theta) in now.0 {
            if let Some(theta0) = start.get(&id) {
                count += theta.dims()[0];
                let d = (theta - (*theta0).clone()).powi_scalar(2).sum();
                sum = Some(match sum {
                    Some(s) => s + d,
                    None => d,
                });
            }
        }
        let l_c = task_loss(task)?;
        let Some(sum) = sum else {
            return task_loss_only(task);
        };
        let pull = sum.div_scalar(count.max(1) as f64);
        let lambda = view.stage.lambda;
        Ok(LossTerms::new()
            .with(accrue::losses::CONTRASTIVE_TERM, l_c, 1.0 - lambda)?
            .with("pull", pull, lambda)?)
    }

    fn end_stage(&mut self, _stage: &StageInfo, student: Student, _aux: &NoAux) -> Result<Student> {
        if !self.interpolate || self.options.alpha == 1.0 {
            return Ok(student);
        }
        // Synchronise the BatchNorm statistics in place before reading them.
        drop(student.encoder.valid());
        let mut mapper = Interpolate {
            start: &self.start,
            alpha: self.options.alpha,
            mixed: 0,
        };
        let mut student = student;
        student.encoder = student.encoder.map(&mut mapper);
        if mapper.mixed == 0 {
            return Err(accrue::continual::ContinualError::strategy(
                &self.name(),
                "no parameter of the trained student matches the stage-start weights",
            ));
        }
        Ok(student)
    }

    fn fork(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            start_tensors: self
                .start_tensors
                .iter()
                .map(|(id, t)| (*id, t.clone().to_device(&device.clone().inner())))
                .collect(),
            ..self.clone()
        })
    }
}
