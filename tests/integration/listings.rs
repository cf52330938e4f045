//! The job files of jobs/ that stand for the listings of the Python tutorial they replace: each
//! run with the command its comment documents gives the result its comment promises.

use std::time::Duration;

use crate::helpers::{Env, Run, wait_for};

/// `jobs/<name>` of this checkout, copied into `env` (so that runs write nothing into the
/// checkout), and its documented commands: the comment lines that start with `orchestrate`.
fn job_file(env: &Env, name: &str) -> Vec<String> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("jobs")
        .join(name);
    let text = std::fs::read_to_string(&src).unwrap();
    env.write(name, &text);
    text.lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .trim()
                .strip_prefix("orchestrate ")
        })
        .map(|rest| rest.split(" #").next().unwrap().trim().to_string())
        .collect()
}

/// Runs a documented command line (`jobs/x.yaml --output ordered`) from the copy's folder.
fn run_documented(env: &Env, line: &str) -> Run {
    let args: Vec<String> = line
        .split_whitespace()
        .map(|w| w.strip_prefix("jobs/").unwrap_or(w).to_string())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.run(&args)
}

#[test]
fn pool_map_prints_the_list_pool_map_returns() {
    let env = Env::new();
    let docs = job_file(&env, "pool_map.yaml");
    assert_eq!(docs, ["jobs/pool_map.yaml --output ordered"]);
    let r = run_documented(&env, &docs[0]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout, "[1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121, 144, 169, 196]\n",
        "{r:?}"
    );
    // 14 items in chunks of 3: five processes.
    for i in 0..5 {
        assert!(
            r.stderr.contains(&format!("ok        square[{i}]")),
            "{r:?}"
        );
    }
    assert!(!r.stderr.contains("square[5]"), "{r:?}");
}

#[test]
fn queue_workers_square_each_item_in_one_of_four_workers() {
    let env = Env::new();
    let docs = job_file(&env, "queue_workers.yaml");
    assert_eq!(docs, ["jobs/queue_workers.yaml --output ordered"]);
    let r = run_documented(&env, &docs[0]);
    assert_eq!(r.code, 0, "{r:?}");
    let data = [43u64, 1, 780, 256, 142, 68, 183, 334, 325, 3];
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{r:?}");
    for (line, x) in lines.iter().zip(data) {
        let (worker, rest) = line.split_once(": ").expect("P<n>: ...");
        assert!(
            ["P0", "P1", "P2", "P3"].contains(&worker),
            "{line}: not one of four workers"
        );
        assert_eq!(rest, format!("{x}^2 = {}", x * x), "{r:?}");
    }
}

#[test]
fn redirect_runs_in_the_background_and_appends_under_the_job_files_folder() {
    let env = Env::new();
    let docs = job_file(&env, "redirect.yaml");
    assert_eq!(
        docs,
        [
            "jobs/redirect.yaml",
            "wait",
            "show --job program",
            // (`cat jobs/out/outputfile` is no orchestrate command)
        ]
    );
    // The folder it writes into ships with the checkout (its contents are ignored by git).
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/out");
    assert!(shipped.is_dir(), "{} is missing", shipped.display());
    std::fs::create_dir(env.path("out")).unwrap();
    let out = env.path("out/outputfile");
    for round in 1..=2 {
        let r = run_documented(&env, &docs[0]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stderr.contains("BG        program  pid "), "{r:?}");
        let w = env.run(&["wait"]);
        assert_eq!(w.code, 0, "{w:?}");
        let show = env.run(&["show", "--job", "program", "--json"]).json();
        assert_eq!(show[0]["status"], "succeeded", "{show:?}");
        assert_eq!(show[0]["returncode"], 0, "{show:?}");
        assert!(
            wait_for(Duration::from_secs(10), || {
                std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() == round)
            }),
            "round {round}: {:?}",
            std::fs::read_to_string(&out)
        );
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let folder = env.dir.path().canonicalize().unwrap();
    for line in text.lines() {
        assert!(
            line.ends_with(&format!(" program ran in {}", folder.display())),
            "{text}"
        );
    }
}

#[test]
fn df_is_recorded_as_a_completed_process() {
    let env = Env::new();
    let docs = job_file(&env, "df.yaml");
    assert_eq!(docs[0], "jobs/df.yaml --json");
    assert_eq!(docs[1], "show --job df-h-home --json");
    let direct = run_documented(&env, &docs[0]);
    let later = run_documented(&env, &docs[1]);
    for r in [&direct, &later] {
        assert_eq!(r.code, 0, "{r:?}");
        let rec = &r.json()[0];
        assert_eq!(
            rec["args"],
            serde_json::json!(["df", "-h", "/home"]),
            "{rec}"
        );
        assert_eq!(rec["returncode"], 0, "{rec}");
        assert!(
            rec["stdout"]
                .as_str()
                .is_some_and(|s| s.starts_with("Filesystem")),
            "{rec}"
        );
        assert_eq!(rec["stderr"], "", "{rec}");
    }
}
