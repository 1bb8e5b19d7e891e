"""Which source answers a /query (SPEC §3.3).

- `local`: the local log's engine; never calls out.
- `cloudflare`: Cloudflare's SQL API; never falls back (its failure is the answer).
- `auto` (the default): Cloudflare when it is configured, its breaker is closed (it
  answered the last call, or the cool-down after a failure has passed), and replay keeps
  up — the oldest event the relay has not confirmed was received at most `max_lag_ms`
  ago. Under steady traffic the backlog is never quite empty, so the rule is a bound on
  its age, not its emptiness. Otherwise the local log. A failure of Cloudflare during
  `auto` falls back to the local log within the same request.

An answer from Cloudflare says how far replay lagged when it was asked (`replay_lag_ms`).
Invalid SQL is invalid from either source: it is never retried elsewhere.

The raw data points of other datasets (SPEC §3.6) are only in the log: they are never
replayed, and the mirror holds the configured dataset only. So a query that reads one
(`LogEngine.reads_points`) is answered by the log's own engine, with `auto` and `local`
alike; `cloudflare` still asks Cloudflare, which knows only what was replayed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from ..config import SOURCES
from .aesql import QueryResult
from .cloudflare import CloudflareError, CloudflareNotConfigured, CloudflareQueryRejected


class Engine(Protocol):
    def query(self, sql: str, params: Sequence[Any]) -> QueryResult: ...


class LocalEngine(Protocol):
    def query(self, sql: str, params: Sequence[Any], *, count_before_limit: bool = False,
              deadline: float | None = None) -> QueryResult: ...


class LogEngine(LocalEngine, Protocol):
    def reads_points(self, sql: str, params: Sequence[Any]) -> bool: ...


@dataclass(frozen=True)
class Answer:
    result: QueryResult
    source: str  # "local" | "cloudflare"
    replay_lag_ms: int | None = None  # with source cloudflare: how far replay lagged


class Breaker:
    """A circuit breaker with a cool-down, one per worker process: after a failed call
    `auto` does not try Cloudflare for `cooldown_s`; then one call tries again
    (half-open) and its outcome decides. Its state is /status's reachability."""

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.time):
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.last_error: str | None = None
        self.reachable: bool | None = None  # did the last call get an answer; None: no call yet

    def allows(self) -> bool:
        if self.reachable is not False:
            return True
        assert self.last_failure is not None
        return self._clock() >= self.last_failure + self.cooldown_s

    def succeeded(self) -> None:
        self.last_success = self._clock()
        self.reachable = True

    def failed(self, error: Exception) -> None:
        self.last_failure = self._clock()
        self.last_error = str(error)
        self.reachable = False


class Router:
    def __init__(self, *, local: LocalEngine, cloud: Engine | None, breaker: Breaker,
                 replay_lag_ms: Callable[[], int], max_lag_ms: int,
                 log: LogEngine | None = None):
        """`replay_lag_ms()`: the age of the oldest event Cloudflare has not confirmed
        (0: it has every event); asked only when Cloudflare could answer. `log`: the
        log's own engine, for the datasets only the log holds (`local` may be the mirror
        in front of it)."""
        self._local = local
        self._log = log
        self._cloud = cloud
        self.breaker = breaker
        self._replay_lag_ms = replay_lag_ms
        self.max_lag_ms = max_lag_ms

    def query(self, sql: str, params: Sequence[Any] = (), source: str = "auto", *,
              count_before_limit: bool = False, deadline: float | None = None) -> Answer:
        """`count_before_limit`: the local engine also counts the rows a LIMIT cut off
        (Cloudflare always says). `deadline`: time.monotonic() seconds by which a local
        answer must be done, counted from the query's arrival (default: the local
        engine's time limit from when it starts)."""
        if source in ("auto", "local") and self._log is not None and self._in_log_only(
                sql, params):
            return self._from_local(sql, params, count_before_limit, deadline, self._log)
        if source == "local":
            return self._from_local(sql, params, count_before_limit, deadline)
        if source == "cloudflare":
            lag = self._replay_lag_ms() if self._cloud is not None else None
            return Answer(self._from_cloudflare(sql, params), "cloudflare", lag)
        if source != "auto":
            raise ValueError(f"source must be one of {', '.join(SOURCES)}")
        if self._cloud is not None and self.breaker.allows():
            lag = self._replay_lag_ms()
            if lag <= self.max_lag_ms:
                try:
                    return Answer(self._from_cloudflare(sql, params), "cloudflare", lag)
                except CloudflareQueryRejected:
                    raise
                except CloudflareError:
                    pass  # recorded by the breaker; the log has every event
        return self._from_local(sql, params, count_before_limit, deadline)

    def _in_log_only(self, sql: str, params: Sequence[Any]) -> bool:
        assert self._log is not None
        try:
            return self._log.reads_points(sql, list(params))
        except Exception:  # invalid: the usual path raises it, tagged with its source
            return False

    def _from_local(self, sql: str, params: Sequence[Any], count_before_limit: bool = False,
                    deadline: float | None = None, engine: LocalEngine | None = None
                    ) -> Answer:
        engine = self._local if engine is None else engine
        try:
            result = engine.query(sql, list(params), count_before_limit=count_before_limit,
                                  deadline=deadline)
            return Answer(result, "local")
        except Exception as e:
            e.source = "local"  # type: ignore[attr-defined]  # for the error body
            raise

    def _from_cloudflare(self, sql: str, params: Sequence[Any]) -> QueryResult:
        if self._cloud is None:
            raise _tagged(CloudflareNotConfigured(
                "Cloudflare is not configured: set CLOUDFLARE_API_TOKEN and "
                "CLOUDFLARE_ACCOUNT_ID, or query with source local"))
        try:
            result = self._cloud.query(sql, list(params))
        except CloudflareQueryRejected as e:
            self.breaker.succeeded()  # it answered: the query is at fault, not Cloudflare
            raise _tagged(e)
        except CloudflareError as e:
            self.breaker.failed(e)
            raise _tagged(e)
        except Exception as e:  # invalid SQL or params, found before calling out
            raise _tagged(e)
        self.breaker.succeeded()
        return result


def _tagged(error: Exception) -> Exception:
    error.source = "cloudflare"  # type: ignore[attr-defined]
    return error
