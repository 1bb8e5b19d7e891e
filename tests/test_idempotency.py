"""An Idempotency-Key sent again (SPEC §6.1, after the IETF idempotency-key draft): the
same body is answered as before, a duplicate; another body is a 422 with nothing stored.
Ids made from a key never meet a body's own ids. A log written before (the fixture was
written by the service at 5f7b4c3, with keyed requests of each route) still opens, and
its keys still make duplicates."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from conftest import AUTH, ROOT, assert_error
from storage.config import Config
from storage.intake.events import key_id
from storage.log import EventLog

FORMER_LOG = ROOT / "tests" / "fixtures" / "keyed-log-5f7b4c3.db"


def flat(endpoint: str = "/a", latency: float = 1.5) -> dict[str, Any]:
    return {"worker": "w", "endpoint": endpoint, "latencyMs": latency, "success": True}


def post(client: falcon.testing.TestClient, path: str, body: Any,
         key: str | None = None) -> falcon.testing.Result:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return client.simulate_post(path, json=body, headers=headers)


def ids(db_path: Path, table: str = "events") -> list[str]:
    log = EventLog(db_path)
    try:
        return [r[0] for r in log.conn.execute(f"SELECT request_id FROM {table} ORDER BY seq")]
    finally:
        log.close()


def points(*blobs: str) -> dict[str, Any]:
    return {"dataset": "my_events", "points": [{"blobs": [b], "doubles": [1.0]} for b in blobs]}


@pytest.mark.parametrize("path, body, answer", [
    ("/track/api-call", flat(), {"success": True, "duplicate": True}),
    ("/track/batch", {"events": [flat("/x"), flat("/y")]},
     {"success": True, "accepted": 0, "duplicates": 2}),
    ("/track/datapoints", points("a", "b"), {"success": True, "accepted": 0, "duplicates": 2}),
])
def test_a_key_sent_again_with_the_same_body_is_answered_as_a_duplicate(
        client, db_path, path, body, answer):
    first = post(client, path, body, "relay-retry-1")
    assert first.status_code == 200 and "duplicate" not in first.json \
        and first.json.get("duplicates", 0) == 0, first.text
    for _ in range(2):  # the relay's queue resends the same body
        assert post(client, path, body, "relay-retry-1").json == answer
    table = "points" if path.endswith("datapoints") else "events"
    items = len(body.get("events", body.get("points", [0])))
    assert ids(db_path, table) == [key_id("relay-retry-1", i) for i in range(items)]


@pytest.mark.parametrize("path, first, other", [
    ("/track/api-call", flat("/a"), flat("/b")),
    ("/track/api-call", flat(latency=1.5), flat(latency=2.5)),
    ("/track/batch", {"events": [flat("/x"), flat("/y")]},
     {"events": [flat("/x"), flat("/z")]}),
    ("/track/batch", {"events": [flat("/x"), flat("/y")]},
     {"events": [flat("/x"), flat("/y"), flat("/z")]}),
    ("/track/batch", {"events": [flat("/x"), flat("/y")]}, {"events": [flat("/x")]}),
    ("/track/datapoints", points("a", "b"), points("a", "c")),
    ("/track/datapoints", points("a", "b"), points("a", "b", "c")),
    ("/track/datapoints", points("a", "b"), points("a")),
], ids=["endpoint", "latency", "batch item", "batch longer", "batch shorter", "point",
        "points longer", "points shorter"])
def test_a_key_sent_again_with_another_body_is_a_422_and_nothing_is_stored(
        client, db_path, path, first, other):
    assert post(client, path, first, "order-9").status_code == 200
    table = "points" if path.endswith("datapoints") else "events"
    before = ids(db_path, table)
    body = assert_error(post(client, path, other, "order-9"), 422, "Idempotency-Key",
                        "another body")
    assert "order-9" in body["error"]
    assert ids(db_path, table) == before
    # the first body is still answered as before
    assert post(client, path, first, "order-9").status_code == 200
    assert ids(db_path, table) == before


def test_the_same_key_on_another_route_is_another_body(client, db_path):
    assert post(client, "/track/api-call", flat("/a"), "k-1").status_code == 200
    assert_error(post(client, "/track/batch", {"events": [flat("/b")]}, "k-1"), 422)
    assert len(ids(db_path)) == 1


def test_an_event_whose_own_id_looks_like_a_keys_is_its_own_event(client, db_path):
    """A body's requestId `order-9:0` or `order-9` is not the event a batch or an event
    sent under the key order-9 made (before, each was dropped as its duplicate)."""
    assert post(client, "/track/batch", {"events": [flat("/x"), flat("/y")]},
                "order-9").json["accepted"] == 2
    assert post(client, "/track/api-call", flat("/single"), "order-8").json == {"success": True}
    for own in ("order-9:0", "order-9:1", "order-8"):
        answer = post(client, "/track/api-call", {"requestId": own, "payload": flat("/own")})
        assert answer.json == {"success": True}, own
    assert sorted(ids(db_path)) == sorted([key_id("order-9", 0), key_id("order-9", 1),
                                           key_id("order-8"), "order-9:0", "order-9:1",
                                           "order-8"])


def test_a_batch_item_with_its_own_id_keeps_it_under_a_key(client, db_path):
    body = {"events": [{"requestId": "own-1", "payload": flat("/own")}, flat("/made")]}
    assert post(client, "/track/batch", body, "b-3").json["accepted"] == 2
    assert ids(db_path) == ["own-1", key_id("b-3", 1)]
    assert post(client, "/track/batch", body, "b-3").json["duplicates"] == 2


@pytest.fixture
def former_log(tmp_path: Path) -> Path:
    path = tmp_path / "former.db"
    shutil.copy(FORMER_LOG, path)
    return path


@pytest.fixture
def former_client(make_client, former_log: Path) -> falcon.testing.TestClient:
    return make_client(Config(internal_keys=("test-key",), db_path=str(former_log),
                              sink="none"))


def test_a_log_written_before_opens_and_its_keys_still_make_duplicates(former_client,
                                                                       former_log):
    events_before = ids(former_log)
    points_before = ids(former_log, "points")
    assert sorted(events_before) == ["batch-7:0", "batch-7:1", "env-1", "order-9"]
    assert points_before == ["pts-3:0", "pts-3:1"]
    # the same requests again, as the relay's queue would resend them
    assert post(former_client, "/track/api-call", flat("/one"), "order-9").json == {
        "success": True, "duplicate": True}
    assert post(former_client, "/track/batch", {"events": [flat("/b0"), flat("/b1")]},
                "batch-7").json == {"success": True, "accepted": 0, "duplicates": 2}
    pts = {"dataset": "my_events", "points": [{"blobs": ["p0"]},
                                              {"blobs": ["p1"], "doubles": [2.5]}]}
    assert post(former_client, "/track/datapoints", pts, "pts-3").json == {
        "success": True, "accepted": 0, "duplicates": 2}
    assert post(former_client, "/track/api-call",
                {"requestId": "env-1", "payload": flat("/env")}).json["duplicate"] is True
    # the same keys with other bodies are refused, and nothing was added
    assert_error(post(former_client, "/track/api-call", flat("/two"), "order-9"), 422)
    assert_error(post(former_client, "/track/batch", {"events": [flat("/b0")]}, "batch-7"), 422)
    assert_error(post(former_client, "/track/datapoints", points("q"), "pts-3"), 422)
    assert ids(former_log) == events_before
    assert ids(former_log, "points") == points_before
    # a new key on the old log makes ids of the new kind, which no later body id meets
    assert post(former_client, "/track/api-call", flat("/new"), "order-10").json == {
        "success": True}
    assert post(former_client, "/track/api-call",
                {"requestId": "order-10", "payload": flat("/body")}).json == {"success": True}
    assert ids(former_log)[-2:] == [key_id("order-10"), "order-10"]
