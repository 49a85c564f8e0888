#!/usr/bin/env bash
# The one command that runs every test of the workspace (README.md, "Tests").
#
# Unit, property, operator/reference and multi-process tests need nothing but the Rust
# toolchain and a C compiler (librdkafka is built from the rdkafka crate's bundled source).
# The end-to-end tests install what they need (Prometheus from Debian, the tansu broker with
# cargo install, about 11 minutes the first time, moto from PyPI) and fail loudly if a server cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required: $2" >&2; exit 1; }; }
need cargo "install the Rust toolchain (rustup)"
need cc "install gcc (apt-get install -y gcc)"
need make "install make (apt-get install -y make)"

cargo build --workspace --release --locked
# The Dockerfile's build stage, run directly (there is no Docker engine in CI).
scripts/docker-build.sh target/docker-out
for bin in dataflow producer analytics; do target/docker-out/$bin --help >/dev/null; done
# The tests share the release profile with the binaries above (one compile, not two).
cargo test --workspace --release --locked "$@"
# End-to-end, against real servers the scripts install and start on loopback.
scripts/monitoring-check.sh        # promtool check config/rules/test rules, Prometheus loads every panel query
tests/e2e/kafka.sh                 # Kafka source vs file source on a real broker (tansu), -w 2, -n 2, broker restart
tests/e2e/kafka-crash.sh           # live run SIGKILLed 5 times while a producer writes; -n 2 with one process SIGKILLed
tests/e2e/s3.sh                    # exactly-once to a real S3-compatible server (moto): SIGKILLs, 30 s freeze
tests/e2e/prometheus.sh            # a real Prometheus scraping the live embedded run: every panel query has data
