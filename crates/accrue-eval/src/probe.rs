//! Linear probing of frozen embeddings, HEAR protocol (method spec §6.1, §10 items 17–18).
//!
//! Reference: `hearbenchmark/hear-eval-kit:heareval/predictions/task_predictions.py`
//! (`FullyConnectedPrediction`, the grid search and the k-fold rule) and `heareval/score.py`.
//!
//! * Head ([`ProbeHead`]): `hidden_layers` × [Linear(→ hidden_dim) → BatchNorm1d →
//!   Dropout(p) → ReLU], then Linear(→ n_labels). `hidden_layers = 0` (the default, §10 item 17)
//!   is the paper's *linear* probe. Weights Xavier-uniform or Xavier-normal with gain 1 for the
//!   first layer and √2 after a ReLU; biases PyTorch's default `U(±1/√fan_in)`.
//! * Loss: softmax cross-entropy (multi-class, one label per clip) or sigmoid BCE-with-logits
//!   (multi-label). Score: top-1 accuracy or macro mAP ([`crate::classification`], classes with
//!   no positive skipped). mAP is computed on logits (rank-equivalent to HEAR's sigmoid outputs,
//!   without `f32` saturation ties).
//! * Training: Adam (PyTorch defaults, ε = 1e-8), mini-batches of `batch_size` in a reshuffled
//!   order every epoch, at most `max_epochs`, validation every `check_val_every_n_epoch`
//!   epochs, early stopping after `patience` validations without a strict improvement; the
//!   best-validation model is the one tested.
//! * Grid: `hidden_layers × learning_rates × inits`; if it has more than `max_grid_points`
//!   points, a seeded shuffle picks that many (HEAR shuffles with Python's RNG; ours is a
//!   SplitMix64 shuffle, so the *subset* differs from HEAR's for the MLP grid — the linear grid
//!   has exactly 8 points and is always tried whole). Ties on validation go to the earlier
//!   point of the grid order.
//! * k-fold tasks ([`probe_k_fold`]): fold `i` test, fold `i+1` (cyclic) validation, the rest
//!   training; the grid is searched on the first split and its best point retrained on the
//!   others; test scores are averaged over folds.
//!
//! Determinism: initial weights, batch order and dropout masks come from a local seeded PRNG,
//! not from Burn's global RNG, so a run is reproducible whatever else runs in the process.
//! Training runs on `device.autodiff()` of the caller's device (the default CPU `flex` device
//! in tests); evaluation never touches the embeddings it is given.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::classification::{NoPositiveRule, mean_average_precision, top1_accuracy};
use crate::error::EvalError;

/// The crate result (named apart from `Result`, which Burn's `Config` derive expects to be std's).
type Res<T> = crate::error::Result<T>;
use crate::matrix::Matrix;
use accrue_core::seed::SplitMix64;

/// Weight initialisation of the probe's linear layers (the HEAR grid's second axis).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ProbeInit {
    /// `torch.nn.init.xavier_uniform_`.
    XavierUniform,
    /// `torch.nn.init.xavier_normal_`.
    XavierNormal,
}

/// Configuration of the HEAR probe and its grid search. [`ProbeConfig::new`] (=
/// [`ProbeConfig::hear_linear`]) is the spec's recommendation.
#[derive(Config, Debug, PartialEq)]
pub struct ProbeConfig {
    /// Grid axis: numbers of hidden layers (`[0]` = linear probe).
    #[config(default = "vec![0]")]
    pub hidden_layers: Vec<usize>,
    /// Width of hidden layers.
    #[config(default = 1024)]
    pub hidden_dim: usize,
    /// Dropout probability in hidden blocks.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Grid axis: Adam learning rates.
    #[config(default = "vec![3.2e-3, 1e-3, 3.2e-4, 1e-4]")]
    pub learning_rates: Vec<f64>,
    /// Grid axis: weight initialisations.
    #[config(default = "vec![ProbeInit::XavierUniform, ProbeInit::XavierNormal]")]
    pub inits: Vec<ProbeInit>,
    /// The most grid points tried (HEAR: 8).
    #[config(default = 8)]
    pub max_grid_points: usize,
    /// Mini-batch size.
    #[config(default = 1024)]
    pub batch_size: usize,
    /// Maximum number of epochs.
    #[config(default = 500)]
    pub max_epochs: usize,
    /// Validate every this many epochs.
    #[config(default = 3)]
    pub check_val_every_n_epoch: usize,
    /// Early-stopping patience, in validations.
    #[config(default = 20)]
    pub patience: usize,
    /// Seed of initialisation, batch order, dropout and grid shuffling.
    #[config(default = 42)]
    pub seed: u64,
}

impl ProbeConfig {
    /// The paper's linear probe: HEAR grid with `hidden_layers = 0` (8 points).
    pub fn hear_linear() -> Self {
        Self::new()
    }

    /// HEAR's default MLP grid: hidden layers {1, 2} × 4 learning rates × 2 inits, 8 of the 16
    /// points tried.
    pub fn hear_mlp() -> Self {
        Self::new().with_hidden_layers(vec![1, 2])
    }

    fn validate(&self) -> Res<()> {
        let positive = [
            ("hidden_layers", self.hidden_layers.len()),
            ("learning_rates", self.learning_rates.len()),
            ("inits", self.inits.len()),
            ("max_grid_points", self.max_grid_points),
            ("batch_size", self.batch_size),
            ("max_epochs", self.max_epochs),
            ("check_val_every_n_epoch", self.check_val_every_n_epoch),
            ("patience", self.patience),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(EvalError::config(field, "must be non-empty / positive"));
            }
        }
        if self.hidden_layers.iter().any(|&h| h > 0) && self.hidden_dim == 0 {
            return Err(EvalError::config("hidden_dim", "must be positive"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(EvalError::config("dropout", "must be in [0, 1)"));
        }
        if self
            .learning_rates
            .iter()
            .any(|&lr| !(lr > 0.0 && lr.is_finite()))
        {
            return Err(EvalError::config(
                "learning_rates",
                "must be positive and finite",
            ));
        }
        Ok(())
    }

    /// The grid points that will be tried, in order.
    pub fn grid(&self) -> Vec<GridPoint> {
        let mut points = Vec::new();
        for &hidden_layers in &self.hidden_layers {
            for &learning_rate in &self.learning_rates {
                for &init in &self.inits {
                    points.push(GridPoint {
                        hidden_layers,
                        learning_rate,
                        init,
                    });
                }
            }
        }
        if points.len() > self.max_grid_points {
            SplitMix64::new(self.seed).shuffle(&mut points);
            points.truncate(self.max_grid_points);
        }
        points
    }
}

/// One point of the hyper-parameter grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Number of hidden layers.
    pub hidden_layers: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Weight initialisation.
    pub init: ProbeInit,
}

/// Labels of a probing task.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One class per clip (softmax + cross-entropy, top-1 accuracy).
    MultiClass {
        /// Class index per clip.
        labels: Vec<usize>,
        /// Number of classes.
        n_classes: usize,
    },
    /// Any number of labels per clip (sigmoid + BCE, macro mAP).
    MultiLabel {
        /// `[N, n_classes]` row-major.
        labels: Vec<bool>,
        /// Number of classes.
        n_classes: usize,
    },
}

impl Targets {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        match self {
            Self::MultiClass { n_classes, .. } | Self::MultiLabel { n_classes, .. } => *n_classes,
        }
    }

    /// Number of clips.
    pub fn len(&self) -> usize {
        match self {
            Self::MultiClass { labels, .. } => labels.len(),
            Self::MultiLabel { labels, n_classes } => labels.len() / (*n_classes).max(1),
        }
    }

    /// Whether there are no clips.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score's name in reports.
    pub fn metric_name(&self) -> &'static str {
        match self {
            Self::MultiClass { .. } => "top1_acc",
            Self::MultiLabel { .. } => "mAP",
        }
    }

    fn select(&self, idx: &[usize]) -> Self {
        match self {
            Self::MultiClass { labels, n_classes } => Self::MultiClass {
                labels: idx.iter().map(|&i| labels[i]).collect(),
                n_classes: *n_classes,
            },
            Self::MultiLabel { labels, n_classes } => Self::MultiLabel {
                labels: idx
                    .iter()
                    .flat_map(|&i| labels[i * n_classes..(i + 1) * n_classes].iter().copied())
                    .collect(),
                n_classes: *n_classes,
            },
        }
    }

    /// Dense float targets `[N, C]` (one-hot for multi-class).
    fn dense(&self) -> Vec<f32> {
        match self {
            Self::MultiClass { labels, n_classes } => {
                let mut v = vec![0.0; labels.len() * n_classes];
                for (i, &l) in labels.iter().enumerate() {
                    v[i * n_classes + l] = 1.0;
                }
                v
            }
            Self::MultiLabel { labels, .. } => {
                labels.iter().map(|&b| f32::from(u8::from(b))).collect()
            }
        }
    }
}

/// Embeddings with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeData {
    /// Frozen embeddings `[N, D]`.
    pub embeddings: Matrix,
    /// Labels of the `N` clips.
    pub targets: Targets,
}

impl ProbeData {
    /// Validates that labels match the embeddings and are in range.
    pub fn new(embeddings: Matrix, targets: Targets) -> Res<Self> {
        let n = embeddings.rows();
        match &targets {
            Targets::MultiClass { labels, n_classes } => {
                if let Some(&bad) = labels.iter().find(|&&l| l >= *n_classes) {
                    return Err(EvalError::Index {
                        what: "class label",
                        index: bad,
                        bound: *n_classes,
                    });
                }
                if labels.len() != n {
                    return Err(EvalError::shape(
                        "targets",
                        format!("{} labels for {n} embeddings", labels.len()),
                    ));
                }
            }
            Targets::MultiLabel { labels, n_classes } => {
                if labels.len() != n * n_classes {
                    return Err(EvalError::shape(
                        "targets",
                        format!("{} labels for {n} × {n_classes}", labels.len()),
                    ));
                }
            }
        }
        if targets.n_classes() == 0 {
            return Err(EvalError::Empty("classes"));
        }
        embeddings.view().check_finite("embeddings")?;
        Ok(Self {
            embeddings,
            targets,
        })
    }

    /// The clips at `indices`.
    pub fn select(&self, indices: &[usize]) -> Res<Self> {
        Ok(Self {
            embeddings: self.embeddings.select_rows(indices)?,
            targets: self.targets.select(indices),
        })
    }

    /// Number of clips.
    pub fn len(&self) -> usize {
        self.embeddings.rows()
    }

    /// Whether there are no clips.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One hidden block: Linear → BatchNorm1d → Dropout → ReLU.
#[derive(Module, Debug)]
pub struct HiddenBlock {
    /// `[d_in, hidden_dim]`.
    pub linear: Linear,
    /// Batch normalisation over `hidden_dim` features.
    pub norm: BatchNorm,
}

/// The HEAR downstream head.
#[derive(Module, Debug)]
pub struct ProbeHead {
    /// Hidden blocks (empty for a linear probe).
    pub hidden: Vec<HiddenBlock>,
    /// Output layer `[d, n_labels]`.
    pub projection: Linear,
}

/// Xavier/PyTorch-default initialised linear layer from the local PRNG.
fn init_linear(
    d_in: usize,
    d_out: usize,
    init: ProbeInit,
    gain: f64,
    rng: &mut SplitMix64,
    device: &Device,
) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out).init(device);
    let std = gain * (2.0 / (d_in + d_out) as f64).sqrt();
    let w: Vec<f32> = (0..d_in * d_out)
        .map(|_| match init {
            ProbeInit::XavierUniform => {
                let a = 3.0f64.sqrt() * std;
                ((rng.next_f64() * 2.0 - 1.0) * a) as f32
            }
            ProbeInit::XavierNormal => (rng.normal() * std) as f32,
        })
        .collect();
    let bound = 1.0 / (d_in as f64).sqrt();
    let b: Vec<f32> = (0..d_out)
        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
        .collect();
    linear.weight = Param::from_data(TensorData::new(w, [d_in, d_out]), device);
    linear.bias = Some(Param::from_data(TensorData::new(b, [d_out]), device));
    linear
}

impl ProbeHead {
    /// A freshly initialised head for `d_in` features and `n_labels` outputs.
    pub fn init(
        d_in: usize,
        n_labels: usize,
        point: &GridPoint,
        hidden_dim: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut hidden = Vec::with_capacity(point.hidden_layers);
        let (mut d, mut gain) = (d_in, 1.0);
        for _ in 0..point.hidden_layers {
            hidden.push(HiddenBlock {
                linear: init_linear(d, hidden_dim, point.init, gain, &mut rng, device),
                norm: BatchNormConfig::new(hidden_dim).init(device),
            });
            d = hidden_dim;
            gain = std::f64::consts::SQRT_2; // torch.nn.init.calculate_gain("relu")
        }
        let projection = init_linear(d, n_labels, point.init, gain, &mut rng, device);
        Self { hidden, projection }
    }

    /// Logits `[N, n_labels]` of embeddings `[N, d_in]` (eval-mode behaviour unless the module
    /// is on an autodiff device in training mode; no dropout).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_with_masks(x, None)
    }

    /// Forward with one dropout mask `[N, hidden_dim]` (values 0 or 1/(1−p)) per hidden block.
    fn forward_with_masks(&self, mut x: Tensor<2>, masks: Option<&[Tensor<2>]>) -> Tensor<2> {
        for (k, block) in self.hidden.iter().enumerate() {
            x = block.norm.forward(block.linear.forward(x));
            if let Some(m) = masks.and_then(|m| m.get(k)) {
                x = x * m.clone();
            }
            x = relu(x);
        }
        self.projection.forward(x)
    }
}

/// The outcome of training one grid point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPointResult {
    /// The hyper-parameters.
    pub point: GridPoint,
    /// Best validation score.
    pub val_score: f64,
    /// Epoch (1-based) of the best validation.
    pub best_epoch: usize,
    /// Epochs trained before stopping.
    pub epochs_trained: usize,
}

/// A probe trained on one train/validation/test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// `top1_acc` or `mAP`.
    pub metric: String,
    /// Every grid point tried (one entry when the point was fixed).
    pub grid: Vec<GridPointResult>,
    /// Index into `grid` of the selected point.
    pub best: usize,
    /// Validation score of the selected point.
    pub val_score: f64,
    /// Test score of the selected point's best-validation model.
    pub test_score: f64,
}

fn score(model: &ProbeHead, x: &Tensor<2>, data: &ProbeData) -> Res<f64> {
    let logits = Matrix::from_tensor(model.forward(x.clone()))?;
    if logits.data().iter().any(|v| !v.is_finite()) {
        // A diverged probe scores the minimum rather than aborting the grid.
        return Ok(0.0);
    }
    match &data.targets {
        Targets::MultiClass { labels, .. } => top1_accuracy(logits.view(), labels),
        Targets::MultiLabel { labels, .. } => {
            Ok(mean_average_precision(labels, logits.view(), NoPositiveRule::Skip)?.mean)
        }
    }
}

fn to_tensor(m: &Matrix, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(m.data().to_vec(), [m.rows(), m.cols()]),
        device,
    )
}

fn check_compatible(train: &ProbeData, other: &ProbeData, what: &'static str) -> Res<()> {
    if other.embeddings.cols() != train.embeddings.cols()
        || other.targets.n_classes() != train.targets.n_classes()
        || std::mem::discriminant(&other.targets) != std::mem::discriminant(&train.targets)
    {
        return Err(EvalError::shape(
            what,
            "embedding dimension, task kind or number of classes differs from the training set",
        ));
    }
    if other.is_empty() {
        return Err(EvalError::Empty(what));
    }
    Ok(())
}

/// Trains one grid point with early stopping; returns the best-validation model (on the plain
/// device, eval mode) and its record.
pub fn train_point(
    train: &ProbeData,
    valid: &ProbeData,
    point: &GridPoint,
    config: &ProbeConfig,
    device: &Device,
) -> Res<(ProbeHead, GridPointResult)> {
    config.validate()?;
    check_compatible(train, train, "train")?;
    check_compatible(train, valid, "validation")?;
    let plain = device.clone().inner();
    let ad = device.clone().autodiff();
    let (n, d, c) = (
        train.len(),
        train.embeddings.cols(),
        train.targets.n_classes(),
    );
    let mut model = ProbeHead::init(d, c, point, config.hidden_dim, config.seed, &ad);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut rng = SplitMix64::new(config.seed ^ 0x05EE_D0FB_A7C4);

    let x_train = to_tensor(&train.embeddings, &ad);
    let y_train = Tensor::<2>::from_data(TensorData::new(train.targets.dense(), [n, c]), &ad);
    let x_valid = to_tensor(&valid.embeddings, &plain);
    let multi_class = matches!(train.targets, Targets::MultiClass { .. });

    let mut best: Option<(f64, ProbeHead, usize)> = None;
    let mut bad_checks = 0usize;
    let mut order: Vec<usize> = (0..n).collect();
    let mut epochs_trained = 0;
    for epoch in 1..=config.max_epochs {
        rng.shuffle(&mut order);
        for batch in order.chunks(config.batch_size) {
            let idx: Vec<i64> = batch.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [batch.len()]), &ad);
            let x = x_train.clone().select(0, idx.clone());
            let y = y_train.clone().select(0, idx);
            let masks: Vec<Tensor<2>> = (0..point.hidden_layers)
                .map(|_| {
                    let keep = 1.0 - config.dropout;
                    let m: Vec<f32> = (0..batch.len() * config.hidden_dim)
                        .map(|_| {
                            if rng.next_f64() < keep {
                                (1.0 / keep) as f32
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    Tensor::from_data(TensorData::new(m, [batch.len(), config.hidden_dim]), &ad)
                })
                .collect();
            let logits = model.forward_with_masks(x, Some(&masks));
            let loss = if multi_class {
                (log_softmax(logits, 1) * y).sum_dim(1).mean().neg()
            } else {
                // BCE with logits, stable: max(z, 0) − z·y + log(1 + exp(−|z|)).
                let softplus = logits.clone().abs().neg().exp().add_scalar(1.0).log();
                (relu(logits.clone()) - logits * y + softplus).mean()
            };
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(point.learning_rate, model, grads);
        }
        epochs_trained = epoch;
        let check = epoch % config.check_val_every_n_epoch == 0
            || (epoch == config.max_epochs && best.is_none());
        if check {
            let snapshot = model.valid();
            let s = score(&snapshot, &x_valid, valid)?;
            if best.as_ref().is_none_or(|(b, _, _)| s > *b) {
                best = Some((s, snapshot, epoch));
                bad_checks = 0;
            } else {
                bad_checks += 1;
                if bad_checks >= config.patience {
                    break;
                }
            }
        }
    }
    let (val_score, model, best_epoch) = best.ok_or(EvalError::Undefined {
        metric: "probe",
        reason: "no validation was run".into(),
    })?;
    tracing::debug!(
        ?point,
        val_score,
        best_epoch,
        epochs_trained,
        "probe grid point"
    );
    Ok((
        model,
        GridPointResult {
            point: *point,
            val_score,
            best_epoch,
            epochs_trained,
        },
    ))
}

/// Scores a trained head on a dataset (top-1 accuracy or macro mAP).
pub fn evaluate(model: &ProbeHead, data: &ProbeData, device: &Device) -> Res<f64> {
    let plain = device.clone().inner();
    score(&model.valid(), &to_tensor(&data.embeddings, &plain), data)
}

/// Grid search on `train`/`valid`, test of the best point's best-validation model.
pub fn probe(
    train: &ProbeData,
    valid: &ProbeData,
    test: &ProbeData,
    config: &ProbeConfig,
    device: &Device,
) -> Res<ProbeResult> {
    probe_with_extra_tests(train, valid, test, &[], config, device).map(|(r, _)| r)
}

/// As [`probe`], and also scores the selected model on further test sets (e.g. a
/// distribution-shifted copy of the test split) without re-running the grid.
///
/// # Errors
/// As [`probe`]; an extra test set incompatible with `train`.
pub fn probe_with_extra_tests(
    train: &ProbeData,
    valid: &ProbeData,
    test: &ProbeData,
    extra: &[&ProbeData],
    config: &ProbeConfig,
    device: &Device,
) -> Res<(ProbeResult, Vec<f64>)> {
    config.validate()?;
    check_compatible(train, test, "test")?;
    for e in extra {
        check_compatible(train, e, "extra test")?;
    }
    let mut grid = Vec::new();
    let mut best: Option<(usize, ProbeHead)> = None;
    for (i, point) in config.grid().iter().enumerate() {
        let (model, record) = train_point(train, valid, point, config, device)?;
        let better = best
            .as_ref()
            .is_none_or(|(b, _)| record.val_score > grid_val(&grid, *b));
        grid.push(record);
        if better {
            best = Some((i, model));
        }
    }
    let (best, model) = best.ok_or(EvalError::Empty("grid"))?;
    let extra_scores = extra
        .iter()
        .map(|e| evaluate(&model, e, device))
        .collect::<Res<Vec<f64>>>()?;
    Ok((
        ProbeResult {
            metric: train.targets.metric_name().to_string(),
            val_score: grid[best].val_score,
            test_score: evaluate(&model, test, device)?,
            grid,
            best,
        },
        extra_scores,
    ))
}

fn grid_val(grid: &[GridPointResult], i: usize) -> f64 {
    grid[i].val_score
}

/// The folds of one k-fold split: fold `test` is tested, fold `valid = test + 1 (mod k)`
/// validates, the others train.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoldSplit {
    /// Test fold.
    pub test: usize,
    /// Validation fold.
    pub valid: usize,
    /// Training folds, ascending.
    pub train: Vec<usize>,
}

/// HEAR's k-fold rule for `k ≥ 3` folds (split `i`: test `i`, validation `i+1` cyclic).
pub fn kfold_splits(k: usize) -> Res<Vec<FoldSplit>> {
    if k < 3 {
        return Err(EvalError::config(
            "folds",
            "the k-fold rule needs at least 3 folds",
        ));
    }
    Ok((0..k)
        .map(|i| {
            let valid = (i + 1) % k;
            FoldSplit {
                test: i,
                valid,
                train: (0..k).filter(|&f| f != i && f != valid).collect(),
            }
        })
        .collect())
}

/// The k-fold probe result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KFoldResult {
    /// `top1_acc` or `mAP`.
    pub metric: String,
    /// The grid search (on the first split).
    pub search: ProbeResult,
    /// Test score per split (split `i` tests fold `i`).
    pub test_scores: Vec<f64>,
    /// Mean test score over folds.
    pub mean_test: f64,
    /// Population standard deviation of the test scores.
    pub std_test: f64,
}

/// HEAR k-fold probing: `fold[n]` is clip `n`'s fold in `0..k`.
pub fn probe_k_fold(
    data: &ProbeData,
    fold: &[usize],
    k: usize,
    config: &ProbeConfig,
    device: &Device,
) -> Res<KFoldResult> {
    if fold.len() != data.len() {
        return Err(EvalError::shape(
            "folds",
            format!("{} fold ids for {} clips", fold.len(), data.len()),
        ));
    }
    if let Some(&bad) = fold.iter().find(|&&f| f >= k) {
        return Err(EvalError::Index {
            what: "fold",
            index: bad,
            bound: k,
        });
    }
    let subset = |folds: &[usize]| -> Res<ProbeData> {
        let idx: Vec<usize> = (0..data.len())
            .filter(|&i| folds.contains(&fold[i]))
            .collect();
        data.select(&idx)
    };
    let splits = kfold_splits(k)?;
    let mut search = None;
    let mut test_scores = Vec::with_capacity(k);
    for split in &splits {
        let (train, valid, test) = (
            subset(&split.train)?,
            subset(&[split.valid])?,
            subset(&[split.test])?,
        );
        match &search {
            None => {
                let r = probe(&train, &valid, &test, config, device)?;
                test_scores.push(r.test_score);
                search = Some(r);
            }
            Some(r) => {
                let point = r.grid[r.best].point;
                let (model, _) = train_point(&train, &valid, &point, config, device)?;
                test_scores.push(evaluate(&model, &test, device)?);
            }
        }
        tracing::info!(fold = split.test, score = test_scores.last(), "probe fold");
    }
    let search = search.ok_or(EvalError::Empty("folds"))?;
    let mean = test_scores.iter().sum::<f64>() / k as f64;
    let var = test_scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / k as f64;
    Ok(KFoldResult {
        metric: search.metric.clone(),
        search,
        test_scores,
        mean_test: mean,
        std_test: var.sqrt(),
    })
}
