#!/usr/bin/env bash
# Formatting and lints of the whole workspace (README.md, "CI and security checks"); run by
# scripts/test.sh and by the `lint` job of .github/workflows/ci.yml:
#
#   scripts/lint.sh
#
# 1. `cargo fmt --all --check` (rustfmt.toml at the root): fails on any unformatted file and
#    prints the diff; `cargo fmt --all` fixes it;
# 2. `cargo clippy --release --workspace --all-targets -- -D warnings`: every clippy warning in
#    any crate, test, bench or example fails. In the release profile, so that the build
#    scripts and proc macros it compiles (librdkafka's C build among them) are the ones the
#    release build of scripts/unit-tests.sh uses: measured, clippy after a release build
#    takes ~25 s, where the dev profile compiles them all a second time (minutes).
# Needs the rustfmt and clippy components (`rustup component add rustfmt clippy`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --version >/dev/null 2>&1 || { echo "error: rustfmt is missing: rustup component add rustfmt" >&2; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { echo "error: clippy is missing: rustup component add clippy" >&2; exit 1; }
echo "== cargo fmt --all --check"
cargo fmt --all --check
echo "== cargo clippy --release --workspace --all-targets --locked -- -D warnings"
cargo clippy --release --workspace --all-targets --locked -- -D warnings
