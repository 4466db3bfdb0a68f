//! # accrue
//!
//! Continual multi-modal pre-training of audio encoders, in Rust on Burn.
//!
//! This is the facade crate: it re-exports the layered library crates of the workspace and
//! picks backends — nothing else. Applications live in their own crates: `accrue-cli` (the
//! `accrue` command), `accrue-demo` (the main job) and `accrue-suite` (the evaluation-suite
//! runner behind `accrue eval`).
//!
//! The pure-Rust `flex` CPU backend is always compiled in; `tch`, `wgpu`, `vulkan` and `cuda`
//! are opt-in features. One model code path runs on all of them: the
//! [`burn::tensor::Device`] chooses at run time (see [`backend`]).
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `accrue-core` | atomic writes, hashing, seeding, array files, load reports, BatchNorm |
//! | [`audio`] | `accrue-audio` | decoding, resampling, cropping, the PANNs log-mel front end |
//! | [`encoders`] | `accrue-encoders` | PANNs ResNet-38, Cnn14/10/6, aisfx; strict checkpoint import |
//! | `towers` (feature `towers`) | `accrue-towers` | frozen CLIP / MiniLM / EfficientNet towers, tokenizers, embedding cache |
//! | [`losses`] | `accrue-losses` | CLIP/InfoNCE, KL helpers, LwF / CaSSLe / Mod-X terms, the objective |
//! | [`data`] | `accrue-data` | dataset readers in native layouts, the batch loader |
//! | [`continual`] | `accrue-continual` | the strategy trait, the methods, the stage trainer (TOML experiment files with feature `experiment-files`) |
//! | [`eval`] | `accrue-eval` | retrieval, AP, zero-shot, linear probe, CL metrics, report |
#![deny(missing_docs)]

pub use accrue_audio as audio;
pub use accrue_continual as continual;
pub use accrue_core as core;
pub use accrue_data as data;
pub use accrue_encoders as encoders;
pub use accrue_eval as eval;
pub use accrue_losses as losses;
#[cfg(feature = "towers")]
pub use accrue_towers as towers;

pub mod backend;
