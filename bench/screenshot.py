"""The README's pictures of the dashboard: the service under gunicorn on a day of imported
api-calls plus an error spike in the last minute, photographed by chromium in light and
dark mode; and Explore, with a Worker's points in a dataset of their own and a query drawn
as a chart.

    .venv/bin/python bench/screenshot.py            # writes docs/dashboard.png, docs/dashboard-dark.png,
                                                    # docs/dashboard-explore.png
    .venv/bin/python bench/screenshot.py --hoox     # writes docs/dashboard-hoox.png: the platform's
                                                    # own bodies on the hoox layout's routes
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import CHROMIUM, CHROMIUM_ARGS, KEY, Server, service_env  # noqa: E402
from dashboard_data import history, import_records, send  # noqa: E402
from hoox_callers import CALLERS  # noqa: E402


def photograph(url: str, names: dict[str, str]) -> None:
    """The dashboard at `url`, signed in, once its banner and charts are drawn: one picture
    in docs/ per colour scheme, {scheme: file name}."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for scheme, name in names.items():
            page = browser.new_page(viewport={"width": 1280, "height": 900},
                                    color_scheme=scheme)
            page.goto(url + "/")
            page.get_by_label("Internal key").fill(KEY)
            page.get_by_role("button", name="Open dashboard").click()
            page.get_by_role("alert").wait_for()
            page.locator("#volume rect.filled").first.wait_for(state="attached")
            page.locator("#latency path.series").first.wait_for(state="attached")
            page.screenshot(path=str(ROOT / "docs" / name), full_page=True)
            page.close()
        browser.close()


EXPLORED = ("SELECT toStartOfInterval(timestamp, INTERVAL '1' HOUR) AS t, blob1 AS worker, "
            "SUM(_sample_interval) AS calls FROM hoox_telemetry "
            "WHERE timestamp >= now() - INTERVAL '24' HOUR GROUP BY t, worker ORDER BY t, worker")


def explore(url: str) -> None:
    """Explore on a Worker's dataset, with a query of the service's own drawn as a chart."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/#view=explore&dataset=page_views&q={quote(EXPLORED)}")
        page.get_by_label("Internal key").fill(KEY)
        page.get_by_role("button", name="Open dashboard").click()
        page.locator("#dataset-points-rows tr").first.wait_for()
        page.locator("#result-rows tr").first.wait_for()
        page.get_by_label("Chart").check()
        page.locator("#result-chart path.series").first.wait_for(state="attached")
        page.screenshot(path=str(ROOT / "docs" / "dashboard-explore.png"), full_page=True)
        browser.close()


def page_views(url: str) -> None:
    """A Worker's page views, as its writeDataPoint calls reach the service."""
    import httpx

    points = [{"blobs": ["GET" if i % 4 else "POST", f"/{('home', 'cart', 'search')[i % 3]}",
                         ("gb", "fr", "us", "de")[i % 4]],
               "doubles": [500 if i % 37 == 0 else 200, round(8 + (i * 7919 % 113) / 3, 2)],
               "indexes": [f"user-{i % 23}"]} for i in range(240)]
    httpx.post(url + "/track/datapoints", headers={"X-Internal-Auth-Key": KEY},
               json={"dataset": "page_views", "points": points}).raise_for_status()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as tmp:
        work = Path(tmp)
        db = work / "analytics.db"
        import_records(db, history(time.time(), n=6000), work)
        server = Server(service_env(db), work).start()
        try:
            send(server.url, KEY, "trade-worker", 40, True, "ok")
            send(server.url, KEY, "hoox", 7, False, "spike")
            photograph(server.url, {"light": "dashboard.png", "dark": "dashboard-dark.png"})
            page_views(server.url)
            explore(server.url)
        finally:
            server.stop()
    print("wrote docs/dashboard.png, docs/dashboard-dark.png and docs/dashboard-explore.png")


def hoox() -> None:
    """The hoox layout: every real caller's body, a few hundred more api-calls, trades and
    signals, then a burst of api-call failures."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as tmp:
        work = Path(tmp)
        server = Server(service_env(work / "analytics.db", ANALYTICS_LAYOUT="hoox"), work).start()
        try:
            with httpx.Client(base_url=server.url, headers={"X-Internal-Auth-Key": KEY}) as c:
                bodies = [(x.route, x.body) for x in CALLERS]
                for i in range(60):
                    for worker, base in (("hoox", 12), ("d1-worker", 4),
                                         ("web3-wallet-worker", 300), ("trade-worker", 30)):
                        bodies.append(("api-call", {"worker": worker, "endpoint": "/webhook",
                                                    "latencyMs": base * (1 + (i % 7) / 3),
                                                    "success": True}))
                    bodies.append(("trade", {"payload": {"exchange": "binance",
                                   "symbol": "BTCUSDT", "action": "buy", "quantity": 0.01},
                                   "result": {"success": True}, "latencyMs": 120 + 7 * i}))
                    if i % 3 == 0:
                        bodies.append(("signal", {"data": {"source": "email", "type": "buy",
                                       "symbol": "ETHUSDT", "confidence": 0.7}}))
                bodies += [("api-call", {"worker": "hoox", "endpoint": "/api/route",
                                         "latencyMs": 40, "success": False})] * 20
                for route, body in bodies:
                    assert c.post(f"/track/{route}", json=body).status_code == 200
            photograph(server.url, {"light": "dashboard-hoox.png"})
        finally:
            server.stop()
    print("wrote docs/dashboard-hoox.png")


if __name__ == "__main__":
    hoox() if sys.argv[1:] == ["--hoox"] else main()
