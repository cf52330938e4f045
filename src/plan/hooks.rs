//! Hooks and notifications planned: each hook is a job of its own (command, environment,
//! directory, timeout), checked like a job's, and named after what it belongs to
//! (`build.on_failure`, `run.on_exit`), a name no job of the file may take.

use std::collections::{BTreeMap, HashMap};

use super::PlannedJob;
use super::entry::{FileCx, body_parts};
use super::env::check_env;
use super::locator::{HookAt, Locator, Place};
use super::names::Entry;
use crate::error::SpecError;
pub use crate::spec::NotifyWhen;
use crate::spec::{HookSpec, HooksSpec, NotifySpec, Seg};

/// The timeout of a hook that sets none.
pub const HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    OnSuccess,
    OnFailure,
    OnExit,
}

impl HookKind {
    pub const ALL: [HookKind; 3] = [HookKind::OnSuccess, HookKind::OnFailure, HookKind::OnExit];

    /// The key in the job file, and the `hook` field of its records.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::OnSuccess => "on_success",
            HookKind::OnFailure => "on_failure",
            HookKind::OnExit => "on_exit",
        }
    }
}

/// What the run's own hooks are named after: `run.on_exit`.
pub const RUN_HOOK_OWNER: &str = "run";

/// The name of a hook's records (and of its output folder): `build.on_failure`, `run.on_exit`.
pub fn hook_name(owner: &str, kind: HookKind) -> String {
    format!("{owner}.{}", kind.as_str())
}

/// Where a hook's record sorts among the run's records (its `index`): after every job, each
/// job's hooks in job order (`job`), then the run's own (`None`), then the notifications.
pub fn hook_index(jobs: usize, job: Option<usize>, kind: HookKind) -> usize {
    let k = kind as usize;
    match job {
        Some(i) => jobs + 3 * i + k,
        None => 4 * jobs + k,
    }
}

/// Where a notification's record sorts: after the run's hooks (`channel` in `NOTIFY_CHANNELS`).
pub fn notify_index(jobs: usize, channel: usize) -> usize {
    4 * jobs + 3 + channel
}

/// The hooks of the run or of one job. Each is a job to copy when it runs, which gives it its
/// name, index and input then.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hooks {
    pub on_success: Option<PlannedJob>,
    pub on_failure: Option<PlannedJob>,
    pub on_exit: Option<PlannedJob>,
}

impl Hooks {
    pub fn get(&self, kind: HookKind) -> Option<&PlannedJob> {
        match kind {
            HookKind::OnSuccess => self.on_success.as_ref(),
            HookKind::OnFailure => self.on_failure.as_ref(),
            HookKind::OnExit => self.on_exit.as_ref(),
        }
    }

    pub fn is_empty(&self) -> bool {
        HookKind::ALL.iter().all(|k| self.get(*k).is_none())
    }

    /// The hooks that run after an outcome, in their order: `on_failure` or `on_success`,
    /// then `on_exit`.
    pub fn after(&self, failed: bool) -> impl Iterator<Item = (HookKind, &PlannedJob)> {
        let first = if failed {
            HookKind::OnFailure
        } else {
            HookKind::OnSuccess
        };
        [first, HookKind::OnExit]
            .into_iter()
            .filter_map(|k| self.get(k).map(|j| (k, j)))
    }

    fn all(&self) -> impl Iterator<Item = &PlannedJob> + Clone {
        HookKind::ALL.into_iter().filter_map(|k| self.get(k))
    }
}

/// Where a run's outcome is sent (`notify:`).
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    pub webhook: Option<String>,
    pub ping: Option<String>,
    pub mail: Option<String>,
    pub when: NotifyWhen,
}

/// The channels of `notify:`, as the names of their records (`notify.webhook`).
pub const NOTIFY_CHANNELS: [&str; 3] = ["webhook", "ping", "mail"];

impl Notify {
    /// The record name of one channel: `notify.webhook`.
    pub fn record_name(channel: &str) -> String {
        format!("notify.{channel}")
    }

    fn channels(&self) -> impl Iterator<Item = &'static str> + '_ {
        NOTIFY_CHANNELS.into_iter().filter(|c| match *c {
            "webhook" => self.webhook.is_some(),
            "ping" => self.ping.is_some(),
            _ => self.mail.is_some(),
        })
    }
}

/// The run's hooks (top-level `hooks:`).
pub(super) fn run_hooks(cx: &FileCx<'_>) -> Result<Hooks, SpecError> {
    plan_hooks(&cx.file.hooks, &[Seg::Key("hooks")], None, cx)
}

/// The hooks of each `jobs:` entry that has some, by entry. A background job's end is seen by
/// its supervisor, after the run may have ended: it can have no hooks.
pub(super) fn job_hooks(
    specs: Vec<(usize, HooksSpec)>,
    entries: &[Entry],
    jobs: &[PlannedJob],
    cx: &FileCx<'_>,
) -> Result<BTreeMap<usize, Hooks>, SpecError> {
    let mut out = BTreeMap::new();
    for (i, spec) in specs {
        if spec.is_empty() {
            continue;
        }
        let mut base = cx.loc.job(i);
        base.push(Seg::Key("hooks"));
        let label = Some(entries[i].base.clone());
        if jobs[entries[i].jobs.clone()].iter().any(|j| j.background) {
            let at = HookAt {
                loc: cx.loc,
                base,
                label,
            };
            return Err(at.err_here(
                "a background job cannot have hooks: its end is seen by its supervisor, after the run may have ended".into(),
                Some("move the hooks to the run (top-level `hooks:`), or run the job in the foreground".into()),
            ));
        }
        out.insert(i, plan_hooks(&spec, &base, label, cx)?);
    }
    Ok(out)
}

fn plan_hooks(
    spec: &HooksSpec,
    base: &[Seg],
    label: Option<String>,
    cx: &FileCx<'_>,
) -> Result<Hooks, SpecError> {
    let one = |s: &Option<HookSpec>, kind: HookKind| -> Result<Option<PlannedJob>, SpecError> {
        let Some(s) = s else { return Ok(None) };
        let mut segs = base.to_vec();
        segs.push(Seg::Key(kind.as_str()));
        let at = HookAt {
            loc: cx.loc,
            base: segs,
            label: label.clone(),
        };
        plan_hook(s, kind, &at, cx).map(Some)
    };
    Ok(Hooks {
        on_success: one(&spec.on_success, HookKind::OnSuccess)?,
        on_failure: one(&spec.on_failure, HookKind::OnFailure)?,
        on_exit: one(&spec.on_exit, HookKind::OnExit)?,
    })
}

/// One hook as a job: its command, the file's environment with its own `env:` on top, its
/// directory and timeout; output captured, no retries.
fn plan_hook(
    s: &HookSpec,
    kind: HookKind,
    at: &HookAt<'_>,
    cx: &FileCx<'_>,
) -> Result<PlannedJob, SpecError> {
    let argv = body_parts(s.command.as_ref(), s.shell.as_ref(), at)?.into_argv();
    let mut env: BTreeMap<String, String> = cx.global_env.iter().cloned().collect();
    for (k, v) in &s.env {
        env.insert(k.clone(), v.0.clone());
    }
    check_env(&env, at)?;
    Ok(PlannedJob {
        env: env.into_iter().collect(),
        cwd: s.cwd.clone(),
        // A hook that hangs would hold the job file's lock (cron's next starts refused): it
        // gets a timeout unless it sets one.
        timeout: Some(s.timeout.map_or(HOOK_TIMEOUT, |t| t.0)),
        env_clear: !cx.file.inherit_env,
        ..PlannedJob::new(0, kind.as_str().to_string(), argv)
    })
}

/// `notify:` checked: URLs that ureq can reach, and a mail address that cannot smuggle
/// headers into the message.
pub(super) fn notify(
    spec: Option<&NotifySpec>,
    loc: &Locator<'_>,
) -> Result<Option<Notify>, SpecError> {
    let Some(s) = spec else { return Ok(None) };
    let at = |key: &'static str, message: String, hint: Option<String>| {
        loc.err(&[Seg::Key("notify"), Seg::Key(key)], None, message, hint)
    };
    for (key, url) in [("webhook", &s.webhook), ("ping", &s.ping)] {
        if let Some(u) = url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(at(
                key,
                format!("`{key}` must be an http:// or https:// URL, not `{u}`"),
                None,
            ));
        }
    }
    if let Some(m) = &s.mail
        && (m.trim().is_empty() || m.chars().any(char::is_control))
    {
        return Err(at(
            "mail",
            "`mail` must be one or more addresses on one line".into(),
            Some(
                "separate several addresses with commas: `mail: a@example.com, b@example.com`"
                    .into(),
            ),
        ));
    }
    Ok(Some(Notify {
        webhook: s.webhook.clone(),
        ping: s.ping.clone(),
        mail: s.mail.as_ref().map(|m| m.trim().to_string()),
        when: s.when,
    }))
}

/// Every hook template, for the secret values their environments hold.
pub(super) fn templates<'a>(
    run: &'a Hooks,
    jobs: &'a BTreeMap<usize, Hooks>,
) -> impl Iterator<Item = &'a PlannedJob> + Clone {
    run.all().chain(jobs.values().flat_map(Hooks::all))
}

/// The names of hook and notification records are taken: no job may have one (its record
/// and output folder would be the hook's), and no two hooks share one (a job named `run`
/// has a hook `run.on_exit` like the run's own).
pub(super) fn check_names(
    jobs: &[PlannedJob],
    run: &Hooks,
    by_entry: &BTreeMap<usize, Hooks>,
    notify: Option<&Notify>,
    loc: &Locator<'_>,
) -> Result<(), SpecError> {
    let mut taken: HashMap<String, String> = HashMap::new();
    for kind in HookKind::ALL.into_iter().filter(|k| run.get(*k).is_some()) {
        let what = format!("the run's `{}` hook", kind.as_str());
        taken.insert(hook_name(RUN_HOOK_OWNER, kind), what);
    }
    for c in notify.into_iter().flat_map(Notify::channels) {
        taken.insert(Notify::record_name(c), format!("the `{c}` notification"));
    }
    let clash = |j: &PlannedJob, name: &str, what: &str| {
        let at_name = loc.key(j.entry, "name");
        let segs = if loc.position(&at_name).is_some() {
            at_name
        } else {
            loc.job(j.entry)
        };
        loc.err(
            &segs,
            Some(j.name.clone()),
            format!("`{name}` is the name of {what}'s records"),
            Some("rename the job".into()),
        )
    };
    for j in jobs {
        if let Some(what) = taken.get(&j.name) {
            return Err(clash(j, &j.name, what));
        }
        let Some(h) = by_entry.get(&j.entry) else {
            continue;
        };
        for kind in HookKind::ALL.into_iter().filter(|k| h.get(*k).is_some()) {
            let name = hook_name(&j.name, kind);
            if let Some(what) = taken.get(&name) {
                return Err(clash(j, &name, what));
            }
        }
    }
    // A job named like another job's hook (`build.on_failure` beside `build`'s hook).
    let by_name: HashMap<&str, &PlannedJob> = jobs.iter().map(|j| (j.name.as_str(), j)).collect();
    for j in jobs {
        let Some(h) = by_entry.get(&j.entry) else {
            continue;
        };
        for kind in HookKind::ALL.into_iter().filter(|k| h.get(*k).is_some()) {
            let name = hook_name(&j.name, kind);
            if let Some(other) = by_name.get(name.as_str()) {
                let what = format!("the `{}` hook of `{}`", kind.as_str(), j.name);
                return Err(clash(other, &name, &what));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    #[test]
    fn a_hook_without_a_timeout_gets_one() {
        let text = "hooks:\n  on_exit: {shell: 'sleep 1000'}\n  on_failure: {shell: 'true', timeout: 5s}\njobs:\n  - name: a\n    command: 'true'\n    hooks: {on_success: {shell: 'true'}}\n";
        let plan = Plan::from_text(std::path::Path::new("hooks.yaml"), text).unwrap();
        assert_eq!(
            plan.hooks.on_exit.as_ref().unwrap().timeout,
            Some(HOOK_TIMEOUT)
        );
        assert_eq!(
            plan.hooks.on_failure.as_ref().unwrap().timeout,
            Some(std::time::Duration::from_secs(5))
        );
        let job = &plan.job_hooks[&0];
        assert_eq!(job.on_success.as_ref().unwrap().timeout, Some(HOOK_TIMEOUT));
    }
}
