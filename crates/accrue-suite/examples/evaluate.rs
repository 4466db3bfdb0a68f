//! The library calls behind `accrue eval`, for scripting your own evaluation: load a suite,
//! evaluate every stage model of a run, check the artifact against the schema, write it.
//!
//! ```sh
//! cargo run --release -p accrue-suite --example evaluate -- runs/my-run/experiment.toml suite.toml eval.json
//! ```
//! See the `accrue_suite::suite` documentation for the suite format.

use std::path::Path;

use accrue::eval::report::EvalArtifact;
use accrue::eval::schema::schema_errors;
use accrue_suite::suite::{EvalSuite, evaluate_run};
use burn::tensor::Device;

/// Evaluates `run` (experiment file or run directory) on `suite` and writes the artifact to
/// `out`.
pub fn run(
    run: &Path,
    suite: &Path,
    out: &Path,
) -> Result<EvalArtifact, Box<dyn std::error::Error>> {
    let suite = EvalSuite::load(suite)?;
    let device = Device::default();
    // Scores every stage model: probes, zero-shot, retrieval; the CL matrix when the suite
    // declares which score stands for each task.
    let artifact = evaluate_run(run, &suite, None, "flex", false, &device)?;
    let doc = serde_json::to_value(&artifact)?;
    let errors = schema_errors(&doc);
    if !errors.is_empty() {
        return Err(format!("artifact violates the schema: {errors:?}").into());
    }
    artifact.write(out)?;
    Ok(artifact)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 3 {
        eprintln!("usage: evaluate <experiment.toml | run dir> <suite.toml> <out.json>");
        std::process::exit(2);
    }
    let art = run(
        Path::new(&args[0]),
        Path::new(&args[1]),
        Path::new(&args[2]),
    )?;
    for stage in &art.stages {
        println!("after {}:", stage.stage);
        for s in stage
            .scores
            .iter()
            .filter(|s| s.metric != "R@5" && s.metric != "mAP@10")
        {
            let dir = s.direction.as_deref().unwrap_or("");
            println!(
                "  {:?} {} {} {dir}: {:.4}",
                s.protocol, s.task, s.metric, s.value
            );
        }
    }
    if let Some(c) = &art.continual {
        println!("BWT {:?}, ACC {:?}", c.summary.bwt, c.summary.acc);
    }
    Ok(())
}
