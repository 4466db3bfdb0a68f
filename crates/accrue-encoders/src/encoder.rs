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
