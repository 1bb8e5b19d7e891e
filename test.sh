#!/usr/bin/env bash
# Install everything the tests need (Python packages, the relay Worker's npm packages with
# their own Node 22, Debian's chromium for the dashboard and prometheus for the metrics)
# and run every test: the relay's in workerd, then pytest.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/chromium ]; then
    # Playwright's own browser download is not reachable everywhere; Debian's build is.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x /usr/bin/prometheus ]; then
    # The metrics tests scrape the service with a real Prometheus (and check its rules).
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
(cd relay && npm ci --no-audit --no-fund --loglevel=error && npm test)
exec .venv/bin/pytest "$@"
