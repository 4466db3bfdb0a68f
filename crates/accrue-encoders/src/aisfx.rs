//! The 4-block ConvBlock CNN of the `aisfx` package (sound-effects embeddings).
//!
//! Paper: Ma et al., "Sound effects retrieval / cross-dataset training" (ISMIR 2022, model
//! "X-Sequential-CE"); the embedding network is the DCASE 2018 cross-task baseline
//! `Cnn_9layers` (Kong et al., arXiv:1808.00773) with max pooling. Reference implementation:
//! PyPI `aisfx==0.1.2`, `aisfx/models/cnn2d.py` (`ConvBlock`, `EmbeddingNet('max', 3, 1, 64)`,
//! `CrossNet`); weights `aisfx/models/checkpoint.pth` (MIT), a torch zip pickle whose root is
//! the tuple `(state_dict, ds_dict)`.
//!
//! Network: four double-3×3 ConvBlocks 64→128→256→512 with 2×2 max pooling after the first
//! three, mean over frequency, max over time → 512-d embedding. No dropout, no `bn0`, no
//! `fc1`. Nine classification heads `fc[i] = Linear(512, 256) → ReLU → Linear(256, 128) →
//! ReLU → Linear(128, K_i)`, one per training library.
//!
//! Input: the package's log-mel (44.1 kHz, window 2048, hop 1024, 96 HTK mels, 0–22 050 Hz,
//! unit-sum filters, power, `log10(1 + 10⁴·x)`, divided by 9.4578), in 100-frame blocks,
//! `[B, 1, 100, 96]`. This module takes that tensor; it has no front end of its own.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::encoder::{AudioBody, EncoderOutput};
use crate::error::EncoderError;
use crate::layers::{ConvBlock, ConvBlockConfig, Pool};

/// The classes of the nine heads of the released checkpoint, in head order: prosfx,
/// soundlyTrain, ucsMixed, soundstormBalanced, productionelementsBalanced,
/// cartoonexpressBalanced, hpxdigitalBalanced, series6000Balanced, series9000Balanced.
pub const AISFX_HEAD_CLASSES: [usize; 9] = [78, 79, 69, 81, 10, 27, 3, 23, 8];

/// Configuration of [`Aisfx`].
#[derive(Config, Debug)]
pub struct AisfxConfig {
    /// Width of the first block; blocks are `w, 2w, 4w, 8w` and the embedding is `8w`.
    #[config(default = 64)]
    pub base_width: usize,
    /// Classes of each head.
    pub head_classes: Vec<usize>,
    /// The head whose logits [`AudioBody::forward_features`] returns.
    #[config(default = 0)]
    pub default_head: usize,
}

impl AisfxConfig {
    /// The released network: width 64 (512-d embedding), the nine heads of the checkpoint.
    pub fn released() -> Self {
        Self::new(AISFX_HEAD_CLASSES.to_vec())
    }

    /// Width 8 (64-d embedding), one head of `classes`: ≈ 77 k parameters with 10 classes.
    pub fn tiny(classes: usize) -> Self {
        Self::new(vec![classes]).with_base_width(8)
    }

    /// Checks widths and heads.
    pub fn validate(&self) -> crate::Result<()> {
        if self.base_width == 0 || self.head_classes.contains(&0) {
            return Err(EncoderError::Config(
                "base_width and every head's classes must be non-zero".into(),
            ));
        }
        if self.default_head >= self.head_classes.len() {
            return Err(EncoderError::Config(format!(
                "default_head {} but only {} heads",
                self.default_head,
                self.head_classes.len()
            )));
        }
        Ok(())
    }

    /// Builds a freshly initialised network (Kaiming-uniform for leaky-ReLU, as the package).
    ///
    /// # Panics
    /// On a configuration that [`AisfxConfig::validate`] rejects.
    pub fn init(&self, device: &Device) -> Aisfx {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let w = self.base_width;
        let block = |cin, cout| ConvBlockConfig::new(cin, cout).init(device);
        let d = 8 * w;
        let kaiming = Initializer::KaimingUniform {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: false,
        };
        let linear = |i, o| {
            let mut l = LinearConfig::new(i, o)
                .with_initializer(kaiming.clone())
                .init(device);
            l.bias = Some(Initializer::Zeros.init([o], device));
            l
        };
        Aisfx {
            embedding_net: AisfxEmbeddingNet {
                conv_block1: block(1, w),
                conv_block2: block(w, 2 * w),
                conv_block3: block(2 * w, 4 * w),
                conv_block4: block(4 * w, d),
            },
            fc: self
                .head_classes
                .iter()
                .map(|&k| AisfxHead {
                    l1: linear(d, d / 2),
                    l2: linear(d / 2, d / 4),
                    l3: linear(d / 4, k),
                })
                .collect(),
            default_head: self.default_head,
        }
    }
}

/// aisfx `EmbeddingNet` (checkpoint prefix `embedding_net`).
#[derive(Module, Debug)]
pub struct AisfxEmbeddingNet {
    /// ConvBlock(1 → w), max-pool 2×2.
    pub conv_block1: ConvBlock,
    /// ConvBlock(w → 2w), max-pool 2×2.
    pub conv_block2: ConvBlock,
    /// ConvBlock(2w → 4w), max-pool 2×2.
    pub conv_block3: ConvBlock,
    /// ConvBlock(4w → 8w), no pooling.
    pub conv_block4: ConvBlock,
}

impl AisfxEmbeddingNet {
    /// # Shapes
    /// - input: `[B, 1, T, M]`
    /// - output: `[B, 8w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv_block1.forward(x, Pool::Max(2, 2));
        let x = self.conv_block2.forward(x, Pool::Max(2, 2));
        let x = self.conv_block3.forward(x, Pool::Max(2, 2));
        let x = self.conv_block4.forward(x, Pool::Identity);
        let x: Tensor<3> = x.mean_dim(3).squeeze_dim(3);
        x.max_dim(2).squeeze_dim(2)
    }
}

/// One classification head (checkpoint `fc.{i}.0`, `fc.{i}.2`, `fc.{i}.4`).
#[derive(Module, Debug)]
pub struct AisfxHead {
    /// Linear D → D/2.
    pub l1: Linear,
    /// Linear D/2 → D/4.
    pub l2: Linear,
    /// Linear D/4 → K.
    pub l3: Linear,
}

impl AisfxHead {
    /// # Shapes
    /// - input: `[B, D]`
    /// - output: `[B, K]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.l3
            .forward(relu(self.l2.forward(relu(self.l1.forward(x)))))
    }
}

/// The aisfx `CrossNet`: embedding network plus one head per training library.
#[derive(Module, Debug)]
pub struct Aisfx {
    /// The embedding network.
    pub embedding_net: AisfxEmbeddingNet,
    /// The heads.
    pub fc: Vec<AisfxHead>,
    /// The head used by [`AudioBody::forward_features`].
    pub default_head: usize,
}

impl Aisfx {
    /// The logits of every head.
    ///
    /// # Shapes
    /// - `features`: `[B, 1, T, M]`
    /// - output: one `[B, K_i]` per head
    pub fn forward_heads(&self, features: Tensor<4>) -> (Tensor<2>, Vec<Tensor<2>>) {
        let embedding = self.embedding_net.forward(features);
        let heads = self
            .fc
            .iter()
            .map(|h| h.forward(embedding.clone()))
            .collect();
        (embedding, heads)
    }

    /// Key remappings from `checkpoint.pth`'s state dict (the tuple's first element) to this
    /// module: `fc.{i}.{0,2,4}` → `fc.{i}.{l1,l2,l3}`.
    pub fn pytorch_key_remaps() -> Vec<(String, String)> {
        vec![
            (r"^fc\.(\d+)\.0\.".into(), "fc.${1}.l1.".into()),
            (r"^fc\.(\d+)\.2\.".into(), "fc.${1}.l2.".into()),
            (r"^fc\.(\d+)\.4\.".into(), "fc.${1}.l3.".into()),
        ]
    }
}

impl AudioBody for Aisfx {
    fn embedding_dim(&self) -> usize {
        self.embedding_net
            .conv_block4
            .conv1
            .weight
            .lazy_shape()
            .dims::<4>()[0]
    }

    fn num_classes(&self) -> usize {
        self.fc
            .get(self.default_head)
            .map(|h| h.l3.weight.lazy_shape().dims::<2>()[1])
            .unwrap_or(0)
    }

    /// # Shapes
    /// - `features`: `[B, 1, T, M]` (T, M ≥ 8)
    /// - output: embedding `[B, 8w]` (no dropout), logits of the default head
    fn forward_features(&self, features: Tensor<4>) -> EncoderOutput {
        let embedding = self.embedding_net.forward(features);
        let logits = match self.fc.get(self.default_head) {
            Some(h) => h.forward(embedding.clone()),
            None => embedding.clone().slice([0..embedding.dims()[0], 0..0]),
        };
        EncoderOutput {
            embedding_dropped: embedding.clone(),
            embedding,
            logits,
        }
    }
}
