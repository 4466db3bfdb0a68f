//! The experiment grid: which runs, their experiment files, and running them (in this
//! process or as parallel `accrue demo-job` children).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accrue_continual::{ExperimentConfig, RunDir, TaskKind};
use serde::{Deserialize, Serialize};

use super::evaluate::{DataPaths, EvalContext, evaluate_stage_model};
use super::{DemoOptions, Settings};
use accrue_suite::{Error, Result};

/// A continual-learning method of the sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Sequential fine-tuning (λ = 0; the no-CL lower bound).
    Finetune,
    /// Learning without Forgetting.
    Lwf,
    /// CaSSLe (predictor-mapped distillation).
    Cassle,
    /// Mod-X (cognition-aligned similarity distillation).
    Modx,
    /// Experience replay of task A's (and AV's) clips (not in the paper; `accrue-methods`).
    Replay,
    /// WiSE-FT weight interpolation at stage ends (not in the paper; `accrue-methods`).
    WiseFt,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 6] = [
        Method::Finetune,
        Method::Lwf,
        Method::Cassle,
        Method::Modx,
        Method::Replay,
        Method::WiseFt,
    ];

    /// The paper's methods.
    pub const PAPER: [Method; 4] = [Method::Finetune, Method::Lwf, Method::Cassle, Method::Modx];

    /// Short name (file names, `--methods`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Finetune => "finetune",
            Method::Lwf => "lwf",
            Method::Cassle => "cassle",
            Method::Modx => "modx",
            Method::Replay => "replay",
            Method::WiseFt => "wise_ft",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<Method> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Table label.
    pub fn label(self) -> &'static str {
        match self {
            Method::Finetune => "Fine-tuning",
            Method::Lwf => "LwF",
            Method::Cassle => "CaSSLe",
            Method::Modx => "Mod-X",
            Method::Replay => "Replay",
            Method::WiseFt => "WiSE-FT",
        }
    }

    fn strategy_toml(self) -> &'static str {
        match self {
            Method::Finetune => r#"{ kind = "finetune" }"#,
            Method::Lwf => r#"{ kind = "lwf", temperature = 2.0 }"#,
            Method::Cassle => r#"{ kind = "cassle", hidden = 256 }"#,
            Method::Modx => r#"{ kind = "modx", alignment = true }"#,
            Method::Replay => r#"{ kind = "replay", capacity = 64, batch_size = 8 }"#,
            Method::WiseFt => r#"{ kind = "wise_ft", alpha = 0.5 }"#,
        }
    }
}

/// The task sequence of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sequence {
    /// Stage A only (the shared starting point of every other run of a seed).
    A,
    /// A → AT.
    AAt,
    /// A → AV → AT.
    AAvAt,
    /// MT-WC: one joint AV + AT stage after A.
    MtWc,
    /// Wav2CLIP as the paper runs it after A → AV → AT: the fine-tuning run's AV model, then
    /// the encoder frozen and only an adapter (g^AT) trained on AT.
    Wav2Clip,
    /// A → AT → AV: the other task order (not in the paper).
    AAtAv,
    /// The joint upper bound (not in the paper): from A's model, one stage on A, AV and AT
    /// together (each step a batch of each task, `L = L_A + L_c^AV + L_c^AT`), as many epochs
    /// as the sequences' AV and AT stages together.
    Joint,
}

/// One run of the grid, self-contained so that a child process can execute it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Run name, e.g. `a-av-at-lwf`.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// Task sequence.
    pub sequence: Sequence,
    /// Method (`None` for stage A and MT-WC).
    pub method: Option<Method>,
    /// Run directory (experiment file, checkpoints, stage models, scores, log).
    pub dir: PathBuf,
    /// Directory of the job that must finish first (the shared stage-A run).
    pub depends_on: Option<PathBuf>,
    /// Stage names with the tasks each trains (`A` is stage 0 of the A run only).
    pub stages: Vec<(String, Vec<TaskKind>)>,
    /// What the evaluation reads.
    pub eval: EvalContext,
}

impl Job {
    /// The experiment file.
    pub fn experiment(&self) -> PathBuf {
        RunDir::new(&self.dir).experiment()
    }

    /// The stage models, in stage order.
    pub fn stage_models(&self) -> Vec<PathBuf> {
        self.stages
            .iter()
            .enumerate()
            .map(|(i, (name, _))| RunDir::new(&self.dir).stage_model(i, name))
            .collect()
    }

    /// Where the scores of a stage model are cached.
    pub fn scores_path(model: &Path) -> PathBuf {
        model.with_extension("scores.json")
    }
}

/// Seed of the shared task-A run.
pub const A_SEED: u64 = 0;

fn q(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).unwrap_or_else(|_| "\"\"".into())
}

#[allow(clippy::too_many_arguments)]
fn stage_toml(
    name: &str,
    strategy: &str,
    lambda: f64,
    epochs: usize,
    lr: f64,
    seed: u64,
    settings: &Settings,
    tasks: &[(TaskKind, &Path, Option<&Path>)],
) -> String {
    let mut s = format!(
        "\n[[stages]]\nname = \"{name}\"\nstrategy = {strategy}\nlambda = {lambda}\n\
         epochs = {epochs}\nbatch_size = {}\ncrop_seconds = 1.0\nseed = {seed}\n",
        settings.batch_size
    );
    if let Some(p) = settings.patience {
        s += &format!("patience = {p}\n");
    }
    s += &format!("[stages.optimizer]\nlr = {lr:e}\n");
    for (kind, manifest, table) in tasks {
        s += &format!(
            "[[stages.tasks]]\nkind = \"{kind}\"\nmanifest = {}\nsplit = \"train\"\n",
            q(manifest)
        );
        if settings.patience.is_some() {
            s += "valid_split = \"valid\"\n";
        }
        if let Some(t) = table {
            s += &format!("supervision = {}\n", q(t));
        }
    }
    s
}

/// Plans the grid and writes each run's experiment file (a run whose file changed is
/// started afresh; an unchanged one is resumed or skipped).
///
/// # Errors
/// I/O errors, or an experiment file that does not validate.
pub fn plan(opts: &DemoOptions, settings: &Settings, data: &DataPaths) -> Result<Vec<Job>> {
    let ctx = EvalContext::new(data, settings);
    let num_classes = ctx.classes.len();
    let mut jobs = Vec::new();
    let [ea, eav, eat] = settings.epochs;
    let [la, lav, lat] = settings.lr;
    // By default task A is trained once and shared by every seed, as the paper starts every
    // run from the one released PANNs checkpoint; the seeds vary the multi-modal stages. With
    // `a_per_seed` each seed trains its own task A (stage seed `seed·1000`, so seed 0's is the
    // shared one), and the intervals over seeds contain task A's variation too.
    let shared_a_dir = opts.out_dir.join("runs").join("a");
    let header = |name: &str, seed: u64, dir: &Path, from_a: Option<&Path>, replays: bool| {
        let mut h = format!(
            "# Written by `accrue demo`; edit the demo's settings, not this file.\n\
             name = \"{name}-seed{seed}\"\noutput_dir = {}\nsample_rate = 32000\n\n\
             [encoder]\npreset = \"{}\"\nnum_classes = {num_classes}\n",
            q(dir),
            settings.encoder
        );
        if let Some(a_final) = from_a {
            h += &format!("checkpoint = {}\ntrained_on = \"A\"\n", q(a_final));
        }
        if from_a.is_some() && replays {
            // Task A's clips, for the replaying method's memory (not trained on again).
            h += &format!(
                "[encoder.trained_on_data]\nkind = \"A\"\nmanifest = {}\nsplit = \"train\"\n",
                q(&data.task_a)
            );
        }
        h += &format!(
            "\n[head]\nhidden = {}\noutput = {}\noutput_av = {}\noutput_at = {}\n",
            settings.head_hidden, data.text_dim, data.image_dim, data.text_dim
        );
        h
    };
    let push_a = |jobs: &mut Vec<Job>, seed: u64, stage_seed: u64, dir: &Path| -> Result<()> {
        let text = header("a", seed, dir, None, false)
            + &stage_toml(
                "A",
                r#"{ kind = "finetune" }"#,
                0.0,
                ea,
                la,
                stage_seed,
                settings,
                &[(TaskKind::A, data.task_a.as_path(), None)],
            );
        write_experiment(dir, &text)?;
        jobs.push(Job {
            name: "a".into(),
            seed,
            sequence: Sequence::A,
            method: None,
            dir: dir.to_path_buf(),
            depends_on: None,
            stages: vec![("A".into(), vec![TaskKind::A])],
            eval: ctx.clone(),
        });
        Ok(())
    };
    if !opts.a_per_seed {
        push_a(&mut jobs, A_SEED, A_SEED, &shared_a_dir)?;
    }
    for &seed in &opts.seeds {
        let seed_dir = opts.out_dir.join("runs").join(format!("seed{seed}"));
        let av = (
            TaskKind::AV,
            data.task_av.as_path(),
            Some(data.image_table.as_path()),
        );
        let at = (
            TaskKind::AT,
            data.task_at.as_path(),
            Some(data.text_table.as_path()),
        );
        let stage_seed = |k: u64| seed * 1000 + k;
        let a_dir = if opts.a_per_seed {
            let dir = seed_dir.join("a");
            push_a(&mut jobs, seed, stage_seed(0), &dir)?;
            dir
        } else {
            shared_a_dir.clone()
        };
        let a_final = a_dir.join("final.safetensors");
        let mut push = |name: &str,
                        sequence: Sequence,
                        method: Option<Method>,
                        text: String,
                        stages: Vec<(String, Vec<TaskKind>)>,
                        depends_on: &Path|
         -> Result<()> {
            let dir = seed_dir.join(name);
            write_experiment(&dir, &text)?;
            jobs.push(Job {
                name: name.to_string(),
                seed,
                sequence,
                method,
                dir,
                depends_on: Some(depends_on.to_path_buf()),
                stages,
                eval: ctx.clone(),
            });
            Ok(())
        };
        for &m in &opts.methods {
            let lambda = if m == Method::Finetune {
                0.0
            } else {
                settings.lambda
            };
            // The AT stage is the same text in A → AT and A → AV → AT.
            let at_stage = stage_toml(
                "AT",
                m.strategy_toml(),
                lambda,
                eat,
                lat,
                stage_seed(2),
                settings,
                &[at],
            );
            let name = format!("a-at-{}", m.name());
            let dir = seed_dir.join(&name);
            let text = header(&name, seed, &dir, Some(&a_final), m == Method::Replay) + &at_stage;
            push(
                &name,
                Sequence::AAt,
                Some(m),
                text,
                vec![("AT".into(), vec![TaskKind::AT])],
                &a_dir,
            )?;
            // So is the AV stage in A → AV → AT and A → AT → AV.
            let av_stage = stage_toml(
                "AV",
                m.strategy_toml(),
                lambda,
                eav,
                lav,
                stage_seed(1),
                settings,
                &[av],
            );
            let name = format!("a-av-at-{}", m.name());
            let dir = seed_dir.join(&name);
            let text = header(&name, seed, &dir, Some(&a_final), m == Method::Replay)
                + &av_stage
                + &at_stage;
            push(
                &name,
                Sequence::AAvAt,
                Some(m),
                text,
                vec![
                    ("AV".into(), vec![TaskKind::AV]),
                    ("AT".into(), vec![TaskKind::AT]),
                ],
                &a_dir,
            )?;
            if opts.more_sequences {
                // The other order: each stage keeps its own length, learning rate and seed.
                let name = format!("a-at-av-{}", m.name());
                let dir = seed_dir.join(&name);
                let text = header(&name, seed, &dir, Some(&a_final), m == Method::Replay)
                    + &at_stage
                    + &av_stage;
                push(
                    &name,
                    Sequence::AAtAv,
                    Some(m),
                    text,
                    vec![
                        ("AT".into(), vec![TaskKind::AT]),
                        ("AV".into(), vec![TaskKind::AV]),
                    ],
                    &a_dir,
                )?;
            }
        }
        if opts.methods.contains(&Method::Finetune) {
            // Wav2CLIP's text columns (the paper): the fine-tuning run's AV stage model, frozen,
            // with an adapter g^AT trained on AT (`frozen_adapter`). Its AV stage is that run's.
            let ft_dir = seed_dir.join(format!("a-av-at-{}", Method::Finetune.name()));
            let av_model = RunDir::new(&ft_dir).stage_model(0, "AV");
            let name = "a-av-at-wav2clip";
            let dir = seed_dir.join(name);
            let mut text = header(name, seed, &dir, None, false);
            let at_head = text.find("\n[head]").unwrap_or(text.len());
            text.insert_str(
                at_head,
                &format!("checkpoint = {}\ntrained_on = \"AV\"\n", q(&av_model)),
            );
            text += &stage_toml(
                "AT",
                r#"{ kind = "frozen_adapter" }"#,
                0.0,
                eat,
                lat,
                stage_seed(2),
                settings,
                &[at],
            );
            push(
                name,
                Sequence::Wav2Clip,
                None,
                text,
                vec![("AT".into(), vec![TaskKind::AT])],
                &ft_dir,
            )?;
        }
        let name = "mt-wc";
        let dir = seed_dir.join(name);
        // MT-WC on joint triplets, as the paper trains it on WavCaps: one batch of clips per
        // step, each with its images and its captions, both losses on it.
        let joint_av = (
            TaskKind::AV,
            data.task_avt.as_path(),
            Some(data.image_table.as_path()),
        );
        let joint_at = (
            TaskKind::AT,
            data.task_avt.as_path(),
            Some(data.text_table.as_path()),
        );
        let text = header(name, seed, &dir, Some(&a_final), false)
            + &stage_toml(
                "AV+AT",
                r#"{ kind = "multitask", weight_av = 0.5, weight_at = 0.5 }"#,
                0.0,
                eav.max(eat),
                lav,
                stage_seed(3),
                settings,
                &[joint_av, joint_at],
            )
            .replacen("[stages.optimizer]", "joint = true\n[stages.optimizer]", 1);
        push(
            name,
            Sequence::MtWc,
            None,
            text,
            vec![("AV+AT".into(), vec![TaskKind::AV, TaskKind::AT])],
            &a_dir,
        )?;
        if opts.more_sequences {
            // The joint upper bound: every task's data at once, task A's included, so nothing
            // is left to forget; the alternating multi-task form (a batch of each task per
            // step, summed with weight 1 each).
            let name = "joint";
            let dir = seed_dir.join(name);
            let a = (TaskKind::A, data.task_a.as_path(), None);
            let text = header(name, seed, &dir, Some(&a_final), false)
                + &stage_toml(
                    "A+AV+AT",
                    r#"{ kind = "multitask", weight_av = 1.0, weight_at = 1.0 }"#,
                    0.0,
                    eav + eat,
                    lav,
                    stage_seed(4),
                    settings,
                    &[a, av, at],
                );
            push(
                name,
                Sequence::Joint,
                None,
                text,
                vec![(
                    "A+AV+AT".into(),
                    vec![TaskKind::A, TaskKind::AV, TaskKind::AT],
                )],
                &a_dir,
            )?;
        }
    }
    Ok(jobs)
}

fn write_experiment(dir: &Path, text: &str) -> Result<()> {
    let path = dir.join("experiment.toml");
    if let Ok(old) = std::fs::read_to_string(&path) {
        if old == text {
            return Ok(());
        }
        tracing::info!(run = %dir.display(), "experiment changed: starting the run afresh");
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    accrue_core::atomic::write(&path, text.as_bytes())?;
    ExperimentConfig::load_with(&path, &accrue_methods::registry()?)?;
    Ok(())
}

fn is_done(job: &Job) -> bool {
    let suite = super::evaluate::suite(&job.eval).fingerprint();
    job.stage_models()
        .iter()
        .all(|m| scores_are_current(&Job::scores_path(m), &suite))
}

/// Whether cached scores exist and come from `suite` (a changed suite is re-evaluated).
fn scores_are_current(path: &Path, suite: &str) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<super::evaluate::StageScores>(&t).ok())
        .is_some_and(|s| s.suite.as_deref() == Some(suite))
}

/// Trains one job (resuming an interrupted run) and evaluates its stage models.
///
/// # Errors
/// Training or evaluation errors.
pub fn run_job(job: &Job, device: &burn::tensor::Device) -> Result<()> {
    if !RunDir::new(&job.dir).final_model().is_file() {
        let registry = accrue_methods::registry()?;
        let cfg = ExperimentConfig::load_with(&job.experiment(), &registry)?;
        accrue_continual::Experiment::new(cfg)
            .registry(registry)
            .devices(std::slice::from_ref(device))
            .run(true)?;
    }
    let suite = super::evaluate::suite(&job.eval).fingerprint();
    for model in job.stage_models() {
        let out = Job::scores_path(&model);
        if scores_are_current(&out, &suite) {
            continue;
        }
        let scores = evaluate_stage_model(&job.eval, &model, device)?;
        let text = serde_json::to_string_pretty(&scores)
            .map_err(|e| Error::Other(format!("scores: {e}")))?;
        accrue_core::atomic::write(&out, text.as_bytes())?;
    }
    Ok(())
}

impl Job {
    /// Relative cost for scheduling: per stage, its training (a teacher's forward adds half a
    /// student step) and the evaluation of its model. Only the order of the estimates matters.
    fn cost(&self) -> usize {
        let teacher = matches!(
            self.method,
            Some(Method::Lwf | Method::Cassle | Method::Modx)
        );
        let per_stage = if teacher { 5 } else { 4 } + 2;
        self.stages.len() * per_stage
    }
}

/// Runs every job, respecting dependencies: in this process when `opts.jobs == 1` or no
/// binary is given, else as up to `opts.jobs` single-threaded child processes.
///
/// # Errors
/// The first failing job (its log file is named).
pub fn run_jobs(opts: &DemoOptions, jobs: &[Job], device: &burn::tensor::Device) -> Result<()> {
    let total = jobs.len();
    let t0 = Instant::now();
    let mut done: Vec<bool> = jobs.iter().map(is_done).collect();
    let skipped = done.iter().filter(|d| **d).count();
    if skipped > 0 {
        tracing::info!(
            skipped,
            "runs already complete (remove the results folder to redo)"
        );
    }
    let ready = |i: usize, done: &[bool]| {
        let j = &jobs[i];
        j.depends_on
            .as_ref()
            .is_none_or(|dep| jobs.iter().zip(done).any(|(o, d)| *d && &o.dir == dep))
    };
    let report = |i: usize, n_done: usize| {
        let j = &jobs[i];
        let msg = format!(
            "[{n_done}/{total}] {} done ({:.0} s elapsed)",
            j.dir
                .strip_prefix(&opts.out_dir)
                .unwrap_or(&j.dir)
                .display(),
            t0.elapsed().as_secs_f64()
        );
        eprintln!("{msg}");
    };
    let exe = match (&opts.exe, opts.jobs) {
        (Some(exe), n) if n > 1 => exe.clone(),
        _ => {
            while let Some(i) = (0..total).find(|&i| !done[i] && ready(i, &done)) {
                run_job(&jobs[i], device)?;
                done[i] = true;
                report(i, done.iter().filter(|d| **d).count());
            }
            return check_all_done(jobs, &done);
        }
    };
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut started = vec![false; total];
    let mut failure: Option<Error> = None;
    loop {
        while failure.is_none() && running.len() < opts.jobs {
            // Longest first (ties in plan order), so the last runs to finish are short ones
            // and the slots stay busy to the end.
            let Some(i) = (0..total)
                .filter(|&i| !done[i] && !started[i] && ready(i, &done))
                .max_by_key(|&i| (jobs[i].cost(), std::cmp::Reverse(i)))
            else {
                break;
            };
            started[i] = true;
            // A job that runs alone (nothing else is ready, e.g. stage A) gets every slot's
            // thread; otherwise one thread per job (two single-threaded runs use 2 cores
            // better than one run on both: measured 1.4×).
            let others_ready =
                (0..total).any(|k| k != i && !done[k] && !started[k] && ready(k, &done));
            let threads = if running.is_empty() && !others_ready {
                opts.jobs
            } else {
                1
            };
            running.push((i, spawn(&exe, &jobs[i], &opts.backend, threads)?));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut k = 0;
        while k < running.len() {
            let status = running[k]
                .1
                .try_wait()
                .map_err(|e| Error::io(&jobs[running[k].0].dir, e))?;
            if let Some(status) = status {
                let (i, _) = running.remove(k);
                if status.success() {
                    done[i] = true;
                    report(i, done.iter().filter(|d| **d).count());
                } else if failure.is_none() {
                    failure = Some(Error::Run {
                        run: jobs[i].dir.display().to_string(),
                        detail: format!("{status}; see {}", jobs[i].dir.join("log.txt").display()),
                    });
                }
            } else {
                k += 1;
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    check_all_done(jobs, &done)
}

fn check_all_done(jobs: &[Job], done: &[bool]) -> Result<()> {
    match jobs.iter().zip(done).find(|(_, d)| !**d) {
        Some((j, _)) => Err(Error::Other(format!(
            "run {} could not start (its dependency did not finish)",
            j.dir.display()
        ))),
        None => Ok(()),
    }
}

fn spawn(exe: &Path, job: &Job, backend: &str, threads: usize) -> Result<Child> {
    let job_file = job.dir.join("job.json");
    let text =
        serde_json::to_string_pretty(job).map_err(|e| Error::Other(format!("job file: {e}")))?;
    accrue_core::atomic::write(&job_file, text.as_bytes())?;
    let log_path = job.dir.join("log.txt");
    let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
    let err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
    Command::new(exe)
        .arg("--backend")
        .arg(backend)
        .arg("demo-job")
        .arg(&job_file)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::io(exe, e))
}

#[cfg(test)]
mod tests {
    use super::{Method, Sequence, plan};
    use crate::evaluate::DataPaths;
    use crate::{DemoOptions, Profile};

    /// With `a_per_seed` every seed trains its own task A, and its sequences start from that
    /// model; without, one task A is shared. Seed 0's own task A is the shared one's experiment.
    #[test]
    fn task_a_per_seed_gives_each_seed_its_own_a_run() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| tmp.path().join(name);
        std::fs::write(
            p("classes.json"),
            r#"{"classes": [{"name": "piano", "images": []}, {"name": "flute", "images": []}]}"#,
        )
        .expect("classes");
        let data = DataPaths {
            task_a: p("task_a.jsonl"),
            task_av: p("task_av.jsonl"),
            task_at: p("task_at.jsonl"),
            task_avt: p("task_avt.jsonl"),
            test: p("test.jsonl"),
            shift: p("shift.jsonl"),
            tuxpaint: p("tuxpaint.jsonl"),
            classes: p("classes.json"),
            text_table: p("text.json"),
            image_table: p("image.json"),
            text_dim: 384,
            image_dim: 1280,
            towers: p("towers.json"),
            suite: Vec::new(),
        };
        let planned = |per_seed: bool, out: &str| {
            let mut opts = DemoOptions::new(Profile::Quick);
            opts.out_dir = tmp.path().join(out);
            opts.seeds = vec![0, 1];
            opts.methods = vec![Method::Finetune];
            opts.a_per_seed = per_seed;
            let settings = opts.profile.settings();
            (plan(&opts, &settings, &data).expect("plan"), opts.out_dir)
        };
        let (shared, shared_out) = planned(false, "shared");
        let a: Vec<_> = shared
            .iter()
            .filter(|j| j.sequence == Sequence::A)
            .collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].dir, shared_out.join("runs/a"));
        assert!(
            shared
                .iter()
                .filter(|j| j.sequence == Sequence::AAt)
                .all(|j| j.depends_on.as_deref() == Some(a[0].dir.as_path()))
        );

        let (own, own_out) = planned(true, "own");
        let a: Vec<_> = own.iter().filter(|j| j.sequence == Sequence::A).collect();
        assert_eq!(a.len(), 2);
        for (seed, job) in [0u64, 1].iter().zip(&a) {
            let seed_dir = own_out.join(format!("runs/seed{seed}"));
            assert_eq!(job.dir, seed_dir.join("a"));
            for run in own
                .iter()
                .filter(|j| j.seed == *seed && j.sequence == Sequence::AAt)
            {
                assert_eq!(run.depends_on.as_deref(), Some(job.dir.as_path()));
                let text = std::fs::read_to_string(run.experiment()).expect("experiment");
                let checkpoint =
                    serde_json::to_string(&job.dir.join("final.safetensors").to_string_lossy())
                        .expect("quote");
                assert!(text.contains(&checkpoint), "{text}");
            }
        }
        let experiment = |dir: &std::path::Path, out: &std::path::Path| {
            let text = std::fs::read_to_string(dir.join("experiment.toml")).expect("experiment");
            let quoted = serde_json::to_string(&out.to_string_lossy()).expect("quote");
            text.replace(quoted.trim_matches('"'), "<out>")
        };
        let shared_a = experiment(&shared_out.join("runs/a"), &shared_out.join("runs/a"));
        let own_a0 = experiment(&a[0].dir, &a[0].dir);
        assert_eq!(shared_a, own_a0, "seed 0's task A is the shared one");
        assert_ne!(
            own_a0,
            experiment(&a[1].dir, &a[1].dir),
            "seed 1's task A has its own seed"
        );
    }

    use super::scores_are_current;
    use accrue_suite::suite::StageScores;

    #[test]
    fn cached_scores_of_another_suite_are_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0-A.scores.json");
        assert!(!scores_are_current(&path, "sha256:aa"), "missing file");
        let write = |suite: Option<&str>| {
            let s = StageScores {
                model: dir.path().join("0-A.safetensors"),
                scores: Vec::new(),
                seconds: 1.0,
                suite: suite.map(str::to_string),
            };
            std::fs::write(&path, serde_json::to_string(&s).expect("json")).expect("write");
        };
        write(Some("sha256:aa"));
        assert!(scores_are_current(&path, "sha256:aa"));
        assert!(!scores_are_current(&path, "sha256:bb"), "another suite");
        write(None);
        assert!(
            !scores_are_current(&path, "sha256:aa"),
            "scores from before the fingerprint"
        );
        std::fs::write(&path, "{ truncated").expect("write");
        assert!(!scores_are_current(&path, "sha256:aa"), "a corrupt cache");
    }
}
