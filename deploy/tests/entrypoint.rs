//! The container entrypoint, run with a fake pod name and a fake `dataflow` on PATH that
//! records its arguments: the ordinal becomes `-p`, TIMELY_PROCESSES `-n`, and the hostfile
//! lists every pod's stable DNS name in ordinal order. Bad pod names stop it with a message.

use std::path::Path;
use std::process::Command;

fn entrypoint() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("entrypoint.sh")
}

fn fake_dataflow(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("dataflow");
    std::fs::write(&fake, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}/args.txt\n", dir.display())).unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

fn run(dir: &Path, pod: &str, processes: &str) -> std::process::Output {
    Command::new("sh")
        .arg(entrypoint())
        .args(["dataflow", "--bounded", "-w", "2"])
        .env("PATH", fake_dataflow(dir))
        .env("POD_NAME", pod)
        .env("POD_NAMESPACE", "iot-etl")
        .env("TIMELY_PROCESSES", processes)
        .env("HEADLESS_SERVICE", "iot-etl-engine")
        .env("HOSTFILE_PATH", dir.join("hosts.txt"))
        .output()
        .unwrap()
}

#[test]
fn pod_ordinal_becomes_the_process_index_and_hosts_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "iot-etl-engine-2", "3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let args = std::fs::read_to_string(dir.path().join("args.txt")).unwrap();
    let hosts_path = dir.path().join("hosts.txt");
    let expected_args = format!("-n\n3\n-p\n2\n-h\n{}\n--bounded\n-w\n2\n", hosts_path.display());
    assert_eq!(args, expected_args);
    let hosts = std::fs::read_to_string(hosts_path).unwrap();
    assert_eq!(
        hosts,
        "iot-etl-engine-0.iot-etl-engine.iot-etl.svc.cluster.local:2101\n\
         iot-etl-engine-1.iot-etl-engine.iot-etl.svc.cluster.local:2101\n\
         iot-etl-engine-2.iot-etl-engine.iot-etl.svc.cluster.local:2101\n"
    );
}

#[test]
fn bad_pod_names_and_ordinals_stop_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "engine", "3");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("POD_NAME=engine"));
    let out = run(dir.path(), "iot-etl-engine-3", "3");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not below TIMELY_PROCESSES=3"));
    assert!(!dir.path().join("args.txt").exists(), "the engine never started");
}
