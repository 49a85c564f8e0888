#!/usr/bin/env bash
# Formatting and lints of the whole workspace (README.md, "CI and security checks"); run by
# scripts/test.sh and by the `lint` job of .github/workflows/ci.yml:
#
#   scripts/lint.sh
#
# 1. `cargo fmt --all --check` (rustfmt.toml at the root): fails on any unformatted file and
#    prints the diff; `cargo fmt --all` fixes it;
# 2. `cargo clippy --workspace --all-targets -- -D warnings`: every clippy warning in any crate,
#    test, bench or example fails.
# Needs the rustfmt and clippy components (`rustup component add rustfmt clippy`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --version >/dev/null 2>&1 || { echo "error: rustfmt is missing: rustup component add rustfmt" >&2; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { echo "error: clippy is missing: rustup component add clippy" >&2; exit 1; }
echo "== cargo fmt --all --check"
cargo fmt --all --check
echo "== cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
