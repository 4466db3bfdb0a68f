//! A custom continual-learning method in a few lines: feature-space L2 distillation
//! (`shared/feature_l2.rs`), trained for a few steps of an AV stage after task A on synthetic
//! data with the library's own step function and Burn's Adam.
//!
//! Run: `cargo run -p accrue-continual --example custom_strategy`

#[path = "shared/feature_l2.rs"]
mod feature_l2;

use accrue_continual::testing::{synthetic_batch, tiny_head_config, tiny_student};
use accrue_continual::{
    StageInfo, StepCounters, Strategy, TaskKind, Trainable, apply_step, compute_step,
};
use burn::optim::AdamConfig;
use burn::tensor::Device;

fn main() -> accrue_continual::Result<()> {
    let device = Device::default().autodiff();
    device.seed(0);
    let student = tiny_student(&device).ensure_head(TaskKind::AV, &tiny_head_config(), &device)?;
    let stage = StageInfo::new(1, TaskKind::AV, Some(TaskKind::A), 0.3);
    let mut strategy = feature_l2::FeatureL2::default();
    let aux = strategy.begin_stage(&stage, &student, &device)?;
    let mut model = Trainable { student, aux };
    let mut optim = AdamConfig::new().init();
    let mut counters = StepCounters::default();
    let batch = [synthetic_batch(TaskKind::AV, &device)];
    for step in 0..5 {
        let computed = compute_step(&strategy, &stage, &model, &batch, &mut counters)?;
        let terms: Vec<String> = computed
            .terms
            .iter()
            .map(|t| format!("{}={:.4}", t.name, t.value))
            .collect();
        println!(
            "step {step}: total {:.4} ({})",
            computed.total,
            terms.join(", ")
        );
        model = apply_step(model, &mut optim, 1e-3, computed, &mut counters);
    }
    strategy.end_stage(&stage, &model.student, &model.aux)?;
    println!(
        "{} steps, {} teacher forwards",
        counters.steps, counters.teacher_forwards
    );
    Ok(())
}
