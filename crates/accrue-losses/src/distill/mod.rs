//! The three distillation terms of the continual-learning objective (method-spec §4).
//!
//! Each term is a pure function of tensors that the caller has already computed: the frozen
//! teacher's outputs and the student's outputs for the same batch. Teacher-side inputs are
//! **detached inside** every function, so gradients only ever reach the student side even if a
//! caller forgets `no_grad`.
//!
//! | term | module | teacher side | student side |
//! |---|---|---|---|
//! | LwF | [`lwf`] | `g^{k−1}(f_a^{k−1}(x))` | `g^{k−1}(f_a^k(x))` (retained head keeps training) |
//! | CaSSLe | [`cassle`] | `g^{k−1}(f_a^{k−1}(x))` | `p(g^k(f_a^k(x)))` with a fresh predictor `p` |
//! | Mod-X | [`modx`] | `norm(old audio) · norm(S_sup)ᵀ` | `norm(g^k(f_a^k(x))) · norm(S_sup)ᵀ` |

pub mod cassle;
pub mod lwf;
pub mod modx;
