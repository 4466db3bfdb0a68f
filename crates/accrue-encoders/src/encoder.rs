//! The common interface of every audio encoder in this crate.
//!
//! Higher layers (losses, continual strategies, evaluation) see an encoder only through
//! [`AudioBody`] / [`AudioEncoder`] and the [`EncoderOutput`] struct, or hold the closed
//! [`AnyEncoder`] enum when the architecture is picked at run time from a config.

use accrue_audio::frontend::FrontEnd;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use crate::cnn::{PannsCnn, PannsCnnConfig};
use crate::error::EncoderError;
use crate::resnet38::{ResNet38, ResNet38Config};

/// What an encoder's forward pass returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// `[B, D]` the embedding without the final dropout (PANNs' `x` after `fc1` + ReLU; the
    /// spec's f_a). This is what feeds the classifier head.
    pub embedding: Tensor<2>,
    /// `[B, D]` the same after the final dropout (PANNs' `embedding`); equal to
    /// [`EncoderOutput::embedding`] in eval mode.
    pub embedding_dropped: Tensor<2>,
    /// `[B, K]` classifier logits computed from the un-dropped embedding (`fc_audioset`).
    pub logits: Tensor<2>,
}

impl EncoderOutput {
    /// `[B, K]` PANNs' `clipwise_output`: `sigmoid(logits)`.
    pub fn clipwise(&self) -> Tensor<2> {
        sigmoid(self.logits.clone())
    }
}

/// A network that maps front-end features to an embedding and class logits.
pub trait AudioBody {
    /// Width of [`EncoderOutput::embedding`].
    fn embedding_dim(&self) -> usize;
    /// Width of [`EncoderOutput::logits`].
    fn num_classes(&self) -> usize;
    /// Runs the network on front-end output.
    ///
    /// # Shapes
    /// - `features`: `[B, 1, T, M]` (log-mel after `bn0` and SpecAugment)
    fn forward_features(&self, features: Tensor<4>) -> EncoderOutput;
}

/// An [`AudioBody`] with its own front end: waveform in, embedding out.
pub trait AudioEncoder: AudioBody {
    /// The front end (log-mel, `bn0`, SpecAugment).
    fn front_end(&self) -> &FrontEnd;

    /// Waveform to outputs.
    ///
    /// # Shapes
    /// - `wave`: `[B, L]` at the front end's sample rate
    fn forward(&self, wave: Tensor<2>) -> EncoderOutput {
        self.forward_features(self.front_end().forward(wave))
    }

    /// Log-mel to outputs: [`Self::forward`] after the front end's log-mel (from
    /// [`FrontEnd::logmel`] or [`FrontEnd::logmel_memoized`] of this encoder's front end).
    ///
    /// # Shapes
    /// - `logmel`: `[B, 1, T, n_mels]`
    fn forward_logmel(&self, logmel: Tensor<4>) -> EncoderOutput {
        self.forward_features(self.front_end().forward_logmel(logmel))
    }

    /// Trainable parameters: everything except the frozen STFT kernels and mel matrix.
    fn trainable_params(&self) -> usize;
}

/// Configuration of an [`AnyEncoder`].
#[derive(Config, Debug)]
pub enum AnyEncoderConfig {
    /// PANNs ResNet-38 (or a scaled variant).
    ResNet38(ResNet38Config),
    /// A PANNs ConvBlock CNN (Cnn14, Cnn10, Cnn6 or a scaled variant).
    Cnn(PannsCnnConfig),
}

impl AnyEncoderConfig {
    /// Checks the configuration (the encoder's and its front end's) before it is built;
    /// building an invalid one (e.g. 0 classes) would panic inside Burn.
    ///
    /// # Errors
    /// [`EncoderError::Config`] naming what is wrong.
    pub fn validate(&self) -> crate::Result<()> {
        match self {
            Self::ResNet38(c) => c.validate()?,
            Self::Cnn(c) => c.validate()?,
        }
        self.front_end()
            .validate()
            .map_err(|e| EncoderError::Config(format!("invalid front end: {e}")))
    }

    /// The front end's configuration (sample rate, mel settings, SpecAugment).
    pub fn front_end(&self) -> &accrue_audio::frontend::FrontEndConfig {
        match self {
            Self::ResNet38(c) => &c.front_end,
            Self::Cnn(c) => &c.front_end,
        }
    }

    /// The front end's configuration, to change before the encoder is built (mel settings,
    /// SpecAugment); call [`Self::validate`] after.
    pub fn front_end_mut(&mut self) -> &mut accrue_audio::frontend::FrontEndConfig {
        match self {
            Self::ResNet38(c) => &mut c.front_end,
            Self::Cnn(c) => &mut c.front_end,
        }
    }

    /// Builds the encoder.
    pub fn init(&self, device: &Device) -> AnyEncoder {
        match self {
            Self::ResNet38(c) => AnyEncoder::ResNet38(c.init(device)),
            Self::Cnn(c) => AnyEncoder::Cnn(c.init(device)),
        }
    }

    /// Classes of the `fc_audioset` head (without building the model).
    pub fn num_classes(&self) -> usize {
        match self {
            Self::ResNet38(c) => c.num_classes,
            Self::Cnn(c) => c.num_classes,
        }
    }
}

/// The named encoder presets: the names an experiment file's `[encoder] preset`, the command
/// line and the tools accept (`resnet38`, `resnet38-tiny`, `cnn14`, `cnn14-tiny`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Preset {
    /// PANNs ResNet-38 as released ([`ResNet38Config::panns`]).
    #[serde(rename = "resnet38")]
    ResNet38,
    /// The scaled ResNet-38 that trains on two CPU cores ([`ResNet38Config::tiny`]).
    #[serde(rename = "resnet38-tiny")]
    ResNet38Tiny,
    /// PANNs Cnn14 as released ([`Cnn14Config::panns`]).
    #[serde(rename = "cnn14")]
    Cnn14,
    /// The scaled Cnn14 ([`Cnn14Config::tiny`]).
    #[serde(rename = "cnn14-tiny")]
    Cnn14Tiny,
}

impl Preset {
    /// Every preset, in the order they are listed to users.
    pub const ALL: [Preset; 4] = [
        Preset::ResNet38,
        Preset::ResNet38Tiny,
        Preset::Cnn14,
        Preset::Cnn14Tiny,
    ];

    /// The preset's name as written in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::ResNet38 => "resnet38",
            Self::ResNet38Tiny => "resnet38-tiny",
            Self::Cnn14 => "cnn14",
            Self::Cnn14Tiny => "cnn14-tiny",
        }
    }

    /// The preset's configuration with an optional number of classes (default: the preset's,
    /// 527), validated.
    ///
    /// # Errors
    /// [`EncoderError::Config`] when the result cannot describe a network (e.g. 0 classes).
    pub fn config(self, num_classes: Option<usize>) -> crate::Result<AnyEncoderConfig> {
        let mut cfg = match self {
            Self::ResNet38 => AnyEncoderConfig::ResNet38(ResNet38Config::panns()),
            Self::ResNet38Tiny => AnyEncoderConfig::ResNet38(ResNet38Config::tiny()),
            Self::Cnn14 => AnyEncoderConfig::Cnn(crate::cnn::Cnn14Config::panns()),
            Self::Cnn14Tiny => AnyEncoderConfig::Cnn(crate::cnn::Cnn14Config::tiny()),
        };
        if let Some(n) = num_classes {
            cfg = match cfg {
                AnyEncoderConfig::ResNet38(c) => AnyEncoderConfig::ResNet38(c.with_num_classes(n)),
                AnyEncoderConfig::Cnn(c) => AnyEncoderConfig::Cnn(c.with_num_classes(n)),
            };
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = EncoderError;

    fn from_str(s: &str) -> crate::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                EncoderError::Config(format!(
                    "unknown encoder preset `{s}` (resnet38, resnet38-tiny, cnn14, cnn14-tiny)"
                ))
            })
    }
}

/// Any waveform encoder of this crate, chosen at run time.
// One value per model, built once: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum AnyEncoder {
    /// PANNs ResNet-38.
    ResNet38(ResNet38),
    /// A PANNs ConvBlock CNN.
    Cnn(PannsCnn),
}

/// Frame-level embeddings ([`AnyEncoder::frame_embeddings`]): one vector per output frame of
/// the convolutional trunk, in the space of the scene embedding.
#[derive(Debug, Clone)]
pub struct FrameEmbeddings {
    /// `[B, T', D]`: `fc1` + ReLU applied to each frame of the trunk's output averaged over
    /// frequency (the scene embedding applies the same `fc1` + ReLU to the max + mean of
    /// these frames over time).
    pub embeddings: Tensor<3>,
    /// Where the frames sit in time.
    pub timing: FrameTiming,
}

/// The time grid of an encoder's output frames ([`AnyEncoder::frame_timing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTiming {
    /// Front-end frames averaged into one output frame (32 for ResNet-38 and Cnn14).
    pub time_pooling: usize,
    /// The front end's hop in samples.
    pub hop_length: usize,
    /// The front end's sample rate.
    pub sample_rate: u32,
}

impl FrameTiming {
    /// Centre of output frame `i` in seconds from the start of the input: front-end frame `j`
    /// is centred on sample `j·hop` (centred STFT), and output frame `i` averages front-end
    /// frames `P·i … P·i + P − 1` (P = [`FrameTiming::time_pooling`]), so its centre is
    /// `(P·i + (P − 1)/2)·hop / sample_rate`.
    pub fn centre_seconds(&self, i: usize) -> f64 {
        let p = self.time_pooling as f64;
        (p * i as f64 + (p - 1.0) / 2.0) * self.hop_length as f64 / f64::from(self.sample_rate)
    }

    /// Seconds between consecutive output frames (`P·hop / sample_rate`; 0.32 s for PANNs).
    pub fn hop_seconds(&self) -> f64 {
        (self.time_pooling * self.hop_length) as f64 / f64::from(self.sample_rate)
    }
}

impl AnyEncoder {
    /// Front-end frames averaged into one output frame of the trunk (32 for ResNet-38 and
    /// Cnn14).
    pub fn time_pooling(&self) -> usize {
        match self {
            Self::ResNet38(_) => ResNet38::TIME_POOLING,
            Self::Cnn(m) => m.time_pooling(),
        }
    }

    /// The convolutional trunk on front-end output (everything before the global pooling).
    ///
    /// # Shapes
    /// - `features`: `[B, 1, T, M]`
    /// - output: `[B, D, ⌊T/P⌋, ⌊M/P⌋]`, P = [`AnyEncoder::time_pooling`]
    pub fn trunk(&self, features: Tensor<4>) -> Tensor<4> {
        match self {
            Self::ResNet38(m) => m.trunk(features),
            Self::Cnn(m) => m.trunk(features),
        }
    }

    /// Frame-level embeddings of a waveform (HEAR's timestamp embeddings): the trunk's output
    /// averaged over frequency, then `fc1` + ReLU on each frame. Max + mean of the trunk
    /// frames over time, through the same `fc1` + ReLU, is the scene embedding, so both live
    /// in one space. Run in eval mode for deterministic output.
    ///
    /// # Shapes
    /// - `wave`: `[B, L]` at the front end's sample rate
    /// - output: `[B, T', D]` with `T' = ⌊T/P⌋`, `T = 1 + ⌊max(L, min)/hop⌋`
    pub fn frame_embeddings(&self, wave: Tensor<2>) -> FrameEmbeddings {
        let x = self.trunk(self.front_end().forward(wave));
        let frames: Tensor<3> = x.mean_dim(3).squeeze_dim::<3>(3).swap_dims(1, 2);
        let fc1 = match self {
            Self::ResNet38(m) => &m.fc1,
            Self::Cnn(m) => &m.fc1,
        };
        FrameEmbeddings {
            embeddings: burn::tensor::activation::relu(fc1.forward(frames)),
            timing: self.frame_timing(),
        }
    }

    /// The time grid of [`AnyEncoder::frame_embeddings`].
    pub fn frame_timing(&self) -> FrameTiming {
        let fe = &self.front_end().config;
        FrameTiming {
            time_pooling: self.time_pooling(),
            hop_length: fe.hop_length,
            sample_rate: fe.sample_rate,
        }
    }

    /// The key remappings from a PANNs PyTorch checkpoint to this encoder.
    pub fn pytorch_key_remaps(&self) -> Vec<(String, String)> {
        match self {
            Self::ResNet38(_) => ResNet38::pytorch_key_remaps(),
            Self::Cnn(m) => m.pytorch_key_remaps(),
        }
    }

    /// Sets the SpecAugment of the built front end (training mode only; `None`: off). It has no
    /// parameters, so it can change between stages, e.g. with the training crop's length.
    pub fn set_spec_augment(
        &mut self,
        spec_augment: Option<accrue_audio::frontend::SpecAugmentConfig>,
    ) {
        match self {
            Self::ResNet38(m) => m.frontend.config.spec_augment = spec_augment,
            Self::Cnn(m) => m.frontend.config.spec_augment = spec_augment,
        }
    }
}

impl AudioBody for AnyEncoder {
    fn embedding_dim(&self) -> usize {
        match self {
            Self::ResNet38(m) => m.embedding_dim(),
            Self::Cnn(m) => m.embedding_dim(),
        }
    }
    fn num_classes(&self) -> usize {
        match self {
            Self::ResNet38(m) => m.num_classes(),
            Self::Cnn(m) => m.num_classes(),
        }
    }
    fn forward_features(&self, features: Tensor<4>) -> EncoderOutput {
        match self {
            Self::ResNet38(m) => m.forward_features(features),
            Self::Cnn(m) => m.forward_features(features),
        }
    }
}

impl AudioEncoder for AnyEncoder {
    fn front_end(&self) -> &FrontEnd {
        match self {
            Self::ResNet38(m) => m.front_end(),
            Self::Cnn(m) => m.front_end(),
        }
    }
    fn trainable_params(&self) -> usize {
        match self {
            Self::ResNet38(m) => m.trainable_params(),
            Self::Cnn(m) => m.trainable_params(),
        }
    }
}

/// Trainable parameters of a model holding a front end in its field `frontend`: every tensor
/// except BN running statistics and the frozen STFT kernels / mel matrix. Reads shapes only
/// (no lazy parameter is materialised).
pub fn count_trainable<M: Module>(model: &M) -> usize {
    use burn::store::ModuleSnapshot;
    model
        .collect(None, None, false)
        .into_iter()
        .filter(|t| {
            !(t.name.ends_with("running_mean")
                || t.name.ends_with("running_var")
                || t.name.starts_with("frontend.spectrogram_extractor.")
                || t.name.starts_with("frontend.logmel_extractor."))
        })
        .map(|t| t.shape.num_elements())
        .sum()
}
