"""Layouts (SPEC §9): which event types a log takes and how each becomes a data point.

Each event type is declared once, here: its route (`/track/<name>`, also its `type` in
`/track/batch` and in the NDJSON interchange), its JSON Schema in `schemas/`, and its
mapping to a data point. The resources, the batch, import, export, replay and audit all
work from these declarations, so a new event type is one declaration, one schema and its
tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import datapoint
from .datapoint import DataPoint


@dataclass(frozen=True)
class EventType:
    # The route is /track/<name>; `name` is also the `type` of a batch item and of an
    # NDJSON line, and of the event in the log.
    name: str
    # schemas/<schema>.json validates the body. Keys it does not name are accepted (unless
    # it forbids them), kept in the payload and named in the answer as ignored.
    schema: str
    # (request id, received ms, stored payload) -> the data point.
    point: Callable[[str, int, Mapping[str, Any]], DataPoint]
    # The request id a valid body carries, or None (a fresh one is made).
    request_id: Callable[[Mapping[str, Any]], str | None]
    # The payload the log keeps for a valid body.
    stored: Callable[[Mapping[str, Any]], dict[str, Any]]
    # The body again from (request id, stored payload): for import.
    body: Callable[[str, Mapping[str, Any]], dict[str, Any]]
    # Where in the body the value of a data point slot comes from (error details).
    slots: Callable[[Mapping[str, Any]], Mapping[str, str]] = lambda body: {}


@dataclass(frozen=True)
class Layout:
    name: str
    dataset: str
    types: Mapping[str, EventType]
    # How many blobs and doubles its data points carry, and which double (1-based) is the
    # time the event was received: the log derives that one from `received_ms`.
    blobs: int
    doubles: int
    received_double: int
    # Whether a request id longer than an index may be (96 bytes) is cut to fit (hoox, as
    # the platform does) rather than refused (profile).
    cut_index: bool = False

    def __post_init__(self) -> None:
        assert 1 <= self.received_double <= self.doubles <= datapoint.MAX_DOUBLES
        assert self.blobs <= datapoint.MAX_BLOBS


def ignored_keys(doc: Any, schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the keys of a valid `doc` that its JSON Schema does not name, in
    document order: accepted and kept, but without a place in the data point (SPEC §9).
    The schema's `if`/`then`/`else` (api-call's two shapes) picks the branch that applies."""
    if "if" in schema:
        applies = all(k in doc for k in schema["if"].get("required", ()))
        schema = schema["then"] if applies else schema["else"]
    properties = schema.get("properties")
    if properties is None or not isinstance(doc, dict):
        return []
    found: list[str] = []
    for key, value in doc.items():
        if key not in properties:
            found.append(prefix + key)
        else:
            found.extend(ignored_keys(value, properties[key], f"{prefix}{key}."))
    return found


# -- api-call, both layouts ---------------------------------------------------------------

API_CALL_FIELDS = ("worker", "endpoint", "latencyMs", "success")


def _api_call_request_id(body: Mapping[str, Any]) -> str | None:
    if "payload" in body:
        return body["requestId"]
    indexes = body.get("indexes") or [None]
    return indexes[0]


def _api_call_stored(body: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope's payload; for the flat shape its fields and any unknown keys (the
    request id, indexes[0], is the event's own)."""
    if "payload" in body:
        return body["payload"]  # type: ignore[return-value]
    return {k: v for k, v in body.items() if k != "indexes"}


def _hoox_api_call_stored(body: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope's payload; the flat body whole: its indexes after the first, which no
    data point carries (Analytics Engine takes one index), are kept with it."""
    if "payload" in body:
        return body["payload"]  # type: ignore[return-value]
    return dict(body)


def _api_call_body(request_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope when the payload is one; otherwise the flat body as it was stored
    (the request id is given apart)."""
    if set(payload) == set(API_CALL_FIELDS):
        return {"requestId": request_id, "payload": dict(payload)}
    return dict(payload)


def _profile_slots(body: Mapping[str, Any]) -> Mapping[str, str]:
    envelope = "payload" in body
    base = "payload." if envelope else ""
    return {"index1": "requestId" if envelope else "indexes[0]",
            "blob1": base + "worker", "blob2": base + "endpoint", "double1": base + "latencyMs"}


def _hoox_api_call_slots(body: Mapping[str, Any]) -> Mapping[str, str]:
    envelope = "payload" in body
    base = "payload." if envelope else ""
    return {"index1": "requestId" if envelope else "indexes[0]",
            "blob2": base + "worker", "blob4": base + "endpoint", "double1": base + "latencyMs"}


PROFILE_API_CALL = EventType(
    name="api-call", schema="api-call", point=datapoint.api_call,
    request_id=_api_call_request_id, stored=_api_call_stored, body=_api_call_body,
    slots=_profile_slots)

HOOX_API_CALL = EventType(
    name="api-call", schema="hoox-api-call", point=datapoint.hoox_api_call,
    request_id=_api_call_request_id, stored=_hoox_api_call_stored, body=_api_call_body,
    slots=_hoox_api_call_slots)


# -- the other event types of the hoox layout: the body is stored whole --------------------

def _whole(body: Mapping[str, Any]) -> dict[str, Any]:
    return dict(body)


def _no_request_id(body: Mapping[str, Any]) -> None:
    return None


def _same_body(request_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    return dict(payload)


def _data_type(name: str, blob_slots: Mapping[str, str], point: Callable[..., DataPoint]
               ) -> EventType:
    """An event type whose body is {"data": {…}}; `blob_slots` names the field behind
    each blob (for error paths)."""
    paths = {slot: f"data.{field}" for slot, field in blob_slots.items()}
    return EventType(name=name, schema=f"hoox-{name}", point=point,
                     request_id=_no_request_id, stored=_whole, body=_same_body,
                     slots=lambda body: paths)


def _trade_request_id(body: Mapping[str, Any]) -> str | None:
    return body["payload"].get("requestId")


HOOX_TRADE = EventType(
    name="trade", schema="hoox-trade", point=datapoint.hoox_trade,
    request_id=_trade_request_id, stored=_whole, body=_same_body,
    slots=lambda body: {"index1": "payload.requestId", "blob4": "payload.exchange",
                        "blob5": "payload.symbol"})

HOOX_WORKER_PERF = _data_type("worker-perf", {"blob2": "worker"}, datapoint.hoox_worker_perf)
HOOX_SIGNAL = _data_type("signal", {"blob2": "source", "blob4": "type", "blob5": "symbol"},
                         datapoint.hoox_signal)
HOOX_NOTIFICATION = _data_type("notification", {"blob2": "target", "blob4": "type"},
                               datapoint.hoox_notification)



# -- agent-worker's risk events: flat bodies, stored whole --------------------------------

def _flat_type(name: str, blob_slots: Mapping[str, str], point: Callable[..., DataPoint]
               ) -> EventType:
    """An event type whose body is flat, as agent-worker sends it; `blob_slots` names the
    field behind each blob (for error paths)."""
    paths = dict(blob_slots)
    return EventType(name=name, schema=f"hoox-{name}", point=point,
                     request_id=_no_request_id, stored=_whole, body=_same_body,
                     slots=lambda body: paths)


HOOX_HOUSEKEEPING = _flat_type("housekeeping", {"blob2": "worker"},
                               datapoint.hoox_housekeeping)
HOOX_TRAILING_STOP = _flat_type("trailing-stop",
                                {"blob3": "side", "blob4": "exchange", "blob5": "symbol"},
                                datapoint.hoox_trailing_stop)
HOOX_TAKE_PROFIT = _flat_type("take-profit",
                              {"blob3": "side", "blob4": "exchange", "blob5": "symbol"},
                              datapoint.hoox_take_profit)
HOOX_KILL_SWITCH = _flat_type("kill-switch", {"blob3": "trigger"}, datapoint.hoox_kill_switch)

PROFILE = Layout(
    name="profile", dataset="hoox_telemetry", types={"api-call": PROFILE_API_CALL},
    blobs=3, doubles=2, received_double=2)

HOOX = Layout(
    name="hoox", dataset="hoox-analytics",
    types={t.name: t for t in (HOOX_TRADE, HOOX_API_CALL, HOOX_WORKER_PERF, HOOX_SIGNAL,
                               HOOX_NOTIFICATION, HOOX_HOUSEKEEPING, HOOX_TRAILING_STOP,
                               HOOX_TAKE_PROFIT, HOOX_KILL_SWITCH)},
    # double4 is the received time; double5 only the kill switch's accountValue fills.
    blobs=5, doubles=5, received_double=4, cut_index=True)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (PROFILE, HOOX)}
DEFAULT = PROFILE.name


def get(name: str) -> Layout:
    return LAYOUTS[name]
