"""The service under real gunicorn in front of real clients: slow and idle connections do
not hold up others, keep-alive connections are reused, and SIGTERM under load loses no
acknowledged event."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import httpx
import pytest
from aesql_fixtures import bulk_log
from conftest import AUTH, KEY, api_call
from test_gunicorn import post_events

from storage.log import EventLog

pytestmark = pytest.mark.gunicorn


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_request(sock: socket.socket, method: str, path: str, body: bytes = b"") -> None:
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Internal-Auth-Key: {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    sock.sendall(head.encode() + body)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length framed) from `sock`, nothing more."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        rest += chunk
    assert len(rest) == length  # nothing beyond this response was sent
    return status, headers, rest


def test_slow_and_idle_connections_do_not_hold_up_other_clients(gunicorn_server, db_path):
    # One worker, so every slow connection lands on the worker the normal client uses.
    server = gunicorn_server(workers=1)
    idle = []
    for _ in range(32):  # keep-alive connections that made one request and went quiet
        sock = connect(server.port)
        send_request(sock, "GET", "/health")
        assert read_response(sock)[0] == 200
        idle.append(sock)
    trickling = [connect(server.port) for _ in range(32)]
    for sock in trickling:
        sock.sendall(b"POST /track/api-call HTTP/1.1\r\n")
    stop = threading.Event()

    def trickle() -> None:  # a header line every 0.2 s on every slow connection
        n = 0
        while not stop.wait(0.2) and n < 50:
            for sock in trickling:
                sock.sendall(f"X-Slow-{n}: {n}\r\n".encode())
            n += 1

    trickler = threading.Thread(target=trickle)
    trickler.start()
    slowest = 0.0
    try:
        time.sleep(0.5)
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as http:
            for i in range(30):
                start = time.monotonic()
                response = http.post("/track/api-call", json=api_call(f"normal-{i}"))
                slowest = max(slowest, time.monotonic() - start)
                assert response.status_code == 200, response.text
                time.sleep(0.05)
        assert trickler.is_alive(), "the slow clients stopped before the normal one ended"
    finally:
        stop.set()
        trickler.join(15)
        for sock in idle + trickling:
            sock.close()
    assert slowest < 1.0, f"a normal request took {slowest:.2f} s"
    log = EventLog(db_path)
    assert log.count() == 30
    log.close()


def test_a_keep_alive_connection_serves_request_after_request(gunicorn_server, db_path):
    server = gunicorn_server()
    sock = connect(server.port)
    try:
        for i in range(20):
            send_request(sock, "POST", "/track/api-call",
                         json.dumps(api_call(f"kept-{i}")).encode())
            status, headers, body = read_response(sock)
            assert status == 200 and json.loads(body) == {"success": True}
            assert headers.get("connection", "").lower() != "close"
        send_request(sock, "POST", "/track/api-call",
                     json.dumps(api_call("kept-0")).encode())
        status, _, body = read_response(sock)
        assert json.loads(body) == {"success": True, "duplicate": True}
    finally:
        sock.close()
    log = EventLog(db_path)
    assert log.count() == 20
    log.close()


def test_sigterm_under_load_loses_no_acknowledged_event(gunicorn_server, db_path):
    server = gunicorn_server()
    acked: list[str] = []
    errors: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=post_events,
                                args=(server.url, f"t{t}", 100_000, acked, errors, stop, 20))
               for t in range(8)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)  # the master: a graceful stop of every worker
        assert server.proc.wait(15) == 0
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(acked) >= 300
    log = EventLog(db_path)
    ids = [row["request_id"] for row in log.events()]
    log.close()
    assert len(ids) == len(set(ids))
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost"
    # Anything else stored was sent by a client that lost its connection at the stop.
    unacked = {e.split(":")[0] for e in errors}
    assert set(ids) <= set(acked) | unacked


def test_a_slow_local_query_does_not_stall_ingestion_in_the_same_worker(gunicorn_server,
                                                                        db_path):
    bulk_log(db_path, 100_000)
    # The query takes seconds (9 distinct aggregates over 100,000 events): it is meant to
    # run long, not to meet the time limit.
    server = gunicorn_server(workers=1, ANALYTICS_QUERY_TIMEOUT_MS="60000")
    sql = ("SELECT " + ", ".join(f"topK({3 + i // 3})(blob{1 + i % 3}) AS t{i}"
                                 for i in range(9)) + " FROM hoox_telemetry")
    query_done = threading.Event()
    answer: list[httpx.Response] = []

    def slow_query() -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            answer.append(http.post("/query", json={"query": sql, "source": "local"}))
        query_done.set()

    querier = threading.Thread(target=slow_query)
    querier.start()
    time.sleep(0.2)
    during, slowest = 0, 0.0
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as http:
        deadline = time.monotonic() + 30
        i = 0
        while not query_done.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            response = http.post("/track/api-call", json=api_call(f"during-{i}"))
            slowest = max(slowest, time.monotonic() - start)
            assert response.status_code == 200, response.text
            if not query_done.is_set():
                during += 1
            i += 1
            query_done.wait(0.02)  # a steady client: what counts is each answer's delay
    querier.join(30)
    assert answer and answer[0].status_code == 200, answer and answer[0].text
    assert answer[0].json()["results"][0]["t8"]  # the query did its work
    assert during >= 5, f"only {during} events were answered while the query ran"
    assert slowest < 1.0, f"an event took {slowest:.2f} s while the query ran"
