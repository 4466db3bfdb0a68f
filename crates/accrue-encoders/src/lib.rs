//! # accrue-encoders
//!
//! The audio encoders of accrue, as Burn modules that match their PyTorch references:
//!
//! - [`resnet38`]: PANNs ResNet-38, the encoder the paper continues to pre-train
//!   (73,783,247 trainable parameters, method-spec §1.4–1.7).
//! - [`cnn`]: the PANNs ConvBlock family — Cnn14 (the MS-CLAP / LAION-CLAP encoder), Cnn10,
//!   Cnn6 — with `panns()` and `tiny()` presets.
//! - [`aisfx`]: the 4-block CNN of the `aisfx==0.1.2` package, whose real pre-trained weights
//!   are the project's task-A stand-in.
//! - [`checkpoint`]: strict PyTorch (zip and legacy pickle) and safetensors loading with a
//!   complete [`LoadReport`], and saving of the project's own checkpoints.
//! - [`encoder`]: the [`AudioBody`] / [`AudioEncoder`] traits and [`EncoderOutput`] that higher
//!   layers program against, and the run-time [`AnyEncoder`] enum.
//! - [`layers`]: shared blocks, including a PyTorch-faithful [`layers::BatchNorm`]
//!   (unbiased running variance).
//!
//! Architecture invariant: this crate knows models and checkpoints, not training: no losses,
//! optimisers or datasets. It depends only on `accrue-audio` (for the front end).

pub mod aisfx;
pub mod checkpoint;
pub mod cnn;
pub mod dropout;
pub mod encoder;
pub mod error;
pub mod layers;
pub mod resnet38;

pub use aisfx::{Aisfx, AisfxConfig};
pub use checkpoint::{LoadOptions, LoadReport, ShapeMismatch};
pub use cnn::{Cnn6Config, Cnn10Config, Cnn14Config, PannsCnn, PannsCnnConfig};
pub use encoder::{
    AnyEncoder, AnyEncoderConfig, AudioBody, AudioEncoder, EncoderOutput, FrameEmbeddings,
    FrameTiming, Preset,
};
pub use error::{EncoderError, Result};
pub use resnet38::{ResNet38, ResNet38Config};
