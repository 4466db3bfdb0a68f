//! The combined continual-learning objective and named loss terms (method-spec §4).
//!
//! `L = (1 − λ) · L_c + λ · L_kd`, `λ = 0.3`. [`LossTerms`] keeps each term under a name with
//! its weight so that higher layers (strategies, trainers, loggers) can sum, log and check them
//! without knowing which method produced them.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::error::LossError;

/// Name of the contrastive term in [`LossTerms::objective`].
pub const CONTRASTIVE_TERM: &str = "contrastive";
/// Name of the distillation term in [`LossTerms::objective`].
pub const DISTILLATION_TERM: &str = "distillation";

/// Configuration of the combined objective.
#[derive(Config, Debug, PartialEq)]
pub struct ObjectiveConfig {
    /// Mixing weight `λ ∈ [0, 1]` of the distillation term (`0` = no continual learning).
    #[config(default = 0.3)]
    pub lambda: f64,
}

impl ObjectiveConfig {
    /// Checks `λ ∈ [0, 1]`.
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.lambda.is_finite() && (0.0..=1.0).contains(&self.lambda)) {
            return Err(LossError::InvalidConfig {
                field: "lambda",
                reason: format!("must lie in [0, 1], got {}", self.lambda),
            });
        }
        Ok(())
    }
}

/// `(1 − λ) · contrastive + λ · distillation`.
///
/// # Shapes
///
/// - `contrastive`, `distillation`: `[1]`
/// - output: `[1]`
///
/// # Errors
///
/// [`LossError::InvalidConfig`] for `λ ∉ [0, 1]`, [`LossError::NotScalar`] for non-scalar terms.
pub fn combine(
    contrastive: Tensor<1>,
    distillation: Tensor<1>,
    config: &ObjectiveConfig,
) -> crate::Result<Tensor<1>> {
    LossTerms::objective(contrastive, distillation, config)?.total()
}

/// One named, weighted scalar loss term.
#[derive(Debug, Clone)]
pub struct LossTerm {
    /// The term's name (unique within a [`LossTerms`]).
    pub name: String,
    /// The unweighted value, shape `[1]`, carrying gradients.
    pub value: Tensor<1>,
    /// The weight applied in [`LossTerms::total`].
    pub weight: f64,
}

/// A read-out of one term, for logging.
#[derive(Debug, Clone, PartialEq)]
pub struct TermValue {
    /// The term's name.
    pub name: String,
    /// The unweighted value.
    pub value: f64,
    /// The weight.
    pub weight: f64,
}

/// An ordered set of named, weighted scalar loss terms.
#[derive(Debug, Clone, Default)]
pub struct LossTerms {
    terms: Vec<LossTerm>,
}

impl LossTerms {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The two terms of the paper's objective: `contrastive` with weight `1 − λ` and
    /// `distillation` with weight `λ`.
    ///
    /// # Errors
    ///
    /// As [`ObjectiveConfig::validate`] and [`LossTerms::push`].
    pub fn objective(
        contrastive: Tensor<1>,
        distillation: Tensor<1>,
        config: &ObjectiveConfig,
    ) -> crate::Result<Self> {
        config.validate()?;
        let mut terms = Self::new();
        terms.push(CONTRASTIVE_TERM, contrastive, 1.0 - config.lambda)?;
        terms.push(DISTILLATION_TERM, distillation, config.lambda)?;
        Ok(terms)
    }

    /// Adds a term.
    ///
    /// # Errors
    ///
    /// [`LossError::NotScalar`] unless `value` has shape `[1]`; [`LossError::DuplicateTerm`] if
    /// the name is taken; [`LossError::InvalidConfig`] for a non-finite weight.
    pub fn push(
        &mut self,
        name: impl Into<String>,
        value: Tensor<1>,
        weight: f64,
    ) -> crate::Result<()> {
        let name = name.into();
        if value.dims() != [1] {
            return Err(LossError::NotScalar {
                term: name,
                got: value.dims().to_vec(),
            });
        }
        if !weight.is_finite() {
            return Err(LossError::InvalidConfig {
                field: "weight",
                reason: format!("weight of `{name}` must be finite, got {weight}"),
            });
        }
        if self.get(&name).is_some() {
            return Err(LossError::DuplicateTerm(name));
        }
        self.terms.push(LossTerm {
            name,
            value,
            weight,
        });
        Ok(())
    }

    /// Builder form of [`LossTerms::push`].
    ///
    /// # Errors
    ///
    /// As [`LossTerms::push`].
    pub fn with(
        mut self,
        name: impl Into<String>,
        value: Tensor<1>,
        weight: f64,
    ) -> crate::Result<Self> {
        self.push(name, value, weight)?;
        Ok(self)
    }

    /// Moves all terms of `other` into `self`, names prefixed by `prefix` (e.g. `"lwf/"`) and
    /// weights multiplied by `factor` — how two composed strategies merge their terms.
    ///
    /// # Errors
    ///
    /// As [`LossTerms::push`] (e.g. a name collision after prefixing).
    pub fn extend_scaled(
        &mut self,
        other: LossTerms,
        prefix: &str,
        factor: f64,
    ) -> crate::Result<()> {
        for term in other.terms {
            self.push(
                format!("{prefix}{}", term.name),
                term.value,
                term.weight * factor,
            )?;
        }
        Ok(())
    }

    /// The term called `name`.
    pub fn get(&self, name: &str) -> Option<&LossTerm> {
        self.terms.iter().find(|t| t.name == name)
    }

    /// The terms in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &LossTerm> {
        self.terms.iter()
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// `Σ weight · value`, shape `[1]`, differentiable. Terms with weight 0 are skipped (their
    /// graphs are not touched).
    ///
    /// # Errors
    ///
    /// [`LossError::NoTerms`] when empty.
    pub fn total(&self) -> crate::Result<Tensor<1>> {
        let first = self.terms.first().ok_or(LossError::NoTerms)?;
        let mut total: Option<Tensor<1>> = None;
        for term in self.terms.iter().filter(|t| t.weight != 0.0) {
            let weighted = term.value.clone().mul_scalar(term.weight);
            total = Some(match total {
                Some(acc) => acc.add(weighted),
                None => weighted,
            });
        }
        Ok(total.unwrap_or_else(|| first.value.clone().mul_scalar(0.0)))
    }

    /// Reads every term back to the host (one sync per term), for logging.
    pub fn values(&self) -> Vec<TermValue> {
        self.terms
            .iter()
            .map(|t| TermValue {
                name: t.name.clone(),
                value: scalar_value(&t.value),
                weight: t.weight,
            })
            .collect()
    }

    /// Fails with [`LossError::NonFinite`] naming the first term whose value is NaN or ±inf.
    ///
    /// # Errors
    ///
    /// [`LossError::NonFinite`].
    pub fn check_finite(&self) -> crate::Result<()> {
        self.terms
            .iter()
            .try_for_each(|t| check_finite(&t.name, &t.value))
    }
}

fn scalar_value<const D: usize>(t: &Tensor<D>) -> f64 {
    t.to_data()
        .try_to_vec_as::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

/// Fails with [`LossError::NonFinite`] if any element of `value` is NaN or ±inf.
///
/// # Errors
///
/// [`LossError::NonFinite`] with `term` as the name and the first offending element.
pub fn check_finite<const D: usize>(term: &str, value: &Tensor<D>) -> crate::Result<()> {
    let data = value.to_data();
    let values = data
        .try_to_vec_as::<f64>()
        .map_err(|e| LossError::NonFinite {
            term: format!("{term} (unreadable: {e:?})"),
            value: f64::NAN,
        })?;
    if let Some(bad) = values.into_iter().find(|v| !v.is_finite()) {
        tracing::warn!(term, value = bad, "non-finite loss term");
        return Err(LossError::NonFinite {
            term: term.to_string(),
            value: bad,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn value(t: Tensor<1>) -> f32 {
        t.into_data().try_to_vec_as::<f32>().expect("f32")[0]
    }

    #[test]
    fn combine_weights_terms() {
        let device = Device::default();
        let lc = Tensor::<1>::from_floats([2.0], &device);
        let lkd = Tensor::<1>::from_floats([10.0], &device);
        let l = value(combine(lc.clone(), lkd.clone(), &ObjectiveConfig::new()).expect("combine"));
        assert!((l - (0.7 * 2.0 + 0.3 * 10.0)).abs() < 1e-5);
        let l0 =
            value(combine(lc, lkd, &ObjectiveConfig::new().with_lambda(0.0)).expect("combine"));
        assert!((l0 - 2.0).abs() < 1e-6);
    }

    #[test]
    fn terms_are_named_checked_and_merged() {
        let device = Device::default();
        let mut terms = LossTerms::new()
            .with("a", Tensor::<1>::from_floats([1.0], &device), 2.0)
            .expect("push");
        assert!(matches!(
            terms.push("a", Tensor::<1>::from_floats([1.0], &device), 1.0),
            Err(LossError::DuplicateTerm(_))
        ));
        assert!(matches!(
            terms.push("v", Tensor::<1>::from_floats([1.0, 2.0], &device), 1.0),
            Err(LossError::NotScalar { .. })
        ));
        let other = LossTerms::new()
            .with("kd", Tensor::<1>::from_floats([3.0], &device), 0.5)
            .expect("push");
        terms.extend_scaled(other, "lwf/", 2.0).expect("merge");
        assert_eq!(terms.len(), 2);
        assert_eq!(terms.get("lwf/kd").map(|t| t.weight), Some(1.0));
        assert!((value(terms.total().expect("total")) - 5.0).abs() < 1e-6);
        let logged = terms.values();
        assert_eq!(logged[1].name, "lwf/kd");
        assert!((logged[1].value - 3.0).abs() < 1e-6);
        assert!(terms.check_finite().is_ok());
    }

    #[test]
    fn non_finite_terms_are_named() {
        let device = Device::default();
        let terms = LossTerms::new()
            .with("ok", Tensor::<1>::from_floats([1.0], &device), 1.0)
            .and_then(|t| t.with("bad", Tensor::<1>::from_floats([f32::NAN], &device), 1.0))
            .expect("push");
        match terms.check_finite() {
            Err(LossError::NonFinite { term, value }) => {
                assert_eq!(term, "bad");
                assert!(value.is_nan());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
        let inf = Tensor::<1>::from_floats([f32::INFINITY], &device);
        assert!(matches!(
            check_finite("x", &inf),
            Err(LossError::NonFinite { .. })
        ));
        assert!(matches!(LossTerms::new().total(), Err(LossError::NoTerms)));
        assert!(ObjectiveConfig::new().with_lambda(1.5).validate().is_err());
    }
}
