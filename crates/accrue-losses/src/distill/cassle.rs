//! CaSSLe distillation: a predictor from the current projection to the past one (method-spec §4.2).
//!
//! Paper: Fini et al., "Self-Supervised Models are Continual Learners", CVPR 2022. Reference
//! implementation: `DonkeyShot21/cassle:cassle/distillers/{base,predictive}.py` (the predictor
//! `distill_predictor = Sequential(Linear(D, 2048), BatchNorm1d(2048), ReLU, Linear(2048, D))`,
//! whose PyTorch keys `0`, `1`, `3` are our `linear1`, `norm`, `linear2`).
//!
//! The CL paper's adaptation: `L_kd = KL(P(g^{k−1}(f_a^{k−1}(x))) ‖ P(p(g^k(f_a^k(x)))))`,
//! teacher first, with the same `P` as LwF. Stage AV: `p: 512 → 2048 → 527`; stage AT:
//! `p: 512 → 2048 → 512`. A fresh predictor per stage, trained with the student.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor};

use crate::error::LossError;
use crate::kl::{KlDivConfig, kl_div};
use crate::util::check_matrix;

/// Configuration of a [`CasslePredictor`].
#[derive(Config, Debug, PartialEq)]
pub struct CasslePredictorConfig {
    /// Input size `D` (the current projection's dimension).
    pub d_input: usize,
    /// Output size (the teacher output's dimension).
    pub d_output: usize,
    /// Hidden size (`distill_proj_hidden_dim` in the reference).
    #[config(default = 2048)]
    pub d_hidden: usize,
    /// BatchNorm epsilon (PyTorch default).
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
    /// BatchNorm running-statistics momentum (PyTorch default).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl CasslePredictorConfig {
    /// Stage AV: current `g^AV` output (512) → the 527 AudioSet logits of the stage-A teacher.
    pub fn stage_av() -> Self {
        Self::new(512, 527)
    }

    /// Stage AT: current `g^AT` output (512) → the 512-d `g^AV` output of the stage-AV teacher.
    pub fn stage_at() -> Self {
        Self::new(512, 512)
    }

    /// Creates a fresh predictor. Linear layers use PyTorch's default initialisation
    /// (`U(−1/√fan_in, 1/√fan_in)` for weights and biases); BatchNorm starts at γ = 1, β = 0.
    pub fn init(&self, device: &Device) -> CasslePredictor {
        CasslePredictor {
            linear1: LinearConfig::new(self.d_input, self.d_hidden).init(device),
            norm: BatchNormConfig::new(self.d_hidden)
                .with_epsilon(self.bn_epsilon)
                .with_momentum(self.bn_momentum)
                .init(device),
            activation: Relu::new(),
            linear2: LinearConfig::new(self.d_hidden, self.d_output).init(device),
        }
    }
}

/// The CaSSLe predictor `p`: Linear → BatchNorm1d → ReLU → Linear.
#[derive(Module, Debug)]
pub struct CasslePredictor {
    /// `[d_input, d_hidden]` linear layer (reference key `0`).
    pub linear1: Linear,
    /// BatchNorm over the `d_hidden` features (reference key `1`). In training mode on an
    /// autodiff device it normalises with batch statistics and updates its running statistics.
    pub norm: BatchNorm,
    /// ReLU.
    pub activation: Relu,
    /// `[d_hidden, d_output]` linear layer (reference key `3`).
    pub linear2: Linear,
}

impl CasslePredictor {
    /// Maps the current projection to the teacher's output space.
    ///
    /// # Shapes
    ///
    /// - `projection`: `[B, d_input]`
    /// - output: `[B, d_output]`
    ///
    /// # Panics
    ///
    /// Panics if the last axis of `projection` is not `d_input` (as [`Linear::forward`]); use
    /// [`cassle_loss`] for a checked path.
    pub fn forward(&self, projection: Tensor<2>) -> Tensor<2> {
        let x = self.linear1.forward(projection);
        let x = self.norm.forward(x);
        let x = self.activation.forward(x);
        self.linear2.forward(x)
    }

    /// `[d_input, d_output]` of this predictor.
    pub fn dims(&self) -> (usize, usize) {
        let [d_input, _] = self.linear1.weight.shape().dims();
        let [_, d_output] = self.linear2.weight.shape().dims();
        (d_input, d_output)
    }
}

/// Configuration of the CaSSLe KL term. The default is the spec's recommendation (same `P` as
/// LwF).
#[derive(Config, Debug, PartialEq)]
pub struct CassleConfig {
    /// The divergence (teacher‖student, `T = 2` with `T²`, last axis, batch-mean).
    #[config(default = "KlDivConfig::lwf()")]
    pub kl: KlDivConfig,
}

/// The CaSSLe KL on an already-predicted student output:
/// `KL(P(teacher_head_out) ‖ P(predicted))`, teacher detached inside.
///
/// # Shapes
///
/// - `teacher_head_out`: `[B, C]`
/// - `predicted`: `[B, C]` (= `p(student projection)`)
/// - output: `[1]`
///
/// # Errors
///
/// Shape / configuration errors as [`kl_div`].
pub fn cassle_kl(
    teacher_head_out: Tensor<2>,
    predicted: Tensor<2>,
    config: &CassleConfig,
) -> crate::Result<Tensor<1>> {
    check_matrix("cassle_kl", "teacher_head_out", &teacher_head_out)?;
    kl_div(teacher_head_out.detach(), predicted, &config.kl)
}

/// The full CaSSLe term: runs `predictor` on the student projection, then [`cassle_kl`].
///
/// # Shapes
///
/// - `teacher_head_out`: `[B, C]` with `C = d_output`
/// - `student_projection`: `[B, D]` with `D = d_input`
/// - output: `[1]`
///
/// # Errors
///
/// [`LossError::Shape`] when the dimensions do not match the predictor, or when `B < 2` while
/// the predictor's BatchNorm is in training mode on an autodiff device (batch statistics of a
/// single sample are degenerate; PyTorch refuses this too).
pub fn cassle_loss(
    predictor: &CasslePredictor,
    teacher_head_out: Tensor<2>,
    student_projection: Tensor<2>,
    config: &CassleConfig,
) -> crate::Result<Tensor<1>> {
    let [b, d] = check_matrix("cassle_loss", "student_projection", &student_projection)?;
    let (d_input, d_output) = predictor.dims();
    if d != d_input {
        return Err(LossError::Shape {
            term: "cassle_loss",
            input: "student_projection",
            got: vec![b, d],
            expected: format!("[B, {d_input}]"),
        });
    }
    if teacher_head_out.dims() != [b, d_output] {
        return Err(LossError::Shape {
            term: "cassle_loss",
            input: "teacher_head_out",
            got: teacher_head_out.dims().to_vec(),
            expected: format!("[{b}, {d_output}]"),
        });
    }
    let training =
        student_projection.device().is_autodiff() && predictor.norm.training.is_enabled();
    if training && b < 2 {
        return Err(LossError::Shape {
            term: "cassle_loss",
            input: "student_projection",
            got: vec![b, d],
            expected: "B ≥ 2 while the predictor's BatchNorm is training".into(),
        });
    }
    let predicted = predictor.forward(student_projection);
    cassle_kl(teacher_head_out, predicted, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictor_shapes_and_gradients() {
        let device = Device::default().autodiff();
        let predictor = CasslePredictorConfig::new(8, 5)
            .with_d_hidden(16)
            .init(&device);
        assert_eq!(predictor.dims(), (8, 5));
        let z = Tensor::<2>::random([4, 8], burn::tensor::Distribution::Default, &device)
            .require_grad();
        let t = Tensor::<2>::random([4, 5], burn::tensor::Distribution::Default, &device)
            .require_grad();
        let loss =
            cassle_loss(&predictor, t.clone(), z.clone(), &CassleConfig::new()).expect("loss");
        let grads = loss.backward();
        assert!(
            z.grad(&grads).is_some(),
            "student projection gets a gradient"
        );
        assert!(
            predictor.linear1.weight.val().grad(&grads).is_some(),
            "predictor gets a gradient"
        );
        assert!(t.grad(&grads).is_none(), "the teacher is detached");
    }

    #[test]
    fn single_sample_batch_is_rejected_in_training() {
        let device = Device::default().autodiff();
        let predictor = CasslePredictorConfig::new(3, 2)
            .with_d_hidden(4)
            .init(&device);
        let z = Tensor::<2>::ones([1, 3], &device);
        let t = Tensor::<2>::ones([1, 2], &device);
        assert!(cassle_loss(&predictor, t, z, &CassleConfig::new()).is_err());
    }

    #[test]
    fn presets_match_the_spec() {
        let av = CasslePredictorConfig::stage_av();
        assert_eq!((av.d_input, av.d_hidden, av.d_output), (512, 2048, 527));
        let at = CasslePredictorConfig::stage_at();
        assert_eq!((at.d_input, at.d_hidden, at.d_output), (512, 2048, 512));
    }
}
