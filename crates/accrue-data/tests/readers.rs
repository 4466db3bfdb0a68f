//! Every reader on a tiny fixture in its dataset's exact layout, plus malformed-row errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use accrue_data::readers::{
    audiocaps, audioset, ave, clotho, esc50, hear, manifest, urbansound8k, vggsound,
};
use accrue_data::{DataError, ImagePairing, ImageRef, PairKind, Split};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Copies a fixture directory into a temporary one so a test can corrupt it.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.path().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture(name), dir.path());
    dir
}

/// Asserts a malformed-row error naming `file` (by file name) and `line`.
fn assert_malformed(err: DataError, file: &str, line: u64) {
    let msg = err.to_string();
    match &err {
        DataError::Malformed { path, line: l, .. } => {
            assert!(path.ends_with(file), "{msg}");
            assert_eq!(*l, line, "{msg}");
        }
        other => panic!("expected a malformed-row error, got {other:?}"),
    }
    assert!(
        msg.contains(file) && msg.contains(&format!(":{line}:")),
        "{msg}"
    );
}

#[test]
fn esc50_layout() {
    let root = fixture("esc50");
    let ds = esc50::read(&root).unwrap();
    assert_eq!(ds.name, "esc50");
    assert_eq!(ds.len(), 6);
    assert_eq!(ds.classes.len(), 50);
    assert_eq!(ds.classes[0], "dog");
    assert_eq!(ds.classes[14], "chirping_birds");
    assert!(!ds.multi_label);
    let e = &ds.examples[1];
    assert_eq!(e.id, "1-100038-A-14");
    assert_eq!(e.audio, root.join("audio").join("1-100038-A-14.wav"));
    assert!(e.audio.is_file());
    assert_eq!(e.fold, Some(1));
    assert_eq!(e.split, None);
    assert_eq!(ds.label_names(e), vec!["chirping_birds"]);
    assert_eq!(e.meta["esc10"], "False");
    assert_eq!(ds.fold_ids(), vec![1, 2, 3, 4, 5]);
    assert_eq!(ds.pair_kinds(), vec![PairKind::AudioLabel]);
    assert_eq!(ds.class_counts()[0], 2);

    // HEAR k-fold rule: fold 5 tests, fold 1 (cyclic successor) validates.
    let k = ds.kfold(5).unwrap();
    assert_eq!(k.valid_fold, 1);
    assert_eq!(k.test.len(), 1);
    assert_eq!(k.valid.len(), 2);
    assert_eq!(k.train.len(), 3);
    assert!(ds.kfold(9).is_err());
}

#[test]
fn esc50_malformed_rows_name_file_and_line() {
    let dir = copy_fixture("esc50");
    let csv = dir.path().join("meta").join("esc50.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    // Line 4: non-numeric fold.
    std::fs::write(
        &csv,
        text.replace("2-102414-A-17.wav,2,", "2-102414-A-17.wav,two,"),
    )
    .unwrap();
    assert_malformed(esc50::read(dir.path()).unwrap_err(), "esc50.csv", 4);
    // Line 3: a missing field.
    std::fs::write(
        &csv,
        text.replace(
            ",chirping_birds,False,100038,A",
            ",chirping_birds,False,100038",
        ),
    )
    .unwrap();
    assert_malformed(esc50::read(dir.path()).unwrap_err(), "esc50.csv", 3);
    // Line 6: target 0 named differently from line 2.
    std::fs::write(
        &csv,
        text.replace("4-110538-A-0.wav,4,0,dog", "4-110538-A-0.wav,4,0,cat"),
    )
    .unwrap();
    assert_malformed(esc50::read(dir.path()).unwrap_err(), "esc50.csv", 6);
    // Missing metadata file: a layout error naming it.
    std::fs::remove_file(&csv).unwrap();
    let err = esc50::read(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Layout { .. }));
    assert!(err.to_string().contains("esc50.csv"));
}

#[test]
fn urbansound8k_layout() {
    let root = fixture("urbansound8k");
    let ds = urbansound8k::read(&root).unwrap();
    assert_eq!(ds.len(), 5);
    assert_eq!(ds.classes.len(), 10);
    assert_eq!(ds.classes[3], "dog_bark");
    let e = &ds.examples[2];
    assert_eq!(e.id, "100648-1-0-0");
    assert_eq!(
        e.audio,
        root.join("audio").join("fold10").join("100648-1-0-0.wav")
    );
    assert_eq!(e.fold, Some(10));
    assert_eq!(e.labels, vec![1]);
    assert_eq!(e.meta["salience"], "2");
    assert_eq!(ds.fold_ids(), vec![1, 5, 10]);
    // 10 is the last fold present: its cyclic successor is fold 1.
    assert_eq!(ds.kfold(10).unwrap().valid_fold, 1);
}

#[test]
fn urbansound8k_bad_fold_is_reported() {
    let dir = copy_fixture("urbansound8k");
    let csv = dir.path().join("metadata").join("UrbanSound8K.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(
        &csv,
        text.replace("1.0,5.0,1,1,3,dog_bark", "1.0,5.0,1,11,3,dog_bark"),
    )
    .unwrap();
    assert_malformed(
        urbansound8k::read(dir.path()).unwrap_err(),
        "UrbanSound8K.csv",
        5,
    );
}

#[test]
fn clotho_layout_with_quoted_captions() {
    let root = fixture("clotho");
    let ds = clotho::read(&root).unwrap();
    assert_eq!(ds.len(), 4);
    assert!(ds.classes.is_empty());
    assert_eq!(ds.pair_kinds(), vec![PairKind::AudioText]);
    let e = &ds.examples[1];
    assert_eq!(e.id, "birds, rain and thunder.wav");
    assert_eq!(
        e.audio,
        root.join("development").join("birds, rain and thunder.wav")
    );
    assert_eq!(e.split, Some(Split::Train));
    assert_eq!(e.captions.len(), 5);
    assert_eq!(
        e.captions[0],
        "Birds chirp, rain falls, and thunder rumbles in the distance."
    );
    assert_eq!(e.captions[2], "Thunder, rain and birds.");
    assert_eq!(
        ds.split(Split::Valid).examples[0].audio,
        root.join("validation").join("Bus_Pass.wav")
    );
    assert_eq!(ds.split(Split::Test).examples[0].id, "Santa Motor.wav");
    assert!(ds.examples.iter().all(|e| e.captions.len() == 5));
}

#[test]
fn clotho_unbalanced_quote_and_missing_caption() {
    let dir = copy_fixture("clotho");
    let csv = dir.path().join("clotho_captions_validation.csv");
    std::fs::write(
        &csv,
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\nBus_Pass.wav,A bus passes,\"b, c\",d,e\n",
    )
    .unwrap();
    assert_malformed(
        clotho::read(dir.path()).unwrap_err(),
        "clotho_captions_validation.csv",
        2,
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        clotho::read(empty.path()).unwrap_err(),
        DataError::Layout { .. }
    ));
}

#[test]
fn audiocaps_groups_captions_per_clip() {
    let root = fixture("audiocaps");
    let ds = audiocaps::read(&root, &audiocaps::AudioCapsOptions::default()).unwrap();
    assert_eq!(ds.len(), 4);
    let train = ds.split(Split::Train);
    assert_eq!(train.len(), 2);
    assert!(train.examples.iter().all(|e| e.captions.len() == 1));
    assert_eq!(
        train.examples[1].captions[0],
        "Multiple clanging and clanking sounds, then a man speaks"
    );
    let val = ds.split(Split::Valid);
    assert_eq!(val.len(), 1);
    assert_eq!(val.examples[0].id, "rqfQRErjfk8_170");
    assert_eq!(val.examples[0].captions.len(), 5);
    assert_eq!(val.examples[0].captions[2], "A crowd claps, then cheers");
    assert_eq!(
        val.examples[0].audio,
        root.join("audio/val/rqfQRErjfk8.wav")
    );
    assert_eq!(
        val.examples[0].meta["audiocap_ids"],
        "97151 97152 97153 97154 97155"
    );
    let test = ds.split(Split::Test);
    assert_eq!(test.examples[0].id, "--0w1YA1Hm4_30");
    assert_eq!(test.examples[0].captions.len(), 5);

    let opts = audiocaps::AudioCapsOptions {
        audio: "wav/Y{youtube_id}_{start_time:06}.wav".into(),
    };
    let ds = audiocaps::read(&root, &opts).unwrap();
    assert_eq!(
        ds.examples[0].audio,
        root.join("wav/Yr1nicOVtvkQ_000130.wav")
    );
}

#[test]
fn audiocaps_bad_start_time() {
    let dir = copy_fixture("audiocaps");
    let csv = dir.path().join("train.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, text.replace("UDGBjjwyaqE,20,", "UDGBjjwyaqE,twenty,")).unwrap();
    assert_malformed(
        audiocaps::read(dir.path(), &Default::default()).unwrap_err(),
        "train.csv",
        3,
    );
}

#[test]
fn vggsound_layout_with_frames() {
    let root = fixture("vggsound");
    let ds = vggsound::read(&root, &vggsound::VggSoundOptions::default()).unwrap();
    assert_eq!(ds.len(), 3);
    // Sorted class list; a label with a comma survives quoting.
    assert_eq!(
        ds.classes,
        vec![
            "male speech, man speaking",
            "people marching",
            "roller coaster running"
        ]
    );
    let e = &ds.examples[2];
    assert_eq!(e.id, "-0AR2J0TN5s_000030");
    assert_eq!(e.audio, root.join("audio/-0AR2J0TN5s_000030.wav"));
    assert_eq!(e.split, Some(Split::Train));
    assert_eq!(ds.label_names(e), vec!["male speech, man speaking"]);
    assert_eq!(
        e.images,
        vec![ImageRef::File(
            root.join("frames/-0AR2J0TN5s_000030/0001.jpg")
        )]
    );
    assert_eq!(ds.examples[1].images.len(), 2);
    assert_eq!(ds.image_pairing, ImagePairing::Instance);
    // No frame directory: the directory itself is referenced, so the loader names it.
    assert_eq!(
        ds.examples[0].images,
        vec![ImageRef::File(root.join("frames/---g-f_I2yQ_000001"))]
    );
    assert_eq!(ds.split(Split::Test).len(), 1);

    let audio_only = vggsound::VggSoundOptions {
        frames: None,
        ..Default::default()
    };
    let ds = vggsound::read(&root, &audio_only).unwrap();
    assert!(ds.examples.iter().all(|e| e.images.is_empty()));
}

#[test]
fn vggsound_wrong_field_count_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("vggsound.csv");
    std::fs::write(&csv, "a,1,dog,train\nb,2,cat\n").unwrap();
    assert_malformed(
        vggsound::read(dir.path(), &Default::default()).unwrap_err(),
        "vggsound.csv",
        2,
    );
    std::fs::write(&csv, "a,1,dog,train\nb,2,cat,valid\n").unwrap();
    assert_malformed(
        vggsound::read(dir.path(), &Default::default()).unwrap_err(),
        "vggsound.csv",
        2,
    );
}

#[test]
fn ave_layout() {
    let root = fixture("ave");
    let opts = ave::AveOptions {
        frames: None,
        ..Default::default()
    };
    let ds = ave::read(&root, &opts).unwrap();
    assert_eq!(ds.len(), 4);
    assert_eq!(
        ds.classes,
        vec!["Barking", "Church bell", "Race car, auto racing"]
    );
    let e = &ds.examples[1];
    assert_eq!(e.id, "IMlS7B9qUmA");
    assert_eq!(e.audio, root.join("audio/IMlS7B9qUmA.wav"));
    assert_eq!(e.split, Some(Split::Valid));
    assert_eq!(ds.label_names(e), vec!["Race car, auto racing"]);
    assert_eq!(
        (e.meta["start"].as_str(), e.meta["end"].as_str()),
        ("2", "9")
    );
    assert_eq!(e.meta["quality"], "good");
    assert_eq!(ds.split(Split::Train).len(), 2);
    assert_eq!(ds.split(Split::Test).examples[0].id, "4pbmbMY9wR0");
}

#[test]
fn ave_bad_rows() {
    let dir = copy_fixture("ave");
    let ann = dir.path().join("Annotations.txt");
    let text = std::fs::read_to_string(&ann).unwrap();
    std::fs::write(
        &ann,
        text.replace("Barking&ZzZWwDSZKJA&bad&0&6", "Barking&ZzZWwDSZKJA&bad&0"),
    )
    .unwrap();
    assert_malformed(
        ave::read(dir.path(), &Default::default()).unwrap_err(),
        "Annotations.txt",
        4,
    );
    std::fs::write(&ann, &text).unwrap();
    std::fs::write(
        dir.path().join("testSet.txt"),
        "Church bell&XXXXXXXXXXX&good&1&10\n",
    )
    .unwrap();
    assert_malformed(
        ave::read(dir.path(), &Default::default()).unwrap_err(),
        "testSet.txt",
        1,
    );
}

#[test]
fn audioset_segments_and_ontology() {
    let root = fixture("audioset");
    let ds = audioset::read(&root, &audioset::AudioSetOptions::balanced_train()).unwrap();
    assert!(ds.multi_label);
    assert_eq!(ds.classes.len(), 6);
    assert_eq!(ds.classes[1], "Male speech, man speaking");
    assert_eq!(ds.len(), 3);
    let e = &ds.examples[0];
    assert_eq!(e.id, "--PJHxphWEs");
    assert_eq!(e.labels, vec![0, 4]);
    assert_eq!(e.meta["start"], "30.000");
    assert_eq!(
        e.audio,
        root.join("audio/balanced_train_segments/Y--PJHxphWEs.wav")
    );
    assert_eq!(ds.examples[2].labels, vec![0, 1, 5]);
    assert_eq!(ds.examples[1].split, Some(Split::Train));
    let mut counts = ds.class_counts();
    counts.truncate(2);
    assert_eq!(counts, vec![2, 1]);

    let eval = audioset::read(&root, &audioset::AudioSetOptions::eval()).unwrap();
    assert_eq!(eval.len(), 2);
    assert_eq!(eval.examples[0].labels, vec![0, 2]);
    assert_eq!(eval.examples[0].split, Some(Split::Test));
}

#[test]
fn audioset_unknown_label_and_unquoted_list() {
    let dir = copy_fixture("audioset");
    let csv = dir.path().join("eval_segments.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, text.replace("\"/m/0ytgt\"", "\"/m/nope\"")).unwrap();
    let opts = audioset::AudioSetOptions::eval();
    assert_malformed(
        audioset::read(dir.path(), &opts).unwrap_err(),
        "eval_segments.csv",
        5,
    );
    std::fs::write(
        &csv,
        text.replace("\"/m/02zsn,/m/09x0r\"", "/m/02zsn,/m/09x0r"),
    )
    .unwrap();
    assert_malformed(
        audioset::read(dir.path(), &opts).unwrap_err(),
        "eval_segments.csv",
        4,
    );
}

#[test]
fn hear_kfold_task() {
    let root = fixture("hear/esc50-v2.0.0-full");
    // Default: no 32000 directory, so the highest rate present.
    let ds = hear::read(&root, &hear::HearOptions::default()).unwrap();
    assert_eq!(ds.name, "esc50");
    assert!(!ds.multi_label);
    assert_eq!(ds.classes, vec!["0", "14", "2"]);
    assert_eq!(ds.len(), 4);
    let e = &ds.examples[0];
    assert_eq!(e.id, "fold00/1-100032-A-0");
    assert_eq!(e.fold, Some(0));
    assert_eq!(e.labels, vec![0]);
    assert_eq!(e.audio, root.join("48000/fold00/1-100032-A-0.wav"));
    assert_eq!(ds.examples[1].labels, vec![1]);
    assert_eq!(ds.fold_ids(), vec![0, 1, 2]);
    let k = ds.kfold(2).unwrap();
    assert_eq!((k.valid_fold, k.train.len(), k.test.len()), (0, 1, 1));

    let ds16 = hear::read(
        &root,
        &hear::HearOptions {
            sample_rate: Some(16000),
        },
    )
    .unwrap();
    assert_eq!(
        ds16.examples[0].audio,
        root.join("16000/fold00/1-100032-A-0.wav")
    );
    assert!(ds16.examples[0].audio.is_file());
    assert!(
        hear::read(
            &root,
            &hear::HearOptions {
                sample_rate: Some(22050)
            }
        )
        .is_err()
    );
}

#[test]
fn hear_trainvaltest_multilabel_task() {
    let root = fixture("hear/beehive_states_fold0-v2-full");
    let ds = hear::read(&root, &hear::HearOptions::default()).unwrap();
    assert!(ds.multi_label);
    // No labelvocabulary.csv: sorted set of labels.
    assert_eq!(ds.classes, vec!["active", "missing queen", "queen"]);
    assert_eq!(ds.split(Split::Train).examples[0].labels, vec![0, 2]);
    assert!(ds.split(Split::Valid).examples[0].labels.is_empty());
    assert_eq!(ds.split(Split::Test).len(), 1);
    assert_eq!(ds.examples[0].audio, root.join("16000/train/a.wav"));
}

#[test]
fn hear_rejects_event_tasks_and_bad_labels() {
    let dir = copy_fixture("hear/esc50-v2.0.0-full");
    let meta = dir.path().join("task_metadata.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, text.replace("\"scene\"", "\"event\"")).unwrap();
    let err = hear::read(dir.path(), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("scene"), "{err}");
    std::fs::write(&meta, &text).unwrap();
    std::fs::write(dir.path().join("fold02.json"), "{\"x.wav\": [\"99\"]}").unwrap();
    let err = hear::read(dir.path(), &Default::default()).unwrap_err();
    assert!(
        err.to_string().contains("fold02.json") && err.to_string().contains("99"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("fold02.json"),
        "{\"x.wav\": [\"0\"],\n oops}",
    )
    .unwrap();
    assert_malformed(
        hear::read(dir.path(), &Default::default()).unwrap_err(),
        "fold02.json",
        2,
    );
}

#[test]
fn manifest_jsonl() {
    let root = fixture("manifest");
    let ds = manifest::read(&root.join("manifest.jsonl"), &Default::default()).unwrap();
    assert_eq!(ds.name, "manifest");
    assert_eq!(ds.classes, vec!["cat", "dog"]);
    assert!(ds.multi_label);
    assert_eq!(ds.len(), 3);
    let dog = &ds.examples[0];
    assert_eq!(dog.audio, root.join("clips/dog1.wav"));
    assert_eq!(dog.split, Some(Split::Train));
    assert_eq!(dog.labels, vec![1]);
    assert_eq!(dog.captions.len(), 2);
    assert_eq!(dog.images, vec![ImageRef::File(root.join("img/dog.png"))]);
    let cat = &ds.examples[1];
    assert_eq!((cat.split, cat.fold), (Some(Split::Valid), Some(2)));
    assert_eq!(cat.images, vec![ImageRef::Embedding("cat1".into())]);
    assert_eq!(cat.meta["source"], "field recording");
    // Default id is the audio path as written.
    assert_eq!(ds.examples[2].id, "clips/both.wav");
    assert_eq!(ds.examples[2].labels, vec![0, 1]);
    assert_eq!(ds.examples[2].captions[0], "a dog and a cat, fighting");
}

#[test]
fn manifest_csv_and_fixed_classes() {
    let root = fixture("manifest");
    let opts = manifest::ManifestOptions {
        classes: Some(vec!["dog".into(), "cat".into(), "bird".into()]),
        ..Default::default()
    };
    let ds = manifest::read(&root.join("manifest.csv"), &opts).unwrap();
    assert!(!ds.multi_label);
    assert_eq!(ds.classes.len(), 3);
    let dog = &ds.examples[0];
    assert_eq!(dog.labels, vec![0]);
    assert_eq!(dog.fold, Some(1));
    assert_eq!(
        dog.captions,
        vec!["a dog barks, twice", "a small dog barking"]
    );
    assert_eq!(dog.meta["recorder"], "zoom h4n");
    let cat = &ds.examples[1];
    assert_eq!(cat.labels, vec![1]);
    assert_eq!(cat.split, Some(Split::Test));
    assert!(cat.captions.is_empty());
    assert_eq!(cat.images, vec![ImageRef::Embedding("cat1".into())]);
}

#[test]
fn manifest_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.jsonl");
    std::fs::write(
        &p,
        "{\"audio\": \"a.wav\"}\n{\"audio\": \"b.wav\", \"lables\": [\"x\"]}\n",
    )
    .unwrap();
    assert_malformed(
        manifest::read(&p, &Default::default()).unwrap_err(),
        "m.jsonl",
        2,
    );
    std::fs::write(
        &p,
        "{\"audio\": \"a.wav\"}\n\n{\"audio\": \"b.wav\", \"split\": \"later\"}\n",
    )
    .unwrap();
    assert_malformed(
        manifest::read(&p, &Default::default()).unwrap_err(),
        "m.jsonl",
        3,
    );
    let opts = manifest::ManifestOptions {
        classes: Some(vec!["dog".into()]),
        ..Default::default()
    };
    std::fs::write(&p, "{\"audio\": \"a.wav\", \"labels\": [\"cow\"]}\n").unwrap();
    assert_malformed(manifest::read(&p, &opts).unwrap_err(), "m.jsonl", 1);
    let c = dir.path().join("m.csv");
    std::fs::write(&c, "audio,fold\na.wav,1\nb.wav,x\n").unwrap();
    assert_malformed(
        manifest::read(&c, &Default::default()).unwrap_err(),
        "m.csv",
        3,
    );
    std::fs::write(&c, "id,fold\na,1\n").unwrap();
    assert_malformed(
        manifest::read(&c, &Default::default()).unwrap_err(),
        "m.csv",
        1,
    );
}

#[test]
fn class_level_image_pairing() {
    let root = fixture("esc50");
    let mut ds = esc50::read(&root).unwrap();
    let mut map = BTreeMap::new();
    for name in [
        "dog",
        "chirping_birds",
        "pouring_water",
        "water_drops",
        "pig",
    ] {
        map.insert(
            name.to_string(),
            vec![ImageRef::Embedding(format!("img:{name}"))],
        );
    }
    ds.set_class_images(&map).unwrap();
    assert_eq!(ds.image_pairing, ImagePairing::Class);
    assert_eq!(
        ds.examples[0].images,
        vec![ImageRef::Embedding("img:dog".into())]
    );
    assert_eq!(ds.examples[4].images, ds.examples[0].images);
    assert!(ds.supports(PairKind::AudioImage));
    map.remove("pig");
    let mut ds2 = esc50::read(&root).unwrap();
    let err = ds2.set_class_images(&map).unwrap_err();
    assert!(err.to_string().contains("5-103415-A-2"), "{err}");
}

#[test]
fn hold_out_is_seeded() {
    let root = fixture("audioset");
    let base = audioset::read(&root, &audioset::AudioSetOptions::balanced_train()).unwrap();
    let mut a = base.clone();
    let mut b = base.clone();
    assert_eq!(a.hold_out(Split::Train, 2, 3), 2);
    b.hold_out(Split::Train, 2, 3);
    assert_eq!(a, b);
    assert_eq!(a.split(Split::Valid).len(), 2);
    assert_eq!(a.split(Split::Train).len(), 1);
    let mut c = base.clone();
    assert_eq!(c.hold_out(Split::Train, 10, 0), 3);
    assert!(c.split(Split::Train).is_empty());
}
