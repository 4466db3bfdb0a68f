//! Mod-X distillation of the cross-modal similarity matrix (method-spec §4.3).
//!
//! Paper: Ni et al., "Continual Vision-Language Representation Learning with Off-Diagonal
//! Information", ICML 2023. Reference implementation:
//! `ZixuanNi/Mod-X:ModX_Training/continue_train_model.py` (`cognition_align`, the two
//! `F.kl_div(..., reduction='sum')` terms).
//!
//! Adaptation (CL paper): with frozen supervision embeddings `S_sup` shared by teacher and
//! student, `C = norm(student audio) · norm(S_sup)ᵀ`, `C° = norm(teacher audio) · norm(S_sup)ᵀ`
//! (raw cosines, no logit scale). Cognition alignment replaces every row of `C°` whose argmax is
//! not on the diagonal by the (detached) row of `C`, and likewise for `C°ᵀ` against `Cᵀ`. Then
//! `L_kd = ½ [KL_rows(C° ‖ C) + KL_rows(C°ᵀ ‖ Cᵀ)]` with softmax at temperature 1 over each row and
//! sum reduction (spec §10 item 7).
//!
//! Gradient note: the reference writes `old[i] = new[i]` without detaching. Because
//! `KL(softmax(x) ‖ softmax(x))` is identically zero in `x`, a replaced row contributes neither
//! value nor gradient either way; detaching (as the spec says) is therefore exact.
//!
//! Ties: a row counts as correctly ranked when its argmax is the diagonal. With
//! [`TieBreak::FirstIndex`] (default) the argmax is the **first** maximal index, like
//! `torch.max`/`torch.argmax` in the reference, so a row whose diagonal ties with an earlier
//! column is mis-ranked. [`TieBreak::DiagonalWins`] treats any tie involving the diagonal as
//! correct. [`TieBreak::SameTarget`] counts a row as correct when a maximal column is a
//! *positive* — a column whose supervision target is the row's own (identical supervision
//! embeddings, [`same_target_mask`]): with class-level targets (every clip of a class shares one
//! image embedding) the first two rules discard about half of a batch's rows by construction,
//! because a class's columns tie exactly. The rules are implemented with comparisons,
//! independent of the backend's `argmax`.

use burn::config::Config;
use burn::tensor::{Bool, Tensor};

use crate::error::LossError;
use crate::kl::{Distribution, KlDivConfig, kl_div};
use crate::util::{
    check_matrix, check_same, check_square, cosine_similarity_matrix, identity_mask,
    strictly_lower_mask,
};

/// How ties in the teacher's row-wise argmax are resolved by cognition alignment.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// The first maximal column wins (PyTorch `argmax` semantics, the reference's behaviour).
    FirstIndex,
    /// A row is correct whenever the diagonal attains the row maximum.
    DiagonalWins,
    /// A row is correct whenever a column with the row's own target (a positive) attains the
    /// row maximum; needs the positives ([`modx_loss`] derives them from the supervision).
    /// With unique targets it is [`TieBreak::DiagonalWins`].
    SameTarget,
}

/// Configuration of the Mod-X term. Defaults follow the reference code (spec §10 item 7):
/// raw cosines (`T = 1`, no `T²`), sum reduction, teacher‖student, alignment on, full rows.
#[derive(Config, Debug, PartialEq)]
pub struct ModXConfig {
    /// The row-wise divergence. Must use [`Distribution::Softmax`] over the last axis.
    #[config(default = "KlDivConfig::modx()")]
    pub kl: KlDivConfig,
    /// Apply cognition alignment to the teacher matrices.
    #[config(default = true)]
    pub alignment: bool,
    /// Tie rule of the alignment's argmax.
    #[config(default = "TieBreak::FirstIndex")]
    pub tie_break: TieBreak,
}

impl ModXConfig {
    fn validate(&self) -> crate::Result<()> {
        self.kl.validate(2)?;
        if self.kl.distribution != Distribution::Softmax {
            return Err(LossError::InvalidConfig {
                field: "kl.distribution",
                reason: "Mod-X compares row-softmax distributions; use Softmax".into(),
            });
        }
        if self.kl.resolved_axis(2)? != 1 {
            return Err(LossError::InvalidConfig {
                field: "kl.axis",
                reason: "Mod-X takes the softmax over each row (axis 1 / -1)".into(),
            });
        }
        Ok(())
    }
}

/// Rows the teacher mis-ranks: `true` where the (tie-broken) argmax of row `i` is not `i`.
///
/// # Shapes
///
/// - `teacher_sim`: `[B, B]`
/// - output: `[B, 1]`
pub fn misranked_rows(teacher_sim: Tensor<2>, tie_break: TieBreak) -> Tensor<2, Bool> {
    misranked_rows_with(teacher_sim, tie_break, None)
}

/// As [`misranked_rows`], with the positives of [`TieBreak::SameTarget`] (`[B, B]`, `true`
/// where column `j` has row `i`'s target; `None`: the diagonal only).
///
/// # Shapes
///
/// - `teacher_sim`, `positives`: `[B, B]`
/// - output: `[B, 1]`
pub fn misranked_rows_with(
    teacher_sim: Tensor<2>,
    tie_break: TieBreak,
    positives: Option<Tensor<2, Bool>>,
) -> Tensor<2, Bool> {
    let [b, _] = teacher_sim.dims();
    let device = teacher_sim.device();
    let row_max = teacher_sim.clone().max_dim(1).expand([b, b]);
    let is_max = teacher_sim.equal(row_max);
    let diag_is_max = is_max
        .clone()
        .bool_and(identity_mask(b, &device))
        .any_dim(1);
    let correct = match tie_break {
        TieBreak::DiagonalWins => diag_is_max,
        TieBreak::FirstIndex => {
            let earlier_max = is_max.bool_and(strictly_lower_mask(b, &device)).any_dim(1);
            diag_is_max.bool_and(earlier_max.bool_not())
        }
        TieBreak::SameTarget => match positives {
            Some(p) => is_max.bool_and(p).any_dim(1),
            None => diag_is_max,
        },
    };
    correct.bool_not()
}

/// Positives of a batch: `[B, B]`, `true` where rows `i` and `j` of `supervision` are
/// identical (the same class-level image embedding, the same caption), the diagonal included.
/// Exact comparison, on the host (the supervision is a constant).
///
/// # Shapes
///
/// - `supervision`: `[B, D]`
/// - output: `[B, B]`
pub fn same_target_mask(supervision: &Tensor<2>) -> Tensor<2, Bool> {
    let [b, d] = supervision.dims();
    let values: Vec<u32> = supervision
        .clone()
        .detach()
        .into_data()
        .iter::<f32>()
        .map(f32::to_bits)
        .collect();
    let row = |i: usize| &values[i * d..(i + 1) * d];
    let mut mask = vec![false; b * b];
    for i in 0..b {
        for j in 0..b {
            mask[i * b + j] = i == j || row(i) == row(j);
        }
    }
    Tensor::<1, Bool>::from_bool(
        burn::tensor::TensorData::new(mask, [b * b]),
        &supervision.device(),
    )
    .reshape([b, b])
}

/// Cognition alignment: rows of `teacher_sim` that the teacher mis-ranks are replaced by the
/// corresponding rows of `student_sim`; the result is detached.
///
/// # Shapes
///
/// - `teacher_sim`, `student_sim`: `[B, B]`
/// - output: `[B, B]`
pub fn cognition_align(
    teacher_sim: Tensor<2>,
    student_sim: Tensor<2>,
    tie_break: TieBreak,
) -> Tensor<2> {
    cognition_align_with(teacher_sim, student_sim, tie_break, None)
}

/// As [`cognition_align`], with the positives of [`TieBreak::SameTarget`].
///
/// # Shapes
///
/// - `teacher_sim`, `student_sim`, `positives`: `[B, B]`
/// - output: `[B, B]`
pub fn cognition_align_with(
    teacher_sim: Tensor<2>,
    student_sim: Tensor<2>,
    tie_break: TieBreak,
    positives: Option<Tensor<2, Bool>>,
) -> Tensor<2> {
    let [b, _] = teacher_sim.dims();
    let teacher_sim = teacher_sim.detach();
    let mask = misranked_rows_with(teacher_sim.clone(), tie_break, positives).expand([b, b]);
    teacher_sim.mask_where(mask, student_sim.detach())
}

/// Mod-X term from precomputed similarity matrices (rows = audio, columns = supervision).
///
/// `L = ½ [KL_rows(align(C°) ‖ C) + KL_rows(align(C°ᵀ) ‖ Cᵀ)]`. `teacher_sim` is detached.
///
/// # Shapes
///
/// - `teacher_sim`: `[B, B]` (`C°`)
/// - `student_sim`: `[B, B]` (`C`)
/// - output: `[1]` (`[B·B]` with [`crate::Reduction::None`]: the elementwise average of the two
///   directions, in row-major order of `C`, i.e. the `(i, j)` element of the row term plus the
///   `(j, i)` element of the column term, halved)
///
/// # Errors
///
/// [`LossError::Shape`] for non-square or mismatched matrices, [`LossError::InvalidConfig`]
/// for a non-softmax / non-row configuration.
pub fn modx_loss_from_similarities(
    teacher_sim: Tensor<2>,
    student_sim: Tensor<2>,
    config: &ModXConfig,
) -> crate::Result<Tensor<1>> {
    modx_loss_from_similarities_with(teacher_sim, student_sim, None, config)
}

/// As [`modx_loss_from_similarities`], with the positives of [`TieBreak::SameTarget`]
/// (symmetric, so the same mask serves the row and the column direction).
///
/// # Shapes
///
/// - `teacher_sim`, `student_sim`, `positives`: `[B, B]`
/// - output: as [`modx_loss_from_similarities`]
///
/// # Errors
///
/// As [`modx_loss_from_similarities`].
pub fn modx_loss_from_similarities_with(
    teacher_sim: Tensor<2>,
    student_sim: Tensor<2>,
    positives: Option<Tensor<2, Bool>>,
    config: &ModXConfig,
) -> crate::Result<Tensor<1>> {
    check_square("modx_loss", "teacher_sim", &teacher_sim)?;
    check_same("modx_loss", "student_sim", &teacher_sim, &student_sim)?;
    config.validate()?;
    let teacher_sim = teacher_sim.detach();
    let teacher_t = teacher_sim.clone().transpose();
    let student_t = student_sim.clone().transpose();
    let (rows_target, cols_target) = if config.alignment {
        (
            cognition_align_with(
                teacher_sim,
                student_sim.clone(),
                config.tie_break,
                positives.clone(),
            ),
            cognition_align_with(teacher_t, student_t.clone(), config.tie_break, positives),
        )
    } else {
        (teacher_sim, teacher_t)
    };
    if config.kl.reduction == crate::kl::Reduction::None {
        // Keep elementwise correspondence: transpose the column term back before averaging.
        let [b, _] = student_sim.dims();
        let rows = kl_div(rows_target, student_sim, &config.kl)?;
        let cols = kl_div(cols_target, student_t, &config.kl)?
            .reshape([b, b])
            .transpose()
            .flatten(0, 1);
        return Ok(rows.add(cols).div_scalar(2.0));
    }
    let rows = kl_div(rows_target, student_sim, &config.kl)?;
    let cols = kl_div(cols_target, student_t, &config.kl)?;
    Ok(rows.add(cols).div_scalar(2.0))
}

/// Mod-X term from embeddings: `C = norm(student_audio) · norm(supervision)ᵀ`,
/// `C° = norm(teacher_audio) · norm(supervision)ᵀ`, then [`modx_loss_from_similarities`]
/// (with [`TieBreak::SameTarget`], the positives are the identical rows of `supervision`).
///
/// `teacher_audio` (and the supervision copy used for `C°`) are detached; gradients reach
/// `student_audio` and, through `C`, `supervision`. For the stage-AV adaptation pass
/// `g^AV(f_a^A(x))` (current head on the previous encoder, computed under no-grad) as
/// `teacher_audio` and the CLIP image embeddings as `supervision`; for stage AT pass the frozen
/// `g^AV(f_a^AV(x))` and the CLIP text embeddings of the current captions.
///
/// # Shapes
///
/// - `teacher_audio`, `student_audio`: `[B, D]`
/// - `supervision`: `[B, D]`
/// - output: `[1]`
///
/// # Errors
///
/// As [`modx_loss_from_similarities`].
pub fn modx_loss(
    teacher_audio: Tensor<2>,
    student_audio: Tensor<2>,
    supervision: Tensor<2>,
    config: &ModXConfig,
) -> crate::Result<Tensor<1>> {
    check_matrix("modx_loss", "student_audio", &student_audio)?;
    check_same("modx_loss", "teacher_audio", &student_audio, &teacher_audio)?;
    check_same("modx_loss", "supervision", &student_audio, &supervision)?;
    let positives =
        (config.tie_break == TieBreak::SameTarget).then(|| same_target_mask(&supervision));
    let teacher_sim =
        cosine_similarity_matrix(teacher_audio.detach(), supervision.clone().detach());
    let student_sim = cosine_similarity_matrix(student_audio, supervision);
    modx_loss_from_similarities_with(teacher_sim, student_sim, positives, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn rows(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec_as::<f32>().expect("f32")
    }

    #[test]
    fn alignment_replaces_exactly_the_misranked_rows() {
        let device = Device::default();
        // Row 0 correct, row 1 mis-ranked (max at col 0), row 2 correct, row 3 mis-ranked.
        let teacher = Tensor::<2>::from_floats(
            [
                [0.9, 0.1, 0.0, 0.2],
                [0.8, 0.3, 0.1, 0.0],
                [0.0, 0.1, 0.7, 0.5],
                [0.1, 0.6, 0.0, 0.4],
            ],
            &device,
        );
        let student = Tensor::<2>::from_floats(
            [
                [-1.0, -2.0, -3.0, -4.0],
                [-5.0, -6.0, -7.0, -8.0],
                [-9.0, -10.0, -11.0, -12.0],
                [-13.0, -14.0, -15.0, -16.0],
            ],
            &device,
        );
        let mask = misranked_rows(teacher.clone(), TieBreak::FirstIndex);
        assert_eq!(
            mask.into_data().try_to_vec_as::<bool>().expect("bool"),
            vec![false, true, false, true]
        );
        let aligned = rows(cognition_align(
            teacher.clone(),
            student.clone(),
            TieBreak::FirstIndex,
        ));
        let t = rows(teacher);
        let s = rows(student);
        for i in 0..4 {
            let expected = if i == 1 || i == 3 { &s } else { &t };
            assert_eq!(
                &aligned[i * 4..i * 4 + 4],
                &expected[i * 4..i * 4 + 4],
                "row {i}"
            );
        }
    }

    #[test]
    fn ties_follow_the_configured_rule() {
        let device = Device::default();
        // Row 1 ties between col 0 and the diagonal; row 0 ties between the diagonal and col 2.
        let teacher =
            Tensor::<2>::from_floats([[0.5, 0.1, 0.5], [0.7, 0.7, 0.0], [0.0, 0.2, 0.9]], &device);
        let first = misranked_rows(teacher.clone(), TieBreak::FirstIndex);
        assert_eq!(
            first.into_data().try_to_vec_as::<bool>().expect("bool"),
            vec![false, true, false]
        );
        let diag = misranked_rows(teacher, TieBreak::DiagonalWins);
        assert_eq!(
            diag.into_data().try_to_vec_as::<bool>().expect("bool"),
            vec![false, false, false]
        );
    }

    #[test]
    fn repeated_targets_count_as_correct_with_the_positives_mask() {
        let device = Device::default();
        // A class-level batch: clips 0 and 1 share one target, 2 and 3 another. The teacher
        // ranks each clip's own class first, so every row ties between the two columns of its
        // class.
        let sup =
            Tensor::<2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], &device);
        let teacher_audio =
            Tensor::<2>::from_floats([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]], &device);
        let teacher_sim = cosine_similarity_matrix(teacher_audio, sup.clone());
        let positives = same_target_mask(&sup);
        assert_eq!(
            positives
                .clone()
                .into_data()
                .try_to_vec::<bool>()
                .expect("bool"),
            [
                true, true, false, false, true, true, false, false, false, false, true, true,
                false, false, true, true
            ]
        );
        let mis = |tie, p: Option<Tensor<2, Bool>>| {
            misranked_rows_with(teacher_sim.clone(), tie, p)
                .into_data()
                .try_to_vec::<bool>()
                .expect("bool")
        };
        // The reference's rule discards the second clip of each class by construction.
        assert_eq!(mis(TieBreak::FirstIndex, None), [false, true, false, true]);
        // Same target: every row is correctly ranked.
        assert_eq!(
            mis(TieBreak::SameTarget, Some(positives.clone())),
            [false, false, false, false]
        );
        // A row whose maximum is another class's column stays mis-ranked.
        let wrong =
            Tensor::<2>::from_floats([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.3, 0.7]], &device);
        let wrong_sim = cosine_similarity_matrix(wrong, sup);
        assert_eq!(
            misranked_rows_with(wrong_sim, TieBreak::SameTarget, Some(positives))
                .into_data()
                .try_to_vec::<bool>()
                .expect("bool"),
            [false, true, false, false]
        );
    }

    #[test]
    fn all_misranked_gives_zero_loss_and_zero_gradient() {
        let device = Device::default().autodiff();
        // Teacher audio is a cyclic shift of the supervision: every row and column is mis-ranked.
        let sup =
            Tensor::<2>::from_floats([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], &device);
        let teacher =
            Tensor::<2>::from_floats([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], &device);
        let student =
            Tensor::<2>::from_floats([[0.3, 0.2, 0.1], [0.0, 0.5, 0.4], [0.2, 0.1, 0.9]], &device)
                .require_grad();
        let loss = modx_loss(teacher, student.clone(), sup, &ModXConfig::new()).expect("loss");
        let grads = loss.backward();
        let value = loss_value(&loss);
        assert!(value.abs() < 1e-7, "{value}");
        let g = student.grad(&grads).map(rows).unwrap_or_default();
        assert!(g.iter().all(|v| v.abs() < 1e-7), "{g:?}");
    }

    fn loss_value(t: &Tensor<1>) -> f32 {
        t.to_data().try_to_vec_as::<f32>().expect("f32")[0]
    }

    #[test]
    fn non_softmax_configs_are_rejected() {
        let device = Device::default();
        let a = Tensor::<2>::ones([2, 2], &device);
        let cfg = ModXConfig::new()
            .with_kl(KlDivConfig::modx().with_distribution(Distribution::Bernoulli));
        assert!(matches!(
            modx_loss_from_similarities(a.clone(), a.clone(), &cfg),
            Err(LossError::InvalidConfig { .. })
        ));
        let cfg = ModXConfig::new().with_kl(KlDivConfig::modx().with_axis(0));
        assert!(modx_loss_from_similarities(a.clone(), a, &cfg).is_err());
        let b = Tensor::<2>::ones([2, 3], &device);
        assert!(matches!(
            modx_loss_from_similarities(b.clone(), b, &ModXConfig::new()),
            Err(LossError::Shape { .. })
        ));
    }
}
