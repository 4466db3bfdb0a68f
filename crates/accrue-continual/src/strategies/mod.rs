//! The shipped continual-learning methods, one file each, and their composition.

pub mod any;
pub mod cassle;
pub mod combined;
pub mod finetune;
pub mod frozen;
pub mod lwf;
pub mod modx;
pub mod multitask;

pub use any::{AnyStrategy, LeafStrategy, StrategyConfig, WeightedStrategy};
pub use cassle::{Cassle, CassleAux, CassleOptions};
pub use combined::{Combined, Pair};
pub use finetune::FineTune;
pub use frozen::FrozenAdapter;
pub use lwf::{Lwf, LwfOptions};
pub use modx::{ModX, ModXOptions, TeacherHead, Ties};
pub use multitask::{MultiTask, MultiTaskOptions};
