#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis: any 5xx answer fails.
#
# Installs schemathesis into ./.venv (PyPI), starts the debug binary with the local developer
# identity (so every route is reachable) on a free loopback port, and runs every operation with
# generated inputs, positive and negative. Called by scripts/test.sh after the cargo tests.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt

cargo build -q -p bifrost --bin bifrost
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATA=$(mktemp -d)
LOG=$(mktemp)
BIFROST_DEV_IDENTITY=admin BIFROST_RATE_LIMIT=0 BIFROST_LOG=warn \
  "${CARGO_TARGET_DIR:-target}/debug/bifrost" serve --port "$PORT" --data-dir "$DATA" --workspace examples/workspace >"$LOG" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA" "$LOG"; }
trap cleanup EXIT
for _ in $(seq 1 150); do
  if curl -fsS "http://127.0.0.1:$PORT/api/health" >/dev/null 2>&1; then break; fi
  kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; echo "fuzz.sh: bifrost exited during start-up" >&2; exit 1; }
  sleep 0.2
done

# Create an org so org-scoped routes have something to act on.
ORG=$(curl -fsS -X POST "http://127.0.0.1:$PORT/api/organizations" -H 'content-type: application/json' \
  -d '{"name":"Fuzz Org","domain":"fuzz.example"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

set +e
.venv/bin/schemathesis run "http://127.0.0.1:$PORT/api/openapi.json" \
  --checks not_a_server_error \
  --max-examples "${FUZZ_EXAMPLES:-40}" \
  --seed 20261126 \
  --workers 2 \
  --request-timeout 10 \
  -H "X-Organization-Id: $ORG"
status=$?
set -e
if grep -q "panicked" "$LOG"; then
  echo "fuzz.sh: the server logged a panic:" >&2
  grep -A5 "panicked" "$LOG" >&2
  exit 1
fi
exit $status
