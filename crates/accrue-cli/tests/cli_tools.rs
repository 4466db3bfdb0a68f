//! The small `accrue` tools: `import` (PANNs PyTorch → accrue safetensors), `info` (what a
//! checkpoint is) and `embed` (a manifest's supervision table through a frozen tower).
//!
//! `import` and `info` run on the reduced-width PyTorch fixtures of `accrue-encoders`
//! (written by `tools/goldens/encoders.py`; their configuration is in `goldens.json`, it is
//! no named preset, so the library functions are called with an explicit
//! `AnyEncoderConfig`), and once through the real binary. `embed` needs the MiniLM tower
//! (`scripts/fetch_towers.sh`): without it the test prints SKIPPED, unless
//! `ACCRUE_REQUIRE_DATA` is set (CI), when it fails.

#[path = "../../accrue-continual/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use accrue::audio::frontend::{FrontEndConfig, StftImpl};
use accrue::continual::{
    ExperimentConfig, ProjectionHeadConfig, Student, SupervisionTable, TaskKind,
    load_student_or_encoder,
};
use accrue::encoders::checkpoint::{LoadOptions, load_pytorch, module_keys, save_safetensors};
use accrue::encoders::{
    AnyEncoder, AnyEncoderConfig, Cnn14Config, EncoderError, Preset, ResNet38, ResNet38Config,
};
use accrue_cli::tools::{
    CheckpointFormat, EmbedOptions, Layout, TowerChoice, checkpoint_info, embed_manifest,
    import_pytorch,
};
use accrue_suite::Error;
use burn::module::Module;
use burn::tensor::Device;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../accrue-encoders/tests/fixtures/encoders")
        .join(name)
}

fn meta() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("goldens.json")).expect("goldens.json");
    serde_json::from_str(&text).expect("valid goldens.json")
}

fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("uint") as usize)
        .collect()
}

/// The reduced front end of the golden script (8 kHz, n_fft 128, hop 32, 32 mels).
fn small_front_end() -> FrontEndConfig {
    let fe = &meta()["front_end"];
    FrontEndConfig::new(
        fe["sr"].as_u64().expect("sr") as u32,
        fe["window"].as_u64().expect("window") as usize,
        fe["hop"].as_u64().expect("hop") as usize,
        fe["mels"].as_u64().expect("mels") as usize,
        fe["fmin"].as_f64().expect("fmin"),
        fe["fmax"].as_f64().expect("fmax"),
    )
    .with_spec_augment(None)
    .with_stft_impl(StftImpl::Kernels)
}

/// The configuration of `resnet38_small*.pth`.
fn resnet38_small() -> AnyEncoderConfig {
    let cfg = &meta()["resnet38_small"]["config"];
    let w = usizes(&cfg["widths"]);
    AnyEncoderConfig::ResNet38(
        ResNet38Config::new(small_front_end())
            .with_widths([w[0], w[1], w[2], w[3]])
            .with_embedding_dim(cfg["after"].as_u64().expect("after") as usize)
            .with_num_classes(cfg["classes"].as_u64().expect("classes") as usize),
    )
}

/// The configuration of `cnn14_small.pth`.
fn cnn14_small() -> AnyEncoderConfig {
    let cfg = &meta()["cnn14_small"]["config"];
    let mut c = Cnn14Config::panns();
    c.front_end = small_front_end();
    c.widths = usizes(&cfg["widths"]);
    AnyEncoderConfig::Cnn(c.with_num_classes(cfg["classes"].as_u64().expect("classes") as usize))
}

fn to_vec(t: burn::tensor::Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

fn fc1_weight(encoder: &AnyEncoder) -> Vec<f32> {
    match encoder {
        AnyEncoder::ResNet38(m) => to_vec(m.fc1.weight.val()),
        AnyEncoder::Cnn(m) => to_vec(m.fc1.weight.val()),
    }
}

// ---------------------------------------------------------------------------------------------
// import + info
// ---------------------------------------------------------------------------------------------

#[test]
fn importing_a_fixture_gives_a_clean_report_and_a_file_info_describes() {
    let device = Device::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    for (file, cfg, arch) in [
        ("resnet38_small.pth", resnet38_small(), "ResNet38"),
        ("resnet38_small_legacy.pth", resnet38_small(), "ResNet38"),
        ("cnn14_small.pth", cnn14_small(), "Cnn"),
    ] {
        let out = tmp
            .path()
            .join("imported")
            .join(file.replace(".pth", ".safetensors"));
        let report =
            import_pytorch(&fixture(file), &cfg, &out, false, &device).expect("clean import");
        println!("{file}: {report}");
        assert!(report.is_clean(), "{file}: {report}");
        assert!(
            !report.ignored.is_empty()
                && report
                    .ignored
                    .iter()
                    .all(|k| k.ends_with("num_batches_tracked"))
        );
        assert!(out.is_file());
        assert!(
            !tmp.path()
                .join("imported")
                .join(format!("{file}.partial"))
                .exists()
        );

        let model = cfg.init(&device);
        let model_params = model.num_params();

        // The file alone: an encoder-only layout with every tensor of the model.
        let info = checkpoint_info(&out, None, &device).expect("info");
        print!("{info}");
        assert_eq!(info.format, CheckpointFormat::Safetensors);
        assert_eq!(info.layout, Layout::Encoder);
        assert_eq!(info.architecture.as_deref(), Some(arch));
        assert_eq!(info.tensors, module_keys(&model).len());
        assert_eq!(info.parameters, model_params, "{file}");
        assert_eq!(info.num_classes, Some(cfg.num_classes()));
        assert!(info.heads.is_empty());
        assert!(info.run.is_none());
        assert!(info.model.is_none());

        // Loaded strictly into the model: clean, same parameter count.
        let info = checkpoint_info(&out, Some(&cfg), &device).expect("info with a config");
        let check = info.model.as_ref().expect("model check");
        assert!(check.loaded && check.report.is_clean(), "{}", check.report);
        assert_eq!(check.num_params, model_params);
        assert_eq!(check.report.applied.len(), info.tensors);
        assert!(check.trainable_params > 0 && check.trainable_params < model_params);

        // The weights survived: the safetensors file loads to what the .pth loads to.
        let (direct, _) = {
            let remaps = match &model {
                AnyEncoder::ResNet38(_) => ResNet38::pytorch_key_remaps(),
                AnyEncoder::Cnn(m) => m.pytorch_key_remaps(),
            };
            load_pytorch(model, &fixture(file), &LoadOptions::panns(remaps)).expect("direct")
        };
        let (student, _) = load_student_or_encoder(Student::new(cfg.init(&device)), &out, &device)
            .expect("reload");
        assert_eq!(fc1_weight(&student.encoder), fc1_weight(&direct));

        // The .pth itself, described and checked against the same model.
        let info = checkpoint_info(&fixture(file), Some(&cfg), &device).expect("pth info");
        print!("{info}");
        assert_eq!(info.format, CheckpointFormat::Pytorch);
        assert_eq!(info.layout, Layout::PytorchStateDict);
        assert_eq!(info.architecture.as_deref(), Some(arch));
        assert_eq!(info.top_level_key.as_deref(), Some("model"));
        assert!(info.ignored > 0);
        assert_eq!(info.num_classes, Some(cfg.num_classes()));
        let check = info.model.as_ref().expect("model check");
        assert!(check.loaded, "{}", check.report);
        assert_eq!(check.num_params, model_params);
        // Serialisable for `--json`.
        let json = serde_json::to_value(&info).expect("JSON");
        assert_eq!(
            json["model"]["report"]["clean"],
            serde_json::Value::Bool(true)
        );
        assert_eq!(json["format"], "pytorch");
    }
}

#[test]
fn a_mismatched_config_is_refused_with_the_keys_named() {
    let device = Device::default();
    let tmp = tempfile::tempdir().expect("tempdir");

    // A ResNet-38 checkpoint into a Cnn14: strict import fails, names keys, writes nothing.
    let out = tmp.path().join("wrong.safetensors");
    let err = import_pytorch(
        &fixture("resnet38_small.pth"),
        &cnn14_small(),
        &out,
        false,
        &device,
    )
    .expect_err("a mismatch must be refused");
    let message = err.to_string();
    println!("{message}");
    match &err {
        Error::Encoders(EncoderError::CheckpointMismatch { report, .. }) => {
            assert!(
                report
                    .unexpected
                    .iter()
                    .any(|k| k.contains("resnet.layer1"))
            );
            assert!(report.missing.iter().any(|k| k.contains("conv_blocks.1")));
        }
        other => panic!("expected a checkpoint mismatch, got {other}"),
    }
    assert!(message.contains("resnet.layer1") && message.contains("missing"));
    assert!(!out.exists());

    // The deliberately broken fixture (one key renamed, one removed, one mis-shaped) into its
    // own configuration: every problem listed.
    let broken = fixture("resnet38_small_broken.pth");
    let err = import_pytorch(&broken, &resnet38_small(), &out, false, &device)
        .expect_err("broken checkpoint");
    let message = err.to_string();
    for needle in [
        "conv_block1.conv_one.weight",
        "conv_block1.conv1.weight",
        "downsample.bn.running_mean",
        "fc1.bias",
    ] {
        assert!(message.contains(needle), "{needle} not in {message}");
    }
    assert!(!out.exists());

    // --allow-partial writes what matched and returns the same report.
    let report =
        import_pytorch(&broken, &resnet38_small(), &out, true, &device).expect("partial import");
    assert!(!report.is_clean());
    assert_eq!(report.missing.len(), 2, "{report}");
    assert_eq!(report.unexpected.len(), 1, "{report}");
    assert_eq!(report.mismatched.len(), 1, "{report}");
    assert_eq!(report.mismatched[0].key, "fc1.bias");
    // A partial import still holds the whole module (unmatched tensors initialised).
    let info = checkpoint_info(&out, Some(&resnet38_small()), &device).expect("info");
    assert!(info.model.as_ref().is_some_and(|m| m.loaded));

    // `info` of a .pth against the wrong model reports the mismatch instead of failing.
    let info = checkpoint_info(
        &fixture("resnet38_small.pth"),
        Some(&cnn14_small()),
        &device,
    )
    .expect("info of a mismatch");
    let check = info.model.expect("model check");
    assert!(!check.loaded);
    assert!(!check.report.missing.is_empty() && !check.report.unexpected.is_empty());

    // And a safetensors file against the wrong model likewise.
    let info = checkpoint_info(&out, Some(&cnn14_small()), &device).expect("info of a mismatch");
    let check = info.model.expect("model check");
    assert!(!check.loaded);
    assert!(!check.report.is_clean());
}

#[test]
fn missing_corrupt_and_truncated_files_are_errors_not_panics() {
    let device = Device::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = resnet38_small();
    let out = tmp.path().join("out.safetensors");

    let missing = tmp.path().join("no_such.pth");
    assert!(import_pytorch(&missing, &cfg, &out, false, &device).is_err());
    assert!(checkpoint_info(&missing, None, &device).is_err());
    assert!(checkpoint_info(&tmp.path().join("no_such.safetensors"), None, &device).is_err());

    let garbage = tmp.path().join("garbage.pth");
    std::fs::write(&garbage, b"this is not a checkpoint at all").expect("write");
    let err = import_pytorch(&garbage, &cfg, &out, false, &device).expect_err("garbage");
    println!("{err}");
    assert!(checkpoint_info(&garbage, None, &device).is_err());
    assert!(checkpoint_info(&garbage, Some(&cfg), &device).is_err());

    let bytes = std::fs::read(fixture("resnet38_small.pth")).expect("fixture");
    let truncated = tmp.path().join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let err = import_pytorch(&truncated, &cfg, &out, false, &device).expect_err("truncated");
    println!("{err}");

    let bad_st = tmp.path().join("bad.safetensors");
    std::fs::write(&bad_st, b"\xff\xff\xff\xff\xff\xff\xff\x7fnope").expect("write");
    assert!(checkpoint_info(&bad_st, None, &device).is_err());
    std::fs::write(&bad_st, b"{}").expect("write");
    assert!(checkpoint_info(&bad_st, None, &device).is_err());
    assert!(!out.exists());

    // The output may not overwrite the input.
    let copy = tmp.path().join("copy.pth");
    std::fs::copy(fixture("resnet38_small.pth"), &copy).expect("copy");
    assert!(import_pytorch(&copy, &cfg, &copy, false, &device).is_err());
    assert_eq!(std::fs::read(&copy).expect("copy"), bytes);

    // Invalid configurations are errors, not panics in `init`.
    assert!("resnet99".parse::<Preset>().is_err());
    assert!(Preset::ResNet38Tiny.config(Some(0)).is_err());
    let AnyEncoderConfig::ResNet38(zero) = resnet38_small() else {
        unreachable!("a ResNet-38 config")
    };
    let zero = AnyEncoderConfig::ResNet38(zero.with_num_classes(0));
    assert!(import_pytorch(&fixture("resnet38_small.pth"), &zero, &out, false, &device).is_err());
    assert!(checkpoint_info(&fixture("resnet38_small.pth"), Some(&zero), &device).is_err());
    assert!(Preset::Cnn14Tiny.config(Some(16)).is_ok());
}

#[test]
fn a_student_checkpoint_shows_its_heads_and_its_run() {
    let device = Device::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = resnet38_small();
    let embedding = meta()["resnet38_small"]["config"]["after"]
        .as_u64()
        .expect("after") as usize;
    let student = Student::new(cfg.init(&device))
        .ensure_head(
            TaskKind::AV,
            &ProjectionHeadConfig::new(embedding)
                .with_d_hidden(8)
                .with_d_output(12),
            &device,
        )
        .expect("AV head")
        .ensure_head(
            TaskKind::AT,
            &ProjectionHeadConfig::new(embedding)
                .with_d_hidden(8)
                .with_d_output(6),
            &device,
        )
        .expect("AT head");
    let run = tmp.path().join("runs").join("seed0").join("a-av-at");
    let model = run.join("stages").join("1-AT.safetensors");
    std::fs::create_dir_all(model.parent().expect("dir")).expect("mkdir");
    save_safetensors(&student, &model).expect("save");
    let experiment = "name = \"a-av-at-seed0\"\noutput_dir = \".\"\nstages = []\n\n\
                      [encoder]\npreset = \"resnet38-tiny\"\nnum_classes = 10\n";
    std::fs::write(run.join("experiment.toml"), experiment).expect("write");

    let info = checkpoint_info(&model, None, &device).expect("info");
    print!("{info}");
    assert_eq!(info.layout, Layout::Student);
    assert_eq!(info.architecture.as_deref(), Some("ResNet38"));
    assert_eq!(info.embedding_dim, Some(embedding));
    assert_eq!(info.parameters, student.num_params());
    let heads: Vec<_> = info
        .heads
        .iter()
        .map(|h| (h.name.as_str(), h.input, h.hidden, h.output))
        .collect();
    assert_eq!(
        heads,
        vec![
            ("head_av", Some(embedding), Some(8), Some(12)),
            ("head_at", Some(embedding), Some(8), Some(6)),
        ]
    );
    let prov = info.run.as_ref().expect("run provenance");
    assert_eq!(prov.name.as_deref(), Some("a-av-at-seed0"));
    assert_eq!(prov.preset, Some(Preset::ResNet38Tiny));
    assert_eq!(prov.num_classes, Some(10));
    assert_eq!(
        prov.sha256,
        accrue::eval::report::sha256_tag(experiment.as_bytes())
    );
    let text = info.to_string();
    assert!(
        text.contains("a-av-at-seed0") && text.contains("head_at"),
        "{text}"
    );

    let info = checkpoint_info(&model, Some(&cfg), &device).expect("info with a config");
    let check = info.model.expect("model check");
    assert!(check.loaded, "{}", check.report);
    assert_eq!(check.num_params, student.num_params());

    // A file outside any run has no provenance.
    let lone = tmp.path().join("lone.safetensors");
    save_safetensors(&student, &lone).expect("save");
    assert!(
        checkpoint_info(&lone, None, &device)
            .expect("info")
            .run
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

fn accrue(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_accrue"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the accrue binary")
}

#[test]
fn the_cli_describes_checkpoints_and_refuses_a_mismatched_import() {
    let device = Device::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = resnet38_small();
    let out = tmp.path().join("resnet38_small.safetensors");
    import_pytorch(&fixture("resnet38_small.pth"), &cfg, &out, false, &device).expect("import");
    let model_params = cfg.init(&device).num_params();

    let path = out.to_str().expect("utf-8 path");
    let o = accrue(&["info", path, "--json"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "accrue info failed: {stderr}");
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(json["format"], "safetensors");
    assert_eq!(json["layout"], "encoder");
    assert_eq!(json["architecture"], "ResNet38");
    assert_eq!(json["parameters"].as_u64(), Some(model_params as u64));

    let pth = fixture("resnet38_small.pth");
    let o = accrue(&["info", pth.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("PyTorch") && stdout.contains("tensors"),
        "{stdout}"
    );

    // A preset whose shapes differ from the fixture's: the import fails with the report.
    let wrong = tmp.path().join("wrong.safetensors");
    let o = accrue(&[
        "import",
        pth.to_str().expect("utf-8 path"),
        "--preset",
        "resnet38-tiny",
        "--num-classes",
        "10",
        "--out",
        wrong.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(stderr.contains("wrong shape"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!wrong.exists());

    // `info --preset` of the same mismatch prints the report and exits non-zero.
    let o = accrue(&[
        "info",
        pth.to_str().expect("utf-8 path"),
        "--preset",
        "resnet38-tiny",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("DOES NOT MATCH"));

    let o = accrue(&["info", "no/such/file.safetensors"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// embed
// ---------------------------------------------------------------------------------------------

fn towers_dir() -> Option<PathBuf> {
    let root = std::env::var_os("ACCRUE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    let towers = root.join("towers");
    let minilm = towers.join("minilm");
    let ok = ["model.safetensors", "tokenizer.json", "config.json"]
        .iter()
        .all(|f| minilm.join(f).is_file());
    if !ok {
        assert!(
            std::env::var_os("ACCRUE_REQUIRE_DATA").is_none(),
            "the MiniLM tower is missing under {} and ACCRUE_REQUIRE_DATA is set",
            minilm.display()
        );
        eprintln!(
            "SKIPPED: the MiniLM tower is missing under {} (run scripts/fetch_towers.sh)",
            minilm.display()
        );
        return None;
    }
    Some(towers)
}

#[test]
fn embed_writes_one_normalised_row_per_caption_and_reuses_the_cache() {
    let Some(towers) = towers_dir() else {
        return;
    };
    let device = Device::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let manifest = tmp.path().join("clips.jsonl");
    std::fs::write(
        &manifest,
        concat!(
            r#"{"audio": "a.wav", "split": "train", "captions": ["a dog barks", "a small dog barking"]}"#,
            "\n",
            r#"{"audio": "b.wav", "split": "train", "captions": ["a dog barks"]}"#,
            "\n",
            r#"{"audio": "c.wav", "split": "test", "captions": ["rain on a tin roof"]}"#,
            "\n",
        ),
    )
    .expect("manifest");
    let expected: BTreeSet<String> = ["a dog barks", "a small dog barking", "rain on a tin roof"]
        .iter()
        .map(|s| s.to_string())
        .collect();

    let mut opts = EmbedOptions::new(&manifest, TowerChoice::Minilm, tmp.path().join("text.json"));
    opts.towers_dir = towers;
    opts.cache_dir = Some(tmp.path().join("cache"));
    let first = embed_manifest(&opts, &device).expect("embed");
    println!("{first:?}");
    assert_eq!(first.rows, 3);
    assert_eq!(first.dim, 384);
    assert_eq!(first.computed, 3);
    assert!(
        first.tower.architecture.contains("sentence-transformers"),
        "{}",
        first.tower
    );
    let table = SupervisionTable::load(&opts.out).expect("table");
    assert_eq!(table.dim, 384);
    assert_eq!(
        table.entries.keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    for (caption, row) in &table.entries {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{caption}: norm {norm}");
    }
    let (a, b) = (
        &table.entries["a dog barks"],
        &table.entries["rain on a tin roof"],
    );
    assert_ne!(a, b);

    // Second call: everything from the cache, the same values.
    opts.out = tmp.path().join("again").join("text.json");
    let second = embed_manifest(&opts, &device).expect("embed again");
    assert_eq!(second.computed, 0);
    assert_eq!(second.tower, first.tower);
    let again = SupervisionTable::load(&opts.out).expect("table");
    assert_eq!(again.entries, table.entries);

    // A split keeps only its clips' captions.
    opts.split = Some("test".into());
    opts.out = tmp.path().join("test.json");
    let test = embed_manifest(&opts, &device).expect("embed test split");
    assert_eq!((test.rows, test.computed), (1, 0));
    opts.split = Some("nonsense".into());
    assert!(embed_manifest(&opts, &device).is_err());

    // No images in the manifest: EfficientNet has nothing to embed (an error, not a panic).
    opts.split = None;
    opts.tower = TowerChoice::Efficientnet;
    assert!(embed_manifest(&opts, &device).is_err());
}

#[test]
fn train_refuses_zero_replicas_with_a_message() {
    let out = accrue(&["train", "no-such-experiment.toml", "--replicas", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least one replica"), "{err}");
}

#[test]
fn train_keeps_its_experiment_and_never_overwrites_a_run_unasked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    common::write_data(tmp.path());
    let a = common::stage("a", &["A"], "{ kind = \"finetune\" }", "");
    let exp = common::write_experiment(tmp.path(), "run.toml", "out", &[a]);
    let exp = exp.to_str().expect("utf-8 path");
    let run = accrue::continual::RunDir::new(tmp.path().join("out"));

    let out = accrue(&["train", exp]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The run folder holds the experiment as run, readable from anywhere.
    let kept = ExperimentConfig::load(&run.experiment()).expect("the run's experiment");
    assert!(kept.stages[0].tasks[0].manifest.is_absolute());
    let model = common::tensors(&run.final_model());
    let copy = std::fs::read(run.experiment()).expect("experiment copy");

    // A second `train` without --resume or --fresh is refused and changes nothing.
    let out = accrue(&["train", exp]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--resume") && err.contains("--fresh"), "{err}");
    assert_eq!(common::tensors(&run.final_model()), model);
    assert_eq!(std::fs::read(run.experiment()).expect("copy"), copy);

    // --fresh with a typo in a manifest fails before anything is deleted.
    let text = std::fs::read_to_string(exp).expect("experiment");
    let typo = tmp.path().join("typo.toml");
    std::fs::write(&typo, text.replace("\"train.jsonl\"", "\"trian.jsonl\"")).expect("write");
    let out = accrue(&["train", typo.to_str().expect("utf-8"), "--fresh"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trian.jsonl"), "{err}");
    assert_eq!(common::tensors(&run.final_model()), model);

    // --fresh, asked for, trains again (same seed, same model).
    let out = accrue(&["train", exp, "--fresh"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(common::tensors(&run.final_model()), model);
}
