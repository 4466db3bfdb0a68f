//! CLIP image and text towers (ViT + causal text transformer), method-spec §2.
//!
//! Paper: Radford et al., "Learning Transferable Visual Models From Natural Language
//! Supervision" (ICML 2021). Reference implementations: `openai/CLIP:clip/model.py` and
//! `huggingface/transformers:src/transformers/models/clip/modeling_clip.py`.
//! Checkpoints: HF `model.safetensors` (e.g. `openai/clip-vit-base-patch32`) or an openai
//! state dict (`ViT-B-32.pt` re-saved with `torch.save(model.state_dict())`); both key
//! layouts are loaded strictly, openai names being converted to HF ones (§2.6: q/k/v split of
//! `in_proj_*`, transposes of `text_projection` and `visual.proj`).

pub mod clean;
mod html_entities;
pub mod tokenizer;

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor};
use image::DynamicImage;

use crate::Error;
use crate::checkpoint::{RawTensor, StateDict, drop_keys, load_strict, read_checkpoint};
use crate::nn::{attention, causal_mask, int_tensor, positions};
use crate::preprocess::Preprocess;
use crate::tower::{
    FrozenTower, Modality, TowerIdentity, image_digest, l2_normalize, sha256_file, text_digest,
};
use tokenizer::{ClipTokenizer, Overflow};

/// Configuration of a [`ClipModel`] (names follow openai's `build_model`).
#[derive(Config, Debug)]
pub struct ClipConfig {
    /// Joint embedding width.
    pub embed_dim: usize,
    /// Input image side.
    pub image_resolution: usize,
    /// Vision transformer depth.
    pub vision_layers: usize,
    /// Vision transformer width.
    pub vision_width: usize,
    /// Patch size (conv kernel = stride).
    pub vision_patch_size: usize,
    /// Vision attention heads (openai: width / 64).
    pub vision_heads: usize,
    /// Text context length.
    #[config(default = 77)]
    pub context_length: usize,
    /// Vocabulary size.
    #[config(default = 49408)]
    pub vocab_size: usize,
    /// Text transformer width.
    pub transformer_width: usize,
    /// Text attention heads (openai: width / 64).
    pub transformer_heads: usize,
    /// Text transformer depth.
    pub transformer_layers: usize,
    /// LayerNorm epsilon.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
}

impl ClipConfig {
    /// ViT-B/32: 224 px, patch 32, width 768 × 12 layers; text 512 × 12; embedding 512.
    pub fn vit_b_32() -> Self {
        Self::new(512, 224, 12, 768, 32, 12, 512, 8, 12)
    }

    /// ViT-B/16: as ViT-B/32 with 16-px patches.
    pub fn vit_b_16() -> Self {
        Self::new(512, 224, 12, 768, 16, 12, 512, 8, 12)
    }

    /// ViT-L/14: 224 px, patch 14, width 1024 × 24 layers; text 768 × 12; embedding 768.
    pub fn vit_l_14() -> Self {
        Self::new(768, 224, 24, 1024, 14, 16, 768, 12, 12)
    }

    /// Number of image patches along one side.
    pub fn grid(&self) -> usize {
        self.image_resolution / self.vision_patch_size
    }

    /// Initialises a randomly weighted model.
    pub fn init(&self, device: &Device) -> ClipModel {
        let ln = |d: usize| {
            LayerNormConfig::new(d)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let encoder = |width: usize, heads: usize, layers: usize| ClipEncoder {
            layers: (0..layers)
                .map(|_| ClipLayer {
                    self_attn: ClipAttention {
                        q_proj: LinearConfig::new(width, width).init(device),
                        k_proj: LinearConfig::new(width, width).init(device),
                        v_proj: LinearConfig::new(width, width).init(device),
                        out_proj: LinearConfig::new(width, width).init(device),
                        n_heads: heads,
                    },
                    layer_norm1: ln(width),
                    mlp: ClipMlp {
                        fc1: LinearConfig::new(width, 4 * width).init(device),
                        fc2: LinearConfig::new(4 * width, width).init(device),
                    },
                    layer_norm2: ln(width),
                })
                .collect(),
        };
        let (vw, tw) = (self.vision_width, self.transformer_width);
        let n_pos = self.grid() * self.grid() + 1;
        ClipModel {
            text_model: ClipTextTransformer {
                embeddings: ClipTextEmbeddings {
                    token_embedding: EmbeddingConfig::new(self.vocab_size, tw).init(device),
                    position_embedding: EmbeddingConfig::new(self.context_length, tw).init(device),
                },
                encoder: encoder(tw, self.transformer_heads, self.transformer_layers),
                final_layer_norm: ln(tw),
            },
            vision_model: ClipVisionTransformer {
                embeddings: ClipVisionEmbeddings {
                    class_embedding: Param::from_tensor(Tensor::random(
                        [vw],
                        burn::tensor::Distribution::Normal(0.0, 0.02),
                        device,
                    )),
                    patch_embedding: Conv2dConfig::new(
                        [3, vw],
                        [self.vision_patch_size, self.vision_patch_size],
                    )
                    .with_stride([self.vision_patch_size, self.vision_patch_size])
                    .with_bias(false)
                    .init(device),
                    position_embedding: EmbeddingConfig::new(n_pos, vw).init(device),
                },
                pre_layrnorm: ln(vw),
                encoder: encoder(vw, self.vision_heads, self.vision_layers),
                post_layernorm: ln(vw),
            },
            visual_projection: LinearConfig::new(vw, self.embed_dim)
                .with_bias(false)
                .init(device),
            text_projection: LinearConfig::new(tw, self.embed_dim)
                .with_bias(false)
                .init(device),
            logit_scale: Param::from_tensor(Tensor::from_floats([(1.0f32 / 0.07).ln()], device)),
        }
    }
}

/// Pre-LN residual attention block (§2.1): `x + MHA(LN₁ x)`, then `x + MLP(LN₂ x)`.
#[derive(Module, Debug)]
pub struct ClipLayer {
    /// Multi-head self-attention.
    pub self_attn: ClipAttention,
    /// LayerNorm before attention (`ln_1`).
    pub layer_norm1: LayerNorm,
    /// Feed-forward network.
    pub mlp: ClipMlp,
    /// LayerNorm before the MLP (`ln_2`).
    pub layer_norm2: LayerNorm,
}

/// Multi-head attention with separate q/k/v projections (HF layout).
#[derive(Module, Debug)]
pub struct ClipAttention {
    /// W → W
    pub q_proj: Linear,
    /// W → W
    pub k_proj: Linear,
    /// W → W
    pub v_proj: Linear,
    /// W → W
    pub out_proj: Linear,
    /// Number of heads.
    pub n_heads: usize,
}

/// `Linear(W→4W) → QuickGELU → Linear(4W→W)`.
#[derive(Module, Debug)]
pub struct ClipMlp {
    /// `c_fc`
    pub fc1: Linear,
    /// `c_proj`
    pub fc2: Linear,
}

/// A stack of [`ClipLayer`]s.
#[derive(Module, Debug)]
pub struct ClipEncoder {
    /// The blocks, in order.
    pub layers: Vec<ClipLayer>,
}

impl ClipEncoder {
    /// `[B, T, W]` → `[B, T, W]`, with an optional additive mask `[1, 1, T, T]`.
    pub fn forward(&self, mut x: Tensor<3>, mask: Option<Tensor<4>>) -> Tensor<3> {
        for l in &self.layers {
            let h = l.layer_norm1.forward(x.clone());
            let a = &l.self_attn;
            let h = attention(
                a.q_proj.forward(h.clone()),
                a.k_proj.forward(h.clone()),
                a.v_proj.forward(h),
                a.n_heads,
                mask.clone(),
            );
            x = x + a.out_proj.forward(h);
            let h = l.mlp.fc1.forward(l.layer_norm2.forward(x.clone()));
            let h = h.clone() * sigmoid(h.mul_scalar(1.702));
            x = x + l.mlp.fc2.forward(h);
        }
        x
    }
}

/// Token and position embeddings of the text tower.
#[derive(Module, Debug)]
pub struct ClipTextEmbeddings {
    /// `[vocab, W]`
    pub token_embedding: Embedding,
    /// `[context, W]`
    pub position_embedding: Embedding,
}

/// The causal text transformer.
#[derive(Module, Debug)]
pub struct ClipTextTransformer {
    /// Input embeddings.
    pub embeddings: ClipTextEmbeddings,
    /// Blocks (causal mask).
    pub encoder: ClipEncoder,
    /// `ln_final`
    pub final_layer_norm: LayerNorm,
}

/// Patch, class and position embeddings of the vision tower.
#[derive(Module, Debug)]
pub struct ClipVisionEmbeddings {
    /// `[W]` learned class token.
    pub class_embedding: Param<Tensor<1>>,
    /// `conv1`: Conv2d(3 → W, kernel = stride = patch, no bias).
    pub patch_embedding: Conv2d,
    /// `[grid² + 1, W]`
    pub position_embedding: Embedding,
}

/// The vision transformer.
#[derive(Module, Debug)]
pub struct ClipVisionTransformer {
    /// Input embeddings.
    pub embeddings: ClipVisionEmbeddings,
    /// `ln_pre` (HF's spelling).
    pub pre_layrnorm: LayerNorm,
    /// Blocks (no mask).
    pub encoder: ClipEncoder,
    /// `ln_post`, applied to the class token.
    pub post_layernorm: LayerNorm,
}

/// CLIP: both towers, their projections and the logit scale (HF key layout).
#[derive(Module, Debug)]
pub struct ClipModel {
    /// Text tower.
    pub text_model: ClipTextTransformer,
    /// Vision tower.
    pub vision_model: ClipVisionTransformer,
    /// `visual.proj` (openai) / `visual_projection` (HF): W_v → D.
    pub visual_projection: Linear,
    /// `text_projection`: W_t → D.
    pub text_projection: Linear,
    /// log of the similarity scale, `[1]`.
    pub logit_scale: Param<Tensor<1>>,
}

impl ClipModel {
    /// Projected image features (not normalised): `[B, 3, R, R]` → `[B, D]`.
    pub fn encode_image(&self, pixels: Tensor<4>) -> Tensor<2> {
        let v = &self.vision_model;
        let x = v.embeddings.patch_embedding.forward(pixels);
        let [b, w, gh, gw] = x.dims();
        let x = x.reshape([b, w, gh * gw]).swap_dims(1, 2);
        let cls = v
            .embeddings
            .class_embedding
            .val()
            .reshape([1, 1, w])
            .expand([b, 1, w]);
        let x = Tensor::cat(vec![cls, x], 1);
        let pos = v
            .embeddings
            .position_embedding
            .weight
            .val()
            .unsqueeze::<3>();
        let x = v.pre_layrnorm.forward(x + pos);
        let x = v.encoder.forward(x, None);
        let cls = x.slice([0..b, 0..1]).reshape([b, w]);
        self.visual_projection
            .forward(v.post_layernorm.forward(cls))
    }

    /// Projected text features (not normalised), pooled at the first position of the
    /// largest id (EOT): `[B, T]` → `[B, D]`.
    pub fn encode_text(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        let t = &self.text_model;
        let [b, n] = ids.dims();
        let device = ids.device();
        let x = t.embeddings.token_embedding.forward(ids.clone())
            + t.embeddings
                .position_embedding
                .forward(positions(b, n, &device));
        let x = t.encoder.forward(x, Some(causal_mask(n, &device)));
        let x = t.final_layer_norm.forward(x);
        let w = x.dims()[2];
        let eot = ids.argmax(1).reshape([b, 1, 1]).expand([b, 1, w]);
        let pooled = x.gather(1, eot).reshape([b, w]);
        self.text_projection.forward(pooled)
    }

    /// Loads a checkpoint in either key layout (detected from its keys) strictly.
    pub fn load(self, path: &Path) -> crate::Result<Self> {
        let state = read_checkpoint(path)?;
        let state = if state.contains_key("visual.conv1.weight") {
            openai_to_hf(state)?
        } else {
            state
        };
        self.load_hf_state(state, path)
    }

    fn load_hf_state(self, mut state: StateDict, path: &Path) -> crate::Result<Self> {
        drop_keys(&mut state, |k| k.ends_with("position_ids"));
        if let Some(ls) = state.get_mut("logit_scale")
            && ls.shape.is_empty()
        {
            ls.shape = vec![1];
        }
        load_strict(self, state, path)
    }
}

/// Converts an openai CLIP state dict to HF names and layouts (method-spec §2.6).
pub fn openai_to_hf(mut sd: StateDict) -> crate::Result<StateDict> {
    let mut out = StateDict::new();
    for k in ["input_resolution", "context_length", "vocab_size"] {
        sd.remove(k);
    }
    let take = |sd: &mut StateDict, k: &str| -> crate::Result<RawTensor> {
        sd.remove(k)
            .ok_or_else(|| Error::Invalid(format!("openai CLIP checkpoint lacks {k:?}")))
    };
    for (tower, pre) in [("text_model", ""), ("vision_model", "visual.")] {
        let prefix = format!("{pre}transformer.resblocks.");
        let mut layers: Vec<usize> = sd
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|r| r.split('.').next()?.parse().ok())
            .collect();
        layers.sort_unstable();
        layers.dedup();
        for i in layers {
            let o = format!("{prefix}{i}.");
            let h = format!("{tower}.encoder.layers.{i}.");
            let w = take(&mut sd, &format!("{o}attn.in_proj_weight"))?.split_rows(3)?;
            let b = take(&mut sd, &format!("{o}attn.in_proj_bias"))?.split_rows(3)?;
            for ((name, w), b) in ["q", "k", "v"].iter().zip(w).zip(b) {
                out.insert(format!("{h}self_attn.{name}_proj.weight"), w);
                out.insert(format!("{h}self_attn.{name}_proj.bias"), b);
            }
            for (a, hf) in [
                ("attn.out_proj", "self_attn.out_proj"),
                ("ln_1", "layer_norm1"),
                ("ln_2", "layer_norm2"),
                ("mlp.c_fc", "mlp.fc1"),
                ("mlp.c_proj", "mlp.fc2"),
            ] {
                for s in ["weight", "bias"] {
                    out.insert(
                        format!("{h}{hf}.{s}"),
                        take(&mut sd, &format!("{o}{a}.{s}"))?,
                    );
                }
            }
        }
    }
    let renames = [
        (
            "token_embedding.weight",
            "text_model.embeddings.token_embedding.weight",
        ),
        (
            "positional_embedding",
            "text_model.embeddings.position_embedding.weight",
        ),
        ("ln_final.weight", "text_model.final_layer_norm.weight"),
        ("ln_final.bias", "text_model.final_layer_norm.bias"),
        (
            "visual.conv1.weight",
            "vision_model.embeddings.patch_embedding.weight",
        ),
        (
            "visual.class_embedding",
            "vision_model.embeddings.class_embedding",
        ),
        (
            "visual.positional_embedding",
            "vision_model.embeddings.position_embedding.weight",
        ),
        ("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"),
        ("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"),
        (
            "visual.ln_post.weight",
            "vision_model.post_layernorm.weight",
        ),
        ("visual.ln_post.bias", "vision_model.post_layernorm.bias"),
        ("logit_scale", "logit_scale"),
    ];
    for (a, b) in renames {
        out.insert(b.to_string(), take(&mut sd, a)?);
    }
    // openai computes x·W; HF's Linear stores Wᵀ ([out, in])
    out.insert(
        "text_projection.weight".into(),
        take(&mut sd, "text_projection")?.transpose()?,
    );
    out.insert(
        "visual_projection.weight".into(),
        take(&mut sd, "visual.proj")?.transpose()?,
    );
    // anything left over is unexpected: keep it so the strict load reports it
    out.extend(sd);
    Ok(out)
}

/// The CLIP image tower: preprocessing (§2.4) → ViT → projection → L2 norm.
#[derive(Debug)]
pub struct ClipImageTower {
    model: ClipModel,
    preprocess: Preprocess,
    identity: TowerIdentity,
    device: Device,
    embed_dim: usize,
}

/// The CLIP text tower: tokenizer (§2.5) → text transformer → projection → L2 norm.
#[derive(Debug)]
pub struct ClipTextTower {
    model: ClipModel,
    tokenizer: ClipTokenizer,
    overflow: Overflow,
    context_length: usize,
    identity: TowerIdentity,
    device: Device,
    embed_dim: usize,
}

fn clip_arch(config: &ClipConfig) -> String {
    format!(
        "clip-vit-p{}-w{}-l{}-r{}/text-w{}-l{}/d{}",
        config.vision_patch_size,
        config.vision_width,
        config.vision_layers,
        config.image_resolution,
        config.transformer_width,
        config.transformer_layers,
        config.embed_dim
    )
}

/// Loads CLIP weights (either layout) and returns the image and text towers sharing them.
pub fn load_clip_towers(
    config: &ClipConfig,
    weights: &Path,
    tokenizer: ClipTokenizer,
    overflow: Overflow,
    device: &Device,
) -> crate::Result<(ClipImageTower, ClipTextTower)> {
    let device = device.clone().without_autodiff();
    let model = config.init(&device).load(weights)?.valid();
    let sha = sha256_file(weights)?;
    Ok(ClipTowers::build(
        config, model, sha, tokenizer, overflow, &device,
    ))
}

/// Builds the two towers from an already loaded model (e.g. for tests or custom loading).
pub struct ClipTowers;

impl ClipTowers {
    /// Wraps `model` (identified by `weights_sha256`) into image and text towers.
    pub fn build(
        config: &ClipConfig,
        model: ClipModel,
        weights_sha256: String,
        tokenizer: ClipTokenizer,
        overflow: Overflow,
        device: &Device,
    ) -> (ClipImageTower, ClipTextTower) {
        let arch = clip_arch(config);
        let preprocess = Preprocess::clip(config.image_resolution);
        let image = ClipImageTower {
            model: model.clone(),
            identity: TowerIdentity {
                architecture: format!("{arch}/image"),
                weights_sha256: weights_sha256.clone(),
                preprocessing: preprocess.id(),
            },
            preprocess,
            device: device.clone(),
            embed_dim: config.embed_dim,
        };
        let text = ClipTextTower {
            model,
            identity: TowerIdentity {
                architecture: format!("{arch}/text"),
                weights_sha256,
                preprocessing: format!(
                    "clip-bpe-{}/ctx{}/{:?}",
                    tokenizer.vocab_sha256().get(..16).unwrap_or("unknown"),
                    config.context_length,
                    overflow
                )
                .to_lowercase(),
            },
            tokenizer,
            overflow,
            context_length: config.context_length,
            device: device.clone(),
            embed_dim: config.embed_dim,
        };
        (image, text)
    }
}

impl ClipTextTower {
    /// The tokenizer.
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }
}

impl FrozenTower for ClipImageTower {
    type Input = DynamicImage;
    fn identity(&self) -> &TowerIdentity {
        &self.identity
    }
    fn modality(&self) -> Modality {
        Modality::Image
    }
    fn embed_dim(&self) -> usize {
        self.embed_dim
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn embed(&self, batch: &[&DynamicImage]) -> crate::Result<Tensor<2>> {
        crate::tower::require_batch(batch)?;
        let x = self.preprocess.batch(batch, &self.device)?;
        Ok(l2_normalize(self.model.encode_image(x)))
    }
    fn input_digest(input: &DynamicImage) -> [u8; 32] {
        image_digest(input)
    }
}

impl FrozenTower for ClipTextTower {
    type Input = str;
    fn identity(&self) -> &TowerIdentity {
        &self.identity
    }
    fn modality(&self) -> Modality {
        Modality::Text
    }
    fn embed_dim(&self) -> usize {
        self.embed_dim
    }
    fn device(&self) -> &Device {
        &self.device
    }
    /// Errors on an empty caption and, unless truncation is configured, on one longer than
    /// the context.
    fn embed(&self, batch: &[&str]) -> crate::Result<Tensor<2>> {
        crate::tower::require_texts(batch)?;
        let rows: Vec<Vec<i64>> = self
            .tokenizer
            .tokenize_batch(batch, self.context_length, self.overflow)?
            .into_iter()
            .map(|r| r.into_iter().map(i64::from).collect())
            .collect();
        let ids = int_tensor(&rows, &self.device);
        Ok(l2_normalize(self.model.encode_text(ids)))
    }
    fn input_digest(input: &str) -> [u8; 32] {
        text_digest(input)
    }
}
