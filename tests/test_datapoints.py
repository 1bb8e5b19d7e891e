"""Raw data points of any dataset (SPEC §3.6): `POST /track/datapoints` stores what a
Worker wrote, under its dataset and the time it was received, exactly once; `FROM
<dataset>` answers them on /query and the SQL API route as ClickHouse answers the same
points; datasets stay apart; `/status` lists them; replay never sends them."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import falcon.testing
import httpx
import pytest
from aesql_fixtures import differences
from click.testing import CliRunner
from conftest import AUTH, KEY, FixedClock, api_call, assert_error

import cli
from storage import replay
from storage.intake import points
from storage.intake.events import key_id
from storage.log import EventLog, LogError, retention
from storage.query.aesql import LocalEngine, to_clickhouse
from storage.query.aesql.types import AE_COLUMNS
from storage.replay import sink

ROUTE = "/track/datapoints"
SQL_API = "/client/v4/accounts/any/analytics_engine/sql"
BEARER = {"Authorization": f"Bearer {KEY}"}


def post(client: falcon.testing.TestClient, body: Any, **headers: str) -> Any:
    if isinstance(body, (bytes, str)):
        return client.simulate_post(ROUTE, body=body, headers={
            "Content-Type": "application/json", **headers})
    return client.simulate_post(ROUTE, json=body, headers=headers or None)


def stored(db_path: Path, dataset: str | None = None) -> list[dict[str, Any]]:
    """The points table as committed, read on a connection of its own."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        where, args = ("WHERE dataset = ?", (dataset,)) if dataset else ("", ())
        return [dict(r) for r in conn.execute(f"SELECT * FROM points {where} ORDER BY seq",
                                              args)]
    finally:
        conn.close()


# -- the route -------------------------------------------------------------------------------

def test_points_are_stored_under_their_dataset_with_the_time_received(
        client: falcon.testing.TestClient, clock: FixedClock, db_path: Path) -> None:
    body = {"dataset": "my_events", "points": [
        {"blobs": ["GET", "/home", None, "ünï"], "doubles": [200, 12.5], "indexes": ["u-1"]},
        {"doubles": [-1.5]},
        {}]}
    answer = post(client, body)
    assert answer.status_code == 200
    assert answer.json == {"success": True, "accepted": 3, "duplicates": 0}
    rows = stored(db_path)
    assert [r["dataset"] for r in rows] == ["my_events"] * 3
    assert {r["received_ms"] for r in rows} == {int(clock.now * 1000)}
    first = rows[0]
    assert (first["index1"], first["blob1"], first["blob2"], first["blob3"],
            first["blob4"], first["blob5"]) == ("u-1", "GET", "/home", "", "ünï", "")
    assert (first["double1"], first["double2"], first["double3"]) == (200.0, 12.5, 0.0)
    assert (rows[1]["index1"], rows[1]["blob1"], rows[1]["double1"]) == ("", "", -1.5)
    assert all(r["blob20"] == "" and r["double20"] == 0 for r in rows)
    # each point got a request id of its own, none of them the point's index
    assert len({r["request_id"] for r in rows}) == 3 and "u-1" not in {
        r["request_id"] for r in rows}


def test_an_idempotency_key_makes_a_body_sent_again_all_duplicates(
        client: falcon.testing.TestClient, db_path: Path) -> None:
    body = {"dataset": "my_events", "points": [{"blobs": ["a"]}, {"blobs": ["b"]}]}
    key = str(uuid.uuid4())
    assert post(client, body, **{"Idempotency-Key": key}).json == {
        "success": True, "accepted": 2, "duplicates": 0}
    assert post(client, body, **{"Idempotency-Key": key}).json == {
        "success": True, "accepted": 0, "duplicates": 2}
    assert [r["request_id"] for r in stored(db_path)] == [key_id(key, 0), key_id(key, 1)]
    # one more point under the same key is another body: refused, nothing stored (the
    # IETF idempotency-key draft; tests/test_idempotency.py)
    three = {"dataset": "my_events", "points": [*body["points"], {"blobs": ["c"]}]}
    assert post(client, three, **{"Idempotency-Key": key}).status_code == 422
    # the same key for another dataset is other points
    other = {"dataset": "other", "points": body["points"]}
    assert post(client, other, **{"Idempotency-Key": key}).json["accepted"] == 2
    # without the header every point is new, every time
    assert post(client, body).json["accepted"] == 2
    assert post(client, body).json["accepted"] == 2
    assert len(stored(db_path, "my_events")) == 2 + 4
    assert len(stored(db_path, "other")) == 2


@pytest.mark.parametrize("value", ["", "x" * 65, "two words", "é"])
def test_an_idempotency_key_that_cannot_be_a_request_id_is_refused(
        client: falcon.testing.TestClient, db_path: Path, value: str) -> None:
    body = {"dataset": "d", "points": [{}]}
    result = client.simulate_post(ROUTE, body=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", "Idempotency-Key": value.encode().decode(
            "latin-1")})
    assert_error(result, 400, "header Idempotency-Key")
    assert stored(db_path) == []


def test_the_route_needs_the_key(make_client: Any, config: Any, db_path: Path) -> None:
    bare = falcon.testing.TestClient(make_client(config).app)
    body = {"dataset": "d", "points": [{}]}
    assert_error(bare.simulate_post(ROUTE, json=body), 401, "Unauthorized")
    assert_error(bare.simulate_post(ROUTE, json=body,
                                    headers={"X-Internal-Auth-Key": "wrong"}), 401)
    assert bare.simulate_post(ROUTE, json=body, headers={
        "X-Internal-Auth-Key": "rotated-key"}).status_code == 200
    assert len(stored(db_path)) == 1


# Each limit at its edge (accepted) and one past it (refused, with the point's path).
EURO = "€"  # three bytes in UTF-8
LIMITS = [
    ("20 blobs", {"blobs": ["b"] * 20}, {"blobs": ["b"] * 21}, "$.points[0].blobs"),
    ("20 doubles", {"doubles": [1] * 20}, {"doubles": [1] * 21}, "$.points[0].doubles"),
    ("one index", {"indexes": ["i"]}, {"indexes": ["i", "j"]}, "$.points[0].indexes"),
    ("index of 96 bytes", {"indexes": [EURO * 32]}, {"indexes": [EURO * 32 + "x"]},
     "$.points[0].indexes[0]"),
    ("blobs of 16,000 bytes together", {"blobs": [EURO * 5000, "x" * 1000]},
     {"blobs": [EURO * 5000, "x" * 1001]}, "$.points[0].blobs"),
    ("dataset of 64 characters", None, None, "$.dataset"),
]


@pytest.mark.parametrize("name, edge, past, path", LIMITS[:-1], ids=[l[0] for l in LIMITS[:-1]])
def test_each_limit_at_its_edge_and_one_past_it(
        client: falcon.testing.TestClient, db_path: Path, name: str, edge: dict,
        past: dict, path: str) -> None:
    assert post(client, {"dataset": "d", "points": [edge]}).json["accepted"] == 1
    body = assert_error(post(client, {"dataset": "d", "points": [past]}), 400)
    assert path in [d["path"] for d in body["details"]], body
    assert len(stored(db_path)) == 1


def test_a_dataset_name_of_64_characters_and_one_past(
        client: falcon.testing.TestClient, db_path: Path) -> None:
    name = "a-Z_9" * 12 + "abcd"
    assert len(name) == 64
    assert post(client, {"dataset": name, "points": [{}]}).status_code == 200
    body = assert_error(post(client, {"dataset": name + "e", "points": [{}]}), 400)
    assert [d["path"] for d in body["details"]] == ["$.dataset"]
    assert [r["dataset"] for r in stored(db_path)] == [name]


def test_a_thousand_points_and_one_past(client: falcon.testing.TestClient,
                                        db_path: Path) -> None:
    assert post(client, {"dataset": "d", "points": [{}] * 1000}).json["accepted"] == 1000
    body = assert_error(post(client, {"dataset": "d", "points": [{}] * 1001}), 400)
    assert [d["path"] for d in body["details"]] == ["$.points"]
    assert len(stored(db_path)) == 1000


def test_doubles_must_be_finite_numbers(client: falcon.testing.TestClient,
                                        db_path: Path) -> None:
    edge = '{"dataset": "d", "points": [{"doubles": [1.7976931348623157e308, -5e-324]}]}'
    assert post(client, edge).json["accepted"] == 1
    # past a double's range: JSON allows the text, Analytics Engine refuses the value
    past = '{"dataset": "d", "points": [{}, {"doubles": [0, 1e309, -1' + "0" * 400 + "]}]}"
    body = assert_error(post(client, past), 400, "not a finite number")
    assert [d["path"] for d in body["details"]] == ["$.points[1].doubles[1]",
                                                    "$.points[1].doubles[2]"]
    assert_error(post(client, '{"dataset": "d", "points": [{"doubles": [NaN]}]}'), 400,
                 "Malformed JSON")
    assert len(stored(db_path)) == 1


def test_a_bad_body_is_a_400_with_every_violation_and_its_path(
        client: falcon.testing.TestClient, db_path: Path) -> None:
    body = {"dataset": "my events", "extra": 1, "points": [
        {"blobs": ["ok", 7], "doubles": ["1", True], "indexes": [None]},
        {"blob": ["typo"]},
        {"blobs": ["\ud800"]}]}
    answer = assert_error(post(client, json.dumps(body)), 400, "nothing was stored")
    paths = [d["path"] for d in answer["details"]]
    for path in ("$", "$.dataset", "$.points[0].blobs[1]", "$.points[0].doubles[0]",
                 "$.points[0].doubles[1]", "$.points[0].indexes[0]", "$.points[1]"):
        assert path in paths, answer
    assert all(d["message"] for d in answer["details"])
    # valid by the schema, past the limits only: those are reported, with their paths
    answer = assert_error(post(client, json.dumps({"dataset": "d", "points": [
        {}, {"blobs": ["\ud800"]}, {"indexes": ["x" * 97]}]})), 400)
    assert [d["path"] for d in answer["details"]] == ["$.points[1].blobs[0]",
                                                      "$.points[2].indexes[0]"]
    assert stored(db_path) == []


@pytest.mark.parametrize("body", [
    {}, {"dataset": "d"}, {"points": [{}]}, {"dataset": "d", "points": []},
    {"dataset": "d", "points": {}}, {"dataset": 5, "points": [{}]}, [], "text", None,
    {"dataset": "d", "points": [[]]}, {"dataset": "d", "points": [{"blobs": "x"}]},
])
def test_bodies_that_are_not_a_dataset_and_points(client: falcon.testing.TestClient,
                                                  db_path: Path, body: Any) -> None:
    answer = assert_error(post(client, json.dumps(body)), 400)
    assert answer["details"] and all(d["path"].startswith("$") for d in answer["details"])
    assert stored(db_path) == []


def test_malformed_json_not_json_and_too_large(make_client: Any, config: Any,
                                               db_path: Path) -> None:
    client = make_client(dataclasses.replace(config, max_batch_bytes=2000))
    assert_error(post(client, b'{"dataset": "d", "points": [{]}'), 400, "Malformed JSON")
    assert_error(client.simulate_post(ROUTE, body=b'{"dataset": "d", "points": [{}]}',
                                      headers={"Content-Type": "text/plain"}), 415)
    big = {"dataset": "d", "points": [{"blobs": ["x" * 1000]}, {"blobs": ["y" * 1000]}]}
    assert_error(post(client, big), 413)
    assert stored(db_path) == []


def test_the_services_own_dataset_is_refused(client: falcon.testing.TestClient,
                                             db_path: Path) -> None:
    answer = assert_error(post(client, {"dataset": "hoox_telemetry", "points": [{}]}), 400,
                          "ANALYTICS_DATASET")
    assert [d["path"] for d in answer["details"]] == ["$.dataset"]
    assert stored(db_path) == []


def test_the_openapi_document_describes_the_route_with_its_schema(
        client: falcon.testing.TestClient) -> None:
    doc = client.simulate_get("/openapi.json").json
    op = doc["paths"][ROUTE]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/datapoints"
    schema = doc["components"]["schemas"]["datapoints"]
    assert schema["properties"]["points"]["maxItems"] == 1000
    assert "x-undocumented" not in op
    assert any(p["name"] == "Idempotency-Key" for p in op["parameters"])


# -- storage: exactly once, through the writer process too ----------------------------------

def test_points_and_events_commit_through_the_writer_process_exactly_once(
        writer_process: Any, make_client: Any, config: Any, db_path: Path) -> None:
    socket = writer_process(db_path)
    client = make_client(config, writer_socket=socket)
    key = str(uuid.uuid4())
    body = {"dataset": "my_events", "points": [{"blobs": [str(i)]} for i in range(300)]}
    assert post(client, body, **{"Idempotency-Key": key}).json["accepted"] == 300
    assert client.simulate_post("/track/api-call", json=api_call("e-1")).status_code == 200
    assert post(client, body, **{"Idempotency-Key": key}).json == {
        "success": True, "accepted": 0, "duplicates": 300}
    rows = stored(db_path)
    assert [r["blob1"] for r in rows] == [str(i) for i in range(300)]
    answer = client.simulate_post("/query", json={
        "query": "SELECT count() AS n FROM my_events"})
    assert answer.json["results"] == [{"n": 300}]
    assert client.simulate_get("/status").json["events"] == 1


def test_a_group_of_events_and_points_commits_together_with_each_result_its_own(
        db_path: Path) -> None:
    from storage.intake.events import EventParser
    from storage.log import event_rows

    log = EventLog(db_path)
    try:
        row = points.row("d", "r-1", 1000, points.DataPoint(("a",), (1.0,), ()))
        twice = points.row("d", "r-2", 1000, points.DataPoint(("b",), (), ("i",)))
        # an event whose request id is a point's: another table, not a duplicate
        event = event_rows([EventParser(lambda: "unused").one(api_call("r-1"), 1000)],
                           log.layout)
        results = log.append_row_groups([[row, twice], event, [twice], event, [row]],
                                        ["points", "events", "points", "events", "points"])
        assert [(r.accepted, r.duplicates) for r in results] == [
            (2, 0), (1, 0), (0, 1), (0, 1), (0, 1)]
        assert [r["request_id"] for r in stored(db_path)] == ["r-1", "r-2"]
        assert log.count() == 1 and log.contains("r-1")
        assert log.datasets() == {"d": 2}
        # a group whose transaction fails: each request alone gets its own outcome, and a
        # request's points are all or nothing
        broken = [points.row("d", "r-4", 1000, points.DataPoint((), (), ()))[:-1]]
        good = [points.row("e", "r-3", 1000, points.DataPoint(("c",), (), ()))]
        results = log.append_row_groups([good, [good[0], *broken], event],
                                        ["points", "points", "events"])
        assert (results[0].accepted, results[2].duplicates) == (1, 1)
        assert isinstance(results[1], LogError)
        assert log.datasets() == {"d": 2, "e": 1}
    finally:
        log.close()


# -- queries ---------------------------------------------------------------------------------

NOW_S = 1_764_000_000


def _points(seed: int) -> list[dict[str, Any]]:
    """Points of many shapes: short and full slots, non-ASCII text, negative and
    fractional doubles, empty blobs and missing indexes."""
    out = []
    for i in range(40):
        point: dict[str, Any] = {}
        if i % 5:
            point["blobs"] = [f"path/{(i * seed) % 7}", ["GET", "POST", "ünï"][i % 3],
                              *(["x"] * (i % 20))][:20]
        if i % 4:
            point["doubles"] = [i * 1.5 - 20, float(seed), *([0.25] * (i % 18))][:20]
        if i % 3:
            point["indexes"] = [f"user-{i % 6}"]
        out.append(point)
    return out


@pytest.fixture
def two_datasets(make_client: Any, config: Any, clock: FixedClock
                 ) -> tuple[falcon.testing.TestClient, dict[str, list[tuple]]]:
    """A service holding points of two datasets, posted over ten minutes, and the rows
    Analytics Engine would show for each (for chdb)."""
    clock.now = float(NOW_S - 600)
    client = make_client(config)
    shown: dict[str, list[tuple]] = {"my_events": [], "other-ds": []}
    for minute in range(10):
        for dataset, seed in (("my_events", 3), ("other-ds", 5)):
            batch = _points(seed + minute)[minute * 4:(minute + 1) * 4]
            assert post(client, {"dataset": dataset, "points": batch}).status_code == 200
            for p in batch:
                blobs = [*p.get("blobs", []), *[""] * 20][:20]
                doubles = [*p.get("doubles", []), *[0.0] * 20][:20]
                shown[dataset].append((dataset, int(clock.now), 1,
                                       (p.get("indexes") or [""])[0], *blobs, *doubles))
        clock.advance(60)
    clock.now = float(NOW_S)
    return client, shown


@pytest.fixture
def chdb_tables(two_datasets: Any) -> Iterator[Any]:
    from chdb import session

    _, shown = two_datasets
    s = session.Session()
    columns = ", ".join(f"`{n}` {t}" for n, t in AE_COLUMNS)
    for dataset, rows in shown.items():
        s.query(f"DROP TABLE IF EXISTS `{dataset}`")
        s.query(f"CREATE TABLE `{dataset}` ({columns}) ENGINE = Memory")
        values = ",".join("(" + ",".join(
            "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" if isinstance(v, str)
            else repr(v) for v in row) + ")" for row in rows)
        s.query(f"INSERT INTO `{dataset}` VALUES {values}")

    def query(sql: str, dataset: str) -> dict[str, Any]:
        text = to_clickhouse(sql, dataset=dataset, now=NOW_S, portable=True, format=None)
        return json.loads(s.query(text + " SETTINGS max_threads = 1, session_timezone = "
                                  "'UTC'", "JSON").bytes())

    yield query
    for dataset in shown:
        s.query(f"DROP TABLE IF EXISTS `{dataset}`")


QUERIES = [
    ("SELECT * FROM {t} ORDER BY timestamp, index1, blob1, double1", True),
    ("SELECT blob2 AS method, count() AS n, sum(double1 * _sample_interval) AS total, "
     "avg(double2) AS mean FROM {t} WHERE timestamp >= now() - INTERVAL '5' MINUTE "
     "GROUP BY method ORDER BY method", True),
    ("SELECT toStartOfInterval(timestamp, INTERVAL '2' MINUTE) AS t, "
     "countIf(index1 = '') AS unindexed, max(double1) AS top FROM {t} GROUP BY t "
     "ORDER BY t", True),
    ("SELECT dataset, index1, count() AS n FROM {t} WHERE index1 IN ('user-1', 'user-2') "
     "GROUP BY dataset, index1 ORDER BY index1", True),
    ("SELECT blob1, blob20, double20, length(blob3) AS l FROM {t} WHERE blob1 LIKE 'path/%' "
     "AND double1 > -10 ORDER BY double1 DESC, blob1 LIMIT 5 OFFSET 2", True),
    ("SELECT count() AS n, sum(_sample_interval) AS weighted FROM {t} "
     "WHERE timestamp BETWEEN toDateTime('2025-11-24 15:52:00') AND now()", False),
    ("SELECT formatDateTime(timestamp, '%Y-%m-%d %H:%i') AS minute, "
     "quantileWeighted(0.5, double1, _sample_interval) AS p50 FROM {t} "
     "GROUP BY minute ORDER BY minute", True),
    ("SELECT x.blob2, count() AS n FROM (SELECT blob2, double1 FROM {t} WHERE double1 > 0) "
     "AS x GROUP BY x.blob2 ORDER BY n DESC, x.blob2", True),
]


@pytest.mark.parametrize("template, ordered", QUERIES, ids=[f"q{i}" for i in range(len(QUERIES))])
@pytest.mark.parametrize("dataset", ["my_events", "other-ds"])
def test_from_a_dataset_on_query_and_the_sql_api_equals_chdb(
        two_datasets: Any, chdb_tables: Any, template: str, ordered: bool,
        dataset: str) -> None:
    client, _ = two_datasets
    sql = template.format(t=f"`{dataset}`")
    reference = chdb_tables(sql, dataset)
    assert reference["data"], sql  # there is something to compare
    via_query = client.simulate_post("/query", json={"query": sql})
    assert via_query.status_code == 200, via_query.text
    assert via_query.json["source"] == "local"
    local = SimpleNamespace(meta=via_query.json["meta"], rows=via_query.json["results"])
    assert not differences(local, reference, ordered), differences(local, reference, ordered)
    via_api = client.simulate_post(SQL_API, body=sql.encode(), headers=BEARER)
    assert via_api.status_code == 200, via_api.text
    assert via_api.headers["X-Analytics-Source"] == "local"
    answer = via_api.json
    # as Cloudflare writes them: 64-bit integers quoted
    wide = {m["name"] for m in answer["meta"] if m["type"] in ("UInt64", "Int64")}
    assert all(isinstance(r[n], str) for r in answer["data"] for n in wide)
    rows = [{k: int(v) if k in wide else v for k, v in r.items()} for r in answer["data"]]
    local = SimpleNamespace(meta=answer["meta"], rows=rows)
    assert not differences(local, reference, ordered), differences(local, reference, ordered)
    assert answer["rows"] == len(reference["data"])
    if "LIMIT" in sql:
        assert answer["rows_before_limit_at_least"] == reference["rows_before_limit_at_least"]


def test_two_datasets_are_kept_apart(two_datasets: Any) -> None:
    client, shown = two_datasets
    for dataset, rows in shown.items():
        answer = client.simulate_post("/query", json={
            "query": f"SELECT dataset, count() AS n, sum(double2) AS s FROM `{dataset}` "
                     "GROUP BY dataset"})
        assert answer.json["results"] == [{"dataset": dataset, "n": len(rows),
                                           "s": sum(r[4 + 20 + 1] for r in rows)}]
    # the service's own dataset holds only its events
    answer = client.simulate_post("/query", json={
        "query": "SELECT count() AS n FROM hoox_telemetry"})
    assert answer.json["results"] == [{"n": 0}]


def test_show_tables_lists_every_dataset_and_status_counts_them(two_datasets: Any) -> None:
    client, shown = two_datasets
    tables = client.simulate_post("/query", json={"query": "SHOW TABLES"}).json["results"]
    assert tables == [{"dataset": "hoox_telemetry"}, {"dataset": "my_events"},
                      {"dataset": "other-ds"}]
    api = client.simulate_post(SQL_API, body=b"SHOW TABLES FORMAT JSONEachRow",
                               headers=BEARER)
    assert [json.loads(line) for line in api.text.splitlines()] == tables
    client.simulate_post("/track/api-call", json=api_call("e-1"))
    status = client.simulate_get("/status").json
    assert status["datasets"] == [
        {"dataset": "hoox_telemetry", "rows": 1, "replayed": True},
        {"dataset": "my_events", "rows": len(shown["my_events"]), "replayed": False},
        {"dataset": "other-ds", "rows": len(shown["other-ds"]), "replayed": False}]
    assert "stay in the local log" in status["datasetsNote"]


def test_a_dataset_without_points_is_an_unknown_table_until_points_arrive(
        client: falcon.testing.TestClient) -> None:
    sql = "SELECT count() AS n FROM later"
    for _ in range(2):  # and again: a cached translation must not outlive the answer
        answer = assert_error(client.simulate_post("/query", json={"query": sql}), 422,
                              "unknown table later")
        api = client.simulate_post(SQL_API, body=sql.encode(), headers=BEARER)
        assert api.status_code == 422 and api.text.startswith("Input was invalid: unknown "
                                                              "table later")
        assert answer["source"] == "local"
    assert post(client, {"dataset": "later", "points": [{}]}).status_code == 200
    assert client.simulate_post("/query", json={"query": sql}).json["results"] == [{"n": 1}]
    # the engine reads only what the translation shows: never a request id
    assert_error(client.simulate_post("/query", json={
        "query": "SELECT request_id FROM later"}), 422, "unknown column request_id")


def test_a_points_dataset_is_answered_by_the_log_even_when_cloudflare_answers_the_rest(
        make_client: Any, config: Any, standin: Any) -> None:
    cloud = dataclasses.replace(config, cloudflare_api_base=standin.api_base,
                                cloudflare_account_id=standin.account_id,
                                cloudflare_api_token=standin.api_token)
    client = make_client(cloud, background=False)
    assert post(client, {"dataset": "my_events", "points": [{"doubles": [2]}]}).status_code == 200
    own = client.simulate_post("/query", json={"query": "SELECT count() AS n FROM hoox_telemetry"})
    assert own.json["source"] == "cloudflare"
    mine = client.simulate_post("/query", json={"query": "SELECT sum(double1) AS s FROM my_events"})
    assert mine.json["source"] == "local" and mine.json["results"] == [{"s": 2.0}]
    api = client.simulate_post(SQL_API, body=b"SELECT count() AS n FROM my_events",
                               headers=BEARER)
    assert api.headers["X-Analytics-Source"] == "local" and api.json["data"] == [{"n": "1"}]
    # asked of Cloudflare itself, which never holds them: refused, not answered locally
    refused = client.simulate_post("/query", json={"query": "SELECT count() FROM my_events",
                                                   "source": "cloudflare"})
    assert refused.status_code == 422 and refused.json["source"] == "cloudflare"


def test_the_cli_query_reads_a_dataset(client: falcon.testing.TestClient,
                                       db_path: Path) -> None:
    post(client, {"dataset": "my_events", "points": [{"blobs": ["a"]}, {"blobs": ["b"]}]})
    result = CliRunner().invoke(cli.main, [
        "query", "--db", str(db_path), "--source", "local", "--json",
        "SELECT blob1 FROM my_events ORDER BY blob1"],
        env={"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_SINK": "none"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["results"] == [{"blob1": "a"}, {"blob1": "b"}]


def test_time_bounded_queries_of_a_dataset_search_its_index(tmp_path: Path) -> None:
    db = tmp_path / "plan.db"
    log = EventLog(db)
    try:
        for dataset in ("a", "b", "c"):
            rows = [points.row(dataset, f"{dataset}-{i}", (NOW_S - 86400 * 7) * 1000
                               + i * 60_000, points.DataPoint((f"w{i % 5}",), (i,), ()))
                    for i in range(3000)]
            log.append_points(rows)
        log.conn.execute("PRAGMA query_only = OFF")
        log.conn.execute("ANALYZE")  # plans as on a log with statistics
    finally:
        log.close()
    engine = LocalEngine(str(db), now=lambda: NOW_S)
    try:
        for sql in [
                "SELECT count() FROM b WHERE timestamp > now() - INTERVAL '1' DAY",
                "SELECT blob1, sum(double1) FROM b WHERE timestamp >= now() - INTERVAL '6' "
                "HOUR GROUP BY blob1 ORDER BY blob1",
                "SELECT toStartOfInterval(timestamp, INTERVAL '5' MINUTE) AS t, count() "
                "FROM b WHERE timestamp BETWEEN now() - INTERVAL '1' HOUR AND now() "
                "GROUP BY t ORDER BY t",
                "SELECT index1, double1 FROM b WHERE timestamp > '2025-11-20 00:00:00' "
                "ORDER BY timestamp DESC LIMIT 20"]:
            plan = engine.plan(sql)
            assert any("USING INDEX points_dataset_timestamp (dataset=? AND <expr>" in s
                       or "USING COVERING INDEX points_dataset_timestamp (dataset=? AND <expr>"
                       in s for s in plan), (sql, plan)
            assert not any(s.startswith("SCAN points") for s in plan), (sql, plan)
    finally:
        engine.close()


# -- replay and retention --------------------------------------------------------------------

def test_replay_sends_the_configured_datasets_events_only(
        make_client: Any, config: Any, standin: Any, db_path: Path) -> None:
    relay = dataclasses.replace(config, sink="relay", relay_url=standin.relay_url,
                                relay_key=standin.relay_key, cloudflare_timeout_ms=2000)
    client = make_client(relay, background=False)
    post(client, {"dataset": "my_events", "points": [{"indexes": ["point-1"]},
                                                     {"indexes": ["point-2"]}]})
    client.simulate_post("/track/api-call", json=api_call("event-1"))
    post(client, {"dataset": "my_events", "points": [{"indexes": ["point-3"]}]})
    client.simulate_post("/track/api-call", json=api_call("event-2"))
    target = sink.from_config("relay", relay_url=relay.relay_url, relay_key=relay.relay_key,
                              timeout_ms=2000, http=httpx.Client(), clock=__import__("time").time)
    log = EventLog(db_path)
    try:
        sender = replay.Replayer(log, target, backoff=replay.Backoff(base_s=0.0, cap_s=0.0))
        for _ in range(5):
            sender.tick()
        assert standin.indexes() == ["event-1", "event-2"]
        assert replay.status(log, "relay", 0)["backlog"]["events"] == 0
    finally:
        log.close()
    status = client.simulate_get("/status").json
    assert [d["rows"] for d in status["datasets"]] == [2, 3]


def test_retention_prunes_points_by_age_alone(make_client: Any, config: Any,
                                             clock: FixedClock, db_path: Path) -> None:
    client = make_client(config, background=False)
    day = 86400
    clock.now = float(NOW_S - 10 * day)
    post(client, {"dataset": "old", "points": [{"blobs": ["o"]}] * 3})
    post(client, {"dataset": "mixed", "points": [{"blobs": ["old"]}] * 2})
    clock.now = float(NOW_S - 2 * day)
    post(client, {"dataset": "mixed", "points": [{"blobs": ["new"]}] * 4})
    log = EventLog(db_path)
    try:
        pruned = retention.prune_points(log, NOW_S, 5, batch=2, pause=lambda s: None)
        assert pruned == 5
        assert log.datasets() == {"mixed": 4}
        assert retention.prune_points(log, NOW_S, 5) == 0
    finally:
        log.close()
    assert {r["blob1"] for r in stored(db_path)} == {"new"}
    assert_error(client.simulate_post("/query", json={"query": "SELECT count() FROM old"}),
                 422, "unknown table old")
    status = client.simulate_get("/status").json
    assert status["datasets"][1:] == [{"dataset": "mixed", "rows": 4, "replayed": False}]


# -- under gunicorn: the writer process, the mirror beside it --------------------------------

@pytest.mark.gunicorn
def test_under_gunicorn_points_from_many_clients_are_committed_once_and_answered(
        gunicorn_server: Any, db_path: Path) -> None:
    """Two workers, the writer process and the mirror: points and events
    from several clients at once, each request sent twice as a retry would be; every
    point is stored once, and FROM <dataset> answers them beside the events' dataset."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    server = gunicorn_server(ANALYTICS_MIRROR_MIN_EVENTS="0")  # the mirror from the start
    assert server.writer_pid() is not None
    deadline = time.monotonic() + 15
    while not any("storage.query.mirror_process" in cmd for _, cmd in server._children()):
        assert time.monotonic() < deadline, "the mirror did not start"
        time.sleep(0.1)
    clients, requests = 4, 15

    def work(c: int) -> list[tuple[int, int]]:
        seen = []
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as http:
            for r in range(requests):
                key = f"c{c}-r{r}"
                body = {"dataset": f"ds{c % 2}",
                        "points": [{"blobs": [key], "doubles": [i]} for i in range(20)]}
                for _ in range(2):  # the retry is all duplicates
                    answer = http.post(ROUTE, json=body, headers={"Idempotency-Key": key})
                    assert answer.status_code == 200, answer.text
                    seen.append((answer.json()["accepted"], answer.json()["duplicates"]))
                assert http.post("/track/api-call", json=api_call(key)).status_code == 200
        return seen

    with ThreadPoolExecutor(clients) as pool:
        answers = [a for seen in pool.map(work, range(clients)) for a in seen]
    assert answers.count((20, 0)) == clients * requests
    assert answers.count((0, 20)) == clients * requests
    rows = stored(db_path)
    assert len(rows) == clients * requests * 20
    assert len({(r["dataset"], r["request_id"]) for r in rows}) == len(rows)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as http:
        for dataset in ("ds0", "ds1"):
            answer = http.post("/query", json={
                "query": f"SELECT count() AS n, sum(double1) AS s, count(DISTINCT blob1) AS "
                         f"keys FROM {dataset}"}).json()
            assert answer["results"] == [{"n": 600, "s": 600 * 9.5, "keys": 30}], answer
            api = http.post(SQL_API, content=f"SELECT count() AS n FROM {dataset}",
                            headers=BEARER)
            assert api.status_code == 200 and api.json()["data"] == [{"n": "600"}]
        own = http.post("/query", json={"query": "SELECT count() AS n FROM hoox_telemetry"})
        assert own.json()["results"] == [{"n": clients * requests}]
        status = http.get("/status").json()
        assert status["datasets"] == [
            {"dataset": "hoox_telemetry", "rows": 60, "replayed": True},
            {"dataset": "ds0", "rows": 600, "replayed": False},
            {"dataset": "ds1", "rows": 600, "replayed": False}]


def test_with_the_mirror_running_its_dataset_goes_to_the_mirror_and_points_to_the_log(
        tmp_path: Path, config: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """The mirror holds the configured dataset only: a query of raw points is answered
    by the log's engine (right, and without a round trip to the mirror)."""
    from test_mirror import Mirror

    from storage.query.mirror import MIRROR_SOCKET_ENV
    from storage.services import Services

    log = EventLog(config.db_path)
    try:
        log.append_points([points.row("my_events", f"r{i}", int(clock.now * 1000),
                                      points.DataPoint((f"b{i % 3}",), (i,), ()))
                           for i in range(30)])
    finally:
        log.close()
    mirror = Mirror(config.db_path, tmp_path)
    services = Services(config, clock, background=False)
    try:
        monkeypatch.setenv(MIRROR_SOCKET_ENV, mirror.socket)
        router = services.router
        mirrored = router._local
        assert mirrored.socket_path == mirror.socket
        own = router.query("SELECT count() AS n FROM hoox_telemetry", [], "auto")
        # the configured dataset goes to the mirrored engine (which lets the log answer
        # a query of few rows itself)
        assert own.result.rows == [{"n": 0}] and mirrored.answered + mirrored.few == 1
        answer = router.query("SELECT blob1, count() AS n, sum(double1) AS s FROM my_events "
                              "GROUP BY blob1 ORDER BY blob1", [], "auto")
        assert answer.source == "local"
        assert answer.result.rows == [{"blob1": "b0", "n": 10, "s": 135.0},
                                      {"blob1": "b1", "n": 10, "s": 145.0},
                                      {"blob1": "b2", "n": 10, "s": 155.0}]
        assert (mirrored.answered + mirrored.few, mirrored.fell_back) == (1, 0)
    finally:
        services.close()
        mirror.stop()
