//! The batch loader: decoding, cropping, caching, determinism, bad files, timing.

use std::path::{Path, PathBuf};

use accrue_data::readers::esc50;
use accrue_data::{
    CaptionPick, Crop, DataError, Dataset, Example, ImageRef, Loader, LoaderConfig, Split,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Writes a 16-bit PCM mono WAV.
fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

/// A dataset of `n` clips at 8 kHz in `dir`: clip `i` is a ramp of `300 + 50 i` samples whose
/// values encode `(i, t)`, with 5 captions and a label `i % 3`.
fn synthetic(dir: &Path, n: usize) -> Dataset {
    let mut ds = Dataset::new("synthetic", vec!["a".into(), "b".into(), "c".into()], false);
    for i in 0..n {
        let len = 300 + 50 * i;
        let samples: Vec<i16> = (0..len).map(|t| (i * 1000 + t % 1000) as i16).collect();
        let path = dir.join(format!("clip{i}.wav"));
        write_wav(&path, 8000, &samples);
        let mut ex = Example::new(format!("clip{i}"), path);
        ex.split = Some(Split::Train);
        ex.labels = vec![i % 3];
        ex.captions = (0..5).map(|c| format!("clip {i} caption {c}")).collect();
        ex.images = vec![ImageRef::Embedding(format!("img{i}"))];
        ds.examples.push(ex);
    }
    ds
}

fn collect(loader: &Loader, epoch: u64) -> Vec<accrue_data::Batch> {
    loader.epoch(epoch).map(Result::unwrap).collect()
}

#[test]
fn esc50_fixture_end_to_end_full_clips() {
    let ds = esc50::read(&fixture("esc50")).unwrap();
    let loader = Loader::new(ds.clone(), LoaderConfig::eval(16_000, 4)).unwrap();
    assert_eq!(loader.num_batches(), 2);
    let batches = collect(&loader, 0);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].len(), 4);
    assert_eq!(batches[1].len(), 2);
    for b in &batches {
        assert_eq!(b.audio.len(), b.len() * b.length);
        assert_eq!(b.length, *b.lengths.iter().max().unwrap());
        for (row, &ex) in b.examples.iter().enumerate() {
            let expected = accrue_audio::load(&ds.examples[ex].audio, 16_000).unwrap();
            let r = b.row(row);
            assert_eq!(b.lengths[row], expected.len());
            assert_eq!(&r[..expected.len()], expected.as_slice());
            assert!(r[expected.len()..].iter().all(|&x| x == 0.0));
            assert_eq!(b.labels[row], ds.examples[ex].labels);
        }
    }
    // Eval order is dataset order; the 8-kHz clips (400.. samples) doubled in length.
    assert_eq!(batches[0].examples, vec![0, 1, 2, 3]);
    assert!(batches[0].lengths[0] >= 780 && batches[0].lengths[0] <= 820);
    assert_eq!(batches[0].class_targets(), Some(vec![0, 14, 17, 15]));
    let hot = batches[0].multi_hot(50);
    assert_eq!(hot.iter().sum::<f32>(), 4.0);
    assert_eq!(hot[50 + 14], 1.0);
}

#[test]
fn same_seed_same_batches_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synthetic(dir.path(), 10);
    let mut cfg = LoaderConfig::train(8000, 3, 256);
    cfg.seed = 7;
    let a = Loader::new(ds.clone(), cfg.clone()).unwrap();
    let b = Loader::new(
        ds.clone(),
        LoaderConfig {
            threads: Some(1),
            prefetch: 5,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(a.num_batches(), 3); // 10 clips, batch 3, last incomplete batch dropped
    let ea = collect(&a, 0);
    let eb = collect(&b, 0);
    assert_eq!(
        ea, eb,
        "same seed must give the same batches (any thread count / prefetch)"
    );
    assert_eq!(ea.len(), 3);

    // Another epoch, another order; another seed, another order.
    let ea1 = collect(&a, 1);
    assert_ne!(
        ea.iter().map(|b| b.examples.clone()).collect::<Vec<_>>(),
        ea1.iter().map(|b| b.examples.clone()).collect::<Vec<_>>()
    );
    let c = Loader::new(
        ds.clone(),
        LoaderConfig {
            seed: 8,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_ne!(a.order(0), c.order(0));
    // Shuffled order is a permutation.
    let mut o = a.order(0);
    o.sort_unstable();
    assert_eq!(o, (0..10).collect::<Vec<_>>());

    // Resuming at batch 1 gives exactly the remaining batches.
    let resumed: Vec<_> = a.epoch_from(1, 1).map(Result::unwrap).collect();
    assert_eq!(resumed.as_slice(), &ea1[1..]);
}

#[test]
fn random_crop_windows_and_zero_padding() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synthetic(dir.path(), 6); // lengths 300..550
    let loader = Loader::new(ds.clone(), LoaderConfig::train(8000, 6, 400)).unwrap();
    let full: Vec<Vec<f32>> = (0..6).map(|i| loader.clip(i).unwrap().to_vec()).collect();
    let mut offsets = std::collections::BTreeSet::new();
    for epoch in 0..4 {
        for b in collect(&loader, epoch) {
            assert_eq!(b.length, 400);
            for (row, &ex) in b.examples.iter().enumerate() {
                let r = b.row(row);
                let f = &full[ex];
                if f.len() <= 400 {
                    // Short clips: whole clip then zeros.
                    assert_eq!(b.lengths[row], f.len());
                    assert_eq!(&r[..f.len()], f.as_slice());
                    assert!(r[f.len()..].iter().all(|&x| x == 0.0));
                } else {
                    assert_eq!(b.lengths[row], 400);
                    let start = (0..=f.len() - 400)
                        .find(|&s| &f[s..s + 400] == r)
                        .expect("a random crop is a contiguous window of the clip");
                    offsets.insert((ex, start));
                }
                // Caption index drawn in range, image refs passed through.
                let cap = b.captions[row].unwrap();
                assert!(cap < 5);
                assert_eq!(b.images[row], vec![ImageRef::Embedding(format!("img{ex}"))]);
            }
            let texts = b.caption_texts(loader.dataset());
            assert!(texts.iter().all(|t| t.unwrap().contains("caption")));
        }
    }
    assert!(
        offsets.len() > 3,
        "random crops should vary across epochs: {offsets:?}"
    );

    // Centre crops and first captions are fixed.
    let mut cfg = LoaderConfig::eval(8000, 6);
    cfg.crop = Crop::Centre(200);
    let centre = Loader::new(ds, cfg).unwrap();
    let b = &collect(&centre, 0)[0];
    for (row, &ex) in b.examples.iter().enumerate() {
        let f = &full[ex];
        let s = (f.len() - 200) / 2;
        assert_eq!(b.row(row), &f[s..s + 200]);
        assert_eq!(b.captions[row], Some(0));
    }
}

#[test]
fn caption_choice_is_uniform_ish_and_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synthetic(dir.path(), 4);
    let mut cfg = LoaderConfig::train(8000, 4, 100);
    cfg.caption = CaptionPick::Random;
    let loader = Loader::new(ds, cfg).unwrap();
    let mut seen = [0usize; 5];
    for epoch in 0..30 {
        for b in collect(&loader, epoch) {
            for c in b.captions.iter().flatten() {
                seen[*c] += 1;
            }
        }
    }
    assert!(
        seen.iter().all(|&n| n > 5),
        "every caption gets drawn: {seen:?}"
    );
}

#[test]
fn missing_files_fail_by_default_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = synthetic(dir.path(), 4);
    ds.examples[2].audio = dir.path().join("gone.wav");
    let err = Loader::new(ds.clone(), LoaderConfig::eval(8000, 2)).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("gone.wav") && msg.contains("clip2"), "{msg}");

    // Two bad clips: the first is named and the count given.
    ds.examples[3].images = vec![ImageRef::File(dir.path().join("frames/none.jpg"))];
    let err = Loader::new(ds, LoaderConfig::eval(8000, 2)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::BadFiles { count: 2, .. }), "{msg}");
    assert!(
        msg.contains("gone.wav") && msg.contains("skip_bad"),
        "{msg}"
    );
}

#[test]
fn corrupt_file_found_mid_epoch_fails_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synthetic(dir.path(), 4);
    std::fs::write(
        &ds.examples[1].audio,
        b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk",
    )
    .unwrap();
    // No cache: existence checks pass, decoding fails when the batch is built.
    let loader = Loader::new(ds, LoaderConfig::eval(8000, 2)).unwrap();
    let results: Vec<_> = loader.epoch(0).collect();
    assert_eq!(results.len(), 1, "the epoch stops at the first error");
    let err = results.into_iter().next().unwrap().unwrap_err();
    assert!(matches!(err, DataError::Audio { .. }), "{err:?}");
    assert!(err.to_string().contains("clip1.wav"), "{err}");
}

#[test]
fn skip_bad_skips_counts_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = synthetic(dir.path(), 6);
    ds.examples[1].audio = dir.path().join("missing.wav");
    std::fs::write(&ds.examples[4].audio, b"not audio at all").unwrap();

    // With a cache, everything is decoded up front: both are found before the first batch.
    let cfg = LoaderConfig {
        skip_bad: true,
        cache_dir: Some(dir.path().join("cache")),
        ..LoaderConfig::eval(8000, 2)
    };
    let loader = Loader::new(ds.clone(), cfg).unwrap();
    let report = loader.report();
    assert_eq!(report.skipped_count(), 2);
    assert_eq!(report.used(), 4);
    assert_eq!(report.skipped[0].clip_id, "clip1");
    assert!(report.skipped[0].path.ends_with("missing.wav"));
    assert_eq!(report.skipped[1].clip_id, "clip4");
    assert!(report.skipped[1].reason.contains("clip4.wav"));
    assert!(report.to_string().contains("4 of 6 clips used, 2 skipped"));
    assert_eq!(loader.len(), 4);
    let used: Vec<usize> = collect(&loader, 0)
        .iter()
        .flat_map(|b| b.examples.clone())
        .collect();
    assert_eq!(used, vec![0, 2, 3, 5]);

    // Without a cache the corrupt file is found while batching: the batch shrinks and the
    // report lists it.
    let cfg = LoaderConfig {
        skip_bad: true,
        ..LoaderConfig::eval(8000, 2)
    };
    let loader = Loader::new(ds, cfg).unwrap();
    assert_eq!(loader.report().skipped_count(), 1);
    let batches = collect(&loader, 0);
    let used: Vec<usize> = batches.iter().flat_map(|b| b.examples.clone()).collect();
    assert_eq!(used, vec![0, 2, 3, 5]);
    assert_eq!(batches[1].len(), 1, "clip4 dropped from its batch");
    let report = loader.report();
    assert_eq!(report.skipped_count(), 2);
    assert_eq!(report.skipped[1].index, 4);
    // A second epoch does not list it twice.
    let _ = collect(&loader, 1);
    assert_eq!(loader.report().skipped_count(), 2);
}

#[test]
fn disk_cache_is_filled_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synthetic(dir.path(), 5);
    let cache = dir.path().join("cache");
    let cfg = LoaderConfig {
        cache_dir: Some(cache.clone()),
        ..LoaderConfig::train(16_000, 2, 500)
    };
    let first = Loader::new(ds.clone(), cfg.clone()).unwrap();
    let s = first.cache_stats().unwrap();
    assert_eq!((s.misses, s.writes), (5, 5));
    let b_first = collect(&first, 3);

    let second = Loader::new(ds.clone(), cfg.clone()).unwrap();
    let s = second.cache_stats().unwrap();
    assert_eq!((s.hits, s.writes), (5, 0));
    assert_eq!(collect(&second, 3), b_first);

    // Same batches as decoding without any cache.
    let plain = Loader::new(
        ds.clone(),
        LoaderConfig {
            cache_dir: None,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(collect(&plain, 3), b_first);

    // A changed source file is decoded again.
    write_wav(&ds.examples[0].audio, 8000, &[1i16; 123]);
    let third = Loader::new(ds, cfg).unwrap();
    let s = third.cache_stats().unwrap();
    assert_eq!((s.hits, s.misses, s.writes), (4, 1, 1));
    assert_eq!(third.clip(0).unwrap().len(), 246);
}

#[test]
fn timing_records_waiting_versus_total() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synthetic(dir.path(), 8);
    let loader = Loader::new(ds, LoaderConfig::train(8000, 2, 200)).unwrap();
    let mut epoch = loader.epoch(0);
    let mut n = 0;
    for b in epoch.by_ref() {
        b.unwrap();
        n += 1;
        std::thread::sleep(std::time::Duration::from_millis(5)); // "training"
    }
    let t = epoch.timing();
    assert_eq!(n, 4);
    assert_eq!(t.batches, 4);
    assert!(t.waited <= t.elapsed);
    assert!(t.elapsed >= std::time::Duration::from_millis(15));
    assert!((0.0..=1.0).contains(&t.wait_fraction()));
    assert!(!t.produce.is_zero());
    drop(epoch);
    let total = loader.timing();
    assert_eq!(total.batches, 4);
    let _ = collect(&loader, 1);
    assert_eq!(loader.timing().batches, 8);
}

#[test]
fn early_drop_stops_the_prefetch_thread() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synthetic(dir.path(), 12);
    let loader = Loader::new(
        ds,
        LoaderConfig {
            prefetch: 1,
            ..LoaderConfig::eval(8000, 1)
        },
    )
    .unwrap();
    let mut e = loader.epoch(0);
    assert!(e.next().unwrap().is_ok());
    drop(e); // joins the producer; must not hang
    assert_eq!(loader.timing().batches, 1);
}

#[test]
fn invalid_config_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let ds = synthetic(dir.path(), 1);
    for cfg in [
        LoaderConfig {
            batch_size: 0,
            ..LoaderConfig::default()
        },
        LoaderConfig {
            crop: Crop::Random(0),
            ..LoaderConfig::default()
        },
        LoaderConfig {
            sample_rate: 0,
            ..LoaderConfig::default()
        },
    ] {
        assert!(matches!(
            Loader::new(ds.clone(), cfg),
            Err(DataError::Config(_))
        ));
    }
}
