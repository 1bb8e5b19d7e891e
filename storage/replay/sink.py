"""Where replay sends data points (SPEC §5): the relay Worker, stdout, or nowhere.

A sink either confirms a whole batch (returns), refuses it as invalid (`SinkRejected`,
naming the bad points when it can, so the replayer can isolate them), or fails in a way
worth retrying (`SinkUnavailable`, with the server's Retry-After when it gave one).
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import IO, Callable, Protocol, Sequence

import httpx

from ..intake.datapoint import DataPoint


class SinkError(Exception):
    """The sink did not confirm the batch."""


class SinkUnavailable(SinkError):
    """Down, overloaded or misconfigured: retry the same batch later."""

    def __init__(self, message: str, retry_after_s: float | None = None,
                 reason: str = "error"):
        """`reason`: a short class of failure for the metrics (timeout, unreachable, 429,
        5xx, 4xx), never free text."""
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason


def status_reason(status: int) -> str:
    return "429" if status == 429 else f"{status // 100}xx"


class SinkRejected(SinkError):
    """The sink refused the batch as invalid; retrying it unchanged cannot succeed.
    `reasons` maps the position of each bad point in the batch to why, when the sink
    said; it is empty when the sink did not say which points were bad."""

    def __init__(self, message: str, reasons: dict[int, str] | None = None):
        super().__init__(message)
        self.reasons = reasons or {}


class Sink(Protocol):
    name: str

    def send(self, points: Sequence[DataPoint], batch_id: str = "") -> None: ...


def parse_retry_after(value: str | None, now: Callable[[], float]) -> float | None:
    """Retry-After as seconds from now: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, moment.timestamp() - now())


class RelaySink:
    """POST /ingest of the relay Worker (SPEC §6): `{"batchId", "points"}` with the
    shared key; 200 confirms, 400 names the bad points and writes nothing."""

    name = "relay"

    def __init__(self, url: str, key: str, *, http: httpx.Client, timeout_ms: int,
                 clock: Callable[[], float]):
        self._url = url
        self._key = key
        self._http = http
        self._timeout = httpx.Timeout(timeout_ms / 1000.0)
        self._clock = clock

    def send(self, points: Sequence[DataPoint], batch_id: str = "") -> None:
        body = {"batchId": batch_id, "points": [p.as_json() for p in points]}
        try:
            resp = self._http.post(
                self._url, headers={"X-Internal-Auth-Key": self._key},
                content=json.dumps(body, ensure_ascii=False, allow_nan=False).encode(),
                timeout=self._timeout)
        except httpx.TimeoutException:
            raise SinkUnavailable(f"the relay did not answer within "
                                  f"{self._timeout.read:g} s", reason="timeout") from None
        except httpx.HTTPError as e:
            raise SinkUnavailable(f"the relay is unreachable: {type(e).__name__}: {e}",
                                  reason="unreachable") from None
        if resp.status_code == 200:
            return
        message = _error_text(resp)
        if resp.status_code in (400, 413):
            # 413: the batch is too large as a whole; splitting it is the remedy too.
            raise SinkRejected(f"the relay refused the batch ({resp.status_code}): {message}",
                               _bad_points(resp, len(points)))
        raise SinkUnavailable(
            f"the relay answered {resp.status_code}: {message}",
            parse_retry_after(resp.headers.get("Retry-After"), self._clock),
            reason=status_reason(resp.status_code))


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", ""))[:500] or resp.reason_phrase
    except (ValueError, AttributeError):
        return resp.text[:200].replace("\n", " ") or resp.reason_phrase


def _bad_points(resp: httpx.Response, size: int) -> dict[int, str]:
    """{position: reason} from the relay's 400 details, trusted only when every position
    is inside the batch (a batch-level complaint is not a bad point)."""
    try:
        details = resp.json().get("details") or []
        reasons: dict[int, str] = {}
        for d in details:
            index = d["index"]
            if not isinstance(index, int) or not 0 <= index < size:
                return {}
            reasons[index] = "; ".join(filter(None, [reasons.get(index), str(d["reason"])]))
        return reasons
    except (ValueError, AttributeError, KeyError, TypeError):
        return {}


class StdoutSink:
    """Prints each data point on one line, exactly what the relay would be given: the
    development default, so a developer sees what would be written."""

    name = "stdout"

    def __init__(self, out: IO[str] | None = None):
        self._out = out
        self._lock = threading.Lock()

    def send(self, points: Sequence[DataPoint], batch_id: str = "") -> None:
        out = self._out or sys.stdout
        text = "".join(json.dumps(p.as_json(), ensure_ascii=False) + "\n" for p in points)
        with self._lock:
            out.write(text)
            out.flush()


class NoneSink:
    """Sends nothing and confirms nothing: the log keeps every event and the cursor does
    not move, so switching to another sink later still sends everything."""

    name = "none"

    def send(self, points: Sequence[DataPoint], batch_id: str = "") -> None:
        raise SinkUnavailable("ANALYTICS_SINK is none: nothing is sent")



def from_config(sink: str, *, relay_url: str, relay_key: str, timeout_ms: int,
                http: httpx.Client, clock: Callable[[], float],
                out: IO[str] | None = None) -> Sink:
    """The sink ANALYTICS_SINK names. Raises ValueError for a relay without a URL."""
    if sink == "relay":
        if not relay_url:
            raise ValueError("ANALYTICS_SINK is relay but ANALYTICS_RELAY_URL is not set: "
                             "set it to the relay Worker's /ingest URL")
        return RelaySink(relay_url, relay_key, http=http, timeout_ms=timeout_ms, clock=clock)
    if sink == "stdout":
        return StdoutSink(out)
    return NoneSink()
