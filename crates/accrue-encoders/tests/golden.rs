//! Parity with PyTorch on random-init checkpoints written by `tools/goldens/encoders.py`:
//! reduced-width ResNet-38 (zip and legacy pickle) and Cnn14, eval outputs and one train step.

mod common;

use std::path::Path;

use accrue_encoders::checkpoint::{load_cnn_panns, load_resnet38_panns};
use accrue_encoders::{
    AudioEncoder, Cnn14Config, EncoderOutput, PannsCnn, ResNet38, ResNet38Config,
};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use common::*;

/// Eval-mode tolerances (max abs, and relative to the largest reference magnitude).
const EVAL_ABS: f32 = 1e-4;
const EVAL_REL: f32 = 1e-4;
/// Train-step tolerances: the loss, and gradients relative to their largest magnitude.
const LOSS_ABS: f32 = 1e-5;
const GRAD_REL: f32 = 1e-3;

fn resnet_small(device: &Device, path: &Path) -> ResNet38 {
    let cfg = &meta()["resnet38_small"]["config"];
    let widths = usizes(&cfg["widths"]);
    let config = ResNet38Config::new(small_front_end())
        .with_widths([widths[0], widths[1], widths[2], widths[3]])
        .with_embedding_dim(cfg["after"].as_u64().expect("after") as usize)
        .with_num_classes(cfg["classes"].as_u64().expect("classes") as usize)
        .with_dropout_block(0.0)
        .with_dropout_stage(0.0)
        .with_dropout_final(0.0);
    let (model, report) =
        load_resnet38_panns(config.init(device), path, false).expect("strict load");
    assert!(report.is_clean(), "{report}");
    // 246 − 2 front-end... every module tensor is loaded; only num_batches_tracked is ignored.
    assert!(
        report
            .ignored
            .iter()
            .all(|k| k.ends_with("num_batches_tracked"))
    );
    assert!(!report.ignored.is_empty());
    model
}

fn cnn14_small(device: &Device) -> PannsCnn {
    let cfg = &meta()["cnn14_small"]["config"];
    let mut config = Cnn14Config::panns();
    config.front_end = small_front_end();
    config.widths = usizes(&cfg["widths"]);
    let config = config
        .with_num_classes(cfg["classes"].as_u64().expect("classes") as usize)
        .with_dropout_stage(0.0)
        .with_dropout_final(0.0);
    let (model, report) = load_cnn_panns(config.init(device), &fixture("cnn14_small.pth"), false)
        .expect("strict load");
    assert!(report.is_clean(), "{report}");
    model
}

fn check_eval(name: &str, file: &str, out: EncoderOutput, bn0: Option<Tensor<4>>, device: &Device) {
    if let Some(bn0) = bn0 {
        assert_close(
            &format!("{name} bn0 output"),
            bn0,
            read(file, "bn0_out", device),
            1e-3,
            EVAL_REL,
        );
    }
    assert_close(
        &format!("{name} embedding"),
        out.embedding.clone(),
        read(file, "embedding", device),
        EVAL_ABS,
        EVAL_REL,
    );
    assert_close(
        &format!("{name} embedding_dropped (eval)"),
        out.embedding_dropped.clone(),
        read(file, "embedding", device),
        EVAL_ABS,
        EVAL_REL,
    );
    assert_close(
        &format!("{name} clipwise"),
        out.clipwise(),
        read(file, "clipwise_output", device),
        EVAL_ABS,
        EVAL_REL,
    );
}

#[test]
fn resnet38_small_eval_matches_pytorch_zip_and_legacy() {
    let device = Device::default();
    let file = "resnet38_small_io.safetensors";
    let wave: Tensor<2> = read(file, "wave", &device);
    for ckpt in ["resnet38_small.pth", "resnet38_small_legacy.pth"] {
        let model = resnet_small(&device, &fixture(ckpt)).valid();
        let bn0 = model
            .frontend
            .apply_bn0(model.frontend.logmel(wave.clone()));
        let out = model.forward(wave.clone());
        check_eval(ckpt, file, out, Some(bn0), &device);
    }
}

#[test]
fn cnn14_small_eval_matches_pytorch() {
    let device = Device::default();
    let file = "cnn14_small_io.safetensors";
    let wave: Tensor<2> = read(file, "wave", &device);
    let model = cnn14_small(&device).valid();
    let bn0 = model
        .frontend
        .apply_bn0(model.frontend.logmel(wave.clone()));
    let out = AudioEncoder::forward(&model, wave);
    check_eval("cnn14_small", file, out, Some(bn0), &device);
}

fn check_train<M: AudioEncoder + Module>(
    name: &str,
    key: &str,
    model: &M,
    grads_of: impl Fn(&M, &burn::tensor::Gradients) -> Vec<(String, Tensor<2>)>,
    running_var: impl Fn(&M) -> Tensor<1>,
    device: &Device,
) {
    let file = format!("{key}_io.safetensors");
    let wave: Tensor<2> = read(&file, "wave", device);
    let target: Tensor<2> = read(&file, "train_target", device);
    let out = model.forward(wave);
    let loss = bce(out.clipwise(), target);
    let expected_loss = meta()[key]["loss"].as_f64().expect("loss") as f32;
    let grads = loss.backward();
    let loss = to_vec(loss.inner())[0];
    println!(
        "{name} train loss {loss} vs {expected_loss} (abs err {:.3e})",
        (loss - expected_loss).abs()
    );
    assert!((loss - expected_loss).abs() <= LOSS_ABS);
    assert_close(
        &format!("{name} train embedding"),
        out.embedding.inner(),
        read(&file, "train_embedding", &device.clone().inner()),
        EVAL_ABS,
        EVAL_REL,
    );
    for (param, grad) in grads_of(model, &grads) {
        let expected: Tensor<2> =
            read_flat(&file, &format!("grad.{param}"), &device.clone().inner());
        assert_close(
            &format!("{name} grad {param}"),
            grad,
            expected,
            f32::INFINITY,
            GRAD_REL,
        );
    }
    let bn_key = meta()[key]["bn_running"]
        .as_str()
        .expect("bn_running")
        .to_string();
    let expected: Tensor<1> = read(&file, &format!("after.{bn_key}"), &device.clone().inner());
    assert_close(
        &format!("{name} {bn_key} after one step"),
        running_var(model),
        expected,
        1e-5,
        1e-5,
    );
}

/// Reads a fixture tensor flattened to `[rows, cols]` with rows = first dimension.
fn read_flat(file: &str, name: &str, device: &Device) -> Tensor<2> {
    let bytes = std::fs::read(fixture(file)).expect("fixture");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let shape = st.tensor(name).expect("tensor").shape().to_vec();
    let n: usize = shape.iter().product();
    let t: Tensor<1> = match shape.len() {
        1 => read::<1>(file, name, device),
        2 => read::<2>(file, name, device).reshape([n]),
        4 => read::<4>(file, name, device).reshape([n]),
        d => panic!("rank {d}"),
    };
    t.reshape([shape[0], n / shape[0]])
}

fn flat<const D: usize>(t: Tensor<D>) -> Tensor<2> {
    let dims = t.dims();
    let n: usize = dims.iter().product();
    t.reshape([dims[0], n / dims[0]])
}

#[test]
fn resnet38_small_train_step_matches_pytorch() {
    let device = Device::default().autodiff();
    let model = resnet_small(&device, &fixture("resnet38_small.pth"));
    check_train(
        "resnet38_small",
        "resnet38_small",
        &model,
        |m, g| {
            vec![
                (
                    "conv_block1.conv1.weight".into(),
                    flat(m.conv_block1.conv1.weight.val().grad(g).expect("grad")),
                ),
                (
                    "resnet.layer3.0.bn1.weight".into(),
                    flat(
                        m.resnet.layer3[0]
                            .bn1
                            .gamma
                            .val()
                            .grad(g)
                            .expect("grad")
                            .unsqueeze_dim::<2>(1),
                    ),
                ),
                (
                    // Burn stores linear weights [in, out]; PyTorch [out, in].
                    "fc1.weight".into(),
                    m.fc1.weight.val().grad(g).expect("grad").transpose(),
                ),
            ]
        },
        |m| m.conv_block1.bn1.running_var.value_sync().inner(),
        &device,
    );
}

#[test]
fn cnn14_small_train_step_matches_pytorch() {
    let device = Device::default().autodiff();
    let model = cnn14_small(&device);
    check_train(
        "cnn14_small",
        "cnn14_small",
        &model,
        |m, g| {
            vec![
                (
                    "conv_block1.conv1.weight".into(),
                    flat(m.conv_blocks[0].conv1.weight.val().grad(g).expect("grad")),
                ),
                (
                    "conv_block3.bn2.weight".into(),
                    flat(
                        m.conv_blocks[2]
                            .bn2
                            .as_ref()
                            .expect("bn2")
                            .gamma
                            .val()
                            .grad(g)
                            .expect("grad")
                            .unsqueeze_dim::<2>(1),
                    ),
                ),
                (
                    "fc1.weight".into(),
                    m.fc1.weight.val().grad(g).expect("grad").transpose(),
                ),
            ]
        },
        |m| m.conv_blocks[1].bn1.running_var.value_sync().inner(),
        &device,
    );
}
