//! Data parallelism over local devices: one synchronous optimiser step from replicas that each
//! see a shard of the batch.
//!
//! This is burn-train's multi-device execution strategy (`MultiDeviceOptim::OptimMainDevice`)
//! on the continual loop, built from the same Burn primitives and no communication code of
//! accrue's own: `Module::fork` places a replica, `GradientsParams::to_device` brings its
//! gradients home and burn-optim's `GradientsAccumulator` sums them.
//!
//! ```text
//!  batch [B] ─split─► shard r [B_r] ─► replica r: model.fork(device_r), strategy (shared or forked)
//!                                        └─► w_r · total_r ─► backward ─► GradientsParams_r
//!  Σ_r GradientsParams_r.to_device(main)  ─► one optimiser step on the main device
//! ```
//!
//! with `w_r = B_r / B`: for a loss that is a mean over clips the summed gradient is the
//! full-batch gradient (tested). Two things differ from one device holding the whole batch, as
//! they do in PyTorch's DDP:
//!
//! - **Contrastive negatives are per replica.** Each replica's InfoNCE sees `B_r − 1`
//!   negatives, not `B − 1`. Gathering them needs a collective: an all-reduce of each
//!   replica's embeddings written into its own slot of a zero `[B, D]` tensor emulates an
//!   all-gather, but Burn 0.22 implements `burn::tensor::distributed::all_reduce` on CUDA only
//!   (flex, tch and ndarray declare no collectives; wgpu reaches cubecl's unimplemented
//!   transport), so accrue does not gather. Scale the batch with the replicas to keep the
//!   negatives: 4 replicas of a 128-clip run need `batch_size = 512`.
//! - **BatchNorm statistics are per replica** (no SyncBN). The running statistics become the
//!   mean of the replicas' updates: Burn's `RunningState` keeps one value per thread, and they
//!   are averaged after every step.
//!
//! Replicas on the same device (several handles of the one CPU device, as in the tests) take
//! turns under a per-device lock, and each re-seeds the device RNG from its own seed inside
//! it, so dropout draws do not depend on thread timing; replicas on distinct devices run
//! concurrently. Validation runs on the main device only.

use std::sync::Mutex;

use accrue_losses::TermValue;
use burn::module::Module;
use burn::optim::GradientsAccumulator;
use burn::tensor::Device;

use crate::error::{ContinualError, Result};
use crate::model::Trainable;
use crate::step::{ComputedStep, StepCounters, TaskBatch, check_gradients, compute_step_scaled};
use crate::strategy::{StageInfo, Strategy};

/// Replicas of one stage's step on a list of devices; the first is the main device (the
/// optimiser, validation and checkpoints live there).
pub struct DataParallel<S> {
    /// Autodiff devices, one per replica.
    devices: Vec<Device>,
    /// Replica → index of its (physical) device, for the per-device turn.
    group: Vec<usize>,
    /// One lock per physical device.
    locks: Vec<Mutex<()>>,
    /// Replica → the strategy forked onto its device (`None`: on the main device, shared).
    forks: Vec<Option<S>>,
}

impl<S: Strategy + Sync> DataParallel<S>
where
    S::Aux: Send,
{
    /// Replicas on `devices` (autodiff devices; the first is the main one). Call after
    /// [`Strategy::begin_stage`]: replicas on other devices get [`Strategy::fork`] copies.
    ///
    /// # Errors
    /// No device, or a strategy that cannot fork onto another device.
    pub fn new(strategy: &S, devices: Vec<Device>) -> Result<Self> {
        let main = devices
            .first()
            .cloned()
            .ok_or_else(|| ContinualError::Config("data parallelism needs a device".into()))?;
        let mut distinct: Vec<Device> = Vec::new();
        let mut group = Vec::with_capacity(devices.len());
        let mut forks = Vec::with_capacity(devices.len());
        for d in &devices {
            let g = match distinct.iter().position(|x| x == d) {
                Some(g) => g,
                None => {
                    distinct.push(d.clone());
                    distinct.len() - 1
                }
            };
            group.push(g);
            forks.push(if *d == main {
                None
            } else {
                Some(strategy.fork(d)?)
            });
        }
        Ok(Self {
            locks: distinct.iter().map(|_| Mutex::new(())).collect(),
            devices,
            group,
            forks,
        })
    }

    /// Number of replicas.
    pub fn replicas(&self) -> usize {
        self.devices.len()
    }

    /// The main device.
    pub fn main_device(&self) -> &Device {
        &self.devices[0]
    }

    /// One step's gradients from all replicas, summed on the main device, with the terms and
    /// the total averaged over the replicas (weighted by shard size). `seed(r)` seeds replica
    /// `r`'s device RNG. Nothing is applied: the caller runs the optimiser.
    ///
    /// Every parameter of `model` should be initialised
    /// ([`crate::step::initialize_params`]): a lazily initialised one would otherwise take its
    /// values from the RNG of whichever replica touches it first.
    ///
    /// # Errors
    /// The first failing replica's error, in replica order (a non-finite term keeps its
    /// [`accrue_losses::LossError::NonFinite`]), a non-finite summed gradient, or a replica that
    /// panicked.
    pub fn compute_step(
        &self,
        strategy: &S,
        stage: &StageInfo,
        model: &Trainable<S::Aux>,
        batches: &[TaskBatch],
        counters: &mut StepCounters,
        seed: impl Fn(usize) -> u64,
    ) -> Result<ComputedStep> {
        let shortest = batches.iter().map(TaskBatch::len).min().unwrap_or(0);
        let n = self.replicas().min(shortest).max(1);
        let full = batches.first().map_or(1, TaskBatch::len).max(1);
        let mut jobs = Vec::with_capacity(n);
        for r in 0..n {
            let device = self.devices[r].clone();
            let plain = device.clone().inner();
            let shard: Vec<TaskBatch> = batches
                .iter()
                .map(|b| {
                    let (start, len) = shard_bounds(b.len(), n, r);
                    b.slice_to(start, len, &plain)
                })
                .collect();
            let weight = shard.first().map_or(0, TaskBatch::len) as f64 / full as f64;
            jobs.push((r, device, shard, weight, seed(r), model.clone()));
        }
        let results: Vec<Result<(ComputedStep, StepCounters, f64)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(r, device, shard, weight, seed, replica)| {
                    let lock = &self.locks[self.group[r]];
                    let strategy = self.forks[r].as_ref().unwrap_or(strategy);
                    scope.spawn(move || {
                        let _turn = lock.lock().unwrap_or_else(|e| e.into_inner());
                        device.seed(seed);
                        let replica = replica.fork(&device);
                        let mut c = StepCounters::default();
                        compute_step_scaled(strategy, stage, &replica, &shard, &mut c, weight)
                            .map(|s| (s, c, weight))
                    })
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(r, h)| {
                    h.join().unwrap_or_else(|_| {
                        Err(ContinualError::Config(format!(
                            "data-parallel replica {r} panicked"
                        )))
                    })
                })
                .collect()
        });
        let main = self.main_device();
        let mut acc = GradientsAccumulator::<Trainable<S::Aux>>::new();
        let (mut total, mut terms) = (0.0, Vec::<TermValue>::new());
        for result in results {
            let (step, c, weight) = result?;
            counters.student_forwards += c.student_forwards;
            counters.teacher_forwards += c.teacher_forwards;
            acc.accumulate(model, step.grads.to_device(main, model));
            total += weight * step.total;
            if terms.is_empty() {
                terms = step
                    .terms
                    .iter()
                    .map(|t| TermValue {
                        value: weight * t.value,
                        ..t.clone()
                    })
                    .collect();
            } else {
                for (acc_t, t) in terms.iter_mut().zip(&step.terms) {
                    acc_t.value += weight * t.value;
                }
            }
        }
        let grads = acc.grads();
        check_gradients(model, &grads)?;
        // Average the BatchNorm running statistics the replicas wrote from their threads
        // (`valid()` syncs Burn's per-thread running state; the copy itself is dropped).
        drop(model.valid());
        Ok(ComputedStep {
            grads,
            terms,
            total,
        })
    }
}

/// `(start, len)` of shard `r` of `n` over `len` clips: contiguous, sizes differing by at most
/// one (the first `len % n` shards are one clip longer).
pub fn shard_bounds(len: usize, n: usize, r: usize) -> (usize, usize) {
    let n = n.max(1);
    let (base, extra) = (len / n, len % n);
    (r * base + r.min(extra), base + usize::from(r < extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskKind;
    use crate::step::compute_step;
    use crate::strategies::{FineTune, Lwf};
    use crate::testing::{synthetic_batch, tiny_head_config, tiny_student};
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Tensor;

    #[test]
    fn shards_cover_the_batch_in_order() {
        for (len, n) in [(8, 2), (9, 2), (7, 3), (2, 2), (5, 1)] {
            let mut next = 0;
            for r in 0..n {
                let (start, l) = shard_bounds(len, n, r);
                assert_eq!(start, next, "len {len} n {n} r {r}");
                assert!(l == len / n || l == len / n + 1);
                next = start + l;
            }
            assert_eq!(next, len);
        }
    }

    /// Every gradient of `a` and `b`, pairwise: max |a − b| and max |a|.
    fn grad_diff<M: Module>(
        model: &M,
        a: &burn::optim::GradientsParams,
        b: &burn::optim::GradientsParams,
    ) -> (f64, f64, usize) {
        struct V<'a> {
            a: &'a burn::optim::GradientsParams,
            b: &'a burn::optim::GradientsParams,
            diff: f64,
            scale: f64,
            n: usize,
        }
        impl ModuleVisitor for V<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                if let (Some(x), Some(y)) = (self.a.get::<D>(p.id), self.b.get::<D>(p.id)) {
                    let d: f64 = (x.clone() - y).abs().max().into_scalar::<f32>() as f64;
                    let s: f64 = x.abs().max().into_scalar::<f32>() as f64;
                    self.diff = self.diff.max(d);
                    self.scale = self.scale.max(s);
                    self.n += 1;
                }
            }
        }
        let mut v = V {
            a,
            b,
            diff: 0.0,
            scale: 0.0,
            n: 0,
        };
        model.visit(&mut v);
        (v.diff, v.scale, v.n)
    }

    /// Two replicas of a per-clip-mean loss give the full-batch gradient. Eval mode isolates
    /// the sharding and the gradient sum from BatchNorm's per-replica batch statistics (the
    /// one documented difference) and from dropout.
    #[test]
    fn two_cpu_replicas_sum_to_the_full_batch_gradient() {
        let device = Device::default().autodiff();
        device.seed(3);
        let student = tiny_student(&device);
        let stage = StageInfo::new(0, TaskKind::A, None, 0.3);
        let mut strategy = FineTune;
        strategy.begin_stage(&stage, &student, &device).unwrap();
        let model = Trainable {
            // Training flags off (BatchNorm on running statistics, no dropout), gradients on.
            student: student.freeze().set_require_grad(true),
            aux: crate::strategy::NoAux {},
        };
        let batch = synthetic_batch(TaskKind::A, &device);
        let one = compute_step(
            &strategy,
            &stage,
            &model,
            std::slice::from_ref(&batch),
            &mut StepCounters::default(),
        )
        .unwrap();
        let dp = DataParallel::new(&strategy, vec![device.clone(), device.clone()]).unwrap();
        let mut counters = StepCounters::default();
        let two = dp
            .compute_step(&strategy, &stage, &model, &[batch], &mut counters, |r| {
                r as u64
            })
            .unwrap();
        assert_eq!(counters.student_forwards, 2);
        let (diff, scale, n) = grad_diff(&model, &one.grads, &two.grads);
        assert!(n > 10, "{n} gradients compared");
        assert!(
            diff <= 1e-5 * scale.max(1.0),
            "max |Δg| {diff} (max |g| {scale})"
        );
        assert!(
            (one.total - two.total).abs() < 1e-5,
            "{} vs {}",
            one.total,
            two.total
        );
    }

    /// A forked strategy (its teacher copied to the replica's device) gives the original's terms.
    /// Determinism of training replicas under a seed is tested end to end by the two-replica
    /// kill-and-resume test (`tests/resume.rs`): Burn's device RNG is process-global, so it
    /// cannot be checked here among concurrently running unit tests.
    #[test]
    fn forked_strategy_gives_the_same_terms() {
        let device = Device::default().autodiff();
        let prev = TaskKind::AV;
        let student = tiny_student(&device)
            .ensure_head(prev, &tiny_head_config(), &device)
            .unwrap()
            .ensure_head(TaskKind::AT, &tiny_head_config(), &device)
            .unwrap();
        let stage = StageInfo::new(1, TaskKind::AT, Some(prev), 0.3);
        let mut lwf = Lwf::default();
        lwf.begin_stage(&stage, &student, &device).unwrap();
        let forked = lwf.fork(&device).unwrap();
        assert!(forked.teacher().is_some());
        let eval = Trainable {
            student,
            aux: crate::strategy::NoAux {},
        }
        .valid();
        let batch = synthetic_batch(TaskKind::AT, &device);
        let terms = |s: &Lwf| {
            crate::step::loss_terms(
                s,
                &stage,
                &eval,
                std::slice::from_ref(&batch),
                &mut StepCounters::default(),
            )
            .unwrap()
            .values()
        };
        let (a, b) = (terms(&lwf), terms(&forked));
        assert_eq!(a.len(), 2, "contrastive + distillation: {a:?}");
        assert_eq!(a, b);
    }

    /// A term that sums over rows (Mod-X) keeps its weight against the mean-reduced L_c
    /// whatever the replica count: over two replicas the reported distillation is the *sum* of
    /// the shards' (as one device's full-batch sum is), the contrastive term their mean.
    #[test]
    fn sum_reduced_terms_are_invariant_to_the_replica_count() {
        let device = Device::default().autodiff();
        let student = tiny_student(&device)
            .ensure_head(TaskKind::AV, &tiny_head_config(), &device)
            .unwrap();
        let stage = StageInfo::new(1, TaskKind::AV, Some(TaskKind::A), 0.3);
        let model = Trainable {
            student: student.freeze().set_require_grad(true),
            aux: crate::strategy::NoAux {},
        };
        // A teacher that differs from the student, and no alignment (which could zero rows),
        // so that the term is positive. Two random initialisations sometimes give both sides
        // near-uniform similarity rows, where the term is float noise (±1e-8, even negative):
        // such a draw tests nothing, so the teacher and batch are drawn again (at most 8
        // times) until the shards' terms sum above the 1e-7 asserted below.
        let mut draws = 0;
        let (modx, batch, a, b) = loop {
            draws += 1;
            let other = tiny_student(&device)
                .ensure_head(TaskKind::AV, &tiny_head_config(), &device)
                .unwrap();
            let mut modx = crate::strategies::ModX::new(crate::strategies::ModXOptions {
                alignment: false,
                ..Default::default()
            });
            modx.begin_stage(&stage, &other, &device).unwrap();
            let batch = synthetic_batch(TaskKind::AV, &device);
            let half = batch.len() / 2;
            // Each shard on its own, as a one-device batch of `half` clips.
            let alone = |start: usize| {
                let mut shard = batch.slice_to(start, half, &device.clone().inner());
                shard.meta.batch_size = half;
                let t = crate::step::loss_terms(
                    &modx,
                    &stage,
                    &model,
                    &[shard],
                    &mut StepCounters::default(),
                )
                .unwrap()
                .values();
                (t[0].value, t[1].value)
            };
            let (a, b) = (alone(0), alone(half));
            if a.1 + b.1 > 1e-7 || draws == 8 {
                break (modx, batch, a, b);
            }
        };
        let dp = DataParallel::new(&modx, vec![device.clone(), device.clone()]).unwrap();
        let two = dp
            .compute_step(
                &modx,
                &stage,
                &model,
                &[batch],
                &mut StepCounters::default(),
                |r| r as u64,
            )
            .unwrap();
        let names: Vec<&str> = two.terms.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["contrastive", "distillation"]);
        let (c, d) = (two.terms[0].value, two.terms[1].value);
        assert!(a.1 + b.1 > 1e-7, "{a:?} {b:?}");
        assert!(
            (c - 0.5 * (a.0 + b.0)).abs() < 1e-5,
            "L_c {c} vs {a:?} {b:?}"
        );
        assert!(
            (d - (a.1 + b.1)).abs() <= 1e-3 * (a.1 + b.1),
            "Mod-X {d}: the shards' sum is {}, without the scale it would be {}",
            a.1 + b.1,
            0.5 * (a.1 + b.1)
        );
    }
}
