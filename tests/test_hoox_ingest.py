"""The hoox layout (SPEC §9): the platform's routes with its real callers' bodies,
their data points slot by slot, the compatibility decisions, and bad input on every route."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import falcon.testing
import pytest

from conftest import AUTH, KEY, assert_error
from hoox_callers import CALLERS, LONG_ERROR, RISK_ROUTES, ROUTES, Caller
from storage.config import Config
from storage.intake.events import key_id
from storage.log import EventLog


@pytest.fixture
def hoox_config(db_path: Path) -> Config:
    return Config(internal_keys=(KEY,), db_path=str(db_path), sink="none", layout="hoox")


@pytest.fixture
def hoox(make_client: Any, hoox_config: Config) -> falcon.testing.TestClient:
    return make_client(hoox_config, background=False)


@pytest.fixture
def hoox_log(db_path: Path, hoox: falcon.testing.TestClient) -> Iterator[EventLog]:
    log = EventLog(db_path, layout="hoox")
    yield log
    log.close()


def datapoint_row(log: EventLog, request_id: str | None = None) -> dict[str, Any]:
    cursor = log.conn.execute(
        "SELECT * FROM datapoints" + (" WHERE index1 = ?" if request_id else
                                      " ORDER BY seq DESC LIMIT 1"),
        (request_id,) if request_id else ())
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone()))


@pytest.mark.parametrize("caller", CALLERS, ids=[c.name for c in CALLERS])
def test_every_caller_body_is_stored_with_its_data_point_slot_by_slot(
        hoox: falcon.testing.TestClient, hoox_log: EventLog, clock: Any, caller: Caller):
    result = hoox.simulate_post(f"/track/{caller.route}", json=caller.body)
    assert result.status_code == 200, result.text
    expected_answer = {"success": True}
    if caller.ignored:
        expected_answer["ignored"] = list(caller.ignored)
    assert result.json == expected_answer

    row = datapoint_row(hoox_log)
    if caller.index1 is None:
        assert uuid.UUID(row["index1"])  # a fresh UUID
    else:
        assert row["index1"] == caller.index1
    assert tuple(row[f"blob{i}"] for i in range(1, 6)) == caller.blobs
    assert tuple(row[f"double{i}"] for i in range(1, 4)) == caller.doubles
    assert row["double4"] == clock.now  # the received time, Unix seconds
    assert row["double5"] == caller.double5
    assert row["timestamp"] == int(clock.now)
    assert row["_sample_interval"] == 1
    # The rest of the whole data point, as Analytics Engine shows unset slots.
    assert [row[f"blob{i}"] for i in range(6, 21)] == [""] * 15
    assert [row[f"double{i}"] for i in range(6, 21)] == [0] * 15

    stored = hoox_log.conn.execute("SELECT type, payload FROM events WHERE request_id = ?",
                                   (row["index1"],)).fetchone()
    assert stored[0] == caller.route
    payload = json.loads(stored[1])
    # The body whole: unknown keys (queryType), every index, a 300-character error.
    assert payload == caller.body


def test_replayed_points_carry_the_slots_the_platform_writes(
        hoox: falcon.testing.TestClient, hoox_log: EventLog, clock: Any):
    from storage import replay

    for caller in CALLERS:
        assert hoox.simulate_post(f"/track/{caller.route}", json=caller.body).status_code == 200
    points = [p.point for p in replay.pending(hoox_log, 0, 100)]
    assert [(p.blobs, p.doubles[:3]) for p in points] == [(c.blobs, c.doubles) for c in CALLERS]
    assert [(p.doubles[3], p.doubles[4]) for p in points] == [(clock.now, c.double5)
                                                              for c in CALLERS]
    assert all(len(p.doubles) == 5 for p in points)
    assert all(len(p.indexes) == 1 for p in points)


def test_a_trade_error_over_256_characters_is_kept_whole(hoox, hoox_log):
    body = CALLERS[2].body
    assert hoox.simulate_post("/track/trade", json=body).status_code == 200
    payload = json.loads(hoox_log.conn.execute("SELECT payload FROM events").fetchone()[0])
    assert payload["result"]["error"] == LONG_ERROR


def test_long_strings_are_cut_only_in_the_data_point(hoox, hoox_log):
    symbol = "S" * 300
    request_id = "é" * 60  # 120 bytes: cut to 48 characters (96 bytes)
    body = {"payload": {"exchange": "x" * 255 + "ü" * 5, "symbol": symbol, "action": "buy",
                        "quantity": 1, "requestId": request_id},
            "result": {"success": True}}
    assert hoox.simulate_post("/track/trade", json=body).status_code == 200
    row = datapoint_row(hoox_log)
    assert row["index1"] == "é" * 48
    assert row["blob4"] == "x" * 255 + "ü"
    assert row["blob5"] == "S" * 256
    payload = json.loads(hoox_log.conn.execute("SELECT payload FROM events").fetchone()[0])
    assert payload == body


def test_an_index_is_never_cut_inside_a_utf8_sequence(hoox, hoox_log):
    rid = "a" + "€" * 40  # 1 + 120 bytes: 95 bytes fit whole characters
    body = {"worker": "w", "endpoint": "/e", "latencyMs": 1, "success": True, "indexes": [rid]}
    assert hoox.simulate_post("/track/api-call", json=body).status_code == 200
    assert datapoint_row(hoox_log)["index1"] == "a" + "€" * 31


def test_unknown_keys_are_kept_and_named_at_every_level(hoox, hoox_log):
    body = {"payload": {"exchange": "binance", "symbol": "BTCUSDT", "action": "buy",
                        "quantity": 1, "orderType": "limit"},
            "result": {"success": True, "orderId": 42}, "strategy": "grid"}
    result = hoox.simulate_post("/track/trade", json=body)
    assert result.json == {"success": True,
                           "ignored": ["payload.orderType", "result.orderId", "strategy"]}
    payload = json.loads(hoox_log.conn.execute("SELECT payload FROM events").fetchone()[0])
    assert payload == body


def test_a_trade_request_id_is_the_idempotency_key(hoox, hoox_log):
    body = CALLERS[0].body
    assert hoox.simulate_post("/track/trade", json=body).json == {"success": True}
    assert hoox.simulate_post("/track/trade", json=body).json == {"success": True,
                                                                   "duplicate": True}
    assert hoox_log.count() == 1


def test_the_api_call_envelope_stays_strict(hoox, hoox_log):
    body = {"requestId": "r1", "payload": {"worker": "w", "endpoint": "/e", "latencyMs": 1,
                                           "success": True, "extra": 1}}
    result = assert_error(hoox.simulate_post("/track/api-call", json=body), 400)
    assert "$.payload" in [d["path"] for d in result["details"]]
    good = {"requestId": "r1", "payload": {"worker": "w", "endpoint": "/e", "latencyMs": 1,
                                           "success": True}}
    assert hoox.simulate_post("/track/api-call", json=good).json == {"success": True}
    row = datapoint_row(hoox_log)
    assert (row["index1"], row["blob1"], row["blob2"], row["blob4"]) == ("r1", "api-call", "w", "/e")


def test_the_profile_flat_api_call_stays_strict(client, event_log):
    """The profile layout behaves as before layouts: an unknown key is a 400 there."""
    body = {"worker": "d1-worker", "endpoint": "/query", "latencyMs": 4, "success": True,
            "queryType": "SELECT"}
    result = assert_error(client.simulate_post("/track/api-call", json=body), 400)
    assert "queryType" in str(result["details"])
    assert event_log.count() == 0


def test_batch_items_carry_their_type(hoox, hoox_log):
    events = [{"type": c.route, **c.body} for c in CALLERS]
    events.append({"worker": "hoox", "endpoint": "/default", "latencyMs": 1, "success": True})
    result = hoox.simulate_post("/track/batch", json={"events": events})
    d1 = next(i for i, c in enumerate(CALLERS) if c.ignored)
    assert result.json == {"success": True, "accepted": len(events), "duplicates": 0,
                           "ignored": [{"index": d1, "keys": ["queryType"]}]}
    types = [r[0] for r in hoox_log.conn.execute("SELECT type FROM events ORDER BY seq")]
    assert types == [c.route for c in CALLERS] + ["api-call"]


def test_a_batch_names_every_bad_item_and_stores_nothing(hoox, hoox_log):
    events = [
        {"type": "trade", **CALLERS[0].body},
        {"type": "signal", "data": {"source": "email", "type": "buy", "symbol": "X",
                                    "confidence": 1.5}},
        {"type": "order", "data": {}},
        {"type": "notification", "data": {"type": "t", "target": "", "success": "yes"}},
    ]
    result = assert_error(hoox.simulate_post("/track/batch", json={"events": events}), 400)
    paths = [d["path"] for d in result["details"]]
    assert "$.events[1].data.confidence" in paths
    assert "$.events[2].type" in paths
    assert "$.events[3].data.target" in paths and "$.events[3].data.success" in paths
    assert not any(p.startswith("$.events[0]") for p in paths)
    assert hoox_log.count() == 0


def test_profile_routes_of_the_hoox_layout_are_404_in_the_profile_layout(client):
    for route in ("trade", "signal", "notification", "worker-perf", *RISK_ROUTES):
        assert_error(client.simulate_post(f"/track/{route}", json={}), 404)


BAD = [
    ("trade", {"payload": {"exchange": "", "symbol": 1, "action": "buy",
                           "quantity": 2e15, "price": -1, "test": "yes"},
               "result": {"error": 5}, "latencyMs": -1},
     ["$.payload.exchange", "$.payload.symbol", "$.payload.quantity", "$.payload.price",
      "$.payload.test", "$.result", "$.result.error", "$.latencyMs"]),
    ("trade", {"payload": {"exchange": "b"}},
     ["$", "$.payload"]),
    ("api-call", {"worker": "", "endpoint": "/e", "latencyMs": 1e16, "success": 1,
                  "indexes": ["a"] * 9},
     ["$.worker", "$.latencyMs", "$.success", "$.indexes"]),
    ("worker-perf", {"data": {"worker": "w", "requests": -1, "errors": "3",
                              "duration": 1e16}},
     ["$.data.requests", "$.data.errors", "$.data.duration"]),
    ("worker-perf", {"stats": {}}, ["$"]),
    ("signal", {"data": {"source": "", "type": None, "confidence": -0.1}},
     ["$.data", "$.data.source", "$.data.type", "$.data.confidence"]),
    ("notification", {"data": {"type": "t", "target": "tg", "success": "true"}},
     ["$.data.success"]),
    ("notification", [], ["$"]),
    ("housekeeping", {"worker": "", "checks": -1, "healthy": "4", "unhealthy": 1e16},
     ["$.worker", "$.checks", "$.healthy", "$.unhealthy"]),
    ("housekeeping", {"data": {}}, ["$"]),
    ("trailing-stop", {"exchange": "binance", "symbol": "", "side": 1, "watermark": "68000",
                       "currentPrice": 2e15},
     ["$", "$.symbol", "$.side", "$.watermark", "$.currentPrice"]),
    ("take-profit", {"exchange": "bybit", "symbol": "ETHUSDT", "side": "SHORT",
                     "entryPrice": None, "currentPrice": True, "scaledQuantity": "0.5"},
     ["$.entryPrice", "$.currentPrice", "$.scaledQuantity"]),
    ("kill-switch", {"trigger": "max_drawdown", "pnlPercent": "-12,34", "limit": -10,
                     "totalUnrealizedPnl": -1234.5, "accountValue": "10000"},
     ["$.pnlPercent", "$.accountValue"]),
    ("kill-switch", {"trigger": "max_drawdown", "pnlPercent": "NaN", "limit": -10,
                     "totalUnrealizedPnl": -1, "accountValue": 1}, ["$.pnlPercent"]),
    ("kill-switch", {"trigger": "max_drawdown", "pnlPercent": "Infinity", "limit": -10,
                     "totalUnrealizedPnl": -1, "accountValue": 1}, ["$.pnlPercent"]),
    ("kill-switch", {"pnlPercent": "", "limit": -10, "totalUnrealizedPnl": -1,
                     "accountValue": 1}, ["$", "$.pnlPercent"]),
]


@pytest.mark.parametrize("route, body, paths", BAD, ids=[f"{r}-{i}" for i, (r, _, _) in
                                                          enumerate(BAD)])
def test_every_violation_is_named_with_its_json_path(hoox, hoox_log, route, body, paths):
    result = assert_error(hoox.simulate_post(f"/track/{route}", json=body), 400)
    found = [d["path"] for d in result["details"]]
    for path in paths:
        assert path in found, (path, found)
    assert hoox_log.count() == 0


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_refuses_bad_transport(make_client, db_path, route):
    config = Config(internal_keys=(KEY,), db_path=str(db_path), sink="none", layout="hoox",
                    max_body_bytes=1024)
    app = make_client(config, background=False)
    body = json.dumps({"data": {"source": "x" * 2000}})
    assert_error(app.simulate_post(f"/track/{route}", body=body,
                                   headers={**AUTH, "Content-Type": "application/json"}), 413)
    assert_error(app.simulate_post(f"/track/{route}", body="{}",
                                   headers={**AUTH, "Content-Type": "text/plain"}), 415)
    assert_error(app.simulate_post(f"/track/{route}", json={},
                                   headers={"X-Internal-Auth-Key": "wrong"}), 401)
    assert_error(app.simulate_post(f"/track/{route}", body=b"{not json",
                                   headers={**AUTH, "Content-Type": "application/json"}), 400)


def test_health_answers_the_platforms_shape(hoox, clock):
    result = hoox.simulate_get("/health", headers={"X-Internal-Auth-Key": None})
    assert result.status_code == 200
    body = result.json
    assert body["status"] == "ok" and body["success"] is True
    assert body["result"]["status"] == "ok"
    assert body["result"]["service"] == "analytics-worker"
    assert body["result"]["timestamp"] == "2025-11-24T16:00:00.000Z"  # the clock's now


def test_status_names_the_layout_and_its_dataset(hoox):
    status = hoox.simulate_get("/status").json
    assert (status["layout"], status["dataset"]) == ("hoox", "hoox-analytics")


def test_status_of_the_profile_layout(client):
    status = client.simulate_get("/status").json
    assert (status["layout"], status["dataset"]) == ("profile", "hoox_telemetry")


def test_dataset_follows_the_layout_unless_set():
    assert Config.from_env({"ANALYTICS_LAYOUT": "hoox"}).dataset == "hoox-analytics"
    assert Config.from_env({}).dataset == "hoox_telemetry"
    assert Config.from_env({"ANALYTICS_LAYOUT": "hoox",
                            "ANALYTICS_DATASET": "mine"}).dataset == "mine"
    assert Config().replace(layout="hoox").dataset == "hoox-analytics"


def test_the_readmes_hoox_examples_answer_as_shown(hoox, hoox_log):
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Layouts"):readme.index("## How it works")]
    examples = re.findall(r"curl -s \$URL(/track/[a-z-]+) [^\n]*\\\n +-d '([^\n]*)'\n"
                          r"(# \{[^\n]*\}\n)?", section)
    assert {route for route, _, _ in examples} == {f"/track/{r}" for r in ROUTES} | {
        "/track/batch"}
    for route, body, answer in examples:
        result = hoox.simulate_post(route, json=json.loads(body))
        assert result.status_code == 200, (route, result.text)
        if answer:
            assert result.json == json.loads(answer[2:]), route
    assert hoox_log.count() == len(examples) + 1  # the batch holds two


# -- Idempotency-Key (SPEC §6.1): a retried delivery is a duplicate, not a second event -----

@pytest.mark.parametrize("caller", [c for c in CALLERS if c.index1 is None],
                         ids=[c.name for c in CALLERS if c.index1 is None])
def test_the_idempotency_key_is_the_request_id_of_a_body_without_one(hoox, hoox_log, caller):
    headers = {**AUTH, "Idempotency-Key": "relay-7c0e5b1a"}
    first = hoox.simulate_post(f"/track/{caller.route}", json=caller.body, headers=headers)
    assert first.status_code == 200 and "duplicate" not in first.json, first.text
    again = hoox.simulate_post(f"/track/{caller.route}", json=caller.body, headers=headers)
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert hoox_log.count() == 1
    assert datapoint_row(hoox_log)["index1"] == key_id("relay-7c0e5b1a")


def test_a_request_id_in_the_body_wins_over_the_idempotency_key(hoox, hoox_log):
    headers = {**AUTH, "Idempotency-Key": "relay-key-1"}
    for caller in (CALLERS[0], CALLERS[4]):  # a trade's payload.requestId, indexes[0]
        assert hoox.simulate_post(f"/track/{caller.route}", json=caller.body,
                                  headers=headers).status_code == 200
    ids = [r[0] for r in hoox_log.conn.execute("SELECT request_id FROM events ORDER BY seq")]
    assert ids == [CALLERS[0].index1, CALLERS[4].index1]


def test_a_batch_derives_one_request_id_per_item_from_the_idempotency_key(hoox, hoox_log):
    items = [{"type": c.route, **c.body} for c in CALLERS]
    headers = {**AUTH, "Idempotency-Key": "batch-key"}
    first = hoox.simulate_post("/track/batch", json={"events": items}, headers=headers)
    assert first.json["accepted"] == len(items), first.text
    ids = [r[0] for r in hoox_log.conn.execute("SELECT request_id FROM events ORDER BY seq")]
    assert ids == [c.index1 or key_id("batch-key", i) for i, c in enumerate(CALLERS)]
    again = hoox.simulate_post("/track/batch", json={"events": items}, headers=headers)
    assert (again.json["accepted"], again.json["duplicates"]) == (0, len(items))
    assert hoox_log.count() == len(items)


def test_without_an_idempotency_key_each_delivery_is_a_new_event(hoox, hoox_log):
    body = CALLERS[-1].body
    for _ in range(2):
        assert hoox.simulate_post("/track/kill-switch", json=body).json == {"success": True}
    assert hoox_log.count() == 2


@pytest.mark.parametrize("key", ["", "k" * 65, "has space", "tab\tkey", "clé"])
def test_an_idempotency_key_that_cannot_be_a_request_id_is_refused(hoox, hoox_log, key):
    for route, body in (("kill-switch", CALLERS[-1].body),
                        ("batch", {"events": [{"type": "kill-switch", **CALLERS[-1].body}]})):
        result = hoox.simulate_post(f"/track/{route}", json=body,
                                    headers={**AUTH, "Idempotency-Key": key})
        details = assert_error(result, 400, "Idempotency-Key")["details"]
        assert details[0]["path"] == "header Idempotency-Key"
    assert hoox_log.count() == 0


def test_the_profile_layout_reads_the_idempotency_key_too(client, event_log):
    body = {"worker": "hoox", "endpoint": "/api", "latencyMs": 3, "success": True}
    headers = {**AUTH, "Idempotency-Key": "profile-key"}
    assert client.simulate_post("/track/api-call", json=body, headers=headers).json == {
        "success": True}
    assert client.simulate_post("/track/api-call", json=body, headers=headers).json == {
        "success": True, "duplicate": True}
    assert [r[0] for r in event_log.conn.execute("SELECT request_id FROM events")] == [
        key_id("profile-key")]
