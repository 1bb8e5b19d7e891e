"""The HTTP service: the app factory, and the one table that maps storage's exceptions to
HTTP answers (one error shape).

gunicorn runs `app:create_app()`, an ASGI app, with uvicorn's worker: each worker is one
event loop, so slow and idle connections cost a socket, not a worker. Importing this
module opens nothing; each worker opens its own SQLite connections at start-up (or on
first use), after the fork (`storage/services.py`). The resources are in `resources.py`.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
import uuid
from typing import Any, Callable

import falcon
import falcon.asgi
import httpx

import dashboard
import operating
from resources import (SQL_API_PREFIX, Batch, DashboardFile, DataPoints, Health, Query,
                       RequireInternalKey, SqlApi, SqlApiError, Startup, Status, Track)
from storage.config import Config, ConfigError
from storage.intake import layouts
from storage.intake.events import EventParser, InvalidInput, PointParser, compiled
from storage.log import KeyReused, LogError, LogFull, check_layout
from storage.query.aesql import InvalidQuery, ParamsMismatch, QueryTimeout
from storage.query.cloudflare import CloudflareError
from storage.query.lanes import QueryBusy
from storage.services import WRITER_SOCKET_ENV, Clock, Services

log = logging.getLogger("analytics_worker")


# -- errors: one shape, mapped in one place ---------------------------------------------

def error_body(message: str, details: list | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "error": message}
    if details:
        body["details"] = details
    return body


def _serialize_http_error(req: falcon.Request, resp: falcon.Response,
                          exc: falcon.HTTPError) -> None:
    if exc.status_code == 404:
        message = f"No such route: {req.method} {req.path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"Method {req.method} is not allowed on {req.path} (allowed: {allowed})"
    else:
        message = exc.title if exc.description is None else f"{exc.title}: {exc.description}"
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error_body(message)


def _status_error(status: str) -> Callable[..., None]:
    async def handle(req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: Exception,
                     params: dict) -> None:
        resp.status = status
        resp.media = error_body(getattr(exc, "message", None) or str(exc),
                                getattr(exc, "details", None))
    return handle


async def _log_error(req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: LogError,
                     params: dict) -> None:
    resp.status = falcon.HTTP_507 if isinstance(exc, LogFull) else falcon.HTTP_503
    resp.media = error_body(f"{exc}; nothing was stored, retry later")


def _query_error(status: str) -> Callable[..., None]:
    """Errors of /query say which source gave them."""
    async def handle(req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: Exception,
                     params: dict) -> None:
        resp.status = status
        body = error_body(" ".join(str(exc).split()) or type(exc).__name__)
        if getattr(exc, "source", None):
            body["source"] = exc.source  # type: ignore[attr-defined]
        resp.media = body
    return handle


async def _cloudflare_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            exc: CloudflareError, params: dict) -> None:
    resp.status = falcon.code_to_http_status(exc.status)
    if exc.retry_after:
        resp.set_header("Retry-After", exc.retry_after)
    resp.media = {**error_body(exc.message), "source": "cloudflare"}


async def _query_busy(req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: QueryBusy,
                      params: dict) -> None:
    resp.status = falcon.HTTP_503
    resp.set_header("Retry-After", str(exc.retry_after_s))
    resp.media = {**error_body(str(exc)), "source": "local"}


async def _sql_api_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         exc: SqlApiError, params: dict) -> None:
    resp.status = falcon.code_to_http_status(exc.status)
    if exc.retry_after_s is not None:
        resp.set_header("Retry-After", str(exc.retry_after_s))
    if exc.plain:
        resp.content_type = "text/plain; charset=utf-8"
        resp.text = exc.message
    else:
        resp.media = {"success": False, "errors": [{"code": exc.code, "message": exc.message}],
                      "messages": [], "result": None}


# An X-Request-Id a client sends is used in the log as it is: visible ASCII, bounded.
_REQUEST_ID_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))
# Distinct errors a worker remembers having logged the traceback of.
_MAX_SEEN = 1000
# Frames of a traceback logged (the innermost): a RecursionError's runs to thousands.
_TRACEBACK_FRAMES = 40


class Unexpected:
    """The handler of an unexpected error (a fault of the service, not of the request): a
    500 in the one error shape with the request's id, and one line in the log with that
    id. The traceback goes with the first of each distinct error (its type and where it
    was raised) in this process, or every time with ANALYTICS_LOG_TRACEBACKS=always: a
    request that can make the service fail must not grow its log by a traceback each
    time."""

    def __init__(self, new_id: Callable[[], str], always: bool = False):
        self._new_id = new_id
        self._always = always
        self._seen: set[tuple[str, str, int]] = set()

    async def __call__(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                       exc: Exception, params: dict) -> None:
        given = req.get_header("X-Request-Id") or ""
        request_id = given if 1 <= len(given) <= 64 and _REQUEST_ID_CHARS.issuperset(given) \
            else self._new_id()
        what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        line = f"unexpected error on {req.method} {req.path} (request {request_id}): {what}"
        frames = traceback.extract_tb(exc.__traceback__)
        where = (frames[-1].filename, frames[-1].lineno or 0) if frames else ("", 0)
        signature = (type(exc).__qualname__, *where)
        if self._always or signature not in self._seen:
            if len(self._seen) < _MAX_SEEN:
                self._seen.add(signature)
            text = "".join(traceback.format_exception(exc, limit=-_TRACEBACK_FRAMES))
            log.error("%s\n%s", line, text.rstrip())
        else:
            log.error("%s (its traceback was logged at its first time)", line)
        resp.status = falcon.HTTP_500
        resp.set_header("X-Request-Id", request_id)
        resp.media = error_body(f"Internal error (request {request_id}); nothing was stored")


ERRORS: list[tuple[type[Exception], Callable[..., None]]] = [
    (InvalidInput, _status_error(falcon.HTTP_400)),
    (KeyReused, _status_error(falcon.HTTP_422)),
    (LogError, _log_error),
    (InvalidQuery, _query_error(falcon.HTTP_422)),
    (ParamsMismatch, _query_error(falcon.HTTP_400)),
    (QueryTimeout, _query_error(falcon.HTTP_504)),
    (QueryBusy, _query_busy),
    (CloudflareError, _cloudflare_error),
    (SqlApiError, _sql_api_error),
]


# -- the app: a request's body is read only when a resource reads it ---------------------

class App(falcon.asgi.App):
    """Falcon's ASGI app, except that it does not wait for a request's body before
    handling it. Falcon waits for the body's first bytes (the ASGI spec's first event);
    uvicorn answers `Expect: 100-continue` with `100 Continue` at that moment. So a request
    that is refused from its head (no key, a Content-Length over the limit) was answered
    only once the body flowed, or when the header deadline cut it off (408 after 10 s),
    and was told to send its body first. Here the first event is an empty part of the
    body: the refusals from the head are answered at once, the body is asked for (and
    `100 Continue` sent) only when a resource reads it, and a request answered with its
    body unread gets `Connection: close`, so that no one reads on a connection carrying
    a body nobody wants."""

    async def __call__(self, scope: dict, receive: Callable[..., Any],  # type: ignore[override]
                       send: Callable[..., Any]) -> None:
        if scope.get("type") != "http":
            return await super().__call__(scope, receive, send)
        # The ASGI spec allows any iterables here (falcon.testing's are iterators): read
        # once, kept as a list of pairs.
        scope = {**scope, "headers": [tuple(pair) for pair in scope.get("headers", ())]}
        started = False
        body_left = _has_body(scope)

        async def receive_when_read() -> dict:
            nonlocal started, body_left
            if not started:
                started = True
                return {"type": "http.request", "body": b"", "more_body": True}
            event = await receive()
            if event["type"] != "http.request" or not event.get("more_body", False):
                body_left = False
            return event

        async def send_closing_if_unread(message: dict) -> None:
            if message["type"] == "http.response.start" and body_left:
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"connection", b"close")]}
            await send(message)

        await super().__call__(scope, receive_when_read, send_closing_if_unread)


def _has_body(scope: dict) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


# -- the factory -------------------------------------------------------------------------

def create_app(config: Config | None = None, *, clock: Clock = time.time,
               new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
               http: httpx.Client | None = None, background: bool = True,
               writer_socket: str | None = None) -> falcon.asgi.App:
    """`http`: the client for Cloudflare and the relay (default: one per process).
    `background`: run the replay/checkpoint thread in each process (tests that drive
    replay themselves turn it off). `writer_socket`: the service's writer process
    (default: `$ANALYTICS_WRITER_SOCKET`, which gunicorn's master sets when it starts the
    writer; unset, each process commits through a writer thread of its own)."""
    config = Config.from_env() if config is None else config
    config.require_keys()
    if config.sink == "relay" and not config.relay_url:
        raise ConfigError("ANALYTICS_SINK is relay but ANALYTICS_RELAY_URL is not set: set "
                          "it to the relay Worker's /ingest URL")
    # A log of another layout: refuse now, with the log left as it is.
    check_layout(config.db_path, config.layout)
    if writer_socket is None:
        writer_socket = os.environ.get(WRITER_SOCKET_ENV) or None
    services = Services(config, clock, http=http, background=background,
                        writer_socket=writer_socket)
    layout = layouts.get(config.layout)
    parser = EventParser(new_id, layout)

    measure = operating.Measure(services)
    app = App(middleware=[measure, Startup(services), RequireInternalKey(config.internal_keys)])
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(_serialize_http_error)
    app.add_error_handler(Exception, Unexpected(new_id, config.log_tracebacks == "always"))
    for exc_type, handler in ERRORS:
        app.add_error_handler(exc_type, handler)

    for type_ in layout.types:
        app.add_route(f"/track/{type_}", Track(services, parser, type_))
    app.add_route("/track/batch", Batch(services, parser))
    app.add_route("/track/datapoints", DataPoints(services, PointParser(new_id, config.dataset)))
    app.add_route("/query", Query(services, compiled("query")))
    app.add_route(SQL_API_PREFIX + "accounts/{account_id}/analytics_engine/sql",
                  SqlApi(services))
    app.add_route("/health", Health(services))
    app.add_route("/status", Status(services))
    page = DashboardFile(dashboard.load_assets())
    app.add_route("/", page)
    app.add_route("/static/{name}", page)
    operating.add_routes(app, services, measure, config.layout)
    return app


__all__ = ["create_app", "Config", "ConfigError"]
