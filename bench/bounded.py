"""Bounded queries (SPEC §3.3), measured on one gunicorn worker, the code before and after
in alternating rounds of one run:

- six heavy local queries sent at once (17 Python aggregates over a log of `--events`
  events, far more work than the time limit): when each is answered;
- meanwhile, until the last heavy query is answered, each on a client of its own and one
  request after another: `GET /status`, `SHOW TABLES`, `GET /health` and the dashboard's
  health query, each timed;
- the same four on the idle worker first, the baseline of the round;
- then, after only: the worker's peak memory (VmHWM) under the largest answer it allows
  (ANALYTICS_QUERY_MAX_ANSWER_BYTES, 8 MiB), one query, then four sent at once (the heavy
  lane runs two at a time: ANALYTICS_QUERY_CONCURRENCY).

    git worktree add /tmp/before31b 5f7b4c3
    flock /tmp/bench.lock .venv/bin/python bench/bounded.py --before /tmp/before31b \\
        [--events 100000] [--rounds 2] [--work /var/tmp]

Every loop is bounded: six heavy queries a round, probes for at most `--probe-s` seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from biglog import build  # noqa: E402
from cost import free_port  # noqa: E402

KEY = "bench-key"
AUTH = {"X-Internal-Auth-Key": KEY}
HEAVY = ("SELECT " + ", ".join(f"topK({3 + i % 5})(blob{1 + i % 3}) AS t{i}" for i in range(16))
         + ", argMax(index1, double1) AS a FROM hoox_telemetry")
HEALTH = ("SELECT blob1 AS worker, sum(_sample_interval) AS calls, sumIf(_sample_interval, "
          "blob3 = '0') AS errors FROM hoox_telemetry WHERE timestamp >= now() - "
          "INTERVAL '15' MINUTE GROUP BY worker ORDER BY worker")
PROBES: dict[str, tuple[str, str, Any]] = {
    "/status": ("GET", "/status", None),
    "SHOW TABLES": ("POST", "/query", {"query": "SHOW TABLES"}),
    "/health": ("GET", "/health", None),
    "health query": ("POST", "/query", {"query": HEALTH, "source": "local"}),
}


class Worker:
    """The service from the checkout `code` under gunicorn with one worker."""

    def __init__(self, code: Path, db: Path, work: Path, **env: str):
        self.code, self.db, self.work, self.extra = code, db, work, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Worker":
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANALYTICS_", "CLOUDFLARE_", "INTERNAL_KEY"))}
        env.update({"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_DB": str(self.db),
                    "ANALYTICS_SINK": "none", "ANALYTICS_MIRROR": "off",
                    "PYTHONPATH": str(self.code), **self.extra})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_conf",
             "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "app:create_app()"],
            cwd=self.code, env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.work / "gunicorn.log", "ab"), start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.work / "gunicorn.log").read_text()[-2000:])
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the service did not start")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout.split()
        workers = [int(p) for p in out if "storage.writer.process" not in
                   Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
        assert len(workers) == 1, workers
        return workers[0]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def probe(http: httpx.Client, name: str) -> float:
    method, path, body = PROBES[name]
    start = time.perf_counter()
    response = http.request(method, path, json=body)
    took = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
    return took


def heavy_round(worker: Worker, count: int, probe_s: float) -> dict[str, Any]:
    """`count` heavy queries at once; the probes, each kind on a client of its own, until
    every heavy query is answered (at most `probe_s`)."""
    with httpx.Client(base_url=worker.url, headers=AUTH, timeout=60) as http:
        idle = {name: [probe(http, name) for _ in range(10)] for name in PROBES}
        answers: list[tuple[float, int]] = []
        lock = threading.Lock()

        def one() -> None:
            with httpx.Client(base_url=worker.url, headers=AUTH, timeout=120) as h:
                sent = time.monotonic()
                status = h.post("/query", json={"query": HEAVY, "source": "local"}).status_code
                with lock:
                    answers.append((time.monotonic() - sent, status))

        threads = [threading.Thread(target=one) for _ in range(count)]
        for t in threads:
            t.start()
        loaded: dict[str, list[float]] = {name: [] for name in PROBES}
        stop = time.monotonic() + probe_s

        def probing(name: str) -> None:  # each kind on its own, so none waits for another
            with httpx.Client(base_url=worker.url, headers=AUTH, timeout=60) as h:
                while any(t.is_alive() for t in threads) and time.monotonic() < stop:
                    loaded[name].append(probe(h, name))

        probers = [threading.Thread(target=probing, args=(name,)) for name in PROBES]
        for t in probers:
            t.start()
        for t in threads + probers:
            t.join(120)
    return {"idle": idle, "loaded": loaded, "heavy": sorted(answers)}


def peak_memory(code: Path, db: Path, work: Path) -> dict[str, float]:
    """The worker's resident memory at rest, and its peak (VmHWM) under the largest answer
    it allows: one query, then four sent at once."""
    worker = Worker(code, db, work, ANALYTICS_QUERY_MAX_ROWS="100000").start()
    try:
        pid = worker.pid
        status = lambda field: int(Path(f"/proc/{pid}/status").read_text()  # noqa: E731
                                   .split(field + ":")[1].split()[0]) / 1024
        with httpx.Client(base_url=worker.url, headers=AUTH, timeout=120) as http:
            per_row = len(http.post("/query", json={
                "query": "SELECT * FROM hoox_telemetry LIMIT 1000", "source": "local"}
            ).content) / 1000
            cap = 8 * 1024 * 1024
            rows = int(cap * 0.99 / per_row)
            sql = f"SELECT * FROM hoox_telemetry LIMIT {rows}"
            rest = status("VmRSS")
            answer = http.post("/query", json={"query": sql, "source": "local"})
            assert answer.status_code == 200, answer.text[:200]
            one = status("VmHWM")
            threads = [threading.Thread(target=lambda: httpx.post(
                worker.url + "/query", headers=AUTH, timeout=120,
                json={"query": sql, "source": "local"})) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            four = status("VmHWM")
        return {"answer_bytes": len(answer.content), "rest": rest, "one": one, "four": four}
    finally:
        worker.stop()


def ms(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"median {statistics.median(values):.1f} ms, max {max(values):.1f} ms "
            f"({len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--heavy", type=int, default=6)
    parser.add_argument("--timeout-ms", type=int, default=5000)
    parser.add_argument("--probe-s", type=float, default=60.0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bounded-", dir=args.work))
    try:
        log = work / "log.db"
        build(log, args.events)
        print(f"log of {args.events:,} events; heavy query alone: see each round", flush=True)
        for r in range(args.rounds):
            for name, code in (("after", ROOT), ("before", args.before)):
                db = work / f"{name}.db"
                shutil.copy(log, db)
                worker = Worker(code, db, work,
                                ANALYTICS_QUERY_TIMEOUT_MS=str(args.timeout_ms)).start()
                try:
                    result = heavy_round(worker, args.heavy, args.probe_s)
                finally:
                    worker.stop()
                print(f"round {r + 1}, {name}: heavy answered at "
                      + ", ".join(f"{s:.1f} s ({status})" for s, status in result["heavy"]),
                      flush=True)
                for probe_name in PROBES:
                    print(f"  {probe_name}: idle {ms(result['idle'][probe_name])}; "
                          f"under load {ms(result['loaded'][probe_name])}", flush=True)
        memory = peak_memory(ROOT, work / "after.db", work)
        print(f"after: largest answer allowed {memory['answer_bytes']:,} bytes; worker at rest "
              f"{memory['rest']:.0f} MB, peak {memory['one']:.0f} MB under one such answer, "
              f"{memory['four']:.0f} MB under four sent at once", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
