//! UrbanSound8K (Salamon et al., 2014): `metadata/UrbanSound8K.csv`, `audio/fold1` … `audio/fold10`.
//!
//! Header: `slice_file_name,fsID,start,end,salience,fold,classID,class`. `classID` (0–9) is the
//! label index, `class` its name (e.g. `dog_bark`). The audio of a row lives in
//! `audio/fold{fold}/{slice_file_name}`.

use std::path::Path;

use crate::dataset::{Dataset, Example};
use crate::error::Result;
use crate::readers::{CsvFile, IndexedClasses};

/// The published class names in label-index order.
pub const CLASSES: [&str; 10] = [
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
];

/// Reads UrbanSound8K from its root directory (the one holding `metadata/` and `audio/`).
pub fn read(root: &Path) -> Result<Dataset> {
    let csv_path = root.join("metadata").join("UrbanSound8K.csv");
    let mut csv = CsvFile::open(
        &csv_path,
        "the UrbanSound8K metadata file metadata/UrbanSound8K.csv",
        true,
    )?;
    let c_file = csv.column("slice_file_name")?;
    let c_fold = csv.column("fold")?;
    let c_id = csv.column("classID")?;
    let c_class = csv.column("class")?;
    let extra: Vec<(usize, String)> = ["fsID", "start", "end", "salience"]
        .iter()
        .filter_map(|k| csv.optional_column(k).map(|c| (c, k.to_string())))
        .collect();

    let mut classes = IndexedClasses::new(&CLASSES, "classID");
    let mut examples = Vec::new();
    while let Some(row) = csv.next_row() {
        let row = row?;
        let file = row.get(c_file, "slice_file_name")?;
        let fold: u32 = row.parse(c_fold, "fold")?;
        if !(1..=10).contains(&fold) {
            return Err(row.error(format!("fold {fold} is outside 1..=10")));
        }
        let id: usize = row.parse(c_id, "classID")?;
        let name = row.get(c_class, "class")?;
        classes.observe(&row, id, name)?;
        let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
        let mut ex = Example::new(
            stem,
            root.join("audio").join(format!("fold{fold}")).join(file),
        );
        ex.fold = Some(fold);
        ex.labels = vec![id];
        for (c, k) in &extra {
            ex.meta.insert(k.clone(), row.get(*c, k)?.to_string());
        }
        examples.push(ex);
    }
    let classes = classes.finish();
    let mut ds = Dataset::new("urbansound8k", classes, false);
    ds.examples = examples;
    ds.check()?;
    Ok(ds)
}
