"""A request refused for what its head says (a Content-Length over the limit, no key or a
wrong one) is answered from the head, under real gunicorn: at once, before its body is
sent, without `100 Continue` (which tells a client to send the body), and with the
connection closed, since its body is not wanted. A request that is accepted still gets its
`100 Continue`. Before, such a request was answered only once its body flowed, or cut
off with a 408 at the header deadline."""

from __future__ import annotations

import json
import socket

import pytest

from conftest import KEY, api_call
from test_serving import connect

pytestmark = pytest.mark.gunicorn

HUGE = 100_000_000


@pytest.fixture(scope="module")
def server(module_gunicorn_server):
    # A short header deadline: a request that waited for its body would be cut off by it.
    return module_gunicorn_server(workers=1, ANALYTICS_HEADER_TIMEOUT_MS="3000")


def send_head(sock: socket.socket, path: str, length: int, *, key: str | None = KEY,
              expect: bool = True, extra: str = "") -> None:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n" + (f"X-Internal-Auth-Key: {key}\r\n" if key else "")
            + ("Expect: 100-continue\r\n" if expect else "") + extra + "\r\n")
    sock.sendall(head.encode())


def first_answer(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """The first thing the server writes (an interim 100 as well): status line, headers,
    and the body when one is announced."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return lines[0], headers, rest[:length]


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("expect", [True, False], ids=["expect 100-continue", "plain"])
@pytest.mark.parametrize("path, length, key, status, says", [
    ("/track/batch", HUGE, KEY, "413", "over the limit"),
    ("/track/api-call", HUGE, KEY, "413", "over the limit"),
    ("/track/api-call", 500, None, "401", "Unauthorized"),
    ("/track/api-call", 500, "wrong-key", "401", "Unauthorized"),
    ("/query", HUGE, KEY, "413", "over the limit"),
])
def test_a_request_refused_from_its_head_is_answered_before_its_body(
        server, path, length, key, status, says, expect):
    sock = connect(server.port)
    try:
        send_head(sock, path, length, key=key, expect=expect)
        line, headers, body = first_answer(sock)
        assert line.startswith(f"HTTP/1.1 {status} "), line  # not 100 Continue, not 408
        assert says in json.loads(body)["error"]
        assert headers["connection"] == "close"
        assert closed(sock)
    finally:
        sock.close()


@pytest.mark.parametrize("headers, status", [
    ("", "401"), ("Authorization: Bearer wrong\r\n", "401"),
    (f"Authorization: Bearer {KEY}\r\n", "413")])
def test_the_sql_api_route_refuses_from_the_head_too(server, headers, status):
    sock = connect(server.port)
    try:
        send_head(sock, "/client/v4/accounts/a/analytics_engine/sql", HUGE, key=None,
                  extra=headers)
        line, _, body = first_answer(sock)
        assert line.startswith(f"HTTP/1.1 {status} "), line
        assert json.loads(body)["success"] is False
        assert closed(sock)
    finally:
        sock.close()


def test_an_accepted_request_is_still_asked_for_its_body(server):
    body = json.dumps(api_call("continued-1")).encode()
    sock = connect(server.port)
    try:
        send_head(sock, "/track/api-call", len(body))
        line, _, _ = first_answer(sock)
        assert line == "HTTP/1.1 100 Continue"
        sock.sendall(body)
        line, headers, answer = first_answer(sock)
        assert line.startswith("HTTP/1.1 200 ") and json.loads(answer) == {"success": True}
        assert headers.get("connection", "").lower() != "close"  # kept alive
    finally:
        sock.close()
