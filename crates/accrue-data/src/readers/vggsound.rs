//! VGGSound (Chen et al., 2020): `vggsound.csv` plus downloaded audio and extracted frames.
//!
//! `vggsound.csv` has no header; each row is `youtube_id,start_seconds,label,split` with split
//! `train` or `test` (labels containing commas are quoted). 309 classes, sorted alphabetically.
//! Clip id: `{youtube_id}_{start:06}` (the usual file stem of downloaded clips).
//! VGGSound ships no media: file naming is set by [`VggSoundOptions`].

use std::path::Path;

use crate::dataset::{ClassVocab, Dataset, Example, Split};
use crate::error::Result;
use crate::readers::{CsvFile, Template, frame_refs};

/// Where the downloaded VGGSound media live.
#[derive(Clone, Debug)]
pub struct VggSoundOptions {
    /// Audio path relative to the root; placeholders `{youtube_id}`, `{start}`, `{label}`,
    /// `{split}`. Default `audio/{youtube_id}_{start:06}.wav`.
    pub audio: Template,
    /// Directory of a clip's extracted frames relative to the root (every `.jpg`/`.png` in it is
    /// one image, sorted by name), or `None` for audio only. A missing directory is reported by
    /// the loader as a missing image file. Default `frames/{youtube_id}_{start:06}`.
    pub frames: Option<Template>,
}

impl Default for VggSoundOptions {
    fn default() -> Self {
        VggSoundOptions {
            audio: Template::new("audio/{youtube_id}_{start:06}.wav"),
            frames: Some(Template::new("frames/{youtube_id}_{start:06}")),
        }
    }
}

/// Reads `vggsound.csv` under `root`.
pub fn read(root: &Path, options: &VggSoundOptions) -> Result<Dataset> {
    let path = root.join("vggsound.csv");
    let mut csv = CsvFile::open(&path, "the VGGSound metadata file vggsound.csv", false)?;
    let mut vocab = ClassVocab::default();
    let mut examples = Vec::new();
    while let Some(row) = csv.next_row() {
        let row = row?;
        if row.len() != 4 {
            return Err(row.error(format!(
                "expected 4 fields (youtube_id,start,label,split), found {}",
                row.len()
            )));
        }
        let yt = row.get(0, "youtube_id")?;
        let start_raw = row.get(1, "start")?;
        let start: u64 = row.parse(1, "start")?;
        let label = row.get(2, "label")?;
        let split_raw = row.get(3, "split")?;
        let split = match split_raw {
            "train" => Split::Train,
            "test" => Split::Test,
            other => {
                return Err(row.error(format!("split {other:?} is neither `train` nor `test`")));
            }
        };
        if yt.is_empty() || label.is_empty() {
            return Err(row.error("empty `youtube_id` or `label`"));
        }
        let vars = [
            ("youtube_id", yt),
            ("start", start_raw),
            ("label", label),
            ("split", split_raw),
        ];
        let audio = options.audio.render(&vars).map_err(|m| row.error(m))?;
        let mut ex = Example::new(format!("{yt}_{start:06}"), root.join(audio));
        ex.split = Some(split);
        ex.labels = vec![vocab.index(label)];
        ex.meta.insert("youtube_id".into(), yt.to_string());
        ex.meta.insert("start".into(), start_raw.to_string());
        if let Some(frames) = &options.frames {
            let dir = frames.render(&vars).map_err(|m| row.error(m))?;
            ex.images = frame_refs(&root.join(dir))?;
        }
        examples.push(ex);
    }
    let classes = vocab.finish_sorted(&mut examples);
    let mut ds = Dataset::new("vggsound", classes, false);
    ds.examples = examples;
    ds.check()?;
    Ok(ds)
}
