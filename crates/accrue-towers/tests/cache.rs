//! The embedding cache never runs a tower twice on the same input.

use std::cell::Cell;

use accrue_towers::cache::EmbeddingCache;
use accrue_towers::tower::{l2_normalize, text_digest};
use accrue_towers::{Error, FrozenTower, Modality, TowerIdentity};
use burn::tensor::{Device, Tensor, TensorData};

/// A deterministic text "tower" that counts the inputs it embeds.
struct Counting {
    identity: TowerIdentity,
    device: Device,
    calls: Cell<usize>,
}

impl FrozenTower for Counting {
    type Input = str;
    fn identity(&self) -> &TowerIdentity {
        &self.identity
    }
    fn modality(&self) -> Modality {
        Modality::Text
    }
    fn embed_dim(&self) -> usize {
        4
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn embed(&self, batch: &[&str]) -> accrue_towers::Result<Tensor<2>> {
        self.calls.set(self.calls.get() + batch.len());
        let flat: Vec<f32> = batch
            .iter()
            .flat_map(|t| {
                let d = text_digest(t);
                (0..4).map(move |k| d[k] as f32 + 1.0)
            })
            .collect();
        Ok(l2_normalize(Tensor::from_data(
            TensorData::new(flat, [batch.len(), 4]),
            &self.device,
        )))
    }
    fn input_digest(input: &str) -> [u8; 32] {
        text_digest(input)
    }
}

fn tower(weights: &str) -> Counting {
    Counting {
        identity: TowerIdentity {
            architecture: "counting".into(),
            weights_sha256: weights.into(),
            preprocessing: "none".into(),
        },
        device: Device::default(),
        calls: Cell::new(0),
    }
}

#[test]
fn cache_computes_each_input_once_and_persists() {
    let root = std::env::temp_dir().join(format!("accrue-towers-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let t = tower("w1");
    let texts = ["a dog", "a cat", "a dog", "a violin"];
    let mut cache = EmbeddingCache::open(&root, t.identity(), 4).unwrap();
    let first = cache.compute(&t, &texts, 2, false).unwrap();
    assert_eq!(first.dims(), [4, 4]);
    assert_eq!(t.calls.get(), 3, "duplicates are embedded once");
    let direct = t.embed(&texts).unwrap();
    let a = first.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a, direct.into_data().try_to_vec::<f32>().unwrap());
    t.calls.set(0);

    // a new run: reopen from disk, add one input
    let mut cache = EmbeddingCache::open(&root, t.identity(), 4).unwrap();
    assert_eq!(cache.len(), 3);
    let again = cache
        .compute(&t, &["a violin", "a cello", "a dog"], 8, true)
        .unwrap();
    assert_eq!(t.calls.get(), 1, "only the new caption is embedded");
    let b = again.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(&b[0..4], &a[12..16]);
    assert_eq!(&b[8..12], &a[0..4]);
    assert!(cache.get(&text_digest("a cello")).is_some());

    // another tower (different weights) gets its own cache; it cannot use this one
    let other = tower("w2");
    assert!(matches!(
        cache.compute(&other, &["x"], 1, false),
        Err(Error::Cache { .. })
    ));
    let fresh = EmbeddingCache::open(&root, other.identity(), 4).unwrap();
    assert!(fresh.is_empty());
    assert_ne!(fresh.dir(), cache.dir());
    // and a width mismatch on an existing cache is refused
    assert!(matches!(
        EmbeddingCache::open(&root, t.identity(), 8),
        Err(Error::Cache { .. })
    ));
    let _ = std::fs::remove_dir_all(&root);
}
