//! The strict-load report: what a checkpoint load matched and did not match. Every loader of
//! the project (encoders, towers, stage models) fills the same report, and strict loading
//! fails with all of it at once, so nothing is ever partially loaded without the caller
//! asking for it and seeing what was left out.

use std::fmt;

/// A tensor whose shape in the file differs from the module's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Module path (after remapping).
    pub key: String,
    /// Shape the module expects (Burn layout: linear weights are `[in, out]`).
    pub expected: Vec<usize>,
    /// Shape found in the file (after the PyTorch → Burn layout adaptation).
    pub found: Vec<usize>,
}

/// What a load did and did not match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Module paths loaded from the file.
    pub applied: Vec<String>,
    /// Module tensors the file does not provide (module paths).
    pub missing: Vec<String>,
    /// File tensors that match no module tensor (file keys after remapping).
    pub unexpected: Vec<String>,
    /// Tensors present on both sides with different shapes.
    pub mismatched: Vec<ShapeMismatch>,
    /// Other per-tensor failures (dtype, decoding), each naming its tensor.
    pub errors: Vec<String>,
    /// File tensors deliberately skipped (e.g. `num_batches_tracked`).
    pub ignored: Vec<String>,
}

impl LoadReport {
    /// True when every module tensor was loaded and every file tensor used or ignored.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.mismatched.is_empty()
            && self.errors.is_empty()
    }

    /// The report of a burn-store `apply`: unused file keys ending in one of `ignore` are
    /// ignored rather than unexpected; lists are sorted.
    #[cfg(feature = "burn")]
    pub fn from_apply(result: burn::store::ApplyResult, ignore: &[String]) -> Self {
        use burn::store::ApplyError;
        let mut report = LoadReport {
            applied: result.applied,
            missing: result.missing.into_iter().map(|(path, _)| path).collect(),
            ..Default::default()
        };
        for key in result.unused {
            if ignore.iter().any(|suffix| key.ends_with(suffix.as_str())) {
                report.ignored.push(key);
            } else {
                report.unexpected.push(key);
            }
        }
        for error in result.errors {
            match error {
                ApplyError::ShapeMismatch {
                    path,
                    expected,
                    found,
                } => report.mismatched.push(ShapeMismatch {
                    key: path,
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                }),
                other => report.errors.push(other.to_string()),
            }
        }
        report.missing.sort();
        report.unexpected.sort();
        report.mismatched.sort_by(|a, b| a.key.cmp(&b.key));
        report
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} loaded, {} missing, {} unexpected, {} wrong shape, {} other errors, {} ignored",
            self.applied.len(),
            self.missing.len(),
            self.unexpected.len(),
            self.mismatched.len(),
            self.errors.len(),
            self.ignored.len()
        )?;
        for key in &self.missing {
            writeln!(f, "  missing:    {key}")?;
        }
        for key in &self.unexpected {
            writeln!(f, "  unexpected: {key}")?;
        }
        for m in &self.mismatched {
            writeln!(
                f,
                "  wrong shape: {} expected {:?}, found {:?}",
                m.key, m.expected, m.found
            )?;
        }
        for e in &self.errors {
            writeln!(f, "  error:      {e}")?;
        }
        Ok(())
    }
}
