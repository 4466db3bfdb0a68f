//! Readers for the datasets' own on-disk layouts.
//!
//! Each reader takes the dataset's root directory (as distributed or as extracted by the usual
//! tools) and returns a [`Dataset`](crate::Dataset) whose audio paths point into that root. Readers
//! only read metadata (and list frame directories); they never decode audio. Missing or corrupt
//! audio files are found by the [`Loader`](crate::Loader).

pub mod audiocaps;
pub mod audioset;
pub mod ave;
pub mod clotho;
pub mod esc50;
pub mod hear;
pub mod manifest;
pub mod urbansound8k;
pub mod vggsound;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::dataset::ImageRef;
use crate::error::{DataError, Result};

/// Opens a file, turning a missing file into a layout error that says what was expected.
pub(crate) fn open_required(path: &Path, what: &str) -> Result<File> {
    if !path.is_file() {
        return Err(DataError::layout(
            path,
            format!("expected {what} here, found none"),
        ));
    }
    File::open(path).map_err(|e| DataError::io(path, e))
}

/// A CSV file being read row by row, with header lookup and line-numbered errors.
pub(crate) struct CsvFile {
    path: PathBuf,
    reader: csv::Reader<File>,
    headers: Vec<String>,
}

/// One row of a [`CsvFile`].
pub(crate) struct CsvRow<'a> {
    path: &'a Path,
    record: csv::StringRecord,
}

impl CsvFile {
    /// Opens a CSV file; with `has_headers` the first row names the columns.
    pub(crate) fn open(path: &Path, what: &str, has_headers: bool) -> Result<Self> {
        let file = open_required(path, what)?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(has_headers)
            .flexible(false)
            .from_reader(file);
        let headers = if has_headers {
            reader
                .headers()
                .map_err(|e| csv_error(path, e))?
                .iter()
                .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
                .collect()
        } else {
            Vec::new()
        };
        Ok(CsvFile {
            path: path.to_path_buf(),
            reader,
            headers,
        })
    }

    /// The column index of a required header.
    pub(crate) fn column(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| {
            DataError::malformed(
                &self.path,
                1,
                format!("missing column `{name}` in header {:?}", self.headers),
            )
        })
    }

    /// The column index of an optional header.
    pub(crate) fn optional_column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The header names.
    pub(crate) fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Reads the next row; `None` at the end of the file.
    pub(crate) fn next_row(&mut self) -> Option<Result<CsvRow<'_>>> {
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(true) => Some(Ok(CsvRow {
                path: &self.path,
                record,
            })),
            Ok(false) => None,
            Err(e) => Some(Err(csv_error(&self.path, e))),
        }
    }
}

impl CsvRow<'_> {
    /// 1-based line number of the row.
    pub(crate) fn line(&self) -> u64 {
        self.record.position().map_or(0, |p| p.line())
    }

    /// Number of fields.
    pub(crate) fn len(&self) -> usize {
        self.record.len()
    }

    /// Field `idx`, trimmed.
    pub(crate) fn get(&self, idx: usize, name: &str) -> Result<&str> {
        self.record
            .get(idx)
            .map(str::trim)
            .ok_or_else(|| self.error(format!("missing field `{name}`")))
    }

    /// Field `idx` parsed as `T`.
    pub(crate) fn parse<T: FromStr>(&self, idx: usize, name: &str) -> Result<T> {
        let raw = self.get(idx, name)?;
        raw.parse::<T>().map_err(|_| {
            self.error(format!(
                "field `{name}` = {raw:?} is not a valid {}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// A malformed-row error at this row.
    pub(crate) fn error(&self, message: impl Into<String>) -> DataError {
        DataError::malformed(self.path, self.line(), message)
    }
}

/// A fixed, indexed class list (ESC-50 `target`, UrbanSound8K `classID`) checked against rows.
///
/// Starts from the dataset's published class names; rows must agree with each other (an index
/// named differently on two rows is an error). Rows override a published name that differs
/// (with a warning), so the data on disk always wins.
pub(crate) struct IndexedClasses {
    names: Vec<String>,
    seen: Vec<bool>,
    column: &'static str,
}

impl IndexedClasses {
    pub(crate) fn new(canonical: &[&str], column: &'static str) -> Self {
        IndexedClasses {
            names: canonical.iter().map(|s| s.to_string()).collect(),
            seen: vec![false; canonical.len()],
            column,
        }
    }

    /// Registers `name` for index `idx` from a row.
    pub(crate) fn observe(&mut self, row: &CsvRow<'_>, idx: usize, name: &str) -> Result<()> {
        if idx >= self.names.len() {
            return Err(row.error(format!(
                "{} {idx} is outside 0..{}",
                self.column,
                self.names.len()
            )));
        }
        if self.names[idx] != name {
            if self.seen[idx] {
                return Err(row.error(format!(
                    "{} {idx} is `{}` on an earlier row but `{name}` here",
                    self.column, self.names[idx]
                )));
            }
            tracing::warn!(
                "{} {idx}: the data says `{name}`, the published list `{}`; using the data",
                self.column,
                self.names[idx]
            );
            self.names[idx] = name.to_string();
        }
        self.seen[idx] = true;
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<String> {
        self.names
    }
}

fn csv_error(path: &Path, e: csv::Error) -> DataError {
    let line = e.position().map_or(0, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("row has {len} fields, expected {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "row is not valid UTF-8".to_string(),
        _ => e.to_string(),
    };
    DataError::malformed(path, line, message)
}

/// Lists the image files of a directory (sorted by name). `None` when the directory is absent.
pub(crate) fn list_images(dir: &Path) -> Result<Option<Vec<ImageRef>>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .is_some_and(|e| matches!(e.as_str(), "jpg" | "jpeg" | "png" | "bmp" | "webp"));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(Some(files.into_iter().map(ImageRef::File).collect()))
}

/// Image refs for a clip's frame directory: its image files, or — when the directory is
/// missing — the directory itself, so that the loader reports it as a missing file.
pub(crate) fn frame_refs(dir: &Path) -> Result<Vec<ImageRef>> {
    Ok(list_images(dir)?.unwrap_or_else(|| vec![ImageRef::File(dir.to_path_buf())]))
}

/// A file-name template with `{name}` placeholders, used where datasets do not fix how users
/// name their downloaded files (YouTube-based datasets).
///
/// `{name}` inserts a field verbatim; `{name:0N}` inserts a number as an integer zero-padded to
/// `N` digits (`{start:06}` with start `"30.000"` gives `000030`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    /// Wraps a template string.
    pub fn new(s: impl Into<String>) -> Self {
        Template(s.into())
    }

    /// The raw template.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Fills in the placeholders from `vars`.
    pub fn render(&self, vars: &[(&str, &str)]) -> std::result::Result<String, String> {
        let mut out = String::with_capacity(self.0.len() + 16);
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in template {:?}", self.0))?;
            let spec = &after[..close];
            let (name, format) = match spec.split_once(':') {
                Some((n, f)) => (n, Some(f)),
                None => (spec, None),
            };
            let value = vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let known: Vec<&str> = vars.iter().map(|(k, _)| *k).collect();
                    format!(
                        "unknown placeholder `{{{name}}}` in template {:?} (known: {known:?})",
                        self.0
                    )
                })?;
            match format {
                None => out.push_str(value),
                Some(f) => {
                    let width: usize = f
                        .strip_prefix('0')
                        .and_then(|w| w.parse().ok())
                        .ok_or_else(|| format!("bad format `{f}` in template {:?}", self.0))?;
                    let number: f64 = value
                        .trim()
                        .parse()
                        .map_err(|_| format!("`{name}` = {value:?} is not a number"))?;
                    if number.fract() != 0.0 || number < 0.0 {
                        return Err(format!(
                            "`{name}` = {value:?} is not a non-negative integer"
                        ));
                    }
                    out.push_str(&format!("{:0width$}", number as u64));
                }
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl From<&str> for Template {
    fn from(s: &str) -> Self {
        Template::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::Template;

    #[test]
    fn template_renders_padding_and_fields() {
        let t = Template::new("audio/{youtube_id}_{start:06}.wav");
        let s = t
            .render(&[("youtube_id", "-abc"), ("start", "30.000")])
            .unwrap();
        assert_eq!(s, "audio/-abc_000030.wav");
        assert!(t.render(&[("youtube_id", "x")]).is_err());
        assert!(t.render(&[("youtube_id", "x"), ("start", "1.5")]).is_err());
        assert!(Template::new("a{b").render(&[("b", "1")]).is_err());
    }
}
