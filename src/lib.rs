//! # accrue
//!
//! Continual multi-modal pre-training of audio encoders, in Rust on Burn.
//!
//! This is the facade crate: it re-exports the layered crates of the workspace and carries the
//! `accrue` command-line tool. Backends are cargo features (`flex`, the default CPU backend;
//! `tch`, `wgpu`, `vulkan`, `cuda` opt-in); one model code path runs on all of them, the
//! [`burn::tensor::Device`] chooses at run time (see [`backend`]).
//!
//! | crate | what |
//! |---|---|
//! | [`audio`] | decoding, resampling, cropping, the PANNs log-mel front end |
//! | [`encoders`] | PANNs ResNet-38, Cnn14/10/6, aisfx; strict checkpoint import |
//! | [`towers`] | frozen CLIP / MiniLM / EfficientNet towers, tokenizers, embedding cache |
//! | [`losses`] | CLIP/InfoNCE, KL helpers, LwF / CaSSLe / Mod-X terms, the objective |
//! | [`data`] | dataset readers in native layouts, the batch loader |
//! | [`continual`] | the strategy trait, the methods, the stage trainer |
//! | [`eval`] | retrieval, AP, zero-shot, linear probe, CL metrics, report |

pub use accrue_audio as audio;
pub use accrue_continual as continual;
pub use accrue_data as data;
pub use accrue_encoders as encoders;
pub use accrue_eval as eval;
pub use accrue_losses as losses;
pub use accrue_towers as towers;

pub mod backend;
pub mod demo;
pub mod embed;
mod error;
pub mod report;
pub mod suite;
pub mod tools;

pub use error::{Error, Result};
