#!/usr/bin/env bash
# Loads the demo databases into the servers `scripts/test-env.sh up` started (no Docker):
#   MariaDB   inventory  (deploy/mysql/01-inventory.sql, the same file docker-compose seeds)
#   Postgres  ecommerce  (deploy/postgres/01-ecommerce.sql, with its publication)
# Idempotent: a database that already exists is left as it is. Then run
#   cargo run --release -- run --connectors-dir configs/quickstart-cdc
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
ENV_FILE="$ROOT/.test-env/env"
if [[ ! -r $ENV_FILE ]]; then
    echo "seed-local: $ENV_FILE is missing: start the servers first with scripts/test-env.sh up" >&2
    exit 1
fi
# shellcheck disable=SC1090
source "$ENV_FILE"

mariadb_cmd=("$TRIB_MARIADB_BIN" --no-defaults -h 127.0.0.1 -P "$TRIB_MARIADB_PORT" -u root)
if ! "${mariadb_cmd[@]}" -e 'SELECT 1' >/dev/null 2>&1; then
    echo "seed-local: MariaDB does not answer on 127.0.0.1:$TRIB_MARIADB_PORT: run scripts/test-env.sh up" >&2
    exit 1
fi
if [[ -n $("${mariadb_cmd[@]}" -N -e "SHOW DATABASES LIKE 'inventory'") ]]; then
    echo "seed-local: MariaDB database inventory exists; left as it is"
else
    "${mariadb_cmd[@]}" <"$ROOT/deploy/mysql/01-inventory.sql"
    echo "seed-local: MariaDB database inventory created (4 tables)"
fi

psql_cmd=("$TRIB_PSQL_BIN" -X -q -v ON_ERROR_STOP=1)
if ! "${psql_cmd[@]}" "$TRIB_PG_URL" -c 'SELECT 1' >/dev/null 2>&1; then
    echo "seed-local: Postgres does not answer at ${TRIB_PG_URL%%@*}@...: run scripts/test-env.sh up" >&2
    exit 1
fi
if [[ -n $("${psql_cmd[@]}" "$TRIB_PG_URL" -At -c "SELECT 1 FROM pg_database WHERE datname = 'ecommerce'") ]]; then
    echo "seed-local: Postgres database ecommerce exists; left as it is"
else
    "${psql_cmd[@]}" "$TRIB_PG_URL" -c 'CREATE DATABASE ecommerce'
    "${psql_cmd[@]}" "${TRIB_PG_URL%/*}/ecommerce" -f "$ROOT/deploy/postgres/01-ecommerce.sql"
    echo "seed-local: Postgres database ecommerce created (3 tables, publication tributary_ecommerce)"
fi
