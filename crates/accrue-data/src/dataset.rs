//! The common in-memory representation of every dataset: a [`Dataset`] of [`Example`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// A predefined data split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data (Clotho "development", AudioSet "balanced_train", …).
    Train,
    /// Validation data (Clotho "validation", AudioCaps "val", HEAR "valid", …).
    Valid,
    /// Test data (Clotho "evaluation", AudioSet "eval", …).
    Test,
}

impl Split {
    /// Parses the split names used by the supported datasets (case-insensitive):
    /// `train`/`training`/`development`/`dev`/`balanced_train`/`unbalanced_train`,
    /// `valid`/`validation`/`val`, `test`/`testing`/`eval`/`evaluation`.
    pub fn parse(name: &str) -> Option<Split> {
        match name.trim().to_ascii_lowercase().as_str() {
            "train" | "training" | "development" | "dev" | "balanced_train"
            | "unbalanced_train" => Some(Split::Train),
            "valid" | "validation" | "val" => Some(Split::Valid),
            "test" | "testing" | "eval" | "evaluation" => Some(Split::Test),
            _ => None,
        }
    }

    /// `"train"`, `"valid"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to the image side of an audio–image pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageRef {
    /// An image file (a video frame, a picture of the class…).
    File(PathBuf),
    /// The id of a precomputed embedding in an embedding cache.
    Embedding(String),
}

impl ImageRef {
    /// The key of this image in a supervision table: the file's path, or the embedding id.
    pub fn key(&self) -> String {
        match self {
            Self::File(p) => p.to_string_lossy().into_owned(),
            Self::Embedding(id) => id.clone(),
        }
    }
}

/// How image positives are defined for audio–image training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImagePairing {
    /// Each clip has its own images (frames of its own video): one positive per clip.
    #[default]
    Instance,
    /// Images belong to a class; every clip of that class shares them (class-level positives).
    Class,
}

/// The kinds of pairs a dataset can provide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairKind {
    /// Audio with one (single-label) or several (multi-label) class labels.
    AudioLabel,
    /// Audio with one or several images / image-embedding ids.
    AudioImage,
    /// Audio with one or several captions.
    AudioText,
}

/// One clip and everything paired with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Unique clip id within the dataset (file stem, YouTube id + start, …).
    pub id: String,
    /// Audio file (absolute, or relative to the working directory).
    pub audio: PathBuf,
    /// The predefined split, if the dataset has one.
    pub split: Option<Split>,
    /// The cross-validation fold, if the dataset has folds (ESC-50: 1–5, US8K: 1–10, HEAR: 0–k-1).
    pub fold: Option<u32>,
    /// Class indices into [`Dataset::classes`] (sorted, no duplicates).
    pub labels: Vec<usize>,
    /// Captions (Clotho: 5, AudioCaps: 1 in train, 5 in val/test).
    pub captions: Vec<String>,
    /// Images or embedding ids paired with the clip.
    pub images: Vec<ImageRef>,
    /// Dataset-specific extra fields (YouTube start time, AVE event boundaries, salience, …).
    pub meta: BTreeMap<String, String>,
}

impl Example {
    /// A bare example with only an id and an audio path.
    pub fn new(id: impl Into<String>, audio: impl Into<PathBuf>) -> Self {
        Example {
            id: id.into(),
            audio: audio.into(),
            split: None,
            fold: None,
            labels: Vec::new(),
            captions: Vec::new(),
            images: Vec::new(),
            meta: BTreeMap::new(),
        }
    }
}

/// A dataset read from disk: clips plus the class vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Short name (`"esc50"`, `"clotho"`, …).
    pub name: String,
    /// Class names; [`Example::labels`] index into this list.
    pub classes: Vec<String>,
    /// Whether a clip may carry several labels (AudioSet) rather than exactly one (ESC-50).
    pub multi_label: bool,
    /// How images are paired with clips.
    pub image_pairing: ImagePairing,
    /// The clips, in file order.
    pub examples: Vec<Example>,
}

/// The three parts of one k-fold round (HEAR rule).
#[derive(Clone, Debug, PartialEq)]
pub struct FoldSplit {
    /// All folds except `test_fold` and `valid_fold`.
    pub train: Dataset,
    /// The fold after the test fold (cyclically).
    pub valid: Dataset,
    /// The test fold.
    pub test: Dataset,
    /// The fold used for validation.
    pub valid_fold: u32,
}

impl Dataset {
    /// An empty dataset with the given name and classes.
    pub fn new(name: impl Into<String>, classes: Vec<String>, multi_label: bool) -> Self {
        Dataset {
            name: name.into(),
            classes,
            multi_label,
            image_pairing: ImagePairing::Instance,
            examples: Vec::new(),
        }
    }

    /// Number of clips.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no clips.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Index of a class by name.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == name)
    }

    /// The class names of an example's labels.
    pub fn label_names(&self, example: &Example) -> Vec<&str> {
        example
            .labels
            .iter()
            .filter_map(|&i| self.classes.get(i).map(String::as_str))
            .collect()
    }

    /// Whether every clip provides pairs of this kind (and there is at least one clip).
    pub fn supports(&self, kind: PairKind) -> bool {
        !self.examples.is_empty()
            && self.examples.iter().all(|e| match kind {
                PairKind::AudioLabel => !e.labels.is_empty() || self.multi_label,
                PairKind::AudioImage => !e.images.is_empty(),
                PairKind::AudioText => !e.captions.is_empty(),
            })
    }

    /// The pair kinds every clip provides.
    pub fn pair_kinds(&self) -> Vec<PairKind> {
        [
            PairKind::AudioLabel,
            PairKind::AudioImage,
            PairKind::AudioText,
        ]
        .into_iter()
        .filter(|&k| self.supports(k))
        .collect()
    }

    /// A copy keeping only the clips for which `keep` is true (classes are kept as they are).
    pub fn filter(&self, mut keep: impl FnMut(&Example) -> bool) -> Dataset {
        Dataset {
            name: self.name.clone(),
            classes: self.classes.clone(),
            multi_label: self.multi_label,
            image_pairing: self.image_pairing,
            examples: self.examples.iter().filter(|e| keep(e)).cloned().collect(),
        }
    }

    /// The clips of one predefined split.
    pub fn split(&self, split: Split) -> Dataset {
        self.filter(|e| e.split == Some(split))
    }

    /// The clips of the given folds.
    pub fn folds(&self, folds: &[u32]) -> Dataset {
        self.filter(|e| e.fold.is_some_and(|f| folds.contains(&f)))
    }

    /// The distinct fold numbers present, sorted.
    pub fn fold_ids(&self) -> Vec<u32> {
        let set: BTreeSet<u32> = self.examples.iter().filter_map(|e| e.fold).collect();
        set.into_iter().collect()
    }

    /// One round of k-fold evaluation, HEAR rule: `test_fold` is the test set, the next fold
    /// (cyclically, in sorted fold order) is validation, all other folds are training.
    pub fn kfold(&self, test_fold: u32) -> Result<FoldSplit> {
        let ids = self.fold_ids();
        let pos = ids.iter().position(|&f| f == test_fold).ok_or_else(|| {
            DataError::Config(format!(
                "dataset `{}` has no fold {test_fold} (folds: {ids:?})",
                self.name
            ))
        })?;
        if ids.len() < 3 {
            return Err(DataError::Config(format!(
                "k-fold needs at least 3 folds, dataset `{}` has {}",
                self.name,
                ids.len()
            )));
        }
        let valid_fold = ids[(pos + 1) % ids.len()];
        Ok(FoldSplit {
            train: self.filter(|e| e.fold.is_some_and(|f| f != test_fold && f != valid_fold)),
            valid: self.folds(&[valid_fold]),
            test: self.folds(&[test_fold]),
            valid_fold,
        })
    }

    /// Moves `count` clips of split `from`, drawn with a seeded shuffle, to [`Split::Valid`]
    /// (Wav2CLIP holds out 500 VGGSound training clips; method-spec §6.1 holds out ~10 % of
    /// AudioSet balanced-train). Returns how many were moved (`count` capped at the split size).
    pub fn hold_out(&mut self, from: Split, count: usize, seed: u64) -> usize {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut idx: Vec<usize> = (0..self.examples.len())
            .filter(|&i| self.examples[i].split == Some(from))
            .collect();
        idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        idx.truncate(count);
        for &i in &idx {
            self.examples[i].split = Some(Split::Valid);
        }
        idx.len()
    }

    /// Number of clips per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for e in &self.examples {
            for &l in &e.labels {
                if let Some(c) = counts.get_mut(l) {
                    *c += 1;
                }
            }
        }
        counts
    }

    /// Class-level image pairing: every clip gets the images of its label(s) (union, in class
    /// order) and [`Dataset::image_pairing`] becomes [`ImagePairing::Class`].
    ///
    /// Fails, naming the clip, when a clip has a label with no images in `class_images`.
    /// Keys of `class_images` that are not class names are an error too.
    pub fn set_class_images(
        &mut self,
        class_images: &BTreeMap<String, Vec<ImageRef>>,
    ) -> Result<()> {
        let mut by_index: Vec<Option<&Vec<ImageRef>>> = vec![None; self.classes.len()];
        for (name, images) in class_images {
            let idx = self.class_index(name).ok_or_else(|| {
                DataError::Config(format!(
                    "class images given for `{name}`, which is not a class of dataset `{}`",
                    self.name
                ))
            })?;
            by_index[idx] = Some(images);
        }
        for e in &mut self.examples {
            let mut images = Vec::new();
            for &l in &e.labels {
                match by_index.get(l).copied().flatten() {
                    Some(imgs) => images.extend(imgs.iter().cloned()),
                    None => {
                        return Err(DataError::Config(format!(
                            "clip `{}` has label `{}` but no images were given for that class",
                            e.id,
                            self.classes.get(l).map(String::as_str).unwrap_or("?")
                        )));
                    }
                }
            }
            e.images = images;
        }
        self.image_pairing = ImagePairing::Class;
        Ok(())
    }

    /// Checks internal consistency: unique clip ids, labels in range, single-label datasets have
    /// exactly one label per clip.
    pub fn check(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for e in &self.examples {
            if !seen.insert(e.id.as_str()) {
                return Err(DataError::Config(format!(
                    "dataset `{}`: duplicate clip id `{}`",
                    self.name, e.id
                )));
            }
            if let Some(&l) = e.labels.iter().find(|&&l| l >= self.classes.len()) {
                return Err(DataError::Config(format!(
                    "dataset `{}`: clip `{}` has label index {l} but there are {} classes",
                    self.name,
                    e.id,
                    self.classes.len()
                )));
            }
            if !self.multi_label && !self.classes.is_empty() && e.labels.len() != 1 {
                return Err(DataError::Config(format!(
                    "dataset `{}` is single-label but clip `{}` has {} labels",
                    self.name,
                    e.id,
                    e.labels.len()
                )));
            }
        }
        Ok(())
    }
}

/// Builds a class vocabulary while reading rows.
#[derive(Debug, Default)]
pub(crate) struct ClassVocab {
    names: BTreeMap<String, usize>,
    order: Vec<String>,
}

impl ClassVocab {
    /// Index of `name`, adding it if new.
    pub(crate) fn index(&mut self, name: &str) -> usize {
        if let Some(&i) = self.names.get(name) {
            return i;
        }
        let i = self.order.len();
        self.names.insert(name.to_string(), i);
        self.order.push(name.to_string());
        i
    }

    /// Sorts class names alphabetically and remaps all examples' labels accordingly.
    pub(crate) fn finish_sorted(self, examples: &mut [Example]) -> Vec<String> {
        let mut sorted = self.order.clone();
        sorted.sort();
        let remap: Vec<usize> = self
            .order
            .iter()
            .map(|n| sorted.binary_search(n).unwrap_or(0))
            .collect();
        for e in examples {
            for l in &mut e.labels {
                *l = remap[*l];
            }
            e.labels.sort_unstable();
            e.labels.dedup();
        }
        sorted
    }
}
