#!/usr/bin/env bash
# The one command that runs every test of the workspace (README.md, "Tests").
#
# Unit, property, operator/reference and multi-process tests need nothing but the Rust
# toolchain and a C compiler (librdkafka is built from the rdkafka crate's bundled source).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required: $2" >&2; exit 1; }; }
need cargo "install the Rust toolchain (rustup)"
need cc "install gcc (apt-get install -y gcc)"
need make "install make (apt-get install -y make)"

cargo build --workspace --release --locked
cargo test --workspace --locked "$@"
