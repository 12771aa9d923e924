# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# Pinned tool versions and where they live; sourced by install-tools.sh and test-env.sh.
# Everything built or downloaded goes to a cache outside the checkout, so it survives
# `git clean` and is shared by every checkout on the machine.

TRIB_CACHE="${TRIB_CACHE:-$HOME/.cache/tributary}"

# Kafka-protocol broker (crates.io). Without dynostore/libsql it has no storage engine.
TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,libsql
TANSU_ROOT="$TRIB_CACHE/tools/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"

# S3-compatible server (crates.io). 0.14.1: later versions need a newer rustc.
S3S_VERSION=0.14.1
S3S_FEATURES=binary
S3S_ROOT="$TRIB_CACHE/tools/s3s-fs-$S3S_VERSION"
S3S_BIN="$S3S_ROOT/bin/s3s-fs"

# Shared cargo target dir for the two tool builds (keeps rebuilds incremental).
TOOLS_TARGET_DIR="$TRIB_CACHE/build"

# PostgreSQL 15 from Debian.
PG_MAJOR=15
PG_BINDIR="/usr/lib/postgresql/$PG_MAJOR/bin"

# Python venv (sees system site-packages) for confluent-kafka, fastavro, pyarrow, boto3.
PY_VENV="$TRIB_CACHE/python-venv"
# confluent-kafka[schemaregistry] cannot be installed from the mirror (it pins a newer certifi
# than PyPI has here), so its schema-registry dependencies are listed one by one.
PY_PACKAGES=(confluent-kafka fastavro pyarrow boto3 authlib httpx cachetools matplotlib)
PY_MODULES=(confluent_kafka fastavro pyarrow boto3 authlib httpx cachetools matplotlib confluent_kafka.schema_registry)
