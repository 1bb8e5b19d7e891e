"""Generated bodies: hostile input never causes a 5xx, and nothing invalid is ever stored.
Also: the fast validator accepts and rejects exactly what jsonschema does."""

from __future__ import annotations

import json
import math
from pathlib import Path

import falcon.testing
import jsonschema
import pytest
from conftest import FixedClock, examples, shut_down
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from storage.config import Config
from storage.intake.events import Schema, is_plain_envelope, load_schema
from storage.log import EventLog

pytestmark = pytest.mark.long

json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text())
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)

field_values = {
    "worker": st.text(max_size=20) | json_values,
    "endpoint": st.text(max_size=20) | json_values,
    "latencyMs": st.floats(allow_nan=False, allow_infinity=False) | st.integers()
    | st.booleans() | json_values,
    "success": st.booleans() | json_values,
}


@st.composite
def payloads(draw):
    keys = draw(st.sets(st.sampled_from(sorted(field_values)), min_size=2))
    payload = {k: draw(field_values[k]) for k in keys}
    if draw(st.booleans()):
        payload.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return payload


@st.composite
def event_bodies(draw):
    payload = draw(payloads())
    request_id = draw(st.text(max_size=100) | json_values)
    shape = draw(st.sampled_from(["envelope", "flat", "flat-indexes"]))
    if shape == "envelope":
        body = {"requestId": request_id, "payload": payload}
        if draw(st.booleans()):
            del body["requestId"]
        return body
    if shape == "flat-indexes":
        return {**payload, "indexes": draw(st.lists(st.text(max_size=100) | json_values,
                                                    max_size=2))}
    return payload


# Values at the edges of what the envelope allows, for near-valid bodies.
edge_values = st.sampled_from(["", "x", 0, -1, -0.0, 0.5, -0.5, 2**70, True, False, None,
                               [], {}, "0"])


def mostly(valid: st.SearchStrategy) -> st.SearchStrategy:
    """A valid value three times in four, else an edge value."""
    return st.one_of(valid, valid, valid, edge_values)


@st.composite
def near_envelopes(draw):
    """Envelopes that are valid or a step or two from it: edge values, a key missing or
    one too many, in the body or in the payload."""
    name = st.text(min_size=1, max_size=3)
    payload = {"worker": draw(mostly(name)), "endpoint": draw(mostly(name)),
               "latencyMs": draw(mostly(st.floats(0, 1e9) | st.integers(0))),
               "success": draw(mostly(st.booleans()))}
    body = {"requestId": draw(mostly(name)), "payload": payload}
    for part in (body, payload):
        change = draw(st.sampled_from(["none"] * 4 + ["drop", "add"]))
        if change == "drop":
            del part[draw(st.sampled_from(sorted(part)))]
        elif change == "add":
            part[draw(st.sampled_from(["indexes", "extra", "worker"]))] = "x"
    return body


API_CALL = Schema(load_schema("api-call"))
EXACT = jsonschema.Draft7Validator(load_schema("api-call"))
BATCH = Schema(load_schema("batch"))
BATCH_EXACT = jsonschema.Draft7Validator(load_schema("batch"))


@pytest.mark.untimed
@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=event_bodies() | json_values)
def test_fast_validator_agrees_with_jsonschema(doc):
    assert API_CALL.is_valid(doc) == EXACT.is_valid(doc)


@pytest.mark.untimed
@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=near_envelopes() | event_bodies() | json_values)
def test_plain_envelope_check_is_jsonschema_on_envelopes(doc):
    # The hot path's check: on envelope-shaped documents it says exactly what jsonschema
    # says; everything else it leaves to the schema.
    is_envelope = isinstance(doc, dict) and "payload" in doc
    assert is_plain_envelope(doc) == (is_envelope and EXACT.is_valid(doc))


def test_plain_envelope_check_accepts_the_common_body():
    assert is_plain_envelope({"requestId": "r", "payload": {
        "worker": "w", "endpoint": "/e", "latencyMs": 0, "success": False}})


@pytest.mark.untimed
@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.dictionaries(st.sampled_from(["events", "x"]),
                           st.lists(st.just({}), max_size=3) | json_values, max_size=2))
def test_fast_batch_validator_agrees_with_jsonschema(doc):
    assert BATCH.is_valid(doc) == BATCH_EXACT.is_valid(doc)


def assert_only_valid_events_stored(db_path: Path, after: int = 0) -> int:
    """The number of events in the log; those after the first `after` are checked."""
    log = EventLog(db_path)
    try:
        rows = list(log.events())
        for row in rows[after:]:
            stored = dict(row)  # an example that stored it failed; later ones fail too
            payload = json.loads(row["payload"])
            assert EXACT.is_valid({"requestId": row["request_id"], "payload": payload}), stored
            # Analytics Engine's limits, checked here independently of the product's code.
            assert math.isfinite(float(payload["latencyMs"])), stored
            assert len(row["request_id"].encode("utf-8")) <= 96, stored
            blobs = (payload["worker"], payload["endpoint"], "1")
            assert sum(len(b.encode("utf-8")) for b in blobs) <= 16_000, stored
        return len(rows)
    finally:
        log.close()


# Bodies the schema accepts, with any Unicode in their names and request ids: most are
# stored; a repeat of an earlier example's id is taken as a repeat, and an id over
# Analytics Engine's 96 bytes is refused (ids of 24 to 40 characters of 3 or 4 bytes each
# fall on either side of it). Half are flat bodies with no id, whose id the service makes:
# each of those is a new event.
names = st.text(min_size=1, max_size=40)
request_ids = st.text(min_size=1, max_size=40) | st.text(
    st.characters(min_codepoint=0x800), min_size=24, max_size=40)
valid_payloads = st.fixed_dictionaries({
    "worker": names, "endpoint": names,
    "latencyMs": st.floats(0, 1e12) | st.integers(0, 2**53), "success": st.booleans()})


@st.composite
def valid_bodies(draw):
    payload = draw(valid_payloads)
    shape = draw(st.sampled_from(["envelope", "flat", "flat", "flat-indexes"]))
    if shape == "envelope":
        return {"requestId": draw(request_ids), "payload": payload}
    if shape == "flat-indexes":
        return {**payload, "indexes": [draw(request_ids)]}
    return payload  # its request id is made by the service


valid_raw = valid_bodies().map(lambda b: json.dumps(b).encode())

invalid_raw = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    event_bodies().map(lambda b: json.dumps(b).encode()),
    # numbers JSON allows but floats cannot hold, and escapes Python keeps as surrogates
    st.sampled_from([b'{"worker":"w","endpoint":"/e","latencyMs":1e999,"success":true}',
                     b'{"worker":"w","endpoint":"/e","latencyMs":NaN,"success":true}',
                     b'{"worker":"w","endpoint":"/e","latencyMs":-Infinity,"success":true}',
                     b'{"worker":"w","endpoint":"/e","latencyMs":-0.0,"success":true}',
                     b'{"worker":"\\udfff","endpoint":"/e","latencyMs":1,"success":true}',
                     b'{"worker":"w","endpoint":"/e","latencyMs":1,"success":true,'
                     b'"indexes":["\\ud83d"]}',
                     b'[' * 5000 + b']' * 5000,
                     b'{"events": ' + b'[' * 3000 + b']' * 3000 + b'}',
                     b'\xef\xbb\xbf{"worker":"w","endpoint":"/e","latencyMs":1,"success":true}',
                     b'\x00\x00\x00{']),
)
# Half the bodies are valid, so that "nothing invalid is stored" is said of a log that
# holds something.
hostile_raw = st.booleans().flatmap(lambda valid: valid_raw if valid else invalid_raw)


def test_hostile_bodies_never_cause_a_5xx_or_store_an_invalid_event(tmp_path):
    db_path = tmp_path / "hostile.db"
    answers: list[int] = []
    stored = 0  # the events in the log the examples share, each checked once

    @settings(max_examples=examples(400), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(raw=hostile_raw, route=st.sampled_from(["/track/api-call", "/track/batch"]),
           wrap=st.booleans())
    def post(raw, route, wrap):
        nonlocal stored
        if route == "/track/batch" and wrap:
            raw = b'{"events": [' + raw + b']}'
        result = client.simulate_post(route, body=raw, content_type="application/json")
        assert result.status_code < 500, result.text
        assert result.status_code in (200, 400, 413), result.text
        answers.append(result.status_code)
        body = result.json
        assert body["success"] is (result.status_code == 200)
        if result.status_code != 200:
            assert isinstance(body["error"], str) and body["error"]
        stored = assert_only_valid_events_stored(db_path, after=stored)

    # One app for every example (an app an example was most of the run's time); sink none:
    # the events stored are this test's to check, not to print.
    app = create_app(Config(internal_keys=("k",), db_path=str(db_path), sink="none"),
                     clock=FixedClock(), background=False)
    client = falcon.testing.TestClient(app, headers={"X-Internal-Auth-Key": "k"})
    try:
        post()
    finally:
        shut_down(app)
    # the log the examples shared holds a good number of events (one for every eight
    # examples at least), every one valid
    assert assert_only_valid_events_stored(db_path) == stored
    assert stored >= len(answers) // 8, (stored, answers.count(200), len(answers))
