#!/usr/bin/env bash
# Start the service on its defaults: SQLite log in var/analytics.db, data points printed to
# stdout, no network. Needs INTERNAL_KEY_BINDING; arguments go to `analytics-worker serve`.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
# Installed again only when setup.cfg or pyproject.toml changed since the last install, this
# command's or test.sh's (whose test extras hold the mirror's).
stamp=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if ! grep -qsx "$stamp" .venv/.run-installed-from .venv/.installed-from; then
    .venv/bin/pip install --quiet --disable-pip-version-check -e '.[mirror]'
    echo "$stamp" > .venv/.run-installed-from
fi
exec .venv/bin/analytics-worker serve "$@"
