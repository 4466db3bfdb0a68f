//! Kullback–Leibler divergence between two sets of logits, with every choice explicit.
//!
//! The paper's distillation terms (method-spec §4, §10 items 3–5) all reduce to
//! `KL(P(teacher) ‖ P(student))` for some distribution `P` built from logits. This module
//! exposes the knobs the paper leaves open — direction, temperature and `T²` scaling, softmax
//! axis, reduction, softmax vs per-class Bernoulli — as fields of one serialisable
//! [`KlDivConfig`] whose defaults are the spec's recommendation for LwF/CaSSLe.
//!
//! Numerics: both distributions are formed in log space (`log_softmax` / `log_sigmoid`), so large
//! logits do not overflow; the target probabilities are `exp` of their log, and a target
//! probability that underflows to 0 contributes exactly 0 (as PyTorch's `kl_div`).

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, log_softmax};

use crate::error::LossError;
use crate::util::{check_same, check_temperature};

/// How a tensor of elementwise loss terms is reduced.
///
/// The names and semantics follow PyTorch's `kl_div`.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Sum of all elements divided by the size of axis 0 (the batch). The mathematically
    /// correct KL per sample.
    BatchMean,
    /// Sum of all elements.
    Sum,
    /// Mean over all elements (divides by batch × classes as well).
    Mean,
    /// No reduction: the elementwise terms, flattened row-major into a vector of `numel`
    /// elements.
    None,
}

impl Reduction {
    /// Reduces elementwise terms. Scalar reductions return shape `[1]`; [`Reduction::None`]
    /// returns the flattened terms, shape `[numel]`.
    pub fn apply<const D: usize>(self, terms: Tensor<D>) -> Tensor<1> {
        match self {
            Reduction::BatchMean => {
                let batch = terms.dims()[0].max(1) as f64;
                terms.sum().div_scalar(batch)
            }
            Reduction::Sum => terms.sum(),
            Reduction::Mean => terms.mean(),
            Reduction::None => terms.flatten(0, D - 1),
        }
    }
}

/// Which argument of the divergence is the reference distribution.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum KlDirection {
    /// `KL(teacher ‖ student) = Σ P_t (log P_t − log P_s)`: the forward KL of knowledge
    /// distillation, the PyTorch idiom `kl_div(log_softmax(student), softmax(teacher))`.
    /// Spec §10 item 5 recommends it everywhere.
    TeacherStudent,
    /// `KL(student ‖ teacher) = Σ P_s (log P_s − log P_t)` (reverse KL).
    StudentTeacher,
}

/// How logits are turned into a distribution.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// One categorical distribution per slice along the softmax axis: `P = softmax(u / T)`.
    Softmax,
    /// One independent Bernoulli per logit (multi-label sigmoid heads such as the 527-way
    /// AudioSet head): `p = σ(u / T)`, elementwise term
    /// `p (log p − log q) + (1 − p)(log(1 − p) − log(1 − q))`. Spec §10 item 4 alternative.
    /// The softmax axis is ignored.
    Bernoulli,
}

/// Configuration of [`kl_div`]. Defaults are the spec's recommendation for LwF and CaSSLe
/// (method-spec §4.1, §10 items 3–5): teacher‖student, `T = 2` with `T²` scaling, softmax over
/// the last axis, batch-mean.
#[derive(Config, Debug, PartialEq)]
pub struct KlDivConfig {
    /// Which side is the reference distribution.
    #[config(default = "KlDirection::TeacherStudent")]
    pub direction: KlDirection,
    /// Softmax/sigmoid temperature `T` (logits are divided by it). Must be finite and > 0.
    #[config(default = 2.0)]
    pub temperature: f64,
    /// Multiply the reduced divergence by `T²` (Hinton et al.), keeping gradient magnitudes
    /// comparable across temperatures.
    #[config(default = true)]
    pub scale_by_t_squared: bool,
    /// Softmax axis; negative values count from the end (`-1` = last axis). Ignored by
    /// [`Distribution::Bernoulli`].
    #[config(default = -1)]
    pub axis: i64,
    /// Reduction of the elementwise terms.
    #[config(default = "Reduction::BatchMean")]
    pub reduction: Reduction,
    /// Softmax (categorical) or per-class Bernoulli distributions.
    #[config(default = "Distribution::Softmax")]
    pub distribution: Distribution,
}

impl KlDivConfig {
    /// LwF / CaSSLe preset (the defaults): teacher‖student, `T = 2`, `T²` scaling, softmax over
    /// the last axis, batch-mean.
    pub fn lwf() -> Self {
        Self::new()
    }

    /// Mod-X preset (method-spec §4.3, §10 item 7): teacher‖student, `T = 1`, no `T²` scaling,
    /// softmax over the last axis (rows), sum reduction.
    pub fn modx() -> Self {
        Self::new()
            .with_temperature(1.0)
            .with_scale_by_t_squared(false)
            .with_reduction(Reduction::Sum)
    }

    /// Per-class Bernoulli preset for multi-label sigmoid heads (spec §10 item 4 alternative),
    /// otherwise as [`KlDivConfig::lwf`].
    pub fn bernoulli() -> Self {
        Self::new().with_distribution(Distribution::Bernoulli)
    }

    /// Checks the configuration for a tensor of rank `rank`.
    pub fn validate(&self, rank: usize) -> crate::Result<()> {
        check_temperature(self.temperature)?;
        if self.distribution == Distribution::Softmax {
            self.resolved_axis(rank)?;
        }
        Ok(())
    }

    /// The non-negative softmax axis for a tensor of rank `rank`.
    pub fn resolved_axis(&self, rank: usize) -> crate::Result<usize> {
        let rank_i = rank as i64;
        let axis = if self.axis < 0 {
            self.axis + rank_i
        } else {
            self.axis
        };
        if axis < 0 || axis >= rank_i {
            return Err(LossError::InvalidConfig {
                field: "axis",
                reason: format!(
                    "axis {} is out of range for a rank-{rank} tensor",
                    self.axis
                ),
            });
        }
        Ok(axis as usize)
    }
}

/// Elementwise KL terms (before reduction and before `T²` scaling), in the configured
/// direction. `reference` is the first argument of `KL(· ‖ ·)`.
fn kl_elementwise<const D: usize>(
    reference: Tensor<D>,
    other: Tensor<D>,
    config: &KlDivConfig,
    axis: usize,
) -> Tensor<D> {
    let t = config.temperature;
    let (reference, other) = if t == 1.0 {
        (reference, other)
    } else {
        (reference.div_scalar(t), other.div_scalar(t))
    };
    match config.distribution {
        Distribution::Softmax => {
            let log_p = log_softmax(reference, axis);
            let log_q = log_softmax(other, axis);
            log_p.clone().exp().mul(log_p.sub(log_q))
        }
        Distribution::Bernoulli => {
            let log_p = log_sigmoid(reference.clone());
            let log_1mp = log_sigmoid(reference.neg());
            let log_q = log_sigmoid(other.clone());
            let log_1mq = log_sigmoid(other.neg());
            let pos = log_p.clone().exp().mul(log_p.sub(log_q));
            let neg = log_1mp.clone().exp().mul(log_1mp.sub(log_1mq));
            pos.add(neg)
        }
    }
}

/// Kullback–Leibler divergence between the distributions of two logit tensors.
///
/// With the default [`KlDirection::TeacherStudent`] this is
/// `KL(P(teacher) ‖ P(student))`; the `T²` factor (if enabled) multiplies the reduced value.
/// Gradients flow into **both** arguments: detach the teacher yourself if it must stay fixed
/// (the distillation terms in [`crate::distill`] do).
///
/// # Shapes
///
/// - `teacher_logits`: `[B, ...]`
/// - `student_logits`: same shape as `teacher_logits`
/// - output: `[1]` for the scalar reductions, `[numel]` for [`Reduction::None`]
///
/// # Errors
///
/// [`LossError::Shape`] when the shapes differ, [`LossError::InvalidConfig`] for a non-positive
/// temperature or an out-of-range axis.
pub fn kl_div<const D: usize>(
    teacher_logits: Tensor<D>,
    student_logits: Tensor<D>,
    config: &KlDivConfig,
) -> crate::Result<Tensor<1>> {
    check_same("kl_div", "student_logits", &teacher_logits, &student_logits)?;
    if teacher_logits.dims().first().copied().unwrap_or(0) == 0 {
        return Err(LossError::EmptyBatch { term: "kl_div" });
    }
    config.validate(D)?;
    let axis = match config.distribution {
        Distribution::Softmax => config.resolved_axis(D)?,
        Distribution::Bernoulli => 0,
    };
    let terms = match config.direction {
        KlDirection::TeacherStudent => kl_elementwise(teacher_logits, student_logits, config, axis),
        KlDirection::StudentTeacher => kl_elementwise(student_logits, teacher_logits, config, axis),
    };
    let reduced = config.reduction.apply(terms);
    Ok(if config.scale_by_t_squared {
        reduced.mul_scalar(config.temperature * config.temperature)
    } else {
        reduced
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().try_to_vec_as::<f32>().expect("f32 data")[0]
    }

    #[test]
    fn kl_of_identical_logits_is_zero() {
        let device = Device::default();
        let x = Tensor::<2>::from_floats([[1.0, -2.0, 0.5], [3.0, 3.0, -1.0]], &device);
        for distribution in [Distribution::Softmax, Distribution::Bernoulli] {
            let cfg = KlDivConfig::new().with_distribution(distribution);
            let kl = kl_div(x.clone(), x.clone(), &cfg).expect("kl");
            assert!(scalar(kl).abs() < 1e-7);
        }
    }

    #[test]
    fn kl_is_non_negative_and_asymmetric() {
        let device = Device::default();
        let a = Tensor::<2>::from_floats([[4.0, 0.0, -1.0]], &device);
        let b = Tensor::<2>::from_floats([[0.0, 1.0, 0.5]], &device);
        let cfg = KlDivConfig::new().with_temperature(1.0);
        let fwd = scalar(kl_div(a.clone(), b.clone(), &cfg).expect("kl"));
        let rev_cfg = cfg.clone().with_direction(KlDirection::StudentTeacher);
        let rev = scalar(kl_div(a.clone(), b.clone(), &rev_cfg).expect("kl"));
        let swapped = scalar(kl_div(b, a, &cfg).expect("kl"));
        assert!(fwd > 0.0 && rev > 0.0);
        assert!((fwd - rev).abs() > 1e-3, "KL should be asymmetric here");
        assert!(
            (rev - swapped).abs() < 1e-6,
            "reverse direction = swapped arguments"
        );
    }

    #[test]
    fn t_squared_scaling_multiplies_by_t2() {
        let device = Device::default();
        let a = Tensor::<2>::from_floats([[1.0, 2.0], [0.0, -1.0]], &device);
        let b = Tensor::<2>::from_floats([[0.0, 1.0], [2.0, -1.0]], &device);
        let plain = KlDivConfig::new().with_scale_by_t_squared(false);
        let scaled = KlDivConfig::new();
        let p = scalar(kl_div(a.clone(), b.clone(), &plain).expect("kl"));
        let s = scalar(kl_div(a, b, &scaled).expect("kl"));
        assert!((s - 4.0 * p).abs() < 1e-6);
    }

    #[test]
    fn reductions_relate_as_expected() {
        let device = Device::default();
        let a = Tensor::<2>::from_floats([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], &device);
        let b = Tensor::<2>::from_floats([[0.0, 1.0, 1.0], [2.0, -1.0, 0.0]], &device);
        let base = KlDivConfig::new().with_temperature(1.0);
        let get = |r: Reduction| {
            kl_div(a.clone(), b.clone(), &base.clone().with_reduction(r))
                .expect("kl")
                .into_data()
                .try_to_vec_as::<f32>()
                .expect("f32")
        };
        let sum = get(Reduction::Sum)[0];
        let none = get(Reduction::None);
        assert_eq!(none.len(), 6);
        assert!((none.iter().sum::<f32>() - sum).abs() < 1e-6);
        assert!((get(Reduction::BatchMean)[0] - sum / 2.0).abs() < 1e-6);
        assert!((get(Reduction::Mean)[0] - sum / 6.0).abs() < 1e-6);
    }

    #[test]
    fn invalid_configs_and_shapes_are_errors() {
        let device = Device::default();
        let a = Tensor::<2>::zeros([2, 3], &device);
        let b = Tensor::<2>::zeros([2, 4], &device);
        assert!(matches!(
            kl_div(a.clone(), b, &KlDivConfig::new()),
            Err(LossError::Shape { .. })
        ));
        let bad_t = KlDivConfig::new().with_temperature(0.0);
        assert!(matches!(
            kl_div(a.clone(), a.clone(), &bad_t),
            Err(LossError::InvalidConfig { .. })
        ));
        let bad_axis = KlDivConfig::new().with_axis(2);
        assert!(matches!(
            kl_div(a.clone(), a, &bad_axis),
            Err(LossError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn config_round_trips_through_json() {
        let cfg = KlDivConfig::modx().with_distribution(Distribution::Bernoulli);
        let json = serde_json::to_string(&cfg).expect("serialise");
        let back: KlDivConfig = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(cfg, back);
    }
}
