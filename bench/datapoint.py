"""What one data point costs, from a Worker's `writeDataPoint` call to the log (SPEC §6.2).

A Worker of its own (relay/test/fixtures/datapoints-caller) and the relay run in one real
`wrangler dev` (workerd from npm), as the README says to run them; the service runs under
gunicorn_conf as shipped (2 workers). Each round sends the caller one request that makes
one `writeDataPoint` call, not awaited, and answers at once; the point is timed from the
moment that request is sent until it can be read from the log (a read-only SQLite
connection polled every 0.5 ms). Alternating with it, the same point is POSTed straight to
the service's /track/datapoints and timed until its answer (which means committed): the
difference is what the Worker, the relay and the hop between them add. One point at a
time, each distinct; bounded by --points per path and --seconds in all.

    flock /tmp/bench.lock .venv/bin/python bench/datapoint.py [--points 500] [--seconds 180]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ingest import ROOT, Gunicorn  # noqa: E402
from wrangler_dev import RELAY, WranglerDev  # noqa: E402

KEY = "bench-key"
CALLER = RELAY / "test" / "fixtures" / "datapoints-caller"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def point(n: int) -> dict:
    return {"blobs": [f"bench-{n}", "/checkout", "FR"], "doubles": [1, 512, n],
            "indexes": ["example.com"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500, help="per path")
    parser.add_argument("--seconds", type=float, default=180, help="at most, in all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        db = tmp / "bench.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANALYTICS_", "INTERNAL_KEY"))}
        env.update({"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_SINK": "none",
                    "ANALYTICS_DB": str(db), "PYTHONPATH": str(ROOT)})
        service = Gunicorn("app:create_app()", env)
        dev = WranglerDev(ROOT, ["-c", str(CALLER / "wrangler.jsonc"),
                                 "-c", str(RELAY / "wrangler.jsonc"), "--env", "dev"],
                          tmp / "registry", tmp / "state", tmp / "wrangler.log",
                          env={"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_SERVICE_URL": service.url})
        try:
            dev.wait_ready()
            through, direct = run(dev, service.url, db, args.points, args.seconds)
        finally:
            dev.stop()
            service.stop()
    report(through, direct)


def run(dev: WranglerDev, service_url: str, db: Path, points: int, seconds: float
        ) -> tuple[list[float], list[float]]:
    through: list[float] = []
    direct: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=30) as http:
        # Warm up both paths (the first call resolves the binding, opens connections).
        for n in range(5):
            http.post(dev.url, content=json.dumps(
                {"writes": [{"binding": "EVENTS", "point": point(-n - 1), "awaited": True}]}))
        wait_rows(db, 5, time.monotonic() + 30)
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        stored = 5
        n = 0
        while len(through) < points and time.monotonic() < deadline:
            n += 1
            body = json.dumps({"writes": [{"binding": "EVENTS", "point": point(n),
                                           "awaited": False}]})
            start = time.perf_counter()
            answer = http.post(dev.url, content=body)
            answer.raise_for_status()
            stored += 1
            while conn.execute("SELECT max(seq) FROM points").fetchone()[0] < stored:
                if time.monotonic() > deadline + 30:
                    raise RuntimeError(f"point {n} never reached the log")
                time.sleep(0.0005)
            through.append((time.perf_counter() - start) * 1000)

            n += 1
            body = json.dumps({"dataset": "app_events", "points": [point(n)]})
            start = time.perf_counter()
            answer = http.post(f"{service_url}/track/datapoints", content=body,
                               headers={"X-Internal-Auth-Key": KEY, "Content-Type": "application/json",
                                        "Idempotency-Key": str(uuid.uuid4())})
            answer.raise_for_status()
            direct.append((time.perf_counter() - start) * 1000)
            stored += 1
        conn.close()
    return through, direct


def wait_rows(db: Path, n: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if db.exists():
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                if (conn.execute("SELECT count(*) FROM points").fetchone()[0] or 0) >= n:
                    return
            except sqlite3.OperationalError:
                pass
            finally:
                conn.close()
        time.sleep(0.05)
    raise RuntimeError("the warm-up points never reached the log")


def report(through: list[float], direct: list[float]) -> None:
    rows = [("writeDataPoint, not awaited -> in the log", through),
            ("POST /track/datapoints -> answered", direct)]
    print(f"{'path':45} {'points':>6} {'median':>9} {'p99':>9}")
    for name, values in rows:
        print(f"{name:45} {len(values):6d} {statistics.median(values):8.2f}ms "
              f"{percentile(values, 0.99):8.2f}ms")
    print(f"{'the Worker, the relay and the hop add':45} {'':6} "
          f"{statistics.median(through) - statistics.median(direct):8.2f}ms "
          f"{percentile(through, 0.99) - percentile(direct, 0.99):8.2f}ms")


if __name__ == "__main__":
    main()
