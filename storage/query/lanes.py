"""The log's engine in two lanes, so that cheap queries never wait behind heavy ones (SPEC
§3.3).

A query that selects few rows of the log (`LocalEngine.reads_few`: the dashboard's health
view, a last hour) runs in the *light* lane; anything else in the *heavy* lane. Each lane
runs a few queries at once (each on its own connection); a light query that is still
running after `LIGHT_BUDGET_S` (few rows, costly functions) is stopped and goes to the
heavy lane with what is left of its time, so that no query holds the light lane long.
The heavy lane also bounds how many queries wait for it: past that, a query is refused at
once with `QueryBusy` (503, Retry-After) rather than held until its time runs out.

Every query has one deadline, counted from its arrival by the caller: waiting for a lane
counts, and a query that cannot start before it gets the same `QueryTimeout` (504) as one
stopped while running. SHOW statements need no connection and go through no lane.

`stop(by)` is for a worker that was told to stop: no query runs past `by`, and queries
then stopped or arriving answer `QueryBusy` (the client retries elsewhere).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from .aesql import LocalEngine, QueryResult, QueryTimeout

# How long a query of few rows may run in the light lane before it must move over.
LIGHT_BUDGET_S = 0.25
# Queries of few rows run at once in the light lane.
LIGHT_QUERIES = 2


class QueryBusy(Exception):
    """The query cannot be taken now (the worker runs as many heavy queries as it takes,
    or it is stopping): HTTP 503, with Retry-After."""

    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Lanes:
    """`LocalEngine` as the service runs it: the same calls, with every query held to its
    deadline and put in its lane."""

    def __init__(self, engine: LocalEngine, *, heavy: int, waiting: int,
                 light: int = LIGHT_QUERIES, light_budget_s: float = LIGHT_BUDGET_S,
                 monotonic: Callable[[], float] = time.monotonic):
        """`heavy`: heavy queries that run at once; `waiting`: how many more may wait for
        one of them."""
        self.engine = engine
        self._heavy = threading.BoundedSemaphore(heavy)
        self._light = threading.BoundedSemaphore(light)
        self._light_budget_s = light_budget_s
        self._monotonic = monotonic
        self._admitted = 0  # heavy queries running or waiting
        self._max_admitted = heavy + waiting
        self._admit_lock = threading.Lock()
        self._stop_by = float("inf")
        self._stopping = False

    # what the mirror and the router ask of the log's engine
    @property
    def dataset(self) -> str:
        return self.engine.dataset

    @property
    def timeout_ms(self) -> int:
        return self.engine.timeout_ms

    @property
    def max_rows(self) -> int:
        return self.engine.max_rows

    def now(self) -> float:
        return self.engine.now()

    def reads_points(self, sql: str, params: Sequence[Any] = ()) -> bool:
        return self.engine.reads_points(sql, params)

    def reads_few(self, sql: str, params: Sequence[Any] = (), *,
                  deadline: float | None = None) -> bool:
        budget = self._monotonic() + self._light_budget_s
        if deadline is not None:
            budget = min(deadline, budget)
        return self.engine.reads_few(sql, params, deadline=budget)

    def query(self, sql: str, params: Sequence[Any] = (), *, count_before_limit: bool = False,
              deadline: float | None = None) -> QueryResult:
        engine = self.engine
        if self.stopping:
            raise _stopping()
        start = self._monotonic()
        if deadline is None:
            deadline = start + engine.timeout_ms / 1000
        deadline = min(deadline, self._stop_by)

        def run(until: float) -> QueryResult:
            return engine.query(sql, params, count_before_limit=count_before_limit,
                                deadline=min(until, self._stop_by))

        if engine.compile(sql, params).sql is None:
            return run(deadline)  # SHOW: answered from what the engine holds
        try:
            light_until = min(deadline, start + self._light_budget_s)
            if engine.reads_few(sql, params, deadline=light_until) and self._enter(
                    self._light, light_until):
                try:
                    return run(min(deadline, self._monotonic() + self._light_budget_s))
                except QueryTimeout:
                    if self._monotonic() >= deadline:
                        raise
                    # over the light lane's budget: the rest of its time in the heavy lane
                finally:
                    self._light.release()
            with self._admitted_heavy():
                if not self._enter(self._heavy, deadline):
                    raise self._late()
                try:
                    return run(deadline)
                finally:
                    self._heavy.release()
        except QueryTimeout:
            if self.stopping:
                raise _stopping() from None
            raise

    def _enter(self, lane: threading.BoundedSemaphore, until: float) -> bool:
        """A place in `lane` by `until`; False when there is none by then, or the worker
        is stopping (looked at every quarter second while waiting)."""
        while not self.stopping:
            left = until - self._monotonic()
            if lane.acquire(timeout=max(0.0, min(left, 0.25))):
                if not self.stopping:
                    return True
                lane.release()
                return False
            if left <= 0.25:
                return False
        return False

    @contextmanager
    def _admitted_heavy(self) -> Iterator[None]:
        with self._admit_lock:
            if self._admitted >= self._max_admitted:
                raise QueryBusy(
                    f"This worker is running or holding {self._admitted} heavy queries, as "
                    "many as it takes (ANALYTICS_QUERY_CONCURRENCY); retry in a second")
            self._admitted += 1
        try:
            yield
        finally:
            with self._admit_lock:
                self._admitted -= 1

    @property
    def stopping(self) -> bool:
        return self._stopping or self._monotonic() >= self._stop_by

    def _late(self) -> Exception:
        if self.stopping:
            return _stopping()
        return QueryTimeout(
            f"The query could not start within the local time limit of "
            f"{self.engine.timeout_ms} ms: this worker was busy with other queries; retry, "
            "or raise ANALYTICS_QUERY_TIMEOUT_MS")

    def stop(self, by: float) -> None:
        """No query runs past `by` (time.monotonic() seconds); from then on, every query
        is refused with QueryBusy."""
        self._stop_by = min(self._stop_by, by)
        timer = threading.Timer(max(0.0, by - self._monotonic()), self._interrupt)
        timer.daemon = True
        timer.start()

    def _interrupt(self) -> None:
        self._stopping = True
        self.engine.interrupt()

    def close(self) -> None:
        self.engine.close()


def _stopping() -> QueryBusy:
    return QueryBusy("This worker is stopping; retry (another worker answers)")
