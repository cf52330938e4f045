//! The task file of a job array, one line per task (0600, in the run's folder), the array's
//! script, which runs task `SLURM_ARRAY_TASK_ID` from its line, and its submission.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use super::array::NoTask;
use crate::environ::JobEnv;
use crate::exec::Stream;
use crate::exec::process::{FileDest, JobCtx, argv_for_slot, file_dest};
use crate::plan::{PlannedJob, SlurmOptions};

/// What a written task file holds: the tasks that are jobs (a fan's job not kept, or whose
/// item makes no job, has an inert line), and the first job, whose environment sbatch
/// exports to every task.
struct Written {
    pub(super) ids: Vec<usize>,
    pub(super) first: PlannedJob,
    pub(super) common: JobEnv,
}

/// An inert line: a task not in the array.
const NO_TASK: &str = "'' /dev/null w '' w -- true";

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
    // `{slot}` as the submitting job's slot, the one its ORCHESTRATE_SLOT says.
    words.extend(argv_for_slot(job, ctx.slot));
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

/// A folder of the run's folder (a capture file's), 0700 whatever the umask.
pub(super) fn private_dir(d: &Path) -> Result<(), String> {
    crate::sys::create_private_dir(d).map_err(|e| format!("cannot create {}: {e}", d.display()))
}

/// Writes the task file at `path` from `jobs` (task `k` is the `k`th item; `None` is no job)
/// as they come: a fan's jobs are made one at a time, never held together.
fn write_tasks(
    path: &Path,
    jobs: impl Iterator<Item = Option<PlannedJob>>,
    ctx: &JobCtx,
) -> Result<Written, String> {
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    // A file of the run's folder as a capture file is: 0600, never through a symlink.
    let file = crate::exec::process::open_capture(path).map_err(err)?;
    let mut w = std::io::BufWriter::new(file);
    let mut ids = Vec::new();
    let mut head: Option<(PlannedJob, JobEnv)> = None;
    for (k, j) in jobs.enumerate() {
        let Some(j) = j else {
            writeln!(w, "{NO_TASK}").map_err(err)?;
            continue;
        };
        let env = JobEnv::for_job(&j, &ctx.run_env, ctx.slot);
        let common = &head.get_or_insert_with(|| (j.clone(), env.clone())).1;
        let line = match task_line(&j, ctx, &env, common) {
            Ok(l) => l,
            Err(e) => {
                drop(w);
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        writeln!(w, "{line}").map_err(err)?;
        ids.push(k);
    }
    w.flush().map_err(err)?;
    let (first, common) = head.ok_or("no job to submit")?;
    Ok(Written { ids, first, common })
}

/// `0-3,5,7-9`: Slurm's list of array indices.
pub(super) fn ranges(ks: &[usize]) -> String {
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

/// Writes the task file of a group's jobs at `path` and submits their array; returns its id
/// and the tasks in it.
pub(super) async fn submit(
    path: &Path,
    jobs: impl Iterator<Item = Option<PlannedJob>>,
    ctx: &JobCtx,
    o: &SlurmOptions,
    throttle: Option<usize>,
) -> Result<(String, Vec<usize>), NoTask> {
    let Written { ids, first, common } = write_tasks(path, jobs, ctx).map_err(NoTask::Alone)?;
    let top = ids.last().map_or(0, |&k| k + 1);
    if let Err((never, why)) = super::limits::limits().await.check(ids.len(), top) {
        let _ = std::fs::remove_file(path);
        return Err(if never {
            NoTask::Refused(why)
        } else {
            NoTask::Alone(why)
        });
    }
    let base = first.name.split('[').next().unwrap_or(&first.name);
    let spec = ranges(&ids);
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable")
        .arg(format!("--job-name={base}"))
        .arg(match throttle {
            Some(t) => format!("--array={spec}%{t}"),
            None => format!("--array={spec}"),
        })
        // Each task sends its streams where its line says; the array's own go nowhere (never
        // Slurm's default slurm-%A_%a.out in the submitting directory).
        .args(["--output=/dev/null", "--error=/dev/null"])
        .args(o.args())
        .arg(format!("--wrap={}", script(path)));
    if first.env_clear {
        cmd.env_clear();
    }
    common.apply(&mut cmd);
    match super::sbatch::submit(cmd).await {
        Ok(id) => Ok((id, ids)),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(NoTask::Refused(e))
        }
    }
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
