//! The background Slurm jobs of one fan-out as one job array (`sbatch --array=0-N[%J]`): the
//! first of them to be dispatched submits the array for all (a task file of one line per job
//! in the run's folder, read by the array's script on the node), and each job, when its turn
//! comes, takes its task (`ARRAY_TASK`) and goes on as a batch job of its own would.
//!
//! Why the first job submits for all rather than gathering jobs dispatched close together: a
//! background job holds its slot until its record is made (at once without `wait: true`, to its
//! end with it), so a gathering would make arrays of at most the run's concurrency. Why `%J`
//! only with `wait: true`: then the run holds at most J of them at once (each waits for its
//! end in a slot), and the throttle keeps Slurm to the same bound; without it the run leaves
//! every job to Slurm at once, as plain batch jobs are.
//!
//! What the task file holds is no secret: a line that would hold a secret value makes the group
//! go as plain batch jobs (their environment then reaches them through sbatch's export, as a
//! single job's does). The variables every job shares reach the tasks the same way: the task
//! line holds only those that differ from the submitting job's.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use tokio::sync::OnceCell;

use crate::environ::JobEnv;
use crate::exec::Stream;
use crate::exec::process::{FileDest, JobCtx, file_dest};
use crate::plan::{Executor, PlannedJob, SlurmOptions};

/// Tasks in one array at most: Slurm's default `MaxArraySize` (1001) allows indices 0..=1000.
const MAX_TASKS: usize = 1000;

/// The arrays of a run: its background Slurm jobs grouped by entry and settings.
#[derive(Default)]
pub struct Arrays {
    /// The group and the task of each grouped job, by plan index.
    of_job: HashMap<usize, (usize, usize)>,
    groups: Vec<Group>,
}

struct Group {
    /// Its jobs in task order, until the array is submitted.
    jobs: Mutex<Vec<PlannedJob>>,
    len: usize,
    /// `%J`: at most this many tasks run at once.
    throttle: Option<usize>,
    /// The array's job id, or why there is none (its jobs then go as plain batch jobs).
    submitted: OnceCell<Result<String, NoTask>>,
    /// The tasks whose job took them; the others are cancelled when the run ends.
    claimed: Mutex<Vec<bool>>,
    /// The whole array was cancelled (the run was stopped).
    cancelled: Mutex<bool>,
}

/// Why a job of a group has no task.
#[derive(Debug, Clone)]
pub enum NoTask {
    /// The group cannot be an array (a task line would hold a secret, the task file cannot
    /// be written): its jobs go as plain batch jobs.
    Alone(String),
    /// Slurm refused the array (sbatch's words): every job of the group fails with them,
    /// rather than each asking again on its own (a full controller refuses them all).
    Refused(String),
}

/// A job's task of its array.
pub struct Task {
    /// The array's own id (cancelling it cancels every task).
    pub array: String,
    /// `ARRAY_TASK`, the job's Slurm id.
    pub id: String,
    pub index: usize,
    pub of: usize,
}

impl Arrays {
    /// The groups among `jobs` (background, `executor: slurm`, the same entry and settings,
    /// more than one job), split at `MAX_TASKS`. `throttle` gives a job's `%J`, if any.
    pub fn of<'a>(
        jobs: impl Iterator<Item = &'a PlannedJob>,
        throttle: impl Fn(&PlannedJob) -> Option<usize>,
    ) -> Arrays {
        let mut by_key: Vec<((usize, SlurmOptions), Vec<PlannedJob>)> = Vec::new();
        let mut at: HashMap<usize, Vec<usize>> = HashMap::new();
        for j in jobs.filter(|j| j.background) {
            let Executor::Slurm(o) = &j.executor else {
                continue;
            };
            let known = at.entry(j.entry).or_default();
            match known.iter().find(|&&g| by_key[g].0.1 == *o) {
                Some(&g) => by_key[g].1.push(j.clone()),
                None => {
                    known.push(by_key.len());
                    by_key.push(((j.entry, o.clone()), vec![j.clone()]));
                }
            }
        }
        let mut arrays = Arrays::default();
        for (_, jobs) in by_key.into_iter().filter(|(_, j)| j.len() > 1) {
            let mut rest = jobs;
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(MAX_TASKS));
                let chunk = std::mem::replace(&mut rest, tail);
                let g = arrays.groups.len();
                for (k, j) in chunk.iter().enumerate() {
                    arrays.of_job.insert(j.index, (g, k));
                }
                arrays.groups.push(Group {
                    len: chunk.len(),
                    throttle: throttle(&chunk[0]),
                    jobs: Mutex::new(chunk),
                    submitted: OnceCell::new(),
                    claimed: Mutex::new(Vec::new()),
                    cancelled: Mutex::new(false),
                });
            }
        }
        arrays
    }

    /// Whether `job` goes as a task of an array.
    pub fn holds(&self, job: &PlannedJob) -> bool {
        self.of_job.contains_key(&job.index)
    }

    /// `job`'s task: the array is submitted first if no job of its group did it yet. `Err`
    /// says why the group has no array.
    pub async fn task(
        &self,
        job: &PlannedJob,
        ctx: &JobCtx,
        o: &SlurmOptions,
    ) -> Result<Task, NoTask> {
        let &(g, k) = self
            .of_job
            .get(&job.index)
            .ok_or_else(|| NoTask::Alone("not in an array".into()))?;
        let group = &self.groups[g];
        let got = group
            .submitted
            .get_or_init(|| async {
                let jobs = std::mem::take(&mut *lock(&group.jobs));
                let out = submit(&jobs, ctx, o, group.throttle).await;
                if out.is_ok() {
                    *lock(&group.claimed) = vec![false; group.len];
                }
                out
            })
            .await;
        let array = got.clone()?;
        if let Some(c) = lock(&group.claimed).get_mut(k) {
            *c = true;
        }
        Ok(Task {
            id: format!("{array}_{k}"),
            array,
            index: k,
            of: group.len,
        })
    }

    /// The run was stopped: the whole array of `task` is cancelled, in one `scancel` with the
    /// other jobs stopped together.
    pub fn cancel(&self, job: &PlannedJob, task: &Task) {
        if let Some(&(g, _)) = self.of_job.get(&job.index) {
            *lock(&self.groups[g].cancelled) = true;
        }
        tokio::spawn(super::scancel::cancel(task.array.clone()));
    }

    /// Cancels the tasks no job took (the run ended before it dispatched them: a halt, an
    /// interrupt), in one `scancel` for all arrays.
    pub async fn close(&self) {
        let mut ids = Vec::new();
        for g in &self.groups {
            let Some(Ok(array)) = g.submitted.get() else {
                continue;
            };
            if *lock(&g.cancelled) {
                continue;
            }
            let claimed = lock(&g.claimed);
            let left: Vec<usize> = (0..claimed.len()).filter(|&k| !claimed[k]).collect();
            if !left.is_empty() {
                ids.push(format!("{array}_[{}]", ranges(&left)));
            }
        }
        if !ids.is_empty() {
            let mut cmd = Command::new("scancel");
            cmd.args(&ids);
            crate::exec::process::run_stop_command(cmd).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `0-3,5,7-9`: Slurm's list of array indices.
fn ranges(ks: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ks.len() {
        let mut j = i;
        while j + 1 < ks.len() && ks[j + 1] == ks[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            ks[i].to_string()
        } else {
            format!("{}-{}", ks[i], ks[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// The array's script: task `SLURM_ARRAY_TASK_ID` reads its line of the task file (cwd,
/// stdout, its mode, stderr (empty: into stdout), its mode, `NAME=value`..., `--`, argv).
fn script(tasks: &Path) -> String {
    let file = shell_words::quote(&tasks.to_string_lossy()).into_owned();
    format!(
        "set -f; line=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {file}) || exit 127; \
         eval \"set -- $line\"; \
         if [ -n \"$1\" ]; then cd -- \"$1\" || exit 1; fi; \
         if [ \"$3\" = a ]; then exec >>\"$2\"; else exec >\"$2\"; fi; \
         if [ -z \"$4\" ]; then exec 2>&1; elif [ \"$5\" = a ]; then exec 2>>\"$4\"; else exec 2>\"$4\"; fi; \
         shift 5; while [ \"$1\" != -- ]; do export \"$1\"; shift; done; shift; exec \"$@\""
    )
}

/// The task line of `job`: its words, shell-quoted. `common` is the submitting job's
/// environment, which sbatch exports to every task.
fn task_line(
    job: &PlannedJob,
    ctx: &JobCtx,
    env: &JobEnv,
    common: &JobEnv,
) -> Result<String, String> {
    let mut words: Vec<String> = vec![
        job.cwd
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    ];
    for stream in [Stream::Stdout, Stream::Stderr] {
        let (path, append) = match file_dest(job, &ctx.capture, stream) {
            FileDest::SameAsStdout => (String::new(), false),
            FileDest::Null => ("/dev/null".to_string(), false),
            FileDest::Capture(p) => {
                if let Some(d) = p.parent() {
                    private_dir(d)?;
                }
                (p.display().to_string(), false)
            }
            FileDest::File { path, append } => (path.display().to_string(), append),
        };
        words.push(path);
        words.push(if append { "a" } else { "w" }.to_string());
    }
    for (k, v) in &env.vars {
        if !common.vars.iter().any(|(ck, cv)| ck == k && cv == v) {
            words.push(format!("{k}={v}"));
        }
    }
    words.push("--".to_string());
    words.extend(job.argv.iter().cloned());
    let line = shell_words::join(words.iter().map(String::as_str));
    let secret = ctx
        .secrets
        .values()
        .iter()
        .any(|s| !s.is_empty() && line.contains(s.as_str()));
    if secret || line.contains('\n') {
        return Err("a job's task line would hold a secret value or a line break".into());
    }
    Ok(line)
}

fn private_dir(d: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .map_err(|e| format!("cannot create {}: {e}", d.display()))
}

/// Writes the task file of `jobs` (0600, in the run's folder) and submits their array.
async fn submit(
    jobs: &[PlannedJob],
    ctx: &JobCtx,
    o: &SlurmOptions,
    throttle: Option<usize>,
) -> Result<String, NoTask> {
    let first = jobs
        .first()
        .ok_or_else(|| NoTask::Alone("an empty array".into()))?;
    let common = JobEnv::for_job(first, &ctx.run_env, ctx.slot);
    let path = ctx
        .capture
        .0
        .join(format!(".slurm-array-{}.tasks", first.index));
    write_tasks(&path, jobs, ctx, &common).map_err(NoTask::Alone)?;
    let base = first.name.split('[').next().unwrap_or(&first.name);
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable")
        .arg(format!("--job-name={base}"))
        .arg(match throttle {
            Some(t) => format!("--array=0-{}%{t}", jobs.len() - 1),
            None => format!("--array=0-{}", jobs.len() - 1),
        })
        // Each task sends its streams where its line says; the array's own go nowhere (never
        // Slurm's default slurm-%A_%a.out in the submitting directory).
        .args(["--output=/dev/null", "--error=/dev/null"])
        .args(o.args())
        .arg(format!("--wrap={}", script(&path)));
    if first.env_clear {
        cmd.env_clear();
    }
    common.apply(&mut cmd);
    let out = super::sbatch::submit(cmd).await;
    if out.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    out.map_err(NoTask::Refused)
}

fn write_tasks(
    path: &Path,
    jobs: &[PlannedJob],
    ctx: &JobCtx,
    common: &JobEnv,
) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    private_dir(path.parent().unwrap_or(Path::new(".")))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        // Nothing in the state dir is opened through a symlink.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(err)?;
    let mut w = std::io::BufWriter::new(file);
    for j in jobs {
        let env = JobEnv::for_job(j, &ctx.run_env, ctx.slot);
        let line = match task_line(j, ctx, &env, common) {
            Ok(l) => l,
            Err(e) => {
                drop(w);
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        writeln!(w, "{line}").map_err(err)?;
    }
    w.flush().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists() {
        assert_eq!(ranges(&[0, 1, 2, 3, 5, 7, 8, 9]), "0-3,5,7-9");
        assert_eq!(ranges(&[4]), "4");
    }
}
