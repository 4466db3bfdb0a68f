//! # accrue-methods
//!
//! Continual-learning methods beyond the paper, each one file written only against accrue's
//! public API — the way a researcher adds a method in a crate of their own:
//!
//! - [`replay`]: experience replay from a bounded, seeded memory of earlier tasks' clips (a
//!   method that keeps data across stages);
//! - [`wise_ft`]: WiSE-FT weight interpolation between a stage's start and end weights (a
//!   method that reads the previous weights and changes the student at a stage boundary).
//!
//! [`registry`] is [`Registry::builtin`] plus these (`kind = "replay"`, `kind = "wise_ft"`):
//!
//! ```no_run
//! # fn main() -> accrue::continual::Result<()> {
//! use accrue::continual::{Experiment, ExperimentConfig};
//! let registry = accrue_methods::registry()?;
//! let config = ExperimentConfig::load_with("experiment.toml".as_ref(), &registry)?;
//! Experiment::new(config).registry(registry).run(false)?;
//! # Ok(()) }
//! ```
//!
//! A third method, feature-space L2 distillation, lives in `examples/custom_strategy.rs`: a
//! complete program that registers it and trains A → AV → AT from an experiment file.

#![deny(missing_docs)]

pub mod replay;
pub mod wise_ft;

use accrue::continual::{Registry, Result};

pub use replay::{ExperienceReplay, ReplayOptions};
pub use wise_ft::{WiseFt, WiseFtOptions};

/// Registers `replay` and `wise_ft` in `registry`.
///
/// # Errors
/// One of the kinds is already registered.
pub fn register(registry: &mut Registry) -> Result<()> {
    registry.register("replay", ExperienceReplay::from_spec)?;
    registry.register("wise_ft", WiseFt::from_spec)?;
    Ok(())
}

/// The shipped methods plus this crate's.
///
/// # Errors
/// As [`register`] (never, on the built-in registry).
pub fn registry() -> Result<Registry> {
    let mut r = Registry::builtin();
    register(&mut r)?;
    Ok(r)
}
