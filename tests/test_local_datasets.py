"""Any Worker's `writeDataPoint`, kept locally (SPEC §6.2): a Worker of its own
(relay/test/fixtures/datapoints-caller) whose two dataset bindings are swapped for the
relay's entrypoint AnalyticsEngineDataset runs under a real `wrangler dev` (workerd) beside
the relay, and the service runs under gunicorn. Every point lands in the log once, answers
`SELECT ... FROM <dataset>` through the SQL API route as ClickHouse answers the same
points, points over a limit are refused, and points written while the service is away
arrive once it is back.

It also proves the two statements the README makes about the two ways of running them:
in one `wrangler dev` process holding both configs every point lands, awaited or not; in
two processes on one dev registry, a call that is not awaited never arrives."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import httpx
import pytest
from aesql_fixtures import differences
from conftest import HTTP, KEY, ROOT, Server, service_env, wait_for
from wrangler_dev import RELAY, WranglerDev

from storage.query.aesql import AE_COLUMNS, to_clickhouse

pytestmark = [pytest.mark.gunicorn, pytest.mark.wrangler]

CALLER = RELAY / "test" / "fixtures" / "datapoints-caller"
SQL_API = "/client/v4/accounts/local/analytics_engine/sql"
DATASETS = ("app_events", "app_timings")
BINDING = {"app_events": "EVENTS", "app_timings": "TIMINGS"}


@pytest.fixture
def service(tmp_path: Path, db_path: Path) -> Iterator[Server]:
    server = Server(service_env(db_path), tmp_path).start()
    yield server
    server.stop()


def one_process(service_url: str, tmp_path: Path, env: str = "dev") -> WranglerDev:
    """The form the README leads with: both configs in one `wrangler dev`, `--env`
    applying to both (the caller has no environments and keeps its top level). The relay's
    `dev` and `platform` environments are both the Worker named analytics-worker."""
    # The relay reads its key and the service's address from the process's environment
    # only when it has no .dev.vars, as the README's command does.
    assert not (RELAY / ".dev.vars").exists(), "move relay/.dev.vars aside for this test"
    return WranglerDev(ROOT, ["-c", str(CALLER / "wrangler.jsonc"),
                              "-c", str(RELAY / "wrangler.jsonc"), "--env", env],
                       tmp_path / "registry", tmp_path / "state", tmp_path / "one.log",
                       env={"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_SERVICE_URL": service_url,
                            # Quick queue retries, so that a restart is seen within seconds.
                            "ANALYTICS_RETRY_BASE_SECONDS": "1",
                            "ANALYTICS_RETRY_MAX_SECONDS": "2"})


@pytest.fixture
def single(request: pytest.FixtureRequest, service: Server, tmp_path: Path
           ) -> Iterator[WranglerDev]:
    dev = one_process(service.url, tmp_path, getattr(request, "param", "dev"))
    try:
        dev.wait_ready()
        yield dev
    finally:
        dev.stop()


def text(s: str) -> dict[str, str]:
    return {"$text": s}  # the caller sends it as an ArrayBuffer of its UTF-8 bytes


def points_for(tag: str, n: int) -> list[dict[str, Any]]:
    """n writes over both datasets, every other one awaited, blobs as strings and as
    ArrayBuffers; blob1 (as given) is the point's own id."""
    writes = []
    for i in range(n):
        dataset = DATASETS[i % 2]
        pid = f"{tag}-{i}"
        blobs: list[Any] = [pid, f"route-{i % 3}", "é✓" * (i % 4)]
        if i % 3 == 0:
            blobs = [blobs[0], text(blobs[1]), text(blobs[2])]
        writes.append({"binding": BINDING[dataset], "awaited": i % 2 == 0,
                       "dataset": dataset, "id": pid,
                       "point": {"blobs": blobs, "doubles": [i, i * 1.5, -0.25],
                                 "indexes": [text(f"idx-{i % 5}") if i % 4 == 1 else f"idx-{i % 5}"]}})
    return writes


def expected_row(w: dict[str, Any]) -> tuple:
    def plain(x: Any) -> str:
        return x["$text"] if isinstance(x, dict) else x
    p = w["point"]
    return (w["dataset"], plain(p["indexes"][0]), *[plain(b) for b in p["blobs"]],
            *p["doubles"])


def write(dev: WranglerDev, writes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    body = {"writes": [{k: w[k] for k in ("binding", "point", "awaited")} for w in writes]}
    answer = HTTP.post(dev.url, content=json.dumps(body), timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def stored(db_path: Path) -> list[tuple]:
    """Every raw point in the log: (dataset, index1, blob1..3, double1..3)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT dataset, index1, blob1, blob2, blob3, double1, double2, "
                            "double3 FROM points ORDER BY seq").fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        raise
    finally:
        conn.close()


def wait_for_rows(db_path: Path, n: int, timeout_s: float) -> list[tuple]:
    deadline = time.monotonic() + timeout_s
    rows = stored(db_path)
    while len(rows) < n and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = stored(db_path)
    return rows


SENTINEL = "sentinel"


def settle(dev: WranglerDev, db_path: Path) -> list[tuple]:
    """What the log holds once nothing more will come: a good point written after all the
    others, awaited, is waited for; the relay delivers in order, so whatever came before
    it has arrived by then. The sentinel itself is left out (blob1 "sentinel")."""
    point = {"binding": "TIMINGS", "point": {"blobs": [SENTINEL]}, "awaited": True}
    assert write(dev, [point])[0]["ok"]
    deadline = time.monotonic() + 30
    while True:
        rows = stored(db_path)
        if any(r[2] == SENTINEL for r in rows):
            return [r for r in rows if r[2] != SENTINEL]
        assert time.monotonic() < deadline, "the sentinel point never arrived"
        time.sleep(0.05)


@pytest.mark.parametrize("single", ["dev", "platform"], indirect=True)
def test_one_process_keeps_every_point_of_two_datasets_awaited_or_not(
        single, service, db_path):
    writes = points_for("a", 40)
    results = write(single, writes)
    assert [r.get("ok", True) for r in results] == [True] * len(writes), results
    assert sum(not r["awaited"] for r in results) == 20

    rows = wait_for_rows(db_path, len(writes), 30)
    rows = settle(single, db_path) if len(rows) == len(writes) else rows
    # Each point once, as written (ArrayBuffers as their text), in its own dataset.
    assert sorted(rows) == sorted(expected_row(w) for w in writes)

    # The same points answer `FROM <dataset>` through the SQL API route as ClickHouse
    # answers them.
    with httpx.Client(base_url=service.url, timeout=30,
                      headers={"Authorization": f"Bearer {KEY}"}) as http:
        for dataset in DATASETS:
            reference = clickhouse_of(db_path, dataset)
            for sql in QUERIES:
                query = sql.format(dataset=dataset)
                answer = http.post(SQL_API, content=query.encode())
                assert answer.status_code == 200, (query, answer.text)
                local = answer.json()
                got = SimpleNamespace(meta=local["meta"], rows=coerced(local))
                # As the conformance suites send it: Analytics Engine's names for ClickHouse.
                theirs = reference.query(to_clickhouse(query, None, portable=True, format=None,
                                                      dataset=dataset))
                assert differences(got, theirs, "ORDER BY" in query) == [], query
            count = http.post(SQL_API, content=f"SELECT count() AS n FROM {dataset} WHERE "
                              f"blob1 != '{SENTINEL}'".encode())
            assert int(count.json()["data"][0]["n"]) == len(writes) // 2


QUERIES = [
    "SELECT blob1, blob2, blob3, index1, double1, double2, double3, _sample_interval "
    "FROM {dataset} ORDER BY double1",
    "SELECT blob2, count() AS n, sum(double2 * _sample_interval) AS total, "
    "avg(double1) AS mean FROM {dataset} GROUP BY blob2 ORDER BY blob2",
    "SELECT index1, length(blob3) AS l FROM {dataset} WHERE blob3 != '' AND double1 > 3 "
    "ORDER BY index1, l LIMIT 5",
    "SELECT dataset, count() AS n FROM {dataset} GROUP BY dataset",
]


def coerced(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows with 64-bit integers as numbers: the SQL API quotes them (SPEC §2)."""
    wide = {m["name"] for m in answer["meta"] if m["type"] in ("UInt64", "Int64")}
    return [{k: int(v) if k in wide and isinstance(v, str) else v for k, v in row.items()}
            for row in answer["data"]]


def clickhouse_of(db_path: Path, dataset: str) -> Any:
    """chdb holding the dataset's points as the log holds them: the reference engine."""
    from chdb import session

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    names = [n for n, _ in AE_COLUMNS]
    slots = [n for n in names if n.startswith(("blob", "double"))]
    rows = conn.execute(f"SELECT received_ms / 1000, index1, {', '.join(slots)} "
                        "FROM points WHERE dataset = ? ORDER BY seq", (dataset,)).fetchall()
    conn.close()
    s = session.Session()
    columns = ", ".join(f"`{name}` {ctype}" for name, ctype in AE_COLUMNS)
    # one ClickHouse per process: a table of an earlier test of the same name goes first
    s.query(f"DROP TABLE IF EXISTS `{dataset}`")
    s.query(f"CREATE TABLE `{dataset}` ({columns}) ENGINE = Memory")
    by_name = []
    for ts, index1, *values in rows:
        row = {"dataset": dataset, "timestamp": ts, "_sample_interval": 1, "index1": index1,
               **dict(zip(slots, values))}
        by_name.append([row[n] for n in names])
    literal = (lambda v: "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
               if isinstance(v, str) else repr(v))
    s.query(f"INSERT INTO `{dataset}` VALUES " +
            ",".join("(" + ",".join(literal(v) for v in r) + ")" for r in by_name))

    def query(sql: str) -> dict[str, Any]:
        return json.loads(s.query(sql + " SETTINGS max_threads = 1, session_timezone = 'UTC'",
                                  "JSON").bytes())
    return SimpleNamespace(query=query)


# Each limit at its edge, [last accepted point, first refused point]; every other write
# awaited. The relay's own tests (relay/test/datapoints.test.js) check the messages.
EDGES = [
    ({"blobs": ["b"] * 20}, {"blobs": ["b"] * 21}),
    ({"doubles": [1.0] * 20}, {"doubles": [1.0] * 21}),
    ({"indexes": ["é" * 48]}, {"indexes": ["é" * 48 + "x"]}),
    ({"indexes": ["a"]}, {"indexes": ["a", "b"]}),
    ({"blobs": ["é" * 400] * 20}, {"blobs": ["é" * 400] * 19 + ["é" * 400 + "x"]}),
    ({"blobs": ["x" * 8000, text("y" * 8000)]}, {"blobs": ["x" * 8000, text("y" * 8001)]}),
]


def test_points_over_a_limit_are_refused_and_never_stored(single, service, db_path):
    logged_before = len(single.log.read_text())  # the session's log is the module's
    writes = []
    for i, (ok, over) in enumerate(EDGES):
        writes.append({"binding": "EVENTS", "point": ok, "awaited": i % 2 == 0})
        writes.append({"binding": "EVENTS", "point": over, "awaited": i % 2 == 0})
    results = write(single, writes)
    assert [r["awaited"] for r in results] == [w["awaited"] for w in writes], results
    for i, r in enumerate(results):
        if r["awaited"]:
            assert r["ok"] is (i % 2 == 0), (i, r)
            if not r["ok"]:
                assert r["name"] == "TypeError" and r["message"].startswith("writeDataPoint(): ")
    rows = wait_for_rows(db_path, len(EDGES), 30)
    rows = settle(single, db_path)
    assert len(rows) == len(EDGES), rows  # the points at the edge, and none over it
    # wrangler writes the Worker's console to its log in its own time
    refusals = lambda: single.log.read_text()[logged_before:].count(  # noqa: E731
        "writeDataPoint to app_events refused: ")
    wait_for(lambda: refusals() >= len(EDGES), 15, "wrangler to log every refusal")
    assert refusals() == len(EDGES), single.log.read_text()[-3000:]


def test_points_written_while_the_service_is_away_arrive_when_it_is_back(
        single, service, db_path):
    service.stop()
    writes = points_for("away", 10)
    results = write(single, writes)
    assert [r.get("ok", True) for r in results] == [True] * len(writes)
    time.sleep(1)
    assert stored(db_path) == []
    service.start()
    rows = wait_for_rows(db_path, len(writes), 60)
    rows = settle(single, db_path) if len(rows) == len(writes) else rows
    assert sorted(rows) == sorted(expected_row(w) for w in writes)
    assert "queued /track/datapoints" in single.log.read_text()


def test_two_processes_drop_every_call_that_is_not_awaited(service, db_path, tmp_path):
    """The form the README warns against: the caller and the relay in two `wrangler dev`
    processes on one dev registry. Awaited calls arrive; calls not awaited never do: they
    never reach the relay at all (a log line at the top of writeDataPoint shows only the
    awaited ones), so nothing on the relay's side can keep them."""
    registry = tmp_path / "registry"
    relay = WranglerDev(RELAY, ["--env", "dev", "--var", f"ANALYTICS_SERVICE_URL:{service.url}"],
                        registry, tmp_path / "relay-state", tmp_path / "relay.log")
    caller = WranglerDev(CALLER, [], registry, tmp_path / "caller-state",
                         tmp_path / "caller.log")
    try:
        relay.wait_ready()
        caller.wait_ready()
        # The binding resolves once both sessions are in the registry.
        probe = [{"binding": "EVENTS", "point": {"blobs": ["probe"]}, "awaited": True}]
        deadline = time.monotonic() + 30
        while not write(caller, probe)[0].get("ok") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert wait_for_rows(db_path, 1, 10) == [("app_events", "", "probe", "", "", 0.0, 0.0, 0.0)]

        awaited = [dict(w, awaited=True) for w in points_for("awaited", 5)]
        unawaited = [dict(w, awaited=False) for w in points_for("unawaited", 5)]
        for w in unawaited + awaited:  # one request each: the caller's request ends after it
            write(caller, [w])
        rows = wait_for_rows(db_path, 1 + len(awaited), 30)
        rows = settle(caller, db_path)
        ids = sorted(r[2] for r in rows[1:])
        assert ids == sorted(w["id"] for w in awaited)  # 5 of 5 awaited, 0 of 5 not
    finally:
        caller.stop()
        relay.stop()


def test_the_example_worker_keeps_its_points_under_the_readme_command(service, db_path,
                                                                    tmp_path):
    """relay/examples/events, run as the README says: one process, both configs, --env dev."""
    assert not (RELAY / ".dev.vars").exists(), "move relay/.dev.vars aside for this test"
    dev = WranglerDev(ROOT, ["-c", str(RELAY / "examples" / "events" / "wrangler.jsonc"),
                             "-c", str(RELAY / "wrangler.jsonc"), "--env", "dev"],
                      tmp_path / "registry", tmp_path / "state", tmp_path / "example.log",
                      env={"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_SERVICE_URL": service.url})
    try:
        dev.wait_ready()
        paths = [f"/page/{i}" for i in range(6)]
        for p in paths:
            assert HTTP.get(dev.url + p, timeout=30).text == f"Hello from {p}\n"
        rows = wait_for_rows(db_path, len(paths), 30)
        assert sorted((r[0], r[1], r[2], r[3], r[5]) for r in rows) == sorted(
            ("my_events", "127.0.0.1", p, "GET", 1.0) for p in paths)
    finally:
        dev.stop()
