//! AudioCaps (Kim et al., 2019): `train.csv`, `val.csv`, `test.csv`.
//!
//! Header: `audiocap_id,youtube_id,start_time,caption`. Training clips have one caption, val/test
//! clips five, on five rows sharing `youtube_id` and `start_time`; rows of one clip are grouped
//! into one [`Example`] (id `{youtube_id}_{start_time}`, first-appearance order). AudioCaps ships
//! no audio: how downloaded files are named is set by [`AudioCapsOptions::audio`].

use std::collections::HashMap;
use std::path::Path;

use crate::dataset::{Dataset, Example, Split};
use crate::error::{DataError, Result};
use crate::readers::{CsvFile, Template};

/// Where the downloaded AudioCaps audio lives.
#[derive(Clone, Debug)]
pub struct AudioCapsOptions {
    /// Path of a clip's audio relative to the root. Placeholders: `{split}` (`train`/`val`/`test`,
    /// as in the CSV names), `{youtube_id}`, `{start_time}`, `{audiocap_id}` (of the clip's first
    /// row). Default: `audio/{split}/{youtube_id}.wav`.
    pub audio: Template,
}

impl Default for AudioCapsOptions {
    fn default() -> Self {
        AudioCapsOptions {
            audio: Template::new("audio/{split}/{youtube_id}.wav"),
        }
    }
}

/// Reads every AudioCaps split CSV present under `root` (at least one must be).
pub fn read(root: &Path, options: &AudioCapsOptions) -> Result<Dataset> {
    let mut ds = Dataset::new("audiocaps", Vec::new(), false);
    let mut found = 0;
    for (name, split) in [
        ("train", Split::Train),
        ("val", Split::Valid),
        ("test", Split::Test),
    ] {
        let path = root.join(format!("{name}.csv"));
        if !path.is_file() {
            continue;
        }
        found += 1;
        let mut csv = CsvFile::open(&path, "an AudioCaps CSV", true)?;
        let c_acid = csv.column("audiocap_id")?;
        let c_yt = csv.column("youtube_id")?;
        let c_start = csv.column("start_time")?;
        let c_cap = csv.column("caption")?;
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        let first = ds.examples.len();
        while let Some(row) = csv.next_row() {
            let row = row?;
            let acid: u64 = row.parse(c_acid, "audiocap_id")?;
            let yt = row.get(c_yt, "youtube_id")?;
            if yt.is_empty() {
                return Err(row.error("empty `youtube_id`"));
            }
            let start: f64 = row.parse(c_start, "start_time")?;
            let start_raw = row.get(c_start, "start_time")?;
            let caption = row.get(c_cap, "caption")?;
            if caption.is_empty() {
                return Err(row.error("empty `caption`"));
            }
            let key = (yt.to_string(), start_raw.to_string());
            let slot = match index.get(&key) {
                Some(&i) => i,
                None => {
                    let rel = options
                        .audio
                        .render(&[
                            ("split", name),
                            ("youtube_id", yt),
                            ("start_time", start_raw),
                            ("audiocap_id", &acid.to_string()),
                        ])
                        .map_err(|m| row.error(m))?;
                    let mut ex = Example::new(format!("{yt}_{start}"), root.join(rel));
                    ex.split = Some(split);
                    ex.meta.insert("youtube_id".into(), yt.to_string());
                    ex.meta.insert("start_time".into(), start_raw.to_string());
                    ds.examples.push(ex);
                    let i = ds.examples.len() - 1 - first;
                    index.insert(key, i);
                    i
                }
            };
            let ex = &mut ds.examples[first + slot];
            ex.captions.push(caption.to_string());
            let ids = ex.meta.entry("audiocap_ids".into()).or_default();
            if !ids.is_empty() {
                ids.push(' ');
            }
            ids.push_str(&acid.to_string());
        }
    }
    if found == 0 {
        return Err(DataError::layout(
            root,
            "no AudioCaps CSV (train.csv, val.csv, test.csv) here",
        ));
    }
    ds.check()?;
    Ok(ds)
}
