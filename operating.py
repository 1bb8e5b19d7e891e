"""Operating the service (SPEC §12), over HTTP: the middleware that counts every answer,
`GET /metrics` and `GET /openapi.json`. The figures live in the log (`storage/log/counters.py`,
`storage/metrics.py`); the description is built from `schemas/` (`storage/openapi.py`)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import falcon
import falcon.asgi
import falcon.inspect

from resources import Query, SqlApi
from storage import metrics, openapi
from storage.log import EventLog, counters
from storage.log.counters import Flusher, Tally
from storage.services import Services, now_ms

# Counted answers of routes no template matched share one label value.
UNMATCHED = "unmatched"


class Measure:
    """First in the chain, so it sees every request (a 401 from the key check too) and
    every final status: counts rejections, request and query durations, query outcomes
    and Cloudflare's reachability into this process's tally, which its flusher adds to
    the log about once a second."""

    def __init__(self, services: Services, *, flush_every_s: float = 1.0):
        self._services = services
        self._flush_every_s = flush_every_s
        self._pid = 0
        self._lock = threading.Lock()
        self._flusher: Flusher | None = None

    @property
    def flusher(self) -> Flusher:
        """This process's (a fork starts its own, with a connection of its own)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    config = self._services.config
                    self._flusher = Flusher(
                        Tally(), lambda: EventLog(config.db_path, layout=config.layout,
                                                  sync=config.sync),
                        every_s=self._flush_every_s)
                    self._flusher.start()
                    self._pid = os.getpid()
        assert self._flusher is not None
        return self._flusher

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        req.context.started = time.perf_counter()

    async def process_response(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                               resource: Any, req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        tally = self.flusher.tally
        status = resp.status_code
        tally.observe(counters.REQUEST_DURATION, "route", req.uri_template or UNMATCHED,
                      elapsed)
        if status >= 400:
            tally.count(counters.REJECTED, counters.labels(status=str(status)))
        if isinstance(resource, (Query, SqlApi)):
            source = resp.get_header("X-Analytics-Source") or _media_source(resp) or "none"
            tally.count(counters.QUERIES, counters.labels(source=source,
                                                          outcome=_outcome(status)))
            tally.observe(counters.QUERY_DURATION, "source", source, elapsed)
            self._note_reachability(tally)

    def _note_reachability(self, tally: Tally) -> None:
        """The breaker's view after a query: the service's is the newest of its workers'."""
        breaker = self._services.router.breaker
        if breaker.reachable is None:
            return
        at = breaker.last_success if breaker.reachable else breaker.last_failure
        tally.set_gauge(counters.CLOUDFLARE_REACHABLE, counters.labels(),
                        1.0 if breaker.reachable else 0.0, int((at or 0) * 1000))

    def flush(self) -> bool:
        return self.flusher.flush()


def _media_source(resp: falcon.asgi.Response) -> str | None:
    media = resp.media if isinstance(resp.media, dict) else None
    source = media.get("source") if media else None
    return source if source in ("local", "cloudflare") else None


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 504:
        return "timeout"
    return "rejected" if status < 500 else "error"


class Metrics:
    """GET /metrics: the service's figures, read from the log (the same from any worker).
    This worker's own counts since its last flush are added first."""

    def __init__(self, services: Services, measure: Measure):
        self._services = services
        self._measure = measure

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data = await self._services.run(self._render)
        resp.content_type = metrics.CONTENT_TYPE
        resp.cache_control = ["no-store"]

    def _render(self) -> bytes:
        self._measure.flush()
        services = self._services
        return metrics.render(metrics.snapshot(services.log, services.config,
                                               now_ms(services.clock)))


class OpenApi:
    """GET /openapi.json: the description of this app's routes (built once, from the
    router as it stands when first asked, and from `schemas/`)."""

    def __init__(self, app: falcon.asgi.App, layout: str):
        self._app = app
        self._layout = layout
        self._body: bytes | None = None

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if self._body is None:
            self._body = openapi.encode(openapi.build(app_routes(self._app), self._layout))
        resp.data = self._body
        resp.content_type = falcon.MEDIA_JSON


def app_routes(app: falcon.App) -> dict[str, list[str]]:
    """{route template: [methods]} of `app`'s router (Falcon's own 405 answers aside)."""
    routes: dict[str, list[str]] = {}
    for route in falcon.inspect.inspect_routes(app):
        methods = sorted(m.method for m in route.methods if not m.internal)
        if methods:
            routes[route.path] = methods
    return routes


def add_routes(app: falcon.asgi.App, services: Services, measure: Measure,
               layout: str) -> None:
    app.add_route("/metrics", Metrics(services, measure))
    app.add_route("/openapi.json", OpenApi(app, layout))
