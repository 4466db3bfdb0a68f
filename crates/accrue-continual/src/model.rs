//! The student: an audio encoder plus one contrastive projection head per multi-modal task.
//!
//! Heads follow method-spec §3.4 / §10 item 2 (Linear D→512, ReLU, Linear 512→512, audio side
//! only) and each carries its own learnable logit scale (§10 item 16: a new scalar per task).
//! The task-A head g^A is the encoder's own classifier (`fc_audioset`, §10 item 1).

use accrue_encoders::{AnyEncoder, AudioEncoder, EncoderOutput};
use accrue_losses::{LogitScale, LogitScaleConfig};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::ContinualError;

/// The kind of a pre-training task (method-spec §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskKind {
    /// Audio–label classification (AudioSet tagging; the encoder's `fc_audioset` is g^A).
    A,
    /// Audio–image contrastive (Wav2CLIP-style), head g^AV.
    AV,
    /// Audio–text contrastive (CLAP-style), head g^AT.
    AT,
}

impl TaskKind {
    /// `"A"`, `"AV"` or `"AT"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::AV => "AV",
            Self::AT => "AT",
        }
    }

    /// Whether the task is contrastive (has a projection head).
    pub fn is_contrastive(self) -> bool {
        !matches!(self, Self::A)
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Configuration of a [`ProjectionHead`].
#[derive(Config, Debug)]
pub struct ProjectionHeadConfig {
    /// Input width (the encoder's embedding width, 2048 for ResNet-38).
    pub d_input: usize,
    /// Hidden width.
    #[config(default = 512)]
    pub d_hidden: usize,
    /// Output width (the CLIP space, 512).
    #[config(default = 512)]
    pub d_output: usize,
}

impl ProjectionHeadConfig {
    /// The paper's head for ResNet-38: 2048 → 512 → 512.
    pub fn paper() -> Self {
        Self::new(2048)
    }

    /// Builds the head: PyTorch-default `Linear` initialisation and a fresh logit scale
    /// (init `ln(1/0.07)`, clamp `exp ≤ 100`).
    pub fn init(&self, device: &Device) -> crate::Result<ContrastiveHead> {
        Ok(ContrastiveHead {
            fc1: LinearConfig::new(self.d_input, self.d_hidden).init(device),
            fc2: LinearConfig::new(self.d_hidden, self.d_output).init(device),
            logit_scale: LogitScaleConfig::clip().init(device)?,
        })
    }
}

/// A contrastive projection head g^k with its task's logit scale.
#[derive(Module, Debug)]
pub struct ContrastiveHead {
    /// First linear layer.
    pub fc1: Linear,
    /// Second linear layer.
    pub fc2: Linear,
    /// The task's learnable logit scale `exp(τ)`.
    pub logit_scale: LogitScale,
}

impl ContrastiveHead {
    /// Projects an embedding into the supervision space (not normalised).
    ///
    /// # Shapes
    /// - `embedding`: `[B, D]`
    /// - output: `[B, d_output]`
    pub fn forward(&self, embedding: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.fc1.forward(embedding)))
    }

    /// Output width.
    pub fn d_output(&self) -> usize {
        let [_, d] = self.fc2.weight.shape().dims();
        d
    }
}

/// The model being continually pre-trained: encoder f_a (with g^A = `fc_audioset`) and the
/// projection heads of the multi-modal tasks seen so far.
#[derive(Module, Debug)]
pub struct Student {
    /// The audio encoder.
    pub encoder: AnyEncoder,
    /// g^AV, once an AV stage has started.
    pub head_av: Option<ContrastiveHead>,
    /// g^AT, once an AT stage has started.
    pub head_at: Option<ContrastiveHead>,
}

impl Student {
    /// A student with no projection heads yet.
    pub fn new(encoder: AnyEncoder) -> Self {
        Self {
            encoder,
            head_av: None,
            head_at: None,
        }
    }

    /// The head of a contrastive task (`None` for task A or a head not created yet).
    pub fn head(&self, kind: TaskKind) -> Option<&ContrastiveHead> {
        match kind {
            TaskKind::A => None,
            TaskKind::AV => self.head_av.as_ref(),
            TaskKind::AT => self.head_at.as_ref(),
        }
    }

    /// The head of `kind`, or an error naming it.
    pub fn require_head(&self, kind: TaskKind) -> crate::Result<&ContrastiveHead> {
        self.head(kind).ok_or_else(|| {
            ContinualError::Config(format!(
                "the student has no projection head for task {kind}"
            ))
        })
    }

    /// Creates the head of `kind` if it does not exist yet (a no-op for task A).
    pub fn ensure_head(
        mut self,
        kind: TaskKind,
        config: &ProjectionHeadConfig,
        device: &Device,
    ) -> crate::Result<Self> {
        let slot = match kind {
            TaskKind::A => return Ok(self),
            TaskKind::AV => &mut self.head_av,
            TaskKind::AT => &mut self.head_at,
        };
        if slot.is_none() {
            *slot = Some(config.init(device)?);
        }
        Ok(self)
    }

    /// Runs the encoder on a waveform batch.
    ///
    /// # Shapes
    /// - `wave`: `[B, L]`
    pub fn encode(&self, wave: Tensor<2>) -> EncoderOutput {
        self.encoder.forward(wave)
    }

    /// [`Self::encode`] from the encoder front end's log-mel.
    ///
    /// # Shapes
    /// - `logmel`: `[B, 1, T, n_mels]`
    pub fn encode_logmel(&self, logmel: Tensor<4>) -> EncoderOutput {
        self.encoder.forward_logmel(logmel)
    }

    /// Projects the dropped embedding through the head of `kind` (§10 item 15); for task A
    /// returns the logits.
    pub fn head_output(&self, kind: TaskKind, out: &EncoderOutput) -> crate::Result<Tensor<2>> {
        match kind {
            TaskKind::A => Ok(out.logits.clone()),
            _ => Ok(self
                .require_head(kind)?
                .forward(out.embedding_dropped.clone())),
        }
    }

    /// Clamps every head's logit scale back into range (after an optimiser step).
    pub fn clamp_logit_scales(mut self) -> Self {
        for head in [&mut self.head_av, &mut self.head_at].into_iter().flatten() {
            let h = head.clone();
            *head = ContrastiveHead {
                logit_scale: h.logit_scale.clamp(),
                ..h
            };
        }
        self
    }
}

/// The module the optimiser updates: the student plus the strategy's trainable extras.
#[derive(Module, Debug)]
pub struct Trainable<A: Module> {
    /// Encoder and heads.
    pub student: Student,
    /// The strategy's auxiliary modules (CaSSLe's predictor, …).
    pub aux: A,
}
