#!/usr/bin/env bash
# The project's real-server test environment, without Docker.
#
#   scripts/test-env.sh up       start whatever is not running, then write .test-env/env
#   scripts/test-env.sh down     stop what `up` started (by PID file); data is kept
#   scripts/test-env.sh status   print each service up/down; exit 1 unless all are up
#   scripts/test-env.sh reset    down, then delete all state (next `up` starts from scratch)
#
# Services, all on 127.0.0.1. To move one (e.g. a second checkout on the same machine), set
# the variable in brackets for `up`; the port is remembered in .test-env/<service>.port.
#   MariaDB 10.11   13306  [TRIB_MARIADB_PORT]  binlog ROW/FULL/FULL, users root (admin), cdc
#   PostgreSQL 15   15432  [TRIB_PG_PORT]       wal_level=logical, roles postgres (admin), cdc
#   tansu (Kafka)   19092  [TRIB_KAFKA_PORT]    memory storage engine
#   s3s-fs (S3)     19000  [TRIB_S3_PORT]
# MariaDB and PostgreSQL accept TLS (optional) with a test CA made in .test-env/tls
# (TRIB_TLS_CA in the env file).
#
# State lives in .test-env/ (git-ignored). When running as root, PostgreSQL runs as the
# `postgres` OS user; if that user cannot reach .test-env/, its data dir goes to
# /tmp/tributary-pg-<hash of checkout path> instead (recorded as TRIB_PG_DATADIR).
# Tools come from scripts/install-tools.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"

STATE="$ROOT/.test-env"
ENV_FILE="$STATE/env"
START_TIMEOUT="${TRIB_START_TIMEOUT:-60}"   # seconds to wait for each server

# Fixed test credentials (loopback only).
MARIADB_CDC_PASSWORD=cdc
PG_ADMIN_PASSWORD=postgres
PG_CDC_PASSWORD=cdc
S3_ACCESS_KEY=tributary
S3_SECRET_KEY=tributary-secret
S3_REGION=us-east-1

log() { printf 'test-env: %s\n' "$*" >&2; }
die() { printf 'test-env: error: %s\n' "$*" >&2; exit 1; }

# --- process helpers -----------------------------------------------------------

# alive PID: the process exists and is not a zombie (servers are reparented to init, which
# may take a while to reap them).
alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat="$(cat /proc/"$1"/stat 2>/dev/null)" || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# is_ours PID MARKER: PID is alive and its command line or working dir contains MARKER
# (guards against a stale PID file whose PID was reused by an unrelated process).
is_ours() {
    local pid=$1 marker=$2 args cwd
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    args="$(tr '\0' ' ' 2>/dev/null </proc/"$pid"/cmdline || true)"
    cwd="$(readlink /proc/"$pid"/cwd 2>/dev/null || true)"
    [[ $args == *"$marker"* || $cwd == "$marker"* ]]
}

# pid_from FILE: first line of a PID file, or nothing.
pid_from() { if [[ -r $1 ]]; then head -n1 "$1" 2>/dev/null || true; fi; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ensure_port_free SERVICE PORT VAR: fail clearly if another process already owns the port.
ensure_port_free() {
    if port_open "$2"; then
        die "$1: 127.0.0.1:$2 is already in use by a process this checkout did not start;" \
            "stop it (scripts/test-env.sh down in the checkout that started it) or pick another port, e.g. $3=$(($2 + 100)) scripts/test-env.sh up"
    fi
}

# pick_port SERVICE DEFAULT VAR: the port to start SERVICE on. An explicit $VAR must be free
# (else fail clearly); otherwise the saved or default port, or the next free one after it
# when another checkout on this machine (a CI clone, say) already runs its servers there.
pick_port() {
    local service=$1 default=$2 var=$3 explicit=${!3:-} p
    if [[ -n $explicit ]]; then
        ensure_port_free "$service" "$explicit" "$var"
        echo "$explicit"
        return
    fi
    for ((p = default; p < default + 50; p++)); do
        if ! port_open "$p"; then
            [[ $p == "$default" ]] || log "$service: 127.0.0.1:$default is taken; using $p"
            echo "$p"
            return
        fi
    done
    die "$service: no free port in $default..$((default + 49)); set $var to a free port"
}

# wait_ready SERVICE LOG PIDFILE MARKER CMD...: poll CMD until it succeeds; fail with the log
# tail if the process dies or START_TIMEOUT passes.
wait_ready() {
    local service=$1 logfile=$2 pidfile=$3 marker=$4; shift 4
    local deadline=$((SECONDS + START_TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ! is_ours "$(pid_from "$pidfile")" "$marker"; then
            fail_with_log "$service exited during startup" "$logfile"
        fi
        if ((SECONDS >= deadline)); then
            fail_with_log "$service not ready after ${START_TIMEOUT}s" "$logfile"
        fi
        sleep 0.05
    done
}

fail_with_log() {
    printf 'test-env: error: %s; last lines of %s:\n' "$1" "$2" >&2
    tail -n 30 "$2" >&2 2>/dev/null || true
    die "$1 (full log: $2)"
}

# stop_pid SERVICE PID: SIGTERM, wait up to 60 s, then SIGKILL.
stop_pid() {
    local service=$1 pid=$2 deadline=$((SECONDS + 60))
    kill -TERM "$pid" 2>/dev/null || return 0
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "$service (pid $pid) did not stop after 60s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.05
    done
}

# saved_port SERVICE DEFAULT: the port the service was last started on, else DEFAULT.
saved_port() { local p; p="$(pid_from "$STATE/$1.port")"; echo "${p:-$2}"; }

require_bin() { [[ -x $1 ]] || die "$1 not found; run scripts/install-tools.sh"; }

# Launches a server in its own session so it outlives this script (and any test runner),
# with the state lock's fd closed so it does not hold the lock.
launch() { # PIDFILE LOG CWD CMD...
    local pidfile=$1 logfile=$2 cwd=$3; shift 3
    (cd "$cwd" && exec setsid "$@" </dev/null >>"$logfile" 2>&1 9>&-) &
    echo $! >"$pidfile"
}

# --- TLS material ----------------------------------------------------------------

# A test CA and a server certificate for MariaDB and PostgreSQL, made once per state dir.
# The server certificate names IP 127.0.0.1 and DNS tributary-test-server only (not
# `localhost`), so tests can show verify_ca passing where hostname verification must fail.
# untrusted-ca.pem is a second CA that signed nothing: verification against it must fail.
TLS_DIR="$STATE/tls"

tls_material() {
    [[ -f $TLS_DIR/server-key.pem && -f $TLS_DIR/untrusted-ca.pem ]] && return 0
    command -v openssl >/dev/null || die "openssl not found; run scripts/install-tools.sh"
    local tmp; tmp="$(mktemp -d "$STATE/tls.XXXXXX")"
    (
        cd "$tmp"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=tributary test CA' \
            -keyout ca-key.pem -out ca.pem
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=untrusted test CA' \
            -keyout untrusted-ca-key.pem -out untrusted-ca.pem
        openssl req -newkey rsa:2048 -nodes -subj '/CN=tributary-test-server' \
            -keyout server-key.pem -out server.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:tributary-test-server\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
            -days 3650 -extfile server.ext -out server.pem
        rm -f server.csr server.ext ca.srl ca-key.pem untrusted-ca-key.pem
    ) >"$tmp/openssl.log" 2>&1 || fail_with_log "making test TLS certificates failed" "$tmp/openssl.log"
    rm -f "$tmp/openssl.log"
    chmod 644 "$tmp"/*.pem
    chmod 600 "$tmp/server-key.pem"
    chmod 755 "$tmp"
    rm -rf "$TLS_DIR"
    mv -T "$tmp" "$TLS_DIR"
}

# --- MariaDB ------------------------------------------------------------------

MDB_DIR="$STATE/mariadb"
MDB_DATA="$MDB_DIR/data"
MDB_SOCK="$MDB_DIR/mariadb.sock"
MDB_PIDFILE="$MDB_DIR/server.pid"
MDB_LOG="$MDB_DIR/mariadb.log"

mariadb_pid() { local p; p="$(pid_from "$MDB_PIDFILE")"; is_ours "$p" "$MDB_DATA" && echo "$p"; }

# A freshly initialised datadir, cached per MariaDB version outside the checkout:
# copying it is faster than mariadb-install-db.
mariadb_template() {
    local version template tmp
    version="$(mariadbd --version | awk '{print $3}')"
    template="$TRIB_CACHE/mariadb-template-$version"
    if [[ ! -d $template ]]; then
        mkdir -p "$TRIB_CACHE"
        tmp="$(mktemp -d "$TRIB_CACHE/mariadb-template.XXXXXX")"
        local user=(); [[ $EUID -eq 0 ]] && user=(--user=root)
        # auth=normal: root@localhost/127.0.0.1 without password, usable from any OS user.
        mariadb-install-db --no-defaults --datadir="$tmp/data" "${user[@]}" \
            --auth-root-authentication-method=normal --skip-test-db >"$tmp/install.log" 2>&1 \
            || fail_with_log "mariadb-install-db failed" "$tmp/install.log"
        # Another checkout may have won the race; then keep theirs.
        mv -T "$tmp/data" "$template" 2>/dev/null || true
        rm -rf "$tmp"
    fi
    echo "$template"
}

mariadb_up() {
    if mariadb_pid >/dev/null; then return 0; fi
    command -v mariadbd >/dev/null || die "mariadbd not found; run scripts/install-tools.sh"
    local port; port="$(pick_port mariadb "$(saved_port mariadb 13306)" TRIB_MARIADB_PORT)"
    mkdir -p "$MDB_DIR/tmp"
    if [[ ! -d $MDB_DATA/mysql ]]; then
        local template; template="$(mariadb_template)"
        rm -rf "$MDB_DATA"
        cp -a "$template" "$MDB_DATA.tmp" && mv -T "$MDB_DATA.tmp" "$MDB_DATA"
    fi
    echo "$port" >"$STATE/mariadb.port"
    local user=(); [[ $EUID -eq 0 ]] && user=(--user=root)
    launch "$MDB_PIDFILE" "$MDB_LOG" "$MDB_DIR" mariadbd --no-defaults "${user[@]}" \
        --datadir="$MDB_DATA" --tmpdir="$MDB_DIR/tmp" \
        --socket="$MDB_SOCK" --pid-file="$MDB_DIR/mariadbd.pid" \
        --bind-address=127.0.0.1 --port="$port" --skip-name-resolve \
        --server-id=1 --log-bin="$MDB_DATA/binlog" \
        --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        --max-connections=500 --innodb-flush-log-at-trx-commit=2 \
        --ssl-ca="$TLS_DIR/ca.pem" --ssl-cert="$TLS_DIR/server.pem" --ssl-key="$TLS_DIR/server-key.pem" \
        --log-error="$MDB_LOG"
    wait_ready mariadb "$MDB_LOG" "$MDB_PIDFILE" "$MDB_DATA" \
        mariadb-admin --no-defaults --socket="$MDB_SOCK" -uroot ping
    # Least-privilege CDC user (Debezium's documented grants). Idempotent.
    mariadb --no-defaults --socket="$MDB_SOCK" -uroot <<SQL
CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY '$MARIADB_CDC_PASSWORD';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD, LOCK TABLES ON *.* TO 'cdc'@'%';
SQL
    port_open "$port" || fail_with_log "mariadb not accepting TCP on 127.0.0.1:$port" "$MDB_LOG"
    log "mariadb up on 127.0.0.1:$port"
}

mariadb_down() {
    local pid
    if pid="$(mariadb_pid)"; then stop_pid mariadb "$pid"; log "mariadb stopped"; fi
    rm -f "$MDB_PIDFILE"
}

# --- PostgreSQL ---------------------------------------------------------------

# As root, PostgreSQL runs as `postgres`, so its data dir must be reachable by that user:
# .test-env/pg when the checkout is traversable by it, else a per-checkout dir in /tmp.
pick_pg_dir() {
    if [[ $EUID -ne 0 ]] || runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
        echo "$STATE/pg"
    else
        echo "/tmp/tributary-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
    fi
}
PG_DIR="$(pick_pg_dir)"

# as_pg CMD...: run as the postgres OS user when we are root.
as_pg() {
    if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_pid() {
    local dir=$PG_DIR p
    p="$(pid_from "$dir/data/postmaster.pid")"
    is_ours "$p" "$dir/data" && echo "$p"
}

pg_up() {
    local dir=$PG_DIR port
    if pg_pid >/dev/null; then return 0; fi
    require_bin "$PG_BINDIR/postgres"
    [[ $EUID -ne 0 ]] || id postgres >/dev/null 2>&1 || die "OS user postgres missing; run scripts/install-tools.sh"
    port="$(pick_port postgres "$(saved_port pg 15432)" TRIB_PG_PORT)"
    mkdir -p "$dir"
    [[ $EUID -ne 0 ]] || chown postgres: "$dir"
    [[ $dir == "$STATE/pg" ]] || ln -sfn "$dir" "$STATE/pg"

    if [[ ! -f $dir/data/PG_VERSION ]]; then
        # initdb into a temp dir and rename, so an interrupted init never leaves a half datadir.
        as_pg rm -rf "$dir/data.tmp"
        printf '%s\n' "$PG_ADMIN_PASSWORD" | as_pg tee "$dir/pwfile" >/dev/null
        (cd "$dir" && as_pg "$PG_BINDIR/initdb" -D "$dir/data.tmp" -U postgres --pwfile="$dir/pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync \
            >"$dir/initdb.log" 2>&1) || fail_with_log "initdb failed" "$dir/initdb.log"
        as_pg rm -f "$dir/pwfile"
        as_pg mkdir -p "$dir/run"
        # Later settings win over initdb's defaults.
        as_pg tee -a "$dir/data.tmp/postgresql.conf" >/dev/null <<CONF

# --- tributary test environment (scripts/test-env.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/run'
max_connections = 300
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
wal_sender_timeout = '10s'
logical_decoding_work_mem = '256MB'
max_slot_wal_keep_size = '4GB'
# Test data only: skip fsync for speed (commit visibility to walsenders is unchanged).
fsync = off
full_page_writes = off
CONF
        as_pg mv -T "$dir/data.tmp" "$dir/data"
    fi
    echo "$port" >"$STATE/pg.port"
    # TLS on (clients choose; pg_hba allows both): PostgreSQL wants its key owned by its own
    # user and private, so it gets copies under its dir.
    mkdir -p "$dir/tls"
    cp "$TLS_DIR/server.pem" "$TLS_DIR/server-key.pem" "$dir/tls/"
    chmod 600 "$dir/tls/server-key.pem"
    [[ $EUID -ne 0 ]] || chown -R postgres: "$dir/tls"
    # pg_ctl -w waits until the server accepts connections, and fails if it exits.
    (cd "$dir" && as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
        -o "-p $port -c ssl=on -c ssl_cert_file=$dir/tls/server.pem -c ssl_key_file=$dir/tls/server-key.pem" -w -t "$START_TIMEOUT" start >/dev/null 9>&-) \
        || fail_with_log "postgres failed to start" "$dir/postgres.log"
    wait_ready postgres "$dir/postgres.log" "$dir/data/postmaster.pid" "$dir/data" \
        "$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port"
    # Least-privilege CDC role: LOGIN REPLICATION + read access to all tables. Idempotent.
    "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/run" -p "$port" -U postgres -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cdc') THEN
    CREATE ROLE cdc LOGIN REPLICATION PASSWORD '$PG_CDC_PASSWORD';
  END IF;
END \$\$;
GRANT pg_read_all_data TO cdc;
SQL
    log "postgres up on 127.0.0.1:$port (data $dir/data)"
}

pg_down() {
    local dir=$PG_DIR pid
    if pid="$(pg_pid)"; then
        (cd "$dir" && as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null) \
            || stop_pid postgres "$pid"
        log "postgres stopped"
    fi
}

# --- tansu (Kafka protocol) -----------------------------------------------------

KAFKA_DIR="$STATE/kafka"
KAFKA_PIDFILE="$KAFKA_DIR/server.pid"
KAFKA_LOG="$KAFKA_DIR/tansu.log"

# tansu has no path argument; it runs with cwd=$KAFKA_DIR, which is_ours checks.
kafka_pid() { local p; p="$(pid_from "$KAFKA_PIDFILE")"; is_ours "$p" "$KAFKA_DIR" && echo "$p"; }

kafka_up() {
    if kafka_pid >/dev/null; then return 0; fi
    require_bin "$TANSU_BIN"
    local port; port="$(pick_port kafka "$(saved_port kafka 19092)" TRIB_KAFKA_PORT)"
    mkdir -p "$KAFKA_DIR"
    echo "$port" >"$STATE/kafka.port"
    # The memory engine: tansu's SQLite engine is buggy. Topics vanish on restart.
    # env -u: tansu also reads these from the environment (and a .env file in its cwd).
    launch "$KAFKA_PIDFILE" "$KAFKA_LOG" "$KAFKA_DIR" \
        env -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE -u SCHEMA_REGISTRY \
        -u CLUSTER_ID -u OTEL_EXPORTER_OTLP_ENDPOINT \
        "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/
    wait_ready kafka "$KAFKA_LOG" "$KAFKA_PIDFILE" "$KAFKA_DIR" port_open "$port"
    log "kafka (tansu) up on 127.0.0.1:$port"
}

kafka_down() {
    local pid
    if pid="$(kafka_pid)"; then stop_pid kafka "$pid"; log "kafka stopped"; fi
    rm -f "$KAFKA_PIDFILE"
}

# --- s3s-fs (S3) ----------------------------------------------------------------

S3_DIR="$STATE/s3"
S3_PIDFILE="$S3_DIR/server.pid"
S3_LOG="$S3_DIR/s3s-fs.log"

s3_pid() { local p; p="$(pid_from "$S3_PIDFILE")"; is_ours "$p" "$S3_DIR" && echo "$p"; }

s3_up() {
    if s3_pid >/dev/null; then return 0; fi
    require_bin "$S3S_BIN"
    local port; port="$(pick_port s3 "$(saved_port s3 19000)" TRIB_S3_PORT)"
    mkdir -p "$S3_DIR/data"
    echo "$port" >"$STATE/s3.port"
    launch "$S3_PIDFILE" "$S3_LOG" "$S3_DIR" "$S3S_BIN" \
        --host 127.0.0.1 --port "$port" \
        --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$S3_DIR/data"
    wait_ready s3 "$S3_LOG" "$S3_PIDFILE" "$S3_DIR" port_open "$port"
    log "s3 (s3s-fs) up on 127.0.0.1:$port"
}

s3_down() {
    local pid
    if pid="$(s3_pid)"; then stop_pid s3 "$pid"; log "s3 stopped"; fi
    rm -f "$S3_PIDFILE"
}

# --- env file -------------------------------------------------------------------

write_env() {
    local mdb_port pg_port kafka_port s3_port python tmp
    mdb_port="$(saved_port mariadb 13306)"
    pg_port="$(saved_port pg 15432)"
    kafka_port="$(saved_port kafka 19092)"
    s3_port="$(saved_port s3 19000)"
    python="$PY_VENV/bin/python"; [[ -x $python ]] || python="$(command -v python3 || true)"
    tmp="$(mktemp "$STATE/env.XXXXXX")"
    cat >"$tmp" <<ENV
# Written by scripts/test-env.sh up. Plain KEY=value lines: source it, or parse it.
TRIB_TEST_ENV_DIR=$STATE
TRIB_MARIADB_URL=mysql://root@127.0.0.1:$mdb_port
TRIB_MARIADB_CDC_URL=mysql://cdc:$MARIADB_CDC_PASSWORD@127.0.0.1:$mdb_port
TRIB_MARIADB_PORT=$mdb_port
TRIB_MARIADB_SOCKET=$MDB_SOCK
TRIB_MARIADB_BIN=$(command -v mariadb)
TRIB_MARIADB_BINLOG_BIN=$(command -v mariadb-binlog)
TRIB_PG_URL=postgres://postgres:$PG_ADMIN_PASSWORD@127.0.0.1:$pg_port/postgres
TRIB_PG_CDC_URL=postgres://cdc:$PG_CDC_PASSWORD@127.0.0.1:$pg_port/postgres
TRIB_PG_PORT=$pg_port
TRIB_PG_BINDIR=$PG_BINDIR
TRIB_PG_RECVLOGICAL_BIN=$PG_BINDIR/pg_recvlogical
TRIB_PSQL_BIN=$PG_BINDIR/psql
TRIB_PG_DATADIR=$PG_DIR/data
TRIB_KAFKA_BOOTSTRAP=127.0.0.1:$kafka_port
TRIB_TANSU_BIN=$TANSU_BIN
TRIB_S3_ENDPOINT=http://127.0.0.1:$s3_port
TRIB_S3_ACCESS_KEY=$S3_ACCESS_KEY
TRIB_S3_SECRET_KEY=$S3_SECRET_KEY
TRIB_S3_REGION=$S3_REGION
TRIB_S3FS_BIN=$S3S_BIN
TRIB_SCHEMA_REGISTRY_URL=
TRIB_PYTHON=$python
TRIB_TLS_CA=$TLS_DIR/ca.pem
TRIB_TLS_UNTRUSTED_CA=$TLS_DIR/untrusted-ca.pem
ENV
    chmod 644 "$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

# --- commands --------------------------------------------------------------------

SERVICES=(mariadb pg kafka s3)

lock_state() {
    mkdir -p "$STATE"
    chmod 755 "$STATE"   # PostgreSQL (as user postgres) may keep its data under it
    exec 9>"$STATE/lock"
    flock 9
}

cmd_up() {
    lock_state
    # A failed `up` leaves no env file, so tests fail with "run scripts/test-env.sh up".
    trap '[[ $? -eq 0 ]] || rm -f "$ENV_FILE"' EXIT
    local svc
    tls_material
    for svc in "${SERVICES[@]}"; do "${svc}_up"; done
    write_env
    log "environment ready: $ENV_FILE"
}

cmd_down() {
    lock_state
    rm -f "$ENV_FILE"
    local svc
    for svc in "${SERVICES[@]}"; do "${svc}_down"; done
}

cmd_status() {
    local svc pid all=0 port
    for svc in "${SERVICES[@]}"; do
        if pid="$("${svc}_pid")"; then
            port="$(saved_port "$svc" '?')"
            printf '%-8s up    pid %-8s 127.0.0.1:%s\n' "$svc" "$pid" "$port"
        else
            printf '%-8s down\n' "$svc"; all=1
        fi
    done
    if [[ -f $ENV_FILE ]]; then echo "env file: $ENV_FILE"; else echo "env file: missing (run scripts/test-env.sh up)"; fi
    return $all
}

cmd_reset() {
    cmd_down
    [[ $PG_DIR == "$STATE/pg" ]] || rm -rf "$PG_DIR"
    rm -rf "$STATE"
    log "state removed"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    *) echo "usage: scripts/test-env.sh up|down|status|reset" >&2; exit 2 ;;
esac
