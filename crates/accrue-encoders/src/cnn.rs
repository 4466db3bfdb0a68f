//! The PANNs ConvBlock CNN family: Cnn14 (the audio encoder of MS-CLAP and LAION-CLAP), Cnn10
//! and Cnn6.
//!
//! Paper: Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern
//! Recognition", TASLP 2020. Reference implementation:
//! `qiuqiangkong/audioset_tagging_cnn@542c8c8bbb4287de5b2b622bc502423b27474b33:pytorch/models.py`
//! (`Cnn14`, `Cnn10`, `Cnn6`), as shipped
//! in PyPI `panns-hear==0.2.1` (`panns_hear/models.py`, `Cnn14`). Trainable parameters:
//! Cnn14 80,753,615; Cnn10 5,219,279; Cnn6 4,837,455.
//!
//! All three share: front end → `conv_block{i}` (avg-pool 2×2, dropout 0.2) → mean over
//! frequency → max + mean over time → dropout 0.5 → `fc1` + ReLU → embedding; `fc_audioset`
//! on the un-dropped embedding. Cnn14 has six double-3×3 blocks and no pooling after the last;
//! Cnn10 four double-3×3 blocks; Cnn6 four single-5×5 blocks (`ConvBlock5x5`). The blocks
//! are held in `conv_blocks[i]` (checkpoint `conv_block{i+1}`).

use accrue_audio::frontend::{FrontEnd, FrontEndConfig, panns_key_remaps};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{Device, Tensor};

use crate::encoder::{AudioBody, AudioEncoder, EncoderOutput, count_trainable};
use crate::error::EncoderError;
use crate::layers::{ConvBlock, ConvBlockConfig, Pool, linear_xavier, panns_head};

/// Configuration of a [`PannsCnn`].
#[derive(Config, Debug)]
pub struct PannsCnnConfig {
    /// The front end.
    pub front_end: FrontEndConfig,
    /// Output channels of each ConvBlock; the last is the embedding size.
    pub widths: Vec<usize>,
    /// Convolution kernel size (3, or 5 for Cnn6).
    #[config(default = 3)]
    pub kernel: usize,
    /// Two conv–BN–ReLU stages per block (`ConvBlock`) or one (`ConvBlock5x5`).
    #[config(default = true)]
    pub double: bool,
    /// Whether the last block pools 2×2 too (Cnn10, Cnn6) or not (Cnn14).
    #[config(default = false)]
    pub pool_last: bool,
    /// Number of classes of `fc_audioset`.
    #[config(default = 527)]
    pub num_classes: usize,
    /// Dropout after every block.
    #[config(default = 0.2)]
    pub dropout_stage: f64,
    /// Dropout before `fc1` and on the returned embedding.
    #[config(default = 0.5)]
    pub dropout_final: f64,
}

/// Presets of PANNs Cnn14.
pub struct Cnn14Config;

impl Cnn14Config {
    /// Cnn14 as released (`Cnn14_mAP=0.431.pth`): widths 64…2048, 32 kHz front end.
    pub fn panns() -> PannsCnnConfig {
        PannsCnnConfig::new(
            FrontEndConfig::panns_32k(),
            vec![64, 128, 256, 512, 1024, 2048],
        )
    }

    /// Six blocks at 1/16 width (4…128): ≈ 315 k parameters with 16 classes.
    pub fn tiny() -> PannsCnnConfig {
        PannsCnnConfig::new(FrontEndConfig::panns_32k(), vec![4, 8, 16, 32, 64, 128])
    }
}

/// Presets of PANNs Cnn10.
pub struct Cnn10Config;

impl Cnn10Config {
    /// Cnn10 as released: four double-3×3 blocks 64…512, 512-d embedding.
    pub fn panns() -> PannsCnnConfig {
        PannsCnnConfig::new(FrontEndConfig::panns_32k(), vec![64, 128, 256, 512])
            .with_pool_last(true)
    }

    /// Four blocks 8…64: ≈ 79 k parameters with 16 classes (≈ 112 k with 527); trains on two
    /// CPU cores.
    pub fn tiny() -> PannsCnnConfig {
        PannsCnnConfig::new(FrontEndConfig::panns_32k(), vec![8, 16, 32, 64]).with_pool_last(true)
    }
}

/// Presets of PANNs Cnn6.
pub struct Cnn6Config;

impl Cnn6Config {
    /// Cnn6 as released: four single-5×5 blocks 64…512, 512-d embedding.
    pub fn panns() -> PannsCnnConfig {
        PannsCnnConfig::new(FrontEndConfig::panns_32k(), vec![64, 128, 256, 512])
            .with_kernel(5)
            .with_double(false)
            .with_pool_last(true)
    }

    /// Four 5×5 blocks 8…64: ≈ 73 k parameters with 16 classes.
    pub fn tiny() -> PannsCnnConfig {
        PannsCnnConfig::new(FrontEndConfig::panns_32k(), vec![8, 16, 32, 64])
            .with_kernel(5)
            .with_double(false)
            .with_pool_last(true)
    }
}

impl PannsCnnConfig {
    /// Checks widths and dropout probabilities.
    pub fn validate(&self) -> crate::Result<()> {
        if self.widths.is_empty() || self.widths.contains(&0) || self.num_classes == 0 {
            return Err(EncoderError::Config(format!(
                "need at least one non-zero width and classes, got {:?} / {}",
                self.widths, self.num_classes
            )));
        }
        if self.kernel.is_multiple_of(2) {
            return Err(EncoderError::Config(format!(
                "kernel size must be odd, got {}",
                self.kernel
            )));
        }
        for p in [self.dropout_stage, self.dropout_final] {
            if !(0.0..1.0).contains(&p) {
                return Err(EncoderError::Config(format!(
                    "dropout probability {p} is not in [0, 1)"
                )));
            }
        }
        Ok(())
    }

    /// Builds a freshly initialised network (Xavier-uniform weights, zero bias, BN 1 / 0).
    ///
    /// # Panics
    /// On a configuration that [`PannsCnnConfig::validate`] rejects.
    pub fn init(&self, device: &Device) -> PannsCnn {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let mut cin = 1;
        let mut conv_blocks = Vec::with_capacity(self.widths.len());
        for &w in &self.widths {
            conv_blocks.push(
                ConvBlockConfig::new(cin, w)
                    .with_kernel(self.kernel)
                    .with_double(self.double)
                    .init(device),
            );
            cin = w;
        }
        PannsCnn {
            // One ×2 time pooling per pooling block: shorter inputs are zero-padded.
            frontend: self
                .front_end
                .padded_for_poolings((self.widths.len() - usize::from(!self.pool_last)) as u32)
                .init(device),
            conv_blocks,
            fc1: linear_xavier(cin, cin, device),
            fc_audioset: linear_xavier(cin, self.num_classes, device),
            dropout_stage: DropoutConfig::new(self.dropout_stage).init(),
            dropout_final: DropoutConfig::new(self.dropout_final).init(),
            pool_last: self.pool_last,
        }
    }
}

/// A PANNs ConvBlock CNN (Cnn14, Cnn10, Cnn6).
#[derive(Module, Debug)]
pub struct PannsCnn {
    /// Log-mel front end with `bn0`.
    pub frontend: FrontEnd,
    /// The ConvBlocks (checkpoint `conv_block1` … `conv_blockN`).
    pub conv_blocks: Vec<ConvBlock>,
    /// Linear D → D (then ReLU).
    pub fc1: Linear,
    /// Linear D → K.
    pub fc_audioset: Linear,
    /// Dropout after each block (p = 0.2).
    pub dropout_stage: Dropout,
    /// Final dropout (p = 0.5).
    pub dropout_final: Dropout,
    /// Whether the last block pools.
    pub pool_last: bool,
}

impl PannsCnn {
    /// Waveform to outputs (front end included).
    ///
    /// # Shapes
    /// - `wave`: `[B, L]`
    /// - output: embedding `[B, D]`, logits `[B, K]`
    pub fn forward(&self, wave: Tensor<2>) -> EncoderOutput {
        self.forward_features(self.frontend.forward(wave))
    }

    /// The ConvBlocks: everything before the global pooling.
    ///
    /// # Shapes
    /// - `features`: `[B, 1, T, M]` with T, M ≥ [`PannsCnn::time_pooling`]
    /// - output: `[B, D, ⌊T/P⌋, ⌊M/P⌋]` with P = [`PannsCnn::time_pooling`]
    pub fn trunk(&self, features: Tensor<4>) -> Tensor<4> {
        let n = self.conv_blocks.len();
        let mut x = features;
        for (i, block) in self.conv_blocks.iter().enumerate() {
            let pool = if i + 1 < n || self.pool_last {
                Pool::Avg(2, 2)
            } else {
                Pool::Identity
            };
            x = crate::dropout::dropout(&self.dropout_stage, block.forward(x, pool));
        }
        x
    }

    /// Frames of the front end averaged into one [`PannsCnn::trunk`] output frame: 2 to the
    /// number of pooling blocks (32 for Cnn14).
    pub fn time_pooling(&self) -> usize {
        1 << (self.conv_blocks.len() - 1 + usize::from(self.pool_last))
    }

    /// Key remappings from a PANNs checkpoint (`checkpoint['model']`) to this module.
    pub fn pytorch_key_remaps(&self) -> Vec<(String, String)> {
        let mut remaps = vec![(
            r"^(spectrogram_extractor|logmel_extractor|bn0)\.".to_string(),
            "frontend.${1}.".to_string(),
        )];
        remaps.extend(panns_key_remaps());
        for i in 0..self.conv_blocks.len() {
            remaps.push((
                format!(r"^conv_block{}\.", i + 1),
                format!("conv_blocks.{i}."),
            ));
        }
        remaps
    }
}

impl AudioBody for PannsCnn {
    fn embedding_dim(&self) -> usize {
        self.fc1.weight.lazy_shape().dims::<2>()[1]
    }

    fn num_classes(&self) -> usize {
        self.fc_audioset.weight.lazy_shape().dims::<2>()[1]
    }

    /// # Shapes
    /// - `features`: `[B, 1, T, M]` with T, M ≥ 2^(number of pooling blocks)
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

impl AudioEncoder for PannsCnn {
    fn front_end(&self) -> &FrontEnd {
        &self.frontend
    }

    fn trainable_params(&self) -> usize {
        count_trainable(self)
    }
}
