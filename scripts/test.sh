#!/usr/bin/env bash
# The whole test suite, as the README's second quick-start command and CI (.ci/run) run it.
#
# Installs what the tests need (Azurite from npm into ./node_modules, Python test packages into
# ./.venv), starts Azurite on free loopback ports, then runs formatting, lints and every test.
# Anything missing fails the run loudly; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { printf '\n== %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

say "checking the toolchain"
command -v cargo >/dev/null || die "cargo is required (https://rustup.rs)"
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are required (for Azurite)"
command -v python3 >/dev/null || die "python3 (3.11+, built with --enable-shared) is required"
python3 - <<'PY' || die "python3 must be 3.11+ with its shared library (Py_ENABLE_SHARED)"
import sys, sysconfig
assert sys.version_info >= (3, 11), sys.version
assert sysconfig.get_config_var("Py_ENABLE_SHARED"), "built without --enable-shared"
print("python", sys.version.split()[0], "at", sys.executable)
PY

say "installing Azurite (npm, local)"
if [ ! -x node_modules/.bin/azurite ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

say "starting Azurite on free loopback ports"
read -r BLOB_PORT QUEUE_PORT TABLE_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PY
)
AZURITE_LOG=$(mktemp)
node_modules/.bin/azurite --silent --inMemoryPersistence --disableTelemetry --skipApiVersionCheck --loose \
  --blobHost 127.0.0.1 --blobPort "$BLOB_PORT" \
  --queueHost 127.0.0.1 --queuePort "$QUEUE_PORT" \
  --tableHost 127.0.0.1 --tablePort "$TABLE_PORT" >"$AZURITE_LOG" 2>&1 &
AZURITE_PID=$!
cleanup() { kill "$AZURITE_PID" 2>/dev/null || true; wait "$AZURITE_PID" 2>/dev/null || true; rm -f "$AZURITE_LOG"; }
trap cleanup EXIT
for port in "$BLOB_PORT" "$QUEUE_PORT" "$TABLE_PORT"; do
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$AZURITE_PID" 2>/dev/null || { cat "$AZURITE_LOG" >&2; die "Azurite exited during start-up"; }
    sleep 0.2
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { cat "$AZURITE_LOG" >&2; die "Azurite did not listen on port $port"; }
done
KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
export BIFROST_TEST_AZURITE="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$BLOB_PORT/devstoreaccount1;QueueEndpoint=http://127.0.0.1:$QUEUE_PORT/devstoreaccount1;TableEndpoint=http://127.0.0.1:$TABLE_PORT/devstoreaccount1;"
export BIFROST_TEST_AZURITE_PID=$AZURITE_PID
echo "Azurite (pid $AZURITE_PID): blob $BLOB_PORT, queue $QUEUE_PORT, table $TABLE_PORT"

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

say "cargo test"
# Unit and integration tests of every crate (doc examples are not tests here; benches run apart).
TEST_LOG=$(mktemp)
set +e
cargo test --workspace --lib --bins --tests --no-fail-fast 2>&1 | tee "$TEST_LOG"
status=${PIPESTATUS[0]}
set -e

say "deployment checks (infra/ against the settings, checkov, Dockerfile, workflows, docs)"
set +e
./scripts/deploy-checks.sh 2>&1 | tee -a "$TEST_LOG"
deploy_status=${PIPESTATUS[0]}
set -e
[ "$deploy_status" -eq 0 ] || echo "deploy checks: FAILED (exit $deploy_status)"
[ "$status" -ne 0 ] || status=$deploy_status

say "fuzzing the HTTP API from its OpenAPI document (schemathesis)"
set +e
./scripts/fuzz.sh
fuzz_status=$?
set -e
[ "$fuzz_status" -eq 0 ] || echo "fuzz: FAILED (exit $fuzz_status)"
[ "$status" -ne 0 ] || status=$fuzz_status

# One closing line for the whole run: the sum over every test binary.
awk -v fuzz="$fuzz_status" '/^test result:/ || /^[0-9]+ (passed|failed).* in [0-9.]+s/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { if (fuzz == 0) p++; else f++; printf "\ntests: %d passed, %d failed\n", p, f; if (p <= 1) exit 1 }' "$TEST_LOG" || { rm -f "$TEST_LOG"; die "no test ran"; }
rm -f "$TEST_LOG"
exit "$status"
