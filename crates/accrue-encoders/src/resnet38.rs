//! PANNs ResNet-38, the audio encoder the paper continues to pre-train.
//!
//! Paper: Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern
//! Recognition", TASLP 2020. Reference implementation:
//! `qiuqiangkong/audioset_tagging_cnn@542c8c8bbb4287de5b2b622bc502423b27474b33:pytorch/models.py`
//! (`ResNet38`, `_ResNet`,
//! `_ResnetBasicBlock`, `ConvBlock`); checkpoint `ResNet38_mAP=0.434.pth` (Zenodo 3987831).
//! Exact specification: method-spec §1.4–1.7. 73,783,247 trainable parameters.
//!
//! Field names mirror the checkpoint's key hierarchy (`conv_block1`, `resnet.layer{L}.{b}`,
//! `conv_block_after1`, `fc1`, `fc_audioset`); the only renames are the front end (held in
//! `frontend`) and the shortcut `downsample.1`/`downsample.2` → `downsample.conv`/`.bn`
//! (index 0 of PyTorch's `Sequential` is the parameter-free average pool); see
//! [`ResNet38::pytorch_key_remaps`].

use accrue_audio::frontend::{FrontEnd, FrontEndConfig, panns_key_remaps};
use accrue_core::kernels::conv2d;
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::encoder::{AudioBody, AudioEncoder, EncoderOutput, count_trainable};
use crate::error::EncoderError;
use crate::layers::{
    BatchNorm, BatchNormConfig, ConvBlock, ConvBlockConfig, Pool, conv_xavier, linear_xavier,
    panns_head,
};

/// Configuration of [`ResNet38`].
#[derive(Config, Debug)]
pub struct ResNet38Config {
    /// The front end (log-mel, `bn0`, SpecAugment).
    pub front_end: FrontEndConfig,
    /// Channel widths of the four residual stages (ConvBlock 1 outputs `widths[0]`).
    #[config(default = "[64, 128, 256, 512]")]
    pub widths: [usize; 4],
    /// Basic blocks per stage.
    #[config(default = "[3, 4, 6, 3]")]
    pub layers: [usize; 4],
    /// Output width of `conv_block_after1`, which is also the `fc1` width and the embedding size.
    #[config(default = 2048)]
    pub embedding_dim: usize,
    /// Number of classes of `fc_audioset`.
    #[config(default = 527)]
    pub num_classes: usize,
    /// Dropout inside each basic block (between the two convolutions).
    #[config(default = 0.1)]
    pub dropout_block: f64,
    /// Dropout after ConvBlock 1, after the residual stages and after `conv_block_after1`.
    #[config(default = 0.2)]
    pub dropout_stage: f64,
    /// Dropout before `fc1` and on the returned embedding.
    #[config(default = 0.5)]
    pub dropout_final: f64,
}

impl ResNet38Config {
    /// PANNs ResNet-38 exactly as released: 32 kHz front end, widths 64/128/256/512, blocks
    /// [3, 4, 6, 3], 2048-d embedding, 527 AudioSet classes.
    pub fn panns() -> Self {
        Self::new(FrontEndConfig::panns_32k())
    }

    /// A small variant that trains on two CPU cores: same topology (ConvBlock, four residual
    /// stages with pooled shortcuts, ConvBlock after, `fc1`), one basic block per stage,
    /// widths 8/16/32/64 and a 64-d embedding (≈ 157 k trainable parameters with 16
    /// classes, ≈ 190 k with 527). Change the front end or classes with the `with_*` methods.
    pub fn tiny() -> Self {
        Self::new(FrontEndConfig::panns_32k())
            .with_widths([8, 16, 32, 64])
            .with_layers([1, 1, 1, 1])
            .with_embedding_dim(64)
    }

    /// Checks widths, depths and dropout probabilities.
    pub fn validate(&self) -> crate::Result<()> {
        if self.widths.contains(&0) || self.embedding_dim == 0 || self.num_classes == 0 {
            return Err(EncoderError::Config(format!(
                "widths {:?}, embedding_dim {} and num_classes {} must be non-zero",
                self.widths, self.embedding_dim, self.num_classes
            )));
        }
        if self.layers.contains(&0) {
            return Err(EncoderError::Config(format!(
                "every stage needs at least one block, got {:?}",
                self.layers
            )));
        }
        for p in [self.dropout_block, self.dropout_stage, self.dropout_final] {
            if !(0.0..1.0).contains(&p) {
                return Err(EncoderError::Config(format!(
                    "dropout probability {p} is not in [0, 1)"
                )));
            }
        }
        Ok(())
    }

    /// Builds a freshly initialised network: Xavier-uniform convolutions and linears with zero
    /// bias, BN weight 1 / bias 0, and zero-init `bn2.weight` in every basic block (§1.5).
    ///
    /// # Panics
    /// On a configuration that [`ResNet38Config::validate`] rejects.
    pub fn init(&self, device: &Device) -> ResNet38 {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let w = self.widths;
        let mut inplanes = w[0];
        let mut make = |planes: usize, blocks: usize, stride: usize| {
            let mut layer = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let (cin, s) = if b == 0 {
                    (inplanes, stride)
                } else {
                    (planes, 1)
                };
                layer.push(BasicBlock::new(cin, planes, s, self.dropout_block, device));
            }
            inplanes = planes;
            layer
        };
        let resnet = ResNetLayers {
            layer1: make(w[0], self.layers[0], 1),
            layer2: make(w[1], self.layers[1], 2),
            layer3: make(w[2], self.layers[2], 2),
            layer4: make(w[3], self.layers[3], 2),
        };
        ResNet38 {
            // Five ×2 time poolings: shorter inputs are zero-padded, not a pooling failure.
            frontend: self.front_end.padded_for_poolings(5).init(device),
            conv_block1: ConvBlockConfig::new(1, w[0]).init(device),
            resnet,
            conv_block_after1: ConvBlockConfig::new(w[3], self.embedding_dim).init(device),
            fc1: linear_xavier(self.embedding_dim, self.embedding_dim, device),
            fc_audioset: linear_xavier(self.embedding_dim, self.num_classes, device),
            dropout_stage: DropoutConfig::new(self.dropout_stage).init(),
            dropout_final: DropoutConfig::new(self.dropout_final).init(),
        }
    }
}

/// The shortcut of the first block of a strided stage: 2×2 average pool → 1×1 conv → BN
/// (PyTorch `downsample = Sequential(AvgPool2d(2), conv1x1, BatchNorm2d)`), or, for a
/// stride-1 channel change, 1×1 conv → BN.
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1×1 convolution `[planes, inplanes, 1, 1]` (checkpoint `downsample.1`).
    pub conv: Conv2d,
    /// Batch norm `[planes]` (checkpoint `downsample.2`).
    pub bn: BatchNorm,
    /// Whether the 2×2 average pool comes first.
    pub pool: bool,
}

impl Downsample {
    /// # Shapes
    /// - input: `[B, inplanes, T, F]`
    /// - output: `[B, planes, T/2, F/2]` (or same size without pooling)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.pool {
            Pool::Avg(2, 2).forward(x)
        } else {
            x
        };
        self.bn.forward(conv2d(&self.conv, x))
    }
}

/// PANNs `_ResnetBasicBlock` (expansion 1).
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3×3 convolution `[planes, inplanes, 3, 3]`.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3 convolution `[planes, planes, 3, 3]`.
    pub conv2: Conv2d,
    /// Batch norm after `conv2` (zero-initialised weight).
    pub bn2: BatchNorm,
    /// Dropout between the two convolutions (p = 0.1).
    pub dropout: Dropout,
    /// Pooled shortcut, in the first block of stages 2–4.
    pub downsample: Option<Downsample>,
    /// 2: the main path starts with a 2×2 average pool.
    pub stride: usize,
}

impl BasicBlock {
    fn new(inplanes: usize, planes: usize, stride: usize, p: f64, device: &Device) -> Self {
        let downsample = (stride != 1 || inplanes != planes).then(|| Downsample {
            conv: conv_xavier(inplanes, planes, 1, device),
            bn: BatchNormConfig::new(planes).init(device),
            pool: stride == 2,
        });
        Self {
            conv1: conv_xavier(inplanes, planes, 3, device),
            bn1: BatchNormConfig::new(planes).init(device),
            conv2: conv_xavier(planes, planes, 3, device),
            bn2: BatchNormConfig::new(planes)
                .with_zero_gamma(true)
                .init(device),
            dropout: DropoutConfig::new(p).init(),
            downsample,
            stride,
        }
    }

    /// # Shapes
    /// - input: `[B, inplanes, T, F]`
    /// - output: `[B, planes, T/stride, F/stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = x.clone();
        let out = if self.stride == 2 {
            Pool::Avg(2, 2).forward(x)
        } else {
            x
        };
        let out = relu(self.bn1.forward(conv2d(&self.conv1, out)));
        let out = crate::dropout::dropout(&self.dropout, out);
        let out = self.bn2.forward(conv2d(&self.conv2, out));
        let identity = match &self.downsample {
            Some(d) => d.forward(identity),
            None => identity,
        };
        relu(out + identity)
    }
}

/// PANNs `_ResNet` with basic blocks (checkpoint prefix `resnet`).
#[derive(Module, Debug)]
pub struct ResNetLayers {
    /// Stage 1, stride 1.
    pub layer1: Vec<BasicBlock>,
    /// Stage 2, first block stride 2.
    pub layer2: Vec<BasicBlock>,
    /// Stage 3, first block stride 2.
    pub layer3: Vec<BasicBlock>,
    /// Stage 4, first block stride 2.
    pub layer4: Vec<BasicBlock>,
}

impl ResNetLayers {
    /// # Shapes
    /// - input: `[B, w0, T, F]`
    /// - output: `[B, w3, T/8, F/8]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = x;
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        x
    }
}

/// PANNs ResNet-38 with its front end.
#[derive(Module, Debug)]
pub struct ResNet38 {
    /// Log-mel front end with `bn0` (checkpoint keys `spectrogram_extractor.*`,
    /// `logmel_extractor.melW`, `bn0.*`).
    pub frontend: FrontEnd,
    /// ConvBlock(1 → w0) followed by a 2×2 average pool.
    pub conv_block1: ConvBlock,
    /// The four residual stages.
    pub resnet: ResNetLayers,
    /// ConvBlock(w3 → D), no pooling.
    pub conv_block_after1: ConvBlock,
    /// Linear D → D (then ReLU): the embedding layer.
    pub fc1: Linear,
    /// Linear D → K: the AudioSet head (g^A).
    pub fc_audioset: Linear,
    /// Stage dropout (p = 0.2).
    pub dropout_stage: Dropout,
    /// Final dropout (p = 0.5).
    pub dropout_final: Dropout,
}

impl ResNet38 {
    /// Waveform to outputs (front end included).
    ///
    /// # Shapes
    /// - `wave`: `[B, L]`
    /// - output: embedding `[B, D]`, logits `[B, K]`
    pub fn forward(&self, wave: Tensor<2>) -> EncoderOutput {
        self.forward_features(self.frontend.forward(wave))
    }

    /// The convolutional trunk: everything before the global pooling.
    ///
    /// # Shapes
    /// - `features`: `[B, 1, T, M]`, T ≥ 32 and M ≥ 32
    /// - output: `[B, D, ⌊T/32⌋, ⌊M/32⌋]`
    pub fn trunk(&self, features: Tensor<4>) -> Tensor<4> {
        let x = self.conv_block1.forward(features, Pool::Avg(2, 2));
        let x = crate::dropout::dropout(&self.dropout_stage, x);
        let x = self.resnet.forward(x);
        let x = Pool::Avg(2, 2).forward(x);
        let x = crate::dropout::dropout(&self.dropout_stage, x);
        let x = self.conv_block_after1.forward(x, Pool::Identity);
        crate::dropout::dropout(&self.dropout_stage, x)
    }

    /// Frames of the front end averaged into one [`ResNet38::trunk`] output frame: 32 (five
    /// 2×2 average pools: ConvBlock 1, the three strided stages, the pool before
    /// `conv_block_after1`).
    pub const TIME_POOLING: usize = 32;

    /// Key remappings from a PANNs checkpoint (`checkpoint['model']`) to this module, as
    /// `(regex, replacement)` pairs applied in order.
    pub fn pytorch_key_remaps() -> Vec<(String, String)> {
        let mut remaps = vec![(
            r"^(spectrogram_extractor|logmel_extractor|bn0)\.".to_string(),
            "frontend.${1}.".to_string(),
        )];
        remaps.extend(panns_key_remaps());
        remaps.push((r"\.downsample\.1\.".into(), ".downsample.conv.".into()));
        remaps.push((r"\.downsample\.2\.".into(), ".downsample.bn.".into()));
        remaps
    }
}

impl AudioBody for ResNet38 {
    fn embedding_dim(&self) -> usize {
        self.fc1.weight.lazy_shape().dims::<2>()[1]
    }

    fn num_classes(&self) -> usize {
        self.fc_audioset.weight.lazy_shape().dims::<2>()[1]
    }

    /// # Shapes
    /// - `features`: `[B, 1, T, M]`, T ≥ 32 and M ≥ 32
    /// - output: embedding `[B, D]`, logits `[B, K]`
    fn forward_features(&self, features: Tensor<4>) -> EncoderOutput {
        panns_head(
            self.trunk(features),
            &self.dropout_final,
            &self.fc1,
            &self.fc_audioset,
        )
    }
}

impl AudioEncoder for ResNet38 {
    fn front_end(&self) -> &FrontEnd {
        &self.frontend
    }

    fn trainable_params(&self) -> usize {
        count_trainable(self)
    }
}
