//! Layers that the front end and the encoders share.
//!
//! [`BatchNorm`] is a PyTorch-faithful batch norm (`torch.nn.BatchNorm{1,2}d`): Burn's own
//! `BatchNorm` feeds the *biased* batch variance into its running variance, whereas PyTorch (and
//! so every PANNs checkpoint) uses the unbiased one (method-spec §1.4). The struct has the same
//! name and field names as Burn's, so burn-store's PyTorch adapter maps `weight`/`bias` to
//! `gamma`/`beta` for it. The front end (`bn0`) and the encoders use it.

use burn::config::Config;
use burn::module::{Flag, Module, Param, RunningState};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

/// Configuration of a PyTorch-semantics [`BatchNorm`].
#[derive(Config, Debug)]
pub struct BatchNormConfig {
    /// Number of channels (axis 1 of the input).
    pub num_features: usize,
    /// Added to the variance before the square root.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Running-statistics momentum: `running ← (1 − m)·running + m·batch`.
    #[config(default = 0.1)]
    pub momentum: f64,
    /// Initialise the scale `gamma` to zero instead of one (zero-init residual, §1.5).
    #[config(default = false)]
    pub zero_gamma: bool,
}

impl BatchNormConfig {
    /// A batch norm with `gamma = 1` (or 0), `beta = 0`, running mean 0 and running variance 1.
    pub fn init(&self, device: &Device) -> BatchNorm {
        let gamma = if self.zero_gamma {
            Initializer::Zeros
        } else {
            Initializer::Ones
        };
        BatchNorm {
            gamma: gamma.init([self.num_features], device),
            beta: Initializer::Zeros.init([self.num_features], device),
            training: Param::from_bool(true),
            running_mean: RunningState::new(Tensor::zeros([self.num_features], device)),
            running_var: RunningState::new(Tensor::ones([self.num_features], device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

/// Batch normalisation with PyTorch's semantics (`torch.nn.BatchNorm2d`).
///
/// Training mode (an autodiff device and an enabled `training` flag) normalises with the biased
/// batch statistics and updates the running variance with the *unbiased* one; otherwise the
/// running statistics are used.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Scale, `[C]` (PyTorch `weight`).
    pub gamma: Param<Tensor<1>>,
    /// Shift, `[C]` (PyTorch `bias`).
    pub beta: Param<Tensor<1>>,
    /// Whether batch statistics are used and running statistics updated.
    pub training: Param<Flag>,
    /// Running mean, `[C]`.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance, `[C]`.
    pub running_var: RunningState<Tensor<1>>,
    /// Running-statistics momentum.
    pub momentum: f64,
    /// Variance epsilon.
    pub epsilon: f64,
}

impl BatchNorm {
    /// Normalises over every axis but axis 1.
    ///
    /// # Shapes
    /// - input: `[B, C, ...]`
    /// - output: same
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if input.device().is_autodiff() && self.training.is_enabled() {
            let dims = input.dims();
            let n: usize = dims
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, d)| d)
                .product();
            let (output, mean, variance) = crate::kernels::batch_norm_train(
                &input,
                &self.gamma.val(),
                &self.beta.val(),
                self.epsilon,
            )
            .unwrap_or_else(|| {
                let out = burn::tensor::module::batch_norm_train(
                    input,
                    self.gamma.val(),
                    self.beta.val(),
                    self.epsilon,
                );
                (out.output, out.mean, out.variance)
            });
            let device = output.device();
            let unbias = if n > 1 {
                n as f64 / (n as f64 - 1.0)
            } else {
                1.0
            };
            let m = self.momentum;
            let running_mean = self.running_mean.value_sync().to_device(&device);
            let running_var = self.running_var.value_sync().to_device(&device);
            let mean = running_mean.mul_scalar(1.0 - m) + mean.detach().mul_scalar(m);
            let var = running_var.mul_scalar(1.0 - m) + variance.detach().mul_scalar(m * unbias);
            self.running_mean.update(mean.detach());
            self.running_var.update(var.detach());
            output
        } else {
            // Folded into one scale and shift per channel: two passes over the input instead
            // of the four of `(x − μ)/√(σ² + ε)·γ + β`.
            let device = input.device();
            let inv_std = self
                .running_var
                .value()
                .to_device(&device)
                .add_scalar(self.epsilon)
                .sqrt()
                .recip();
            let scale = self.gamma.val() * inv_std;
            let shift =
                self.beta.val() - self.running_mean.value().to_device(&device) * scale.clone();
            let mut per_channel = [1usize; D];
            per_channel[1] = scale.dims()[0];
            input * scale.reshape(per_channel) + shift.reshape(per_channel)
        }
    }
}
