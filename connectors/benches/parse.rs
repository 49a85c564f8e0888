//! Micro-benchmark of the validator: `cargo bench -p connectors --bench parse`.
//!
//! Parses a buffer of generated event lines (realistic shape, ~250 bytes each) several
//! times and prints MB/s and events/s of `parse_event`, next to the baseline of
//! `serde_json::from_slice::<serde_json::Value>` on the same lines, measured in the same run.

use std::hint::black_box;
use std::time::Instant;

use connectors::parse::{parse_event, DEFAULT_MAX_MESSAGE_BYTES};

fn lines(n: usize) -> Vec<Vec<u8>> {
    const TYPES: [&str; 5] = ["temperature", "pressure", "humidity", "motion", "light"];
    (0..n)
        .map(|i| {
            format!(
                r#"{{"event_id":"{:08x}-5f5e-4c39-9d5a-{:012x}","device_id":"device-{:03}","device_type":"{}","timestamp":"2025-11-08T18:{:02}:{:02}.{:03}Z","event_duration":{}.{:02},"value":{}.5,"status":"normal","metadata":{{"location":"zone-A","firmware":"v1.0.0"}}}}"#,
                i, i * 7919, i % 50 + 1, TYPES[i % 5], (i / 60) % 60, i % 60, i % 1000, 50 + i % 400, i % 100, i % 40
            )
            .into_bytes()
        })
        .collect()
}

fn measure(name: &str, data: &[Vec<u8>], rounds: usize, mut f: impl FnMut(&[u8]) -> bool) -> f64 {
    let bytes: usize = data.iter().map(Vec::len).sum();
    let start = Instant::now();
    let mut ok = 0usize;
    for _ in 0..rounds {
        for line in data {
            ok += usize::from(f(line));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let events = (data.len() * rounds) as f64 / secs;
    println!("{name:<28} {:>8.1} MB/s {:>12.0} events/s ({ok} ok)", (bytes * rounds) as f64 / secs / 1e6, events);
    events
}

fn main() {
    let data = lines(200_000);
    let ours = measure("parse_event", &data, 5, |l| black_box(parse_event(l, DEFAULT_MAX_MESSAGE_BYTES)).is_ok());
    let base = measure("serde_json::Value (baseline)", &data, 5, |l| {
        black_box(serde_json::from_slice::<serde_json::Value>(l)).is_ok()
    });
    println!("ratio parse_event / baseline: {:.2}x", ours / base);
}
