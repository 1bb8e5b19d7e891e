#!/usr/bin/env bash
# Install everything the tests need (Python packages, the relay Worker's npm packages with
# their own Node 22) and run every test: the relay's in workerd, then pytest.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
(cd relay && npm ci --no-audit --no-fund --loglevel=error && npm test)
exec .venv/bin/pytest "$@"
