"""The README's pictures of the dashboard: the service under gunicorn on a day of imported
api-calls plus an error spike in the last minute, photographed by chromium in light and
dark mode.

    .venv/bin/python bench/screenshot.py            # writes docs/dashboard.png, docs/dashboard-dark.png
    .venv/bin/python bench/screenshot.py --hoox     # writes docs/dashboard-hoox.png: the platform's
                                                    # own bodies on the hoox layout's routes
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

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
        finally:
            server.stop()
    print("wrote docs/dashboard.png and docs/dashboard-dark.png")


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
