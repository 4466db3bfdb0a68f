//! The custom strategy of `examples/custom_strategy.rs`: it trains, its distillation term
//! shrinks the feature gap, and its teacher never moves.

#[path = "../examples/shared/feature_l2.rs"]
mod feature_l2;

use accrue_continual::testing::{fingerprint, synthetic_batch, tiny_head_config, tiny_student};
use accrue_continual::{
    StageInfo, StepCounters, Strategy, TaskKind, Trainable, apply_step, compute_step,
};
use burn::optim::AdamConfig;
use burn::tensor::Device;

#[test]
fn feature_l2_trains_and_keeps_its_teacher_frozen() {
    let device = Device::default().autodiff();
    device.seed(3);
    let student = tiny_student(&device)
        .ensure_head(TaskKind::AV, &tiny_head_config(), &device)
        .expect("head");
    // λ = 1: only the distillation term, so it must decrease.
    let stage = StageInfo::new(1, TaskKind::AV, Some(TaskKind::A), 1.0);
    let mut strategy = feature_l2::FeatureL2::default();
    let aux = strategy
        .begin_stage(&stage, &student, &device)
        .expect("begin");
    let teacher_before = fingerprint(strategy.teacher().expect("teacher"));
    let mut model = Trainable { student, aux };
    let mut optim = AdamConfig::new().init();
    let mut counters = StepCounters::default();
    let batch = [synthetic_batch(TaskKind::AV, &device)];
    let mut kd = Vec::new();
    for _ in 0..6 {
        let computed =
            compute_step(&strategy, &stage, &model, &batch, &mut counters).expect("step");
        let names: Vec<&str> = computed.terms.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["contrastive", "distillation"]);
        kd.push(computed.terms[1].value);
        model = apply_step(model, &mut optim, 1e-3, computed, &mut counters);
    }
    assert_eq!(counters.teacher_forwards, 6);
    assert_eq!(counters.steps, 6);
    assert!(kd.iter().all(|v| v.is_finite()));
    assert!(kd[5] < kd[0], "feature distance did not shrink: {kd:?}");
    assert_eq!(
        fingerprint(strategy.teacher().expect("teacher")),
        teacher_before
    );
}
