//! Every check of `scripts/gpu_check.sh` in one test binary, so that what travels to a GPU
//! machine (which has no Rust toolchain) is one executable: Burn and its GPU kernels linked
//! once, not once per test file.
//!
//! The checks are the workspace's own test files, compiled in here unchanged; filter by module:
//! - `encoders_golden::` — `accrue-encoders/tests/golden.rs` (ResNet-38 and CNN14 at small
//!   width against PyTorch: eval outputs, train-step loss and gradients);
//! - `losses_golden::` — `accrue-losses/tests/golden_losses.rs` (every loss and its input
//!   gradients against PyTorch autograd);
//! - `encoders_parity::` (ignored) — `accrue-encoders/tests/backend_parity.rs` (full-size
//!   ResNet-38 on the device under test against `flex`);
//! - `continual_parity::` — `tests/backend_parity.rs` (an A → AV → AT run against `flex`,
//!   loss by loss);
//! - `time_resnet38` (ignored) — the full-size ResNet-38 workload of `accrue-encoders`'s bench
//!   (`benches/common`), timed on the device under test.
//!
//! Each runs on `Device::default()`, which `BURN_DEVICE` chooses among the backends compiled in.
//! Built only with the `gpu-check` feature (`scripts/gpu_check.sh prepare` adds a GPU backend):
//! ```sh
//! BURN_DEVICE=vulkan cargo test -p accrue-continual --features gpu-check,burn/vulkan \
//!     --test gpu_check -- --include-ignored
//! ```

#[path = "backend_parity.rs"]
mod continual_parity;
#[path = "../../accrue-encoders/tests/golden.rs"]
mod encoders_golden;
#[path = "../../accrue-encoders/tests/backend_parity.rs"]
mod encoders_parity;
#[path = "../../accrue-losses/tests/golden_losses.rs"]
mod losses_golden;
#[path = "../../accrue-encoders/benches/common/mod.rs"]
mod resnet38_workload;

use std::time::Instant;

use burn::tensor::Device;
use resnet38_workload::{batch_and_seconds, env_or, forward_eval, train_step, with_dtype};

/// The median of `reps` timed calls after `warm_up` untimed ones (kernel compilation and
/// autotuning happen on the first calls), in seconds.
fn median_seconds<T>(mut f: impl FnMut() -> T, warm_up: usize, reps: usize) -> f64 {
    for _ in 0..warm_up {
        std::hint::black_box(f());
    }
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Times the full-size ResNet-38 eval forward and train step on the device under test:
/// `ACCRUE_BENCH_BATCH` × `ACCRUE_BENCH_SECONDS` clips, `ACCRUE_BENCH_DTYPE`, the median of
/// `ACCRUE_BENCH_REPS` (default 10) calls after 3 warm-up calls; writes the medians as JSON to
/// `ACCRUE_TIME_JSON` when set (what `scripts/gpu_check.sh` divides PyTorch's times by).
#[test]
#[ignore = "timing: run by scripts/gpu_check.sh"]
fn time_resnet38() {
    let (batch, seconds) = batch_and_seconds();
    let reps = env_or("ACCRUE_BENCH_REPS", 10);
    let device = with_dtype(Device::default());
    let dtype = std::env::var("ACCRUE_BENCH_DTYPE").unwrap_or_else(|_| "f32".into());
    let eval = median_seconds(forward_eval(&device, batch, seconds), 3, reps);
    let step = median_seconds(train_step(&device, batch, seconds), 3, reps);
    println!(
        "timing: ResNet-38 batch {batch} × {seconds} s, {dtype} on {device:?}: eval forward \
         {eval:.4} s, train step {step:.4} s (median of {reps})"
    );
    if let Ok(path) = std::env::var("ACCRUE_TIME_JSON") {
        let json = serde_json::json!({
            "device": format!("{device:?}"),
            "dtype": dtype,
            "batch": batch,
            "seconds": seconds,
            "reps": reps,
            "forward_eval": eval,
            "train_step_adam": step,
        });
        std::fs::write(&path, json.to_string()).expect("write ACCRUE_TIME_JSON");
    }
}
