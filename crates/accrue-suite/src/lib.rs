//! # accrue-suite
//!
//! The evaluation side of accrue's applications, as a library: declared evaluation suites and
//! the runner behind `accrue eval` ([`suite`], split by protocol), the frozen-tower supervision
//! tables that the trainer reads ([`supervision`]), reports from evaluation artifacts
//! ([`report`]) and provenance ([`provenance`]).
//!
//! Layering: this crate sits above every library layer (it loads stage models, runs towers
//! and scores with `accrue-eval`); the CLI (`accrue-cli`) and the main job (`accrue-demo`)
//! sit above it. It never trains an encoder: the only thing it fits is a probe head.
#![deny(missing_docs)]

mod error;
pub mod provenance;
pub mod report;
pub mod suite;
pub mod supervision;

pub use error::{Error, Result};
pub use suite::{EvalSuite, evaluate_run, evaluate_stage_model};
