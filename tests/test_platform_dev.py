"""Offline development of the platform (SPEC §6.1): `wrangler dev --env platform` in relay/
beside another `wrangler dev` session, a worker whose ANALYTICS_SERVICE binding names
`analytics-worker`. Two real wrangler processes find each other through wrangler's local dev
registry (a directory of the test's own, WRANGLER_REGISTRY_PATH, so that no other session on
the machine joins in), and every event reaches the service under gunicorn."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import Server, service_env
from hoox_callers import CALLERS
from storage.intake.events import key_id
from storage.log import EventLog
from wrangler_dev import RELAY, WranglerDev

pytestmark = [pytest.mark.gunicorn, pytest.mark.wrangler]

CALLER = RELAY / "test" / "fixtures" / "platform-caller"


@pytest.fixture
def service(tmp_path: Path, db_path: Path) -> Iterator[Server]:
    server = Server(service_env(db_path, ANALYTICS_LAYOUT="hoox"), tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def sessions(service: Server, tmp_path: Path) -> Iterator[tuple[WranglerDev, WranglerDev]]:
    registry = tmp_path / "registry"
    front = WranglerDev(RELAY, ["--env", "platform", "--var",
                                f"ANALYTICS_SERVICE_URL:{service.url}"],
                        registry, tmp_path / "front-state", tmp_path / "front.log")
    caller = WranglerDev(CALLER, [], registry, tmp_path / "caller-state",
                         tmp_path / "caller.log")
    try:
        front.wait_ready()
        caller.wait_ready()
        yield front, caller
    finally:
        caller.stop()
        front.stop()


def test_a_platform_worker_under_wrangler_dev_reaches_analytics_worker_by_name(
        sessions, service, db_path, tmp_path):
    front, caller = sessions
    names = sorted(p.name for p in (tmp_path / "registry").iterdir())
    assert names == ["analytics-worker", "platform-caller"]  # the front's name, as deployed

    with httpx.Client(timeout=30) as http:
        # The binding resolves once both sessions are in the registry.
        deadline = time.monotonic() + 30
        while True:
            first = http.post(f"{caller.url}/track/{CALLERS[0].route}",
                              content=json.dumps(CALLERS[0].body))
            if first.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert first.json() == {"success": True}, first.text
        answers = [first]
        for c in CALLERS[1:]:
            answers.append(http.post(f"{caller.url}/track/{c.route}", content=json.dumps(c.body)))
        assert [a.status_code for a in answers] == [200] * len(CALLERS)
        assert http.get(f"{front.url}/health").json()["result"]["service"] == "analytics-worker"

        log = EventLog(db_path, layout="hoox")
        try:
            rows = log.conn.execute("SELECT request_id, type, blob1, blob2, blob3, blob4, blob5 "
                                    "FROM events ORDER BY seq").fetchall()
            assert [r[1] for r in rows] == [c.route for c in CALLERS]  # each once
            for row, c, a in zip(rows, CALLERS, answers):
                assert tuple(row[2:]) == c.blobs
                key = a.headers["Idempotency-Key"]
                assert row[0] == (c.index1 or key_id(key))
                if c.index1 is None:
                    assert uuid.UUID(key)  # the front's fresh one

            # The local queue works under wrangler dev too: away, queued; back, delivered.
            service.stop()
            queued = http.post(f"{caller.url}/track/housekeeping",
                               content=json.dumps(CALLERS[12].body))
            assert (queued.status_code, queued.json()) == (202, {"success": True,
                                                                 "queued": True})
            service.start()
            key = key_id(queued.headers["Idempotency-Key"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not log.conn.execute(
                    "SELECT 1 FROM events WHERE request_id = ?", (key,)).fetchone():
                time.sleep(0.2)
            assert log.count() == len(CALLERS) + 1
        finally:
            log.close()
