//! Golden tests: every loss of `accrue-losses` and its input gradients against PyTorch autograd.
//!
//! Fixtures are written by `tools/goldens/losses.py` (torch 2.9.0) into `tests/fixtures/losses/`:
//! float32 inputs and float64 references computed from those exact inputs. The Rust side runs in
//! float32 on the default (flex) device with autodiff.
//!
//! Tolerance, for every loss element and every gradient element:
//! `|rust − torch| ≤ ATOL + RTOL · |torch|` with `ATOL = 1e-5`, `RTOL = 1e-5`.

use std::collections::BTreeMap;

use accrue_losses::{
    CassleConfig, CasslePredictorConfig, Distribution, KlDirection, KlDivConfig, LogitScaleConfig,
    LwfConfig, ModXConfig, Reduction, TieBreak, cassle_loss, clip_loss, clip_loss_multi_positive,
    cosine_similarity_matrix, kl_div, lwf_loss, misranked_rows, modx_loss, positives_from_labels,
};
use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-5;

/// Through the crates folder, so that the GPU check (`accrue-continual/tests/gpu_check.rs`, which
/// compiles this file into its one binary) finds the fixtures too.
const FIXTURE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../accrue-losses/tests/fixtures/losses"
);

#[derive(Debug, Deserialize)]
struct Meta {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    kind: String,
    grads: Vec<String>,
    loss_len: usize,
    kl: Option<KlJson>,
    alignment: Option<bool>,
    tie_break: Option<String>,
    hidden: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct KlJson {
    direction: String,
    temperature: f64,
    scale_by_t_squared: bool,
    axis: i64,
    reduction: String,
    distribution: String,
}

impl KlJson {
    fn config(&self) -> KlDivConfig {
        let direction = match self.direction.as_str() {
            "teacher_student" => KlDirection::TeacherStudent,
            "student_teacher" => KlDirection::StudentTeacher,
            other => panic!("unknown direction {other}"),
        };
        let reduction = match self.reduction.as_str() {
            "batch_mean" => Reduction::BatchMean,
            "sum" => Reduction::Sum,
            "mean" => Reduction::Mean,
            "none" => Reduction::None,
            other => panic!("unknown reduction {other}"),
        };
        let distribution = match self.distribution.as_str() {
            "softmax" => Distribution::Softmax,
            "bernoulli" => Distribution::Bernoulli,
            other => panic!("unknown distribution {other}"),
        };
        KlDivConfig::new()
            .with_direction(direction)
            .with_temperature(self.temperature)
            .with_scale_by_t_squared(self.scale_by_t_squared)
            .with_axis(self.axis)
            .with_reduction(reduction)
            .with_distribution(distribution)
    }
}

/// The loaded fixture: raw bytes of the safetensors file and the case list.
struct Fixture {
    bytes: Vec<u8>,
    meta: Meta,
}

impl Fixture {
    fn load() -> Self {
        let bytes = std::fs::read(format!("{FIXTURE_DIR}/tensors.safetensors"))
            .expect("fixture tensors (run tools/goldens/losses.py)");
        let json =
            std::fs::read_to_string(format!("{FIXTURE_DIR}/cases.json")).expect("fixture cases");
        let meta: Meta = serde_json::from_str(&json).expect("parse cases.json");
        Self { bytes, meta }
    }

    fn cases(&self, kind: &str) -> Vec<&Case> {
        let cases: Vec<&Case> = self.meta.cases.iter().filter(|c| c.kind == kind).collect();
        assert!(!cases.is_empty(), "no `{kind}` cases in the fixture");
        cases
    }
}

/// Typed access to one case's tensors.
struct Tensors<'a> {
    st: SafeTensors<'a>,
    case: &'a str,
    device: Device,
}

impl<'a> Tensors<'a> {
    fn new(fixture: &'a Fixture, case: &'a str, device: &Device) -> Self {
        let st = SafeTensors::deserialize(&fixture.bytes).expect("safetensors");
        Self {
            st,
            case,
            device: device.clone(),
        }
    }

    fn raw(&self, name: &str) -> (Vec<usize>, Vec<f64>) {
        let key = format!("{}/{name}", self.case);
        let view = self
            .st
            .tensor(&key)
            .unwrap_or_else(|e| panic!("missing {key}: {e}"));
        let data = view.data();
        let values: Vec<f64> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            Dtype::I64 => data
                .chunks_exact(8)
                .map(|b| {
                    i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64
                })
                .collect(),
            Dtype::U8 => data.iter().map(|&b| b as f64).collect(),
            other => panic!("unexpected dtype {other:?} for {key}"),
        };
        (view.shape().to_vec(), values)
    }

    /// A float32 input as a `[rows, cols]` tensor (a 1-D tensor becomes `[1, n]`).
    fn matrix(&self, name: &str) -> Tensor<2> {
        let (shape, values) = self.raw(name);
        let (r, c) = match shape.as_slice() {
            [r, c] => (*r, *c),
            [n] => (1, *n),
            other => panic!("{name}: unexpected shape {other:?}"),
        };
        let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
        Tensor::<2>::from_data(TensorData::new(values, [r, c]), &self.device)
    }

    fn vector(&self, name: &str) -> Tensor<1> {
        let (_, values) = self.raw(name);
        let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
        let n = values.len();
        Tensor::<1>::from_data(TensorData::new(values, [n]), &self.device)
    }

    fn has(&self, name: &str) -> bool {
        self.st.tensor(&format!("{}/{name}", self.case)).is_ok()
    }

    fn expected(&self, name: &str) -> Vec<f64> {
        self.raw(name).1
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().try_to_vec_as::<f64>().expect("float data")
}

/// Collects tolerance violations of one comparison.
fn compare(errors: &mut Vec<String>, what: &str, got: &[f64], want: &[f64]) -> f64 {
    if got.len() != want.len() {
        errors.push(format!("{what}: length {} != {}", got.len(), want.len()));
        return f64::INFINITY;
    }
    let mut worst = 0.0f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let diff = (g - w).abs();
        worst = worst.max(diff);
        let within = diff <= ATOL + RTOL * w.abs();
        if !within {
            errors.push(format!(
                "{what}[{i}]: rust {g:.9e} vs torch {w:.9e} (|Δ| {diff:.3e})"
            ));
            if errors.len() > 40 {
                return worst;
            }
        }
    }
    worst
}

fn report(kind: &str, errors: Vec<String>, worst: BTreeMap<String, f64>) {
    for (name, w) in &worst {
        println!("{kind}: {name}: max |Δ| = {w:.3e}");
    }
    assert!(
        errors.is_empty(),
        "{kind}: {} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn clip_loss_matches_pytorch() {
    let fixture = Fixture::load();
    let device = Device::default().autodiff();
    let (mut errors, mut worst) = (Vec::new(), BTreeMap::new());
    for case in fixture
        .cases("clip")
        .into_iter()
        .chain(fixture.cases("clip_multi"))
    {
        let t = Tensors::new(&fixture, &case.name, &device);
        let audio = t.matrix("audio").require_grad();
        let sup = t.matrix("supervision").require_grad();
        let tau = t.expected("log_scale")[0];
        let scale = LogitScaleConfig::new()
            .with_init(tau)
            .init(&device)
            .expect("logit scale");
        let loss = if case.kind == "clip_multi" {
            let positives = t.matrix("positives").equal_elem(1.0);
            if t.has("labels") {
                let labels: Vec<i64> = t.expected("labels").into_iter().map(|v| v as i64).collect();
                let n = labels.len();
                let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
                let from_labels = values(positives_from_labels(labels).float());
                assert_eq!(
                    from_labels,
                    t.expected("positives"),
                    "{}: positives_from_labels",
                    case.name
                );
            }
            clip_loss_multi_positive(audio.clone(), sup.clone(), scale.forward(), positives)
        } else {
            clip_loss(audio.clone(), sup.clone(), scale.forward())
        }
        .expect("loss");
        let grads = loss.backward();
        let mut w = compare(
            &mut errors,
            &format!("{}/loss", case.name),
            &values(loss),
            &t.expected("loss"),
        );
        for (name, tensor) in [("audio", &audio), ("supervision", &sup)] {
            let g = tensor.grad(&grads).map(values).unwrap_or_default();
            w = w.max(compare(
                &mut errors,
                &format!("{}/grad/{name}", case.name),
                &g,
                &t.expected(&format!("grad/{name}")),
            ));
        }
        let g_tau = scale
            .log_scale
            .val()
            .grad(&grads)
            .map(values)
            .unwrap_or_default();
        w = w.max(compare(
            &mut errors,
            &format!("{}/grad/log_scale", case.name),
            &g_tau,
            &t.expected("grad/log_scale"),
        ));
        worst.insert(case.name.clone(), w);
    }
    report("clip", errors, worst);
}

#[test]
fn kl_div_matches_pytorch() {
    let fixture = Fixture::load();
    let device = Device::default().autodiff();
    let (mut errors, mut worst) = (Vec::new(), BTreeMap::new());
    for case in fixture.cases("kl") {
        let t = Tensors::new(&fixture, &case.name, &device);
        let teacher = t.matrix("teacher").require_grad();
        let student = t.matrix("student").require_grad();
        let cfg = case.kl.as_ref().expect("kl config").config();
        let loss = kl_div(teacher.clone(), student.clone(), &cfg).expect("kl");
        assert_eq!(loss.dims(), [case.loss_len], "{}", case.name);
        let grads = loss.clone().sum().backward();
        let mut w = compare(
            &mut errors,
            &format!("{}/loss", case.name),
            &values(loss),
            &t.expected("loss"),
        );
        for (name, tensor) in [("teacher", &teacher), ("student", &student)] {
            let g = tensor.grad(&grads).map(values).unwrap_or_default();
            w = w.max(compare(
                &mut errors,
                &format!("{}/grad/{name}", case.name),
                &g,
                &t.expected(&format!("grad/{name}")),
            ));
        }
        worst.insert(case.name.clone(), w);
    }
    report("kl", errors, worst);
}

#[test]
fn lwf_matches_pytorch_and_never_touches_the_teacher() {
    let fixture = Fixture::load();
    let device = Device::default().autodiff();
    let (mut errors, mut worst) = (Vec::new(), BTreeMap::new());
    for case in fixture.cases("lwf") {
        let t = Tensors::new(&fixture, &case.name, &device);
        // The teacher is marked trainable on purpose: the loss must detach it itself.
        let teacher = t.matrix("teacher").require_grad();
        let student = t.matrix("student").require_grad();
        let cfg = LwfConfig::new().with_kl(case.kl.as_ref().expect("kl config").config());
        let loss = lwf_loss(teacher.clone(), student.clone(), &cfg).expect("lwf");
        let grads = loss.backward();
        assert!(
            teacher.grad(&grads).is_none(),
            "{}: teacher received a gradient",
            case.name
        );
        let mut w = compare(
            &mut errors,
            &format!("{}/loss", case.name),
            &values(loss),
            &t.expected("loss"),
        );
        let g = student.grad(&grads).map(values).unwrap_or_default();
        w = w.max(compare(
            &mut errors,
            &format!("{}/grad/student", case.name),
            &g,
            &t.expected("grad/student"),
        ));
        worst.insert(case.name.clone(), w);
    }
    report("lwf", errors, worst);
}

#[test]
fn cassle_matches_pytorch() {
    let fixture = Fixture::load();
    let device = Device::default().autodiff();
    let (mut errors, mut worst) = (Vec::new(), BTreeMap::new());
    for case in fixture.cases("cassle") {
        let t = Tensors::new(&fixture, &case.name, &device);
        let teacher = t.matrix("teacher").require_grad();
        let projection = t.matrix("projection").require_grad();
        let [_, d] = projection.dims();
        let [_, c] = teacher.dims();
        let hidden = case.hidden.expect("hidden");
        let mut predictor = CasslePredictorConfig::new(d, c)
            .with_d_hidden(hidden)
            .init(&device);
        // PyTorch stores Linear weights as [out, in]; Burn as [in, out].
        let param2 = |name: &str| Param::from_tensor(t.matrix(name).transpose().require_grad());
        let param1 = |name: &str| Param::from_tensor(t.vector(name).require_grad());
        predictor.linear1.weight = param2("linear1.weight");
        predictor.linear1.bias = Some(param1("linear1.bias"));
        predictor.linear2.weight = param2("linear2.weight");
        predictor.linear2.bias = Some(param1("linear2.bias"));
        predictor.norm.gamma = param1("norm.gamma");
        predictor.norm.beta = param1("norm.beta");
        let loss = cassle_loss(
            &predictor,
            teacher.clone(),
            projection.clone(),
            &CassleConfig::new(),
        )
        .expect("cassle");
        let grads = loss.backward();
        assert!(
            teacher.grad(&grads).is_none(),
            "{}: teacher received a gradient",
            case.name
        );
        let mut w = compare(
            &mut errors,
            &format!("{}/loss", case.name),
            &values(loss),
            &t.expected("loss"),
        );
        let mut check = |name: &str, got: Option<Vec<f64>>| {
            let got = got.unwrap_or_default();
            compare(
                &mut errors,
                &format!("{}/grad/{name}", case.name),
                &got,
                &t.expected(&format!("grad/{name}")),
            )
        };
        w = w.max(check("projection", projection.grad(&grads).map(values)));
        // Weight gradients come back in Burn layout; transpose to PyTorch's [out, in].
        w = w.max(check(
            "linear1.weight",
            predictor
                .linear1
                .weight
                .val()
                .grad(&grads)
                .map(|g| values(g.transpose())),
        ));
        w = w.max(check(
            "linear2.weight",
            predictor
                .linear2
                .weight
                .val()
                .grad(&grads)
                .map(|g| values(g.transpose())),
        ));
        let bias2 = predictor.linear2.bias.as_ref().map(|b| b.val());
        w = w.max(check(
            "linear2.bias",
            bias2.and_then(|b| b.grad(&grads)).map(values),
        ));
        w = w.max(check(
            "norm.gamma",
            predictor.norm.gamma.val().grad(&grads).map(values),
        ));
        w = w.max(check(
            "norm.beta",
            predictor.norm.beta.val().grad(&grads).map(values),
        ));
        assert!(
            case.grads.len() >= 6,
            "{}: fixture lists {:?}",
            case.name,
            case.grads
        );
        worst.insert(case.name.clone(), w);
    }
    report("cassle", errors, worst);
}

#[test]
fn modx_matches_pytorch_including_alignment_masks() {
    let fixture = Fixture::load();
    let device = Device::default().autodiff();
    let (mut errors, mut worst) = (Vec::new(), BTreeMap::new());
    for case in fixture.cases("modx") {
        let t = Tensors::new(&fixture, &case.name, &device);
        let teacher = t.matrix("teacher_audio").require_grad();
        let student = t.matrix("student_audio").require_grad();
        let sup = t.matrix("supervision").require_grad();
        let tie_break = match case.tie_break.as_deref() {
            Some("first_index") => TieBreak::FirstIndex,
            Some("diagonal_wins") => TieBreak::DiagonalWins,
            other => panic!("unknown tie break {other:?}"),
        };
        let cfg = ModXConfig::new()
            .with_kl(case.kl.as_ref().expect("kl config").config())
            .with_alignment(case.alignment.expect("alignment"))
            .with_tie_break(tie_break);

        // The alignment decisions must be exactly the reference's.
        let c_old = cosine_similarity_matrix(teacher.clone().detach(), sup.clone().detach());
        let rows = values(misranked_rows(c_old.clone(), tie_break).float());
        let cols = values(misranked_rows(c_old.transpose(), tie_break).float());
        if rows != t.expected("misranked_rows") || cols != t.expected("misranked_cols") {
            errors.push(format!(
                "{}: misranked rows {rows:?} / cols {cols:?} vs torch {:?} / {:?}",
                case.name,
                t.expected("misranked_rows"),
                t.expected("misranked_cols")
            ));
        }

        let loss = modx_loss(teacher.clone(), student.clone(), sup.clone(), &cfg).expect("modx");
        assert_eq!(loss.dims(), [case.loss_len], "{}", case.name);
        let grads = loss.clone().sum().backward();
        assert!(
            teacher.grad(&grads).is_none(),
            "{}: teacher received a gradient",
            case.name
        );
        let mut w = compare(
            &mut errors,
            &format!("{}/loss", case.name),
            &values(loss),
            &t.expected("loss"),
        );
        for (name, tensor) in [("student_audio", &student), ("supervision", &sup)] {
            let g = tensor.grad(&grads).map(values).unwrap_or_default();
            w = w.max(compare(
                &mut errors,
                &format!("{}/grad/{name}", case.name),
                &g,
                &t.expected(&format!("grad/{name}")),
            ));
        }
        worst.insert(case.name.clone(), w);
    }
    report("modx", errors, worst);
}

#[test]
fn every_fixture_case_is_exercised() {
    let fixture = Fixture::load();
    let known = ["clip", "clip_multi", "kl", "lwf", "cassle", "modx"];
    for case in &fixture.meta.cases {
        assert!(
            known.contains(&case.kind.as_str()),
            "unhandled fixture kind {}",
            case.kind
        );
    }
    assert!(
        fixture.meta.cases.len() >= 30,
        "fixture has only {} cases",
        fixture.meta.cases.len()
    );
}
