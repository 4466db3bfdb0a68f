//! Clotho v2 (Drossos et al., 2020): captions CSVs and one audio directory per split.
//!
//! Files (as extracted from the Zenodo archives):
//! `clotho_captions_development.csv`, `clotho_captions_validation.csv`,
//! `clotho_captions_evaluation.csv`, with header `file_name,caption_1,…,caption_5`, and the audio
//! in `development/`, `validation/`, `evaluation/` (or `clotho_audio_<split>/`). Captions are
//! quoted and may contain commas; file names may contain spaces and commas too.
//! Splits: development → [`Split::Train`], validation → [`Split::Valid`],
//! evaluation → [`Split::Test`]. Clips have no labels (`classes` is empty).

use std::path::Path;

use crate::dataset::{Dataset, Example, Split};
use crate::error::{DataError, Result};
use crate::readers::CsvFile;

/// The three captioned Clotho splits and the file-name part that names them.
pub const SPLITS: [(&str, Split); 3] = [
    ("development", Split::Train),
    ("validation", Split::Valid),
    ("evaluation", Split::Test),
];

/// Reads every Clotho split whose captions CSV is present under `root` (at least one must be).
pub fn read(root: &Path) -> Result<Dataset> {
    let mut ds = Dataset::new("clotho", Vec::new(), false);
    let mut found = 0;
    for (name, split) in SPLITS {
        let csv_path = root.join(format!("clotho_captions_{name}.csv"));
        if !csv_path.is_file() {
            continue;
        }
        found += 1;
        ds.examples.extend(read_split(root, name, split)?);
    }
    if found == 0 {
        return Err(DataError::layout(
            root,
            "no Clotho captions file (clotho_captions_{development,validation,evaluation}.csv) here",
        ));
    }
    ds.check()?;
    Ok(ds)
}

/// Reads one split (`"development"`, `"validation"` or `"evaluation"`).
pub fn read_split(root: &Path, name: &str, split: Split) -> Result<Vec<Example>> {
    let csv_path = root.join(format!("clotho_captions_{name}.csv"));
    let mut csv = CsvFile::open(&csv_path, "a Clotho captions file", true)?;
    let c_file = csv.column("file_name")?;
    let c_caps = (1..=5)
        .map(|i| csv.column(&format!("caption_{i}")))
        .collect::<Result<Vec<_>>>()?;
    let audio_dir = {
        let plain = root.join(name);
        let alt = root.join(format!("clotho_audio_{name}"));
        if !plain.is_dir() && alt.is_dir() {
            alt
        } else {
            plain
        }
    };
    let mut out = Vec::new();
    while let Some(row) = csv.next_row() {
        let row = row?;
        let file = row.get(c_file, "file_name")?;
        if file.is_empty() {
            return Err(row.error("empty `file_name`"));
        }
        let mut ex = Example::new(file, audio_dir.join(file));
        ex.split = Some(split);
        for (i, &c) in c_caps.iter().enumerate() {
            let cap = row.get(c, "caption")?;
            if cap.is_empty() {
                return Err(row.error(format!("empty `caption_{}`", i + 1)));
            }
            ex.captions.push(cap.to_string());
        }
        out.push(ex);
    }
    Ok(out)
}
