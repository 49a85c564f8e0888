//! The checkpoint knows its input (see `connectors::sink::commit`, "Input identity").
//!
//! - A bounded run over folder A, then a run over folder B into the same output, stops before
//!   it starts with an error naming both folders and the fixes (a new `--output`, `--reset`),
//!   and leaves A's tables untouched.
//! - The same folder spelled another way (a relative path with `..`) is the same input: the
//!   run resumes (nothing left to do) and the tables are unchanged.
//! - `--reset` says what it deletes, deletes it, and the run over B then writes exactly the
//!   tables of a run over B into a fresh output.
//! - The embedded run (no input flags, no `--output`) writes each run to a new folder under
//!   `./output`, since each run's in-memory topic is a new input.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bounded(input: &Path, output: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dataflow"))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--bounded", "-w", "2", "--metrics-addr", "127.0.0.1:0", "--progress", "never"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_checkpoint_refuses_another_input_until_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    common::generate_mixed(&a, 21, 2.0, 4000, "2025-11-03T00:00:00Z");
    common::generate_mixed(&b, 22, 2.0, 4000, "2025-11-03T00:00:00Z");
    let out = dir.path().join("out");

    let first = bounded(&a, &out, &[]);
    assert!(first.status.success(), "run over a: {}", String::from_utf8_lossy(&first.stderr));
    let tables_a = common::read_tables(&out);
    assert!(!tables_a["events"].is_empty());

    // Another folder into the same output: refused before anything is written.
    let other = bounded(&b, &out, &[]);
    let log = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(1), "a run over another input must stop: {log}");
    let (canon_a, canon_b) = (std::fs::canonicalize(&a).unwrap(), std::fs::canonicalize(&b).unwrap());
    for needle in [
        "belongs to another input",
        &canon_a.display().to_string(),
        &canon_b.display().to_string(),
        "--output",
        "--reset",
    ] {
        assert!(log.contains(needle), "the error names {needle:?}: {log}");
    }
    common::assert_tables_eq(&out, &tables_a);

    // The same folder spelled another way is the same input.
    let again = bounded(&b.join("..").join("a"), &out, &[]);
    assert!(
        again.status.success(),
        "the same input by another path resumes: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    common::assert_tables_eq(&out, &tables_a);

    // --reset says what it deletes, then the output holds exactly a fresh run's tables.
    let reset = bounded(&b, &out, &["--reset"]);
    let log = String::from_utf8_lossy(&reset.stderr);
    assert!(reset.status.success(), "--reset: {log}");
    assert!(
        log.contains("--reset: deleting") && log.contains("events (") && log.contains("checkpoint:"),
        "--reset says what it deletes: {log}"
    );
    let fresh = dir.path().join("fresh");
    let run_b = bounded(&b, &fresh, &[]);
    assert!(run_b.status.success());
    let tables_b = common::read_tables(&fresh);
    common::assert_tables_eq(&out, &tables_b);
    assert_eq!(common::file_list(&out), common::file_list(&fresh), "no file of the old input is left");
}

#[test]
fn each_embedded_run_writes_a_new_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let mut folders = Vec::new();
    for _ in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dataflow"))
            .current_dir(cwd.path())
            .args(["--metrics-addr", "127.0.0.1:0", "--producer-metrics-addr", "127.0.0.1:0", "--progress", "never"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let folder = loop {
            let found: Vec<_> = std::fs::read_dir(cwd.path().join("output"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !folders.contains(n))
                .collect();
            if let Some(f) = found.first() {
                break f.clone();
            }
            assert!(Instant::now() < deadline, "the embedded run created no folder under ./output");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(folder.starts_with("embedded-"), "{folder}");
        common::interrupt(&child);
        let status = common::wait_at_most(&mut child, Duration::from_secs(30), "stopping the embedded run with SIGINT");
        assert!(status.success(), "SIGINT ends the embedded run with 0: {status}");
        folders.push(folder);
        std::thread::sleep(Duration::from_millis(1100)); // the folder name has 1 s resolution
    }
    assert_ne!(folders[0], folders[1]);
}
