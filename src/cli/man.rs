//! `orchestrate man`: the manual page in roff (clap_mangen for the commands and flags, and the
//! sections clap knows nothing of: exit status, the job file, files, environment), and with
//! `--dir` a page for every command as well.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::args::Cli;
use super::help::{EXIT_CODES, LEADING_FLAGS, STATE_DIR_ORDER, codes, without_state_dir};

/// The top-level keys of a job file, with what each is for.
const FILE_KEYS: &[(&str, &str)] = &[
    (
        "jobs",
        "the jobs: a list; each entry a command line (a string) or a mapping of the job keys below. A file may also be just this list.",
    ),
    (
        "concurrency",
        "jobs in flight at once (-j overrides; default: the number of CPUs)",
    ),
    (
        "defaults",
        "job keys merged into every job (the job's own value wins; env key by key)",
    ),
    (
        "groups",
        "{name: limit}: at most limit jobs of a group (a job's group:) at once",
    ),
    (
        "on_failure",
        "continue (default), stop (start nothing new) or kill (stop running jobs too)",
    ),
    ("env", "variables for every job"),
    ("path", "directories put in front of PATH"),
    (
        "env_file",
        "file(s) of KEY=VALUE lines, relative to the job file",
    ),
    (
        "inherit_env",
        "false: jobs start from an empty environment (plus a minimal PATH)",
    ),
    (
        "secret_env",
        "variables whose values are never stored or printed ([REDACTED])",
    ),
    (
        "retention",
        "{runs: N, age: 30d, bytes: 1G}: the history kept for this job file (default: its last 500 runs)",
    ),
    (
        "wait",
        "true: the run waits for its background jobs and counts them in its exit status",
    ),
    ("executor", "local (default), slurm or ssh: where jobs run"),
    (
        "slurm",
        "{partition, time, cpus, mem, extra_args}: given to srun",
    ),
    (
        "ssh",
        "{config, options, slots}: the ssh_config file, -o options, jobs at once per host (default 10)",
    ),
    (
        "hosts",
        "the ssh hosts jobs are spread over (names of ssh_config, or user@host:port)",
    ),
    (
        "on_host_failure",
        "fail (default) or retry_elsewhere: a job whose host cannot be reached",
    ),
    (
        "hooks",
        "{on_failure, on_success, on_exit}: commands run once every job ended",
    ),
    (
        "notify",
        "{webhook, ping, mail, when}: tell of the run's end; when: always, failure (default) or change",
    ),
];

/// The keys of a job, with what each is for.
const JOB_KEYS: &[(&str, &str)] = &[
    (
        "name",
        "unique name (default: made from the command, e.g. df-h-home)",
    ),
    (
        "command",
        "a command line (split into words, no shell) or an argv list",
    ),
    ("shell", "a script run with sh -c"),
    ("cwd", "working directory (default: the job file's folder)"),
    ("env", "variables set for the job"),
    (
        "stdin",
        "text, {file: path} or {text: ...} (default: /dev/null)",
    ),
    (
        "timeout",
        "30s, 10m, seconds, or auto (3 x the job's usual time, at least 10s): then SIGTERM to its process group",
    ),
    (
        "kill_after",
        "how long after SIGTERM the job gets SIGKILL (default 5s)",
    ),
    (
        "stdout",
        "capture (default, kept in the store), inherit, null or {file: path, append: true}",
    ),
    (
        "stderr",
        "the same values as stdout, or `stdout` to send it where stdout goes (2>&1)",
    ),
    (
        "needs",
        "jobs that must succeed first; an entry may be {job: NAME, if: success|failure|always}",
    ),
    (
        "for_each",
        "one job per item: a list, {file: items.txt} or {range: [first, last, step]}; {item}, {item.FIELD}, {index} in the job",
    ),
    (
        "chunk",
        "items per process with for_each ({items} expands to them)",
    ),
    (
        "retries",
        "how many more times to try after a failure or timeout",
    ),
    ("retry_delay", "the wait before a retry (default 1s)"),
    (
        "backoff",
        "what the wait is multiplied by at each retry (default 1)",
    ),
    (
        "max_retry_delay",
        "the longest wait between retries (default 5m)",
    ),
    ("retry_on", "retry only on these exit codes"),
    (
        "success_codes",
        "exit codes that count as success (default [0])",
    ),
    (
        "group",
        "the group (top-level groups:) that limits this job",
    ),
    (
        "background",
        "true: start the job detached; status, wait and kill follow it",
    ),
    (
        "max_output",
        "most bytes kept of each captured stream (100M): its head and its end",
    ),
    ("executor", "local, slurm or ssh, for this job"),
    ("slurm", "this job's srun settings, over the top-level ones"),
    (
        "hosts",
        "this job's ssh hosts, instead of the top-level ones",
    ),
    (
        "hooks",
        "{on_failure, on_success, on_exit}: commands run after the job's last attempt",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "ORCHESTRATE_STATE_DIR",
        "the state directory, unless --state-dir is given",
    ),
    (
        "XDG_STATE_HOME",
        "without either, the state directory is $XDG_STATE_HOME/orchestrate (an absolute path; a relative one is ignored, as the XDG spec says)",
    ),
    (
        "HOME",
        "without any of those, it is ~/.local/state/orchestrate (the home from the password database when HOME is unset)",
    ),
    ("NO_COLOR", "set and not empty: no colors with --color auto"),
    (
        "ORCHESTRATE_JOB, ORCHESTRATE_SLOT, ORCHESTRATE_RUN",
        "given to every job: its name, its worker slot, the run's id",
    ),
];

/// The command as the manual shows it: no `help` command, which has no page.
fn man_command() -> clap::Command {
    let mut cmd = without_state_dir(Cli::command()).disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The main page: what clap_mangen writes, with the sections it cannot know of.
pub(super) fn main_page(out: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(man_command());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    out.write_all(format!(".PP\n{}\n", esc(LEADING_FLAGS)).as_bytes())?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    let mut roff = exit_status();
    section(
        &mut roff,
        "JOB FILE",
        Some("A YAML file. Its top-level keys (all but jobs optional):"),
    );
    for (key, meaning) in FILE_KEYS {
        item(&mut roff, key, meaning);
    }
    roff.push_str(".PP\nThe keys of a job (each but command or shell optional):\n");
    for (key, meaning) in JOB_KEYS {
        item(&mut roff, key, meaning);
    }
    roff.push_str(&format!(".PP\n{}\n", esc("Placeholders in commands, env values, cwd and paths: {item}, {item.FIELD}, {items}, {index} (fanned-out jobs) and {slot}. A mistake is reported with its file, line and column before any job starts (exit status 2).")));
    section(
        &mut roff,
        "FILES",
        Some(&format!(
            "The state directory is {STATE_DIR_ORDER}. It holds history.db (runs and records), runs/RUN/JOB/stdout and stderr (captured output), locks/ (one run of a job file at a time), spill/ (records the database refused) and cron/ (the logs of crontab lines). It must belong to you and not be writable by others."
        )),
    );
    section(&mut roff, "ENVIRONMENT", None);
    for (name, meaning) in ENVIRONMENT {
        item(&mut roff, name, meaning);
    }
    out.write_all(roff.as_bytes())?;
    man.render_version_section(out)
}

/// `orchestrate man --dir DIR`: orchestrate.1 and orchestrate-COMMAND.1 for each command (and
/// each command of a command), the pages the main page names.
pub(super) fn write_pages(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let main = dir.join("orchestrate.1");
    let mut written = vec![main.clone()];
    let mut buf = Vec::new();
    main_page(&mut buf)?;
    std::fs::write(&main, buf)?;
    let mut stack: Vec<clap::Command> = public_subcommands(&man_command());
    while let Some(cmd) = stack.pop() {
        stack.extend(public_subcommands(&cmd));
        let man = clap_mangen::Man::new(cmd);
        let path = dir.join(man.get_filename());
        let mut buf = Vec::new();
        man.render(&mut buf)?;
        buf.extend_from_slice(exit_status().as_bytes());
        buf.extend_from_slice(b".SH \"SEE ALSO\"\n\\fBorchestrate\\fR(1), for the job file, the state directory (FILES) and the ENVIRONMENT\n");
        std::fs::write(&path, buf)?;
        written.push(path);
    }
    Ok(written)
}

/// The EXIT STATUS section, the same on every page.
fn exit_status() -> String {
    let mut roff = String::new();
    section(&mut roff, "EXIT STATUS", None);
    for (nums, meaning) in EXIT_CODES {
        item(&mut roff, &codes(nums), meaning);
    }
    roff
}

fn public_subcommands(cmd: &clap::Command) -> Vec<clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect()
}

fn section(roff: &mut String, title: &str, text: Option<&str>) {
    roff.push_str(&format!(".SH \"{title}\"\n"));
    if let Some(text) = text {
        roff.push_str(&esc(text));
        roff.push('\n');
    }
}

fn item(roff: &mut String, term: &str, meaning: &str) {
    roff.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(term), esc(meaning)));
}

/// Text as roff prints it: backslashes and hyphens escaped, no line read as a request.
fn esc(text: &str) -> String {
    let body = text.replace('\\', "\\e").replace('-', "\\-");
    if body.starts_with('.') || body.starts_with('\'') {
        format!("\\&{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference in the manual names every key the job file takes.
    #[test]
    fn the_job_file_reference_is_complete() {
        let listed: Vec<&str> = JOB_KEYS.iter().map(|(k, _)| *k).collect();
        for key in crate::spec::JOB_KEYS {
            assert!(
                listed.contains(key),
                "the manual does not say what `{key}` is"
            );
        }
        let mut page = Vec::new();
        main_page(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        for title in ["EXIT STATUS", "JOB FILE", "FILES", "ENVIRONMENT"] {
            assert!(page.contains(&format!(".SH \"{title}\"")), "no {title}");
        }
    }
}
