"""The README's pictures of the dashboard: the service under gunicorn on a day of imported
api-calls plus an error spike in the last minute, photographed by chromium in light and
dark mode.

    .venv/bin/python bench/screenshot.py            # writes docs/dashboard.png, docs/dashboard-dark.png
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


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as tmp:
        work = Path(tmp)
        db = work / "analytics.db"
        import_records(db, history(time.time(), n=6000), work)
        server = Server(service_env(db), work).start()
        try:
            send(server.url, KEY, "trade-worker", 40, True, "ok")
            send(server.url, KEY, "hoox", 7, False, "spike")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for scheme, name in (("light", "dashboard.png"), ("dark", "dashboard-dark.png")):
                    page = browser.new_page(viewport={"width": 1280, "height": 900},
                                            color_scheme=scheme)
                    page.goto(server.url + "/")
                    page.get_by_label("Internal key").fill(KEY)
                    page.get_by_role("button", name="Open dashboard").click()
                    page.get_by_role("alert").wait_for()
                    page.locator("#volume rect.filled").first.wait_for(state="attached")
                    page.locator("#latency path.series").first.wait_for(state="attached")
                    page.screenshot(path=str(ROOT / "docs" / name), full_page=True)
                    page.close()
                browser.close()
        finally:
            server.stop()
    print("wrote docs/dashboard.png and docs/dashboard-dark.png")


if __name__ == "__main__":
    main()
