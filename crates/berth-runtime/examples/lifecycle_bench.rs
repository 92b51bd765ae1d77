//! In-process lifecycle benchmark: create → start → wait → delete of one bundle through
//! the library API, the path the engine takes (no runtime binary exec'd per container).
//!
//! `lifecycle_bench BUNDLE STATE_ROOT RUNS` prints the median and mean per container.

use std::time::{Duration, Instant};

use berth_runtime::{CreateOptions, Runtime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the engine does once at start-up.
    berth_runtime::run_from_sealed_binary()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bundle, root, runs] = args.as_slice() else {
        return Err("usage: lifecycle_bench BUNDLE STATE_ROOT RUNS".into());
    };
    let runs: usize = runs.parse()?;
    let runtime = Runtime::new(root.as_ref())?;
    let one = |id: &str| -> Result<Duration, berth_runtime::Error> {
        let started = Instant::now();
        runtime.create(id, bundle.as_ref(), &CreateOptions::default())?;
        runtime.start(id)?;
        runtime.wait(id)?;
        runtime.delete(id, false)?;
        Ok(started.elapsed())
    };
    for _ in 0..5 {
        one("warmup")?;
    }
    let mut times = (0..runs)
        .map(|i| one(&format!("bench-{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    times.sort();
    let mean = times.iter().sum::<Duration>() / runs as u32;
    println!(
        "berth-api      {:7.2} ms mean  (median {:.2} ms)",
        mean.as_secs_f64() * 1000.0,
        times[runs / 2].as_secs_f64() * 1000.0
    );
    Ok(())
}
