"""What Explore's page adds to a query: from Ctrl+Enter in its SQL box to the table drawn,
against the same query's `/query` time, in one run (SPEC §10.1; the page may add at most
100 ms for 1,000 rows).

The service under gunicorn (gunicorn_conf, 2 workers, the mirror running) on a log of
--events api-calls over the 30 days up to now (bench/biglog.py) plus --points points in
another dataset, `page_views`, written through POST /track/datapoints 1,000 a request.
For each query, --rounds times, the two alternating (which goes first alternates too):
  * /query: the same body POSTed by httpx on a keep-alive connection, timed from the
    request to its last byte;
  * fetch: the same request from the same chromium tab, bare (fetch and read), which
    tells the browser's own share from the page's;
  * the page: a chromium tab on Explore, the query typed into the box and run with
    Ctrl+Enter, timed by the page's own marks from the key (`explore-asked`) to the first
    frame painted with the table in it (`explore-drawn`), with the part spent waiting for
    the answer (`explore-answered`).
Prints the medians, and what the page adds: its time less /query's, and less the bare
fetch's.

    flock /tmp/bench.lock .venv/bin/python bench/explore.py [--db PATH] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import httpx  # noqa: E402

import biglog  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS, KEY, Server, service_env  # noqa: E402

AUTH = {"X-Internal-Auth-Key": KEY}
DATASET = "page_views"
QUERIES = {
    "1,000 points of page_views, every column":
        f"SELECT * FROM {DATASET} ORDER BY timestamp DESC LIMIT 1000",
    "1,000 api-calls, every column":
        "SELECT * FROM hoox_telemetry ORDER BY timestamp DESC LIMIT 1000",
    "1,000 api-calls, four columns":
        "SELECT timestamp, blob1 AS worker, blob2 AS endpoint, double1 AS ms "
        "FROM hoox_telemetry ORDER BY timestamp DESC LIMIT 1000",
    "calls per worker and hour, 30 d (3,600 rows; 1,000 shown)":
        "SELECT toStartOfInterval(timestamp, INTERVAL '1' HOUR) AS t, blob1 AS worker, "
        "sum(_sample_interval) AS calls FROM hoox_telemetry "
        "WHERE timestamp >= now() - INTERVAL '30' DAY GROUP BY t, worker ORDER BY t, worker",
    "calls per worker (5 rows)":
        "SELECT blob1 AS worker, sum(_sample_interval) AS calls FROM hoox_telemetry "
        "GROUP BY worker ORDER BY worker",
}


def write_points(server: Server, n: int) -> None:
    """n points in page_views, 1,000 a request, spread over the requests' moments."""
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        held = {d["dataset"]: d["rows"] for d in client.get("/status").json()["datasets"]}
        for first in range(held.get(DATASET, 0), n, 1000):
            points = [{"blobs": ["GET" if i % 3 else "POST", f"/page/{i % 250}",
                                 f"Mozilla/5.0 client {i % 17}", ("gb", "fr", "us")[i % 3]],
                       "doubles": [200 if i % 20 else 500, (i % 977) / 7, i % 4096],
                       "indexes": [f"user-{i % 1000}"]}
                      for i in range(first, min(n, first + 1000))]
            answer = client.post("/track/datapoints", json={"dataset": DATASET,
                                                            "points": points})
            assert answer.status_code == 200, answer.text


def wait_for_mirror(server: Server, limit_s: float = 600) -> None:
    began = time.monotonic()
    while httpx.get(server.url + "/status", headers=AUTH).json()["mirror"]["state"] != "running":
        if time.monotonic() - began > limit_s:
            raise RuntimeError(f"the mirror did not start within {limit_s} s")
        time.sleep(1)


def by_query(client: httpx.Client, sql: str) -> tuple[float, int]:
    began = time.perf_counter()
    response = client.post("/query", json={"query": sql})
    ms = (time.perf_counter() - began) * 1000
    assert response.status_code == 200, response.text
    return ms, response.json()["rows"]


def by_fetch(page: Any, sql: str) -> float:
    """The same request from the same tab, bare: fetch and read, no page code."""
    return page.evaluate("""async ([sql, key]) => {
        const began = performance.now();
        const response = await fetch('/query', { method: 'POST', cache: 'no-store',
            headers: { 'X-Internal-Auth-Key': key, 'Content-Type': 'application/json' },
            body: JSON.stringify({ query: sql, source: 'auto' }) });
        await response.text();
        return performance.now() - began;
    }""", [sql, KEY])


def by_page(page: Any, sql: str) -> dict[str, float]:
    box = page.get_by_label("Query", exact=True)
    box.fill(sql)
    page.evaluate("() => performance.clearResourceTimings()")
    box.press("Control+Enter")
    # polled every 50 ms, not every frame: the page draws no frames for it meanwhile
    page.wait_for_function("() => performance.getEntriesByName('explore-drawn').length > 0",
                           timeout=60_000, polling=50)
    # The page's marks, and the browser's own timing of the /query request (Resource
    # Timing): before it went out, on the wire, read and parsed, drawn.
    t = page.evaluate("""() => {
        const mark = (n) => performance.getEntriesByName(n)[0].startTime;
        const asked = mark('explore-asked');
        const fetch = performance.getEntriesByType('resource').filter(
            (e) => e.name.endsWith('/query') && e.startTime >= asked).pop();
        return { asked, answered: mark('explore-answered'), drawn: mark('explore-drawn'),
                 sent: fetch.startTime, received: fetch.responseEnd };
    }""")
    return {"total": t["drawn"] - t["asked"], "answer": t["answered"] - t["asked"],
            "draw": t["drawn"] - t["answered"], "before": t["sent"] - t["asked"],
            "wire": t["received"] - t["sent"], "read": t["answered"] - t["received"]}


def run(args: argparse.Namespace, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    db = Path(args.db).resolve() if args.db else work / "explore-1m.db"
    if not db.exists():
        began = time.monotonic()
        biglog.build(db, args.events, end_s=int(time.time()))
        print(f"built a log of {args.events:,} events in {time.monotonic() - began:.0f} s")
    server = Server(service_env(db), work, workers=2).start(timeout=60)
    try:
        began = time.monotonic()
        write_points(server, args.points)
        print(f"{args.points:,} points in {DATASET} ({time.monotonic() - began:.0f} s)")
        wait_for_mirror(server)
        results: dict[str, dict[str, list[float]]] = {
            name: {k: [] for k in ("query", "fetch", "total", "answer", "draw", "before",
                                   "wire", "read")} for name in QUERIES}
        rows: dict[str, int] = {}
        with sync_playwright() as p, httpx.Client(base_url=server.url, headers=AUTH,
                                                  timeout=60) as client:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(server.url + "/#view=explore")
            page.get_by_label("Internal key").fill(KEY)
            page.get_by_role("button", name="Open dashboard").click()
            page.locator("#datasets-rows tr").nth(1).wait_for(timeout=60_000)
            for sql in QUERIES.values():  # warm: translations, caches, the page's code
                by_query(client, sql)
                by_page(page, sql)
            for round_ in range(args.rounds):
                for name, sql in QUERIES.items():
                    order = ("query", "fetch", "page")
                    for how in order if round_ % 2 == 0 else reversed(order):
                        if how == "query":
                            ms, rows[name] = by_query(client, sql)
                            results[name]["query"].append(ms)
                        elif how == "fetch":
                            results[name]["fetch"].append(by_fetch(page, sql))
                        else:
                            for part, ms in by_page(page, sql).items():
                                results[name][part].append(ms)
            browser.close()
    finally:
        server.stop()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nmedians of {args.rounds} rounds, ms ({args.events:,} events, {args.points:,} "
          f"points in {DATASET}; 2 workers; load average at the end {load}):")
    print(f"  {'query':<58} {'rows':>6} {'/query':>7} {'fetch':>7} {'page':>7} "
          f"{'- /query':>9} {'- fetch':>8} | {'before':>7} {'request':>8} {'parse':>6} "
          f"{'draw':>6}")
    for name, r in results.items():
        med = {k: statistics.median(v) for k, v in r.items()}
        print(f"  {name:<58} {rows[name]:>6,} {med['query']:>7.1f} {med['fetch']:>7.1f} "
              f"{med['total']:>7.1f} {med['total'] - med['query']:>9.1f} "
              f"{med['total'] - med['fetch']:>8.1f} | {med['before']:>7.1f} "
              f"{med['wire']:>8.1f} {med['read']:>6.1f} {med['draw']:>6.1f}")
    print("  (page: Ctrl+Enter to the table painted; fetch: the bare request from the tab; "
          "before: the key to the request sent; request: sent to its last byte, the "
          "browser's Resource Timing; parse: read and parsed; draw: to the first frame "
          "painted with the table)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--db", help="reuse (or create) this log")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-explore-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
