//! AVE, Audio-Visual Event localisation (Tian et al., 2018): `Annotations.txt` and split lists.
//!
//! Every file uses `&`-separated fields `Category&VideoID&Quality&StartTime&EndTime`;
//! `Annotations.txt` starts with that header line, `trainSet.txt`, `valSet.txt` and `testSet.txt`
//! list the clips of each split in the same format (a header line there is tolerated).
//! 28 event categories, sorted alphabetically. The event boundaries (seconds) and quality are kept
//! in [`Example::meta`] as `start`, `end`, `quality`. AVE ships videos (`AVE/{VideoID}.mp4`);
//! the extracted audio and frames are located with [`AveOptions`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::dataset::{ClassVocab, Dataset, Example, Split};
use crate::error::{DataError, Result};
use crate::readers::{Template, frame_refs, open_required};

/// Where the extracted AVE media live.
#[derive(Clone, Debug)]
pub struct AveOptions {
    /// Audio path relative to the root; placeholders `{video_id}`, `{category}`.
    /// Default `audio/{video_id}.wav`.
    pub audio: Template,
    /// Frame directory relative to the root, or `None` for audio only.
    /// Default `frames/{video_id}`.
    pub frames: Option<Template>,
}

impl Default for AveOptions {
    fn default() -> Self {
        AveOptions {
            audio: Template::new("audio/{video_id}.wav"),
            frames: Some(Template::new("frames/{video_id}")),
        }
    }
}

/// One parsed `&`-separated AVE row.
struct AveRow {
    line: u64,
    category: String,
    video_id: String,
    quality: String,
    start: String,
    end: String,
}

fn read_rows(path: &Path, what: &str) -> Result<Vec<AveRow>> {
    let file = open_required(path, what)?;
    let mut rows = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| DataError::io(path, e))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('&').map(str::trim).collect();
        if fields.len() != 5 {
            return Err(DataError::malformed(
                path,
                line_no,
                format!(
                    "expected 5 `&`-separated fields (Category&VideoID&Quality&StartTime&EndTime), found {}",
                    fields.len()
                ),
            ));
        }
        if i == 0 && fields[0] == "Category" && fields[1] == "VideoID" {
            continue;
        }
        for (value, name) in [(fields[3], "StartTime"), (fields[4], "EndTime")] {
            if value.parse::<f64>().is_err() {
                return Err(DataError::malformed(
                    path,
                    line_no,
                    format!("`{name}` = {value:?} is not a number"),
                ));
            }
        }
        if fields[0].is_empty() || fields[1].is_empty() {
            return Err(DataError::malformed(
                path,
                line_no,
                "empty Category or VideoID",
            ));
        }
        rows.push(AveRow {
            line: line_no,
            category: fields[0].to_string(),
            video_id: fields[1].to_string(),
            quality: fields[2].to_string(),
            start: fields[3].to_string(),
            end: fields[4].to_string(),
        });
    }
    Ok(rows)
}

/// Reads AVE from its root (the directory holding `Annotations.txt`).
pub fn read(root: &Path, options: &AveOptions) -> Result<Dataset> {
    let ann_path = root.join("Annotations.txt");
    let rows = read_rows(&ann_path, "the AVE annotation file Annotations.txt")?;
    let mut vocab = ClassVocab::default();
    let mut examples = Vec::with_capacity(rows.len());
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for r in rows {
        let vars = [
            ("video_id", r.video_id.as_str()),
            ("category", r.category.as_str()),
        ];
        let audio = options
            .audio
            .render(&vars)
            .map_err(|m| DataError::malformed(&ann_path, r.line, m))?;
        let mut ex = Example::new(r.video_id.clone(), root.join(audio));
        ex.labels = vec![vocab.index(&r.category)];
        ex.meta.insert("quality".into(), r.quality);
        ex.meta.insert("start".into(), r.start);
        ex.meta.insert("end".into(), r.end);
        if let Some(frames) = &options.frames {
            let dir = frames
                .render(&vars)
                .map_err(|m| DataError::malformed(&ann_path, r.line, m))?;
            ex.images = frame_refs(&root.join(dir))?;
        }
        if by_id.insert(r.video_id.clone(), examples.len()).is_some() {
            return Err(DataError::malformed(
                &ann_path,
                r.line,
                format!("VideoID `{}` appears twice", r.video_id),
            ));
        }
        examples.push(ex);
    }
    for (file, split) in [
        ("trainSet.txt", Split::Train),
        ("valSet.txt", Split::Valid),
        ("testSet.txt", Split::Test),
    ] {
        let path = root.join(file);
        if !path.is_file() {
            continue;
        }
        for r in read_rows(&path, "an AVE split list")? {
            let idx = *by_id.get(&r.video_id).ok_or_else(|| {
                DataError::malformed(
                    &path,
                    r.line,
                    format!("VideoID `{}` is not in Annotations.txt", r.video_id),
                )
            })?;
            let ex = &mut examples[idx];
            if let Some(prev) = ex.split {
                return Err(DataError::malformed(
                    &path,
                    r.line,
                    format!("VideoID `{}` is already in the {prev} split", r.video_id),
                ));
            }
            ex.split = Some(split);
        }
    }
    let classes = vocab.finish_sorted(&mut examples);
    let mut ds = Dataset::new("ave", classes, false);
    ds.examples = examples;
    ds.check()?;
    Ok(ds)
}
