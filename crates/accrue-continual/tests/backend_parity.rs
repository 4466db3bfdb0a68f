//! The same A → AV → AT run on `flex` and on the device under test, loss by loss.
//!
//! The device under test is `Device::default()`: `flex` in an ordinary build, so in CI this
//! test checks that two runs from the same weights give bit-identical losses at every step (the
//! trainer adds no nondeterminism of its own). Built with a GPU backend (`--features
//! burn/vulkan`) and run with `BURN_DEVICE=vulkan`, as `scripts/gpu_check.sh` does, it compares
//! that backend with `flex` step by step.
//!
//! Backends draw different random numbers from the same seed (weight init, dropout masks,
//! SpecAugment stripes), so both runs start from one set of weights written by a `flex` run,
//! with dropout and SpecAugment off; crops, batch order and captions come from the host RNG and
//! are the same on every backend. Tolerance across backends: every step's loss within
//! `2e-3 · max(1, |loss|)` of `flex`'s (the float error of a different reduction order,
//! compounded over the run's 12 optimiser steps); on the same backend: equal bits.

mod common;

use std::path::Path;

use accrue_continual::{ExperimentConfig, run_experiment_config};
use burn::tensor::Device;
use common::{stage, step_lines, write_data};

/// An A → AV → AT experiment of the demo encoder (LwF on the AT stage, so the distillation
/// path runs too) writing into `out`, starting from `init` when given.
fn experiment(dir: &Path, out: &str, init: Option<&str>) -> ExperimentConfig {
    let checkpoint = init
        .map(|p| format!("checkpoint = \"{p}\"\n"))
        .unwrap_or_default();
    let mut text = format!(
        "name = \"{out}\"\noutput_dir = \"{out}\"\n\
         [encoder]\npreset = \"resnet38-tiny\"\nnum_classes = 3\n{checkpoint}\
         [encoder.spec_augment]\nmode = \"off\"\n\
         [encoder.dropout]\nblock = 0.0\nstage = 0.0\nfinal = 0.0\n\
         [head]\nhidden = 32\noutput = {}\n",
        common::DIM
    );
    text += &stage("A", &["A"], "{ kind = \"finetune\" }", "");
    text += &stage("AV", &["AV"], "{ kind = \"finetune\" }", "");
    text += &stage("AT", &["AT"], "{ kind = \"lwf\" }", "lambda = 0.3\n");
    let path = dir.join(format!("{out}.toml"));
    std::fs::write(&path, text).expect("write experiment");
    ExperimentConfig::load(&path).expect("experiment")
}

fn losses(run: &Path) -> Vec<f64> {
    step_lines(&run.join("metrics.jsonl"))
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("step line");
            v["loss"].as_f64().expect("loss")
        })
        .collect()
}

#[test]
fn a_av_at_losses_match_flex_step_by_step() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write_data(dir);
    let flex = Device::flex();
    // One set of weights for both runs (every head included): a flex run's final model.
    let init = experiment(dir, "init", None);
    run_experiment_config(&init, &flex, false).expect("init run");
    let weights = "init/final.safetensors";

    let reference = experiment(dir, "flex", Some(weights));
    run_experiment_config(&reference, &flex, false).expect("flex run");
    let device = Device::default();
    let tested = experiment(dir, "tested", Some(weights));
    run_experiment_config(&tested, &device, false).expect("run on the device under test");

    let (want, got) = (losses(&dir.join("flex")), losses(&dir.join("tested")));
    assert_eq!(want.len(), 12, "2 epochs × 2 batches × 3 stages");
    assert_eq!(got.len(), want.len(), "steps on {device:?}");
    let same_backend = device == flex;
    let mut worst = 0.0f64;
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert!(g.is_finite(), "step {i}: loss {g} on {device:?}");
        if same_backend {
            assert_eq!(
                w.to_bits(),
                g.to_bits(),
                "step {i}: {g} vs {w}: not bit-identical"
            );
        } else {
            let err = (w - g).abs() / w.abs().max(1.0);
            worst = worst.max(err);
            assert!(err <= 2e-3, "step {i}: {g} on {device:?} vs {w} on flex");
        }
    }
    eprintln!(
        "backend parity: {} steps on {device:?} against flex, worst relative loss error {worst:.2e}",
        got.len()
    );
}
