#!/usr/bin/env bash
# The README test command: install missing tools, start the real servers, run every test.
#
#   scripts/test.sh [extra test-runner args, e.g. a test-name filter]
#
# Exits non-zero on any failure. The servers are left running for the next run (their
# state is reused); set TRIB_TEST_ENV_DOWN=1 to stop them at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

scripts/install-tools.sh
scripts/test-env.sh up

status=0
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --all-targets --no-fail-fast "$@" || status=$?
else
    echo "test.sh: cargo-nextest not found; falling back to cargo test" >&2
    cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?
fi

if [[ ${TRIB_TEST_ENV_DOWN:-0} == 1 ]]; then
    scripts/test-env.sh down
fi
exit "$status"
