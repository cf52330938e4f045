//! The controller's limits a job array must fit, from `scontrol show config`, asked once per
//! run when its first array is submitted. An array with more tasks than `MaxJobCount` is never
//! accepted (Slurm counts each task as a job, pending ones too), so it is refused here at once
//! rather than after sbatch's own retries; an array whose indices pass `MaxArraySize` is
//! refused by Slurm outright, and one with more tasks than the scheduler's `max_array_tasks`
//! too, so their jobs go as plain batch jobs instead.

use std::process::Stdio;
use std::time::Duration;

use tokio::sync::OnceCell;

/// How long `scontrol show config` may take: past it, the limits are unknown (sbatch decides).
const ASK_LIMIT: Duration = Duration::from_secs(10);

/// What the controller said of its limits; `None` where it said nothing readable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_jobs: Option<usize>,
    /// Array indices must be below this.
    pub max_array: Option<usize>,
    /// An array may hold this many tasks at most (`SchedulerParameters=max_array_tasks=N`).
    pub max_tasks: Option<usize>,
}

impl Limits {
    /// Why an array of `tasks` tasks, its indices below `top`, cannot be submitted, if it
    /// cannot: `Err(true)` Slurm would never take it (too many jobs), `Err(false)` not as an
    /// array.
    pub fn check(&self, tasks: usize, top: usize) -> Result<(), (bool, String)> {
        if let Some(m) = self.max_jobs.filter(|&m| tasks > m) {
            return Err((
                true,
                format!(
                    "Slurm would never accept the array: its {tasks} tasks are more than the \
                     controller's MaxJobCount ({m}), and each task counts as a job (split the \
                     fan-out, or raise MaxJobCount)"
                ),
            ));
        }
        if let Some(m) = self.max_array.filter(|&m| top > m) {
            return Err((
                false,
                format!("its indices would pass the controller's MaxArraySize ({m})"),
            ));
        }
        if let Some(m) = self.max_tasks.filter(|&m| tasks > m) {
            return Err((
                false,
                format!(
                    "its {tasks} tasks are more than the controller's max_array_tasks ({m}, \
                     SchedulerParameters)"
                ),
            ));
        }
        Ok(())
    }
}

/// The controller's limits, asked once per process.
pub async fn limits() -> Limits {
    static LIMITS: OnceCell<Limits> = OnceCell::const_new();
    *LIMITS.get_or_init(ask).await
}

async fn ask() -> Limits {
    let mut cmd = tokio::process::Command::new("scontrol");
    cmd.args(["show", "config"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(ASK_LIMIT, cmd.output()).await {
        Ok(Ok(o)) if o.status.success() => parse(&String::from_utf8_lossy(&o.stdout)),
        _ => Limits::default(),
    }
}

/// The limits in `scontrol show config`'s lines (`MaxJobCount             = 10000`).
fn parse(config: &str) -> Limits {
    let value = |key: &str| {
        config.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().parse().ok()).flatten()
        })
    };
    // `SchedulerParameters     = bf_continue,max_array_tasks=100`
    let scheduler = config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "SchedulerParameters").then_some(v)
    });
    let max_tasks = scheduler.and_then(|v| {
        v.split(',')
            .find_map(|p| p.trim().strip_prefix("max_array_tasks="))
            .and_then(|n| n.trim().parse().ok())
    });
    Limits {
        max_jobs: value("MaxJobCount"),
        max_array: value("MaxArraySize"),
        max_tasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_from_scontrols_lines_and_checked() {
        let l = parse(
            "Configuration data as of 2026-12-02T05:00:00\nMaxArraySize            = 101\n\
             MaxJobCount             = 160\nMaxStepCount            = 40000\n",
        );
        assert_eq!(l.max_jobs, Some(160));
        assert_eq!(l.max_array, Some(101));
        assert!(l.check(101, 101).is_ok());
        assert!(matches!(l.check(2, 102), Err((false, _))));
        assert!(
            matches!(l.check(300, 300), Err((true, ref why)) if why.contains("MaxJobCount (160)"))
        );
        assert_eq!(l.max_tasks, None);
        let l = parse("SchedulerParameters     = bf_continue,max_array_tasks=50\n");
        assert_eq!(l.max_tasks, Some(50));
        assert!(l.check(50, 1000).is_ok());
        assert!(
            matches!(l.check(51, 51), Err((false, ref why)) if why.contains("max_array_tasks (50"))
        );
        assert_eq!(parse("nothing here"), Limits::default());
        assert!(Limits::default().check(1_000_000, 1_000_000).is_ok());
    }
}
