//! A failure never leaves the engine hanging, and logging never stops it.
//!
//! - A closed log pipe (`dataflow … 2>&1 | head`): the run goes on to the end and exits 0 with
//!   every table written; a lost log line is not a reason to stop. Logs written to a pipe
//!   carry no colour codes.
//! - A worker that fails mid-run (here: the folder of the second hour of the `events` table
//!   cannot be created because a file has its name, so the sink's write fails on whichever
//!   worker owns that hour, after the first hour was written) ends the whole process
//!   promptly with exit code 1 and a message naming the file, with nothing after the failed
//!   hour committed, under 1 and 2 workers (`dataflow::failure`).
//! - The same failure in the library (`pipeline::run`, no `main` to exit the process): the run
//!   returns the failure as an error, promptly, instead of waiting forever for the failed
//!   worker, and commits nothing after it.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Makes the `events` table's second hour unwritable: a file has the name of its folder.
fn block_second_hour(output: &Path) {
    let hour = output.join("events/year=2025/month=11/day=03");
    std::fs::create_dir_all(&hour).unwrap();
    std::fs::write(hour.join("hour=01"), b"not a folder").unwrap();
}

/// Nothing after the failed (second) hour was committed: the hour before it may be.
fn nothing_committed_after_the_first_hour(output: &Path, workers: usize) {
    let committed = common::read_table(output, "events");
    let n = committed.len();
    assert!(n <= 2 * 3600, "-w {workers}: {n} events committed although the second hour failed");
}

fn engine(input: &Path, output: &Path, workers: usize) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dataflow"));
    c.arg("--input").arg(input).arg("--output").arg(output);
    c.args(["--bounded", "-w", &workers.to_string(), "--metrics-addr", "127.0.0.1:0", "--progress", "never"]);
    c
}

/// A folder of generated partition files: `count` events at 2 per second from 2025-11-03.
fn generated(seed: u64, count: u64) -> tempfile::TempDir {
    let input = tempfile::tempdir().unwrap();
    common::generate_mixed(input.path(), seed, 2.0, count, "2025-11-03T00:00:00Z");
    input
}

#[test]
fn a_closed_log_pipe_does_not_stop_the_run() {
    let input = generated(5, 2 * 86_400 * 2);
    for workers in [1, 2] {
        let output = tempfile::tempdir().unwrap();
        // Provisional daily values are logged as the run goes: many lines after the first.
        let mut child = engine(input.path(), output.path(), workers)
            .arg("--show-provisional")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let mut first = [0u8; 64];
        stderr.read_exact(&mut first).unwrap();
        assert!(
            !first.contains(&0x1b),
            "-w {workers}: logs written to a pipe carry ANSI colour codes: {:?}",
            String::from_utf8_lossy(&first)
        );
        drop(stderr); // the reader goes away, as `| head` does
        let status = common::wait_at_most(&mut child, Duration::from_secs(120), "closed log pipe");
        assert!(status.success(), "-w {workers}: a closed stderr ended the run: {status}");
        let days = common::read_table(output.path(), "daily_p95");
        assert_eq!(days.len(), 2 * 5, "-w {workers}: every day and type written after the pipe closed");
    }
}

/// Runs `check(input, output, workers)` under 1 and 2 workers, each on a fresh output whose
/// second hour of `events` cannot be written, over three hours of input.
fn with_the_second_hour_blocked(check: impl Fn(&Path, &Path, usize)) {
    let input = generated(6, 3 * 3600 * 2);
    for workers in [1, 2] {
        let output = tempfile::tempdir().unwrap();
        block_second_hour(output.path());
        check(input.path(), output.path(), workers);
    }
}

#[test]
fn a_failed_worker_ends_the_process() {
    with_the_second_hour_blocked(|input, output, workers| {
        let mut child = engine(input, output, workers).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let status = common::wait_at_most(&mut child, Duration::from_secs(60), "failed worker");
        let mut log = String::new();
        child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
        assert_eq!(status.code(), Some(1), "-w {workers}: a failed write must end the process with 1; log:\n{log}");
        assert!(
            log.contains("error: cannot write events/year=2025/month=11/day=03/hour=01/"),
            "-w {workers}: the message names the file that failed; log:\n{log}"
        );
        nothing_committed_after_the_first_hour(output, workers);
        assert!(log.contains("the engine stops"), "-w {workers}: the message says the engine stops; log:\n{log}");
    });
}

#[test]
fn a_failed_worker_ends_the_library_run() {
    with_the_second_hour_blocked(|input, output, workers| {
        let (done, result) = std::sync::mpsc::channel();
        let (source, out) = (input.to_owned(), output.to_owned());
        std::thread::spawn(move || {
            let source = std::sync::Arc::new(connectors::files::FileSource::new(&source));
            let _ = done.send(common::try_run_engine_on(source, &out, workers).map(|s| s.read));
        });
        let result = result
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("-w {workers}: pipeline::run still runs 60 s after a worker failed"));
        let error = format!("{:#}", result.expect_err("a failed write fails the run"));
        assert!(
            error.contains("cannot write events/year=2025/month=11/day=03/hour=01/"),
            "-w {workers}: the error names the file that failed: {error}"
        );
        nothing_committed_after_the_first_hour(output, workers);
    });
}
