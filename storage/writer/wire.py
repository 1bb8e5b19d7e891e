"""The frames between a worker and the service's writer process, over a Unix socket.

A worker sends each request's events as rows (`log.event_rows`: the worker does the
parsing, validating and row building, the writer only stores), or its raw data points
(`points.row`, kind APPEND_POINTS), tagged with a number of its own; the writer answers
each tag once its transaction committed, or with the error that storing them alone would
have raised. A probe asks whether the log takes writes.

    request: length u32 | tag u32 | kind u8   | payload (orjson of the rows)
    answer:  length u32 | tag u32 | code u8 | accepted u32 | duplicates u32 | message

`length` counts what follows the header. Little-endian throughout.
"""

from __future__ import annotations

import struct
from typing import Any, Iterator, Sequence

import orjson

REQUEST = struct.Struct("<IIB")
ANSWER = struct.Struct("<IIBII")

APPEND, PROBE, APPEND_POINTS = 0, 1, 2
# The log's table each kind of request appends to (`log.EVENTS`, `log.POINTS`).
TABLES = {APPEND: "events", APPEND_POINTS: "points"}
# Answer codes: stored (or writable, for a probe); the log's errors; the writer's own refusal.
OK, FULL, UNAVAILABLE, NOT_WRITABLE = 0, 1, 2, 3

# A frame is a batch request at most (ANALYTICS_MAX_BATCH_BYTES as rows): anything larger
# is a broken peer.
MAX_FRAME = 256 * 1024 * 1024


class FrameError(Exception):
    """A frame that no peer of ours sends."""


def request(tag: int, kind: int, rows: Sequence[Sequence[Any]] = ()) -> bytes:
    payload = orjson.dumps(rows) if kind in TABLES else b""
    return REQUEST.pack(len(payload), tag, kind) + payload


def answer(tag: int, code: int, accepted: int = 0, duplicates: int = 0,
           message: str = "") -> bytes:
    text = message.encode("utf-8", "replace")
    return ANSWER.pack(len(text), tag, code, accepted, duplicates) + text


class Reader:
    """Splits a byte stream into frames of one header shape."""

    def __init__(self, header: struct.Struct):
        self._header = header
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[tuple[Any, ...], bytes]]:
        """Every whole frame `data` completes: (the header's fields after the length,
        the payload)."""
        buffer = self._buffer
        buffer += data
        size = self._header.size
        start = 0
        while len(buffer) - start >= size:
            fields = self._header.unpack_from(buffer, start)
            length = fields[0]
            if length > MAX_FRAME:
                raise FrameError(f"a frame of {length} bytes")
            end = start + size + length
            if len(buffer) < end:
                break
            yield fields[1:], bytes(buffer[start + size:end])
            start = end
        if start:
            del buffer[:start]


def rows_of(payload: bytes) -> list[list[Any]]:
    return orjson.loads(payload)
