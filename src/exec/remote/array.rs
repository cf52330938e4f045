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
//! A lazy fan-out's groups are gathered as it runs, never made up front: when the first job
//! of a group is taken, the scheduler gives the group (`fans::gather`, `Arrays::gather`): a
//! range's next `MAX_TASKS` jobs, made as the task file is written; a file's items read ahead,
//! a regular file's up to `MAX_TASKS`, a stream's those that came so far (so a pipe fed slowly
//! makes small arrays rather than waiting for items that may come late, and one fed fast,
//! `seq |`, arrays of a thousand). A group is let go once each of its jobs took its task.
//!
//! What the task file holds is no secret: a line that would hold a secret value makes the group
//! go as plain batch jobs (their environment then reaches them through sbatch's export, as a
//! single job's does). The variables every job shares reach the tasks the same way: the task
//! line holds only those that differ from the submitting job's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::array_tasks::{ranges, submit};
use crate::exec::process::JobCtx;
use crate::plan::{Executor, Fan, PlannedJob, SlurmOptions};

/// Tasks in one array at most: Slurm's default `MaxArraySize` (1001) allows indices 0..=1000.
pub const MAX_TASKS: usize = 1000;

/// The arrays of a run: its background Slurm jobs grouped by entry and settings.
#[derive(Default)]
pub struct Arrays {
    /// The group and the task of each grouped job, by plan index.
    of_job: HashMap<usize, (usize, usize)>,
    groups: Vec<Arc<Group>>,
    /// Lazy fan-outs as arrays: their first plan index and `%J`. Their groups are gathered
    /// when a group's first job is taken (`gathered`).
    lazy: Vec<(usize, Option<usize>)>,
    /// The gathered groups, by their first plan index: the number of plan indices they span.
    gathered: Mutex<BTreeMap<usize, (usize, Arc<Group>)>>,
}

/// Where a group's jobs come from, until the array is submitted.
enum Source {
    /// Jobs the plan made up front, in task order.
    Jobs(Vec<PlannedJob>),
    /// Jobs `from..to` of a lazy fan-out (a range), made as the task file is written.
    Fan {
        fan: Fan,
        from: usize,
        to: usize,
    },
    /// Jobs `from..` of a fan-out over a file, from the items read (`None`: no job).
    Items {
        fan: Fan,
        from: usize,
        items: Vec<Option<String>>,
    },
    Taken,
}

impl Source {
    /// The jobs, task by task (`None`: no job, a fan's job not kept or whose item makes none).
    fn jobs(self) -> Box<dyn Iterator<Item = Option<PlannedJob>> + Send> {
        match self {
            Source::Jobs(v) => Box::new(v.into_iter().map(Some)),
            Source::Fan { fan, from, to } => Box::new((from..to).map(move |k| {
                let item = fan.range_item(k).filter(|_| fan.kept(k))?;
                fan.job(k, &item).ok()
            })),
            Source::Items { fan, from, items } => {
                Box::new(items.into_iter().enumerate().map(move |(i, item)| {
                    let k = from + i;
                    fan.job(k, &item.filter(|_| fan.kept(k))?).ok()
                }))
            }
            Source::Taken => Box::new(std::iter::empty()),
        }
    }
}

struct Group {
    source: Mutex<Source>,
    len: usize,
    /// `%J`: at most this many tasks run at once.
    throttle: Option<usize>,
    /// The array's job id, or why there is none (its jobs then go as plain batch jobs).
    submitted: OnceCell<Result<String, NoTask>>,
    /// The tasks whose job took them, until all did; the others are cancelled when the run
    /// ends.
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

impl Group {
    fn new(len: usize, throttle: Option<usize>, source: Source) -> Arc<Group> {
        Arc::new(Group {
            source: Mutex::new(source),
            len,
            throttle,
            submitted: OnceCell::new(),
            claimed: Mutex::new(Vec::new()),
            cancelled: Mutex::new(false),
        })
    }

    /// Task `k` taken by its job; once every task is, what was kept to cancel the others
    /// is let go, and true is returned.
    fn claim(&self, k: usize) -> bool {
        let mut claimed = lock(&self.claimed);
        if let Some(c) = claimed.get_mut(k) {
            *c = true;
        }
        let all = claimed.iter().all(|&c| c);
        if all {
            *claimed = Vec::new();
        }
        all
    }
}

impl Arrays {
    /// The groups among `jobs` (background, `executor: slurm`, the same entry and settings,
    /// more than one job), split at `MAX_TASKS`. `throttle` gives a job's `%J`, if any.
    pub fn of<'a>(
        jobs: impl Iterator<Item = &'a PlannedJob>,
        fans: &[Fan],
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
                let t = throttle(&chunk[0]);
                arrays
                    .groups
                    .push(Group::new(chunk.len(), t, Source::Jobs(chunk)));
            }
        }
        for fan in fans {
            arrays.add_fan(fan, &throttle);
        }
        arrays
    }

    /// A lazy fan-out of background Slurm jobs: its groups are gathered as it runs.
    fn add_fan(&mut self, fan: &Fan, throttle: &impl Fn(&PlannedJob) -> Option<usize>) {
        let stub = fan.stub(0);
        if fan.count.is_some_and(|n| n < 2)
            || !stub.background
            || !matches!(stub.executor, Executor::Slurm(_))
        {
            return;
        }
        self.lazy.push((fan.first, throttle(&stub)));
    }

    /// Whether the jobs of the lazy fan-out whose first job is `first` go as arrays, gathered
    /// as it runs (`gather`).
    pub fn gathers(&self, first: usize) -> bool {
        self.lazy.iter().any(|&(f, _)| f == first)
    }

    /// Whether plan index `index` is in a gathered group already.
    pub fn gathered(&self, index: usize) -> bool {
        self.gathered_at(index).is_some()
    }

    fn gathered_at(&self, index: usize) -> Option<(Arc<Group>, usize)> {
        let gathered = lock(&self.gathered);
        let (&first, (span, g)) = gathered.range(..=index).next_back()?;
        (index < first + span).then(|| (g.clone(), index - first))
    }

    /// Jobs `from..` of `fan` as one array: a range's next `MAX_TASKS` (`items` is `None`), or
    /// a file's, `items[i]` being item `from + i` (`None`: no job). Fewer than two jobs make
    /// no array.
    pub fn gather(&self, fan: &Fan, from: usize, items: Option<Vec<Option<String>>>) {
        let (span, jobs, source) = match items {
            Some(items) => {
                let jobs = items.iter().flatten().count();
                let (fan, span) = (fan.clone(), items.len());
                (span, jobs, Source::Items { fan, from, items })
            }
            None => {
                let to = fan.count.unwrap_or(0).min(from + MAX_TASKS);
                let jobs = (from..to).filter(|&k| fan.kept(k)).count();
                let fan = fan.clone();
                (to.saturating_sub(from), jobs, Source::Fan { fan, from, to })
            }
        };
        if jobs < 2 {
            return;
        }
        let throttle = self
            .lazy
            .iter()
            .find(|s| s.0 == fan.first)
            .and_then(|s| s.1);
        let group = Group::new(span, throttle, source);
        lock(&self.gathered).insert(fan.first + from, (span, group));
    }

    /// The group and the task of `job`, if it is in one.
    fn place(&self, job: &PlannedJob) -> Option<(Arc<Group>, usize)> {
        if let Some(&(g, k)) = self.of_job.get(&job.index) {
            return Some((self.groups[g].clone(), k));
        }
        self.gathered_at(job.index)
    }

    /// Whether `job` goes as a task of an array.
    pub fn holds(&self, job: &PlannedJob) -> bool {
        self.place(job).is_some()
    }

    /// `job`'s task: the array is submitted first if no job of its group did it yet. `Err`
    /// says why the group has no array.
    pub async fn task(
        &self,
        job: &PlannedJob,
        ctx: &JobCtx,
        o: &SlurmOptions,
    ) -> Result<Task, NoTask> {
        let (group, k) = self
            .place(job)
            .ok_or_else(|| NoTask::Alone("not in an array".into()))?;
        let got = group
            .submitted
            .get_or_init(|| async {
                let source = std::mem::replace(&mut *lock(&group.source), Source::Taken);
                let path = ctx
                    .capture
                    .0
                    .join(format!(".slurm-array-{}.tasks", job.index - k));
                let out = submit(&path, source.jobs(), ctx, o, group.throttle).await;
                out.map(|(id, ids)| {
                    // Tasks not in the array count as taken: nothing to cancel.
                    let mut claimed = vec![true; group.len];
                    for i in ids {
                        claimed[i] = false;
                    }
                    *lock(&group.claimed) = claimed;
                    id
                })
            })
            .await;
        let array = got.clone()?;
        if group.claim(k) {
            // Every job of a gathered group has its task: nothing is left to look up or cancel
            // (a fan-out of 10^7 makes 10^4 groups, a pipe fed slowly more; none is kept past
            // its use).
            let mut gathered = lock(&self.gathered);
            let first = job.index - k;
            if gathered
                .get(&first)
                .is_some_and(|(_, g)| Arc::ptr_eq(g, &group))
            {
                gathered.remove(&first);
            }
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
        if let Some((g, _)) = self.place(job) {
            *lock(&g.cancelled) = true;
        }
        tokio::spawn(super::scancel::cancel(task.array.clone()));
    }

    /// Cancels the tasks no job took (the run ended before it dispatched them: a halt, an
    /// interrupt), in one `scancel` for all arrays.
    pub async fn close(&self) {
        let mut ids = Vec::new();
        let gathered: Vec<Arc<Group>> = lock(&self.gathered)
            .values()
            .map(|(_, g)| g.clone())
            .collect();
        for g in self.groups.iter().chain(&gathered) {
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
            let mut cmd = std::process::Command::new("scancel");
            cmd.args(&ids);
            crate::exec::process::run_stop_command(cmd).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
