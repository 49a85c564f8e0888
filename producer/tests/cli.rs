//! The producer's command line: `--kafka-option` values given as `@env:NAME` or `@file:PATH`
//! are resolved (the engine's rule, `connectors::kafka::resolve_option`) before anything runs,
//! and one that cannot be resolved stops the program with a message naming it.

use std::process::Command;

/// The tests run at once: each producer serves its metrics on a port of its own.
const METRICS_ANY_PORT: [&str; 2] = ["--metrics-addr", "127.0.0.1:0"];

#[test]
fn kafka_option_values_resolve_from_env_and_files_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = |option: &str| {
        Command::new(env!("CARGO_BIN_EXE_producer"))
            .args(["--out-dir", dir.path().join("out").to_str().unwrap(), "--count", "3", "--kafka-option", option])
            .args(METRICS_ANY_PORT)
            .output()
            .unwrap()
    };
    let unset = run("sasl.password=@env:IOT_ETL_SURELY_UNSET_VARIABLE");
    let err = String::from_utf8_lossy(&unset.stderr);
    assert!(!unset.status.success() && err.contains("IOT_ETL_SURELY_UNSET_VARIABLE"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing runs when an option cannot be resolved");
    let missing = run("sasl.password=@file:/nonexistent/iot-etl-secret");
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let ok = run(&format!("sasl.password=@file:{}", secret.display()));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn an_output_folder_that_cannot_be_created_is_named_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let out = blocker.join("out"); // a folder under a file: cannot be created
    let run = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["--out-dir", out.to_str().unwrap(), "--count", "3"])
        .args(METRICS_ANY_PORT)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{err}");
    assert!(err.contains(&format!("error: cannot create {}: ", out.display())), "{err}");
    assert!(err.contains("Not a directory"), "the cause is shown: {err}");
}
