//! `orchestrate check`: a job file validated and its plan printed (as text or JSON lines),
//! without running anything.

use std::io::Write;
use std::path::Path;

use super::report_error;
use crate::error::exit;
use crate::plan::{
    Condition, Fan, FanSource, HookKind, Input, Plan, PlannedJob, RUN_HOOK_OWNER, Target, hook_name,
};
use crate::record::Secrets;
use crate::run;

pub(super) fn cmd_check(path: &Path, json: bool) -> i32 {
    let plan = match Plan::load(path) {
        Ok(p) => p,
        Err(e) => return report_error(&e, exit::USAGE),
    };
    let mut buf = Vec::new();
    if json {
        write_json(&mut buf, &plan);
    } else {
        write_text(&mut buf, path, &plan);
    }
    // The plan holds secret values (in argv, cwd, names): the whole printout is redacted, so
    // that no field of it can show one.
    let text = Secrets::new(plan.secrets.clone()).text(&String::from_utf8_lossy(&buf));
    // Items and paths may hold terminal escapes: each line is shown, not obeyed.
    let text: String = text
        .lines()
        .map(|l| crate::report::visible(l) + "\n")
        .collect();
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    exit::OK
}

fn write_json(out: &mut dyn Write, plan: &Plan) {
    let preview: Vec<PlannedJob> = plan.fans.iter().flat_map(fan_preview).collect();
    let mut jobs: Vec<&PlannedJob> = plan.jobs.iter().chain(&preview).collect();
    jobs.sort_by_key(|j| j.index);
    for j in jobs {
        let v = serde_json::json!({
            "index": j.index,
            "name": j.name,
            "args": j.argv,
            "cwd": j.cwd,
            "env": j.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "timeout": if j.timeout_auto {
                serde_json::Value::from("auto")
            } else {
                serde_json::Value::from(j.timeout.map(|t| t.as_secs_f64()))
            },
            "stdout": target_text(&j.stdout),
            "stderr": target_text(&j.stderr),
            "needs": j.needs.iter().map(|n| serde_json::json!({
                "job": n.name,
                "if": n.when.as_str(),
            })).collect::<Vec<_>>(),
        });
        let _ = writeln!(out, "{v}");
    }
    for f in &plan.fans {
        let v = serde_json::json!({"fan": f.base, "first": f.first, "count": f.count});
        let _ = writeln!(out, "{v}");
    }
}

/// Jobs of a fan shown by `check`: its first few (a file's are not read: it may be a pipe).
const PREVIEW: usize = 3;

fn fan_preview(f: &Fan) -> Vec<PlannedJob> {
    (0..f.count.unwrap_or(0).min(PREVIEW))
        .filter_map(|k| f.job(k, &f.range_item(k)?).ok())
        .collect()
}

/// A lazy fan-out: its template, how many jobs, and its first few jobs.
fn write_fan(out: &mut dyn Write, f: &Fan, home: Option<&Path>) {
    let what = match (&f.source, f.count) {
        (FanSource::Range { start, step }, Some(n)) => {
            let last = start + step * (n as i64 - 1);
            format!("{n} jobs, one per item of the range {start}..={last}")
        }
        (FanSource::File(p), _) => {
            format!("one job per line of {}, read as the jobs run", p.display())
        }
        (FanSource::Range { .. }, None) => String::new(),
    };
    let argv = f.stub(0).argv;
    let name = format!("{}[…]", f.base);
    let argv = shell_words::join(argv.iter().map(String::as_str));
    let _ = writeln!(out, "  {name:<24} {argv}   [{what}]");
    let preview = fan_preview(f);
    for j in &preview {
        write_job(out, j, home, None);
    }
    if let Some(rest) = f
        .count
        .and_then(|n| n.checked_sub(preview.len()))
        .filter(|r| *r > 0)
    {
        let _ = writeln!(out, "  … and {rest} more");
    }
}

/// One job on a line: its name, its command and what it sets besides.
fn write_job(out: &mut dyn Write, j: &PlannedJob, home: Option<&Path>, hooks: Option<String>) {
    let mut extra = settings_text(j, home);
    extra.extend(hooks);
    let _ = writeln!(
        out,
        "  {:<24} {}{}",
        j.name,
        shell_words::join(j.argv.iter().map(String::as_str)),
        if extra.is_empty() {
            String::new()
        } else {
            format!("   [{}]", extra.join("; "))
        }
    );
}

fn write_text(out: &mut dyn Write, path: &Path, plan: &Plan) {
    let conc = plan.concurrency.map_or_else(
        || format!("{} (CPUs)", run::default_concurrency()),
        |c| c.to_string(),
    );
    let count = match plan.len_hint() {
        Some(n) => format!("{n} job{}", if n == 1 { "" } else { "s" }),
        None => format!("{} jobs and one per item read", plan.jobs.len()),
    };
    let _ = writeln!(out, "{}: {count}, concurrency {conc}", path.display());
    // Jobs start in the job file's folder: only another folder is worth a mention.
    let home = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf));
    let mut fans = plan.fans.iter().peekable();
    for j in &plan.jobs {
        while let Some(f) = fans.next_if(|f| f.first < j.index) {
            write_fan(out, f, home.as_deref());
        }
        let hooks = plan.job_hooks.get(&j.entry);
        let hooks = hooks.map(|h| format!("hooks {}", hook_kinds(h)));
        write_job(out, j, home.as_deref(), hooks);
    }
    for f in fans {
        write_fan(out, f, home.as_deref());
    }
    write_run_hooks(out, plan);
}

/// The run's hooks, each on a line as a job's, and where the run's end is sent.
fn write_run_hooks(out: &mut dyn Write, plan: &Plan) {
    for kind in HookKind::ALL {
        if let Some(h) = plan.hooks.get(kind) {
            let name = hook_name(RUN_HOOK_OWNER, kind);
            let argv = shell_words::join(h.argv.iter().map(String::as_str));
            let _ = writeln!(out, "  {name:<24} {argv}   [hook]");
        }
    }
    if let Some(n) = &plan.notify {
        let to: Vec<String> = [
            ("webhook", &n.webhook),
            ("ping", &n.ping),
            ("mail", &n.mail),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
        .collect();
        let when = format!("{:?}", n.when).to_lowercase();
        let _ = writeln!(out, "  notify: {} (when: {when})", to.join(", "));
    }
}

/// `on_failure,on_exit`: the hooks a job has.
fn hook_kinds(h: &crate::plan::Hooks) -> String {
    let kinds: Vec<&str> = HookKind::ALL
        .into_iter()
        .filter(|k| h.get(*k).is_some())
        .map(HookKind::as_str)
        .collect();
    kinds.join(",")
}

/// What a job sets besides its command, each as a short phrase.
fn settings_text(j: &PlannedJob, home: Option<&std::path::Path>) -> Vec<String> {
    let mut extra = Vec::new();
    if !j.needs.is_empty() {
        extra.push(format!("needs {}", needs_text(j)));
    }
    if let Some(c) = j.cwd.as_deref().filter(|c| Some(*c) != home) {
        extra.push(format!("cwd {}", c.display()));
    }
    if let Some(t) = j.timeout {
        extra.push(format!("timeout {}", humantime::format_duration(t)));
    }
    if j.timeout_auto {
        extra.push("timeout auto".to_string());
    }
    if !j.env.is_empty() {
        extra.push(format!(
            "env {}",
            j.env
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    match &j.stdin {
        Input::Null => {}
        Input::Text(_) => extra.push("stdin text".into()),
        Input::File(p) => extra.push(format!("stdin {}", p.display())),
    }
    if j.stdout != Target::Capture {
        extra.push(format!("stdout {}", target_text(&j.stdout)));
    }
    if j.stderr != Target::Capture {
        extra.push(format!("stderr {}", target_text(&j.stderr)));
    }
    extra
}

/// `build, tests if failure`: each need by name, with its condition unless it is `success`.
fn needs_text(j: &PlannedJob) -> String {
    let parts: Vec<String> = j
        .needs
        .iter()
        .map(|n| match n.when {
            Condition::Success => n.name.clone(),
            other => format!("{} if {}", n.name, other.as_str()),
        })
        .collect();
    parts.join(", ")
}

fn target_text(t: &Target) -> String {
    match t {
        Target::Capture => "capture".into(),
        Target::Inherit => "inherit".into(),
        Target::Null => "null".into(),
        Target::Stdout => "stdout".into(),
        Target::File { path, append } => {
            format!("{} {}", if *append { ">>" } else { ">" }, path.display())
        }
    }
}
