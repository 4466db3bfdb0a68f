//! The fault sweep as a test: bad inputs of every kind — experiment files, manifests, audio,
//! supervision tables, class lists, checkpoints, run folders — through the real `accrue`
//! binary. Every case must exit with status 1 (an error, not a panic's 101), print no panic,
//! name the offending file, key or line, and leave a previous run untouched.

#[path = "../../accrue-continual/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{stage, write_data, write_experiment};

/// One bad input: a name, the command-line arguments (relative to the case folder), and what
/// the error must mention.
struct Case {
    name: &'static str,
    args: Vec<String>,
    expect: Vec<String>,
}

fn accrue(dir: &Path, args: &[String]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_accrue"))
        .args(args)
        .current_dir(dir)
        .env("ACCRUE_NO_PROGRESS", "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run accrue");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A valid one-stage experiment in `dir` with `edit` applied to its text; returns its file.
fn experiment(dir: &Path, file: &str, strategy: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let path = write_experiment(
        dir,
        file,
        &format!("out-{file}"),
        &[stage("av", &["AV"], strategy, "")],
    );
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, edit(text)).expect("write");
    path
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn bad_inputs_fail_cleanly_naming_the_culprit_and_damage_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_data(d);
    // A finished run whose folder a bad `train` must not touch.
    let good = experiment(d, "good.toml", "{ kind = \"finetune\" }", |t| t);
    let (code, text) = accrue(d, &s(&["train", "good.toml"]));
    assert_eq!(code, 0, "the baseline run trains:\n{text}");
    let run_before = snapshot(&d.join("out-good.toml"));

    // Inputs the cases point at.
    std::fs::write(
        d.join("broken.jsonl"),
        "{\"audio\": \"clips/c0.wav\", \"id\": \n",
    )
    .expect("w");
    std::fs::create_dir_all(d.join("a-directory.wav")).expect("mkdir");
    let loud: Vec<f32> = (0..3200)
        .map(|i| if i == 7 { -1e30 } else { 0.1 })
        .collect();
    let mut float_wav = Vec::new();
    float_wav.extend_from_slice(b"RIFF");
    float_wav.extend_from_slice(&(36 + 4 * loud.len() as u32).to_le_bytes());
    float_wav.extend_from_slice(b"WAVEfmt ");
    float_wav.extend_from_slice(&16u32.to_le_bytes());
    float_wav.extend_from_slice(&3u16.to_le_bytes());
    float_wav.extend_from_slice(&1u16.to_le_bytes());
    float_wav.extend_from_slice(&32_000u32.to_le_bytes());
    float_wav.extend_from_slice(&(32_000u32 * 4).to_le_bytes());
    float_wav.extend_from_slice(&4u16.to_le_bytes());
    float_wav.extend_from_slice(&32u16.to_le_bytes());
    float_wav.extend_from_slice(b"data");
    float_wav.extend_from_slice(&(4 * loud.len() as u32).to_le_bytes());
    for v in &loud {
        float_wav.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(d.join("loud.wav"), float_wav).expect("w");
    std::fs::write(
        d.join("huge-table.json"),
        format!(
            "{{\"dim\": {}, \"entries\": {{\"img0a\": [{}]}}}}",
            common::DIM,
            vec!["1e30"; common::DIM].join(", ")
        ),
    )
    .expect("w");
    std::fs::write(d.join("classes.json"), r#"["dog", "siren"]"#).expect("w");
    std::fs::write(
        d.join("truncated.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":",
    )
    .expect("w");
    // A table of 4-wide image embeddings for heads that output `DIM`.
    let entries: Vec<String> = (0..common::CLIPS + 4)
        .flat_map(|i| [format!("img{i}a"), format!("img{i}b")])
        .map(|k| format!("\"{k}\": [0.5, 0.5, 0.5, 0.5]"))
        .collect();
    std::fs::write(
        d.join("narrow-table.json"),
        format!("{{\"dim\": 4, \"entries\": {{{}}}}}", entries.join(", ")),
    )
    .expect("w");
    std::fs::write(
        d.join("probe.toml"),
        "[[probe]]\nname = \"Synth\"\ntrain = { manifest = \"train.jsonl\" }\n\
         valid = { manifest = \"valid.jsonl\" }\ntest = { manifest = \"valid.jsonl\" }\n\
         max_epochs = 2\n",
    )
    .expect("w");
    // Damaged copies of the finished run: its experiment copy unreadable; every checkpoint
    // unreadable (the resume has nothing to fall back to).
    let bad_exp = d.join("run-bad-experiment");
    copy_dir(&d.join("out-good.toml"), &bad_exp);
    std::fs::write(bad_exp.join("experiment.toml"), "name = [[[ not toml").expect("w");
    let bad_ck = experiment(d, "ck2.toml", "{ kind = \"finetune\" }", |t| t);
    copy_dir(&d.join("out-good.toml"), &d.join("out-ck2.toml"));
    for ck in std::fs::read_dir(d.join("out-ck2.toml/checkpoints"))
        .expect("checkpoints")
        .flatten()
        .filter(|e| e.path().is_dir())
    {
        for f in std::fs::read_dir(ck.path()).expect("checkpoint").flatten() {
            std::fs::write(f.path(), b"garbage").expect("w");
        }
    }

    let train = |file: &str| s(&["train", file]);
    let cases =
        vec![
        Case {
            name: "unknown key",
            args: train(&experiment(d, "k.toml", "{ kind = \"lwf\" }", |t| {
                t.replace("epochs = 2", "epochs = 2\nepoch = 3")
            })
            .to_string_lossy()),
            expect: s(&["epoch", "line"]),
        },
        Case {
            name: "method option typo",
            args: train(
                &experiment(d, "o.toml", "{ kind = \"lwf\", temprature = 2.0 }", |t| t)
                    .to_string_lossy(),
            ),
            expect: s(&["temprature", "line"]),
        },
        Case {
            name: "unknown method kind",
            args: train(&experiment(d, "m.toml", "{ kind = \"ewc\" }", |t| t).to_string_lossy()),
            expect: s(&["ewc", "lwf"]),
        },
        Case {
            name: "missing manifest",
            args: train(
                &experiment(d, "mm.toml", "{ kind = \"lwf\" }", |t| {
                    t.replacen("manifest = \"train.jsonl\"", "manifest = \"nope.jsonl\"", 1)
                })
                .to_string_lossy(),
            ),
            expect: s(&["nope.jsonl", "manifest"]),
        },
        Case {
            name: "malformed manifest line",
            args: train(
                &experiment(d, "bm.toml", "{ kind = \"lwf\" }", |t| {
                    t.replacen("manifest = \"train.jsonl\"", "manifest = \"broken.jsonl\"", 1)
                })
                .to_string_lossy(),
            ),
            expect: s(&["broken.jsonl", "line 1"]),
        },
        Case {
            name: "zero classes",
            args: train(
                &experiment(d, "z.toml", "{ kind = \"lwf\" }", |t| {
                    t.replace("num_classes = 3", "num_classes = 0")
                })
                .to_string_lossy(),
            ),
            expect: s(&["[encoder]"]),
        },
        Case {
            name: "zero head width",
            args: train(
                &experiment(d, "h.toml", "{ kind = \"lwf\" }", |t| {
                    t.replace("hidden = 32", "hidden = 0")
                })
                .to_string_lossy(),
            ),
            expect: s(&["[head]"]),
        },
        Case {
            name: "wrong sample rate",
            args: train(
                &experiment(d, "sr.toml", "{ kind = \"lwf\" }", |t| {
                    t.replace("[encoder]", "sample_rate = 16000\n[encoder]")
                })
                .to_string_lossy(),
            ),
            expect: s(&["sample_rate", "16000"]),
        },
        Case {
            name: "absurd crop",
            args: train(
                &experiment(d, "crop.toml", "{ kind = \"lwf\" }", |t| {
                    t.replace("crop_seconds = 0.5", "crop_seconds = 1000000.0")
                })
                .to_string_lossy(),
            ),
            expect: s(&["crop"]),
        },
        Case {
            name: "overflowing supervision table",
            args: train(
                &experiment(d, "sup.toml", "{ kind = \"lwf\" }", |t| {
                    t.replace("clip_image.json", "huge-table.json")
                })
                .to_string_lossy(),
            ),
            expect: s(&["huge-table.json", "img0a"]),
        },
        Case {
            name: "supervision table narrower than the head",
            args: train(
                &experiment(d, "narrow.toml", "{ kind = \"lwf\" }", |t| {
                    t.replace("clip_image.json", "narrow-table.json")
                })
                .to_string_lossy(),
            ),
            expect: s(&["narrow-table.json", "width 4"]),
        },
        Case {
            name: "eval of a run folder whose experiment copy is corrupt",
            args: s(&["eval", "run-bad-experiment", "--suite", "probe.toml"]),
            expect: s(&["experiment.toml", "line 1"]),
        },
        Case {
            name: "resume with every checkpoint corrupt",
            args: s(&["train", &bad_ck.to_string_lossy(), "--resume"]),
            expect: s(&["no usable checkpoint", "ckpt-"]),
        },
        Case {
            name: "label outside the class list",
            args: train(
                &write_experiment(
                    d,
                    "cls.toml",
                    "out-cls",
                    &[stage("a", &["A"], "{ kind = \"finetune\" }", "").replace(
                        "kind = \"A\"\nmanifest = \"train.jsonl\"\n",
                        "kind = \"A\"\nmanifest = \"train.jsonl\"\nclasses = \"classes.json\"\n",
                    )],
                )
                .to_string_lossy(),
            ),
            expect: s(&["bird"]),
        },
        Case {
            name: "truncated initial checkpoint",
            args: train(
                &experiment(d, "ck.toml", "{ kind = \"lwf\" }", |t| {
                    t.replace(
                        "num_classes = 3\n",
                        "num_classes = 3\ncheckpoint = \"truncated.safetensors\"\n",
                    )
                })
                .to_string_lossy(),
            ),
            expect: s(&["truncated.safetensors"]),
        },
        Case {
            name: "a new run over a finished one",
            args: train(&good.to_string_lossy()),
            expect: s(&["--resume", "--fresh"]),
        },
        Case {
            name: "eval without stage models",
            args: s(&["eval", "k.toml", "--suite", "no-suite.toml"]),
            expect: s(&["no-suite.toml"]),
        },
        Case {
            name: "info on a truncated checkpoint",
            args: s(&["info", "truncated.safetensors"]),
            expect: s(&["truncated.safetensors"]),
        },
        Case {
            name: "frontend on a directory",
            args: s(&["frontend", "a-directory.wav"]),
            expect: s(&["a-directory.wav", "directory"]),
        },
        Case {
            name: "frontend on float audio of ±1e30",
            args: s(&["frontend", "loud.wav"]),
            expect: s(&["loud.wav", "peaks"]),
        },
        Case {
            name: "demo with two epoch counts for three stages",
            args: s(&["demo", "--epochs", "16,8", "--out", "demo-out"]),
            expect: s(&["--epochs", "three numbers"]),
        },
        Case {
            name: "demo with a stage of zero epochs",
            args: s(&["demo", "--epochs", "16,0,8", "--out", "demo-out"]),
            expect: s(&["--epochs", "at least one epoch"]),
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let (code, text) = accrue(d, &case.args);
        // What the user reads (shown with `--nocapture`, for auditing the messages).
        let error: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Error"))
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "Caused by:")
            .collect();
        println!("{}: exit {code}: {}", case.name, error.join(" | "));
        let missing: Vec<&String> = case.expect.iter().filter(|e| !text.contains(*e)).collect();
        if code != 1 || text.contains("panicked") || !missing.is_empty() {
            failures.push(format!(
                "{} (exit {code}, missing {missing:?}):\n{}",
                case.name,
                text.lines().take(8).collect::<Vec<_>>().join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        snapshot(&d.join("out-good.toml")) == run_before,
        "a failed command changed the previous run's folder"
    );

    // Resuming the finished run with a changed experiment (another batch size) is said, not
    // silent: the resumed run is not the run it started as.
    let changed = std::fs::read_to_string(&good)
        .expect("read")
        .replace("batch_size = 4", "batch_size = 2");
    assert!(changed.contains("batch_size = 2"));
    std::fs::write(d.join("good-bs.toml"), changed).expect("w");
    let (code, text) = accrue(d, &s(&["train", "good-bs.toml", "--resume"]));
    assert_eq!(code, 0, "resuming a finished run succeeds:\n{text}");
    assert!(
        text.contains("differs from the one this run started with"),
        "a changed batch size on resume is not mentioned:\n{text}"
    );
}

/// Copies a folder tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let p = e.path();
        let dst = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).expect("copy");
        }
    }
}
