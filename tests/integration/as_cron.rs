//! `orchestrate check --as-cron`: a job file judged by the crontab line that runs it (the
//! line's PATH, cron's few variables), against the real crontab, and `--run` running it so.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::helpers::{Env, Run};

#[test]
fn as_cron_names_what_cron_will_not_find_and_runs_it_so() {
    if Command::new("crontab").arg("-l").output().is_err() {
        crate::helpers::skipped("as_cron", "no crontab command");
        return;
    }
    let _lock = crate::helpers::crontab_lock();
    let env = Env::new();
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    env.write("bin/mytool", "#!/bin/sh\necho mytool ran\n");
    std::fs::set_permissions(bin.join("mytool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.write(
        "nightly.yaml",
        "jobs:\n  - name: sync\n    shell: 'mytool --all; echo \"$AWS_PROFILE\" >> profile'\n  - name: disk\n    command: df -h /\n",
    );
    env.write(
        "clean.yaml",
        "jobs:\n  - name: disk\n    command: df -h /\n",
    );
    let here_path = format!("{}:/usr/bin:/bin", bin.display());
    // Installed from a shell whose PATH lacks bin/ (as a line installed long ago would).
    let install = Run::from(
        env.cmd()
            .args(["cron", "nightly.yaml", "--schedule", "@daily", "--install"])
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap(),
    );
    assert_eq!(install.code, 0, "{install:?}");
    let check = |file: &str, extra: &[&str]| {
        Run::from(
            env.cmd()
                .args(["check", "--as-cron", file])
                .args(extra)
                .env("PATH", &here_path)
                .env("AWS_PROFILE", "prod")
                .output()
                .unwrap(),
        )
    };
    let r = check("nightly.yaml", &[]);
    let removed = env.run(&["cron", "nightly.yaml", "--remove"]);
    assert_eq!(removed.code, 0);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("its installed line"), "{r:?}");
    assert!(r.stdout.contains("PATH    /usr/bin:/bin"), "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "job `sync` runs `mytool`, found at {}",
            bin.join("mytool").display()
        )),
        "{r:?}"
    );
    assert!(r.stdout.contains("uses $AWS_PROFILE"), "{r:?}");
    assert!(!r.stdout.contains("`df`"), "df is on both PATHs: {r:?}");

    // Not installed: judged by the line --install would write (this shell's PATH), and a
    // file whose jobs use nothing of this shell passes.
    let clean = check("clean.yaml", &[]);
    assert_eq!(clean.code, 0, "{clean:?}");
    assert!(clean.stdout.contains("not installed"), "{clean:?}");
    assert!(
        clean.stdout.contains("nothing the jobs use differs"),
        "{clean:?}"
    );

    // --run runs the line (now the one --install would write, with this PATH) as cron would:
    // it succeeds and prints nothing, and the job saw no $AWS_PROFILE.
    let ran = check("nightly.yaml", &["--run"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout, "", "{ran:?}");
    // Under cron, $AWS_PROFILE was empty.
    assert_eq!(std::fs::read_to_string(env.path("profile")).unwrap(), "\n");
}
