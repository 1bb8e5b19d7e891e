"""POST /track/api-call and /track/batch in process: shapes, duplicates, limits, errors."""

from __future__ import annotations

import json

import pytest
from conftest import api_call, assert_error

from storage.config import Config
from storage.intake.datapoint import MAX_BLOB_BYTES


def stored(event_log) -> list[dict]:
    return [dict(r) for r in event_log.events()]


def test_envelope_event_is_stored_with_its_data_point(client, event_log, clock):
    body = api_call("9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", latencyMs=24.5)
    result = client.simulate_post("/track/api-call", json=body)
    assert result.status_code == 200
    assert result.json == {"success": True}
    [row] = stored(event_log)
    assert row["request_id"] == "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
    assert row["type"] == "api-call"
    assert row["received_ms"] == round(clock.now * 1000)
    assert json.loads(row["payload"]) == body["payload"]
    point = event_log.conn.execute(
        "SELECT index1, blob1, blob2, blob3, double1, double2 FROM datapoints").fetchone()
    assert point == (body["requestId"], "trade-worker", "/webhook", "1", 24.5, clock.now)


def test_flat_event_takes_its_request_id_from_indexes(client, event_log):
    body = {"worker": "hoox", "endpoint": "/signal", "latencyMs": 3, "success": False,
            "indexes": ["trace-42"]}
    assert client.simulate_post("/track/api-call", json=body).json == {"success": True}
    [row] = stored(event_log)
    assert row["request_id"] == "trace-42"
    assert json.loads(row["payload"]) == {"worker": "hoox", "endpoint": "/signal",
                                          "latencyMs": 3, "success": False}
    blob3 = event_log.conn.execute("SELECT blob3 FROM datapoints").fetchone()[0]
    assert blob3 == "0"


def test_flat_event_without_indexes_gets_a_fresh_request_id(make_client, config, event_log):
    ids = iter(["generated-1", "generated-2"])
    client = make_client(config, new_id=lambda: next(ids))
    body = {"worker": "hoox", "endpoint": "/signal", "latencyMs": 3, "success": True}
    client.simulate_post("/track/api-call", json=body)
    client.simulate_post("/track/api-call", json=body)
    assert [r["request_id"] for r in stored(event_log)] == ["generated-1", "generated-2"]


def test_duplicate_request_id_is_acknowledged_but_stored_once(client, event_log):
    body = api_call("dup-1")
    assert client.simulate_post("/track/api-call", json=body).json == {"success": True}
    again = client.simulate_post("/track/api-call", json=api_call("dup-1", latencyMs=99))
    assert again.status_code == 200
    assert again.json == {"success": True, "duplicate": True}
    [row] = stored(event_log)
    assert json.loads(row["payload"])["latencyMs"] == 24.5


def test_sequence_numbers_increase(client, event_log):
    # That they are never given twice, even after pruning, is in test_retention.py.
    for i in range(3):
        client.simulate_post("/track/api-call", json=api_call(f"seq-{i}"))
    seqs = [r["seq"] for r in stored(event_log)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_batch_is_committed_whole(client, event_log):
    events = [api_call(f"b-{i}") for i in range(5)] + [api_call("b-0")]
    result = client.simulate_post("/track/batch", json={"events": events})
    assert result.status_code == 200
    assert result.json == {"success": True, "accepted": 5, "duplicates": 1}
    assert event_log.count() == 5


def test_batch_with_one_bad_event_stores_nothing_and_names_each_bad_item(client, event_log):
    events = [api_call("ok-1"), api_call("bad-1", latencyMs=-1), api_call("ok-2"),
              {"worker": "w"}]
    body = assert_error(client.simulate_post("/track/batch", json={"events": events}), 400)
    paths = {d["path"] for d in body["details"]}
    assert "$.events[1].payload.latencyMs" in paths
    assert "$.events[3]" in paths
    assert not any(p.startswith(("$.events[0]", "$.events[2]")) for p in paths)
    assert event_log.count() == 0


def test_batch_of_more_than_1000_events_is_refused(client, event_log):
    events = [api_call(f"many-{i}") for i in range(1001)]
    assert_error(client.simulate_post("/track/batch", json={"events": events}), 400,
                 "1000")
    assert event_log.count() == 0


@pytest.mark.parametrize("body, path", [
    ({"payload": api_call()["payload"]}, "$"),
    (api_call(worker=""), "$.payload.worker"),
    (api_call(latencyMs=-0.5), "$.payload.latencyMs"),
    (api_call(latencyMs="24"), "$.payload.latencyMs"),
    (api_call(success="true"), "$.payload.success"),
    ({**api_call(), "extra": 1}, "$"),
    ({"worker": "w", "endpoint": "/e", "latencyMs": 1, "success": True,
      "indexes": ["a", "b"]}, "$.indexes"),
    ([api_call()], "$"),
])
def test_invalid_event_is_refused_with_the_path_of_the_violation(client, event_log, body, path):
    result = assert_error(client.simulate_post("/track/api-call", json=body), 400)
    assert path in [d["path"] for d in result["details"]]
    assert event_log.count() == 0


def test_every_violation_is_reported(client):
    body = {"requestId": "", "payload": {"worker": "", "latencyMs": -1, "success": 1}}
    result = assert_error(client.simulate_post("/track/api-call", json=body), 400)
    paths = [d["path"] for d in result["details"]]
    for path in ("$.requestId", "$.payload.worker", "$.payload.latencyMs",
                 "$.payload.success", "$.payload"):
        assert path in paths


def test_request_id_over_96_bytes_is_refused(client, event_log):
    ok = client.simulate_post("/track/api-call", json=api_call("é" * 48))  # 96 bytes
    assert ok.status_code == 200
    result = assert_error(client.simulate_post("/track/api-call", json=api_call("a" * 97)),
                          400, "97 bytes")
    assert result["details"][0]["path"] == "$.requestId"
    assert event_log.count() == 1


def test_blobs_over_16000_bytes_together_are_refused(client, event_log):
    # worker + endpoint + "1" (blob3): 16,001 bytes with a multi-byte character in it
    worker = "€" * 3000  # 9,000 bytes
    endpoint = "/" + "x" * (MAX_BLOB_BYTES - 9000 - 1)
    assert client.simulate_post("/track/api-call",
                                json=api_call(worker=worker, endpoint=endpoint[:-1])
                                ).status_code == 200
    assert_error(client.simulate_post("/track/api-call",
                                      json=api_call(worker=worker, endpoint=endpoint)),
                 400, "16001 bytes")
    assert event_log.count() == 1


@pytest.mark.parametrize("raw", [b'{"requestId": "n", "payload": {"worker": "w", '
                                 b'"endpoint": "/e", "latencyMs": NaN, "success": true}}',
                                 b'{"requestId": "i", "payload": {"worker": "w", '
                                 b'"endpoint": "/e", "latencyMs": 1e400, "success": true}}',
                                 b'{"requestId": "h", "payload": {"worker": "w", '
                                 b'"endpoint": "/e", "latencyMs": ' + b"9" * 400 +
                                 b', "success": true}}'])
def test_latency_that_is_not_a_finite_number_is_refused(client, event_log, raw):
    assert_error(client.simulate_post("/track/api-call", body=raw,
                                      content_type="application/json"), 400)
    assert event_log.count() == 0


def test_lone_surrogate_is_refused_not_crashed_on(client, event_log):
    raw = b'{"requestId": "s", "payload": {"worker": "\\ud800", "endpoint": "/e", ' \
          b'"latencyMs": 1, "success": true}}'
    assert_error(client.simulate_post("/track/api-call", body=raw,
                                      content_type="application/json"), 400, "surrogate")
    assert event_log.count() == 0


def test_malformed_json_is_a_400(client):
    assert_error(client.simulate_post("/track/api-call", body=b'{"worker": ',
                                      content_type="application/json"), 400, "Malformed JSON")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_body_that_is_not_json_is_a_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    result = client.simulate_post("/track/api-call", body=json.dumps(api_call()),
                                  headers=headers)
    assert_error(result, 415, "application/json")


def test_json_with_charset_is_accepted(client):
    result = client.simulate_post("/track/api-call", body=json.dumps(api_call()),
                                  content_type="application/json; charset=utf-8")
    assert result.status_code == 200


def test_body_over_the_limit_is_a_413(client, event_log):
    body = json.dumps(api_call(endpoint="/" + "x" * 70_000)).encode()
    padded = json.dumps(api_call())
    exactly = padded.encode() + b" " * (65536 - len(padded))
    assert client.simulate_post("/track/api-call", body=exactly,
                                content_type="application/json").status_code == 200
    assert_error(client.simulate_post("/track/api-call", body=exactly + b" ",
                                      content_type="application/json"), 413, "65536")
    assert_error(client.simulate_post("/track/api-call", body=body,
                                      content_type="application/json"), 413)
    assert event_log.count() == 1


def test_batch_body_limit_is_its_own(make_client, config, event_log):
    client = make_client(config.replace(max_batch_bytes=2000, max_body_bytes=100))
    events = {"events": [api_call(f"l-{i}") for i in range(3)]}  # ~400 bytes
    assert client.simulate_post("/track/batch", json=events).status_code == 200
    events = {"events": [api_call(f"m-{i}") for i in range(20)]}
    assert_error(client.simulate_post("/track/batch", json=events), 413, "2000")
    assert event_log.count() == 3


@pytest.mark.parametrize("headers", [{}, {"X-Internal-Auth-Key": "wrong"},
                                     {"X-Internal-Auth-Key": ""},
                                     {"X-Internal-Auth-Key": "TEST-KEY"},
                                     {"X-Internal-Auth-Key": "test-ke"}])
def test_missing_or_wrong_key_is_a_401(client, event_log, headers):
    result = client.simulate_post("/track/api-call", json=api_call(),
                                  headers={"X-Internal-Auth-Key": None, **headers})
    body = assert_error(result, 401)
    assert body == {"success": False, "error": "Unauthorized"}
    assert event_log.count() == 0


def test_any_configured_key_is_accepted_while_rotating(client, event_log):
    result = client.simulate_post("/track/api-call", json=api_call(),
                                  headers={"X-Internal-Auth-Key": "rotated-key"})
    assert result.status_code == 200
    assert event_log.count() == 1


def test_status_needs_the_key_and_health_does_not(client):
    assert client.simulate_get("/health", headers={"X-Internal-Auth-Key": None}).json == \
        {"status": "ok"}
    assert_error(client.simulate_get("/status", headers={"X-Internal-Auth-Key": None}), 401)


def test_status_reports_the_log(client, db_path):
    for i in range(3):
        client.simulate_post("/track/api-call", json=api_call(f"st-{i}"))
    status = client.simulate_get("/status").json
    assert status["events"] == 3
    assert status["database"] == str(db_path)
    assert status["logBytes"] > 0
    assert status["version"]
    assert status["dataset"] == "hoox_telemetry"


def test_unknown_route_is_a_json_404(client):
    assert_error(client.simulate_get("/nope"), 404, "/nope")


def test_wrong_method_is_a_json_405(client):
    assert_error(client.simulate_get("/track/api-call"), 405, "POST")
    assert_error(client.simulate_delete("/health"), 405)


def test_service_refuses_to_start_without_a_key(db_path):
    from app import ConfigError, create_app
    with pytest.raises(ConfigError, match="INTERNAL_KEY_BINDING"):
        create_app(Config(db_path=str(db_path)))


def test_creating_the_app_opens_nothing(tmp_path):
    from app import create_app
    path = tmp_path / "sub" / "never.db"
    create_app(Config(internal_keys=("k",), db_path=str(path)))
    assert not path.exists() and not path.parent.exists()


def test_importing_the_app_module_opens_nothing(tmp_path):
    import subprocess
    import sys
    code = "import app, os; print(sorted(os.listdir('.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(__import__("conftest").ROOT),
                                         "ANALYTICS_DB": "var/x.db"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
