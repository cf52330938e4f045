//! The Slurm allocations a run's jobs share: the jobs with the same Slurm settings run as steps
//! of one Slurm job (`salloc`), not as a Slurm job each, so the controller holds one job for
//! them and is asked about a step per job, not a whole job.
//!
//! The allocation lives exactly as long as the run's process. `salloc` runs a holder command
//! here that prints the allocation's id and then reads its stdin, a pipe only this process
//! writes to (close-on-exec, so no job holds it). The run closes it at its end (also after
//! Ctrl-C or a halt); the kernel closes it when the run is killed (SIGKILL). Either way the
//! holder reads EOF and exits, and `salloc` gives the allocation back, its steps with it.
//! `salloc` has its own process group, so the terminal's Ctrl-C is the run's to handle.
//!
//! A job in an allocation runs there as `job` says.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::worker::Workers;
use crate::plan::{PlannedJob, SlurmOptions};

mod job;
pub use job::run;

/// The settings jobs must share to be steps of one allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    partition: Option<String>,
    cpus: Option<usize>,
}

/// The allocation jobs with `o` share, or `None` for jobs that run as Slurm jobs of their own:
/// `mem` (an allocation's memory is per node or per CPU, a job's per job) and `extra_args`
/// (arbitrary srun options: `--nodelist`, `--exclusive`, `--gres`) cannot be split into the
/// allocation's part and the step's.
pub fn key(o: &SlurmOptions) -> Option<Key> {
    (o.mem.is_none() && o.extra_args.is_empty()).then(|| Key {
        partition: o.partition.clone(),
        cpus: o.cpus,
    })
}

/// How an allocation's request stands.
#[derive(Debug, Clone)]
enum Grant {
    Waiting,
    Granted(String),
    Refused(String),
}

/// One `salloc` of the run.
struct Held {
    child: Child,
    /// The holder's stdin: closing it gives the allocation back.
    stdin: Option<ChildStdin>,
    grant: watch::Receiver<Grant>,
    tasks: usize,
    /// Its worker steps, once it is granted.
    workers: Option<Arc<Workers>>,
}

/// The run's allocations, one per `Key`, made when the first job of its key needs it.
pub struct Allocations {
    /// Jobs at most in flight at once: the tasks an allocation asks for (fewer when its key
    /// has fewer jobs, or the partition fewer CPUs).
    concurrency: usize,
    /// Jobs of the run by key, as far as the plan knows them before it runs.
    counts: HashMap<Key, usize>,
    /// The plan has lazy fan-outs, whose jobs' settings are known only as they are made: any
    /// key may have many jobs.
    lazy: bool,
    name: String,
    held: Mutex<HashMap<Key, Held>>,
    /// Keys whose allocation was lost.
    ended: Mutex<std::collections::HashSet<Key>>,
}

impl Allocations {
    pub fn new(concurrency: usize, counts: HashMap<Key, usize>, lazy: bool, run: &str) -> Self {
        let name = match run {
            "" => "orchestrate".to_string(),
            r => format!("orchestrate-{r}"),
        };
        Allocations {
            concurrency: concurrency.max(1),
            counts,
            lazy,
            name,
            held: Mutex::new(HashMap::new()),
            ended: Mutex::default(),
        }
    }

    /// The allocations of a run of `jobs` (the plan's jobs made before it runs).
    pub fn of<'a>(
        jobs: impl Iterator<Item = &'a PlannedJob>,
        lazy: bool,
        concurrency: usize,
        run: &str,
    ) -> Self {
        let mut counts = HashMap::new();
        for j in jobs.filter(|j| !j.background) {
            if let crate::plan::Executor::Slurm(o) = &j.executor
                && let Some(k) = key(o)
            {
                *counts.entry(k).or_insert(0) += 1;
            }
        }
        Allocations::new(concurrency, counts, lazy, run)
    }

    /// Whether jobs of `key` share an allocation: only when there are more than one (one
    /// job alone is cheaper as its own Slurm job) and more than one may run at once.
    pub fn shares(&self, key: &Key) -> bool {
        let n = self.counts.get(key).copied().unwrap_or(0);
        self.concurrency > 1 && (n > 1 || self.lazy)
    }

    /// The id of the allocation for `key`, asked for when no job asked before (or the last
    /// request was refused, or the allocation was lost); `Err` holds salloc's words.
    pub async fn get(&self, key: &Key) -> Result<String, String> {
        let mut rx = {
            let mut held = self.lock();
            // salloc ends when its allocation does (cancelled by hand, past its time limit).
            let live = held.get_mut(key).is_some_and(|h| {
                !matches!(*h.grant.borrow(), Grant::Refused(_))
                    && matches!(h.child.try_wait(), Ok(None))
            });
            if !live {
                self.can_replace(key)?;
                let h = self.request(key)?;
                if let Some(mut old) = held.insert(key.clone(), h) {
                    release(&mut old);
                }
            }
            held[key].grant.clone()
        };
        let got = rx
            .wait_for(|g| !matches!(g, Grant::Waiting))
            .await
            .map(|g| g.clone());
        match got {
            Ok(Grant::Granted(id)) => Ok(id),
            Ok(Grant::Refused(why)) => Err(why),
            _ => Err("salloc ended without a word".into()),
        }
    }

    /// Whether a lost allocation of `key` may be replaced: not when its partition has no CPU
    /// up (its nodes died with it), where a new one would wait for good.
    fn can_replace(&self, key: &Key) -> Result<(), String> {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if !ended.contains(key) || partition_cpus(key.partition.as_deref()) != Some(0) {
            return Ok(());
        }
        let p = match &key.partition {
            Some(p) => format!("partition `{p}`"),
            None => "the default partition".into(),
        };
        Err(format!(
            "the run's Slurm allocation is gone, and {p} has no node up for another one \
             (see `sinfo`)"
        ))
    }

    /// The worker steps of allocation `id` of `key` (`None` once it is no longer the key's).
    fn workers(&self, key: &Key, id: &str) -> Option<Arc<Workers>> {
        let mut held = self.lock();
        let h = held.get_mut(key)?;
        if !matches!(&*h.grant.borrow(), Grant::Granted(g) if g == id) {
            return None;
        }
        let tasks = h.tasks;
        let w = h
            .workers
            .get_or_insert_with(|| Workers::new(id.into(), tasks, key.cpus));
        Some(w.clone())
    }

    /// Allocation `id` of `key` is gone (ended, cancelled, past its time limit): the next job
    /// asks for a new one.
    pub fn lost(&self, key: &Key, id: &str) {
        let mut held = self.lock();
        let ours = held
            .get(key)
            .is_some_and(|h| matches!(&*h.grant.borrow(), Grant::Granted(g) if g == id));
        if ours && let Some(mut h) = held.remove(key) {
            let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            ended.insert(key.clone());
            release(&mut h);
            // Reaped out of the way: salloc may take a moment to give the allocation back.
            std::thread::spawn(move || h.child.wait());
        }
    }

    /// Gives every allocation back and waits (a few seconds at most) until salloc has.
    pub async fn close(&self) {
        let mut all: Vec<Held> = self.lock().drain().map(|(_, h)| h).collect();
        // The workers first: their steps end before the allocation does.
        for w in all.iter().filter_map(|h| h.workers.clone()) {
            w.close().await;
        }
        for h in &mut all {
            release(h);
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        for h in &mut all {
            while matches!(h.child.try_wait(), Ok(None)) && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if matches!(h.child.try_wait(), Ok(None)) {
                // salloc did not give it back in time: cancel it in the controller.
                if let Grant::Granted(id) = &*h.grant.borrow() {
                    let mut cmd = Command::new("scancel");
                    cmd.arg(id);
                    crate::exec::process::run_stop_command(cmd).await;
                }
                let _ = h.child.kill();
                let _ = h.child.wait();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tasks to ask for: the run's concurrency, no more than the key's jobs nor than the
    /// partition's CPUs allow (a request larger than the partition would never be granted).
    fn tasks(&self, key: &Key) -> usize {
        let mut n = self.concurrency;
        if !self.lazy {
            n = n.min(self.counts.get(key).copied().unwrap_or(n));
        }
        if let Some(cpus) = partition_cpus(key.partition.as_deref()) {
            n = n.min(cpus / key.cpus.unwrap_or(1).max(1));
        }
        n.max(1)
    }

    /// Starts `salloc` for `key`; a thread waits for the holder's first line.
    fn request(&self, key: &Key) -> Result<Held, String> {
        let mut cmd = Command::new("salloc");
        let tasks = self.tasks(key);
        cmd.args(salloc_args(key, tasks, &self.name));
        // -Q: salloc's own stderr says nothing but errors once granted (no one may read it).
        cmd.args(["sh", "-c", "echo \"$SLURM_JOB_ID\"; exec cat >/dev/null"]);
        let err = tempfile::tempfile().map_err(|e| format!("cannot start salloc: {e}"))?;
        let err2 = err
            .try_clone()
            .map_err(|e| format!("cannot start salloc: {e}"))?;
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start salloc: {e} (is Slurm's salloc on PATH?)"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, rx) = watch::channel(Grant::Waiting);
        let tx = Arc::new(tx);
        std::thread::Builder::new()
            .name("orchestrate-salloc".into())
            .spawn(move || {
                let _ = tx.send(read_grant(stdout, err2));
            })
            .map_err(|e| format!("cannot start salloc: {e}"))?;
        Ok(Held {
            child,
            stdin,
            grant: rx,
            tasks,
            workers: None,
        })
    }
}

/// salloc's options for `tasks` tasks of `key`. `--no-kill`: a node that fails takes its
/// steps with it, not the allocation and every other step.
fn salloc_args(key: &Key, tasks: usize, name: &str) -> Vec<String> {
    let mut a = vec![
        "-Q".to_string(),
        "--no-kill".into(),
        format!("--ntasks={tasks}"),
        format!("--job-name={name}"),
    ];
    if let Some(c) = key.cpus {
        a.push(format!("--cpus-per-task={c}"));
    }
    if let Some(p) = &key.partition {
        a.push(format!("--partition={p}"));
    }
    a
}

/// The holder's first line (the allocation's id), or salloc's words when it ended without.
fn read_grant(stdout: Option<std::process::ChildStdout>, mut err: std::fs::File) -> Grant {
    let mut line = String::new();
    if let Some(out) = stdout {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let id = line.trim();
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) {
        return Grant::Granted(id.to_string());
    }
    let mut text = String::new();
    let _ = err.rewind();
    let _ = err.take(4096).read_to_string(&mut text);
    let said: Vec<&str> = text
        .lines()
        .map(|l| l.trim().strip_prefix("salloc: error: ").unwrap_or(l.trim()))
        .filter(|l| !l.is_empty())
        .collect();
    let said = said.join("; ");
    if super::slurm::controller_refused(&said) {
        return Grant::Refused(format!(
            "Slurm did not accept the run's allocation (salloc): {said}. {}",
            super::slurm::REFUSED_HINT
        ));
    }
    Grant::Refused(match said.is_empty() {
        true => "salloc failed and said nothing (check the partition and resources, e.g. \
                 with `srun -p PARTITION true`)"
            .into(),
        false => format!("salloc failed: {said}"),
    })
}

/// Closes the holder's stdin, and stops a salloc still waiting for its allocation (it then
/// withdraws the request).
fn release(h: &mut Held) {
    h.stdin.take();
    if matches!(*h.grant.borrow(), Grant::Waiting) {
        let _ = crate::sys::killpg(h.child.id(), crate::sys::SIGTERM);
    }
}

/// The CPUs of `partition` (the default one for `None`) that are not down or drained, from
/// `sinfo`'s `allocated/idle/other/total`.
fn partition_cpus(partition: Option<&str>) -> Option<usize> {
    let mut cmd = Command::new("sinfo");
    cmd.args(["-h", "-o", "%C %P"]);
    if let Some(p) = partition {
        cmd.arg(format!("--partition={p}"));
    }
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| partition.is_some() || l.trim_end().ends_with('*'))?;
    let counts: Vec<usize> = line
        .split_whitespace()
        .next()?
        .split('/')
        .filter_map(|n| n.parse().ok())
        .collect();
    match counts.as_slice() {
        [_, _, other, total] => Some(total.saturating_sub(*other)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_with_memory_or_extra_args_do_not_share() {
        let mut o = SlurmOptions {
            partition: Some("debug".into()),
            cpus: Some(2),
            time: Some("5".into()),
            ..Default::default()
        };
        let k = key(&o).unwrap();
        assert_eq!(
            salloc_args(&k, 4, "orchestrate-x").join(" "),
            "-Q --no-kill --ntasks=4 --job-name=orchestrate-x --cpus-per-task=2 --partition=debug"
        );
        o.mem = Some("1G".into());
        assert!(key(&o).is_none());
        o.mem = None;
        o.extra_args = vec!["--exclusive".into()];
        assert!(key(&o).is_none());
    }

    #[test]
    fn one_job_alone_is_a_slurm_job_of_its_own() {
        let k = key(&SlurmOptions::default()).unwrap();
        let one = Allocations::new(4, HashMap::from([(k.clone(), 1)]), false, "");
        assert!(!one.shares(&k));
        let many = Allocations::new(4, HashMap::from([(k.clone(), 9)]), false, "");
        assert!(many.shares(&k));
        let serial = Allocations::new(1, HashMap::from([(k.clone(), 9)]), false, "");
        assert!(!serial.shares(&k));
        assert!(Allocations::new(4, HashMap::new(), true, "").shares(&k));
    }
}
