//! The library API, as the examples use it.

#[test]
fn run_one_command_like_subprocess_run() {
    let done = orchestrate::run(["sh", "-c", "echo out; echo err >&2; exit 3"]).unwrap();
    assert_eq!(done.record.returncode, Some(3));
    assert_eq!(done.record.status, orchestrate::Status::Failed);
    assert_eq!(done.stdout, b"out\n");
    assert_eq!(done.stderr, b"err\n");
    assert!(!done.success());

    let missing = orchestrate::run(["no-such-program-abc"]).unwrap();
    assert_eq!(missing.record.status, orchestrate::Status::SpawnError);
    assert_eq!(missing.record.returncode, None);
}

#[test]
fn map_keeps_input_order_and_word_safety() {
    let items = [43, 1, 780, 256, 142, 68, 183, 334, 325, 3];
    let results = orchestrate::map(
        "sh -c 'sleep 0.0$(( {} % 5 )); echo $(( {} * {} ))'",
        items,
        4,
    )
    .unwrap();
    let squares: Vec<u64> = results
        .iter()
        .map(|r| r.stdout_text().trim().parse().unwrap())
        .collect();
    let expected: Vec<u64> = items.iter().map(|i| i * i).collect();
    assert_eq!(squares, expected);
    let slots: std::collections::HashSet<_> =
        results.iter().map(|r| r.record.slot.unwrap()).collect();
    assert!(slots.iter().all(|s| *s < 4), "{slots:?}");

    // An item with spaces and shell syntax stays one argument and is never run.
    let tricky = orchestrate::map(
        "printf [%s] {}",
        ["a b", "$(touch /tmp/orchestrate-pwned)", "'q'"],
        2,
    )
    .unwrap();
    let out: Vec<String> = tricky.iter().map(|r| r.stdout_text()).collect();
    assert_eq!(out, ["[a b]", "[$(touch /tmp/orchestrate-pwned)]", "['q']"]);
    assert!(!std::path::Path::new("/tmp/orchestrate-pwned").exists());
}
