#!/usr/bin/env bash
# The build stage of deploy/Dockerfile: builds the three release binaries and copies them
# to OUT_DIR. CI runs it directly (there is no Docker engine there) so the stage stays true.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/docker-build.sh OUT_DIR}
cargo build --release --locked -p dataflow -p producer -p analytics
mkdir -p "$out"
cp target/release/dataflow target/release/producer target/release/analytics "$out"/
