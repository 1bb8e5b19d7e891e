"""Ingest latency while Cloudflare is down, against the same service's latency while it is
up, measured in the same run, alternating (target: nothing on the ingest path waits for
Cloudflare, so an outage leaves the median where it was and no request near the
Cloudflare timeout).

    .venv/bin/python bench/outage.py [--rounds 3] [--requests 200]

The service under gunicorn (2 workers as gunicorn_conf sets them) replays to the
Cloudflare stand-in of tests/ (relay and SQL API on loopback) with a 500 ms Cloudflare
timeout, as tests/test_e2e_cloudflare.py runs it. Each round: 3 clients post --requests
single events each while the stand-in is up, then the same while it refuses connections,
hangs, and answers 500 (replay retrying all along). Every request must be acknowledged.
Latencies are the client's, one request at a time per client. The machine is shared:
compare the ratios. Run it under `flock /tmp/bench.lock`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench.ingest import KEY, Gunicorn  # noqa: E402
from standin import StandIn  # noqa: E402

MODES = ("refuse", "hang", "500")
SETTINGS = {"CLOUDFLARE_TIMEOUT_MS": "500", "ANALYTICS_REPLAY_BACKOFF_MAX_MS": "300",
            "CLOUDFLARE_COOLDOWN_MS": "300", "ANALYTICS_MAX_LAG_MS": "2000"}


def post_singles(url: str, clients: int, requests: int) -> list[float]:
    """Seconds per request of `clients` threads posting `requests` distinct events each."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        mine = []
        with httpx.Client(base_url=url, headers={"X-Internal-Auth-Key": KEY},
                          timeout=10) as client:
            for i in range(requests):
                body = {"requestId": f"o-{uuid.uuid4()}", "payload": {
                    "worker": f"worker-{i % 3}", "endpoint": "/webhook",
                    "latencyMs": i % 97 + 0.5, "success": i % 7 != 0}}
                started = time.perf_counter()
                result = client.post("/track/api-call", json=body)
                mine.append(time.perf_counter() - started)
                if result.status_code != 200:
                    with lock:
                        failures.append(f"{result.status_code} {result.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests were not acknowledged: {failures[0]}")
    return latencies


def figures(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"p50": statistics.median(ordered) * 1000,
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            "max": ordered[-1] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="per client and phase")
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    standin = StandIn()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANALYTICS_", "CLOUDFLARE_", "INTERNAL_KEY"))}
    env.update({"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_DB": str(tmp / "outage.db"),
                "PYTHONPATH": str(ROOT), **standin.env(), **SETTINGS})
    server = Gunicorn("app:create_app()", env, ["--no-control-socket"])
    results: dict[str, list[dict[str, float]]] = {"up": [], **{m: [] for m in MODES}}
    try:
        for r in range(args.rounds):
            for mode in MODES:
                standin.set_mode("up")
                up = figures(post_singles(server.url, args.clients, args.requests))
                standin.set_mode(mode)
                down = figures(post_singles(server.url, args.clients, args.requests))
                results["up"].append(up)
                results[mode].append(down)
                print(f"round {r + 1}, {mode:>6}: p50 {down['p50']:.1f} ms "
                      f"({down['p50'] / up['p50']:.2f}x up's {up['p50']:.1f}), p99 "
                      f"{down['p99']:.1f} ms ({down['p99'] / up['p99']:.2f}x up's "
                      f"{up['p99']:.1f}), slowest {down['max']:.0f} ms (up's "
                      f"{up['max']:.0f})", flush=True)
    finally:
        standin.set_mode("up")
        server.stop()
        standin.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"median over {args.rounds} rounds, outage ÷ up (each against the phase before it):")
    for mode in MODES:
        ups = results["up"][MODES.index(mode)::len(MODES)]
        p50 = statistics.median(d["p50"] / u["p50"] for d, u in zip(results[mode], ups))
        p99 = statistics.median(d["p99"] / u["p99"] for d, u in zip(results[mode], ups))
        worst = max(d["max"] for d in results[mode])
        print(f"  {mode:>6}: p50 {p50:.2f}x, p99 {p99:.2f}x, slowest request {worst:.0f} ms "
              f"(the Cloudflare timeout is 500 ms)")


if __name__ == "__main__":
    main()
