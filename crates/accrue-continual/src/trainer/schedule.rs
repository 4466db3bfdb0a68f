//! Epoch-level learning-rate schedules and early stopping (method-spec §5). Both are small
//! state machines stepped once per epoch with the monitored loss (validation loss, or the
//! training loss without validation data); their state is part of every checkpoint.

use serde::{Deserialize, Serialize};

use super::checkpoint::f64_bits;
use crate::config::SchedulerConfig;

/// The learning rate and the plateau scheduler's memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LrState {
    /// The learning rate of the next step.
    #[serde(with = "f64_bits")]
    pub lr: f64,
    /// ReduceLROnPlateau: best monitored loss so far.
    #[serde(with = "f64_bits")]
    pub plateau_best: f64,
    /// ReduceLROnPlateau: epochs since it improved.
    pub plateau_bad: usize,
}

impl LrState {
    /// The state at a stage start.
    pub fn start(lr0: f64) -> Self {
        Self {
            lr: lr0,
            plateau_best: f64::INFINITY,
            plateau_bad: 0,
        }
    }

    /// Epoch-end update: StepLR `lr_e = lr₀·γ^⌊e/step⌋` for the next epoch;
    /// ReduceLROnPlateau (mode min) decays after more than `patience` epochs without a
    /// relative improvement of `threshold`, never below `min_lr`.
    pub fn epoch_end(&mut self, sched: &SchedulerConfig, lr0: f64, monitored: f64, epoch: usize) {
        match *sched {
            SchedulerConfig::Constant => {}
            SchedulerConfig::Step { step_size, gamma } => {
                let k = (epoch + 1) / step_size.max(1);
                self.lr = lr0 * gamma.powi(k as i32);
            }
            SchedulerConfig::Plateau {
                factor,
                patience,
                min_lr,
                threshold,
            } => {
                if monitored < self.plateau_best * (1.0 - threshold) {
                    self.plateau_best = monitored;
                    self.plateau_bad = 0;
                } else {
                    self.plateau_bad += 1;
                    if self.plateau_bad > patience {
                        self.lr = (self.lr * factor).max(min_lr);
                        self.plateau_bad = 0;
                    }
                }
            }
        }
    }
}

/// Early stopping on the monitored loss, keeping the best epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct EarlyStopping {
    /// Best monitored loss so far.
    #[serde(with = "f64_bits")]
    pub best_loss: f64,
    /// Its epoch.
    pub best_epoch: usize,
    /// Epochs since it improved.
    pub bad_epochs: usize,
    /// Whether a best epoch's weights were saved.
    pub has_best: bool,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        Self {
            best_loss: f64::INFINITY,
            best_epoch: 0,
            bad_epochs: 0,
            has_best: false,
        }
    }
}

/// What an epoch's monitored loss means for the stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// A new best: save these weights.
    pub improved: bool,
    /// Patience exhausted: stop the stage.
    pub stop: bool,
}

impl EarlyStopping {
    /// Epoch-end update with `patience` (`None`: never stop).
    pub fn epoch_end(&mut self, monitored: f64, epoch: usize, patience: Option<usize>) -> Verdict {
        let improved = monitored < self.best_loss;
        if improved {
            self.best_loss = monitored;
            self.best_epoch = epoch;
            self.bad_epochs = 0;
            self.has_best = true;
        } else {
            self.bad_epochs += 1;
        }
        Verdict {
            improved,
            stop: patience.is_some_and(|p| self.bad_epochs >= p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-30)
    }

    #[test]
    fn learning_rate_schedules_follow_the_spec() {
        let step = SchedulerConfig::Step {
            step_size: 10,
            gamma: 0.1,
        };
        let plateau = SchedulerConfig::Plateau {
            factor: 0.1,
            patience: 2,
            min_lr: 1e-5,
            threshold: 1e-4,
        };
        // (schedule, lr₀, monitored loss per epoch, lr after each epoch end)
        let cases: Vec<(&str, SchedulerConfig, f64, Vec<f64>, Vec<f64>)> = vec![
            (
                "constant",
                SchedulerConfig::Constant,
                1e-3,
                vec![1.0, 2.0, 3.0],
                vec![1e-3, 1e-3, 1e-3],
            ),
            (
                "step: epoch 10 starts at lr·γ, epoch 20 at lr·γ²",
                step.clone(),
                1e-4,
                vec![1.0; 20],
                [vec![1e-4; 9], vec![1e-5; 10], vec![1e-6]].concat(),
            ),
            (
                "plateau: decays after more than `patience` bad epochs",
                plateau.clone(),
                1e-3,
                vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                vec![1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-5],
            ),
            (
                "plateau: an improvement below the threshold does not count",
                plateau.clone(),
                1e-3,
                vec![1.0, 0.99995, 0.99995, 0.99995],
                vec![1e-3, 1e-3, 1e-3, 1e-4],
            ),
            (
                "plateau: a real improvement resets the count",
                plateau.clone(),
                1e-3,
                vec![1.0, 1.0, 1.0, 0.5, 0.6, 0.6, 0.6],
                vec![1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-4],
            ),
            (
                "plateau: clamped at min_lr",
                plateau,
                1e-4,
                vec![2.0; 12],
                vec![
                    1e-4, 1e-4, 1e-4, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5,
                ],
            ),
        ];
        for (what, sched, lr0, losses, want) in cases {
            let mut st = LrState::start(lr0);
            let got: Vec<f64> = losses
                .iter()
                .enumerate()
                .map(|(e, &l)| {
                    st.epoch_end(&sched, lr0, l, e);
                    st.lr
                })
                .collect();
            assert_eq!(got.len(), want.len(), "{what}");
            assert!(
                got.iter().zip(&want).all(|(g, w)| close(*g, *w)),
                "{what}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn early_stopping_keeps_the_best_epoch_and_stops_after_patience() {
        // (patience, monitored losses, epoch at which it stops, best epoch)
        let cases: [(Option<usize>, &[f64], Option<usize>, usize); 5] = [
            (None, &[3.0, 2.0, 2.5, 2.5, 2.5], None, 1),
            (Some(2), &[3.0, 2.0, 2.5, 2.5, 1.0], Some(3), 1),
            (Some(1), &[3.0, 3.0], Some(1), 0),
            (Some(2), &[3.0, 2.0, 1.0, 0.5], None, 3),
            // Equal is not better.
            (Some(3), &[1.0, 1.0, 1.0, 1.0], Some(3), 0),
        ];
        for (patience, losses, stop_at, best) in cases {
            let mut es = EarlyStopping::default();
            let mut stopped = None;
            for (e, &l) in losses.iter().enumerate() {
                let v = es.epoch_end(l, e, patience);
                assert_eq!(v.improved, es.best_epoch == e && es.bad_epochs == 0);
                if v.stop {
                    stopped = Some(e);
                    break;
                }
            }
            assert_eq!(stopped, stop_at, "{patience:?} {losses:?}");
            assert_eq!(es.best_epoch, best, "{patience:?} {losses:?}");
            assert!(es.has_best);
        }
    }
}
