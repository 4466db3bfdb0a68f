//! Declared evaluation suites: what `accrue eval` runs on every stage model of a run.
//!
//! The runner is split by protocol: [`schema`] (the suite file), [`embedding`] (running a
//! model over a dataset once, the on-disk embedding cache), [`probe`], [`zero_shot`],
//! [`retrieval`], and [`run`] (a stage model, a whole run, the CL matrix).
//!
//! A suite (TOML or JSON) lists linear-probe, zero-shot and retrieval tasks over accrue-data
//! manifests; frozen-tower embeddings come from supervision tables (built with `accrue embed`
//! or by `accrue demo`), so no tower runs during evaluation. Evaluation is eval mode (no
//! dropout, BatchNorm running statistics); the only thing trained is the probe head.
//!
//! ```toml
//! cache_dir = "embeddings"        # optional: keep each model's embeddings on disk
//!
//! [[probe]]                       # HEAR linear probe on f_a (method-spec §6.1), fixed parts
//! name = "FSD50K"                 # multi-label clips: sigmoid/BCE probe, macro mAP
//! train = { manifest = "fsd50k.jsonl", split = "train" }
//! valid = { manifest = "fsd50k.jsonl", split = "valid" }
//! test  = { manifest = "fsd50k.jsonl", split = "test" }
//! own_head = true                 # also score g^A, when its classes are the task's
//!
//! [[kfold_probe]]                 # HEAR k-fold: test fold i, validate on i+1, mean over folds
//! name = "ESC-50"
//! data = { manifest = "esc50.jsonl" }
//!
//! [[zero_shot]]                   # §6.2: prompts (AT) or class images (AV)
//! name = "ESC-50"
//! head = "AT"
//! data = { manifest = "esc50.jsonl" }
//! table = "text-table.json"
//! templates = ["this is a sound of {label}."]
//!
//! [[retrieval]]                   # §6.3: captions (AT, Clotho rule) or images (AV), both ways
//! name = "Clotho"
//! head = "AT"
//! data = { manifest = "clotho-eval.jsonl" }
//! table = "text-table.json"
//!
//! [continual.AT]                  # optional: the score standing for each task in the CL matrix
//! protocol = "retrieval"
//! task = "Clotho"
//! metric = "R@10"
//! direction = "T2A"
//! ```

pub mod embedding;
pub mod probe;
pub mod retrieval;
pub mod run;
pub mod schema;
pub mod zero_shot;

pub use embedding::{
    Embedded, MIN_EVAL_SAMPLES, embed_dataset, embed_files, embed_waveforms, eval_batches,
    load_any_model, load_model, load_model_from_file, model_spec,
};
pub use run::{
    StageScores, evaluate_model, evaluate_model_at, evaluate_run, evaluate_stage_model,
    evaluate_stage_model_at, evaluate_stage_model_spec, initial_stage_name, stage_matrix,
};
pub use schema::{
    AverageTask, EvalSuite, HeadChoice, KFoldProbeTask, NamedPart, Part, ProbeTask, RetrievalTask,
    ScoreRef, ZeroShotTask,
};
