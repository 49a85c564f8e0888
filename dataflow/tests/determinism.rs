//! Determinism and reference test on producer-generated data (duplicates, late events, every
//! invalid kind, outliers): every table equals the naive recomputation, and `-w 1`, `-w 2`,
//! `-w 4` and `-n 2` (two processes of the real binary on loopback) write identical tables
//! and identical file lists.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_rows_eq, assert_tables_eq, file_list, generate_mixed, read_tables, reference, run_engine, TABLES};

fn generate(dir: &Path) {
    generate_mixed(dir, 7, 10.0, 120_000, "2025-11-03T22:00:00Z");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn producer_data_matches_the_reference_and_every_worker_and_process_count_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    generate(&input);
    let expected = reference(&input);
    // The data exercises what it should.
    assert!(!expected["late"].is_empty() && !expected["rejected"].is_empty());
    assert!(expected["daily_p95"].len() >= 5, "at least one full day per type");
    let reasons: std::collections::BTreeSet<String> =
        expected["rejected"].iter().map(|r| format!("{:?}", r[2])).collect();
    assert_eq!(reasons.len(), connectors::parse::RejectReason::ALL.len(), "every rejection reason occurs: {reasons:?}");

    let one = dir.path().join("w1");
    let summary = run_engine(&input, &one, 1);
    assert!(summary.duplicates > 0);
    assert_tables_eq(&one, &expected);
    let files = file_list(&one);
    assert!(files.iter().all(|f| f.ends_with(".parquet")), "no temporary file left: {files:?}");

    for workers in [2, 4] {
        let out = dir.path().join(format!("w{workers}"));
        run_engine(&input, &out, workers);
        assert_eq!(file_list(&out), files, "-w {workers} writes the same files");
        assert_tables_eq(&out, &expected);
    }

    // Two processes of the real binary, two workers each, on loopback. Timely's host file
    // needs the ports before the processes start, so a port is found free and released
    // first; another program may take it in between, so a run whose process cannot bind
    // its port is tried again, with new ports and a fresh output (at most three times).
    let out = dir.path().join("n2");
    for attempt in 1..=3 {
        let _ = std::fs::remove_dir_all(&out);
        let hosts = dir.path().join("hosts.txt");
        std::fs::write(&hosts, format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port())).unwrap();
        let children: Vec<_> = (0..2)
            .map(|p| {
                Command::new(env!("CARGO_BIN_EXE_dataflow"))
                    .args(["--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--bounded"])
                    .args([
                        "-w",
                        "2",
                        "-n",
                        "2",
                        "-p",
                        &p.to_string(),
                        "-h",
                        hosts.to_str().unwrap(),
                        "--progress",
                        "never",
                    ])
                    .args(["--metrics-addr", "127.0.0.1:0"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("start dataflow")
            })
            .collect();
        let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        if outputs.iter().all(|o| o.status.success()) {
            break;
        }
        let logs: String = outputs.iter().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).collect();
        let taken = logs.contains("Address already in use") || logs.contains("AddrInUse");
        assert!(taken && attempt < 3, "a dataflow process failed (attempt {attempt}):\n{logs}");
    }
    assert_eq!(file_list(&out), files, "-n 2 writes the same files");
    let got = read_tables(&out);
    for t in TABLES {
        assert_rows_eq(t, &got[t], &expected[t]);
    }
}
