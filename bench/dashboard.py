"""What one open dashboard costs the service, and how fast its banner follows the events.

cost: the service under gunicorn (2 workers, gunicorn_conf) on a log of N api-calls
over 30 days ending now. The CPU time of the worker processes (utime + stime from /proc)
is read around
  * each of the page's requests, sent k times (health; latency and volume for each range),
    against `GET /health` sent as often in the same rounds (the baseline), alternating;
  * a real chromium tab open on the dashboard (24 h range) for --seconds, against the same
    time with no tab open, alternating.
From the per-request figures: server time a second = health + (latency + volume) / refresh
period of the range, in % of one core.

banner: the service on a day of history; a chromium tab on the dashboard; --spikes times
"5 failing calls in one batch, then enough successful ones", timing from each batch's 200
to the banner appearing and to it clearing.

    flock /tmp/bench.lock .venv/bin/python bench/dashboard.py [--events 1000000] [--db PATH]
        [--rounds 3] [--repeat 100] [--seconds 20] [--spikes 10] [--only cost|banner]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import httpx  # noqa: E402

import dashboard  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS, KEY, Server, service_env  # noqa: E402
from dashboard_data import calm_down, history, import_records, send  # noqa: E402
from storage.log import EventLog  # noqa: E402

QUERIES = dashboard.load_queries()
AUTH = {"X-Internal-Auth-Key": KEY}


def build_log(path: Path, n: int, days: int = 30) -> None:
    """n api-calls spread evenly over `days` ending now, written straight into the schema."""
    EventLog(path).close()
    rng = random.Random(1)
    end_ms = int(time.time() * 1000)
    step = days * 86400 * 1000 // n
    start_ms = end_ms - n * step
    workers = ["trade-worker", "hoox", "d1-worker", "email-worker", "web3-wallet-worker"]

    def rows():
        for i in range(n):
            worker = workers[i % len(workers)]
            latency = round(rng.lognormvariate(3.2, 0.9), 3)
            ok = rng.random() > 0.03
            payload = json.dumps({"worker": worker, "endpoint": "/webhook",
                                  "latencyMs": latency, "success": ok})
            yield (f"bench-{i:08d}", "api-call", start_ms + i * step, payload, worker,
                   "/webhook", "1" if ok else "0", latency)

    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO events (request_id, type, received_ms, payload, blob1,"
                         " blob2, blob3, double1) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
    conn.close()


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def page_query(name: str, r: dict[str, Any]) -> str:
    return dashboard.expand(QUERIES["layouts"]["profile"][name], "hoox_telemetry",
                            r["since"], r["bucket"])


def per_request_ms(server: Server, request: tuple[str, str, Any], repeat: int) -> float:
    method, path, body = request
    pids = server.worker_pids()
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        before = cpu_seconds(pids)
        for _ in range(repeat):
            response = client.request(method, path, json=body)
            assert response.status_code == 200, response.text
        return (cpu_seconds(pids) - before) * 1000 / repeat


def cost(args: argparse.Namespace, work: Path) -> None:
    db = Path(args.db).resolve() if args.db else work / "dashboard-1m.db"
    if not db.exists():
        began = time.monotonic()
        build_log(db, args.events)
        print(f"built a log of {args.events:,} events in {time.monotonic() - began:.0f} s")
    server = Server(service_env(db), work, workers=2).start(timeout=60)
    try:
        requests = {"health (1/s)": ("POST", "/query", {"query": page_query("health",
                                                                            QUERIES["ranges"][0])})}
        for r in QUERIES["ranges"]:
            for name in ("latency", "volume"):
                requests[f"{name} {r['label']}"] = ("POST", "/query",
                                                    {"query": page_query(name, r)})
        baseline = ("GET", "/health", None)
        for request in requests.values():  # warm: translation cache, page cache
            per_request_ms(server, request, 2)
        figures: dict[str, list[float]] = {k: [] for k in requests}
        base: list[float] = []
        for _ in range(args.rounds):
            for name, request in requests.items():
                repeat = args.repeat if "health" in name or "1 h" in name else 3
                base.append(per_request_ms(server, baseline, args.repeat))
                figures[name].append(per_request_ms(server, request, repeat))
        b = statistics.median(base)
        print(f"\nserver CPU per request (median of {args.rounds} rounds; 2 workers, "
              f"{args.events:,} events):")
        print(f"  {'GET /health (baseline)':<24} {b:8.2f} ms")
        med = {k: statistics.median(v) for k, v in figures.items()}
        for name, ms in med.items():
            print(f"  {name:<24} {ms:8.2f} ms  {ms / b:6.1f}x baseline")
        health = med["health (1/s)"] / 1000 / QUERIES["health"]["refreshSeconds"]
        print("\none open dashboard, server time a second (% of one core):")
        for r in QUERIES["ranges"]:
            charts = (med[f"latency {r['label']}"] + med[f"volume {r['label']}"]) / 1000
            total = health + charts / r["refreshSeconds"]
            print(f"  range {r['label']:<5} health {100 * health:.2f} % + charts every "
                  f"{r['refreshSeconds']} s {100 * charts / r['refreshSeconds']:.2f} % "
                  f"= {100 * total:.2f} %  (target < 5 %)")
        browser_cost(args, server)
    finally:
        server.stop()


def browser_cost(args: argparse.Namespace, server: Server) -> None:
    from playwright.sync_api import sync_playwright

    pids = server.worker_pids()
    open_, idle = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(args.rounds):
            before = cpu_seconds(pids)
            time.sleep(args.seconds)
            idle.append((cpu_seconds(pids) - before) / args.seconds)
            context = browser.new_context()
            page = context.new_page()
            page.goto(server.url + "/#range=24h")
            page.get_by_label("Internal key").fill(KEY)
            page.get_by_role("button", name="Open dashboard").click()
            page.locator("#volume rect.filled").first.wait_for(state="attached", timeout=60_000)
            page.locator("#latency path.series").first.wait_for(state="attached")
            time.sleep(2)  # the first load's chart queries are done
            before = cpu_seconds(pids)
            time.sleep(args.seconds)
            open_.append((cpu_seconds(pids) - before) / args.seconds)
            context.close()
        browser.close()
    o, i = statistics.median(open_), statistics.median(idle)
    print(f"\na chromium tab open on the dashboard (24 h range), {args.seconds} s windows, "
          f"median of {args.rounds}:")
    print(f"  workers' CPU with the tab open {100 * o:.2f} % of one core, idle {100 * i:.2f} %"
          f", difference {100 * (o - i):.2f} %  (health polls only; charts as above)")


def banner(args: argparse.Namespace, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    db = work / "banner.db"
    import_records(db, history(time.time()), work)
    server = Server(service_env(db), work, workers=2).start()
    health = page_query("health", QUERIES["ranges"][0])
    shown, cleared = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(server.url + "/")
            page.get_by_label("Internal key").fill(KEY)
            page.get_by_role("button", name="Open dashboard").click()
            page.locator("#health-rows td.num").first.wait_for()
            alert = page.get_by_role("alert")

            def until(visible: bool) -> float:
                began = time.monotonic()
                while (alert.count() > 0) != visible:
                    if time.monotonic() - began > 10:
                        raise RuntimeError("the banner did not follow within 10 s")
                    time.sleep(0.01)
                return time.monotonic() - began

            rng = random.Random(3)
            for spike in range(args.spikes):
                # Events arrive at any moment of the page's one-second cycle, not just
                # after the poll that showed the last change.
                time.sleep(rng.uniform(0, 1))
                send(server.url, KEY, "hoox", 5, False, f"spike{spike}")
                shown.append(until(True))
                time.sleep(rng.uniform(0, 1))
                calm_down(server.url, KEY, health, f"calm{spike}")
                cleared.append(until(False))
            browser.close()
    finally:
        server.stop()
    print(f"\nbanner, {args.spikes} spikes (seconds from the batch's 200 to the change "
          "on the page; the page polls once a second):")
    for what, times in (("appears", shown), ("clears", cleared)):
        print(f"  {what:<8} median {statistics.median(times):.2f} s, worst {max(times):.2f} s,"
              f" best {min(times):.2f} s  (limit 2 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", help="reuse (or create) this log for the cost part")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--spikes", type=int, default=10)
    parser.add_argument("--only", choices=("cost", "banner"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        if args.only != "banner":
            cost(args, Path(tmp))
        if args.only != "cost":
            banner(args, Path(tmp))


if __name__ == "__main__":
    main()
