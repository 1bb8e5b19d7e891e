"""A 2xx means committed, while everything that reads the log reads it: the service under
real gunicorn takes fresh events from several clients while `/status`, `/health`,
`/query` and the SQL API route are polled without pause. Every answer is checked on its
own: a fresh requestId is never answered `duplicate`, and every acknowledged event is in
the log exactly once. Each run is bounded in time and in count."""

from __future__ import annotations

import collections
import json
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import httpx
import pytest

from conftest import AUTH, KEY, api_call
from hoox_callers import CALLERS
from storage.intake.events import key_id

pytestmark = pytest.mark.gunicorn

CLIENTS = 6
POLLERS = 2


class Tally:
    """What the clients were told, request by request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: list[str] = []          # requestIds answered as stored
        self.false_duplicates: list[str] = []  # fresh requestIds answered as duplicates
        self.acked_by_type: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []


def poll(url: str, dataset: str, stop: threading.Event, deadline: float,
         errors: list[str]) -> None:
    """Read the log every way a monitor or the dashboard does, as fast as it answers."""
    sql = f'SELECT count() AS n FROM "{dataset}"'
    query = {"query": sql}
    bearer = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set() and time.monotonic() < deadline:
            for answer in (http.get("/status", headers=AUTH), http.get("/health"),
                           http.post("/query", json=query, headers=AUTH),
                           http.post("/client/v4/accounts/any/analytics_engine/sql",
                                     content=sql, headers=bearer)):
                if answer.status_code != 200:
                    errors.append(f"{answer.request.url.path}: {answer.status_code}")


def run_load(url: str, dataset: str, send: Callable[[httpx.Client, int, Tally], None],
             seconds: float, per_client: int) -> Tally:
    """`send(http, i, tally)` from CLIENTS threads, up to `per_client` times each or for
    `seconds`, while POLLERS threads poll the reading routes."""
    tally = Tally()
    stop = threading.Event()
    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
            for i in range(per_client):
                if time.monotonic() > deadline:
                    return
                send(http, i, tally)

    poll_errors: list[str] = []
    with ThreadPoolExecutor(CLIENTS + POLLERS) as pool:
        pollers = [pool.submit(poll, url, dataset, stop, deadline + 5, poll_errors)
                   for _ in range(POLLERS)]
        clients = [pool.submit(client) for _ in range(CLIENTS)]
        for done in clients:
            done.result()
        stop.set()
        for done in pollers:
            done.result()
    assert poll_errors == []
    return tally


def read_log(db_path: Any, sql: str) -> list[tuple]:
    """The log as it is on disk, read on a connection of its own."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def stored_ids(db_path: Any) -> collections.Counter[str]:
    return collections.Counter(row[0] for row in read_log(
        db_path, "SELECT request_id FROM events"))


def stored_types(db_path: Any) -> collections.Counter[str]:
    return collections.Counter(dict(read_log(
        db_path, "SELECT type, count(*) FROM events GROUP BY type")))


def assert_every_acknowledgement_holds(tally: Tally, stored: collections.Counter[str]
                                       ) -> None:
    missing = [rid for rid in tally.acked if stored[rid] != 1]
    summary = (f"{len(tally.acked)} acknowledged, {len(missing)} of them not stored exactly "
               f"once, {len(tally.false_duplicates)} fresh ids answered duplicate, "
               f"{len(tally.errors)} errors")
    assert tally.errors == [], summary
    assert tally.false_duplicates == [], summary
    assert tally.acked, "the load sent nothing"
    assert missing == [], summary


def test_single_posts_are_committed_and_fresh_ids_never_duplicates_while_readers_poll(
        gunicorn_server, db_path):
    server = gunicorn_server()

    refused: list[str] = []

    def send(http: httpx.Client, i: int, tally: Tally) -> None:
        request_id = str(uuid.uuid4())
        if i % 10 == 9:  # now and then a bad body: a worker loads jsonschema at its first
            answer = http.post("/track/api-call", json=api_call(request_id, latencyMs="slow"))
            with tally.lock:
                paths = [d["path"] for d in answer.json().get("details", [])]
                if answer.status_code != 400 or paths != ["$.payload.latencyMs"]:
                    tally.errors.append(f"bad body: {answer.status_code} {answer.text}")
                refused.append(request_id)
            return
        answer = http.post("/track/api-call", json=api_call(request_id))
        with tally.lock:
            if answer.status_code != 200:
                tally.errors.append(f"{answer.status_code} {answer.text}")
            elif answer.json().get("duplicate"):
                tally.false_duplicates.append(request_id)
            else:
                tally.acked.append(request_id)

    tally = run_load(server.url, "hoox_telemetry", send, seconds=5, per_client=20_000)
    stored = stored_ids(db_path)
    assert_every_acknowledgement_holds(tally, stored)
    assert refused and not any(stored[rid] for rid in refused)


def test_batches_are_committed_whole_and_never_duplicates_while_readers_poll(
        gunicorn_server, db_path):
    server = gunicorn_server()

    def send(http: httpx.Client, i: int, tally: Tally) -> None:
        ids = [str(uuid.uuid4()) for _ in range(20)]
        answer = http.post("/track/batch", json={"events": [
            {"type": "api-call", **api_call(rid)} for rid in ids]})
        with tally.lock:
            if answer.status_code != 200:
                tally.errors.append(f"{answer.status_code} {answer.text}")
                return
            body = answer.json()
            if body["duplicates"] or body["accepted"] != len(ids):
                tally.false_duplicates.extend(ids)
            else:
                tally.acked.extend(ids)

    tally = run_load(server.url, "hoox_telemetry", send, seconds=3, per_client=2_000)
    assert_every_acknowledgement_holds(tally, stored_ids(db_path))


def fresh(body: dict[str, Any], old_id: str, new_id: str) -> dict[str, Any]:
    """The caller's body with its requestId replaced by a fresh one."""
    return json.loads(json.dumps(body).replace(json.dumps(old_id), json.dumps(new_id)))


def test_the_platforms_routes_are_committed_while_readers_poll(gunicorn_server, db_path):
    """Every hoox route: bodies that carry a requestId are checked by id, the others
    (which get a fresh UUID) by count per type — as many stored as acknowledged."""
    server = gunicorn_server(ANALYTICS_LAYOUT="hoox")
    callers = [c for c in CALLERS if not c.ignored]

    def send(http: httpx.Client, i: int, tally: Tally) -> None:
        caller = callers[i % len(callers)]
        request_id = str(uuid.uuid4())
        body = fresh(caller.body, caller.index1, request_id) if caller.index1 else caller.body
        answer = http.post(f"/track/{caller.route}", json=body)
        with tally.lock:
            if answer.status_code != 200:
                tally.errors.append(f"{caller.route}: {answer.status_code} {answer.text}")
            elif answer.json().get("duplicate"):
                tally.false_duplicates.append(request_id)
            else:
                tally.acked_by_type[caller.route] += 1
                if caller.index1:
                    tally.acked.append(request_id)

    tally = run_load(server.url, "hoox-analytics", send, seconds=3, per_client=5_000)
    assert_every_acknowledgement_holds(tally, stored_ids(db_path))
    assert stored_types(db_path) == tally.acked_by_type


def test_events_and_raw_points_mixed_are_committed_once_while_readers_poll(
        gunicorn_server, db_path):
    """Raw data points share the writer and its group commits with the events: both kinds
    at once, each acknowledgement checked against its own table."""
    server = gunicorn_server()
    points_acked: list[str] = []

    def send(http: httpx.Client, i: int, tally: Tally) -> None:
        key = str(uuid.uuid4())
        if i % 2:
            answer = http.post("/track/api-call", json=api_call(key))
            with tally.lock:
                if answer.status_code != 200:
                    tally.errors.append(f"api-call {answer.status_code} {answer.text}")
                elif answer.json().get("duplicate"):
                    tally.false_duplicates.append(key)
                else:
                    tally.acked.append(key)
            return
        body = {"dataset": "my_events", "points": [
            {"blobs": ["/home", f"c{i}"], "doubles": [i], "indexes": [f"u{i % 7}"]}]}
        answer = http.post("/track/datapoints", json=body, headers={"Idempotency-Key": key})
        with tally.lock:
            if answer.status_code != 200:
                tally.errors.append(f"datapoints {answer.status_code} {answer.text}")
            elif answer.json() != {"success": True, "accepted": 1, "duplicates": 0}:
                tally.false_duplicates.append(key)
            else:
                points_acked.append(key_id(key, 0))

    tally = run_load(server.url, "hoox_telemetry", send, seconds=4, per_client=20_000)
    assert_every_acknowledgement_holds(tally, stored_ids(db_path))
    stored_points = collections.Counter(row[0] for row in read_log(
        db_path, "SELECT request_id FROM points WHERE dataset = 'my_events'"))
    assert points_acked, "no point was sent"
    assert [rid for rid in points_acked if stored_points[rid] != 1] == []
    assert sum(stored_points.values()) == len(points_acked)
