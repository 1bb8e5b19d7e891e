"""The HTTP service: Falcon resources over the storage layer, and one error mapping.

gunicorn runs `app:create_app()`. Importing this module opens nothing; each worker opens
its own SQLite connections on first use, after the fork.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable

import falcon

from storage.config import VERSION, Config, ConfigError
from storage.events import EventParser, InvalidInput, parse_json
from storage.log import EventLog, LogError, LogFull

log = logging.getLogger("analytics_worker")

Clock = Callable[[], float]


class Services:
    """What one worker process needs, opened lazily so that nothing is shared across a
    fork: after a fork (new pid) everything is opened again."""

    def __init__(self, config: Config, clock: Clock):
        self.config = config
        self.clock = clock
        self._pid = 0
        self._lock = threading.Lock()
        self._log: EventLog | None = None

    @property
    def log(self) -> EventLog:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._log = EventLog(self.config.db_path, sync=self.config.sync)
                    self._pid = os.getpid()
        assert self._log is not None
        return self._log

    def close(self) -> None:
        if self._log is not None and self._pid == os.getpid():
            self._log.close()
        self._log, self._pid = None, 0


# -- middleware and hooks ----------------------------------------------------------------

class RequireInternalKey:
    """Every route but GET /health needs one of the configured keys."""

    def __init__(self, keys: tuple[str, ...]):
        self._keys = [k.encode() for k in keys]

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path == "/health":
            return
        given = (req.get_header("X-Internal-Auth-Key") or "").encode("utf-8", "surrogatepass")
        # Compare with every key, so the time taken does not tell which one nearly matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise falcon.HTTPUnauthorized(title="Unauthorized")


def read_json(req: falcon.Request, limit: int) -> Any:
    """The body as JSON, refusing non-JSON and anything over `limit` bytes unread."""
    if not (req.content_type or "").split(";")[0].strip().lower().endswith(("/json", "+json")):
        raise falcon.HTTPUnsupportedMediaType(
            title="Content-Type must be application/json")
    if req.content_length is not None and req.content_length > limit:
        raise falcon.HTTPContentTooLarge(title=f"Body is over the limit of {limit} bytes")
    body = req.bounded_stream.read(limit + 1)
    if len(body) > limit:
        raise falcon.HTTPContentTooLarge(title=f"Body is over the limit of {limit} bytes")
    return parse_json(body)


def now_ms(clock: Clock) -> int:
    return int(round(clock() * 1000))


# -- resources ---------------------------------------------------------------------------

class ApiCall:
    def __init__(self, services: Services, parser: EventParser):
        self._services = services
        self._parser = parser

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = read_json(req, self._services.config.max_body_bytes)
        event = self._parser.one(doc, now_ms(self._services.clock))
        result = self._services.log.append([event])
        resp.media = {"success": True, "duplicate": True} if result.duplicates else {"success": True}


class Batch:
    def __init__(self, services: Services, parser: EventParser):
        self._services = services
        self._parser = parser

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = read_json(req, self._services.config.max_batch_bytes)
        events = self._parser.many(doc, now_ms(self._services.clock))
        result = self._services.log.append(events)
        resp.media = {"success": True, "accepted": result.accepted,
                      "duplicates": result.duplicates}


class Health:
    def __init__(self, services: Services):
        self._services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            writable = self._services.log.writable()
        except LogError:
            writable = False
        if writable:
            resp.media = {"status": "ok"}
        else:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "success": False,
                          "error": "The event log is not writable"}


class Status:
    def __init__(self, services: Services):
        self._services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        event_log = self._services.log
        config = self._services.config
        resp.media = {
            "success": True,
            "version": VERSION,
            "dataset": config.dataset,
            "database": str(event_log.path),
            "events": event_log.count(),
            "logBytes": event_log.size_bytes(),
        }


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
    def handle(req: falcon.Request, resp: falcon.Response, exc: Exception,
               params: dict) -> None:
        resp.status = status
        resp.media = error_body(getattr(exc, "message", None) or str(exc),
                                getattr(exc, "details", None))
    return handle


def _log_error(req: falcon.Request, resp: falcon.Response, exc: LogError,
               params: dict) -> None:
    resp.status = falcon.HTTP_507 if isinstance(exc, LogFull) else falcon.HTTP_503
    resp.media = error_body(f"{exc}; nothing was stored, retry later")


def _unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception,
                params: dict) -> None:
    log.exception("unexpected error on %s %s", req.method, req.path)
    resp.status = falcon.HTTP_500
    resp.media = error_body("Internal error; nothing was stored")


ERRORS: list[tuple[type[Exception], Callable[..., None]]] = [
    (Exception, _unexpected),
    (InvalidInput, _status_error(falcon.HTTP_400)),
    (LogError, _log_error),
]


# -- the factory -------------------------------------------------------------------------

def create_app(config: Config | None = None, *, clock: Clock = time.time,
               new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> falcon.App:
    config = Config.from_env() if config is None else config
    config.require_keys()
    services = Services(config, clock)
    parser = EventParser(new_id)

    app = falcon.App(middleware=[RequireInternalKey(config.internal_keys)])
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(_serialize_http_error)
    for exc_type, handler in ERRORS:
        app.add_error_handler(exc_type, handler)

    app.add_route("/track/api-call", ApiCall(services, parser))
    app.add_route("/track/batch", Batch(services, parser))
    app.add_route("/health", Health(services))
    app.add_route("/status", Status(services))
    return app


__all__ = ["create_app", "Config", "ConfigError"]
