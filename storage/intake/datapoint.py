"""The Analytics Engine data point of an event, and the limits Analytics Engine enforces.

An event that would make `writeDataPoint` throw must be refused at ingest: replay cannot
fix it later, and Analytics Engine would silently lose it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

# https://developers.cloudflare.com/analytics/analytics-engine/limits/
MAX_BLOBS = 20
MAX_DOUBLES = 20
MAX_INDEXES = 1
MAX_INDEX_BYTES = 96
MAX_BLOB_BYTES = 16_000
MAX_POINTS_PER_CALL = 250


class DataPoint(NamedTuple):
    blobs: tuple[str, ...]
    doubles: tuple[float, ...]
    indexes: tuple[str, ...]

    def as_json(self) -> dict[str, list]:
        return {"blobs": list(self.blobs), "doubles": list(self.doubles),
                "indexes": list(self.indexes)}


def _utf8_len(text: str) -> int | None:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates from "\ud800" in JSON
        return None


def _within_limits(point: DataPoint) -> bool:
    """The common case, answered without encoding anything: ASCII text (whose UTF-8
    length is its length; `isascii` reads a flag of the string) within every limit."""
    blobs, doubles, indexes = point
    if len(blobs) > MAX_BLOBS or len(doubles) > MAX_DOUBLES or len(indexes) > MAX_INDEXES:
        return False
    total = 0
    for blob in blobs:
        if not blob.isascii():
            return False
        total += len(blob)
    for index in indexes:
        if not index.isascii() or len(index) > MAX_INDEX_BYTES:
            return False
    isfinite = math.isfinite
    for value in doubles:
        if not isfinite(value):
            return False
    return total <= MAX_BLOB_BYTES


def problems(point: DataPoint) -> list[tuple[str, str]]:
    """Every way `point` breaks Analytics Engine's limits, as (slot, reason) pairs."""
    if _within_limits(point):
        return []
    found: list[tuple[str, str]] = []
    if len(point.blobs) > MAX_BLOBS:
        found.append(("blobs", f"{len(point.blobs)} blobs, at most {MAX_BLOBS} allowed"))
    if len(point.doubles) > MAX_DOUBLES:
        found.append(("doubles", f"{len(point.doubles)} doubles, at most {MAX_DOUBLES} allowed"))
    if len(point.indexes) > MAX_INDEXES:
        found.append(("indexes", f"{len(point.indexes)} indexes, at most {MAX_INDEXES} allowed"))
    total = 0
    for i, blob in enumerate(point.blobs):
        size = _utf8_len(blob)
        if size is None:
            found.append((f"blob{i + 1}", "is not valid Unicode (lone surrogate)"))
        else:
            total += size
    if total > MAX_BLOB_BYTES:
        found.append(("blobs", f"blobs are {total} bytes together, at most "
                               f"{MAX_BLOB_BYTES} allowed"))
    for i, value in enumerate(point.doubles):
        if not math.isfinite(value):
            found.append((f"double{i + 1}", "is not a finite number"))
    for index in point.indexes:
        size = _utf8_len(index)
        if size is None:
            found.append(("index1", "is not valid Unicode (lone surrogate)"))
        elif size > MAX_INDEX_BYTES:
            found.append(("index1", f"is {size} bytes, at most {MAX_INDEX_BYTES} allowed"))
    return found


def api_call(request_id: str, received_ms: int, payload: Mapping[str, Any]) -> DataPoint:
    """SPEC §4: the data point of an api-call event."""
    return DataPoint(
        blobs=(payload["worker"], payload["endpoint"], "1" if payload["success"] else "0"),
        # float() of a huge JSON integer overflows: report it as not finite.
        doubles=(as_float(payload["latencyMs"]), received_ms / 1000.0),
        indexes=(request_id,),
    )


def as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


# -- the hoox layout (SPEC §9): the platform's own data points -----------------------------

MAX_HOOX_BLOB_CHARS = 256


def cut_index(text: str) -> str:
    """`text` cut to Analytics Engine's 96 bytes, never inside a UTF-8 sequence."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return text  # a lone surrogate: `problems` refuses it whole
    if len(data) <= MAX_INDEX_BYTES:
        return text
    return data[:MAX_INDEX_BYTES].decode("utf-8", "ignore")


def _blobs(*values: str) -> tuple[str, ...]:
    # The platform cuts every blob to 256 characters; the payload keeps the whole text.
    return tuple(v[:MAX_HOOX_BLOB_CHARS] for v in values)


def _outcome(success: bool) -> str:
    return "success" if success else "failure"


def hoox_trade(request_id: str, received_ms: int, body: Mapping[str, Any]) -> DataPoint:
    order, result = body["payload"], body["result"]
    exchange = order["exchange"] + (":test" if order.get("test") else "")
    return DataPoint(
        blobs=_blobs("trade", "trade-worker", _outcome(result["success"]), exchange,
                     order["symbol"]),
        doubles=(as_float(order["quantity"]), as_float(order.get("price", 0)),
                 as_float(body.get("latencyMs", 0)), received_ms / 1000.0, 0.0),
        indexes=(request_id,))


def hoox_api_call(request_id: str, received_ms: int, payload: Mapping[str, Any]) -> DataPoint:
    return DataPoint(
        blobs=_blobs("api-call", payload["worker"], _outcome(payload["success"]),
                     payload["endpoint"], ""),
        doubles=(as_float(payload["latencyMs"]), 0.0, 0.0, received_ms / 1000.0, 0.0),
        indexes=(request_id,))


def hoox_worker_perf(request_id: str, received_ms: int, body: Mapping[str, Any]) -> DataPoint:
    data = body["data"]
    return DataPoint(
        blobs=_blobs("worker-perf", data["worker"],
                     "degraded" if data["errors"] > 0 else "success", "", ""),
        doubles=(as_float(data["requests"]), as_float(data["errors"]),
                 as_float(data["duration"]), received_ms / 1000.0, 0.0),
        indexes=(request_id,))


def hoox_signal(request_id: str, received_ms: int, body: Mapping[str, Any]) -> DataPoint:
    data = body["data"]
    return DataPoint(
        blobs=_blobs("signal", data["source"], "pending", data["type"], data["symbol"]),
        doubles=(as_float(data["confidence"]), 0.0, 0.0, received_ms / 1000.0, 0.0),
        indexes=(request_id,))


def hoox_notification(request_id: str, received_ms: int, body: Mapping[str, Any]
                      ) -> DataPoint:
    data = body["data"]
    return DataPoint(
        blobs=_blobs("notification", data["target"], _outcome(data["success"]),
                     data["type"], ""),
        doubles=(0.0, 0.0, 0.0, received_ms / 1000.0, 0.0),
        indexes=(request_id,))


# -- agent-worker's risk events (SPEC §9): flat bodies, written by agent-worker ------------

AGENT_WORKER = "agent-worker"


def hoox_housekeeping(request_id: str, received_ms: int, body: Mapping[str, Any]
                      ) -> DataPoint:
    return DataPoint(
        blobs=_blobs("housekeeping", body["worker"],
                     "degraded" if body["unhealthy"] > 0 else "success", "", ""),
        doubles=(as_float(body["checks"]), as_float(body["healthy"]),
                 as_float(body["unhealthy"]), received_ms / 1000.0, 0.0),
        indexes=(request_id,))


def hoox_trailing_stop(request_id: str, received_ms: int, body: Mapping[str, Any]
                       ) -> DataPoint:
    return DataPoint(
        blobs=_blobs("trailing-stop", AGENT_WORKER, body["side"], body["exchange"],
                     body["symbol"]),
        doubles=(as_float(body["watermark"]), as_float(body["currentPrice"]), 0.0,
                 received_ms / 1000.0, 0.0),
        indexes=(request_id,))


def hoox_take_profit(request_id: str, received_ms: int, body: Mapping[str, Any]
                     ) -> DataPoint:
    return DataPoint(
        blobs=_blobs("take-profit", AGENT_WORKER, body["side"], body["exchange"],
                     body["symbol"]),
        doubles=(as_float(body["entryPrice"]), as_float(body["currentPrice"]),
                 as_float(body["scaledQuantity"]), received_ms / 1000.0, 0.0),
        indexes=(request_id,))


def hoox_kill_switch(request_id: str, received_ms: int, body: Mapping[str, Any]
                     ) -> DataPoint:
    # agent-worker sends pnlPercent as `toFixed(2)`, a decimal string; the schema allows
    # only a number or such a string, so float() cannot fail here.
    return DataPoint(
        blobs=_blobs("kill-switch", AGENT_WORKER, body["trigger"], "", ""),
        doubles=(as_float(body["pnlPercent"]), as_float(body["limit"]),
                 as_float(body["totalUnrealizedPnl"]), received_ms / 1000.0,
                 as_float(body["accountValue"])),
        indexes=(request_id,))
