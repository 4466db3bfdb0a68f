//! The layout of a run folder, owned in one place. The trainer writes it; `accrue eval`, the
//! checkpoint tools and the main job read it through this type and never spell a path of
//! their own.
//!
//! ```text
//! <run>/experiment.toml              the experiment as run (absolute paths; `accrue train`
//!                                    and the main job keep it there)
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

    /// The folder holding the stage models.
    pub fn stages(&self) -> PathBuf {
        self.root.join("stages")
    }

    /// What a previous run left in this folder (checkpoints, metrics log, stage or final
    /// models), named; `None` when there is nothing a new run would overwrite. The experiment
    /// file itself does not count.
    pub fn previous_run(&self) -> Option<String> {
        let non_empty_dir = |p: PathBuf| std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some());
        let found: Vec<&str> = [
            ("checkpoints", non_empty_dir(self.checkpoints())),
            ("metrics.jsonl", self.metrics().is_file()),
            ("stage models", non_empty_dir(self.stages())),
            ("final.safetensors", self.final_model().is_file()),
        ]
        .into_iter()
        .filter_map(|(name, there)| there.then_some(name))
        .collect();
        (!found.is_empty()).then(|| found.join(", "))
    }

    /// Refuses to start a new run over a previous one.
    ///
    /// # Errors
    /// [`ContinualError::RunExists`] naming the folder and what is there.
    pub fn refuse_overwrite(&self) -> crate::Result<()> {
        match self.previous_run() {
            Some(found) => Err(crate::ContinualError::RunExists {
                path: self.root.clone(),
                found,
            }),
            None => Ok(()),
        }
    }

    /// Deletes what a previous run left (checkpoints, metrics log, stage and final models),
    /// keeping everything else in the folder (the experiment file, evaluation outputs).
    ///
    /// # Errors
    /// A file or folder that exists but cannot be removed, named.
    pub fn clear_previous_run(&self) -> std::io::Result<()> {
        let folders = [self.checkpoints(), self.stages()].map(|p| (p, true));
        let files = [self.metrics(), self.final_model()].map(|p| (p, false));
        for (path, is_dir) in folders.into_iter().chain(files) {
            let removed = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = removed
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                ));
            }
        }
        Ok(())
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
    fn a_previous_run_is_found_and_cleared_but_the_experiment_kept() {
        let dir = tempfile::tempdir().unwrap();
        let r = RunDir::new(dir.path());
        std::fs::write(r.experiment(), "name = \"x\"").unwrap();
        assert_eq!(r.previous_run(), None, "an experiment file alone is no run");
        std::fs::create_dir_all(r.checkpoints()).unwrap();
        assert_eq!(
            r.previous_run(),
            None,
            "an empty checkpoint folder is no run"
        );
        std::fs::write(r.checkpoints().join("latest"), "ckpt-000001").unwrap();
        std::fs::write(r.metrics(), "{}\n").unwrap();
        assert_eq!(
            r.previous_run().as_deref(),
            Some("checkpoints, metrics.jsonl")
        );
        r.clear_previous_run().unwrap();
        assert_eq!(r.previous_run(), None);
        assert!(r.experiment().is_file());
    }

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
