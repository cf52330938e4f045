//! `multiprocessing.Pool(4).map(square, dataset)`: one process per item, four at a time,
//! results in input order, each with the worker slot it ran in (P0..P3).
//!
//!     cargo run --example pool_map

fn main() -> Result<(), orchestrate::Error> {
    let dataset = [43, 1, 780, 256, 142, 68, 183, 334, 325, 3];
    let results = orchestrate::map("sh -c 'echo $(( {} * {} ))'", dataset, 4)?;
    for (item, r) in dataset.iter().zip(&results) {
        println!(
            "P{}: {item}^2 = {}",
            r.record.slot.unwrap_or(0),
            r.stdout_text().trim()
        );
    }
    Ok(())
}
