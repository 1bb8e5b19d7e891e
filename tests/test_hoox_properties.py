"""Generated bodies for the hoox layout's routes: the compiled validator agrees with
jsonschema, hostile input never causes a 5xx, and only valid events are stored."""

from __future__ import annotations

import json
import math

from typing import Iterator

import falcon.testing
import jsonschema
import pytest
from conftest import FixedClock, examples, shut_down
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


@pytest.mark.untimed
@settings(max_examples=examples(800), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=near_bodies())
def test_compiled_validators_agree_with_jsonschema(case):
    route, doc = case
    fast, exact = SCHEMAS[route]
    assert fast.is_valid(doc) == exact.is_valid(doc)


@pytest.fixture(scope="module")
def hoox_service(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[falcon.testing.TestClient, EventLog]]:
    """One app and one log for every example (an app a example cost most of the run): each
    example checks the rows it added."""
    db_path = tmp_path_factory.mktemp("hostile") / "hostile.db"
    app = create_app(Config(internal_keys=("k",), db_path=str(db_path), layout="hoox",
                            sink="none"), clock=FixedClock(), background=False)
    log = EventLog(db_path, layout="hoox")
    yield falcon.testing.TestClient(app, headers={"X-Internal-Auth-Key": "k"}), log
    shut_down(app)
    log.close()


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=near_bodies(), batch=st.booleans())
def test_hostile_bodies_never_cause_a_5xx_and_only_valid_events_are_stored(hoox_service, case,
                                                                          batch):
    client, log = hoox_service
    route, doc = case
    before = log.last_seq()
    if batch:
        result = client.simulate_post("/track/batch", json={"events": [{"type": route, **doc}]})
    else:
        result = client.simulate_post(f"/track/{route}", json=doc)
    assert result.status_code in (200, 400), result.text
    assert result.json["success"] is (result.status_code == 200)
    added = log.conn.execute("SELECT request_id, type, payload, double1, double2, double3"
                             " FROM events WHERE seq > ? ORDER BY seq", (before,)).fetchall()
    # A refused body stores nothing; an accepted one its event, unless its id came before.
    assert len(added) <= (1 if result.status_code == 200 else 0), added
    if result.status_code == 200 and not result.json.get("duplicates", result.json.get(
            "duplicate")):
        assert len(added) == 1, (result.json, added)
    for request_id, type_, payload, *doubles in added:
        body = HOOX.types[type_].body(request_id, json.loads(payload))
        assert SCHEMAS[type_][1].is_valid(body), body
        assert len(request_id.encode("utf-8")) <= 96
        assert all(math.isfinite(v) for v in doubles)
