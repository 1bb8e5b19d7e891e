"""Explore (SPEC §10.1) as a person uses it: Debian's chromium, driven by Playwright,
against the service under gunicorn on loopback, holding a day of api-calls and the points
of two more datasets written through POST /track/datapoints. One service and one browser
serve the module's tests, which only read; each test has a tab of its own."""

from __future__ import annotations

import csv
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from conftest import HTTP, KEY, Server, service_env
from dashboard_data import history, import_records, send

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]

AUTH = {"X-Internal-Auth-Key": KEY}
MARKUP = """<img src=x onerror="document.title='ran'; window.ran = 1">"""
T0 = 1_796_000_000  # app_timings' own times (double1), a minute apart
TIMINGS = [3, 8, 5, 13, 2, 21, 1]


def page_views() -> list[dict[str, Any]]:
    """40 requests of a Worker: method, path and (once) a blob of markup; status and ms."""
    return [{"blobs": ["GET" if i % 2 else "POST", f"/page/{i}"] + ([MARKUP] if i == 7 else []),
             "doubles": [404 if i % 10 == 3 else 200, 1.25 * i],
             "indexes": [f"user-{i % 5}"]} for i in range(40)]


def app_timings() -> list[dict[str, Any]]:
    """7 timings, no index: a kind, the time it was taken (epoch seconds) and its value."""
    return [{"blobs": ["cold" if i % 3 == 0 else "warm"],
             "doubles": [T0 + 60 * i, v, 0.5 * i]} for i, v in enumerate(TIMINGS)]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("explore")
    db = work / "analytics.db"
    import_records(db, history(time.time()), work)
    server = Server(service_env(db), work).start()
    try:
        for dataset, points in (("page_views", page_views()), ("app_timings", app_timings())):
            answer = HTTP.post(server.url + "/track/datapoints", headers=AUTH, timeout=30,
                               json={"dataset": dataset, "points": points})
            assert answer.json()["accepted"] == len(points), answer.text
        yield server
    finally:
        server.stop()


def ask(server: Server, sql: str) -> dict[str, Any]:
    """/query's whole answer, as the page asks it (source auto)."""
    response = HTTP.post(server.url + "/query", json={"query": sql}, headers=AUTH, timeout=30)
    return {"status": response.status_code, **response.json()}


def as_text(value: Any) -> str:
    """A JSON value as the page writes it (JavaScript's String())."""
    if value is None:
        return "NULL"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Tab:
    """One browser tab on the dashboard, recording its requests and script errors."""

    def __init__(self, browser: Any, url: str):
        self.url = url
        self.context = browser.new_context(viewport={"width": 1366, "height": 900},
                                           accept_downloads=True)
        self.requests: list[Any] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, hash_: str = "view=explore") -> "Tab":
        self.page.goto(f"{self.url}/#{hash_}")
        self.page.get_by_label("Internal key").fill(KEY)
        self.page.get_by_role("button", name="Open dashboard").click()
        self.page.locator("#board").wait_for()
        return self

    def run(self, sql: str) -> None:
        """Types a query in the box and runs it with Ctrl+Enter, until it is answered."""
        box = self.page.get_by_label("Query", exact=True)
        box.fill(sql)
        with self.page.expect_response(lambda r: r.url.endswith("/query") and json.loads(
                r.request.post_data or "{}").get("query") == sql):
            box.press("Control+Enter")
        expect(self.page.locator("#result-status")).not_to_have_text("Asking…")

    def table(self, rows: str, head: str) -> tuple[list[str], list[list[str]]]:
        """(column names, rows of cell texts) of a table's head and every cell of its body:
        a table in a scroll box draws the cells in view, so the box is scrolled through,
        down and across."""
        names = self.page.locator(f"{head} th > span:first-child").all_text_contents()
        cells = self.page.locator(rows).evaluate("""async (body) => {
            const table = body.closest("table"), box = body.closest(".scroll");
            const cellsOf = (tr) => {  // [column (from 1), text] of each cell drawn
                const out = [];
                let column = 1;
                for (const c of tr.cells) {
                    if (!c.classList.contains("gap")) {
                        out.push([Number(c.getAttribute("aria-colindex")) || column,
                                  c.textContent]);
                    }
                    column += c.colSpan;
                }
                return out;
            };
            if (!box) return [...body.rows].map((tr) => cellsOf(tr).map((c) => c[1]));
            const height = Number(table.getAttribute("aria-rowcount")) - 1;
            const width = Number(table.getAttribute("aria-colcount"));
            const frames = () => new Promise((done) =>
                requestAnimationFrame(() => requestAnimationFrame(done)));
            const seen = new Map();
            const read = () => {
                for (const tr of body.querySelectorAll("tr[aria-rowindex]")) {
                    const i = Number(tr.getAttribute("aria-rowindex"));
                    if (!seen.has(i)) seen.set(i, new Map());
                    for (const [c, text] of cellsOf(tr)) seen.get(i).set(c, text);
                }
            };
            const whole = () => seen.size === height &&
                [...seen.values()].every((row) => row.size === width);
            const until = performance.now() + 20000;  // a broken table fails, not hangs
            box.scrollTop = 0;
            for (let step = 0; step < 1000 && !whole() && performance.now() < until; step++) {
                box.scrollLeft = 0;
                await frames();
                read();
                for (let across = 0; across < 100 && performance.now() < until; across++) {
                    const left = box.scrollLeft;
                    box.scrollLeft += box.clientWidth / 2;
                    if (box.scrollLeft === left) break;  // the right end
                    await frames();
                    read();
                }
                const top = box.scrollTop;
                box.scrollTop += box.clientHeight / 2;
                if (box.scrollTop === top) break;  // the bottom
                await frames();
            }
            const order = (map) => [...map.keys()].sort((a, b) => a - b).map((k) => map.get(k));
            return order(seen).map(order);
        }""")
        return names, cells

    def queries_sent(self, sql: str) -> int:
        return sum(1 for r in self.requests if r.url.endswith("/query")
                   and json.loads(r.post_data or "{}").get("query") == sql)


@pytest.fixture
def tab(chromium: Any, service: Server) -> Iterator[Callable[..., Tab]]:
    """New tabs, on the module's service unless told another."""
    tabs: list[Tab] = []

    def new(url: str = service.url) -> Tab:
        tabs.append(Tab(chromium, url))
        return tabs[-1]

    yield new
    for t in tabs:
        assert not t.errors, t.errors  # no script error, ever
        # nothing but the service: no CDN, nothing the data names (an <img src=x>)
        assert all(r.url.startswith(t.url + "/") and urlsplit(r.url).path != "/x"
                   for r in t.requests if not r.url.startswith("blob:")), \
            [r.url for r in t.requests]
        t.context.close()


def test_points_written_to_two_datasets_are_listed_with_their_counts(service, tab) -> None:
    t = tab().open()
    rows = t.page.locator("#datasets-rows tr")
    expect(rows).to_have_count(3)
    expect(t.page.locator("#datasets-rows td:nth-child(3)").filter(has_text="…")).to_have_count(0)
    events = HTTP.get(service.url + "/status", headers=AUTH).json()["events"]
    _, listed = t.table("#datasets-rows", "#datasets thead")
    # SHOW TABLES's order: the service's own dataset first
    assert [r[0] for r in listed] == [r["dataset"] for r in ask(service, "SHOW TABLES")["results"]]
    assert [(r[0], r[1]) for r in listed] == [("hoox_telemetry", f"{events:,}"),
                                              ("app_timings", "7"), ("page_views", "40")]
    assert events == 2000
    for name, _, newest, kept in listed:
        answer = ask(service, f"SELECT max(timestamp) AS newest FROM {name}")
        assert newest == answer["results"][0]["newest"]
        assert kept == ("in the log, and replay sends it on (sink none)"
                        if name == "hoox_telemetry" else "in the log only")
    assert "from local" in t.page.locator("#datasets-state").text_content()


def test_opening_a_dataset_shows_its_newest_points_with_only_the_columns_it_holds(
        service, tab) -> None:
    t = tab().open()
    t.page.get_by_role("link", name="page_views").click()
    assert "dataset=page_views" in t.page.url
    expect(t.page.get_by_role("heading", name="page_views")).to_be_visible()
    expect(t.page.locator("#dataset-points")).to_have_attribute("aria-rowcount", "41")
    names, shown = t.table("#dataset-points-rows", "#dataset-points-head")
    assert names == ["timestamp", "_sample_interval", "index1", "blob1", "blob2", "blob3",
                     "double1", "double2"]
    answer = ask(service, "SELECT * FROM page_views ORDER BY timestamp DESC LIMIT 100")
    assert shown == [[as_text(r[n]) for n in names] for r in answer["results"]]
    types = t.page.locator("#dataset-points-head .col-type").all_text_contents()
    meta = {m["name"]: m["type"] for m in answer["meta"]}
    assert types == [meta[n] for n in names]
    expect(t.page.locator("#dataset-columns")).to_have_text(
        "The newest 40 points; left out, empty in every one of them: blob4–blob20, "
        "double3–double20.")

    # its points per bucket of the range (24 h: 15 minutes), drawn where they are
    chart = t.page.get_by_role("img", name="Points of page_views per 15 minutes, last 24 h")
    expect(chart.locator("circle.point")).to_have_count(1)
    per_bucket = ask(service, "SELECT toStartOfInterval(timestamp, INTERVAL '15' MINUTE) AS t,"
                              " sum(_sample_interval) AS points FROM page_views WHERE "
                              "timestamp >= now() - INTERVAL '24' HOUR GROUP BY t ORDER BY t")
    dots = chart.locator("circle.point").evaluate_all(
        "ds => ds.map(d => [d.dataset.t, Number(d.dataset.v)])")
    assert dots == [[r["t"], r["points"]] for r in per_bucket["results"]] == [[dots[0][0], 40]]

    # another dataset, other columns: no index, one blob, three doubles
    t.page.get_by_role("link", name="app_timings").click()
    expect(t.page.get_by_role("heading", name="app_timings")).to_be_visible()
    expect(t.page.locator("#dataset-points-rows tr[aria-rowindex]")).to_have_count(7)
    names, shown = t.table("#dataset-points-rows", "#dataset-points-head")
    assert names == ["timestamp", "_sample_interval", "blob1", "double1", "double2", "double3"]
    assert sorted(float(r[4]) for r in shown) == sorted(TIMINGS)


def test_a_query_typed_in_the_box_answers_the_same_rows_as_query(service, tab) -> None:
    t = tab().open()
    sql = ("SELECT blob2 AS path, blob1 AS method, double1 AS status, double2 AS ms "
           "FROM page_views WHERE double1 = 200 ORDER BY ms DESC")
    t.run(sql)
    answer = ask(service, sql)
    names, shown = t.table("#result-rows", "#result-head")
    assert names == [m["name"] for m in answer["meta"]]
    assert t.page.locator("#result-head .col-type").all_text_contents() == [
        m["type"] for m in answer["meta"]] == ["String", "String", "Float64", "Float64"]
    assert shown == [[as_text(r[n]) for n in names] for r in answer["results"]]
    assert len(shown) == 36
    expect(t.page.locator("#result-status")).to_have_text(
        re.compile(r"Answered by local: 36 rows in [\d.]+ ms"))
    # the query lives in the address, and in the last queries kept in the browser
    assert t.page.evaluate("new URLSearchParams(location.hash.slice(1)).get('q')") == sql
    assert t.page.evaluate(
        "JSON.parse(localStorage.getItem('analytics-worker.recent-queries'))[0]") == sql
    expect(t.page.locator("#sampling-note")).to_be_hidden()

    # every column of a dataset: the cells in view are drawn, the others as the box
    # scrolls across to them
    sql = "SELECT * FROM page_views ORDER BY double2 DESC"
    t.run(sql)
    answer = ask(service, sql)
    expect(t.page.get_by_role("table", name="Query results")).to_have_attribute(
        "aria-colcount", "44")
    drawn = t.page.locator('#result-rows tr[aria-rowindex="2"] td:not(.gap)').count()
    assert 0 < drawn < 44
    names, shown = t.table("#result-rows", "#result-head")
    assert len(names) == 44
    assert shown == [[as_text(r[n]) for n in names] for r in answer["results"]]


def test_a_count_without_sample_interval_gets_one_note_and_still_runs(service, tab) -> None:
    t = tab().open()
    note = t.page.locator("#sampling-note")
    t.run("SELECT blob1 AS method, count() AS n, sum(double2) AS ms FROM page_views "
          "GROUP BY method ORDER BY method")
    expect(note).to_be_visible()
    assert note.text_content().count("SUM(_sample_interval)") == 1
    assert "samples at volume" in note.text_content()
    _, shown = t.table("#result-rows", "#result-head")
    assert shown == [["GET", "20", "500"], ["POST", "20", "475"]]  # answered, not refused

    t.run("SELECT blob1 AS method, SUM(_sample_interval) AS n, "
          "sum(double2 * _sample_interval) AS ms FROM page_views GROUP BY method")
    expect(note).to_be_hidden()
    t.page.get_by_label("Query", exact=True).fill("SELECT countIf(double1 = 404) FROM page_views")
    expect(note).to_be_visible()  # said while the query is typed


def test_the_last_20_queries_are_kept_in_the_browser(service, tab) -> None:
    t = tab().open()
    item = "analytics-worker.recent-queries"
    t.page.evaluate("([item, kept]) => localStorage.setItem(item, JSON.stringify(kept))",
                    [item, [f"SELECT {i} AS n" for i in range(20)]])
    t.run("SELECT 20 AS n")  # the newest first, the oldest pushed out
    kept = t.page.evaluate("(item) => JSON.parse(localStorage.getItem(item))", item)
    assert kept == ["SELECT 20 AS n"] + [f"SELECT {i} AS n" for i in range(19)]
    recent = t.page.locator("#recent")
    recent.locator("summary").click()
    expect(recent.get_by_role("button")).to_have_count(20)
    expect(recent.locator("summary")).to_have_text("Recent queries (20)")
    recent.get_by_role("button", name="SELECT 7 AS n", exact=True).click()  # runs it again
    expect(t.page.locator("#result-rows td")).to_have_text("7")
    assert t.page.evaluate("(item) => JSON.parse(localStorage.getItem(item))[0]",
                           item) == "SELECT 7 AS n"
    assert t.page.evaluate("sessionStorage.length") == 1  # the key, in the session only
    assert t.page.evaluate("localStorage.length") == 1


def test_a_query_with_a_datetime_column_draws_a_chart_whose_points_are_the_answers(
        service, tab) -> None:
    t = tab().open()
    sql = "SELECT toDateTime(double1) AS t, double2 AS value FROM app_timings ORDER BY t"
    t.run(sql)
    answer = ask(service, sql)
    assert [m["type"] for m in answer["meta"]] == ["DateTime", "Float64"]
    expect(t.page.locator("#result-table-box")).to_be_visible()
    t.page.get_by_label("Chart").check()
    chart = t.page.get_by_role("img", name=re.compile("Query results over time"))
    expect(chart).to_be_visible()
    expect(t.page.locator("#result-table-box")).to_be_hidden()
    dots = chart.locator("circle.point").evaluate_all(
        "ds => ds.map(d => [d.dataset.t, Number(d.dataset.v), Number(d.getAttribute('cx')),"
        " Number(d.getAttribute('cy'))])")
    assert [[d[0], d[1]] for d in dots] == [[r["t"], r["value"]] for r in answer["results"]]
    assert [d[1] for d in dots] == TIMINGS
    # placed by their values: x from the time (a minute apart: evenly), y where the
    # chart's own axis says the value is
    xs = [d[2] for d in dots]
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert min(gaps) > 0 and max(gaps) - min(gaps) < 0.5
    ticks = [t for t in chart.locator('text[text-anchor="end"]').evaluate_all(
        "ts => ts.map(t => [Number(t.textContent), Number(t.getAttribute('y')) - 4])")
        if not math.isnan(t[0])]  # the values' axis, not the times
    (v0, y0), (v1, y1) = ticks[0], ticks[-1]
    assert v0 == 0 and v1 >= max(TIMINGS)
    for _, v, _, y in dots:
        assert abs(y0 + (y1 - y0) * v / v1 - y) < 0.5, (v, y, ticks)
    assert chart.locator("path.series").count() == 1
    expect(t.page.locator("#result-legend")).to_have_text("value")

    # a string column splits the values into one line each
    t.run("SELECT toDateTime(double1) AS t, blob1 AS kind, double2 AS value FROM app_timings "
          "ORDER BY t")
    expect(chart.locator("path.series")).to_have_count(2)
    assert sorted(chart.locator("path.series").evaluate_all(
        "ps => ps.map(p => p.dataset.series)")) == ["cold", "warm"]
    assert chart.locator("circle.point").count() == 7

    # no DateTime column: no chart to offer
    t.run("SELECT double2 AS value FROM app_timings")
    expect(t.page.get_by_label("Chart")).to_be_disabled()
    expect(t.page.locator("#result-table-box")).to_be_visible()


def test_the_csv_download_holds_the_answer(service, tab, tmp_path: Path) -> None:
    t = tab().open()
    sql = ("SELECT index1, blob1, blob2, blob3, double1, double2 FROM page_views "
           "ORDER BY double2")
    t.run(sql)
    answer = ask(service, sql)
    with t.page.expect_download() as download:
        t.page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename.endswith(".csv")
    path = tmp_path / "answer.csv"
    download.value.save_as(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    names = [m["name"] for m in answer["meta"]]
    assert rows[0] == names
    assert rows[1:] == [[as_text(r[n]) for n in names] for r in answer["results"]]
    assert MARKUP in [r[3] for r in rows]  # quotes and all, as written

    with t.page.expect_download() as download:
        t.page.get_by_role("button", name="Download JSON").click()
    download.value.save_as(tmp_path / "answer.json")
    downloaded = json.loads((tmp_path / "answer.json").read_text())
    assert downloaded["results"] == answer["results"] and downloaded["meta"] == answer["meta"]

    # a long answer: the first 1,000 rows shown and said so, every row downloaded
    sql = "SELECT timestamp, blob1 AS worker, double1 AS ms FROM hoox_telemetry ORDER BY timestamp"
    t.run(sql)
    expect(t.page.locator("#result-more")).to_have_text(
        "Showing the first 1,000 of 2,000 rows; the downloads hold them all.")
    long = ask(service, sql)["results"]
    table = t.page.get_by_role("table", name="Query results")
    expect(table).to_have_attribute("aria-rowcount", "1001")
    # the rows in view are drawn, the others as the box scrolls to them: the 1,000th last
    t.page.get_by_role("region", name="Query results").evaluate("b => b.scrollTop = b.scrollHeight")
    last = t.page.locator('#result-rows tr[aria-rowindex="1001"]')
    expect(last).to_be_visible()
    assert last.locator("td").all_text_contents() == [
        long[999]["timestamp"], long[999]["worker"], as_text(long[999]["ms"])]
    expect(t.page.locator('#result-rows tr[aria-rowindex="1002"]')).to_have_count(0)
    with t.page.expect_download() as download:
        t.page.get_by_role("button", name="Download CSV").click()
    download.value.save_as(tmp_path / "long.csv")
    with open(tmp_path / "long.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[1:] == [[r["timestamp"], r["worker"], as_text(r["ms"])] for r in long]
    assert len(long) == 2000


def test_reloading_the_url_runs_the_same_query_again(service, tab) -> None:
    t = tab().open()
    sql = "SELECT blob2 AS path, double2 AS ms FROM page_views WHERE double2 > 40 ORDER BY ms"
    t.run(sql)
    expect(t.page.locator("#result-rows tr[aria-rowindex]")).to_have_count(7)
    assert t.queries_sent(sql) == 1
    url = t.page.url

    t.page.reload()  # the key is kept for the session: not asked again
    expect(t.page.locator("#result-rows tr[aria-rowindex]")).to_have_count(7)
    expect(t.page.get_by_label("Query", exact=True)).to_have_value(sql)
    assert t.queries_sent(sql) == 2
    assert t.page.locator("#signin").is_hidden()

    # bookmarked and opened in another browser session: the key once, then the query
    other = tab()
    other.page.goto(url)
    other.page.get_by_label("Internal key").fill(KEY)
    other.page.get_by_role("button", name="Open dashboard").click()
    expect(other.page.locator("#result-rows tr[aria-rowindex]")).to_have_count(7)
    assert other.table("#result-rows", "#result-head") == t.table("#result-rows", "#result-head")

    # back: the query before, run again
    t.run("SELECT 1 AS one")
    expect(t.page.locator("#result-rows tr[aria-rowindex]")).to_have_count(1)
    t.page.go_back()
    expect(t.page.locator("#result-rows tr[aria-rowindex]")).to_have_count(7)
    expect(t.page.get_by_label("Query", exact=True)).to_have_value(sql)


def test_a_bad_query_shows_the_engines_message(service, tab) -> None:
    t = tab().open()
    for sql in ("SELECT nope(blob1) FROM page_views", "SELECT blob1 FROM no_such_dataset",
                "SELECT blob1 FROM page_views WHERE"):
        t.run(sql)
        answer = ask(service, sql)
        assert answer["status"] == 422 and answer["error"].startswith("Input was invalid")
        expect(t.page.locator("#result-error")).to_have_text(answer["error"])
        expect(t.page.locator("#result-status")).to_have_text(
            re.compile(r"Refused from local \(HTTP 422\) in [\d.]+ ms:"))
        expect(t.page.locator("#result-table-box")).to_be_hidden()


def test_a_blob_holding_markup_is_shown_as_text(service, tab) -> None:
    t = tab().open("view=explore&dataset=page_views")
    expect(t.page.locator("#dataset-points")).to_have_attribute("aria-rowcount", "41")
    names, shown = t.table("#dataset-points-rows", "#dataset-points-head")
    assert [r[names.index("blob3")] for r in shown].count(MARKUP) == 1
    t.run("SELECT blob3 FROM page_views WHERE blob3 != ''")
    expect(t.page.locator("#result-rows td")).to_have_text(MARKUP)
    assert t.page.locator("#explore img").count() == 0
    assert t.page.evaluate("window.ran === undefined && document.title !== 'ran'")


def test_explore_works_from_the_keyboard(service, tab) -> None:
    t = tab().open("")
    page = t.page
    expect(page.locator("#overview")).to_be_visible()
    page.get_by_role("link", name="Explore").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#explore")).to_be_visible()
    assert page.get_by_role("link", name="Explore").get_attribute("aria-current") == "page"
    link = page.get_by_role("link", name="app_timings")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#dataset-points-rows tr[aria-rowindex]")).to_have_count(7)
    page.get_by_label("Query", exact=True).focus()
    page.keyboard.type("SELECT toDateTime(double1) AS t, double2 AS v FROM app_timings")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#result-rows tr[aria-rowindex]")).to_have_count(7)
    page.get_by_label("Table").focus()
    page.keyboard.press("ArrowRight")  # the radio group: on to Chart
    expect(page.get_by_role("img", name=re.compile("Query results over time"))).to_be_visible()
    page.get_by_role("button", name="Download CSV").focus()
    with page.expect_download():
        page.keyboard.press("Enter")
    page.get_by_role("link", name="Overview").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#overview")).to_be_visible()
    expect(page.locator("#explore")).to_be_hidden()


def test_the_heatmap_legend_says_what_each_shade_counts(service, tab) -> None:
    t = tab().open("range=24h")
    page = t.page
    page.locator("#volume rect.filled").first.wait_for(state="attached")
    legend = page.locator("#volume-legend")
    expect(legend).to_contain_text("shade by events in one hour of one weekday (UTC)")
    cells = page.locator("#volume rect.cell").evaluate_all(
        "rs => rs.map(r => [Number(r.dataset.events), getComputedStyle(r).fill])")
    busiest = max(n for n, _ in cells)
    steps = legend.locator("li").evaluate_all(
        "ls => ls.map(l => [Number(l.dataset.events), l.textContent,"
        " getComputedStyle(l.firstChild).backgroundColor])")
    assert [s[0] for s in steps][:2] == [0, 1] and steps[-1][0] == busiest
    assert steps[-1][1] == f"{busiest:,} (the busiest)"
    assert [s[0] for s in steps] == sorted({s[0] for s in steps})
    # each shade the legend shows is the colour of the cells that count that many
    colours = {n: fill for n, fill in cells}
    shown = [s for s in steps if s[0] in colours and s[0]]
    assert shown and shown[-1][0] == busiest
    for n, _, colour in shown:
        assert colour == colours[n], (n, colour, colours[n])


def test_the_headers_event_count_follows_the_log(gunicorn_server, tab) -> None:
    """Its own service: this one writes events."""
    server = gunicorn_server()
    send(server.url, KEY, "hoox", 3, True, "first")
    t = tab(server.url).open("")
    about = t.page.locator("#about")
    expect(about).to_have_text("Dataset hoox_telemetry, profile layout, 3 events in the log")
    send(server.url, KEY, "hoox", 961, True, "more")
    expect(about).to_have_text("Dataset hoox_telemetry, profile layout, 964 events in the log")
    expect(t.page.get_by_label("Events in the log")).to_have_text("964")


@pytest.mark.e2e
def test_a_query_without_an_answer_is_abandoned_at_its_time_limit_and_said(
        gunicorn_server, standin, tab) -> None:
    """Cloudflare accepts and never answers, and the service would wait for it longer than
    the page does: the page gives up at its limit for Explore (20 s) and says so."""
    standin.set_mode("hang")
    server = gunicorn_server(**{**standin.env(), "ANALYTICS_SINK": "none",
                                "CLOUDFLARE_TIMEOUT_MS": "40000"})
    t = tab(server.url).open()
    t.page.get_by_label("Source").select_option("cloudflare")
    abandoned: list[float] = []
    t.page.on("requestfailed", lambda r: abandoned.append(time.monotonic())
              if "count()" in (r.post_data or "") else None)
    t.page.get_by_label("Query", exact=True).fill("SELECT count() AS n FROM hoox_telemetry")
    asked = time.monotonic()
    t.page.get_by_label("Query", exact=True).press("Control+Enter")
    expect(t.page.locator("#result-error")).to_have_text(
        "No answer within 20 s: the request was abandoned.", timeout=30_000)
    assert len(abandoned) == 1 and 19 < abandoned[0] - asked < 25
    expect(t.page.locator("#datasets-state")).to_have_text(
        "No answer within 20 s: the request was abandoned.")
