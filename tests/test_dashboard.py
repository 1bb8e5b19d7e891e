"""The dashboard (SPEC §10) as a person uses it: Debian's chromium, driven by Playwright,
against the service under gunicorn on loopback, with a day of events imported."""

from __future__ import annotations

import configparser
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest

import dashboard
from conftest import HTTP, KEY, ROOT, Server
from dashboard_data import calm_down, history, import_records, send
from hoox_callers import CALLERS, RISK_ROUTES

HEALTH = dashboard.expand(dashboard.load_queries()["layouts"]["profile"]["health"],
                          "hoox_telemetry")


# -- the routes, in process ---------------------------------------------------------------

def test_page_and_its_files_need_no_key(make_client, config) -> None:
    client = make_client(config)
    for path in ("/", "/static/dashboard.js", "/static/dashboard.css",
                 "/static/queries.json"):
        result = client.simulate_get(path, headers={"X-Internal-Auth-Key": ""})
        assert result.status_code == 200, path
    page = client.simulate_get("/", headers={"X-Internal-Auth-Key": ""})
    assert page.headers["content-type"].startswith("text/html")
    assert 'aria-label="Latency"' in page.text and 'aria-label="Volume heatmap"' in page.text
    assert client.simulate_get("/static/queries.json").json == dashboard.load_queries()
    # the data still needs the key
    assert client.simulate_post("/query", json={"query": "SELECT 1 AS one"},
                                headers={"X-Internal-Auth-Key": ""}).status_code == 401


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/..%2Fapp.py",
                                  "/static/%2e%2e%2fapp.py", "/static/__init__.py",
                                  "/static/..", "/static/dashboard.js/../../app.py",
                                  "/static/setup.cfg", "/static/.%2F..%2F..%2Fsetup.cfg"])
def test_static_route_serves_only_the_dashboards_files(make_client, config, path) -> None:
    result = make_client(config).simulate_get(path, headers={"X-Internal-Auth-Key": ""})
    assert result.status_code == 404
    assert "import" not in result.text and "[metadata]" not in result.text


def test_the_page_weighs_under_300_kb(make_client, config) -> None:
    client = make_client(config)
    page = client.simulate_get("/").text
    linked = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert linked
    total = len(page.encode()) + sum(len(client.simulate_get(p).content)
                                     for p in linked + ["/static/queries.json"])
    assert total < 300 * 1024


def test_an_installed_package_carries_every_dashboard_file() -> None:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    patterns = parser["options.package_data"]["dashboard"].replace(" ", "").split(",")
    files = [p for p in (ROOT / "dashboard").iterdir() if p.suffix != ".py"
             and p.name != "__pycache__"]
    assert files
    for path in files:
        assert any(path.match(pattern) for pattern in patterns), path.name
    assert set(dashboard.load_assets()) == {p.name for p in files}


# -- in the browser -----------------------------------------------------------------------

@pytest.fixture
def service(tmp_path: Path, db_path: Path,
            gunicorn_server: Callable[..., Server]) -> Callable[..., Server]:
    """The service on a log holding a day of api-calls (none in the last two minutes)."""
    def start(**env: str) -> Server:
        import_records(db_path, history(time.time()), tmp_path)
        return gunicorn_server(**env)
    return start


class Page:
    """One browser tab on the dashboard, recording every request it makes."""

    def __init__(self, browser: Any, url: str, **context: Any):
        self.context = browser.new_context(viewport={"width": 1366, "height": 900}, **context)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url + "/")

    def sign_in(self, key: str) -> None:
        self.page.get_by_label("Internal key").fill(key)
        self.page.get_by_role("button", name="Open dashboard").click()

    def rows(self) -> list[list[str]]:
        table = self.page.get_by_role("table", name="System health")
        return [[c.strip() for c in row.locator("td").all_inner_texts()]
                for row in table.locator("tbody tr").all()]

    def alert_visible(self) -> bool:
        return self.page.get_by_role("alert").count() > 0

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browser(request: pytest.FixtureRequest, chromium: Any) -> Any:
    """Debian's chromium as its headless shell, or in a test parametrized with "chromium
    package", as the package a person opens."""
    if getattr(request, "param", None) == "chromium package":
        return request.getfixturevalue("chromium_package")
    return chromium


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Page]]:
    pages: list[Page] = []

    def open_(url: str, **context: Any) -> Page:
        pages.append(Page(browser, url, **context))
        return pages[-1]

    yield open_
    for page in pages:
        assert not page.errors, page.errors  # no script error, ever
        page.close()


def query(server: Server, sql: str) -> list[dict[str, Any]]:
    response = HTTP.post(server.url + "/query", json={"query": sql, "source": "local"},
                         headers={"X-Internal-Auth-Key": KEY}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def expected_rows(server: Server) -> list[list[str]]:
    rows = []
    for r in query(server, HEALTH):
        rate = r["errors"] / r["calls"]
        rows.append([r["worker"], f"{r['calls']:,}", f"{r['errors']:,}",
                     f"{100 * rate:.{1 if 0 < rate < 0.1 else 0}f} %"])
    return rows


def classes(locator: Any) -> str:
    """An element's classes: an element given none has no class attribute at all (a value
    shown straight away as good never had "bad" or "neutral" toggled on and off)."""
    return locator.get_attribute("class") or ""


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.02) -> float:
    """Seconds until `check()` held; fails after `timeout`."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - began


@pytest.mark.browser
@pytest.mark.gunicorn
@pytest.mark.parametrize("browser", ["headless shell", "chromium package"], indirect=True)
def test_key_once_then_the_three_views_drawn_from_the_data(service, open_page,
                                                           tmp_path: Path) -> None:
    server = service()
    tab = open_page(server.url)
    page = tab.page

    tab.sign_in("not-the-key")
    page.get_by_text("That key was not accepted").wait_for()
    assert page.get_by_label("Internal key").input_value() == ""
    assert page.locator("#board").is_hidden()

    tab.sign_in(KEY)
    page.get_by_role("table", name="System health").locator("tbody tr td.num").first.wait_for()
    assert page.evaluate("sessionStorage.length") == 1
    assert page.get_by_text("Answered by").inner_text().endswith("local")

    # the table says what /query says (retried: the 15-minute window slides)
    for _ in range(5):
        shown, expected = tab.rows(), expected_rows(server)
        if shown == expected:
            break
        time.sleep(0.5)
    assert shown == expected and len(shown) == 4

    # the latency chart: two lines per worker, drawn from data
    latency = page.get_by_role("img", name="Latency")
    page.locator("#latency path.series").nth(7).wait_for(state="attached")
    paths = latency.locator("path.series")
    assert paths.count() == 8
    for d in paths.evaluate_all("ps => ps.map(p => p.getAttribute('d'))"):
        assert d.count("L") >= 20  # 24 h in 15-minute buckets: many points
    assert "trade-worker p95" in page.locator("#latency-legend").inner_text()

    # the heatmap: the day's events, cell by cell as /query counts them
    heat = page.get_by_role("img", name="Volume heatmap")
    page.locator("#volume rect.filled").first.wait_for(state="attached")
    volume = dashboard.expand(dashboard.load_queries()["layouts"]["profile"]["volume"],
                              "hoox_telemetry", "'24' HOUR")
    # retried: the page may be drawing the heatmap as we ask (no event of the history
    # leaves the 24-hour window meanwhile)
    for _ in range(70):
        counts = {(r["weekday"], r["hour"]): r["events"] for r in query(server, volume)}
        cells = heat.locator("rect.cell").evaluate_all(
            "rs => rs.map(r => Number(r.dataset.events))")
        shown = {(i // 24 + 1, i % 24): n for i, n in enumerate(cells) if n}
        if shown == counts:
            break
        time.sleep(1)
    assert len(cells) == 7 * 24
    assert shown == counts

    # another range redraws views 2 and 3
    page.get_by_label("1 h").check()
    page.get_by_text(re.compile(r"Events: [\d,]+ in the last 1 h")).wait_for()
    page.get_by_label("7 d").check()
    page.get_by_text(re.compile(r"Events: 2,000 in the last 7 d")).wait_for()

    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert all(urlsplit(u).hostname == "127.0.0.1" and urlsplit(u).port == server.port
               for u in tab.requests), tab.requests
    assert any(u.endswith("/query") for u in tab.requests)


@pytest.mark.browser
@pytest.mark.gunicorn
def test_banner_shows_and_clears_within_two_seconds_of_the_events(service,
                                                                   open_page) -> None:
    server = service()
    tab = open_page(server.url)
    tab.sign_in(KEY)
    tab.page.get_by_role("table", name="System health").locator("td.num").first.wait_for()
    time.sleep(1.5)
    assert not tab.alert_visible()

    send(server.url, KEY, "hoox", 4, False, "below")  # 4 errors: under the rule
    time.sleep(2.5)
    assert not tab.alert_visible()
    for spike in range(3):
        send(server.url, KEY, "hoox", 5, False, f"spike{spike}")
        assert wait_until(tab.alert_visible, 2.0) <= 2.0
        assert "failed in the last 60 s" in tab.page.get_by_role("alert").inner_text()
        calm_down(server.url, KEY, HEALTH, f"calm{spike}")
        assert wait_until(lambda: not tab.alert_visible(), 2.0) <= 2.0


@pytest.mark.browser
@pytest.mark.gunicorn
@pytest.mark.e2e
def test_a_failing_query_is_said_in_words_and_the_last_data_stays(service, open_page,
                                                                  standin) -> None:
    standin.set_mode("hang")
    server = service(**{**standin.env(), "ANALYTICS_SINK": "none",
                        "CLOUDFLARE_TIMEOUT_MS": "800"})
    tab = open_page(server.url)
    page = tab.page
    tab.sign_in(KEY)
    page.locator("#latency path.series").nth(7).wait_for(state="attached")
    page.locator("#health-rows td.num").first.wait_for()
    before = tab.rows()
    assert len(before) == 4

    page.get_by_label("Source").select_option("cloudflare")
    notice = page.locator("#notice")
    notice.get_by_text("Cloudflare answered HTTP 504").first.wait_for(timeout=10_000)
    assert "showing the data of" in notice.inner_text()
    assert tab.rows() == before
    assert page.locator("#latency path.series").count() == 8
    assert "Traceback" not in page.content()

    standin.set_mode("up")
    page.get_by_label("Source").select_option("local")
    page.locator("#notice").wait_for(state="hidden")
    assert page.get_by_text("Answered by").inner_text().endswith("local")


@pytest.mark.browser
@pytest.mark.gunicorn
@pytest.mark.e2e
def test_answers_from_a_source_no_longer_chosen_are_not_said_to_be_the_source(
        service, open_page, standin) -> None:
    """Cloudflare answers slowly, and the source is back to local before it does: its
    answers arrive after the local ones, and the page still says local."""
    server = service(**{**standin.env(), "ANALYTICS_SINK": "none",
                        "CLOUDFLARE_TIMEOUT_MS": "10000"})
    tab = open_page(server.url)
    page = tab.page
    tab.sign_in(KEY)
    page.locator("#health-rows td.num").first.wait_for()
    standin.delay_s = 1.5
    asked_cloudflare = lambda r: (r.url.endswith("/query")  # noqa: E731
                                  and '"cloudflare"' in (r.request.post_data or ""))
    with page.expect_response(asked_cloudflare, timeout=15_000) as late:
        page.get_by_label("Source").select_option("cloudflare")
        page.get_by_label("Source").select_option("local")
    assert late.value.ok and late.value.json()["source"] == "cloudflare"
    page.evaluate("() => new Promise(done => setTimeout(done, 100))")  # its handlers ran
    assert page.locator("#source-name").inner_text() == "local"


@pytest.mark.browser
@pytest.mark.gunicorn
def test_a_key_that_stops_working_asks_again_and_keeps_the_data(service, open_page) -> None:
    server = service()
    tab = open_page(server.url)
    page = tab.page
    tab.sign_in(KEY)
    page.locator("#latency path.series").nth(7).wait_for(state="attached")
    page.locator("#health-rows td.num").first.wait_for()
    before = tab.rows()

    # the key is rotated: the service restarts on the same port with another key
    server.stop()
    page.locator("#notice").get_by_text("did not answer").first.wait_for()
    server.env["INTERNAL_KEY_BINDING"] = "new-key"
    server.start()
    page.get_by_text("no longer accepts the key").wait_for()
    assert page.get_by_label("Internal key").is_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert tab.rows() == before  # the last good data stays

    tab.sign_in("new-key")
    page.locator("#signin").wait_for(state="hidden")
    page.locator("#notice").wait_for(state="hidden")


@pytest.mark.browser
@pytest.mark.gunicorn
def test_dark_mode_uses_dark_colours(service, open_page, tmp_path: Path) -> None:
    server = service()
    tab = open_page(server.url, color_scheme="dark")
    tab.sign_in(KEY)
    tab.page.locator("#volume rect.filled").first.wait_for(state="attached")
    background = tab.page.evaluate("getComputedStyle(document.body).backgroundColor")
    text = tab.page.evaluate("getComputedStyle(document.body).color")
    channels = lambda c: [int(v) for v in re.findall(r"\d+", c)[:3]]  # noqa: E731
    assert sum(channels(background)) < 150 and sum(channels(text)) > 600
    tab.page.screenshot(path=str(tmp_path / "dashboard-dark.png"), full_page=True)


# -- the hoox layout (SPEC §9): the platform's own bodies on the /track/* routes ----------

HOOX_HEALTH = dashboard.expand(dashboard.load_queries()["layouts"]["hoox"]["health"],
                               "hoox-analytics")


def post_hoox(server: Server, route: str, body: dict[str, Any]) -> None:
    response = HTTP.post(f"{server.url}/track/{route}", json=body,
                         headers={"X-Internal-Auth-Key": KEY}, timeout=30)
    assert response.status_code == 200, response.text


def api_call(worker: str, latency: float, success: bool) -> dict[str, Any]:
    return {"worker": worker, "endpoint": "/webhook", "latencyMs": latency, "success": success}


def feed_hoox(server: Server) -> None:
    """Every real caller's body, api-calls from several workers (three failures in all:
    under the banner's rule) and more trades and signals."""
    for caller in CALLERS:
        post_hoox(server, caller.route, caller.body)
    for i in range(10):
        for worker, base in (("hoox", 12), ("d1-worker", 4), ("web3-wallet-worker", 300)):
            post_hoox(server, "api-call", api_call(worker, base + 3 * i, True))
        post_hoox(server, "trade", {
            "payload": {"exchange": "binance", "symbol": "BTCUSDT", "action": "buy",
                        "quantity": 0.01, "price": 64000 + i},
            "result": {"success": True}, "latencyMs": 150 + 20 * i})
    for i in range(4):
        post_hoox(server, "signal", {"data": {"source": "email", "type": "buy",
                                              "symbol": "ETHUSDT", "confidence": 0.5}})


QUARTER_HOUR_S = 900
FEEDING_S = 10  # feed_hoox takes 1-2 s


@pytest.fixture
def hoox_service(gunicorn_server: Callable[..., Server]) -> Server:
    """The hoox layout on a fresh log, fed. The events are received now, and the latency
    chart buckets them by 15 minutes: they are sent within one quarter hour (within
    FEEDING_S of its end, the feeding waits for the next), so the chart's lines are single
    points the tests can compare."""
    server = gunicorn_server(ANALYTICS_LAYOUT="hoox")
    into = time.time() % QUARTER_HOUR_S
    if into > QUARTER_HOUR_S - FEEDING_S:
        time.sleep(QUARTER_HOUR_S - into + 0.5)
    bucket = time.time() // QUARTER_HOUR_S
    feed_hoox(server)
    assert time.time() // QUARTER_HOUR_S == bucket, \
        f"the feeding crossed a quarter hour (it took over {FEEDING_S} s)"
    return server


def expected_hoox_rows(server: Server) -> list[list[str]]:
    rows = []
    for r in query(server, HOOX_HEALTH):
        outcome = r["kind"] in ("api-call", "trade")
        rate = r["errors"] / r["calls"]
        rows.append([r["kind"], r["worker"], f"{r['calls']:,}",
                     f"{r['errors']:,}" if outcome else "–",
                     f"{100 * rate:.{1 if 0 < rate < 0.1 else 0}f} %" if outcome else "–"])
    return rows


@pytest.mark.browser
@pytest.mark.gunicorn
def test_hoox_layout_the_three_views_drawn_from_the_platforms_events(hoox_service,
                                                                     open_page,
                                                                     tmp_path: Path) -> None:
    server = hoox_service
    tab = open_page(server.url)
    page = tab.page
    tab.sign_in(KEY)
    page.get_by_role("table", name="System health").locator("tbody tr td.num").first.wait_for()
    assert "Dataset hoox-analytics, hoox layout" in page.locator("#about").inner_text()
    assert page.locator("#health-head th").all_inner_texts()[:2] == ["Event", "Worker"]

    shown, expected = tab.rows(), expected_hoox_rows(server)
    assert shown == expected
    kinds = {(row[0], row[1]) for row in shown}
    assert {("api-call", w) for w in ("hoox", "d1-worker", "web3-wallet-worker",
                                      "trade-worker")} <= kinds
    assert {("trade", "trade-worker"), ("signal", "email")} <= kinds
    assert ["api-call", "hoox", "11", "1", "9.1 %"] in shown   # the caller's one failure
    assert ["trade", "trade-worker", "14", "2", "14 %"] in shown
    assert not tab.alert_visible()  # three errors: under the rule

    # latency: p50 and p95 per api-call worker, and the trades' latency (double3) beside them
    latency_sql = dashboard.expand(dashboard.load_queries()["layouts"]["hoox"]["latency"],
                                   "hoox-analytics", "'24' HOUR", "'15' MINUTE")
    answered = query(server, latency_sql)
    page.locator("#latency path.series").nth(9).wait_for(state="attached")
    drawn = page.locator("#latency path.series").evaluate_all(
        "ps => ps.map(p => p.dataset.series)")
    assert sorted(drawn) == sorted(
        f"{name} {q}" for name in ("d1-worker", "hoox", "trade-worker", "web3-wallet-worker",
                                   "trades") for q in ("p50", "p95"))
    trade = [r for r in answered if r["kind"] == "trade"]
    assert len(trade) == 1 and 150 <= trade[0]["p50"] <= 5000  # double3, not the quantity
    legend = page.locator("#latency-legend").inner_text()
    assert "trades p95" in legend and "web3-wallet-worker p50" in legend
    # each line is drawn at the height /query gives: p95 above p50, trades the highest
    ys = {s: float(d.split(",")[1].split("L")[0]) for s, d in page.locator(
        "#latency path.series").evaluate_all(
        "ps => ps.map(p => [p.dataset.series, p.getAttribute('d')])")}
    assert ys["trades p95"] < ys["trades p50"] < ys["d1-worker p50"]
    assert ys["web3-wallet-worker p50"] < ys["hoox p50"]

    # the heatmap: trades and signals in panels of their own, as /query counts them
    volume_sql = dashboard.expand(dashboard.load_queries()["layouts"]["hoox"]["volume"],
                                  "hoox-analytics", "'24' HOUR")
    per_kind: dict[str, int] = {}
    for r in query(server, volume_sql):
        per_kind[r["kind"]] = per_kind.get(r["kind"], 0) + r["events"]
    page.locator("#volume rect.filled").nth(2).wait_for(state="attached")
    cells = page.locator("#volume rect.cell").evaluate_all(
        "rs => rs.map(r => Number(r.dataset.events))")
    assert len(cells) == 3 * 7 * 24
    panels = [sum(cells[i * 168:(i + 1) * 168]) for i in range(3)]
    assert panels == [per_kind["trade"], per_kind["signal"],
                      sum(n for k, n in per_kind.items() if k not in ("trade", "signal"))]
    assert panels[:2] == [14, 5]
    heads = page.locator("#volume text.cell-label").all_text_contents()
    assert heads[0].startswith("Trades: 14") and heads[1].startswith("Signals: 5")

    # agent-worker's risk events: each kind counted, and the latest actions newest first
    risk = page.get_by_role("table", name="Risk events by kind")
    risk.locator("tbody tr").nth(3).wait_for()
    counted = [r.locator("td").all_inner_texts() for r in risk.locator("tbody tr").all()]
    expected_counts = {kind: sum(c.route == kind for c in CALLERS) for kind in RISK_ROUTES}
    assert [(r[0], r[1], r[2]) for r in counted] == [
        ("housekeeping", str(expected_counts["housekeeping"]), "1"),
        ("trailing-stop", str(expected_counts["trailing-stop"]), "–"),
        ("take-profit", str(expected_counts["take-profit"]), "–"),
        ("kill-switch", str(expected_counts["kill-switch"]), "–")]
    latest = page.get_by_role("table", name="Latest risk actions")
    actions = [c for c in CALLERS if c.route in RISK_ROUTES[1:]]
    latest.locator("tbody tr").nth(len(actions) - 1).wait_for()
    listed = [r.locator("td").all_inner_texts() for r in latest.locator("tbody tr").all()]
    assert [r[1] for r in listed] == [c.route for c in reversed(actions)]
    kill = next(r for r in listed if "-12.34%" in r[2])
    assert kill[2] == ("max_drawdown: PnL -12.34% against a limit of -10% "
                       "(unrealized -1,234.5 of 10,000)")
    assert ["binance BTCUSDT", "bybit ETHUSDT"] == sorted(
        r[3] for r in listed if r[1] != "kill-switch")

    page.screenshot(path=str(tmp_path / "dashboard-hoox.png"), full_page=True)
    assert all(urlsplit(u).hostname == "127.0.0.1" and urlsplit(u).port == server.port
               for u in tab.requests), tab.requests


@pytest.mark.browser
@pytest.mark.gunicorn
def test_hoox_layout_banner_shows_and_clears_within_two_seconds(
        gunicorn_server: Callable[..., Server], open_page) -> None:
    server = gunicorn_server(ANALYTICS_LAYOUT="hoox")
    feed_hoox(server)
    tab = open_page(server.url)
    tab.sign_in(KEY)
    tab.page.get_by_role("table", name="System health").locator("td.num").first.wait_for()
    time.sleep(1.5)
    assert not tab.alert_visible()
    for spike in range(2):
        for i in range(5):  # blob3 = 'failure', from two workers
            post_hoox(server, "api-call", api_call(("hoox", "d1-worker")[i % 2], 8, False))
        assert wait_until(tab.alert_visible, 2.0) <= 2.0
        assert "failed in the last 60 s" in tab.page.get_by_role("alert").inner_text()
        calm_down(server.url, KEY, HOOX_HEALTH, f"calm{spike}")
        assert wait_until(lambda: not tab.alert_visible(), 2.0) <= 2.0
    assert all(urlsplit(u).hostname == "127.0.0.1" for u in tab.requests)


# -- the Service panel (SPEC §12) -------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.gunicorn
@pytest.mark.e2e
def test_service_panel_follows_a_relay_outage_the_backlog_grows_then_drains(
        gunicorn_server: Callable[..., Server], standin: Any, open_page) -> None:
    server = gunicorn_server(**standin.env(), CLOUDFLARE_TIMEOUT_MS="500",
                             ANALYTICS_REPLAY_BACKOFF_MAX_MS="300")
    post = lambda prefix, n: [HTTP.post(  # noqa: E731
        server.url + "/track/api-call", headers={"X-Internal-Auth-Key": KEY},
        json={"requestId": f"{prefix}-{i}", "payload": {"worker": "w", "endpoint": "/e",
                                                        "latencyMs": 1, "success": True}},
        timeout=10).raise_for_status() for i in range(n)]
    post("before", 20)
    tab = open_page(server.url)
    tab.sign_in(KEY)
    page = tab.page
    backlog = page.get_by_label("Replay backlog")
    events = page.get_by_label("Events in the log")

    def shown(locator: Any) -> int:
        digits = re.match(r"[\d,]+", locator.inner_text().strip())
        return int(digits.group(0).replace(",", "")) if digits else -1

    wait_until(lambda: shown(backlog) == 0 and shown(events) == 20, 15, 0.1)
    assert page.get_by_label("Last successful send").inner_text() != "never"
    assert page.get_by_label("Dead letters").inner_text() == "0"
    assert re.fullmatch(r"[\d.]+ (KiB|MiB)", page.get_by_label("Log size").inner_text())

    standin.set_mode("refuse")
    post("outage", 30)
    wait_until(lambda: shown(backlog) >= 30, 15, 0.1)
    assert "bad" in classes(backlog)
    wait_until(lambda: page.get_by_label("Oldest unsent event").inner_text().endswith("old"),
               10, 0.1)
    assert shown(events) == 50

    standin.set_mode("up")
    wait_until(lambda: shown(backlog) == 0, 20, 0.1)
    assert page.get_by_label("Oldest unsent event").inner_text() == "none waiting"
    assert len(standin.points) >= 50
    assert all(urlsplit(u).hostname == "127.0.0.1" for u in tab.requests)
    assert any(u.endswith("/metrics") for u in tab.requests)


def colour(locator: Any) -> str:
    return locator.evaluate("el => getComputedStyle(el).color")


@pytest.mark.browser
@pytest.mark.gunicorn
def test_on_the_defaults_the_service_panel_says_cloudflare_is_not_configured_in_grey(
        gunicorn_server: Callable[..., Server], open_page) -> None:
    """`./run.sh`'s settings: no Cloudflare, replay printing to stdout. Nothing is wrong,
    so nothing is red, and the panel says which settings would change it."""
    from storage.config import Config

    assert Config.__dataclass_fields__["sink"].default == "stdout"
    server = gunicorn_server(ANALYTICS_SINK="stdout")
    HTTP.post(server.url + "/track/api-call", headers={"X-Internal-Auth-Key": KEY},
              json={"requestId": "only-one", "payload": {"worker": "w", "endpoint": "/e",
                                                          "latencyMs": 1, "success": True}},
              timeout=10).raise_for_status()
    tab = open_page(server.url)
    tab.sign_in(KEY)
    page = tab.page
    cloudflare = page.get_by_label("Cloudflare", exact=True)
    wait_until(lambda: cloudflare.inner_text() == "not configured", 10, 0.1)
    assert "neutral" in classes(cloudflare)
    assert "bad" not in classes(cloudflare)
    muted = colour(page.locator("#service-title + .muted"))
    assert colour(cloudflare) == muted
    hint = page.locator("#service-cloudflare-hint").inner_text()
    assert "CLOUDFLARE_API_TOKEN" in hint and "CLOUDFLARE_ACCOUNT_ID" in hint
    backlog = page.get_by_label("Replay backlog")
    assert backlog.inner_text() == "printed to stdout"
    assert colour(backlog) == muted and "bad" not in classes(backlog)
    assert "standard output" in page.locator("#service-replay-hint").inner_text()
    assert page.locator(".figures dd.bad").count() == 0
    assert page.locator("#about").inner_text().endswith(", 1 event in the log")


@pytest.mark.browser
@pytest.mark.gunicorn
@pytest.mark.e2e
def test_cloudflare_turns_red_only_once_a_configured_cloudflare_stops_answering(
        gunicorn_server: Callable[..., Server], standin: Any, open_page) -> None:
    # Time enough for the stand-in on a busy machine: a call that timed out would turn it
    # red before it ever answered (the refusals below are immediate).
    server = gunicorn_server(**standin.env(), CLOUDFLARE_TIMEOUT_MS="5000")
    tab = open_page(server.url)
    tab.sign_in(KEY)
    page = tab.page
    cloudflare = page.get_by_label("Cloudflare", exact=True)
    # configured: asked by the page's own queries (source auto), and it answers
    wait_until(lambda: cloudflare.inner_text() == "reachable", 15, 0.1)
    assert "bad" not in classes(cloudflare)
    assert page.locator("#service-cloudflare-hint").inner_text() == ""
    normal = colour(page.get_by_label("Events in the log"))
    assert colour(cloudflare) == normal

    standin.set_mode("refuse")
    page.get_by_label("Source").select_option("cloudflare")
    wait_until(lambda: cloudflare.inner_text() == "not reachable", 15, 0.1)
    assert "bad" in classes(cloudflare)
    assert colour(cloudflare) not in (normal, colour(page.locator("#service-title + .muted")))


@pytest.mark.browser
@pytest.mark.gunicorn
@pytest.mark.e2e
def test_a_hung_answer_is_abandoned_at_its_time_limit_said_and_asked_again(
        service, standin: Any, open_page) -> None:
    """Cloudflare accepts and never answers, and the service waits for it longer than the
    page does: the page abandons each request at the panel's limit (5 s for System
    health), says so, and asks again, one request at a time."""
    server = service(**{**standin.env(), "ANALYTICS_SINK": "none",
                        "CLOUDFLARE_TIMEOUT_MS": "14000"})
    tab = open_page(server.url)
    page = tab.page
    started: list[float] = []
    abandoned: list[tuple[float, str]] = []

    def health(request: Any) -> bool:
        return request.url.endswith("/query") and "calls_60s" in (request.post_data or "")

    page.on("request", lambda r: started.append(time.monotonic()) if health(r) else None)
    page.on("requestfailed", lambda r: abandoned.append((time.monotonic(), r.failure or ""))
            if health(r) else None)
    tab.sign_in(KEY)
    page.locator("#health-rows td.num").first.wait_for()

    standin.set_mode("hang")
    page.get_by_label("Source").select_option("cloudflare")
    hung_at = time.monotonic()
    notice = page.locator("#notice")
    notice.get_by_text("System health: No answer within 5 s").wait_for(timeout=12_000)
    assert "Asking again; showing the data of" in notice.inner_text()
    assert "not updated" in page.locator("#health-state").inner_text()
    page.wait_for_timeout(6_000)  # one more limit: abandoned again, asked again
    gave_up = [at for at, _ in abandoned if at > hung_at]
    assert len(gave_up) >= 2, abandoned
    assert all(4.5 < b - a < 8 for a, b in zip(gave_up, gave_up[1:])), gave_up
    # asked again right after each abandoned request, and never while one was out
    for a, b in zip(gave_up, gave_up[1:]):
        again = [s for s in started if a <= s < b]
        assert len(again) == 1 and again[0] - a < 1.5, (a, b, started)

    standin.set_mode("up")
    page.get_by_label("Source").select_option("local")
    notice.wait_for(state="hidden", timeout=15_000)
