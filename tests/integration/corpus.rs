//! The corpus of bad job files (tests/corpus/bad): each is refused with exit 2 and the exact
//! message (snapshots), before any job starts or anything is written to the store.

use crate::helpers::Env;

fn check(env: &Env, file: &str) -> String {
    let r = env.run(&[file]);
    assert_eq!(r.code, 2, "{file}: {r:?}");
    assert!(r.stdout.is_empty(), "{file}: {r:?}");
    assert!(!env.path("marker").exists(), "{file}: a job ran");
    assert!(!env.state().exists(), "{file}: the store was touched");
    r.stderr
}

#[test]
fn every_bad_job_file_is_refused_with_its_exact_message() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 60, "the corpus has {} cases", files.len());
    for path in files {
        let env = Env::new();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&path, env.path(&name)).unwrap();
        let stderr = check(&env, &name);
        let case = name.trim_end_matches(".yaml");
        // `name-hidden-061C-...`: the message names that code point.
        if let Some(rest) = case.strip_prefix("name-hidden-") {
            let code = rest.split('-').next().unwrap();
            let want = format!("U+{code}");
            assert!(stderr.contains(&want), "{name}: no {want} in {stderr}");
        }
        insta::assert_snapshot!(case, stderr);
    }
}

#[test]
fn an_enormous_job_file_is_refused_without_reading_it() {
    let env = Env::new();
    let f = std::fs::File::create(env.path("huge.yaml")).unwrap();
    // Sparse: 300 MiB on paper, nothing on disk.
    f.set_len(300 << 20).unwrap();
    let stderr = check(&env, "huge.yaml");
    assert_eq!(
        stderr,
        "error: huge.yaml: is 314572800 bytes; job files are limited to 256 MiB\n"
    );
}
