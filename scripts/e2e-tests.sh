#!/usr/bin/env bash
# The end-to-end tests against real servers, which each script installs and starts on
# loopback itself (README.md, "Tests"); run by scripts/test.sh and by the `e2e` job of
# .github/workflows/ci.yml:
#
#   scripts/e2e-tests.sh
#
# Expects the release binaries in target/release (scripts/unit-tests.sh builds them; CI's
# `e2e` job downloads them from the `tests` job). Stops at the first script that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/monitoring-check.sh        # promtool check config/rules/test rules, Prometheus loads every panel query
tests/e2e/kafka.sh                 # Kafka source vs file source on a real broker (tansu), -w 2, -n 2, broker restart
tests/e2e/kafka-crash.sh           # live run SIGKILLed 5 times while a producer writes; -n 2 with one process SIGKILLed
tests/e2e/s3.sh                    # exactly-once to a real S3-compatible server (moto): SIGKILLs, 30 s freeze
tests/e2e/aws.sh                   # deploy/aws on moto: setup.sh twice, cfn-lint + checkov, least-privilege engine, SIGKILL + restart
tests/e2e/prometheus.sh            # a real Prometheus scraping the live embedded run: every panel query has data
tests/e2e/secrets.sh               # credentials given to the engine never reach its logs, metrics or outputs
