"""What a scrape of GET /metrics costs, and what it costs ingest:

- /metrics on a log of `--events` events (1,000,000), all of them unconfirmed by the
  relay (the largest backlog there is), under gunicorn (2 workers): the median and 99th
  percentile of `--scrapes` scrapes on one keep-alive connection, against /health;
- /track/api-call req/s (wrk, 64 connections, like bench/ingest.py) in alternating rounds
  with and without a scraper that GETs /metrics every second, as Prometheus does.

    .venv/bin/python bench/metrics.py [--events 1000000] [--rounds 4] [--seconds 5]

Needs wrk (apt-get install wrk). Run it under `flock /tmp/bench.lock`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import KEY, Gunicorn, free_port, wrk  # noqa: E402
from storage.log import EventLog  # noqa: E402


def fill(path: Path, events: int, chunk: int = 10_000) -> None:
    """`events` api-calls through the log's own insert path (so the counters count them)."""
    log = EventLog(path)
    start = int(time.time() * 1000) - events
    for base in range(0, events, chunk):
        log.append_row_groups([[(f"bench-{i}", "api-call", start + i, '{"w":1}',
                                 f"worker-{i % 7}", f"/endpoint/{i % 13}", "ok", i % 250 / 3)
                                for i in range(base, min(events, base + chunk))]])
    log.checkpoint()
    log.close()


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        r.raise_for_status()
    return times


def summary(times: list[float]) -> str:
    times = sorted(times)
    return (f"median {statistics.median(times):.2f} ms, "
            f"p99 {times[int(len(times) * 0.99) - 1]:.2f} ms, max {times[-1]:.2f} ms")


class Scraper(threading.Thread):
    """GET /metrics every `every_s`, as Prometheus would."""

    def __init__(self, url: str, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.url, self.every_s = url, every_s
        self.stop = threading.Event()
        self.times: list[float] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10,
                          headers={"Authorization": f"Bearer {KEY}"}) as c:
            while not self.stop.wait(self.every_s):
                self.times.extend(timed(c, "/metrics", 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "analytics.db"
        began = time.monotonic()
        fill(db, args.events)
        print(f"log of {args.events:,} events: {db.stat().st_size / 1e6:.0f} MB "
              f"in {time.monotonic() - began:.0f} s", flush=True)
        env = {"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_DB": str(db),
               "ANALYTICS_SINK": "relay",
               # Nothing listens there: every event stays in the backlog.
               "ANALYTICS_RELAY_URL": f"http://127.0.0.1:{free_port()}/ingest",
               "ANALYTICS_RELAY_KEY": "k", "PATH": "/usr/bin:/bin"}
        service = Gunicorn("app:create_app()", env)
        try:
            with httpx.Client(base_url=service.url, timeout=10,
                              headers={"Authorization": f"Bearer {KEY}"}) as c:
                text = c.get("/metrics").text
                backlog = [line for line in text.splitlines()
                           if line.startswith("analytics_worker_replay_backlog_events")]
                print(backlog[0])
                timed(c, "/metrics", 20)  # both workers warm
                print(f"/metrics: {summary(timed(c, '/metrics', args.scrapes))}")
                print(f"/health:  {summary(timed(c, '/health', args.scrapes))}")
            rates: dict[str, list[float]] = {"without": [], "with": []}
            scrape_times: list[float] = []
            for r in range(args.rounds):
                for mode in (("without", "with") if r % 2 == 0 else ("with", "without")):
                    scraper = Scraper(service.url) if mode == "with" else None
                    if scraper:
                        scraper.start()
                    result = wrk(service.url + "/track/api-call", args.seconds, 64,
                                 f"m{r}{mode}")
                    if scraper:
                        scraper.stop.set()
                        scraper.join(5)
                        scrape_times += scraper.times
                    rates[mode].append(result["rate"])
                    print(f"round {r + 1} {mode:>7} scrapes: {result['rate']:,.0f} req/s, "
                          f"p99 {result['p99']:.1f} ms", flush=True)
            ratio = [w / wo for w, wo in zip(rates["with"], rates["without"])]
            print(f"/track/api-call with ÷ without a scrape a second: median "
                  f"{statistics.median(ratio):.2f}× ({min(ratio):.2f}-{max(ratio):.2f}); "
                  f"{statistics.median(rates['with']):,.0f} against "
                  f"{statistics.median(rates['without']):,.0f} req/s")
            print(f"/metrics under that load: {summary(scrape_times)}")
        finally:
            service.stop()


if __name__ == "__main__":
    main()
