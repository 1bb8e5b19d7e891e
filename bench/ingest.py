"""Ingest throughput under gunicorn (2 sync workers, the project's gunicorn_conf):
/track/api-call against a no-op Falcon POST route, alternating, and /track/batch events/s.

    .venv/bin/python bench/ingest.py [--rounds 8] [--seconds 3]

Needs wrk (apt-get install wrk). Every figure is from this one run; the machine is shared,
so compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, app: str, env: dict[str, str], workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_conf", "--bind",
             f"127.0.0.1:{self.port}", "--workers", str(workers), app],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(self.url + "/track/api-call", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"{app} did not start")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(20)


def wrk(url: str, seconds: int, connections: int, tag: str) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s",
         str(ROOT / "bench" / "post.lua"), url, "--", tag],
        capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} requests failed:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def batch_rate(url: str, seconds: float, threads: int = 2, size: int = 1000) -> float:
    accepted = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(tid: int) -> None:
        nonlocal accepted
        n = 0
        with httpx.Client(base_url=url, headers={"X-Internal-Auth-Key": KEY}, timeout=30) as c:
            while time.monotonic() < deadline and n < 10_000:
                events = [{"requestId": f"batch-{tid}-{n}-{i}",
                           "payload": {"worker": "trade-worker", "endpoint": "/webhook",
                                       "latencyMs": 24.5, "success": True}}
                          for i in range(size)]
                body = json.dumps({"events": events})
                r = c.post("/track/batch", content=body,
                           headers={"Content-Type": "application/json"})
                r.raise_for_status()
                with lock:
                    accepted += r.json()["accepted"]
                n += 1

    start = time.monotonic()
    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return accepted / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Many short alternating rounds: on a shared 2-core machine one round's ratio moves
    # by ±10%, the median of eight much less.
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    env = {**os.environ, "INTERNAL_KEY_BINDING": KEY, "ANALYTICS_DB": str(tmp / "a.db"),
           "ANALYTICS_SINK": "none", "PYTHONPATH": str(ROOT)}
    noop = Gunicorn("bench.noop_app:create_app()", env)
    service = Gunicorn("app:create_app()", env)
    try:
        wrk(noop.url, 1, args.connections, "warm")
        wrk(service.url, 1, args.connections, "warm")
        noop_rates, service_rates = [], []
        for r in range(args.rounds):  # alternate, so drift hits both alike
            noop_rates.append(wrk(noop.url, args.seconds, args.connections, f"n{r}"))
            service_rates.append(wrk(service.url, args.seconds, args.connections, f"s{r}"))
            print(f"round {r + 1}: no-op {noop_rates[-1]:.0f} req/s, "
                  f"/track/api-call {service_rates[-1]:.0f} req/s, "
                  f"ratio {service_rates[-1] / noop_rates[-1]:.2f}", flush=True)
        ratios = sorted(s / n for s, n in zip(service_rates, noop_rates))
        batch = batch_rate(service.url, args.seconds)
    finally:
        noop.stop()
        service.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"/track/api-call vs no-op route: {statistics.median(ratios):.2f}x (median of "
          f"{args.rounds} rounds, {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.8x)")
    print(f"/track/batch: {batch:,.0f} events/s (1,000 events a request, 2 clients; "
          f"target >= 30,000)")


if __name__ == "__main__":
    main()
