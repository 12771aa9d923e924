#!/usr/bin/env bash
# Installs what the real-server test environment needs, only where it is missing:
#   - Debian packages: MariaDB 10.11, PostgreSQL 15, cmake + C toolchain + curl headers
#     (rdkafka's bundled librdkafka)
#   - tansu (Kafka-protocol broker) and s3s-fs (S3 server), built once with `cargo install`
#     into a cache outside the checkout ($TRIB_CACHE, default ~/.cache/tributary)
#   - a Python venv with confluent-kafka, fastavro, pyarrow, boto3 (client-side checks)
# Idempotent; takes well under a second when everything is present.
# The first tansu build takes ~30 minutes on a 2-core machine; it never runs again afterwards.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { printf 'install-tools: error: %s\n' "$*" >&2; exit 1; }

# --- Debian packages ---------------------------------------------------------

debian_packages() {
    # libcurl4-openssl-dev: librdkafka 2.12.1 (rdkafka-sys 4.10, cmake-build) includes
    # <curl/curl.h> even with WITH_CURL=0 (confluentinc/librdkafka#5135, rust-rdkafka#829).
    local wanted=(mariadb-server mariadb-client "postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR"
                  cmake build-essential pkg-config libcurl4-openssl-dev openssl python3)
    # The venv module is split out on Debian's own python3; other pythons (pyenv) have it.
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then wanted+=(python3-venv); fi

    local missing=() pkg status
    for pkg in "${wanted[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ $status == "install ok installed" ]] || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0

    local sudo=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null || die "missing Debian packages: ${missing[*]}; run as root: apt-get install -y ${missing[*]}"
        sudo=(sudo)
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Try without `apt-get update` first: it is slow and usually not needed.
    if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
        log "apt-get install failed; running apt-get update and retrying"
        "${sudo[@]}" apt-get update
        "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" \
            || die "could not install ${missing[*]}; try: apt-get update && apt-get install -y ${missing[*]}"
    fi
}

# --- cargo-installed servers ---------------------------------------------------

# Prints the PID of a running `cargo install ... --root <dir>` (e.g. a build started in the
# background by another script), so we wait for it instead of building the same thing twice.
running_cargo_install() {
    local root=$1 f i
    local -a argv
    for f in /proc/[0-9]*/cmdline; do
        mapfile -d '' -t argv 2>/dev/null <"$f" || continue
        [[ ${#argv[@]} -gt 2 && ${argv[0]##*/} == cargo && ${argv[1]} == install ]] || continue
        for ((i = 2; i + 1 < ${#argv[@]}; i++)); do
            if [[ ${argv[i]} == --root && ${argv[i+1]} == "$root" ]]; then
                f=${f#/proc/}; echo "${f%/cmdline}"; return 0
            fi
        done
    done
    return 1
}

# cargo_tool NAME VERSION FEATURES ROOT BIN
cargo_tool() {
    local name=$1 version=$2 features=$3 root=$4 bin=$5 pid
    [[ -x $bin ]] && return 0
    command -v cargo >/dev/null || die "cargo not found; install Rust (rustup) and re-run scripts/install-tools.sh"

    mkdir -p "$TRIB_CACHE"
    # One build at a time per cache, even with several checkouts running this script.
    exec 8>"$TRIB_CACHE/install.lock"
    flock 8

    while pid="$(running_cargo_install "$root")"; do
        log "waiting for the running build of $name (pid $pid) to finish..."
        while kill -0 "$pid" 2>/dev/null; do sleep 5; done
    done
    if [[ ! -x $bin ]]; then
        log "building $name $version with cargo install (first run only; tansu takes ~30 min on 2 cores)"
        cargo install "$name" --version "$version" --locked --features "$features" \
            --root "$root" --target-dir "$TOOLS_TARGET_DIR" 8>&- \
            || die "cargo install $name $version failed; fix the error above and re-run scripts/install-tools.sh"
    fi
    [[ -x $bin ]] || die "$bin still missing after cargo install $name"
    exec 8>&-
}

# --- Python clients ------------------------------------------------------------

python_packages() {
    local check find
    check="import $(IFS=,; echo "${PY_MODULES[*]}")"
    # Fast presence check (no import of pyarrow & co.); a full import follows an install.
    find="import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))"
    [[ -x $PY_VENV/bin/python ]] && "$PY_VENV/bin/python" -c "$find" "${PY_MODULES[@]}" 2>/dev/null && return 0

    if [[ ! -x $PY_VENV/bin/python ]]; then
        log "creating Python venv $PY_VENV"
        python3 -m venv --system-site-packages "$PY_VENV" \
            || die "python3 -m venv failed; install python3-venv (apt-get install -y python3-venv)"
    fi
    log "installing Python packages: ${PY_PACKAGES[*]}"
    "$PY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" \
        || die "pip install ${PY_PACKAGES[*]} failed; see the error above"
    "$PY_VENV/bin/python" -c "$check" || die "Python packages still not importable: ${PY_MODULES[*]}"
}

debian_packages
python_packages
cargo_tool s3s-fs "$S3S_VERSION" "$S3S_FEATURES" "$S3S_ROOT" "$S3S_BIN"
cargo_tool tansu "$TANSU_VERSION" "$TANSU_FEATURES" "$TANSU_ROOT" "$TANSU_BIN"
log "all tools present"
