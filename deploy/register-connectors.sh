#!/bin/sh
# One-shot: registers every connector in /connectors with the worker's Kafka Connect REST
# API. Idempotent: a connector that already exists (HTTP 409) is left as it is.
set -eu
WORKER="${WORKER_URL:-http://tributary:8083}"
for file in /connectors/*.json; do
    code=$(curl -sS -o /tmp/response -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' --data @"$file" "$WORKER/connectors")
    case "$code" in
        201) echo "created $(basename "$file" .json)" ;;
        409) echo "exists  $(basename "$file" .json)" ;;
        *) echo "failed  $(basename "$file" .json): HTTP $code"; cat /tmp/response; echo; exit 1 ;;
    esac
done
curl -sS "$WORKER/connectors?expand=status"
echo
