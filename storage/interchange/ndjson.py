"""The NDJSON interchange format of SPEC §7, one event a line:

    {"requestId":"…","type":"api-call","receivedAt":"2026-11-24T17:56:30.123Z","payload":{…}}

`export` writes it and `import` reads it; an export imported into an empty log exports
the same bytes, because the payload is written exactly as the log stores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

from ..intake.events import Event, EventParser, InvalidInput, parse_json
from ..intake.timestamps import format_time, parse_time


def to_line(request_id: str, type_: str, received_ms: int, payload_json: str) -> str:
    return (f'{{"requestId":{json.dumps(request_id, ensure_ascii=False)},'
            f'"type":{json.dumps(type_)},"receivedAt":"{format_time(received_ms)}",'
            f'"payload":{payload_json}}}\n')


@dataclass(frozen=True)
class BadLine:
    line: int
    error: str
    details: list


def read_events(lines: Iterable[bytes | str], parser: EventParser
                ) -> Iterator[tuple[int, Event | BadLine]]:
    """(line number, event or the reason the line was refused) for each non-blank line."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            record = parse_json(text if isinstance(text, bytes) else text.encode("utf-8"))
            received = record.get("receivedAt") if isinstance(record, dict) else None
            try:
                received_ms = parse_time(received)  # type: ignore[arg-type]
            except ValueError as e:
                raise InvalidInput(str(e), [{"path": "$.receivedAt", "message": str(e)}])
            yield number, parser.from_record(record, received_ms)
        except InvalidInput as e:
            yield number, BadLine(number, e.message, e.details)


def write_events(rows: Iterable, out: IO[str]) -> int:
    """Write log rows (request_id, type, received_ms, payload) as NDJSON; returns count."""
    count = 0
    for row in rows:
        out.write(to_line(row["request_id"], row["type"], row["received_ms"], row["payload"]))
        count += 1
    return count
