//! The layout of a run folder, owned in one place. The trainer writes it; `accrue eval`, the
//! checkpoint tools and the main job read it through this type and never spell a path of
//! their own.
//!
//! ```text
//! <run>/experiment.toml              the experiment as run (the main job writes it there)
//! <run>/metrics.jsonl                one JSON object per step / validation / stage end
//! <run>/checkpoints/latest           name of the newest complete checkpoint
//! <run>/checkpoints/ckpt-NNNNNN/     state.json, student.bpk, aux.bpk, optim.bin, …
//! <run>/stages/<i>-<name>.safetensors  the model at the end of stage i
//! <run>/final.safetensors            the model after the last stage
//! <run>/eval.json                    the evaluation artifact (`accrue eval`)
//! ```

use std::path::{Path, PathBuf};

/// A run folder (an experiment's `output_dir`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The experiment file as run.
    pub fn experiment(&self) -> PathBuf {
        self.root.join("experiment.toml")
    }

    /// The metrics log.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// The checkpoint folder.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The model of stage `index` (named `name`) once the stage has ended (student: encoder
    /// and heads); characters other than ASCII letters, digits, `-` and `_` become `_`.
    pub fn stage_model(&self, index: usize, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root
            .join("stages")
            .join(format!("{index}-{safe}.safetensors"))
    }

    /// The model after the last stage.
    pub fn final_model(&self) -> PathBuf {
        self.root.join("final.safetensors")
    }

    /// The default evaluation artifact.
    pub fn eval_artifact(&self) -> PathBuf {
        self.root.join("eval.json")
    }

    /// The run folder a checkpoint file belongs to: the folder holding `experiment.toml`, the
    /// file's own folder (`<run>/final.safetensors`) or its parent
    /// (`<run>/stages/<i>-<name>.safetensors`).
    pub fn of_checkpoint(checkpoint: &Path) -> Option<Self> {
        let dir = checkpoint.parent()?;
        [Some(dir), dir.parent()]
            .into_iter()
            .flatten()
            .map(Self::new)
            .find(|r| r.experiment().is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let r = RunDir::new("/runs/x");
        assert_eq!(
            r.stage_model(1, "A→AV"),
            PathBuf::from("/runs/x/stages/1-A_AV.safetensors")
        );
        assert_eq!(r.experiment(), PathBuf::from("/runs/x/experiment.toml"));
        assert_eq!(r.checkpoints(), PathBuf::from("/runs/x/checkpoints"));
    }
}
