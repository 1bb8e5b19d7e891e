"""From a request body to validated events.

jsonschema is the authority on what is valid and says why something is not. The plain
envelope, nearly every request, is checked directly (`is_plain_envelope`); any other body by
a compiled fastjsonschema validator, about 25 times faster than jsonschema. Property tests
check that both agree with jsonschema on generated documents.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Callable, Mapping, NamedTuple

import fastjsonschema
import jsonschema

from . import datapoint
from .datapoint import DataPoint

SCHEMA_NAMES = ("api-call", "batch", "query")


class InvalidInput(Exception):
    """The body is not what the API accepts. `details` lists every violation."""

    def __init__(self, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class Event(NamedTuple):
    request_id: str
    type: str
    received_ms: int
    payload: Mapping[str, Any]
    point: DataPoint


def load_schema(name: str) -> dict:
    return json.loads(resources.files("schemas").joinpath(f"{name}.json").read_text("utf-8"))


class Schema:
    """One JSON Schema, compiled once: a fast yes/no and jsonschema's reasons."""

    def __init__(self, schema: dict):
        self.schema = schema
        self._fast = fastjsonschema.compile(schema)
        self._exact = jsonschema.Draft7Validator(schema)

    def is_valid(self, doc: Any) -> bool:
        try:
            self._fast(doc)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    def violations(self, doc: Any, prefix: str = "$") -> list[dict[str, str]]:
        errors = sorted(self._exact.iter_errors(doc), key=lambda e: list(e.absolute_path))
        return [{"path": prefix + e.json_path[1:], "message": e.message} for e in errors]

    def check(self, doc: Any, prefix: str = "$") -> list[dict[str, str]]:
        return [] if self.is_valid(doc) else self.violations(doc, prefix)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads(..., parse_constant=...) builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(body: bytes) -> Any:
    """Strict JSON: NaN and Infinity are not JSON, and would be lost as doubles. Integers
    keep every digit (orjson would turn those past 64 bits into floats). Bytes are decoded
    as json.loads decodes them (UTF-8, -16 or -32, a UTF-8 BOM allowed)."""
    try:
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (ValueError, RecursionError) as e:
        raise InvalidInput(f"Malformed JSON: {e}") from None


class EventParser:
    """Turns api-call bodies (either shape) and batches into `Event`s."""

    def __init__(self, new_id: Callable[[], str]):
        self._new_id = new_id
        self.api_call = Schema(load_schema("api-call"))
        self.batch = Schema(load_schema("batch"))

    def one(self, doc: Any, received_ms: int) -> Event:
        event = self._valid_event(doc, received_ms)
        if event is None:
            raise InvalidInput("The event is not valid", self._problems(doc, "$"))
        return event

    def many(self, doc: Any, received_ms: int) -> list[Event]:
        details = self.batch.check(doc)
        events: list[Event] = []
        if not details:
            for i, item in enumerate(doc["events"]):
                event = self._valid_event(item, received_ms)
                if event is None:
                    details.extend(self._problems(item, f"$.events[{i}]"))
                else:
                    events.append(event)
        if details:
            raise InvalidInput("The batch is not valid; nothing was stored", details)
        return events

    def from_record(self, record: Any, received_ms: int, prefix: str = "$") -> Event:
        """An event of the NDJSON interchange format (SPEC §7), with its own time."""
        if not isinstance(record, dict) or record.get("type") != "api-call":
            raise InvalidInput("Not an api-call record",
                               [{"path": prefix + ".type", "message": "must be 'api-call'"}])
        doc = {"requestId": record.get("requestId"), "payload": record.get("payload")}
        event = self._valid_event(doc, received_ms)
        if event is None:
            raise InvalidInput("The event is not valid", self._problems(doc, prefix))
        return event

    def _valid_event(self, doc: Any, received_ms: int) -> Event | None:
        """The event of a valid body, or None. The common case, a valid event, builds
        its data point once; the reasons for an invalid one are worked out apart."""
        if not (is_plain_envelope(doc) or self.api_call.is_valid(doc)):
            return None
        event = self._event(doc, received_ms)
        return None if datapoint.problems(event.point) else event

    def _problems(self, doc: Any, prefix: str) -> list[dict[str, str]]:
        details = self.api_call.check(doc, prefix)
        if details:
            return details
        request_id, payload = _shape(doc)
        point = datapoint.api_call(request_id or "", 0, payload)
        return [{"path": _slot_path(doc, slot, prefix), "message": reason}
                for slot, reason in datapoint.problems(point)]

    def _event(self, doc: Mapping[str, Any], received_ms: int) -> Event:
        request_id, payload = _shape(doc)
        request_id = request_id or self._new_id()
        return Event(request_id, "api-call", received_ms, payload,
                     datapoint.api_call(request_id, received_ms, payload))


def is_plain_envelope(doc: Any) -> bool:
    """Whether `doc` is the envelope shape exactly as api-call.json allows it:
    {"requestId": non-empty string, "payload": {"worker", "endpoint": non-empty strings,
    "latencyMs": number >= 0, "success": boolean}}, nothing more. Nearly every request is
    this; checking it directly costs a tenth of running the schema. Anything else goes to
    the schema. A property test holds this to jsonschema on generated documents."""
    if type(doc) is not dict or len(doc) != 2:
        return False
    request_id, payload = doc.get("requestId"), doc.get("payload")
    if type(request_id) is not str or not request_id or type(payload) is not dict \
            or len(payload) != 4:
        return False
    worker, endpoint = payload.get("worker"), payload.get("endpoint")
    latency = payload.get("latencyMs")
    return (type(worker) is str and worker != "" and type(endpoint) is str and endpoint != ""
            and type(payload.get("success")) is bool
            and type(latency) in (int, float) and latency >= 0)


def _shape(doc: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(request id or None, payload) from either body shape of SPEC §3.1."""
    if "payload" in doc:
        return doc["requestId"], doc["payload"]
    payload = {k: doc[k] for k in ("worker", "endpoint", "latencyMs", "success")}
    indexes = doc.get("indexes") or [None]
    return indexes[0], payload


_SLOT_FIELDS = {"blob1": "worker", "blob2": "endpoint", "double1": "latencyMs"}


def _slot_path(doc: Mapping[str, Any], slot: str, prefix: str) -> str:
    """Where in the body the value behind a data point slot came from."""
    envelope = "payload" in doc
    if slot == "index1":
        parts = ["requestId" if envelope else "indexes[0]"]
    else:
        parts = (["payload"] if envelope else []) + [_SLOT_FIELDS.get(slot, "")]
    return ".".join([prefix] + [p for p in parts if p])
