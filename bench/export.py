"""Export of a large log: throughput and peak resident memory.

    .venv/bin/python bench/export.py [--events 1000000] [--rounds 3] [--db PATH]

Builds (or reuses) a log of N events, then runs, alternating and each in a fresh
process, `analytics-worker export` as NDJSON and as CSV to /dev/null, and a baseline that
imports the same modules and only iterates `SELECT … FROM events ORDER BY seq` over the
same columns. Each child reports its time, its peak resident set (VmHWM from
/proc/self/status) and the resident set once its imports are done. The `-lean` runs hide
pandas and numpy, as in a production install (they arrive only with the test dependency
chdb-core, and sqlite-utils imports them when they are present). Figures are
medians; the export's cost is also given as a ratio to the baseline measured in the same
run, because absolute numbers move by ±20% between runs on shared machines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0_MS = 1_764_000_000_000
BATCH = 20_000


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def build(path: Path, events: int) -> None:
    from storage.intake import datapoint
    from storage.intake.events import Event
    from storage.log import EventLog

    log = EventLog(path)
    have = log.count()
    if have == events:
        log.close()
        return
    if have:
        raise SystemExit(f"{path} holds {have} events, not {events}: use another --db")
    started = time.perf_counter()
    workers = ["trade-worker", "hoox", "d1-worker", "telegram-worker"]
    endpoints = ["/webhook", "/signal", "/query", "/api/v1/orders/place"]
    for start in range(0, events, BATCH):
        batch = []
        for i in range(start, min(start + BATCH, events)):
            payload = {"worker": workers[i % 4], "endpoint": endpoints[i % 3],
                       "latencyMs": (i % 997) * 0.25, "success": i % 11 != 0}
            request_id = f"9b1deb4d-3b7d-4bad-9bdd-{i:012d}"
            received_ms = T0_MS + i * 7
            batch.append(Event(request_id, "api-call", received_ms, payload,
                               datapoint.api_call(request_id, received_ms, payload)))
        log.append(batch)
    log.checkpoint()
    log.close()
    print(f"built {events} events in {time.perf_counter() - started:.1f} s "
          f"({path.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)


def child(kind: str, db: str) -> None:
    import sqlite3

    if kind.endswith("-lean"):
        # What a production install sees: pandas and numpy come only with chdb-core, a
        # test dependency, and sqlite-utils imports them (about 95 MB) when present.
        sys.modules["pandas"] = sys.modules["numpy"] = None  # type: ignore[assignment]
        kind = kind.removesuffix("-lean")
    from cli import main  # the baseline pays the same imports as the command

    imported_mb = peak_rss_mb()
    started = time.perf_counter()
    if kind == "baseline":
        conn = sqlite3.connect(db)
        n = 0
        for _ in conn.execute(
                "SELECT request_id, type, received_ms, payload FROM events ORDER BY seq"):
            n += 1
    else:
        os.environ.pop("ANALYTICS_DB", None)
        main(["export", "--db", db, "--format", kind, "-o", os.devnull],
             standalone_mode=False)
        n = int(sqlite3.connect(db).execute("SELECT count(*) FROM events").fetchone()[0])
    seconds = time.perf_counter() - started
    print(json.dumps({"kind": kind, "events": n, "seconds": seconds,
                      "peak_rss_mb": peak_rss_mb(), "imported_rss_mb": imported_mb}))


def measure(kind: str, db: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--db", str(db)],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, str(args.db))
        return

    db = args.db or Path(tempfile.gettempdir()) / f"bench-export-{args.events}.db"
    build(db, args.events)
    kinds = ["baseline", "ndjson", "csv", "baseline-lean", "ndjson-lean", "csv-lean"]
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for kind in kinds:  # alternating, so drift on the machine hits all alike
            runs[kind].append(measure(kind, db))

    base_s = statistics.median(r["seconds"] for r in runs["baseline"])
    print(f"{args.events} events, {args.rounds} rounds; time: median, memory: worst")
    print(f"{'run':<15}{'seconds':>8}{'events/s':>11}{'x baseline':>11}"
          f"{'peak RSS MB':>13}{'after imports':>15}{'grown by':>10}")
    for kind in kinds:
        seconds = statistics.median(r["seconds"] for r in runs[kind])
        rss = max(r["peak_rss_mb"] for r in runs[kind])
        imported = max(r["imported_rss_mb"] for r in runs[kind])
        print(f"{kind:<15}{seconds:>8.2f}{args.events / seconds:>11,.0f}"
              f"{seconds / base_s:>11.2f}{rss:>13.1f}{imported:>15.1f}{rss - imported:>10.1f}")


if __name__ == "__main__":
    main()
