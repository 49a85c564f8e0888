//! Window commit latency (live runs): for each window file a commit publishes, the processing
//! time since the source frontier passed the window's end; kept in the counters for the
//! metrics histogram and the run's summary.

use std::time::Instant;

use crate::counters::Counters;
use crate::operators::sink::live_file;

/// Live runs: for each window file just committed (`windows/…/part-m<minute>-NNN.parquet`,
/// one minute each), the processing time since the source frontier passed the window's end,
/// which is when its row became final. Bounded runs write hour files and record nothing.
pub(super) fn record_window_latencies(c: &Counters, files: &[String]) {
    let now = Instant::now();
    let Ok(mut reached) = c.frontier_reached.lock() else { return };
    let mut latencies = Vec::new();
    let mut newest = None;
    for file in files.iter().filter(|f| f.starts_with("windows/")) {
        let Some((minute, _)) = live_file(file) else { continue };
        if let Some((_, at)) = reached.range(minute + 1..).next() {
            latencies.push(now.saturating_duration_since(*at).as_secs_f64());
            newest = newest.max(Some(minute + 1));
        }
    }
    // Frontier values below the newest window end committed are not needed again.
    if let Some(n) = newest {
        *reached = reached.split_off(&n);
    }
    drop(reached);
    if let Ok(mut all) = c.window_latencies.lock() {
        for l in latencies {
            all.record(l);
        }
    }
}
