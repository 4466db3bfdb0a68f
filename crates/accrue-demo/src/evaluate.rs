//! Data preparation, frozen-tower supervision and the evaluation of one stage model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use accrue_continual::TaskKind;
use accrue_data::Dataset;
use accrue_data::readers::manifest::{self, ManifestOptions};
use accrue_eval::zero_shot::ZeroShotConfig;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{DemoOptions, Settings};
use accrue_core::atomic;
use accrue_eval::report::Protocol;
pub use accrue_suite::suite::StageScores;
use accrue_suite::suite::{
    AverageTask, EvalSuite, KFoldProbeTask, NamedPart, Part, ProbeTask, RetrievalTask, ScoreRef,
    ZeroShotTask,
};
use accrue_suite::supervision::{
    Towers, dataset_captions, dataset_images, image_table, text_table,
};
use accrue_suite::{Error, Result};
use accrue_towers::FrozenTower;

/// Task names of the miniature (the analogues of the paper's datasets).
pub mod tasks {
    /// Held-out pitches of the training soundfont (ESC-50 / Clotho analogue).
    pub const INSTRUMENTS: &str = "Instruments";
    /// The same notes rendered with a second soundfont (US8K analogue: a shifted domain).
    pub const SHIFT: &str = "Instruments-shift";
    /// 134 real Tux Paint sound effects with their own images and captions (AVE / Clotho
    /// analogue: out of domain, instance-level).
    pub const TUXPAINT: &str = "TuxPaint";
    /// Downstream suite (the HEAR analogue; k-fold linear probes on clips no stage trains on,
    /// the instrument test clips of both soundfonts and the Tux Paint sounds): register of the
    /// note (low / middle / high).
    pub const REGISTER: &str = "Register";
    /// Downstream suite: dynamics (soft / moderate / loud).
    pub const DYNAMICS: &str = "Dynamics";
    /// Downstream suite: the variant within an instrument that has several (grand vs bright
    /// piano, nylon vs steel guitar, the four saxophones …).
    pub const VARIANT: &str = "Variant";
    /// Downstream suite: which soundfont rendered the note (FluidR3 vs TimGM6mb: timbre and
    /// recording character; no stage ever hears TimGM6mb).
    pub const SOUNDFONT: &str = "Soundfont";
    /// Downstream suite: the Tux Paint sound's stamp category (animals, symbols, household,
    /// seasonal, hobbies: real recordings, out of domain).
    pub const TUX_CATEGORY: &str = "TuxPaint-category";
    /// The suite's average (Table 3 "Avg.").
    pub const SUITE_AVG: &str = "Suite avg.";
}

/// Folds of the downstream suite's k-fold probes.
pub const SUITE_FOLDS: u32 = 5;

/// Zero-shot prompt templates (ensembled, method-spec §6.2).
pub const TEMPLATES: [&str; 3] = [
    "this is a sound of {label}.",
    "the sound of a {label}.",
    "a recording of a {label} playing.",
];

/// Paths of the derived manifests and supervision tables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataPaths {
    /// Task A (labels), train + valid.
    pub task_a: PathBuf,
    /// Task AV (class images), train + valid.
    pub task_av: PathBuf,
    /// Task AT (5 captions), train + valid.
    pub task_at: PathBuf,
    /// Joint triplets for MT-WC: the AV clips with their images *and* captions, train + valid.
    #[serde(default)]
    pub task_avt: PathBuf,
    /// Instrument test split (labels + captions).
    pub test: PathBuf,
    /// Shifted-soundfont test split.
    pub shift: PathBuf,
    /// Tux Paint clips (image + caption each).
    pub tuxpaint: PathBuf,
    /// The class list (`classes.json` of the set).
    pub classes: PathBuf,
    /// Text supervision table (captions and prompts → MiniLM).
    pub text_table: PathBuf,
    /// Image supervision table (image path → EfficientNet-Lite0).
    pub image_table: PathBuf,
    /// Text tower width.
    pub text_dim: usize,
    /// Image tower width.
    pub image_dim: usize,
    /// The towers' identities (architecture, weight sha256, preprocessing) as JSON.
    pub towers: PathBuf,
    /// The downstream suite's manifests (task name, manifest with folds), in table order; a
    /// task too small for its folds (a smoke subset) is left out.
    #[serde(default)]
    pub suite: Vec<(String, PathBuf)>,
}

/// One class of the set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// Class name (label).
    pub name: String,
    /// Its image files (absolute).
    pub images: Vec<PathBuf>,
}

/// Everything the evaluation of a stage model reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalContext {
    /// Data and tables.
    pub data: DataPaths,
    /// Classes in label order.
    pub classes: Vec<ClassInfo>,
    /// Encoder preset (to build the skeleton the model is loaded into).
    pub encoder: accrue_encoders::Preset,
    /// Maximum epochs per linear-probe grid point.
    pub probe_epochs: usize,
}

impl EvalContext {
    /// The context of a prepared data folder.
    pub fn new(data: &DataPaths, settings: &Settings) -> Self {
        Self {
            classes: read_classes(&data.classes).unwrap_or_default(),
            data: data.clone(),
            encoder: settings.encoder,
            probe_epochs: settings.probe_epochs,
        }
    }
}

fn read_classes(path: &Path) -> Result<Vec<ClassInfo>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let classes = v["classes"]
        .as_array()
        .ok_or_else(|| Error::Other(format!("{}: no `classes` array", path.display())))?;
    Ok(classes
        .iter()
        .filter_map(|c| {
            Some(ClassInfo {
                name: c["name"].as_str()?.to_string(),
                images: c["images"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| i.as_str().map(|s| base.join(s)))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| Error::io(p, e))
}

/// Reads a JSONL manifest of the set, makes `audio`/`images` absolute and groups the rows by
/// `split/subset`.
fn read_rows(path: &Path, base: &Path) -> Result<BTreeMap<String, Vec<serde_json::Value>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut groups: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::Other(format!("{} line {}: {e}", path.display(), i + 1)))?;
        if let Some(a) = v["audio"].as_str() {
            v["audio"] = base.join(a).to_string_lossy().into_owned().into();
        }
        if let Some(imgs) = v.get_mut("images").and_then(|x| x.as_array_mut()) {
            for img in imgs {
                if let Some(s) = img.as_str() {
                    *img = base.join(s).to_string_lossy().into_owned().into();
                }
            }
        }
        let split = v["split"].as_str().unwrap_or("none").to_string();
        let subset = v["meta"]["subset"].as_str().unwrap_or(&split).to_string();
        groups
            .entry(format!("{split}/{subset}"))
            .or_default()
            .push(v);
    }
    Ok(groups)
}

/// Every `stride`-th row so that a subset still covers the classes (rows are grouped by
/// class in the manifests).
fn subset(rows: &[serde_json::Value], max: Option<usize>) -> Vec<&serde_json::Value> {
    match max {
        Some(m) if rows.len() > m => {
            let stride = rows.len().div_ceil(m);
            rows.iter().step_by(stride).collect()
        }
        _ => rows.iter().collect(),
    }
}

fn jsonl(rows: &[&serde_json::Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

/// Writes the derived manifests under `<out>/data/`.
///
/// # Errors
/// The set is missing (with the command that prepares it) or unreadable.
pub fn prepare_data(opts: &DemoOptions, settings: &Settings) -> Result<DataPaths> {
    let summary = opts.data_dir.join("summary.json");
    if !summary.is_file() {
        return Err(Error::Missing(format!(
            "InstrumentAVT-mini is not prepared in {} (run scripts/setup_mini.sh, or ./run.sh \
             which does it)",
            opts.data_dir.display()
        )));
    }
    let base = absolute(&opts.data_dir)?;
    let out = opts.out_dir.join("data");
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let out = absolute(&out)?;
    let max = settings.max_clips;
    let train_valid = |g: &BTreeMap<String, Vec<serde_json::Value>>| -> Vec<serde_json::Value> {
        ["train/train", "valid/valid"]
            .iter()
            .flat_map(|k| subset(g.get(*k).map(Vec::as_slice).unwrap_or(&[]), max))
            .cloned()
            .collect()
    };
    let a = read_rows(&base.join("task_a.jsonl"), &base)?;
    let av = read_rows(&base.join("task_av.jsonl"), &base)?;
    let at = read_rows(&base.join("task_at.jsonl"), &base)?;
    let tux = read_rows(&base.join("tuxpaint.jsonl"), &base)?;
    let paths = DataPaths {
        task_a: out.join("task_a.jsonl"),
        task_av: out.join("task_av.jsonl"),
        task_at: out.join("task_at.jsonl"),
        task_avt: out.join("task_avt.jsonl"),
        test: out.join("test.jsonl"),
        shift: out.join("test_shift.jsonl"),
        tuxpaint: out.join("tuxpaint.jsonl"),
        classes: base.join("classes.json"),
        text_table: out.join("text-minilm.json"),
        image_table: out.join("image-efficientnet.json"),
        text_dim: 384,
        image_dim: 1280,
        towers: out.join("towers.json"),
        suite: Vec::new(),
    };
    // Joint triplets (MT-WC as the paper trains it on WavCaps): each AV clip with the
    // captions of the same clip from the AT set.
    let captions: BTreeMap<String, serde_json::Value> = at
        .values()
        .flatten()
        .filter_map(|r| {
            Some((
                r.get("id")?.as_str()?.to_string(),
                r.get("captions")?.clone(),
            ))
        })
        .collect();
    let avt: Vec<serde_json::Value> = train_valid(&av)
        .into_iter()
        .map(|mut r| {
            let id = r.get("id").and_then(|v| v.as_str()).map(str::to_string);
            if let (Some(c), Some(obj)) = (id.and_then(|i| captions.get(&i)), r.as_object_mut()) {
                obj.insert("captions".into(), c.clone());
            }
            r
        })
        .collect();
    for (path, rows) in [
        (&paths.task_a, train_valid(&a)),
        (&paths.task_av, train_valid(&av)),
        (&paths.task_at, train_valid(&at)),
        (&paths.task_avt, avt),
    ] {
        let refs: Vec<&serde_json::Value> = rows.iter().collect();
        atomic::write_if_changed(path, &jsonl(&refs))?;
    }
    let group = |g: &BTreeMap<String, Vec<serde_json::Value>>, k: &str| -> Result<String> {
        let rows = g
            .get(k)
            .ok_or_else(|| Error::Other(format!("the set has no `{k}` clips")))?;
        Ok(jsonl(&subset(rows, max)))
    };
    atomic::write_if_changed(&paths.test, &group(&at, "test/test")?)?;
    atomic::write_if_changed(&paths.shift, &group(&at, "test/test_shift")?)?;
    let tux_rows: Vec<serde_json::Value> = tux.into_values().flatten().collect();
    let tux_kept = subset(&tux_rows, max.map(|m| m * 2));
    atomic::write_if_changed(&paths.tuxpaint, &jsonl(&tux_kept))?;
    // The downstream suite: held-out clips only (the instrument test clips of both soundfonts,
    // the Tux Paint sounds), each labelled by a property no stage's loss names directly.
    let mut held_out: Vec<&serde_json::Value> = Vec::new();
    for k in ["test/test", "test/test_shift"] {
        held_out.extend(subset(at.get(k).map(Vec::as_slice).unwrap_or(&[]), max));
    }
    let mut paths = paths;
    for (name, rows) in suite_tasks(&held_out, &tux_kept) {
        let path = out.join(format!("suite-{}.jsonl", name.to_ascii_lowercase()));
        if usable_for_folds(&rows) {
            let refs: Vec<&serde_json::Value> = rows.iter().collect();
            atomic::write_if_changed(&path, &jsonl(&refs))?;
            paths.suite.push((name.to_string(), path));
        } else {
            tracing::warn!(
                task = name,
                clips = rows.len(),
                "too few clips for the suite's folds: left out"
            );
        }
    }
    Ok(paths)
}

fn meta<'v>(row: &'v serde_json::Value, key: &str) -> Option<&'v str> {
    row.get("meta")?.get(key)?.as_str()
}

/// The fold of a clip: the first byte of the sha256 of `key`, modulo [`SUITE_FOLDS`]. Renders
/// of one note by the two soundfonts share a key, so they share a fold.
fn fold_of(key: &str) -> u32 {
    let digest = accrue_core::hash::sha256_hex(key.as_bytes());
    u32::from_str_radix(&digest[..2], 16).unwrap_or(0) % SUITE_FOLDS
}

/// One probe row: the clip with `label` as its only label and its fold.
fn suite_row(row: &serde_json::Value, label: &str, fold: u32) -> Option<serde_json::Value> {
    Some(serde_json::json!({
        "audio": row.get("audio")?.clone(),
        "id": row.get("id")?.clone(),
        "labels": [label],
        "fold": fold,
    }))
}

/// The downstream suite's tasks over held-out instrument clips and Tux Paint sounds.
fn suite_tasks(
    held_out: &[&serde_json::Value],
    tux: &[&serde_json::Value],
) -> Vec<(&'static str, Vec<serde_json::Value>)> {
    let note_key = |r: &serde_json::Value| {
        let id = r.get("id").and_then(|v| v.as_str()).unwrap_or("");
        match meta(r, "soundfont") {
            Some(sf) => id.replace(sf, "*"),
            None => id.to_string(),
        }
    };
    let label_of = |r: &serde_json::Value| -> Option<String> {
        r.get("labels")?.get(0)?.as_str().map(str::to_string)
    };
    // Instruments with more than one variant in the held-out clips.
    let mut variants: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for r in held_out {
        if let (Some(l), Some(v)) = (label_of(r), meta(r, "variant")) {
            variants.entry(l).or_default().insert(v.to_string());
        }
    }
    let by = |f: &dyn Fn(&serde_json::Value) -> Option<String>| -> Vec<serde_json::Value> {
        held_out
            .iter()
            .filter_map(|r| suite_row(r, &f(r)?, fold_of(&note_key(r))))
            .collect()
    };
    let register = by(&|r| meta(r, "register").map(str::to_string));
    let dynamics = by(&|r| meta(r, "dynamics").map(str::to_string));
    let variant = by(&|r| {
        let l = label_of(r)?;
        (variants.get(&l)?.len() > 1).then(|| meta(r, "variant").map(str::to_string))?
    });
    let soundfont = by(&|r| meta(r, "soundfont").map(str::to_string));
    // Tux Paint categories with at least 7 of the kept sounds (enough for 5 folds; all 134
    // sounds are kept outside the smoke profile).
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for r in tux {
        if let Some(c) = meta(r, "category") {
            *count.entry(c).or_default() += 1;
        }
    }
    let category: Vec<serde_json::Value> = tux
        .iter()
        .filter_map(|r| {
            let c = meta(r, "category")?;
            let id = r.get("id")?.as_str()?;
            (count.get(c).copied().unwrap_or(0) >= 7).then(|| suite_row(r, c, fold_of(id)))?
        })
        .collect();
    vec![
        (tasks::REGISTER, register),
        (tasks::DYNAMICS, dynamics),
        (tasks::VARIANT, variant),
        (tasks::SOUNDFONT, soundfont),
        (tasks::TUX_CATEGORY, category),
    ]
}

/// Whether every fold holds at least two clips and the task at least two classes.
fn usable_for_folds(rows: &[serde_json::Value]) -> bool {
    let mut per_fold = vec![0usize; SUITE_FOLDS as usize];
    let mut classes = std::collections::BTreeSet::new();
    for r in rows {
        if let Some(f) = r.get("fold").and_then(|v| v.as_u64()) {
            per_fold[f as usize % SUITE_FOLDS as usize] += 1;
        }
        classes.insert(r["labels"][0].to_string());
    }
    classes.len() >= 2 && per_fold.iter().all(|&n| n >= 2)
}

fn read(path: &Path) -> Result<Dataset> {
    Ok(manifest::read(path, &ManifestOptions::default())?)
}

/// The prompt texts of every class (templates × names), in class order.
pub fn prompts(classes: &[ClassInfo]) -> Vec<String> {
    let cfg = zero_shot_config();
    classes.iter().flat_map(|c| cfg.prompts(&c.name)).collect()
}

fn zero_shot_config() -> ZeroShotConfig {
    ZeroShotConfig {
        templates: TEMPLATES.iter().map(|t| t.to_string()).collect(),
        underscores_to_spaces: true,
    }
}

/// Embeds every caption, prompt and image with the frozen towers (cached on disk) and writes
/// the two supervision tables.
///
/// # Errors
/// Missing towers (with the script to run), unreadable images, tower errors.
pub fn prepare_supervision(opts: &DemoOptions, data: &DataPaths, device: &Device) -> Result<()> {
    let towers = Towers::load(&opts.towers_dir, device)?;
    let cache = opts.out_dir.join("cache").join("towers");
    let classes = read_classes(&data.classes)?;
    let mut texts: Vec<String> = Vec::new();
    let mut images: Vec<PathBuf> = Vec::new();
    for path in [&data.task_at, &data.test, &data.shift, &data.tuxpaint] {
        texts.extend(dataset_captions(&read(path)?));
    }
    texts.extend(prompts(&classes));
    for path in [&data.task_av, &data.tuxpaint] {
        images.extend(dataset_images(&read(path)?));
    }
    images.extend(classes.iter().flat_map(|c| c.images.iter().cloned()));
    texts.sort();
    texts.dedup();
    images.sort();
    images.dedup();
    tracing::info!(
        texts = texts.len(),
        images = images.len(),
        "embedding with the frozen towers (cached)"
    );
    // Which towers produced the targets, for the artifacts' provenance.
    let full = |id: &accrue_towers::TowerIdentity| {
        format!(
            "{}; weights sha256:{}; preprocessing {}",
            id.architecture, id.weights_sha256, id.preprocessing
        )
    };
    let ids = serde_json::json!({
        "text": full(towers.text.identity()),
        "image": full(towers.image.identity()),
    });
    atomic::write_if_changed(&data.towers, &ids.to_string())?;
    let t = text_table(&towers.text, &cache, &texts, 64, true)?;
    let i = image_table(&towers.image, &cache, &images, 16, true)?;
    for (table, path) in [(&t, &data.text_table), (&i, &data.image_table)] {
        table.save(path)?;
    }
    Ok(())
}

/// The evaluation suite of the benchmark (see [`accrue_suite::suite`]).
pub fn suite(ctx: &EvalContext) -> EvalSuite {
    let d = &ctx.data;
    let names: Vec<String> = ctx.classes.iter().map(|c| c.name.clone()).collect();
    let instruments = Part::all(&d.test).batched(64);
    let shift = Part::all(&d.shift).batched(64);
    let tux = Part::all(&d.tuxpaint);
    let class_images = ctx
        .classes
        .iter()
        .map(|c| (c.name.clone(), c.images.clone()))
        .collect::<std::collections::BTreeMap<_, _>>();
    // The supervision table a head is compared against: captions for g^AT, pictures for g^AV.
    let table = |head: TaskKind| {
        if head == TaskKind::AT {
            d.text_table.clone()
        } else {
            d.image_table.clone()
        }
    };
    let zs = |name: &str, data: &Part, head: TaskKind| ZeroShotTask {
        name: name.to_string(),
        head,
        data: data.clone(),
        table: table(head),
        classes: Some(names.clone()),
        templates: TEMPLATES.iter().map(|t| t.to_string()).collect(),
        class_images: if head == TaskKind::AV {
            class_images.clone()
        } else {
            Default::default()
        },
    };
    let rt = |name: &str, data: &Part, head: TaskKind| RetrievalTask {
        name: name.to_string(),
        head,
        data: data.clone(),
        table: table(head),
        // Tux Paint has known duplicate captions and sounds (docs/benchmark-data.md).
        duplicates: name == tasks::TUXPAINT,
    };
    let score = |protocol, task: &str, metric: &str, direction: Option<&str>| ScoreRef {
        protocol,
        task: task.to_string(),
        metric: metric.to_string(),
        direction: direction.map(str::to_string),
    };
    EvalSuite {
        // Each stage model is evaluated once (its scores are cached beside it).
        cache_dir: None,
        // The same definitions as the report's CL table.
        continual: [
            (
                "A".to_string(),
                score(Protocol::LinearProbe, tasks::INSTRUMENTS, "top1_acc", None),
            ),
            (
                "AV".to_string(),
                score(
                    Protocol::ZeroShot,
                    tasks::INSTRUMENTS,
                    "top1_acc",
                    Some("A2I"),
                ),
            ),
            (
                "AT".to_string(),
                score(Protocol::Retrieval, tasks::INSTRUMENTS, "R@10", Some("T2A")),
            ),
        ]
        .into_iter()
        .collect(),
        probe: vec![ProbeTask {
            name: tasks::INSTRUMENTS.into(),
            train: Part::split(&d.task_a, "train").batched(64),
            valid: Part::split(&d.task_a, "valid").batched(64),
            test: instruments.clone(),
            extra_tests: vec![NamedPart {
                name: tasks::SHIFT.into(),
                part: shift.clone(),
            }],
            max_epochs: ctx.probe_epochs,
            own_head: true,
            // g^A was trained on task A's manifest: its sorted class names, the trainer's
            // numbering (the own head is scored only when they are the task's).
            head_classes: accrue_data::readers::manifest::read(&d.task_a, &Default::default())
                .ok()
                .map(|ds| ds.classes),
        }],
        // The downstream suite (Tux Paint clips differ in length: one per pass).
        kfold_probe: d
            .suite
            .iter()
            .map(|(name, path)| KFoldProbeTask {
                name: name.clone(),
                data: if name == tasks::TUX_CATEGORY {
                    Part::all(path)
                } else {
                    Part::all(path).batched(64)
                },
                max_epochs: ctx.probe_epochs,
            })
            .collect(),
        // EfficientNet images (1280-d) and MiniLM text (384-d) share no space: each task is
        // scored by its own head, however long ago it was trained.
        head_choice: accrue_suite::suite::HeadChoice::Own,
        average: if d.suite.is_empty() {
            Vec::new()
        } else {
            vec![AverageTask {
                name: tasks::SUITE_AVG.into(),
                protocol: Protocol::LinearProbe,
                metric: "top1_acc".into(),
                tasks: d.suite.iter().map(|(n, _)| n.clone()).collect(),
            }]
        },
        zero_shot: vec![
            zs(tasks::INSTRUMENTS, &instruments, TaskKind::AT),
            zs(tasks::SHIFT, &shift, TaskKind::AT),
            zs(tasks::INSTRUMENTS, &instruments, TaskKind::AV),
            zs(tasks::SHIFT, &shift, TaskKind::AV),
        ],
        retrieval: vec![
            rt(tasks::INSTRUMENTS, &instruments, TaskKind::AT),
            rt(tasks::TUXPAINT, &tux, TaskKind::AT),
            rt(tasks::TUXPAINT, &tux, TaskKind::AV),
        ],
    }
}

/// Evaluates one stage model of the grid on the benchmark's suite.
///
/// # Errors
/// As [`accrue_suite::suite::evaluate_stage_model`].
pub fn evaluate_stage_model(
    ctx: &EvalContext,
    model: &Path,
    device: &Device,
) -> Result<StageScores> {
    accrue_suite::suite::evaluate_stage_model(
        &suite(ctx),
        ctx.encoder,
        Some(ctx.classes.len()),
        model,
        device,
    )
}
