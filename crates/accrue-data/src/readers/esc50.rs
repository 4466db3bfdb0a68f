//! ESC-50 (Piczak, 2015): `meta/esc50.csv` and `audio/*.wav`, 5 folds, 50 classes.
//!
//! Header: `filename,fold,target,category,esc10,src_file,take`. Class `target` (0–49) is the
//! label index; `category` its name (snake_case, e.g. `dog`, `chirping_birds`). The ESC-10 flag,
//! source file and take are kept in [`Example::meta`].

use std::path::Path;

use crate::dataset::{Dataset, Example};
use crate::error::Result;
use crate::readers::{CsvFile, IndexedClasses};

/// The published class names in label-index order.
pub const CLASSES: [&str; 50] = [
    "dog",
    "rooster",
    "pig",
    "cow",
    "frog",
    "cat",
    "hen",
    "insects",
    "sheep",
    "crow",
    "rain",
    "sea_waves",
    "crackling_fire",
    "crickets",
    "chirping_birds",
    "water_drops",
    "wind",
    "pouring_water",
    "toilet_flush",
    "thunderstorm",
    "crying_baby",
    "sneezing",
    "clapping",
    "breathing",
    "coughing",
    "footsteps",
    "laughing",
    "brushing_teeth",
    "snoring",
    "drinking_sipping",
    "door_wood_knock",
    "mouse_click",
    "keyboard_typing",
    "door_wood_creaks",
    "can_opening",
    "washing_machine",
    "vacuum_cleaner",
    "clock_alarm",
    "clock_tick",
    "glass_breaking",
    "helicopter",
    "chainsaw",
    "siren",
    "car_horn",
    "engine",
    "train",
    "church_bells",
    "airplane",
    "fireworks",
    "hand_saw",
];

/// Reads ESC-50 from its root directory (the one holding `meta/` and `audio/`).
pub fn read(root: &Path) -> Result<Dataset> {
    let csv_path = root.join("meta").join("esc50.csv");
    let mut csv = CsvFile::open(&csv_path, "the ESC-50 metadata file meta/esc50.csv", true)?;
    let c_file = csv.column("filename")?;
    let c_fold = csv.column("fold")?;
    let c_target = csv.column("target")?;
    let c_cat = csv.column("category")?;
    let c_esc10 = csv.optional_column("esc10");
    let c_src = csv.optional_column("src_file");
    let c_take = csv.optional_column("take");

    let mut classes = IndexedClasses::new(&CLASSES, "target");
    let mut examples = Vec::new();
    while let Some(row) = csv.next_row() {
        let row = row?;
        let file = row.get(c_file, "filename")?;
        let fold: u32 = row.parse(c_fold, "fold")?;
        if !(1..=5).contains(&fold) {
            return Err(row.error(format!("fold {fold} is outside 1..=5")));
        }
        let target: usize = row.parse(c_target, "target")?;
        let category = row.get(c_cat, "category")?;
        classes.observe(&row, target, category)?;
        let mut ex = Example::new(
            file.trim_end_matches(".wav").to_string(),
            root.join("audio").join(file),
        );
        ex.fold = Some(fold);
        ex.labels = vec![target];
        for (col, key) in [(c_esc10, "esc10"), (c_src, "src_file"), (c_take, "take")] {
            if let Some(c) = col {
                ex.meta
                    .insert(key.to_string(), row.get(c, key)?.to_string());
            }
        }
        examples.push(ex);
    }
    let classes = classes.finish();
    let mut ds = Dataset::new("esc50", classes, false);
    ds.examples = examples;
    ds.check()?;
    Ok(ds)
}
