"""The deadline for a request's head and body (SPEC §11, slow clients), under real gunicorn
with ANALYTICS_HEADER_TIMEOUT_MS=1000: trickled headers, a trickled body and a silent
connection are cut off; whole requests, even sent in pieces, and keep-alive connections
are served."""

from __future__ import annotations

import json
import select
import socket
import time

import pytest

from conftest import api_call
from storage.config import Config, ConfigError
from storage.log import EventLog
from test_serving import connect, read_response, send_request

TIMEOUT_S = 1.0
# The deadline plus the one second of slack SPEC §11's tests allow.
CUT_OFF_S = TIMEOUT_S + 1.0


def test_the_deadline_is_ten_seconds_unless_set_to_a_positive_number_of_ms():
    assert Config.from_env({}).header_timeout_ms == 10_000
    assert Config.from_env({"ANALYTICS_HEADER_TIMEOUT_MS": "1500"}).header_timeout_ms == 1500
    for bad in ("0", "-5", "ten"):
        with pytest.raises(ConfigError, match="ANALYTICS_HEADER_TIMEOUT_MS"):
            Config.from_env({"ANALYTICS_HEADER_TIMEOUT_MS": bad})


@pytest.fixture(scope="module")
def server(module_gunicorn_server):
    # One worker: every connection of a test meets the same protocol instance's loop. The
    # tests share it, each with request ids of its own.
    return module_gunicorn_server(workers=1,
                                  ANALYTICS_HEADER_TIMEOUT_MS=str(int(TIMEOUT_S * 1000)))


def stored(server, *ids: str) -> list[bool]:
    """Whether the server's log holds each id."""
    log = EventLog(server.env["ANALYTICS_DB"])
    try:
        return [log.contains(i) for i in ids]
    finally:
        log.close()


def trickle_until_closed(sock: socket.socket, pieces: list[bytes], every_s: float = 0.2,
                         limit_s: float = 6.0) -> tuple[float, bytes]:
    """Sends a piece every `every_s` until the server closes the connection; returns how
    long after the call it closed, and everything the server wrote."""
    start = time.monotonic()
    received = b""
    sent = 0
    while time.monotonic() - start < limit_s:
        readable, _, _ = select.select([sock], [], [], every_s)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic() - start, received
            if not chunk:
                return time.monotonic() - start, received
            received += chunk
            continue
        if sent < len(pieces):
            try:
                sock.sendall(pieces[sent])
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed: the next recv says so
            sent += 1
    pytest.fail(f"the connection was still open after {limit_s} s "
                f"({sent} of {len(pieces)} pieces sent)")


def assert_408(received: bytes) -> None:
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b"connection: close" in head.lower()
    answer = json.loads(body)
    assert answer["success"] is False and "ANALYTICS_HEADER_TIMEOUT_MS" in answer["error"]


def assert_open(sock: socket.socket, request: int) -> None:
    """The server has neither written to the connection nor closed it."""
    readable, _, _ = select.select([sock], [], [], 0)
    if readable:
        try:
            waiting = sock.recv(65536, socket.MSG_PEEK)
        except ConnectionResetError:
            waiting = b"(reset)"
        pytest.fail(f"before request {request}, the server had closed the connection or "
                    f"written to it: {waiting[:200]!r}")


@pytest.mark.gunicorn
def test_trickled_headers_are_cut_off_with_a_408(server):
    sock = connect(server.port)
    try:
        sock.sendall(b"POST /track/api-call HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # A header line every 0.2 s for 10 s, if the server let it.
        closed_after, received = trickle_until_closed(
            sock, [f"X-Slow-{n}: {n}\r\n".encode() for n in range(50)])
    finally:
        sock.close()
    assert closed_after < CUT_OFF_S
    assert_408(received)


@pytest.mark.gunicorn
def test_a_trickled_body_is_cut_off_with_a_408(server):
    body = json.dumps(api_call("trickled-body")).encode()
    sock = connect(server.port)
    try:
        head = (f"POST /track/api-call HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"X-Internal-Auth-Key: test-key\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        sock.sendall(head)
        closed_after, received = trickle_until_closed(
            sock, [body[i:i + 1] for i in range(len(body))])
    finally:
        sock.close()
    assert closed_after < CUT_OFF_S
    assert_408(received)
    assert stored(server, "trickled-body") == [False]  # the half-sent event


@pytest.mark.gunicorn
def test_a_silent_connection_is_cut_off_with_a_408(server):
    sock = connect(server.port)
    try:
        start = time.monotonic()
        closed_after, received = trickle_until_closed(sock, [])
    finally:
        sock.close()
    assert closed_after < CUT_OFF_S
    assert time.monotonic() - start >= TIMEOUT_S * 0.9  # not closed before its time
    assert_408(received)


@pytest.mark.gunicorn
def test_a_whole_request_sent_in_pieces_within_the_time_is_answered(server):
    body = json.dumps(api_call("in-pieces")).encode()
    head = (f"POST /track/api-call HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Internal-Auth-Key: test-key\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    message = head + body
    # Eight pieces 0.1 s apart: 0.7 s in all, inside the 1 s deadline.
    cuts = [len(message) * k // 8 for k in range(9)]
    pieces = [message[a:b] for a, b in zip(cuts, cuts[1:])]
    sock = connect(server.port)
    try:
        for n, piece in enumerate(pieces):
            if n:
                time.sleep(0.1)
            sock.sendall(piece)
        status, _, answer = read_response(sock)
    finally:
        sock.close()
    assert status == 200 and json.loads(answer) == {"success": True}
    assert stored(server, "in-pieces") == [True]


@pytest.mark.gunicorn
def test_keep_alive_connections_get_a_new_deadline_after_each_response(server):
    sock = connect(server.port)
    try:
        for i in range(5):
            # 0.7 s of quiet before each request, 3.5 s in all: past the deadline of the
            # connection's start from the second on, inside that of the last response.
            time.sleep(0.7)
            assert_open(sock, i)
            send_request(sock, "POST", "/track/api-call",
                         json.dumps(api_call(f"kept-{i}")).encode())
            status, headers, answer = read_response(sock)
            assert status == 200 and json.loads(answer) == {"success": True}
            assert headers.get("connection", "").lower() != "close"
        # A request trickled after the last response meets the deadline from that response.
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        closed_after, received = trickle_until_closed(
            sock, [f"X-Slow-{n}: {n}\r\n".encode() for n in range(50)])
        assert closed_after < CUT_OFF_S
        assert_408(received)
    finally:
        sock.close()
    assert stored(server, *(f"kept-{i}" for i in range(5))) == [True] * 5


@pytest.mark.gunicorn
def test_an_idle_keep_alive_connection_is_closed_silently_at_the_deadline(server):
    sock = connect(server.port)
    try:
        send_request(sock, "GET", "/health")
        assert read_response(sock)[0] == 200
        # gunicorn_conf's keep-alive timeout is 5 s: only the deadline closes it this soon.
        closed_after, received = trickle_until_closed(sock, [])
    finally:
        sock.close()
    assert TIMEOUT_S * 0.9 <= closed_after < CUT_OFF_S
    assert received == b""  # no 408 for a request never begun
