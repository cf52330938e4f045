//! Hot paths off the process-spawning critical path: planning a large job file, and committing
//! finished records to the store in one batch.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use orchestrate::record::{Sealed, Secrets};
use orchestrate::store::{NewRun, RunStore};
use orchestrate::{CompletedProcess, Plan, Status};

const PLAN_JOBS: usize = 100_000;
const BATCH: usize = 1_000;

fn plan_100k(c: &mut Criterion) {
    let mut text = String::with_capacity(PLAN_JOBS * 32);
    text.push_str("jobs:\n");
    for i in 0..PLAN_JOBS {
        text.push_str(&format!("  - /usr/bin/true arg{i}\n"));
    }
    let mut g = c.benchmark_group("plan");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(PLAN_JOBS as u64));
    g.bench_function("from_text_100k_jobs", |b| {
        b.iter(|| {
            let plan = Plan::from_text(Path::new("bench.yaml"), black_box(&text)).unwrap();
            assert_eq!(plan.jobs.len(), PLAN_JOBS);
            plan
        })
    });
    g.finish();
}

fn record_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RunStore::open(dir.path()).unwrap();
    let records: Vec<Sealed> = (0..BATCH)
        .map(|i| {
            let rec = CompletedProcess::not_started(
                &format!("job-{i}"),
                i,
                vec!["true".into()],
                Status::Succeeded,
                String::new(),
            );
            Sealed::new(rec, &Secrets::default())
        })
        .collect();
    let mut runs = 0u64;
    let mut g = c.benchmark_group("store");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("record_batch_1000", |b| {
        // Each iteration inserts into a fresh run (begin_run is not timed), so every batch is a
        // plain insert rather than a replace of the previous iteration's rows.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                runs += 1;
                let id = format!("bench-{runs}");
                store
                    .begin_run(&NewRun {
                        id: id.clone(),
                        job_file: None,
                        job_file_hash: None,
                        started: SystemTime::now(),
                        total: BATCH,
                    })
                    .unwrap();
                let t = Instant::now();
                store.record_batch(&id, black_box(&records)).unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, plan_100k, record_batch);
criterion_main!(benches);
