"""Ingest under gunicorn, every figure from one run, alternating rounds:

- /track/api-call against a no-op Falcon POST route under the same server settings
  (`gunicorn_conf`: the same worker class; the no-op app is WSGI or ASGI to match), and
  against the reference, the WSGI no-op route under 2 sync workers — at 8 and at 64
  concurrent connections;
- the median and 99th percentile latency of /track/api-call at 64 connections (wrk
  --latency; the median over the rounds);
- /track/batch events/s, 500 events a request from 4 clients, on keep-alive connections
  and on a connection per request.

    .venv/bin/python bench/ingest.py [--rounds 6] [--seconds 3] [--connections 8,64]
        [--worker-class gthread --threads 4]   # another worker class for service and no-op

Needs wrk (apt-get install wrk). The machine is shared: compare the ratios, not the
absolute numbers. Run it under `flock /tmp/bench.lock`.
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
from typing import Sequence

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KEY = "bench-key"
REFERENCE = ("bench.noop_app:create_app()", ["--worker-class", "sync"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, app: str, env: dict[str, str], extra: Sequence[str] = (),
                 workers: int = 2, root: Path = ROOT):
        """`extra`: gunicorn options after gunicorn_conf's (e.g. another worker class);
        `root`: the checkout whose app and gunicorn_conf run."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_conf", "--bind",
             f"127.0.0.1:{self.port}", "--workers", str(workers), *extra, app],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, seconds: int, connections: int, tag: str) -> dict[str, float]:
    """Requests/s and the median and 99th percentile latency in ms."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
         str(ROOT / "bench" / "post.lua"), url, "--", tag],
        capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} requests failed:\n{out}")
    failed = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    if failed and (int(failed.group(1)) or int(failed.group(4))):
        raise RuntimeError(f"socket errors:\n{out}")
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s|m)\b", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s|m)\b", out)
    return {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": _ms(*p50.groups()), "p99": _ms(*p99.groups())}


def batch_rate(url: str, seconds: float, clients: int = 4, size: int = 500,
               keepalive: bool = True) -> float:
    """Events/s stored by `clients` threads posting batches of `size` distinct events, on
    keep-alive connections or a connection per request. Bodies come from one template
    (a prefix replaced per request), so that the client spends little of the machine."""
    accepted = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    template = json.dumps({"events": [
        {"requestId": f"@@PREFIX@@-{i}",
         "payload": {"worker": "trade-worker", "endpoint": "/webhook", "latencyMs": 24.5,
                     "success": True}} for i in range(size)]}).encode()
    run_id = os.urandom(4).hex()
    headers = {"X-Internal-Auth-Key": KEY, "Content-Type": "application/json"}
    if not keepalive:
        headers["Connection"] = "close"

    def run(tid: int) -> None:
        nonlocal accepted
        n = 0
        with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
            while time.monotonic() < deadline and n < 10_000:
                body = template.replace(b"@@PREFIX@@", f"b{run_id}-{tid}-{n}".encode())
                r = c.post("/track/batch", content=body)
                r.raise_for_status()
                with lock:
                    accepted += r.json()["accepted"]
                n += 1

    start = time.monotonic()
    workers = [threading.Thread(target=run, args=(t,)) for t in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return accepted / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Many short alternating rounds: on a shared 2-core machine one round's ratio moves
    # by ±10%, the median of several much less.
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", default="8,64")
    parser.add_argument("--worker-class", help="instead of gunicorn_conf's")
    parser.add_argument("--threads", type=int, help="threads per worker (gthread)")
    parser.add_argument("--batch-seconds", type=float, default=4)
    parser.add_argument("--batch-rounds", type=int, default=2)
    parser.add_argument("--before", type=Path, metavar="CHECKOUT",
                        help="another checkout of the service (e.g. `git worktree add "
                             "/tmp/before main~1`), run as 'before' in the same rounds")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    import gunicorn_conf
    worker_class = args.worker_class or gunicorn_conf.worker_class
    extra = ["--worker-class", worker_class]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    # The worker's kind, not its name, says which form of the no-op app it serves.
    from gunicorn.util import load_class
    from uvicorn_worker import UvicornWorker
    asgi = issubclass(load_class(worker_class), UvicornWorker)
    same = ("bench.noop_app:create_asgi_app()" if asgi else "bench.noop_app:create_app()",
            extra)
    print(f"service and no-op under {' '.join(extra)}; reference: WSGI no-op under "
          f"2 sync workers", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    env = {**os.environ, "INTERNAL_KEY_BINDING": KEY, "ANALYTICS_DB": str(tmp / "a.db"),
           "ANALYTICS_SINK": "none", "PYTHONPATH": str(ROOT)}
    servers: dict[str, Gunicorn] = {}
    try:
        servers["service"] = Gunicorn("app:create_app()", env, extra)
        servers["no-op"] = Gunicorn(same[0], env, same[1])
        if same != REFERENCE:
            servers["reference"] = Gunicorn(REFERENCE[0], env, REFERENCE[1])
        if args.before:
            before = args.before.resolve()
            # Its own gunicorn_conf's worker class unless one was given: the worker may be
            # what changed.
            servers["before"] = Gunicorn(
                "app:create_app()", {**env, "ANALYTICS_DB": str(tmp / "before.db"),
                                     "PYTHONPATH": str(before)},
                extra if args.worker_class else [], root=before)
        names = list(servers)
        figures: dict[tuple[str, int], list[dict[str, float]]] = {}
        for c in [int(x) for x in args.connections.split(",")]:
            for name in names:
                wrk(servers[name].url, 1, c, f"warm{c}{name}")
            for r in range(args.rounds):  # alternate, so drift hits all alike
                line = []
                for name in names:
                    f = wrk(servers[name].url, args.seconds, c, f"{name}{c}r{r}")
                    figures.setdefault((name, c), []).append(f)
                    line.append(f"{name} {f['rate']:.0f}/s p50 {f['p50']:.2f}ms "
                                f"p99 {f['p99']:.2f}ms")
                print(f"c={c} round {r + 1}: " + "; ".join(line), flush=True)
        batched = [n for n in ("service", "before") if n in servers]
        batches: dict[tuple[str, bool], list[float]] = {}
        for r in range(args.batch_rounds):
            for keepalive in (True, False):
                for name in batched:
                    rate = batch_rate(servers[name].url, args.batch_seconds,
                                      keepalive=keepalive)
                    batches.setdefault((name, keepalive), []).append(rate)
                    print(f"batch round {r + 1}: {name} "
                          f"{'keep-alive' if keepalive else 'closing'} {rate:,.0f} events/s",
                          flush=True)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    for c in sorted({c for _, c in figures}):
        service = figures[("service", c)]
        for base in [n for n in names if n != "service"] + (
                ["reference"] if "reference" not in names else []):
            base_name = base if base in names else "no-op"
            ratios = sorted(s["rate"] / b["rate"]
                            for s, b in zip(service, figures[(base_name, c)]))
            label = {"no-op": "no-op route, same server settings",
                     "before": f"/track/api-call of {args.before}"}.get(
                         base, "reference no-op route, 2 sync workers")
            print(f"c={c}: /track/api-call vs {label}: {statistics.median(ratios):.2f}x "
                  f"(median of {len(ratios)} rounds, {ratios[0]:.2f}-{ratios[-1]:.2f})")
        for name in names:
            rows = figures[(name, c)]
            print(f"c={c}: {name}: {statistics.median(r['rate'] for r in rows):,.0f} req/s, "
                  f"latency median {statistics.median(r['p50'] for r in rows):.2f} ms, "
                  f"p99 {statistics.median(r['p99'] for r in rows):.2f} ms (medians of rounds)")
    for (name, keepalive), rates in batches.items():
        label = "service" if name == "service" else str(args.before)
        print(f"/track/batch, {label}: {statistics.median(rates):,.0f} events/s (median of "
              f"{len(rates)}; 500 events a request, 4 clients, "
              f"{'keep-alive connections' if keepalive else 'a connection per request'})")


if __name__ == "__main__":
    main()
