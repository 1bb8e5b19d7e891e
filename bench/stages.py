"""Where the time of an event goes, stage by stage, in one process (no server, no socket):
a single /track/api-call body and a 500-event /track/batch body, each stage timed on its
own over many repetitions, alternating rounds (the median is printed).

    .venv/bin/python bench/stages.py [--rounds 5]

Stages of a worker: read the JSON, validate it and build the events (`EventParser`),
make them rows (`event_rows`), frame them for the writer (`wire.request`). Stages of the
writer: read the frame (`wire.rows_of`) and commit (`EventLog.append_row_groups`, groups
of 32 single events or one batch). The HTTP server's and Falcon's own share is what
bench/request_cost.py measures against a no-op route.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.intake import layouts
from storage.intake.events import EventParser, parse_json  # noqa: E402
from storage.log import EventLog, event_rows  # noqa: E402
from storage.writer import wire  # noqa: E402

PAYLOAD = {"worker": "trade-worker", "endpoint": "/webhook", "latencyMs": 24.5,
           "success": True}


def per_event(fn: Callable[[], Any], repeat: int, events: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    events_parser = EventParser(lambda: "unused")
    single = json.dumps({"requestId": "r-1", "payload": PAYLOAD}).encode()
    batch = json.dumps({"events": [{"requestId": f"r-{i}", "payload": PAYLOAD}
                                   for i in range(500)]}).encode()
    log = EventLog(Path(tempfile.mkdtemp()) / "stages.db")
    counter = iter(range(10**9))

    def fresh_rows(n: int) -> list[list]:
        base = next(counter)
        docs = [{"requestId": f"s{base}-{i}", "payload": PAYLOAD} for i in range(n)]
        return [list(r) for r in event_rows(
            [events_parser.one(d, 1_764_000_000_000) for d in docs], layouts.PROFILE)]

    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, body, n, repeat in (("single", single, 1, 5000), ("batch", batch, 500, 40)):
            doc = parse_json(body)
            evs = (events_parser.many(doc, 1) if n > 1 else [events_parser.one(doc, 1)])
            rows = event_rows(evs, layouts.PROFILE)
            frame = wire.request(1, wire.APPEND, rows)
            stages = {
                "read JSON": lambda: parse_json(body),
                "validate, build events": (lambda: events_parser.many(doc, 1)) if n > 1
                else (lambda: events_parser.one(doc, 1)),
                "rows": lambda: event_rows(evs, layouts.PROFILE),
                "frame": lambda: wire.request(1, wire.APPEND, rows),
                "writer: read frame": lambda: wire.rows_of(frame[wire.REQUEST.size:]),
            }
            for stage, fn in stages.items():
                results.setdefault(f"{name}: {stage}", []).append(per_event(fn, repeat, n))
            groups = [fresh_rows(1) for _ in range(32)] if n == 1 else [fresh_rows(500)]
            start = time.perf_counter()
            log.append_row_groups(groups)
            results.setdefault(f"{name}: writer: commit (group of "
                               f"{'32 requests' if n == 1 else 'one batch'})", []).append(
                (time.perf_counter() - start) / (32 if n == 1 else 500) * 1e6)
    log.close()
    for stage, values in results.items():
        print(f"{stage:55s} {statistics.median(values):7.2f} us/event")


if __name__ == "__main__":
    main()
