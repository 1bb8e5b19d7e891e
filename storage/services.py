"""What one worker process needs, opened after gunicorn forks: the log, the writer that
commits its events, the HTTP client, the query router and the background thread (replay,
checkpoints, retention). Resources reach storage only through it.

A resource never blocks the event loop on storage: events are committed by the
writer (`await services.append(events)`), and every other storage call runs on a
thread pool: queries (`await services.query(fn, *args, deadline=…)`) on a pool of their
own, held to their deadline; the cheap calls (`await services.run(fn, *args)`: /status,
/metrics) on another, which no query ever holds.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import importlib.util
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable

import httpx

from . import replay
from .config import Config
from .log import POINTS, AppendResult, EventLog, LogError, event_rows, retention
from .query.aesql import LocalEngine, QueryTimeout
from .query.cloudflare import CloudflareSQL
from .query.lanes import Lanes
from .query.mirror import MIRROR_SOCKET_ENV, MirroredEngine
from .query.router import Breaker, Router
from .replay import sink
from .writer import wire
from .writer.client import WriterClient
from .writer.group import Outcome, Writer

# Set by gunicorn's master (`gunicorn_conf`) once it has started the service's writer
# process; without it (in process, in tests) each process commits through a thread.
WRITER_SOCKET_ENV = "ANALYTICS_WRITER_SOCKET"

log = logging.getLogger("analytics_worker")

Clock = Callable[[], float]


def now_ms(clock: Clock) -> int:
    return int(round(clock() * 1000))


# Threads of a worker's pool for queries: a query holds one from its start to its answer
# (waiting for a lane, or for Cloudflare), so there are more than the lanes run at once.
QUERY_THREADS = 16
# Heavy queries that may wait for a lane, beyond those it runs: the rest of the pool stays
# free for queries of few rows, SHOW statements and Cloudflare's answers.
HEAVY_WAITING = 6
# Every Services of this process, for `stop_all`.
_ALL: "weakref.WeakSet[Services]" = weakref.WeakSet()


def stop_all(by: float) -> None:
    """This process was told to stop: no local query of any app in it runs past `by`
    (time.monotonic() seconds)."""
    for services in list(_ALL):
        services.stop(by)


class Services:
    """What one worker process needs, opened lazily so that nothing is shared across a
    fork: after a fork (new pid) everything is opened again."""

    def __init__(self, config: Config, clock: Clock, *, http: httpx.Client | None = None,
                 background: bool = True, writer_socket: str | None = None):
        """`writer_socket`: the service's writer process; None: a writer thread here."""
        self.config = config
        self._writer_socket = writer_socket
        self._client: WriterClient | None = None
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
        self._lanes: Lanes | None = None
        self._queries: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: replay.ReplayLoop | None = None
        _ALL.add(self)

    @property
    def log(self) -> EventLog:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    if self._writer_socket:
                        # The writer process created the log before it answered.
                        self._log = EventLog(self.config.db_path, layout=self.config.layout,
                                             write=False)
                        self._client = WriterClient(
                            self._writer_socket, max_events=self.config.writer_queue_events)
                    else:
                        self._log = EventLog(self.config.db_path, layout=self.config.layout,
                                             sync=self.config.sync)
                        self._writer = Writer(self._log)
                        atexit.register(_close_at_exit, weakref.ref(self._writer))
                    self._http, self._router, self._loop = None, None, None
                    self._lanes, self._queries = None, None
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

    async def append(self, events: list, *, key: str | None = None,
                     single: bool = False) -> AppendResult:
        """Commit `events` through the group-commit writer; returns once their transaction
        committed, or raises what committing them alone would have raised. `key`: the
        request's Idempotency-Key (`single`: the request was one event, not a batch);
        a key used before with another body raises KeyReused. That look is a few index
        seeks on this thread's read connection, which WAL never holds up: done here."""
        event_log = self.log
        if key is not None:
            events = event_log.keyed_events(events, key, single)
        if self._client is not None:
            return await self._client.append(event_rows(events, event_log.layout))
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.writer.submit(events, waiter, self._notifier(loop))
        outcome = await waiter
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def append_points(self, rows: list, *, key: str | None = None) -> AppendResult:
        """Commit raw data points (`points.row`) through the same writer and group commit
        as events: returns once committed, or raises what committing them alone would.
        `key`: as for `append`."""
        event_log = self.log
        if key is not None:
            rows = event_log.keyed_points(rows, key)
        if self._client is not None:
            return await self._client.append(rows, wire.APPEND_POINTS)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.writer.submit(rows, waiter, self._notifier(loop), POINTS)
        outcome = await waiter
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def writable(self) -> bool:
        """Whether the log takes writes now, asked of the writer thread: it alone uses
        the write connection."""
        try:
            self.log  # noqa: B018 — opens this process's services first
        except LogError:
            return False
        if self._client is not None:
            return await self._client.writable()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        try:
            self.writer.submit(None, waiter, self._notifier(loop))
        except LogError:
            return False
        return await waiter is True

    def _notifier(self, loop: asyncio.AbstractEventLoop) -> Callable[..., None]:
        """One wake-up of `loop` per committed group, however many requests it held."""
        if self._notify is None or self._notify[0] is not loop:
            def notify(items: list[tuple[asyncio.Future, Outcome]]) -> None:
                loop.call_soon_threadsafe(_settle, items)
            self._notify = (loop, notify)
        return self._notify[1]

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) on the thread pool of cheap calls (/status, /metrics): storage calls
        that may block (a write lock held by the other worker) never stall the event
        loop, and no query holds one of its threads."""
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(fn, *args))

    async def query(self, fn: Callable[..., Any], *args: Any, deadline: float,
                    asks_cloudflare: bool = False) -> Any:
        """fn(*args, deadline=deadline) on the pool of queries. `deadline` is
        time.monotonic() seconds, counted from the query's arrival: a query still waiting
        for a thread then never starts, and its answer is the time limit's (504); one
        that runs past it by more than a second (its engine holds it to the deadline) is
        answered so, and left to end on its own. `asks_cloudflare`: the query may go to
        Cloudflare, whose call has a limit of its own (CLOUDFLARE_TIMEOUT_MS), so it is
        waited for that much longer."""
        self.log  # noqa: B018 — opens this process's services first
        with self._lock:
            if self._queries is None:
                self._queries = concurrent.futures.ThreadPoolExecutor(
                    QUERY_THREADS, thread_name_prefix="query")
            pool = self._queries
        future = pool.submit(functools.partial(fn, *args, deadline=deadline))
        waiting = asyncio.wrap_future(future)
        patience = deadline
        if asks_cloudflare and self.config.cloudflare_configured:
            patience += self.config.cloudflare_timeout_ms / 1000
        done, _ = await asyncio.wait({waiting}, timeout=max(0.0, patience - time.monotonic()))
        if not done:
            if future.cancel():
                raise QueryTimeout(
                    f"The query could not start within the local time limit of "
                    f"{self.config.query_timeout_ms} ms: this worker was busy with other "
                    "queries; retry, or raise ANALYTICS_QUERY_TIMEOUT_MS")
            done, _ = await asyncio.wait({waiting}, timeout=1.0)
            if not done:
                raise QueryTimeout(
                    f"The query was stopped after the local time limit of "
                    f"{self.config.query_timeout_ms} ms; narrow the time range, or raise "
                    "ANALYTICS_QUERY_TIMEOUT_MS")
        return waiting.result()

    def stop(self, by: float) -> None:
        """This worker is stopping: no local query runs past `by` (time.monotonic()
        seconds)."""
        if self._pid == os.getpid() and self._lanes is not None:
            self._lanes.stop(by)

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
        self._lanes = Lanes(LocalEngine(config.db_path, dataset=config.dataset,
                                        timeout_ms=config.query_timeout_ms,
                                        max_rows=config.query_max_rows,
                                        max_answer_bytes=config.query_max_answer_bytes,
                                        max_value_bytes=config.query_max_value_bytes,
                                        now=self.clock),
                            heavy=config.query_concurrency, waiting=HEAVY_WAITING)
        # Set by gunicorn's master once it has started the mirror (`gunicorn_conf`).
        mirror_socket = os.environ.get(MIRROR_SOCKET_ENV)
        local: Lanes | MirroredEngine = self._lanes
        log_engine = self._lanes  # the raw points of other datasets are in the log only
        if mirror_socket and config.mirror != "off":
            local = MirroredEngine(self._lanes, mirror_socket, event_log.last_seq)
        cloud = None
        if config.cloudflare_configured:
            cloud = CloudflareSQL.from_config(config, self._given_http or self._client_unlocked())

        def replay_lag_ms() -> int:
            # Only the relay puts events into Cloudflare.
            return replay.lag_ms(event_log, "relay", now_ms(self.clock))

        return Router(local=local, cloud=cloud,
                      breaker=Breaker(config.cloudflare_cooldown_ms / 1000.0, self.clock),
                      replay_lag_ms=replay_lag_ms, max_lag_ms=config.max_lag_ms,
                      log=log_engine)

    def mirror_status(self) -> dict[str, Any]:
        """What /status says of the mirror: whether its process answers local queries
        now, and from what size of log it starts (below it the log's engine answers)."""
        config = self.config
        socket_path = os.environ.get(MIRROR_SOCKET_ENV)
        if config.mirror == "off":
            state = "off"
        elif not _chdb_installed():
            state = "not installed"  # pip install 'analytics-worker[mirror]'
        elif not socket_path:
            # in process (tests, the command line), or gunicorn found no chdb to run
            state = "not running"
        else:
            state = "running" if os.path.exists(socket_path) else "waiting"
        return {"mode": config.mirror, "state": state,
                "startsAtEvents": config.mirror_min_events}

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
            retention.prune_points(event_log, clock(), config.retention_days)

        return replay.ReplayLoop(
            lambda: EventLog(config.db_path, layout=config.layout, sync=config.sync),
            make_replayer,
            maintain=prune, alive=lambda: this() is not None)

    def hang_up(self) -> None:
        """Closes this process's connection to the writer process (the next append opens
        another): the writer, stopping, waits for its workers to hang up."""
        with self._lock:
            if self._pid == os.getpid() and self._client is not None:
                self._client.close()

    def close(self) -> None:
        if self._pid == os.getpid():
            if self._loop is not None:
                self._loop.stop()
            if self._writer is not None:
                self._writer.close()
            if self._client is not None:
                self._client.close()
            if self._log is not None:
                self._log.close()
            if self._http is not None:
                self._http.close()
            if self._queries is not None:
                self._queries.shutdown(wait=False, cancel_futures=True)
            if self._lanes is not None:
                self._lanes.close()
        self._log, self._http, self._router, self._loop, self._pid = None, None, None, None, 0
        self._lanes, self._queries = None, None
        self._writer, self._notify, self._client = None, None, None


@functools.lru_cache(maxsize=1)
def _chdb_installed() -> bool:
    return importlib.util.find_spec("chdb") is not None


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
