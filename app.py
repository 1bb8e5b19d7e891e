"""The HTTP service: Falcon resources over the storage layer, and one error mapping.

gunicorn runs `app:create_app()`, an ASGI app, with uvicorn's worker: each worker is one
event loop, so slow and idle connections cost a socket, not a worker. Importing this
module opens nothing; each worker opens its own SQLite connections at start-up (or on
first use), after the fork.

A resource never blocks the event loop on storage: events are committed by the
process's group-commit writer (`await services.append(events)`), and every other storage
call runs on the thread pool (`await services.run(fn, *args)`).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import hmac
import json
import logging
import os
import threading
import time
import uuid
import weakref
from typing import Any, Callable

import falcon
import falcon.asgi
import httpx

import dashboard
from storage import layouts, replay, retention, sink
from storage.aesql import PREFIX, InvalidQuery, LocalEngine, ParamsMismatch, QueryTimeout
from storage.aesql.output import CONTENT_TYPES, render
from storage.cloudflare import CloudflareError, CloudflareQueryRejected, CloudflareSQL
from storage.config import VERSION, Config, ConfigError
from storage.events import (EventParser, InvalidInput, Schema, idempotency_key, load_schema,
                            parse_json)
from storage.interchange import format_time
from storage.log import AppendResult, EventLog, LogError, LogFull, check_layout
from storage.router import Breaker, Router
from storage.writer import Outcome, Writer

log = logging.getLogger("analytics_worker")

Clock = Callable[[], float]


class Services:
    """What one worker process needs, opened lazily so that nothing is shared across a
    fork: after a fork (new pid) everything is opened again."""

    def __init__(self, config: Config, clock: Clock, *, http: httpx.Client | None = None,
                 background: bool = True):
        self.config = config
        self.clock = clock
        self._given_http = http
        self._background = background
        self._pid = 0
        self._lock = threading.Lock()
        self._log: EventLog | None = None
        self._writer: Writer | None = None
        self._notify: tuple[asyncio.AbstractEventLoop, Callable[..., None]] | None = None
        self._http: httpx.Client | None = None
        self._router: Router | None = None
        self._loop: replay.ReplayLoop | None = None

    @property
    def log(self) -> EventLog:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._log = EventLog(self.config.db_path, layout=self.config.layout,
                                         sync=self.config.sync)
                    self._writer = Writer(self._log)
                    atexit.register(_close_at_exit, weakref.ref(self._writer))
                    self._http, self._router, self._loop = None, None, None
                    self._pid = os.getpid()
                    if self._background:
                        self._loop = self._replay_loop()
                        self._loop.start()
                        # A worker that exits cleanly hands the lease on at once.
                        atexit.register(_stop_at_exit, weakref.ref(self._loop))
        assert self._log is not None
        return self._log

    @property
    def writer(self) -> Writer:
        self.log  # noqa: B018 — opens this process's services first
        assert self._writer is not None
        return self._writer

    async def append(self, events: list) -> AppendResult:
        """Commit `events` through the group-commit writer; returns once their transaction
        committed, or raises what committing them alone would have raised."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.writer.submit(events, waiter, self._notifier(loop))
        outcome = await waiter
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _notifier(self, loop: asyncio.AbstractEventLoop) -> Callable[..., None]:
        """One wake-up of `loop` per committed group, however many requests it held."""
        if self._notify is None or self._notify[0] is not loop:
            def notify(items: list[tuple[asyncio.Future, Outcome]]) -> None:
                loop.call_soon_threadsafe(_settle, items)
            self._notify = (loop, notify)
        return self._notify[1]

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) on the thread pool: storage calls that may block (a local query, a
        write lock held by the other worker) never stall the event loop."""
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(fn, *args))

    @property
    def http(self) -> httpx.Client:
        """One client per process (connections are reused, never across a fork)."""
        self.log  # noqa: B018 — opens this process's services first
        if self._given_http is not None:
            return self._given_http
        with self._lock:
            return self._client_unlocked()

    @property
    def router(self) -> Router:
        event_log = self.log
        with self._lock:
            if self._router is None:
                self._router = self._make_router(event_log)
        return self._router

    def _make_router(self, event_log: EventLog) -> Router:
        config = self.config
        local = LocalEngine(config.db_path, dataset=config.dataset,
                            timeout_ms=config.query_timeout_ms,
                            max_rows=config.query_max_rows, now=self.clock)
        cloud = None
        if config.cloudflare_configured:
            cloud = CloudflareSQL.from_config(config, self._given_http or self._client_unlocked())

        def replay_lag_ms() -> int:
            # Only the relay puts events into Cloudflare.
            return replay.lag_ms(event_log, "relay", now_ms(self.clock))

        return Router(local=local, cloud=cloud,
                      breaker=Breaker(config.cloudflare_cooldown_ms / 1000.0, self.clock),
                      replay_lag_ms=replay_lag_ms, max_lag_ms=config.max_lag_ms)

    def _client_unlocked(self) -> httpx.Client:
        if self._http is None:
            timeout = httpx.Timeout(self.config.cloudflare_timeout_ms / 1000.0)
            self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        return self._http

    def _replay_loop(self) -> replay.ReplayLoop:
        """This process's background thread: WAL checkpoints and, with a sink, replay
        (contending for the lease). It holds only a weak reference to these services,
        so it ends when the app is gone (tests create many apps)."""
        config, clock = self.config, self.clock
        this = weakref.ref(self)

        def make_replayer(event_log: EventLog) -> replay.Replayer | None:
            if config.sink == "none":
                return None
            services = this()
            if services is None:
                return None
            target = sink.from_config(config.sink, relay_url=config.relay_url,
                                      relay_key=config.relay_key,
                                      timeout_ms=config.cloudflare_timeout_ms,
                                      http=services.http, clock=clock)
            cap_s = config.replay_backoff_max_ms / 1000.0
            return replay.Replayer(event_log, target, lease_ms=config.replay_lease_ms,
                                   send_timeout_ms=config.cloudflare_timeout_ms,
                                   backoff=replay.Backoff(base_s=min(0.5, cap_s), cap_s=cap_s),
                                   clock=clock)

        def prune(event_log: EventLog) -> None:
            retention.prune(event_log, clock(), config.retention_days, sink=config.sink)

        return replay.ReplayLoop(
            lambda: EventLog(config.db_path, layout=config.layout, sync=config.sync),
            make_replayer,
            maintain=prune, alive=lambda: this() is not None)

    def close(self) -> None:
        if self._pid == os.getpid():
            if self._loop is not None:
                self._loop.stop()
            if self._writer is not None:
                self._writer.close()
            if self._log is not None:
                self._log.close()
            if self._http is not None:
                self._http.close()
        self._log, self._http, self._router, self._loop, self._pid = None, None, None, None, 0
        self._writer, self._notify = None, None


def _settle(items: list[tuple[asyncio.Future, Outcome]]) -> None:
    for waiter, outcome in items:
        if not waiter.done():
            waiter.set_result(outcome)


def _close_at_exit(writer: "weakref.ref[Writer]") -> None:
    running = writer()
    if running is not None:
        running.close(timeout_s=5.0)


def _stop_at_exit(loop: "weakref.ref[replay.ReplayLoop]") -> None:
    running = loop()
    if running is not None:
        running.stop(timeout_s=1.0)


# -- middleware and hooks ----------------------------------------------------------------

def key_matches(given: str, keys: tuple[str, ...]) -> bool:
    """Constant time: compares with every key, so the time taken does not tell which one
    nearly matched."""
    raw = given.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(raw, key.encode())
    return matched


# The SQL API's own route (SPEC §3.5) authenticates as Cloudflare does: a Bearer token.
SQL_API_PREFIX = "/client/v4/"


class Startup:
    """Opens the worker's log, writer and background thread when the worker starts, not
    on its first request. (At exit, after uvicorn has answered every request, the
    background thread hands the replay lease on: see `_stop_at_exit`.)"""

    def __init__(self, services: Services):
        self._services = services

    async def process_startup(self, scope: dict, event: dict) -> None:
        try:
            await self._services.run(lambda: self._services.log)
        except LogError as e:
            # Start anyway: requests answer 503/507 and try again, as with a log that
            # fails later (a worker that fails to boot would stop the whole service).
            log.warning("the event log cannot be opened yet: %s", e)


class RequireInternalKey:
    """Every route but GET /health, the SQL API route (it takes a Bearer token) and the
    dashboard's page and files needs one of the configured keys (the page holds no data:
    it asks for the key and sends it itself)."""

    def __init__(self, keys: tuple[str, ...]):
        self._keys = keys

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        if req.path == "/health" or req.path.startswith(SQL_API_PREFIX) or (
                req.method == "GET" and (req.path == "/" or req.path.startswith("/static/"))):
            return
        if not key_matches(req.get_header("X-Internal-Auth-Key") or "", self._keys):
            raise falcon.HTTPUnauthorized(title="Unauthorized")


async def read_json(req: falcon.asgi.Request, limit: int) -> Any:
    """The body as JSON, refusing non-JSON and anything over `limit` bytes unread."""
    if not (req.content_type or "").split(";")[0].strip().lower().endswith(("/json", "+json")):
        raise falcon.HTTPUnsupportedMediaType(
            title="Content-Type must be application/json")
    if req.content_length is not None and req.content_length > limit:
        raise falcon.HTTPContentTooLarge(title=f"Body is over the limit of {limit} bytes")
    body = await req.bounded_stream.read(limit + 1)
    if len(body) > limit:
        raise falcon.HTTPContentTooLarge(title=f"Body is over the limit of {limit} bytes")
    return parse_json(body)


def now_ms(clock: Clock) -> int:
    return int(round(clock() * 1000))


# -- resources ---------------------------------------------------------------------------

# The answers of /track/api-call, encoded once: this is the busiest route.
ACCEPTED = json.dumps({"success": True}).encode()
DUPLICATE = json.dumps({"success": True, "duplicate": True}).encode()


class Track:
    """POST /track/<type>: one event of a type of the layout."""

    def __init__(self, services: Services, parser: EventParser, type_: str):
        self._services = services
        self._parser = parser
        self._type = type_

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        doc = await read_json(req, self._services.config.max_body_bytes)
        event = self._parser.one(doc, now_ms(self._services.clock), self._type,
                                 idempotency_key(req.get_header("Idempotency-Key")))
        result = await self._services.append([event])
        if event.ignored:
            resp.media = {"success": True, "ignored": list(event.ignored)}
            if result.duplicates:
                resp.media["duplicate"] = True
        else:
            resp.data = DUPLICATE if result.duplicates else ACCEPTED


class Batch:
    def __init__(self, services: Services, parser: EventParser):
        self._services = services
        self._parser = parser

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        doc = await read_json(req, self._services.config.max_batch_bytes)
        events = self._parser.many(doc, now_ms(self._services.clock),
                                   idempotency_key(req.get_header("Idempotency-Key")))
        result = await self._services.append(events)
        resp.media = {"success": True, "accepted": result.accepted,
                      "duplicates": result.duplicates}
        ignored = [{"index": i, "keys": list(e.ignored)} for i, e in enumerate(events)
                   if e.ignored]
        if ignored:
            resp.media["ignored"] = ignored


class Query:
    def __init__(self, services: Services, schema: Schema):
        self._services = services
        self._schema = schema

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        doc = await read_json(req, self._services.config.max_body_bytes)
        details = self._schema.check(doc)
        if details:
            raise InvalidInput("The query is not valid", details)
        answer = await self._services.run(self._query, doc["query"],
                                          doc.get("params") or [], doc.get("source", "auto"))
        result = answer.result
        resp.set_header("X-Analytics-Source", answer.source)
        if result.format not in (None, "JSON"):  # the clause picks the body's format
            resp.content_type = CONTENT_TYPES[result.format]
            resp.data = render(result, result.format)
            return
        resp.media = {"success": True, "results": result.rows, "meta": result.meta,
                      "rows": len(result.rows), "source": answer.source}
        if answer.replay_lag_ms is not None:
            resp.media["replayLagMs"] = answer.replay_lag_ms
        if result.truncated:
            resp.media["truncated"] = True

    def _query(self, sql: str, params: list, source: str) -> Any:
        return self._services.router.query(sql, params, source)


class SqlApiError(Exception):
    """An answer of the SQL API route in Cloudflare's own shapes (SPEC §3.5)."""

    def __init__(self, status: int, message: str, *, plain: bool = False, code: int = 10000):
        super().__init__(message)
        self.status, self.message, self.plain, self.code = status, message, plain, code


class SqlApi:
    """`POST /client/v4/accounts/{account_id}/analytics_engine/sql`: Analytics Engine's
    SQL API, answered with the routing of /query's `auto`, so that any Analytics Engine
    client works with its API base pointed here. Any account id is accepted: the dataset
    is this service's."""

    def __init__(self, services: Services):
        self._services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      account_id: str) -> None:
        config = self._services.config
        auth = req.get_header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not key_matches(token.strip(), config.internal_keys):
            raise SqlApiError(401, "Authentication error")
        limit = config.max_body_bytes
        if req.content_length is not None and req.content_length > limit:
            raise SqlApiError(413, f"Body is over the limit of {limit} bytes")
        body = await req.bounded_stream.read(limit + 1)
        if len(body) > limit:
            raise SqlApiError(413, f"Body is over the limit of {limit} bytes")
        try:
            answer = await self._services.run(self._query, body.decode("utf-8"))
        except UnicodeDecodeError:
            raise SqlApiError(422, PREFIX + "the body is not UTF-8 text", plain=True) from None
        except (InvalidQuery, ParamsMismatch, CloudflareQueryRejected) as e:
            text = " ".join(str(getattr(e, "message", None) or e).split())
            raise SqlApiError(422, text if text.startswith(PREFIX) else PREFIX + text,
                              plain=True) from None
        except QueryTimeout as e:
            raise SqlApiError(504, str(e)) from None
        except CloudflareError as e:
            raise SqlApiError(e.status, e.message) from None
        except LogError as e:
            raise SqlApiError(503, str(e)) from None
        fmt = answer.result.format or "JSON"
        resp.set_header("X-Analytics-Source", answer.source)
        resp.content_type = CONTENT_TYPES[fmt]
        resp.data = render(answer.result, fmt)

    def _query(self, sql: str) -> Any:
        return self._services.router.query(sql, [], "auto", count_before_limit=True)


class Health:
    def __init__(self, services: Services):
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        writable = await self._services.run(self._writable)
        if writable and self._services.config.layout == "hoox":
            # The platform's own shape, which its workers' health checks read.
            resp.media = {"status": "ok", "success": True,
                          "result": {"status": "ok",
                                     "timestamp": format_time(now_ms(self._services.clock)),
                                     "service": "analytics-worker"}}
        elif writable:
            resp.media = {"status": "ok"}
        else:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "success": False,
                          "error": "The event log is not writable"}

    def _writable(self) -> bool:
        try:
            return self._services.log.writable()
        except LogError:
            return False


class Status:
    def __init__(self, services: Services):
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = await self._services.run(self._status)

    def _status(self) -> dict[str, Any]:
        event_log = self._services.log
        config = self._services.config
        breaker = self._services.router.breaker
        return {
            "success": True,
            "version": VERSION,
            "layout": config.layout,
            "dataset": config.dataset,
            "database": str(event_log.path),
            "events": event_log.count(),
            "logBytes": event_log.size_bytes(),
            "replay": replay.status(event_log, config.sink, now_ms(self._services.clock)),
            # The SQL API as this worker last saw it; null until a query asked it.
            "cloudflare": {"configured": config.cloudflare_configured,
                           "reachable": breaker.reachable,
                           "lastSuccessAt": _iso(breaker.last_success),
                           "lastErrorAt": _iso(breaker.last_failure),
                           "lastError": breaker.last_error,
                           "coolingDown": not breaker.allows()},
        }


class DashboardFile:
    """GET / (the page) and GET /static/{name}: only the dashboard package's own files,
    looked up by name in what was read at start, so no path reaches the file system."""

    def __init__(self, assets: dict[str, dashboard.Asset]):
        self._assets = assets

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     name: str = "index.html") -> None:
        asset = self._assets.get(name)
        if asset is None:
            raise falcon.HTTPNotFound()
        resp.data = asset.body
        resp.content_type = asset.content_type
        # Small files: always revalidate, so a new version shows on the next load.
        resp.cache_control = ["no-cache"]
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data:; "
                        "frame-ancestors 'none'")


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else format_time(int(seconds * 1000))


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


async def _sql_api_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         exc: SqlApiError, params: dict) -> None:
    resp.status = falcon.code_to_http_status(exc.status)
    if exc.plain:
        resp.content_type = "text/plain; charset=utf-8"
        resp.text = exc.message
    else:
        resp.media = {"success": False, "errors": [{"code": exc.code, "message": exc.message}],
                      "messages": [], "result": None}


async def _unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: Exception,
                      params: dict) -> None:
    log.exception("unexpected error on %s %s", req.method, req.path)
    resp.status = falcon.HTTP_500
    resp.media = error_body("Internal error; nothing was stored")


ERRORS: list[tuple[type[Exception], Callable[..., None]]] = [
    (Exception, _unexpected),
    (InvalidInput, _status_error(falcon.HTTP_400)),
    (LogError, _log_error),
    (InvalidQuery, _query_error(falcon.HTTP_422)),
    (ParamsMismatch, _query_error(falcon.HTTP_400)),
    (QueryTimeout, _query_error(falcon.HTTP_504)),
    (CloudflareError, _cloudflare_error),
    (SqlApiError, _sql_api_error),
]


# -- the factory -------------------------------------------------------------------------

def create_app(config: Config | None = None, *, clock: Clock = time.time,
               new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
               http: httpx.Client | None = None, background: bool = True) -> falcon.asgi.App:
    """`http`: the client for Cloudflare and the relay (default: one per process).
    `background`: run the replay/checkpoint thread in each process (tests that drive
    replay themselves turn it off)."""
    config = Config.from_env() if config is None else config
    config.require_keys()
    if config.sink == "relay" and not config.relay_url:
        raise ConfigError("ANALYTICS_SINK is relay but ANALYTICS_RELAY_URL is not set: set "
                          "it to the relay Worker's /ingest URL")
    # A log of another layout: refuse now, with the log left as it is.
    check_layout(config.db_path, config.layout)
    services = Services(config, clock, http=http, background=background)
    layout = layouts.get(config.layout)
    parser = EventParser(new_id, layout)

    app = falcon.asgi.App(middleware=[Startup(services),
                                      RequireInternalKey(config.internal_keys)])
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(_serialize_http_error)
    for exc_type, handler in ERRORS:
        app.add_error_handler(exc_type, handler)

    for type_ in layout.types:
        app.add_route(f"/track/{type_}", Track(services, parser, type_))
    app.add_route("/track/batch", Batch(services, parser))
    app.add_route("/query", Query(services, Schema(load_schema("query"))))
    app.add_route(SQL_API_PREFIX + "accounts/{account_id}/analytics_engine/sql",
                  SqlApi(services))
    app.add_route("/health", Health(services))
    app.add_route("/status", Status(services))
    page = DashboardFile(dashboard.load_assets())
    app.add_route("/", page)
    app.add_route("/static/{name}", page)
    return app


__all__ = ["create_app", "Config", "ConfigError"]
