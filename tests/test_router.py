"""/query routing (SPEC §3.3) through the real Falcon app: auto with the circuit breaker
and the backlog rule, cloudflare without fallback, local without calling out; the error
statuses of Cloudflare failures; /status's replay and Cloudflare fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import falcon.testing
import httpx
import pytest
from conftest import DRAIN_S, KEY, FixedClock, api_call, assert_error, strict_json
from standin import StandIn

from storage.config import Config
from storage.log import EventLog
from storage.query.router import Breaker
from storage.replay import Replayer
from storage.replay.sink import RelaySink

COUNT = "SELECT count() AS n FROM hoox_telemetry"
# Queries that must give the same answer from either source (no `timestamp`: on
# Cloudflare it is the replay time; double2 carries the received time).
SAME_EITHER_WAY = [
    ("SELECT count() AS n, sum(double1) AS total, min(double1) AS lo, max(double1) AS hi"
     " FROM hoox_telemetry", []),
    ("SELECT blob1 AS worker, count() AS calls, sum(_sample_interval) AS events,"
     " avg(double1) AS mean FROM hoox_telemetry GROUP BY worker ORDER BY worker", []),
    ("SELECT index1, blob2, blob3, double1, double2 FROM hoox_telemetry WHERE blob2 = ?"
     " ORDER BY index1 LIMIT 3", ["/e/1"]),
    ("SELECT quantileWeighted(0.5, double1, _sample_interval) AS p50 FROM hoox_telemetry", []),
    ("SELECT blob3 AS ok, countIf(double1 > 5) AS slow FROM hoox_telemetry GROUP BY ok"
     " ORDER BY ok", []),
]

# Every kind of non-finite number, per worker: an overflow each way, avg of nothing, a
# division by zero each way and 0/0, log(0).
NON_FINITE = ("SELECT blob1 AS worker, sum(double1) * 1e308 AS huge, -sum(double1) * 1e308"
              " AS minus_huge, avgIf(double1, double1 > 1000) AS none, count() / 0 AS up,"
              " -count() / 0 AS down, (count() - count()) / 0 AS undefined, log(0) AS l"
              " FROM hoox_telemetry GROUP BY worker ORDER BY worker")


@pytest.fixture
def cloud_config(config: Config, standin: StandIn) -> Config:
    return config.replace(sink="relay", relay_url=standin.relay_url,
                          relay_key=standin.relay_key, cloudflare_api_base=standin.api_base,
                          cloudflare_api_token=standin.api_token,
                          cloudflare_account_id=standin.account_id,
                          cloudflare_timeout_ms=300, cloudflare_cooldown_ms=30_000)


@pytest.fixture
def app_client(make_client: Callable[..., falcon.testing.TestClient], cloud_config: Config,
               http: httpx.Client) -> falcon.testing.TestClient:
    # Replay is driven by the tests (`replay_all`), not by a background thread.
    return make_client(cloud_config, http=http, background=False)


@pytest.fixture
def replay_all(db_path: Path, standin: StandIn, http: httpx.Client,
               clock: FixedClock) -> Iterator[Callable[[], None]]:
    log = EventLog(db_path)
    replayer = Replayer(log, RelaySink(standin.relay_url, standin.relay_key, http=http,
                                       timeout_ms=1000, clock=clock), clock=clock)

    def run() -> None:
        assert replayer.drain(timeout_s=DRAIN_S).drained

    yield run
    log.close()


def ingest(client: falcon.testing.TestClient, n: int, prefix: str = "req") -> None:
    events = [api_call(f"{prefix}-{i}", latencyMs=i + 0.5, worker=f"w{i % 3}",
                       endpoint=f"/e/{i % 4}", success=i % 5 != 0) for i in range(n)]
    assert client.simulate_post("/track/batch", json={"events": events}).status_code == 200


def query(client: falcon.testing.TestClient, sql: str = COUNT, params: list | None = None,
          source: str | None = None) -> Any:
    body: dict[str, Any] = {"query": sql}
    if params is not None:
        body["params"] = params
    if source is not None:
        body["source"] = source
    return client.simulate_post("/query", json=body)


# -- auto ---------------------------------------------------------------------------------

def test_auto_answers_from_the_log_once_replay_lags_beyond_the_bound(
        app_client: falcon.testing.TestClient, standin: StandIn, clock: FixedClock) -> None:
    ingest(app_client, 5)
    clock.advance(60.001)  # ANALYTICS_MAX_LAG_MS is 60,000 by default
    result = query(app_client)
    assert result.status_code == 200
    assert result.json == {"success": True, "results": [{"n": 5}],
                           "meta": [{"name": "n", "type": "UInt64"}], "rows": 1,
                           "source": "local"}
    assert result.headers["X-Analytics-Source"] == "local"
    assert standin.sql_requests == []  # Cloudflare was not even asked


def test_auto_answers_from_cloudflare_once_replay_caught_up_with_equal_results(
        app_client: falcon.testing.TestClient, standin: StandIn,
        replay_all: Callable[[], None]) -> None:
    ingest(app_client, 40)
    replay_all()
    for sql, params in SAME_EITHER_WAY:
        cloud = query(app_client, sql, params)
        local = query(app_client, sql, params, source="local")
        assert cloud.status_code == local.status_code == 200, (cloud.text, local.text)
        assert (cloud.json["source"], local.json["source"]) == ("cloudflare", "local")
        assert cloud.json["results"] == local.json["results"], sql
        assert cloud.json["meta"] == local.json["meta"], sql
        assert cloud.json["rows"] == local.json["rows"] > 0
    assert len(standin.sql_requests) == len(SAME_EITHER_WAY)


def test_auto_answers_from_cloudflare_while_replay_lags_within_the_bound(
        make_client: Callable[..., falcon.testing.TestClient], cloud_config: Config,
        http: httpx.Client, replay_all: Callable[[], None], clock: FixedClock) -> None:
    """A backlog is no reason to leave Cloudflare: its age is (SPEC §3.3)."""
    client = make_client(cloud_config.replace(max_lag_ms=10_000), http=http,
                         background=False)
    ingest(client, 3)
    clock.advance(4)
    ingest(client, 2, prefix="later")
    answer = query(client).json
    # Cloudflare has none of them yet, as its answers can miss the newest seconds.
    assert (answer["source"], answer["replayLagMs"], answer["results"]) == \
        ("cloudflare", 4000, [{"n": 0}])
    clock.advance(6)
    assert query(client).json["replayLagMs"] == 10_000  # the oldest event's age
    clock.advance(0.001)
    assert "replayLagMs" not in query(client).json
    assert query(client).json["source"] == "local"
    replay_all()
    answer = query(client).json
    assert (answer["source"], answer["replayLagMs"], answer["results"]) == \
        ("cloudflare", 0, [{"n": 5}])


def test_auto_falls_back_to_the_log_in_the_same_request_then_cools_down(
        app_client: falcon.testing.TestClient, standin: StandIn, http: httpx.Client,
        replay_all: Callable[[], None], clock: FixedClock) -> None:
    # Every call to the SQL API as the app's client makes it, answered or not (the
    # stand-in cannot see a call it refuses, nor record one it fails).
    asked: list[str] = []
    http.event_hooks = {"request": [
        lambda request: asked.append(request.url.path)
        if request.url.path.endswith("/analytics_engine/sql") else None]}
    ingest(app_client, 4)
    replay_all()
    assert query(app_client).json["source"] == "cloudflare"
    assert len(asked) == 1
    for mode in ("500", "hang", "refuse", "429"):
        standin.set_mode(mode)
        calls = len(asked)
        result = query(app_client)
        assert result.status_code == 200 and result.json["source"] == "local", mode
        assert result.json["results"] == [{"n": 4}]
        assert len(asked) == calls + 1, mode  # Cloudflare was asked, once, and failed
        # Open breaker: the next query does not try Cloudflare at all.
        assert query(app_client).json["source"] == "local"
        assert len(asked) == calls + 1, mode
        clock.advance(30)  # the cool-down passes: one query tries again
    standin.set_mode("up")
    assert query(app_client).json["source"] == "cloudflare"
    assert len(asked) == 6


def test_cloudflare_not_configured_means_auto_is_local(
        client: falcon.testing.TestClient) -> None:
    ingest(client, 2)
    assert query(client).json == {"success": True, "results": [{"n": 2}],
                                  "meta": [{"name": "n", "type": "UInt64"}], "rows": 1,
                                  "source": "local"}
    body = assert_error(query(client, source="cloudflare"), 503, "CLOUDFLARE_API_TOKEN")
    assert body["source"] == "cloudflare"


# -- cloudflare and local ----------------------------------------------------------------

@pytest.mark.parametrize("mode, status", [("refuse", 503), ("hang", 504), ("500", 502),
                                          ("429", 503)])
def test_source_cloudflare_never_falls_back_and_says_why(
        app_client: falcon.testing.TestClient, standin: StandIn, mode: str,
        status: int) -> None:
    ingest(app_client, 2)
    standin.set_mode(mode, retry_after="12")
    result = query(app_client, source="cloudflare")
    body = assert_error(result, status, "Cloudflare")
    assert body["source"] == "cloudflare"
    if mode == "429":
        assert result.headers["Retry-After"] == "12"


def test_source_cloudflare_answers_even_with_a_backlog(
        app_client: falcon.testing.TestClient, standin: StandIn) -> None:
    ingest(app_client, 3)
    result = query(app_client, source="cloudflare")
    # It was asked for Cloudflare's view, which has nothing yet.
    assert result.json["source"] == "cloudflare" and result.json["results"] == [{"n": 0}]


def test_source_local_never_calls_out(app_client: falcon.testing.TestClient,
                                      standin: StandIn, replay_all: Callable[[], None]) -> None:
    ingest(app_client, 3)
    replay_all()
    assert query(app_client, source="local").json["source"] == "local"
    assert standin.sql_requests == []


def test_sql_cloudflare_refuses_is_passed_on_as_422(
        app_client: falcon.testing.TestClient, replay_all: Callable[[], None]) -> None:
    ingest(app_client, 2)
    replay_all()
    sql = "SELECT blob1 FROM hoox_telemetry GROUP BY blob2"
    body = assert_error(query(app_client, sql, source="cloudflare"), 422,
                        "Input was invalid")
    assert body["source"] == "cloudflare"
    # In auto too: invalid SQL is not Cloudflare failing, so there is no fallback and
    # the breaker stays closed.
    body = assert_error(query(app_client, sql), 422, "Input was invalid")
    assert query(app_client).json["source"] == "cloudflare"


def test_invalid_sql_is_422_and_a_params_mismatch_is_400_from_either_source(
        app_client: falcon.testing.TestClient, standin: StandIn) -> None:
    for source in ("local", "cloudflare", "auto"):
        assert_error(query(app_client, "SELECT count(*) FROM hoox_telemetry", source=source),
                     422, "count()")
        assert_error(query(app_client, "SELECT count() FROM hoox_telemetry WHERE blob1 = ?",
                           [], source=source), 400)
    assert standin.sql_requests == []


def test_a_body_outside_the_schema_is_400_with_every_violation(
        app_client: falcon.testing.TestClient) -> None:
    result = app_client.simulate_post("/query", json={"query": "", "source": "nowhere",
                                                      "params": [{}], "extra": 1})
    body = assert_error(result, 400)
    paths = {d["path"] for d in body["details"]}
    assert {"$.query", "$.source", "$.params[0]", "$"} <= paths, paths


def test_query_bodies_must_be_json_and_within_the_limit(
        app_client: falcon.testing.TestClient) -> None:
    assert_error(app_client.simulate_post("/query", body="SELECT 1",
                                          headers={"Content-Type": "text/plain"}), 415)
    huge = {"query": "SELECT count() FROM hoox_telemetry -- " + "x" * 70_000}
    assert_error(app_client.simulate_post("/query", json=huge), 413)
    assert_error(app_client.simulate_post("/query", json={"query": COUNT},
                                          headers={"X-Internal-Auth-Key": "wrong"}), 401)


def test_results_beyond_the_row_cap_are_marked_truncated_from_either_source(
        make_client: Callable[..., falcon.testing.TestClient], cloud_config: Config,
        http: httpx.Client, replay_all: Callable[[], None]) -> None:
    client = make_client(cloud_config.replace(query_max_rows=2), http=http, background=False)
    ingest(client, 5)
    replay_all()
    for source in ("local", "cloudflare"):
        body = query(client, "SELECT index1 FROM hoox_telemetry ORDER BY index1",
                     source=source).json
        assert body["truncated"] is True and body["rows"] == 2, body
        assert [r["index1"] for r in body["results"]] == ["req-0", "req-1"]


# -- the breaker -------------------------------------------------------------------------

def test_breaker_opens_on_failure_and_half_opens_after_the_cool_down(clock: FixedClock) -> None:
    breaker = Breaker(10, clock)
    assert breaker.allows() and breaker.reachable is None
    breaker.failed(RuntimeError("down"))
    assert not breaker.allows() and breaker.reachable is False
    clock.advance(9.9)
    assert not breaker.allows()
    clock.advance(0.1)
    assert breaker.allows()  # one try
    breaker.failed(RuntimeError("still down"))
    assert not breaker.allows() and breaker.last_error == "still down"
    clock.advance(10)
    breaker.succeeded()
    assert breaker.allows() and breaker.reachable is True


# -- /status ------------------------------------------------------------------------------

def test_status_reports_the_backlog_and_cloudflare_reachability(
        app_client: falcon.testing.TestClient, standin: StandIn,
        replay_all: Callable[[], None], clock: FixedClock) -> None:
    ingest(app_client, 3)
    clock.advance(45)
    status = app_client.simulate_get("/status").json
    assert status["replay"]["sink"] == "relay"
    assert status["replay"]["backlog"]["events"] == 3
    assert status["replay"]["backlog"]["oldestAgeSeconds"] == 45.0
    assert status["replay"]["lastSuccessAt"] is None
    assert status["cloudflare"]["configured"] is True
    assert status["cloudflare"]["reachable"] is None  # not asked yet
    replay_all()
    query(app_client)
    status = app_client.simulate_get("/status").json
    assert status["replay"]["backlog"]["events"] == 0
    assert status["replay"]["lastSuccessAt"] is not None
    assert status["cloudflare"]["reachable"] is True
    standin.set_mode("refuse")
    query(app_client)
    status = app_client.simulate_get("/status").json
    assert status["cloudflare"]["reachable"] is False
    assert "unreachable" in status["cloudflare"]["lastError"]
    assert status["cloudflare"]["coolingDown"] is True


# -- under steady traffic, in real time ------------------------------------------------------

def test_auto_follows_cloudflare_and_replay_under_steady_traffic(
        cloud_config: Config, standin: StandIn) -> None:
    """Events every 100 ms while querying, with the service's own replay thread: `auto`
    answers from Cloudflare while replay keeps up, from the log within one request once
    Cloudflare fails or replay falls behind, and from Cloudflare again once both recover."""
    import asyncio
    import threading
    import time

    from conftest import AUTH

    from app import create_app

    config = cloud_config.replace(max_lag_ms=1500, cloudflare_cooldown_ms=300,
                                  cloudflare_timeout_ms=500, replay_backoff_max_ms=200,
                                  replay_lease_ms=2000)
    client = falcon.testing.TestClient(create_app(config), headers=AUTH)
    stop = threading.Event()
    sent: list[int] = []

    async def feed_events() -> None:
        # The feeder's own event loop: the same app, as a second client of one worker.
        async with falcon.testing.ASGIConductor(client.app, headers=AUTH) as feeder:
            for i in range(600):  # at most a minute
                if stop.is_set():
                    return
                result = await feeder.simulate_post("/track/api-call",
                                                    json=api_call(f"steady-{i}"))
                sent.append(result.status_code)
                await asyncio.sleep(0.1)

    def feed() -> None:
        asyncio.run(feed_events())

    def auto() -> dict:
        result = query(client)
        assert result.status_code == 200, result.text
        return result.json

    def until(source: str, timeout_s: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = auto()
            if answer["source"] == source:
                return answer
            time.sleep(0.05)
        raise AssertionError(f"auto never answered from {source} within {timeout_s} s")

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        # Replay keeps up: Cloudflare answers, though the backlog is rarely empty.
        until("cloudflare")
        answers = []
        for _ in range(10):
            answers.append(auto())
            time.sleep(0.1)
        assert {a["source"] for a in answers} == {"cloudflare"}
        assert all(0 <= a["replayLagMs"] <= 1500 for a in answers)
        assert any(a["replayLagMs"] > 0 for a in answers)  # a backlog was there

        # Cloudflare fails: the very next query is answered from the log.
        standin.set_mode("500")
        failed = auto()
        assert failed["source"] == "local" and "replayLagMs" not in failed
        assert failed["results"][0]["n"] >= len(sent) - 1
        standin.set_mode("up")
        until("cloudflare")

        # The relay alone fails: replay falls behind while the SQL API still answers.
        standin.relay_down = True
        behind_from = time.monotonic() + 1.5 + 0.2  # the bound, and the last replay's age
        while time.monotonic() < behind_from:
            auto()
            time.sleep(0.1)
        asked = len(standin.sql_requests)
        behind = [auto() for _ in range(3)]
        assert {a["source"] for a in behind} == {"local"}
        assert len(standin.sql_requests) == asked  # Cloudflare was not even asked
        standin.relay_down = False
        recovered = until("cloudflare")
        assert recovered["replayLagMs"] <= 1500
    finally:
        stop.set()
        thread.join(5)
    assert sent and set(sent) == {200}


# -- non-finite numbers (SPEC §3.3) ------------------------------------------------------

def test_non_finite_numbers_are_null_in_json_and_written_out_in_tabseparated_from_either_source(
        app_client: falcon.testing.TestClient, standin: StandIn,
        replay_all: Callable[[], None]) -> None:
    ingest(app_client, 9)
    replay_all()
    nulls = [{"worker": f"w{i}", "huge": None, "minus_huge": None, "none": None,
              "up": None, "down": None, "undefined": None, "l": None} for i in range(3)]
    for source in ("cloudflare", "local"):
        body = query(app_client, NON_FINITE, source=source)
        assert body.status_code == 200, body.text
        assert "Infinity" not in body.text and "NaN" not in body.text
        doc = strict_json(body.text)
        assert doc["source"] == source and doc["results"] == nulls
        assert [m["type"] for m in doc["meta"]] == ["String"] + ["Float64"] * 7
        each = query(app_client, NON_FINITE + " FORMAT JSONEachRow", source=source)
        assert [strict_json(line) for line in each.text.splitlines()] == nulls, source
        tsv = query(app_client, NON_FINITE + " FORMAT TabSeparated", source=source)
        assert tsv.headers["X-Analytics-Source"] == source
        assert tsv.text == "".join(f"w{i}\tinf\t-inf\tnan\tinf\t-inf\tnan\t-inf\n"
                                   for i in range(3)), source


def test_the_sql_api_route_writes_cloudflares_non_finite_numbers_as_null(
        app_client: falcon.testing.TestClient, standin: StandIn,
        replay_all: Callable[[], None]) -> None:
    ingest(app_client, 9)
    replay_all()
    route = "/client/v4/accounts/any/analytics_engine/sql"
    headers = {"Authorization": f"Bearer {KEY}"}
    answer = app_client.simulate_post(route, body=NON_FINITE.encode(), headers=headers)
    assert answer.status_code == 200 and answer.headers["X-Analytics-Source"] == "cloudflare"
    doc = strict_json(answer.text)
    assert [row["huge"] for row in doc["data"]] == [None] * 3
    assert all(v is None for row in doc["data"] for k, v in row.items() if k != "worker")
    tsv = app_client.simulate_post(route, body=(NON_FINITE + " FORMAT TabSeparated").encode(),
                                   headers=headers)
    assert tsv.headers["X-Analytics-Source"] == "cloudflare"
    assert tsv.text.splitlines()[0] == "w0\tinf\t-inf\tnan\tinf\t-inf\tnan\t-inf"
