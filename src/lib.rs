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

pub use accrue_audio as audio;

pub mod backend;
