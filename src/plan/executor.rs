//! Where each job runs: the file-wide `executor:`, `slurm:`, `ssh:` and `hosts:` settings,
//! checked once, and each job's own settings merged over them.

use std::path::{Path, PathBuf};

use super::locator::{EntryAt, Locator, Place};
use crate::error::SpecError;
use crate::spec::{self, Defaults, ExecutorSpec as E, JobFile, JobMap, Seg, SlurmSpec, StdinSpec};

/// Where a job runs (`executor:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Executor {
    #[default]
    Local,
    Slurm(SlurmOptions),
    Ssh(SshOptions),
}

/// What `srun` is given for one job.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub time: Option<String>,
    pub cpus: Option<usize>,
    pub mem: Option<String>,
    pub extra_args: Vec<String>,
    /// `on_host_failure: retry_elsewhere` (a job whose node fails runs on another worker);
    /// not serialized while false, so definition hashes stay those of older runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_elsewhere: bool,
}

/// The ssh hosts a job may run on, and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SshOptions {
    /// Names from the ssh config, or `user@host:port`.
    pub hosts: Vec<String>,
    /// `ssh -F FILE`.
    pub config: Option<PathBuf>,
    /// Extra `-o` options.
    pub options: Vec<String>,
    /// Jobs in flight on one host at once.
    pub slots: usize,
    /// On an unreachable host, move the job to another host instead of failing it.
    pub retry_elsewhere: bool,
}

/// OpenSSH's default `MaxSessions`: more channels than this over one connection are refused.
pub const DEFAULT_SSH_SLOTS: usize = 10;

/// The file-wide executor settings, checked once.
pub(super) struct FileExecutor {
    executor: E,
    slurm: SlurmSpec,
    hosts: Option<Vec<String>>,
    ssh_config: Option<PathBuf>,
    ssh_options: Vec<String>,
    ssh_slots: usize,
    retry_elsewhere: bool,
}

impl FileExecutor {
    pub(super) fn new(
        file: &JobFile,
        base_dir: &Path,
        loc: &Locator<'_>,
    ) -> Result<FileExecutor, SpecError> {
        if let Some(hosts) = &file.hosts {
            check_hosts(hosts, &Locator::top("hosts"), None, loc)?;
        }
        let ssh = file.ssh.clone().unwrap_or_default();
        let ssh_config = match &ssh.config {
            Some(c) => Some(ssh_config_path(&base_dir.join(c), loc)?),
            None => None,
        };
        for (i, o) in ssh.options.iter().enumerate() {
            if !o.contains('=') || o.starts_with('-') {
                let mut at = Locator::top("ssh");
                at.push(Seg::Key("options"));
                at.push(Seg::Index(i));
                return Err(loc.err(
                    &at,
                    None,
                    format!("ssh option `{o}` is not of the form `Name=value`"),
                    Some("write options as for `ssh -o`, e.g. `ConnectTimeout=5`".into()),
                ));
            }
        }
        Ok(FileExecutor {
            executor: file.executor.unwrap_or(E::Local),
            slurm: file.slurm.clone().unwrap_or_default(),
            hosts: file.hosts.clone(),
            ssh_config,
            ssh_options: ssh.options,
            ssh_slots: ssh.slots.map_or(DEFAULT_SSH_SLOTS, |l| l.0),
            retry_elsewhere: file.on_host_failure == spec::HostFailureSpec::RetryElsewhere,
        })
    }
}

/// `ssh.config`, which must exist, made absolute (jobs may run from another directory).
fn ssh_config_path(p: &Path, loc: &Locator<'_>) -> Result<PathBuf, SpecError> {
    if !p.is_file() {
        let mut at = Locator::top("ssh");
        at.push(Seg::Key("config"));
        return Err(loc.err(
            &at,
            None,
            format!("the ssh config file {} does not exist", p.display()),
            Some("give a path relative to the job file, or drop `config:`".into()),
        ));
    }
    Ok(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// `user@host:port` or a name from the ssh config: one word that ssh will not take for an option.
fn check_hosts(
    hosts: &[String],
    at: &[Seg],
    job: Option<String>,
    loc: &Locator<'_>,
) -> Result<(), SpecError> {
    if hosts.is_empty() {
        return Err(loc.err(
            at,
            job,
            "`hosts:` is empty".into(),
            Some("list at least one host, e.g. `hosts: [node1, user@node2:2222]`".into()),
        ));
    }
    for (i, h) in hosts.iter().enumerate() {
        let bad_port = h
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().map_or(true, |p| p == 0));
        if h.is_empty() || h.starts_with('-') || h.contains(char::is_whitespace) || bad_port {
            let mut here = at.to_vec();
            here.push(Seg::Index(i));
            return Err(loc.err(
                &here,
                job,
                format!("invalid ssh host `{h}`"),
                Some("write a host as a name from your ssh config or as `user@host:port`".into()),
            ));
        }
    }
    Ok(())
}

/// The executor of one job: its own `executor:` (else the file's) with the settings merged.
pub(super) fn executor_of(
    fe: &FileExecutor,
    m: &JobMap,
    defaults: &Defaults,
    ex: &EntryAt<'_>,
) -> Result<Executor, SpecError> {
    let kind = m.executor.unwrap_or(fe.executor);
    // Where to point when the executor itself is the problem.
    let exec_at = if m.executor.is_some() {
        ex.key("executor")
    } else if fe.executor != E::Local {
        Locator::top("executor")
    } else {
        ex.here()
    };
    check_executor_keys(kind, m, ex)?;
    match kind {
        E::Local => Ok(Executor::Local),
        E::Slurm => slurm_of(fe, m, defaults, &exec_at, ex).map(Executor::Slurm),
        E::Ssh => ssh_of(fe, m, &exec_at, ex).map(Executor::Ssh),
    }
}

/// A job's executor settings must belong to the executor it runs with.
fn check_executor_keys(kind: E, m: &JobMap, ex: &EntryAt<'_>) -> Result<(), SpecError> {
    if m.slurm.is_some() && kind != E::Slurm {
        return Err(ex.err_key(
            "slurm",
            "`slurm:` settings need the job to run with `executor: slurm`".into(),
            Some("add `executor: slurm` to the job, or drop `slurm:`".into()),
        ));
    }
    if m.hosts.is_some() && kind != E::Ssh {
        return Err(ex.err_key(
            "hosts",
            "`hosts:` needs the job to run with `executor: ssh`".into(),
            Some("add `executor: ssh` to the job, or drop `hosts:`".into()),
        ));
    }
    if kind == E::Ssh && m.background {
        return Err(ex.err_key(
            "background",
            "`background: true` does not work with `executor: ssh`".into(),
            Some("drop `background: true`, or run this job with `executor: local` or `slurm` (sbatch)".into()),
        ));
    }
    Ok(())
}

/// The job's `slurm:` keys over the file's.
fn slurm_of(
    fe: &FileExecutor,
    m: &JobMap,
    defaults: &Defaults,
    exec_at: &[Seg],
    ex: &EntryAt<'_>,
) -> Result<SlurmOptions, SpecError> {
    if !matches!(
        m.stdin.as_ref().or(defaults.stdin.as_ref()),
        None | Some(StdinSpec::Null)
    ) {
        return Err(ex.err(
            exec_at,
            "Slurm jobs get no standard input (`srun --input=none`), so `stdin:` cannot be used"
                .into(),
            Some("have the job read a file on the cluster instead".into()),
        ));
    }
    let own = m.slurm.clone().unwrap_or_default();
    let base = &fe.slurm;
    let word = |w: Option<&spec::Word>| w.map(|w| w.0.clone());
    let partition = own.partition.or_else(|| base.partition.clone());
    if let Some(p) = &partition
        && (p.is_empty() || p.starts_with('-') || p.contains(char::is_whitespace))
    {
        let at = if m.slurm.as_ref().is_some_and(|s| s.partition.is_some()) {
            ex.key("slurm")
        } else {
            Locator::top("slurm")
        };
        return Err(ex.err(&at, format!("invalid Slurm partition `{p}`"), None));
    }
    Ok(SlurmOptions {
        partition,
        time: word(own.time.as_ref()).or_else(|| word(base.time.as_ref())),
        cpus: own.cpus.or(base.cpus).map(|c| c.0),
        mem: word(own.mem.as_ref()).or_else(|| word(base.mem.as_ref())),
        extra_args: own
            .extra_args
            .or_else(|| base.extra_args.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.0)
            .collect(),
        retry_elsewhere: fe.retry_elsewhere,
    })
}

/// The job's `hosts:` (else the file's) and the file's `ssh:` settings.
fn ssh_of(
    fe: &FileExecutor,
    m: &JobMap,
    exec_at: &[Seg],
    ex: &EntryAt<'_>,
) -> Result<SshOptions, SpecError> {
    let hosts = match (&m.hosts, &fe.hosts) {
        (Some(h), _) => {
            check_hosts(h, &ex.key("hosts"), ex.label.clone(), ex.loc)?;
            h.clone()
        }
        (None, Some(h)) => h.clone(),
        (None, None) => {
            return Err(ex.err(
                exec_at,
                "`executor: ssh` needs `hosts:` to run on".into(),
                Some("add `hosts: [node1, user@node2:2222]` at the top or to the job".into()),
            ));
        }
    };
    Ok(SshOptions {
        hosts,
        config: fe.ssh_config.clone(),
        options: fe.ssh_options.clone(),
        slots: fe.ssh_slots,
        retry_elsewhere: fe.retry_elsewhere,
    })
}

impl SlurmOptions {
    /// The options as arguments, the same for srun and sbatch: partition, time, CPUs,
    /// memory, then the extra arguments as given.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::with_capacity(4 + self.extra_args.len());
        if let Some(p) = &self.partition {
            a.push(format!("--partition={p}"));
        }
        if let Some(t) = &self.time {
            a.push(format!("--time={t}"));
        }
        if let Some(c) = self.cpus {
            a.push(format!("--cpus-per-task={c}"));
        }
        if let Some(m) = &self.mem {
            a.push(format!("--mem={m}"));
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}
