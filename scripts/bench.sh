#!/usr/bin/env bash
# Benchmarks on the test environment's real servers, each beside its raw ceiling in the
# same run (absolute figures drift on shared machines; ratios within one run do not).
#
#   scripts/bench.sh <scenario> [--rows N] [--repeat 3] [--json]
#
# Scenarios:
#   mysql      MariaDB catch-up (default 500k rows) vs mariadb-binlog --read-from-remote-server,
#              plain and -v, over the same binlog range [--kafka: also into the test Kafka]
#   postgres   PostgreSQL catch-up (default 500k rows) vs pg_recvlogical, each on its own copy
#              of one slot made before the load
#   latency    commit -> durable in the log with a steady writer
#              [--rate 10000] [--seconds 10] [--source mysql|postgres|both]
#   snapshot   initial snapshot (default 1M rows; --rows 5000000 for the issue's size) vs a
#              plain SELECT / COPY to /dev/null   [--source mysql|postgres|both]
#   sinks      the sink crates' own benches (JDBC upsert, S3), skipped when absent
#
# Prints the median and min-max of --repeat runs as a Markdown table headed with the commit
# and the core count (--json: JSON on stdout, the table on stderr). Needs
# `scripts/test-env.sh up`. Builds the release benchmark binary first (cargo's bench profile).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
    mysql | postgres | latency | snapshot | sinks) ;;
    -h | --help | help | "")
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
        [[ -n ${1:-} ]] && exit 0 || exit 2 ;;
    *) die "unknown scenario '$1'; use mysql, postgres, latency, snapshot or sinks (--help)" ;;
esac

env_file="${TRIB_TEST_ENV_FILE:-$ROOT/.test-env/env}"
if [[ $1 != sinks && ! -r $env_file ]]; then
    die "$env_file not found: start the test environment with scripts/test-env.sh up"
fi

printf 'bench: building tributary-bench (release)...\n' >&2
cargo build --quiet --release -p tributary-bench --bin tributary-bench
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ $target_dir == /* ]] || target_dir="$ROOT/$target_dir"

export TRIB_REPO_ROOT="$ROOT"
export TRIB_TEST_ENV_FILE="$env_file"
exec "$target_dir/release/tributary-bench" "$@"
