"""Generated bodies for the hoox layout's routes: the compiled validator agrees with
jsonschema, hostile input never causes a 5xx, and only valid events are stored."""

from __future__ import annotations

import json
import math

import falcon.testing
import jsonschema
from conftest import FixedClock
from hoox_callers import CALLERS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from storage.config import Config
from storage.intake.events import Schema, load_schema
from storage.intake.layouts import HOOX
from storage.log import EventLog

edge = st.sampled_from(["", "x", "é" * 200, 0, -1, 0.5, 1.5, 1e15, 1e15 + 2, -1e15 - 2, 2**70,
                        True, False, None, [], {}, "0",
                        # pnlPercent's decimal strings, and strings that only look like one
                        "-12.34", "5.00", "1e5", "NaN", "Infinity", "-", ".5", "1.", " 1"])


def mutate(draw, doc):
    """A copy of `doc` with a value replaced, a key dropped or a key added, somewhere."""
    doc = json.loads(json.dumps(doc))
    parts = [doc] + [v for v in doc.values() if isinstance(v, dict)]
    part = draw(st.sampled_from(parts))
    change = draw(st.sampled_from(["none", "edge", "drop", "add"]))
    if change == "edge" and part:
        part[draw(st.sampled_from(sorted(part)))] = draw(edge)
    elif change == "drop" and part:
        del part[draw(st.sampled_from(sorted(part)))]
    elif change == "add":
        part[draw(st.sampled_from(["extra", "requestId", "indexes", "payload"]))] = draw(edge)
    return doc


@st.composite
def near_bodies(draw):
    caller = draw(st.sampled_from(CALLERS))
    doc = caller.body
    for _ in range(draw(st.integers(0, 3))):
        doc = mutate(draw, doc)
    return caller.route, doc


SCHEMAS = {name: (Schema(load_schema(t.schema)),
                  jsonschema.Draft7Validator(load_schema(t.schema)))
           for name, t in HOOX.types.items()}


@settings(max_examples=800, deadline=None)
@given(case=near_bodies())
def test_compiled_validators_agree_with_jsonschema(case):
    route, doc = case
    fast, exact = SCHEMAS[route]
    assert fast.is_valid(doc) == exact.is_valid(doc)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=near_bodies(), batch=st.booleans())
def test_hostile_bodies_never_cause_a_5xx_and_only_valid_events_are_stored(tmp_path, case,
                                                                          batch):
    route, doc = case
    db_path = tmp_path / "hostile.db"
    client = falcon.testing.TestClient(
        create_app(Config(internal_keys=("k",), db_path=str(db_path), layout="hoox",
                          sink="none"), clock=FixedClock(), background=False),
        headers={"X-Internal-Auth-Key": "k"})
    if batch:
        result = client.simulate_post("/track/batch", json={"events": [{"type": route, **doc}]})
    else:
        result = client.simulate_post(f"/track/{route}", json=doc)
    assert result.status_code in (200, 400), result.text
    assert result.json["success"] is (result.status_code == 200)
    log = EventLog(db_path, layout="hoox")
    try:
        for row in log.events():
            payload = json.loads(row["payload"])
            body = HOOX.types[row["type"]].body(row["request_id"], payload)
            assert SCHEMAS[row["type"]][1].is_valid(body), body
            assert len(row["request_id"].encode("utf-8")) <= 96
        for values in log.conn.execute("SELECT double1, double2, double3 FROM events"):
            assert all(math.isfinite(v) for v in values)
    finally:
        log.close()
