#!/usr/bin/env bash
# Start the service on its defaults: SQLite log in var/analytics.db, data points printed to
# stdout, no network. Needs INTERNAL_KEY_BINDING; arguments go to `analytics-worker serve`.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[mirror]'
exec .venv/bin/analytics-worker serve "$@"
