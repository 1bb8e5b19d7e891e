"""The gunicorn worker: uvicorn's (uvloop, httptools) with a deadline for each request's
head and body (SPEC §11, slow clients), and a stop that holds even mid-query.

uvicorn puts no time limit on reading a request, and any byte cancels its keep-alive
timer, so a client that trickles its headers or its body, or connects and says nothing,
would hold a socket for as long as it likes. ASGI middleware cannot help: the app is
called only once the head has been parsed. The deadline therefore lives in the HTTP
protocol: armed when the connection is made and after each response, disarmed when a
request's body is complete.

On SIGTERM uvicorn stops accepting and waits for the requests it has, for as long as they
take: a worker answering a long query lived on until the query ended, and gunicorn's
master kills a worker only when the master itself stops. So this worker ends within
gunicorn's graceful timeout: its local queries are stopped two seconds before it (each
answered 503, to be retried elsewhere), and uvicorn cancels whatever is left a second
before it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from types import FrameType
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from storage.config import Config
from storage.services import stop_all


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection that has not delivered a whole
    request within `header_timeout` seconds of connecting or of the previous response."""

    header_timeout: float = Config.header_timeout_ms / 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        # Bytes of a request have arrived and its body is not complete yet.
        self._reading = False
        # No request has begun on this connection.
        self._fresh = True
        # Requests read whole and not answered yet (more than one when pipelined).
        self._unanswered = 0

    @classmethod
    def with_timeout(cls, seconds: float) -> type[HeaderDeadlineProtocol]:
        """This protocol with another deadline: uvicorn makes each connection's protocol
        from a class alone."""
        return type(cls.__name__, (cls,), {"header_timeout": seconds})

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading = True
        self._fresh = False

    def on_message_complete(self) -> None:
        # A request whose answer went out before its body was read (an early refusal)
        # leaves the connection waiting for the next one: it gets a deadline of its own.
        answered_early = self.cycle is not None and self.cycle.response_complete
        super().on_message_complete()
        self._reading = False
        if answered_early:
            self._arm()
        else:
            self._unanswered += 1
            self._disarm()

    def on_response_complete(self) -> None:
        # Only a request read whole has an answer that was not sent early.
        if self._unanswered:
            self._unanswered -= 1
        super().on_response_complete()
        if not self.transport.is_closing() and not self._unanswered:
            self._arm()

    def handle_websocket_upgrade(self) -> None:
        # A websocket keeps its own timeouts; this one is for HTTP requests.
        self._disarm()
        super().handle_websocket_upgrade()

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answering = (cycle is not None and cycle.response_started
                     and not cycle.response_complete)
        # A 408 answers a request begun (or a connection that never sent one); an idle
        # keep-alive connection is closed silently, as uvicorn's keep-alive timer does, so
        # that no client takes a 408 for the answer to a request crossing it on the wire.
        if (self._reading or self._fresh) and not answering:
            self._send_408()
        self.transport.close()

    def _send_408(self) -> None:
        body = json.dumps({
            "success": False,
            "error": f"the request was not received within {self.header_timeout * 1000:.0f} "
                     "ms (ANALYTICS_HEADER_TIMEOUT_MS): send its head and body without "
                     "pausing",
        }).encode()
        content = [STATUS_LINE[408]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n", body]
        self.transport.write(b"".join(content))


class StoppingServer(Server):
    """uvicorn's server, which on a signal to stop also tells the app's queries when to
    end: `grace_s` from now."""

    def __init__(self, *args: Any, grace_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._grace_s = grace_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            stop_all(time.monotonic() + self._grace_s)
        super().handle_exit(sig, frame)


class HeaderDeadlineWorker(UvicornWorker):
    """uvicorn's gunicorn worker (uvloop, httptools) serving through
    HeaderDeadlineProtocol, with the deadline set by ANALYTICS_HEADER_TIMEOUT_MS, that ends
    within gunicorn's graceful timeout after SIGTERM whatever its requests are doing."""

    CONFIG_KWARGS: dict[str, Any] = {"loop": "uvloop", "http": HeaderDeadlineProtocol}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # gunicorn_conf's on_starting has already refused a bad value with its message.
        seconds = Config.from_env().header_timeout_ms / 1000
        self.config.http = HeaderDeadlineProtocol.with_timeout(seconds)
        graceful = float(self.cfg.graceful_timeout)
        # A second before gunicorn's timeout uvicorn cancels what is left; its queries are
        # stopped a second before that, so that each is answered.
        self.config.timeout_graceful_shutdown = max(graceful - 1, 0.5)
        self._query_grace_s = max(graceful - 2, 0.25)

    async def _serve(self) -> None:
        # UvicornWorker._serve, with the server above
        self.config.app = self.wsgi
        server = StoppingServer(config=self.config, grace_s=self._query_grace_s)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
