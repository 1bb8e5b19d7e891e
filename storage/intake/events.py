"""From a request body to validated events.

jsonschema is the authority on what is valid and says why something is not. The plain
envelope, nearly every request, is checked directly (`is_plain_envelope`); any other body by
a compiled fastjsonschema validator, about 25 times faster than jsonschema. Property tests
check that both agree with jsonschema on generated documents.
"""

from __future__ import annotations

import functools
import json
import uuid
from importlib import resources
from typing import Any, Callable, Mapping, NamedTuple

import fastjsonschema

from . import datapoint, layouts, points
from .datapoint import DataPoint
from .layouts import EventType, Layout, ignored_keys


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
    # Keys of the body that are kept in the payload but have no place in the data point.
    ignored: tuple[str, ...] = ()


def load_schema(name: str) -> dict:
    return json.loads(resources.files("schemas").joinpath(f"{name}.json").read_text("utf-8"))


class Schema:
    """One JSON Schema, compiled once: a fast yes/no and jsonschema's reasons."""

    def __init__(self, schema: dict):
        self.schema = schema
        self._fast = fastjsonschema.compile(schema)

    @functools.cached_property
    def _exact(self) -> Any:
        """jsonschema's validator, built (and jsonschema loaded) at the first refusal:
        the writer process, which checks nothing, never loads it (4 MB of its 37)."""
        import jsonschema
        return jsonschema.Draft7Validator(self.schema)

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


@functools.cache
def compiled(name: str) -> Schema:
    """The schema of that name, compiled once per process (the files are the package's
    and never change): compiling one takes milliseconds, and the command line and the
    tests build many apps."""
    return Schema(load_schema(name))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads(..., parse_constant=...) builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(body: bytes) -> Any:
    """Strict JSON: NaN and Infinity are not JSON, and would be lost as doubles. Integers
    keep every digit (orjson would turn those past 64 bits into floats, and checking a body
    for them first costs more than orjson saves). Bytes are decoded as json.loads decodes
    them (UTF-8, -16 or -32, a UTF-8 BOM allowed)."""
    try:
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (ValueError, RecursionError) as e:
        raise InvalidInput(f"Malformed JSON: {e}") from None


# An Idempotency-Key header (SPEC §6.1): the relay sends a UUID; a caller may send its
# own. Bounded so that `<key>:<index>` of a batch item still fits an index (96 bytes).
MAX_IDEMPOTENCY_KEY = 64
_KEY_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))


def idempotency_key(value: str | None) -> str | None:
    """The Idempotency-Key header's value, or None when absent; refused when it could not
    be an event's request id (empty, too long, or not visible ASCII)."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY or not _KEY_CHARS.issuperset(value):
        raise InvalidInput("The Idempotency-Key header is not valid", [{
            "path": "header Idempotency-Key",
            "message": f"must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"}])
    return value


# The request ids made from an Idempotency-Key live apart from the ids bodies carry (SPEC
# §6.1): a UUID named by the key and the item's place, in a namespace of this service's
# own, so that no body's id (an `order-9:0` of its own) is ever taken for one, and a
# request sent again under its key makes the same ids (duplicates, not new events).
KEY_IDS = uuid.uuid5(uuid.NAMESPACE_DNS, "idempotency-key.analytics-worker")


def key_id(key: str, index: int = 0) -> str:
    """The request id of item `index` of a request sent under `key` (a single event is
    item 0)."""
    return str(uuid.uuid5(KEY_IDS, f"{key}:{index}"))


def former_key_id(key: str, index: int | None) -> str:
    """The id the same item got before ids from keys had a namespace of their own: the
    key itself for a single event (`index` None), `<key>:<index>` for a batch's item or a
    point. Logs written then hold these; `storage.log.keys` still finds them."""
    return key if index is None else f"{key}:{index}"


class EventParser:
    """Turns the bodies of a layout's event types, and batches of them, into `Event`s."""

    def __init__(self, new_id: Callable[[], str], layout: Layout = layouts.PROFILE):
        self._new_id = new_id
        self.layout = layout
        self.schemas = {name: compiled(t.schema) for name, t in layout.types.items()}
        self.batch = compiled("batch")
        # The plain envelope, nearly every request of the profile layout, checked directly.
        self._plain_envelope = layout is layouts.PROFILE

    @property
    def api_call(self) -> Schema:
        return self.schemas["api-call"]

    def one(self, doc: Any, received_ms: int, type_: str = "api-call",
            idempotency_key: str | None = None) -> Event:
        """With `idempotency_key`, an event whose body carries no request id gets the
        key's (`key_id`)."""
        fallback = None if idempotency_key is None else key_id(idempotency_key)
        event = self._valid_event(type_, doc, received_ms, fallback_id=fallback)
        if event is None:
            raise InvalidInput("The event is not valid", self._problems(type_, doc, "$"))
        return event

    def many(self, doc: Any, received_ms: int,
             idempotency_key: str | None = None) -> list[Event]:
        """A batch (SPEC §3.2): each item the body of the route its `type` names
        (default api-call). With `idempotency_key`, an item whose body carries no request
        id gets the key's id for its place (`key_id`), so a batch sent again is all
        duplicates."""
        details = self.batch.check(doc)
        events: list[Event] = []
        if not details:
            for i, item in enumerate(doc["events"]):
                prefix = f"$.events[{i}]"
                type_, body = "api-call", item
                if isinstance(item, dict) and "type" in item:
                    type_ = item["type"]
                    body = {k: v for k, v in item.items() if k != "type"}
                    if not isinstance(type_, str) or type_ not in self.layout.types:
                        details.append({"path": prefix + ".type",
                                        "message": f"{type_!r} is not one of "
                                                   f"{', '.join(self.layout.types)}"})
                        continue
                fallback = None if idempotency_key is None else key_id(idempotency_key, i)
                event = self._valid_event(type_, body, received_ms, fallback_id=fallback)
                if event is None:
                    details.extend(self._problems(type_, body, prefix))
                else:
                    events.append(event)
        if details:
            raise InvalidInput("The batch is not valid; nothing was stored", details)
        return events

    def from_record(self, record: Any, received_ms: int, prefix: str = "$") -> Event:
        """An event of the NDJSON interchange format (SPEC §7), with its own time and
        request id."""
        types = self.layout.types
        type_ = record.get("type") if isinstance(record, dict) else None
        if not isinstance(type_, str) or type_ not in types:
            raise InvalidInput(f"Not an event of the {self.layout.name} layout",
                               [{"path": prefix + ".type",
                                 "message": f"must be one of {', '.join(types)}"}])
        request_id, payload = record.get("requestId"), record.get("payload")
        problems = []
        if not isinstance(request_id, str) or not request_id:
            problems.append({"path": prefix + ".requestId",
                             "message": "must be a non-empty string"})
        if not isinstance(payload, dict):
            problems.append({"path": prefix + ".payload", "message": "must be an object"})
        if problems:
            raise InvalidInput("The event is not valid", problems)
        doc = types[type_].body(request_id, payload)
        event = self._valid_event(type_, doc, received_ms, request_id)
        if event is None:
            raise InvalidInput("The event is not valid", self._problems(type_, doc, prefix))
        return event

    def _valid_event(self, type_: str, doc: Any, received_ms: int,
                     request_id: str | None = None, fallback_id: str | None = None
                     ) -> Event | None:
        """The event of a valid body, or None. The common case, a valid event, builds
        its data point once; the reasons for an invalid one are worked out apart."""
        if self._plain_envelope and type_ == "api-call" and is_plain_envelope(doc):
            # The busiest path, built directly: no unknown keys, nothing to cut.
            rid, payload = request_id or doc["requestId"], doc["payload"]
            event = Event(rid, type_, received_ms, payload,
                          datapoint.api_call(rid, received_ms, payload))
        elif self.schemas[type_].is_valid(doc):
            event = self._event(self.layout.types[type_], doc, received_ms, request_id,
                                fallback_id)
        else:
            return None
        return None if datapoint.problems(event.point) else event

    def _problems(self, type_: str, doc: Any, prefix: str) -> list[dict[str, str]]:
        details = self.schemas[type_].check(doc, prefix)
        if details:
            return details
        event_type = self.layout.types[type_]
        # Only the data point's limits are in question: no fresh id is needed for it.
        point = self._event(event_type, doc, 0, event_type.request_id(doc) or "-").point
        paths = event_type.slots(doc)
        return [{"path": prefix + ("." + paths[slot] if slot in paths else ""),
                 "message": reason}
                for slot, reason in datapoint.problems(point)]

    def _event(self, event_type: EventType, doc: Mapping[str, Any], received_ms: int,
               request_id: str | None, fallback_id: str | None = None) -> Event:
        request_id = (request_id or event_type.request_id(doc) or fallback_id
                      or self._new_id())
        if self.layout.cut_index:
            request_id = datapoint.cut_index(request_id)
        payload = event_type.stored(doc)
        return Event(request_id, event_type.name, received_ms, payload,
                     event_type.point(request_id, received_ms, payload),
                     tuple(ignored_keys(doc, self.schemas[event_type.name].schema)))


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


# -- raw data points of any dataset (SPEC §3.6) ----------------------------------------------

class PointBatch(NamedTuple):
    dataset: str
    rows: list[tuple]


class PointParser:
    """Validates a /track/datapoints body (its JSON Schema, then Analytics Engine's limits,
    checked by `datapoint.problems` as for every event) and makes the table's rows."""

    def __init__(self, new_id: Callable[[], str], own_dataset: str):
        self._new_id = new_id
        self._own_dataset = own_dataset
        self.schema = compiled("datapoints")

    def parse(self, doc: Any, received_ms: int, idempotency_key: str | None = None
              ) -> PointBatch:
        """With `idempotency_key`, point i gets the key's id for its place (`key_id`), so
        a body sent again is all duplicates; without it each point gets a fresh id."""
        details = self.schema.check(doc)
        if not details and doc["dataset"] == self._own_dataset:
            details.append({"path": "$.dataset",
                            "message": f"{self._own_dataset} is this service's own dataset "
                                       "(ANALYTICS_DATASET): its events come through the "
                                       "other /track routes"})
        if details:
            raise InvalidInput("The data points are not valid; nothing was stored", details)
        dataset = doc["dataset"]
        rows = []
        for i, item in enumerate(doc["points"]):
            point = DataPoint(tuple("" if b is None else b for b in item.get("blobs", ())),
                              tuple(datapoint.as_float(v) for v in item.get("doubles", ())),
                              tuple(item.get("indexes", ())))
            for slot, reason in datapoint.problems(point):
                details.append({"path": f"$.points[{i}]{_slot_path(slot)}",
                                "message": reason})
            request_id = self._new_id() if idempotency_key is None \
                else key_id(idempotency_key, i)
            rows.append(points.row(dataset, request_id, received_ms, point))
        if details:
            raise InvalidInput("The data points are not valid; nothing was stored", details)
        return PointBatch(dataset, rows)


def _slot_path(slot: str) -> str:
    """The JSON path under a point of what `datapoint.problems` names a slot."""
    if slot.startswith("blob") and slot[4:].isdigit():
        return f".blobs[{int(slot[4:]) - 1}]"
    if slot.startswith("double") and slot[6:].isdigit():
        return f".doubles[{int(slot[6:]) - 1}]"
    if slot == "index1":
        return ".indexes[0]"
    return f".{slot}"
