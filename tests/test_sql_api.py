"""The Analytics Engine SQL API served by the service itself (SPEC §3.5): Cloudflare's
route, auth and error shapes, the FORMAT clause byte for byte against the stand-in's
ClickHouse, and the service's own Cloudflare client pointed at a second instance."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import falcon.testing
import pytest
import uvicorn
from conftest import DRAIN_S, HTTP, KEY, FixedClock, api_call
from standin import StandIn

from app import create_app
from storage.config import Config
from storage.log import EventLog
from storage.replay import Replayer
from storage.replay.sink import RelaySink

ROUTE = "/client/v4/accounts/any-account/analytics_engine/sql"
BEARER = {"Authorization": f"Bearer {KEY}"}
UNAUTHORIZED = {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}],
                "messages": [], "result": None}

# A page past the end: no rows, and rows_before_limit_at_least is still the count.
EMPTY_PAGE = ("SELECT blob1 AS w, count() AS n FROM hoox_telemetry GROUP BY w ORDER BY w"
              " LIMIT 2 OFFSET 7")
# Queries whose answer is the same from the log and from the stand-in's ClickHouse over
# the replayed points (no `timestamp`: on Cloudflare it is the replay time).
SAME_EITHER_WAY = [
    "SELECT count() AS n, sum(double1) AS total, min(double1) AS lo, max(double1) AS hi"
    " FROM hoox_telemetry",
    "SELECT blob1 AS worker, blob2 AS endpoint, count() AS calls, sum(_sample_interval) AS"
    " events FROM hoox_telemetry GROUP BY worker, endpoint ORDER BY worker, endpoint",
    "SELECT index1, blob2, blob3, double1, double1 > 3 AS slow, toUInt8(double1) AS u"
    " FROM hoox_telemetry WHERE blob2 != '/e/0' ORDER BY index1",
    "SELECT blob2 AS endpoint, upper(blob1) AS w, position(blob2, 'e') AS e"
    " FROM hoox_telemetry WHERE double1 < 6 ORDER BY endpoint",
    "SELECT length(blob2) AS len, intDiv(count(), 2) AS half, 1 / 4 AS q FROM hoox_telemetry"
    " GROUP BY len ORDER BY len",
    "SELECT round(double1 / 3, 2) AS r, double1 * 1e21 AS big, 1 = 1 AS yes"
    " FROM hoox_telemetry WHERE double1 < 4.5 ORDER BY r",
    "SELECT index1, double1 FROM hoox_telemetry ORDER BY double1 DESC LIMIT 4",
    "SELECT blob1 AS w, count() AS n FROM hoox_telemetry GROUP BY w ORDER BY w LIMIT 2"
    " OFFSET 1",
    EMPTY_PAGE,
    # non-finite numbers: null in JSON, inf, -inf and nan in TabSeparated
    "SELECT index1, double1 / 0 AS up, -double1 / 0 AS down, (double1 - double1) / 0 AS"
    " undefined, log(double1 - double1) AS l, double1 * 1e308 * 10 AS overflow"
    " FROM hoox_telemetry WHERE double1 < 4 ORDER BY index1",
    "SELECT blob1 AS w, avgIf(double1, double1 > 1000) AS none, sum(double1) * 1e308 AS"
    " huge, topK(2)(double1 / 0) AS top FROM hoox_telemetry GROUP BY w ORDER BY w",
]
# Strings that every format must escape as ClickHouse does.
ENDPOINTS = ["/e/0", "/api/Äpfel", "tab\there", "quote ' and \" and \\", "line\nbreak",
             "ctrl\x01\u2028"]


def ingest(client: falcon.testing.TestClient, n: int = 18) -> None:
    events = [api_call(f"req-{i:03d}", latencyMs=i + 0.5, worker=f"w{i % 3}",
                       endpoint=ENDPOINTS[i % len(ENDPOINTS)], success=i % 5 != 0)
              for i in range(n)]
    result = client.simulate_post("/track/batch", json={"events": events})
    assert result.status_code == 200, result.text


def sql_api(client: falcon.testing.TestClient, sql: str, headers: dict | None = None,
            content_type: str = "text/plain; charset=utf-8") -> Any:
    return client.simulate_post(ROUTE, body=sql.encode("utf-8"),
                                headers={"Content-Type": content_type,
                                         **(BEARER if headers is None else headers)})


@pytest.fixture
def filled(client: falcon.testing.TestClient) -> falcon.testing.TestClient:
    ingest(client)
    return client


# -- the route ------------------------------------------------------------------------------

def test_answers_raw_sql_of_any_content_type_as_the_sql_api_does(
        filled: falcon.testing.TestClient) -> None:
    for content_type in ("text/plain; charset=utf-8", "application/x-www-form-urlencoded",
                         "application/json", ""):
        result = sql_api(filled, "SELECT count() AS n FROM hoox_telemetry", BEARER,
                         content_type)
        assert result.status_code == 200, (content_type, result.text)
        assert result.json == {"meta": [{"name": "n", "type": "UInt64"}],
                               "data": [{"n": "18"}], "rows": 1,
                               "rows_before_limit_at_least": 1}
        assert result.headers["X-Analytics-Source"] == "local"
        assert result.headers["Content-Type"].startswith("application/json")


def test_the_bearer_token_is_an_internal_key_and_replaces_the_internal_header(
        filled: falcon.testing.TestClient) -> None:
    # The client's default X-Internal-Auth-Key header is not what this route reads.
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
                    {"Authorization": f"Basic {KEY}"}):
        result = sql_api(filled, "SELECT 1", headers)
        assert result.status_code == 401 and result.json == UNAUTHORIZED, headers
    rotated = sql_api(filled, "SELECT 1 AS one", {"Authorization": "Bearer rotated-key"})
    assert rotated.status_code == 200
    bare = falcon.testing.TestClient(filled.app)  # no X-Internal-Auth-Key at all
    assert bare.simulate_post(ROUTE, body=b"SELECT 1 AS one", headers=BEARER).status_code == 200
    # ... and the Bearer token opens no other route.
    assert bare.simulate_post("/query", json={"query": "SELECT 1"},
                              headers=BEARER).status_code == 401


@pytest.mark.parametrize("sql, fragment", [
    ("SELECT blob1 FROM hoox_telemetry WHERE", "syntax error"),
    ("SELECT count(*) FROM hoox_telemetry", "count(*)"),
    ("SELECT * FROM other", "unknown table other"),
    ("DELETE FROM hoox_telemetry", "only SELECT and SHOW"),
    ("SELECT 1 FORMAT CSV", "FORMAT CSV"),
    ("SELECT 1 FORMAT Pretty", "FORMAT Pretty"),
    ("SELECT blob1 FROM hoox_telemetry WHERE blob1 = ?", "placeholder"),
])
def test_invalid_sql_is_a_plain_text_422_with_the_message_of_query(
        filled: falcon.testing.TestClient, sql: str, fragment: str) -> None:
    result = sql_api(filled, sql)
    assert result.status_code == 422
    assert result.headers["Content-Type"].startswith("text/plain")
    assert result.text.startswith("Input was invalid: ") and fragment in result.text
    if "?" not in sql:
        via_query = filled.simulate_post("/query", json={"query": sql})
        assert via_query.status_code == 422 and via_query.json["error"] == result.text


def test_a_body_over_the_limit_is_413_in_cloudflares_envelope(
        make_client: Callable[..., falcon.testing.TestClient], config: Config) -> None:
    client = make_client(config.replace(max_body_bytes=100))
    result = sql_api(client, "SELECT 1 AS " + "x" * 200)
    assert result.status_code == 413 and result.json["success"] is False
    assert "limit" in result.json["errors"][0]["message"]


@pytest.mark.parametrize("fmt, content_type", [
    ("JSONEachRow", "application/x-ndjson"), ("TabSeparated", "text/tab-separated-values")])
def test_format_picks_the_body_of_query_too(filled: falcon.testing.TestClient, fmt: str,
                                            content_type: str) -> None:
    sql = f"SELECT blob1 AS w, count() AS n FROM hoox_telemetry GROUP BY w ORDER BY w FORMAT {fmt}"
    via_query = filled.simulate_post("/query", json={"query": sql})
    assert via_query.status_code == 200
    assert via_query.headers["Content-Type"].startswith(content_type)
    assert via_query.headers["X-Analytics-Source"] == "local"
    assert via_query.content == sql_api(filled, sql).content
    expected = {"JSONEachRow": b'{"w":"w0","n":"6"}\n{"w":"w1","n":"6"}\n{"w":"w2","n":"6"}\n',
                "TabSeparated": b"w0\t6\nw1\t6\nw2\t6\n"}[fmt]
    assert via_query.content == expected


# -- byte for byte against the stand-in's ClickHouse ---------------------------------------

@pytest.fixture
def replayed(filled: falcon.testing.TestClient, db_path: Path, standin: StandIn,
             clock: FixedClock) -> Iterator[StandIn]:
    log = EventLog(db_path)
    replayer = Replayer(log, RelaySink(standin.relay_url, standin.relay_key, http=HTTP,
                                       timeout_ms=2000, clock=clock), clock=clock)
    assert replayer.drain(timeout_s=DRAIN_S).drained
    log.close()
    yield standin


@pytest.mark.parametrize("fmt", ["JSON", "JSONEachRow", "TabSeparated", None])
@pytest.mark.parametrize("index", range(len(SAME_EITHER_WAY)))
def test_each_format_is_byte_for_byte_the_stand_ins(
        filled: falcon.testing.TestClient, replayed: StandIn, fmt: str | None,
        index: int) -> None:
    sql = SAME_EITHER_WAY[index] + (f" FORMAT {fmt}" if fmt else "")
    ours = sql_api(filled, sql)
    theirs = HTTP.post(f"{replayed.api_base}/accounts/{replayed.account_id}"
                       "/analytics_engine/sql", content=sql.encode(),
                       headers={"Authorization": f"Bearer {replayed.api_token}"})
    assert theirs.status_code == ours.status_code == 200, (theirs.text, ours.text)
    assert ours.headers["X-Analytics-Source"] == "local"
    assert ours.content.count(b"\n") >= (fmt in ("JSONEachRow", "TabSeparated")
                                          and SAME_EITHER_WAY[index] != EMPTY_PAGE)
    assert ours.content == theirs.content


# -- the service's own Cloudflare client, pointed at a second instance ---------------------

@pytest.fixture
def second_instance(tmp_path: Path, clock: FixedClock) -> Iterator[tuple[str, Any]]:
    """Another instance of the service, with its own log, served on loopback by uvicorn
    (the server gunicorn's workers run) in a thread."""
    config = Config(internal_keys=("b-key",), db_path=str(tmp_path / "b.db"), sink="none")
    app = create_app(config, clock=clock, background=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the second instance did not start"
    client = falcon.testing.TestClient(app, headers={"X-Internal-Auth-Key": "b-key"})
    ingest(client, 24)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/client/v4", client
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_the_cloudflare_client_reads_a_second_instance_as_its_cloudflare(
        make_client: Callable[..., falcon.testing.TestClient], config: Config,
        second_instance: tuple[str, Any]) -> None:
    api_base, b = second_instance
    a = make_client(config.replace(cloudflare_api_base=api_base, cloudflare_api_token="b-key",
                                   cloudflare_account_id="acct"), background=False)
    ingest(a, 3)  # A's own log has other events
    for sql in SAME_EITHER_WAY:
        remote = a.simulate_post("/query", json={"query": sql, "source": "cloudflare"})
        there = b.simulate_post("/query", json={"query": sql, "source": "local"})
        assert remote.status_code == there.status_code == 200, (remote.text, there.text)
        assert remote.json["source"] == "cloudflare"
        assert (remote.json["results"], remote.json["meta"]) == \
            (there.json["results"], there.json["meta"]), sql
    auto = a.simulate_post("/query", json={"query": "SELECT count() AS n FROM hoox_telemetry"})
    assert auto.json["source"] == "cloudflare" and auto.json["results"] == [{"n": 24}]
    assert auto.json["replayLagMs"] == 0
    # FORMAT through the client: asked for as JSON, written in the query's format.
    tsv = a.simulate_post("/query", json={"query": "SELECT count() AS n FROM hoox_telemetry "
                                                   "FORMAT TabSeparated",
                                          "source": "cloudflare"})
    assert tsv.content == b"24\n" and tsv.headers["X-Analytics-Source"] == "cloudflare"
    # A wrong token: the second instance's 401 is Cloudflare's, and reads as one.
    wrong = make_client(config.replace(cloudflare_api_base=api_base,
                                       cloudflare_api_token="nope",
                                       cloudflare_account_id="acct"), background=False)
    refused = wrong.simulate_post("/query", json={"query": "SELECT 1 AS one",
                                                  "source": "cloudflare"})
    assert refused.status_code == 502 and "CLOUDFLARE_API_TOKEN" in refused.json["error"]


@pytest.mark.parametrize("sql, page, before, statements", [
    # groups: counted in the same pass, by a window over the groups
    ("SELECT blob1 AS w, count() AS n FROM hoox_telemetry WHERE double1 > 2 GROUP BY w"
     " ORDER BY w DESC LIMIT 1 OFFSET 1", [{"w": "w1", "n": 5}], 3, 1),
    # rows: the count is of the rows matching the WHERE, not of the sorted projection
    ("SELECT index1, double1 FROM hoox_telemetry WHERE double1 > 2 ORDER BY double1 DESC"
     " LIMIT 2 OFFSET 2", [{"index1": "req-015", "double1": 15.5},
                           {"index1": "req-014", "double1": 14.5}], 16, 2),
])
def test_rows_before_limit_cost_one_pass_for_groups_and_a_count_of_the_where_for_rows(
        filled: falcon.testing.TestClient, db_path: Path, sql: str, page: list,
        before: int, statements: int) -> None:
    from storage.query.aesql import LocalEngine

    engine = LocalEngine(str(db_path))
    ran: list[str] = []
    try:
        engine._connection().set_trace_callback(ran.append)
        result = engine.query(sql, count_before_limit=True)
        assert result.rows == page and result.rows_before_limit == before
        assert [m["name"] for m in result.meta] == list(page[0])
        assert len(ran) == statements, ran
        if statements == 2:
            assert "ORDER BY" not in ran[1] and "double1 > 2" in ran[1]
        assert engine.query(sql).rows == page  # and without the count, the same page
    finally:
        engine.close()
