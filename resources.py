"""The HTTP resources and middleware: each parses, validates, calls storage through the
worker's `Services`, and sets the response. Errors are raised, and mapped to HTTP in
app.py."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from typing import Any

import falcon
import falcon.asgi

import dashboard
from storage import replay
from storage.config import VERSION
from storage.intake.events import (EventParser, InvalidInput, PointParser, Schema, idempotency_key,
                                   parse_json)
from storage.intake.timestamps import format_time
from storage.log import LogError
from storage.query.aesql import (PREFIX, AnswerTooLarge, InvalidQuery, ParamsMismatch,
                                 QueryTimeout)
from storage.query.aesql.output import CONTENT_TYPES, json_rows, render
from storage.query.cloudflare import CloudflareError, CloudflareQueryRejected
from storage.query.lanes import QueryBusy
from storage.query.router import Answer
from storage.services import Services, now_ms

log = logging.getLogger("analytics_worker")


# -- middleware and hooks ----------------------------------------------------------------

def key_matches(given: str, keys: tuple[str, ...]) -> bool:
    """Constant time: compares with every key, so the time taken does not tell which one
    nearly matched."""
    raw = given.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(raw, key.encode())
    return matched


def bearer_matches(req: falcon.asgi.Request, keys: tuple[str, ...]) -> bool:
    scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and key_matches(token.strip(), keys)


# The SQL API's own route (SPEC §3.5) authenticates as Cloudflare does: a Bearer token.
SQL_API_PREFIX = "/client/v4/"


class Startup:
    """Opens the worker's log, writer and background thread when the worker starts, not
    on its first request, and hangs up from the writer when it stops, after uvicorn has
    answered every request (the rest closes at exit: see `_stop_at_exit`)."""

    def __init__(self, services: Services):
        self._services = services

    async def process_startup(self, scope: dict, event: dict) -> None:
        # On the loop itself: nothing is served until startup completes, and a thread
        # would only pass the opening back and forth with the loop.
        try:
            self._services.log  # noqa: B018 — opens this process's services
        except LogError as e:
            # Start anyway: requests answer 503/507 and try again, as with a log that
            # fails later (a worker that fails to boot would stop the whole service).
            log.warning("the event log cannot be opened yet: %s", e)

    async def process_shutdown(self, scope: dict, event: dict) -> None:
        """After the last request: hang up from the service's writer (it drains until its
        workers have). The rest stays open until the process exits: an ASGI test client
        sends a whole lifespan with each request, and the breaker's state, the log's
        connections and the replay thread must outlive one."""
        self._services.hang_up()  # on the loop: the writer client's transport is the loop's
        await asyncio.sleep(0)  # and the loop closes it on its next turn


class RequireInternalKey:
    """Every route but GET /health, GET /openapi.json, the SQL API route (it takes a Bearer
    token) and the dashboard's page and files needs one of the configured keys (the page
    holds no data: it asks for the key and sends it itself). /metrics also takes the key
    as a Bearer token, which is what Prometheus's `authorization` setting sends."""

    def __init__(self, keys: tuple[str, ...]):
        self._keys = keys

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        if req.path in ("/health", "/openapi.json") or req.path.startswith(SQL_API_PREFIX) or (
                req.method == "GET" and (req.path == "/" or req.path.startswith("/static/"))):
            return
        if req.path == "/metrics" and bearer_matches(req, self._keys):
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
        key = idempotency_key(req.get_header("Idempotency-Key"))
        event = self._parser.one(doc, now_ms(self._services.clock), self._type, key)
        result = await self._services.append([event], key=key, single=True)
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
        key = idempotency_key(req.get_header("Idempotency-Key"))
        events = self._parser.many(doc, now_ms(self._services.clock), key)
        result = await self._services.append(events, key=key)
        resp.media = {"success": True, "accepted": result.accepted,
                      "duplicates": result.duplicates}
        ignored = [{"index": i, "keys": list(e.ignored)} for i, e in enumerate(events)
                   if e.ignored]
        if ignored:
            resp.media["ignored"] = ignored


class DataPoints:
    """POST /track/datapoints: raw data points of any dataset (SPEC §3.6), as a Worker
    wrote them through the relay's AnalyticsEngineDataset entrypoint."""

    def __init__(self, services: Services, parser: PointParser):
        self._services = services
        self._parser = parser

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        doc = await read_json(req, self._services.config.max_batch_bytes)
        key = idempotency_key(req.get_header("Idempotency-Key"))
        batch = self._parser.parse(doc, now_ms(self._services.clock), key)
        result = await self._services.append_points(batch.rows, key=key)
        resp.media = {"success": True, "accepted": result.accepted,
                      "duplicates": result.duplicates}


def deadline_of(services: Services) -> float:
    """A query's deadline (time.monotonic() seconds), counted from its arrival: waiting
    for a thread or a lane counts (SPEC §3.3)."""
    return time.monotonic() + services.config.query_timeout_ms / 1000


class Query:
    def __init__(self, services: Services, schema: Schema):
        self._services = services
        self._schema = schema

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        deadline = deadline_of(self._services)
        doc = await read_json(req, self._services.config.max_body_bytes)
        details = self._schema.check(doc)
        if details:
            raise InvalidInput("The query is not valid", details)
        source = doc.get("source", "auto")
        source, content_type, body = await self._services.query(
            self._answer, doc["query"], doc.get("params") or [], source,
            deadline=deadline, asks_cloudflare=source != "local")
        resp.set_header("X-Analytics-Source", source)
        resp.content_type = content_type
        resp.data = body

    def _answer(self, sql: str, params: list, source: str, *, deadline: float
                ) -> tuple[str, str, bytes]:
        """The answer and its body, made on the query's thread: a large body is never
        encoded on the event loop."""
        answer = self._services.router.query(sql, params, source, deadline=deadline)
        result = answer.result
        if result.format not in (None, "JSON"):  # the clause picks the body's format
            body = render(result, result.format)
            content_type = CONTENT_TYPES[result.format]
        else:
            body, content_type = query_body(answer), falcon.MEDIA_JSON
        return answer.source, content_type, capped(body, self._services)


def capped(body: bytes, services: Services) -> bytes:
    """The body of an answer, refused (a 422) when over ANALYTICS_QUERY_MAX_ANSWER_BYTES:
    the engines stop reading rows well before; this holds every source and format to
    the exact figure."""
    cap = services.config.query_max_answer_bytes
    if len(body) > cap:
        raise AnswerTooLarge(cap)
    return body


def query_body(answer: Answer) -> bytes:
    """/query's JSON answer, as Falcon's own JSON handler writes it."""
    result = answer.result
    media: dict[str, Any] = {"success": True, "results": json_rows(result.rows),
                             "meta": result.meta, "rows": len(result.rows),
                             "source": answer.source}
    if answer.replay_lag_ms is not None:
        media["replayLagMs"] = answer.replay_lag_ms
    if result.truncated:
        media["truncated"] = True
    return json.dumps(media, ensure_ascii=False).encode()


class SqlApiError(Exception):
    """An answer of the SQL API route in Cloudflare's own shapes (SPEC §3.5)."""

    def __init__(self, status: int, message: str, *, plain: bool = False, code: int = 10000,
                 retry_after_s: int | None = None):
        super().__init__(message)
        self.status, self.message, self.plain, self.code = status, message, plain, code
        self.retry_after_s = retry_after_s


class SqlApi:
    """`POST /client/v4/accounts/{account_id}/analytics_engine/sql`: Analytics Engine's
    SQL API, answered with the routing of /query's `auto`, so that any Analytics Engine
    client works with its API base pointed here. Any account id is accepted: the dataset
    is this service's."""

    def __init__(self, services: Services):
        self._services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      account_id: str) -> None:
        deadline = deadline_of(self._services)
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
            source, content_type, data = await self._services.query(
                self._answer, body.decode("utf-8"), deadline=deadline, asks_cloudflare=True)
        except UnicodeDecodeError:
            raise SqlApiError(422, PREFIX + "the body is not UTF-8 text", plain=True) from None
        except (InvalidQuery, ParamsMismatch, CloudflareQueryRejected) as e:
            text = " ".join(str(getattr(e, "message", None) or e).split())
            raise SqlApiError(422, text if text.startswith(PREFIX) else PREFIX + text,
                              plain=True) from None
        except QueryTimeout as e:
            raise SqlApiError(504, str(e)) from None
        except QueryBusy as e:
            raise SqlApiError(503, str(e), retry_after_s=e.retry_after_s) from None
        except CloudflareError as e:
            raise SqlApiError(e.status, e.message) from None
        except LogError as e:
            raise SqlApiError(503, str(e)) from None
        resp.set_header("X-Analytics-Source", source)
        resp.content_type = content_type
        resp.data = data

    def _answer(self, sql: str, *, deadline: float) -> tuple[str, str, bytes]:
        answer = self._services.router.query(sql, [], "auto", count_before_limit=True,
                                             deadline=deadline)
        fmt = answer.result.format or "JSON"
        return answer.source, CONTENT_TYPES[fmt], capped(render(answer.result, fmt),
                                                         self._services)


class Health:
    def __init__(self, services: Services):
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        writable = await self._services.writable()
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


class Status:
    def __init__(self, services: Services):
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = await self._services.run(self._status)

    def _status(self) -> dict[str, Any]:
        event_log = self._services.log
        config = self._services.config
        breaker = self._services.router.breaker
        events = event_log.kept_count()
        return {
            "success": True,
            "version": VERSION,
            "layout": config.layout,
            "dataset": config.dataset,
            "database": str(event_log.path),
            "events": events,
            # The configured dataset (the events) is the one replay sends; the raw points
            # of the others (POST /track/datapoints) stay in the log.
            "datasets": [{"dataset": config.dataset, "rows": events, "replayed": True},
                         *({"dataset": name, "rows": rows, "replayed": False}
                           for name, rows in event_log.datasets().items()
                           if name != config.dataset)],
            "datasetsNote": f"Only {config.dataset} is replayed (sink {config.sink}); the "
                            "data points of the other datasets stay in the local log",
            "logBytes": event_log.size_bytes(),
            "replay": replay.status(event_log, config.sink, now_ms(self._services.clock)),
            "mirror": self._services.mirror_status(),
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
