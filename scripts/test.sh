#!/usr/bin/env bash
# The one command that runs every test of the workspace (README.md, "Tests"); CI's workflow
# (.github/workflows/ci.yml) runs the same four scripts as separate jobs.
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

scripts/lint.sh                    # cargo fmt --check; cargo clippy --workspace --all-targets -D warnings
scripts/unit-tests.sh "$@"         # release build, the Dockerfile's build stage, cargo test --workspace --release
scripts/e2e-tests.sh               # end-to-end tests against real servers the scripts install and start on loopback
scripts/security-check.sh          # actionlint, checkov over deploy/, cargo deny (licences, bans, sources)
