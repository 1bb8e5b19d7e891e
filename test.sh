#!/usr/bin/env bash
# Install everything the tests need (Python packages, the relay Worker's npm packages with
# their own Node 22, Debian's chromium for the dashboard and prometheus for the metrics)
# and run every test: the relay's in workerd, then pytest.
set -euo pipefail
cd "$(dirname "$0")"
# The tests start hundreds of Python processes (pytest's workers, gunicorn, the CLI): with
# bytecode caching off, each would compile every module it imports all over again.
unset PYTHONDONTWRITEBYTECODE
# Likewise Node (the relay's tests, wrangler, Miniflare) keeps what it compiled: a cache that
# goes when `npm ci` replaces node_modules.
export NODE_COMPILE_CACHE="$PWD/relay/node_modules/.compile-cache"
# Installs are skipped while what they install from is unchanged since the last one that
# succeeded (the stamp is written after it): a clean clone installs everything.
stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }
python_packages() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    if [ "$(cat .venv/.installed-from 2>/dev/null)" != "$(stamp setup.cfg pyproject.toml)" ]; then
        # uv, at the version the test extras pin, installs the rest (pip takes a minute more).
        .venv/bin/pip install --quiet --disable-pip-version-check \
            "$(grep -o 'uv==[0-9.]*' setup.cfg)"
        .venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[test]'
        stamp setup.cfg pyproject.toml > .venv/.installed-from
    fi
}
relay_packages() {
    if [ "$(cat relay/node_modules/.installed-from 2>/dev/null)" != "$(stamp relay/package-lock.json)" ]; then
        (cd relay && env -u NODE_COMPILE_CACHE npm ci --no-audit --no-fund --loglevel=error)
        stamp relay/package-lock.json > relay/node_modules/.installed-from
    fi
}
# Debian's, when missing: chromium, as its headless shell and as the package a person opens
# (the dashboard's tests), and prometheus (the metrics'). Only the server tests need them.
debian_packages() {
    local missing=()
    [ -x /usr/bin/chromium-headless-shell ] || missing+=(chromium-headless-shell)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/prometheus ] || missing+=(prometheus)
    if [ ${#missing[@]} != 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
# The two installs wait on the network more than on the machine: side by side.
python_packages & python_install=$!
relay_packages
wait $python_install
# The tests that start no gunicorn, browser, wrangler or end-to-end setup share nothing but
# the machine: they run on three processes (the third takes up what the others leave while
# they wait on a subprocess), a file to each at a time (module fixtures are built once).
# The others hold ports, processes and deadlines: they run after them, on three processes
# (each test has its own ports, log, temporary files and wrangler registry; most of their
# time goes to waiting on the processes they start), never beside the first ones. Beside
# them, at the lowest priority, runs what is marked `untimed`: pure computation (the query
# engine against ClickHouse, the validators' properties) that takes what the server tests
# leave of the machine while they wait, and times nothing that waiting for a core could
# stretch.
QUICK="not gunicorn and not e2e and not browser and not wrangler"
parallel() { .venv/bin/pytest -n 3 --dist loadfile --no-loadscope-reorder "$@"; }
quick() { parallel -m "$1" --durations=10 "${@:2}"; }
if [ "${1:-}" = "--quick" ]; then
    # The quick loop, for the time between edits: those tests alone, with a quarter of
    # each property's examples.
    shift
    ANALYTICS_TESTS_QUICK=1 quick "$QUICK" "$@"
    exit
fi
# Beside the first part: the relay's own tests (in workerd; their output follows the first
# part's), and Debian's install (dpkg unpacks 200 MB: beside the installs or the collection
# that compiles, it slowed them more than it slows these tests).
relay_log=$(mktemp)
(cd relay && npm test) > "$relay_log" 2>&1 & relay_tests=$!
debian_packages & debian_install=$!
# Each part runs whatever the others said; pytest's 5 (nothing selected) is a failure only
# when no part selected a test (`./test.sh tests/test_ingest.py` selects in one).
first=0; second=0; untimed=0; relay=0
quick "$QUICK and not untimed" "$@" || first=$?
wait $relay_tests || relay=$?
cat "$relay_log"; rm -f "$relay_log"
wait $debian_install || { echo "test.sh: apt-get failed (Debian's packages)" >&2; exit 1; }
untimed_log=$(mktemp)
# (no cache: two pytest runs at once would each write it)
nice -n 19 .venv/bin/pytest -m untimed -p no:cacheprovider --durations=5 "$@" \
    > "$untimed_log" 2>&1 & untimed_tests=$!
parallel -m "not ($QUICK)" --durations=15 "$@" || second=$?
wait $untimed_tests || untimed=$?
cat "$untimed_log"; rm -f "$untimed_log"
if [ $relay != 0 ]; then exit $relay; fi
if [ $first = 5 ] && [ $second = 5 ] && [ $untimed = 5 ]; then exit 5; fi
for status in $first $second $untimed; do
    if [ $status != 0 ] && [ $status != 5 ]; then exit $status; fi
done
