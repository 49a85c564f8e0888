#!/usr/bin/env bash
# The workspace's own tests, without external servers (README.md, "Tests"); run by
# scripts/test.sh and by the `tests` job of .github/workflows/ci.yml:
#
#   scripts/unit-tests.sh [CARGO TEST ARGS...]
#
# Builds the release binaries, runs the Dockerfile's build stage directly
# (scripts/docker-build.sh, for machines without a Docker engine) and checks its binaries
# start, then `cargo test --workspace --release` (unit, property, operator/reference,
# multi-process, crash and failure tests, the Kubernetes manifests). The tests share the
# release profile with the binaries, so the workspace is compiled once; the end-to-end
# scripts (scripts/e2e-tests.sh) use the same binaries in target/release.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --release --locked
# The README's quick start (`cargo run --release -p dataflow`, `-p producer`) must reuse this
# build: each binary alone resolves the workspace's dependency features (workspace-hack/).
for package in dataflow producer analytics; do
  if cargo build --release --locked -p $package 2>&1 | grep -E '^ *Compiling '; then
    echo "error: building $package alone compiled the crates above again: its dependency features differ from the workspace's (name them in workspace-hack/Cargo.toml)" >&2
    exit 1
  fi
done
# The Dockerfile's build stage, run directly (there is no Docker engine in CI).
scripts/docker-build.sh target/docker-out
for bin in dataflow producer analytics; do target/docker-out/$bin --help >/dev/null; done
cargo test --workspace --release --locked "$@"
