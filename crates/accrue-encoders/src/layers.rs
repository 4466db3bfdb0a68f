//! Building blocks shared by the PANNs CNN family and the aisfx network.
//!
//! Paper: Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern
//! Recognition", TASLP 2020. Reference implementation:
//! `qiuqiangkong/audioset_tagging_cnn:pytorch/models.py` (`ConvBlock`, `ConvBlock5x5`,
//! `init_layer`, `init_bn`), specified in method-spec §1.4–1.5.
//!
//! [`BatchNorm`] is a PyTorch-faithful batch norm: Burn's own `BatchNorm` feeds the *biased*
//! batch variance into its running variance, whereas PyTorch (and so every PANNs checkpoint)
//! uses the unbiased one (method-spec §1.4). The struct has the same name and field names as
//! Burn's, so burn-store's PyTorch adapter maps `weight`/`bias` to `gamma`/`beta` for it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use accrue_core::kernels::{avg_pool2d, conv2d};
pub use accrue_core::nn::{BatchNorm, BatchNormConfig};

/// A bias-free `k×k` convolution with "same" padding and Xavier-uniform weights (PANNs
/// `init_layer`).
pub fn conv_xavier(cin: usize, cout: usize, k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .with_initializer(Initializer::XavierUniform { gain: 1.0 })
        .init(device)
}

/// A linear layer with Xavier-uniform weights and a zero bias (PANNs `init_layer`).
pub fn linear_xavier(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::XavierUniform { gain: 1.0 })
        .init(device);
    linear.bias = Some(Initializer::Zeros.init([d_out], device));
    linear
}

/// The pooling that closes a [`ConvBlock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// `F.avg_pool2d(kernel = stride = (h, w))`, floor mode.
    Avg(usize, usize),
    /// `F.max_pool2d(kernel = stride = (h, w))`, floor mode.
    Max(usize, usize),
    /// No pooling (`pool_size = (1, 1)`).
    Identity,
}

impl Pool {
    /// Applies the pooling.
    ///
    /// # Shapes
    /// - input: `[B, C, T, F]`
    /// - output: `[B, C, ⌊T/h⌋, ⌊F/w⌋]`
    pub fn forward(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Pool::Avg(h, w) if (h, w) != (1, 1) => avg_pool2d(x, [h, w]),
            Pool::Max(h, w) if (h, w) != (1, 1) => MaxPool2dConfig::new([h, w]).init().forward(x),
            _ => x,
        }
    }
}

/// Configuration of a [`ConvBlock`].
#[derive(Config, Debug)]
pub struct ConvBlockConfig {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size (3 for `ConvBlock`, 5 for `ConvBlock5x5`).
    #[config(default = 3)]
    pub kernel: usize,
    /// Two conv–BN–ReLU stages (`ConvBlock`) or one (`ConvBlock5x5`).
    #[config(default = true)]
    pub double: bool,
}

impl ConvBlockConfig {
    /// Xavier convolutions, BN weight 1 / bias 0.
    pub fn init(&self, device: &Device) -> ConvBlock {
        let (conv2, bn2) = if self.double {
            (
                Some(conv_xavier(self.cout, self.cout, self.kernel, device)),
                Some(BatchNormConfig::new(self.cout).init(device)),
            )
        } else {
            (None, None)
        };
        ConvBlock {
            conv1: conv_xavier(self.cin, self.cout, self.kernel, device),
            bn1: BatchNormConfig::new(self.cout).init(device),
            conv2,
            bn2,
        }
    }
}

/// PANNs `ConvBlock` (conv3×3 → BN → ReLU → conv3×3 → BN → ReLU → pool) or, without the
/// second stage and with 5×5 kernels, `ConvBlock5x5`. Checkpoint keys: `conv1.weight`,
/// `bn1.*`, `conv2.weight`, `bn2.*`.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// First convolution, `[cout, cin, k, k]`.
    pub conv1: Conv2d,
    /// First batch norm, `[cout]`.
    pub bn1: BatchNorm,
    /// Second convolution, `[cout, cout, k, k]` (absent in `ConvBlock5x5`).
    pub conv2: Option<Conv2d>,
    /// Second batch norm (absent in `ConvBlock5x5`).
    pub bn2: Option<BatchNorm>,
}

impl ConvBlock {
    /// # Shapes
    /// - input: `[B, cin, T, F]`
    /// - output: `[B, cout, T', F']` after `pool`
    pub fn forward(&self, x: Tensor<4>, pool: Pool) -> Tensor<4> {
        let mut x = relu(self.bn1.forward(conv2d(&self.conv1, x)));
        if let (Some(conv2), Some(bn2)) = (&self.conv2, &self.bn2) {
            x = relu(bn2.forward(conv2d(conv2, x)));
        }
        pool.forward(x)
    }
}

/// The PANNs head every encoder of this crate ends with: [`panns_global_pool`], dropout,
/// `fc1` + ReLU (the embedding f_a), its dropped copy (for contrastive heads) and the
/// `fc_audioset` logits (from the un-dropped embedding).
///
/// # Shapes
/// - `x`: `[B, C, T, F]`
/// - output: embedding `[B, D]`, logits `[B, K]`
pub fn panns_head(
    x: Tensor<4>,
    dropout: &burn::nn::Dropout,
    fc1: &Linear,
    fc_audioset: &Linear,
) -> crate::encoder::EncoderOutput {
    let x = crate::dropout::dropout(dropout, panns_global_pool(x));
    let embedding = relu(fc1.forward(x));
    let embedding_dropped = crate::dropout::dropout(dropout, embedding.clone());
    let logits = fc_audioset.forward(embedding.clone());
    crate::encoder::EncoderOutput {
        embedding,
        embedding_dropped,
        logits,
    }
}

/// PANNs global pooling: mean over frequency, then max + mean over time.
///
/// # Shapes
/// - input: `[B, C, T, F]`
/// - output: `[B, C]`
pub fn panns_global_pool(x: Tensor<4>) -> Tensor<2> {
    let x: Tensor<3> = x.mean_dim(3).squeeze_dim(3);
    let max: Tensor<2> = x.clone().max_dim(2).squeeze_dim(2);
    let mean: Tensor<2> = x.mean_dim(2).squeeze_dim(2);
    max + mean
}
