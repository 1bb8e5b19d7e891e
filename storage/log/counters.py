"""Durable counters (SPEC §12): the service's figures kept in the log itself, so that any
worker answering a scrape reads the same totals and no restart resets them.

Two kinds of writes reach the `counters` table:

- **with the events**: accepted and duplicate events per type are added inside the very
  transaction that commits the events (`EventLog`'s insert path, whichever process
  writes), and pruned events inside retention's delete. These are exact: a kill -9 can
  lose an event only together with its count.
- **from a worker**: rejections, request and query durations, query outcomes and
  Cloudflare's reachability happen in a worker, not in a transaction of the log. Each
  worker adds them up in memory (`Tally`) and a thread of its own (`Flusher`) adds them
  to the table about once a second, and before a scrape that worker answers. A worker
  killed with SIGKILL loses what it counted since its last flush (at most about a
  second of those figures, never a reset); a clean exit flushes.

Rows are (name, labels, value, updated_ms); labels are a canonical JSON object. A counter
row only grows; a gauge row (`set_gauge`) keeps the newest value by its time. Nothing
here imports Falcon.
"""

from __future__ import annotations

import atexit
import bisect
import functools
import logging
import sqlite3
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Mapping, Sequence

import orjson

log = logging.getLogger("analytics_worker")

# Counter names as the table keeps them (the metric names without the prefix).
ACCEPTED = "events_accepted_total"
DUPLICATE = "events_duplicate_total"
PRUNED = "log_pruned_events_total"
# Raw data points (`intake/points.py`), per dataset: what a dataset holds is accepted minus pruned.
POINTS_ACCEPTED = "datapoints_accepted_total"
POINTS_DUPLICATE = "datapoints_duplicate_total"
POINTS_PRUNED = "log_pruned_datapoints_total"
REJECTED = "requests_rejected_total"
REQUEST_DURATION = "request_duration_seconds"
QUERIES = "queries_total"
QUERY_DURATION = "query_duration_seconds"
REPLAY_FAILURES = "replay_failures_total"
CLOUDFLARE_REACHABLE = "cloudflare_reachable"

# Seconds: from a fast ingest (~1 ms) to a slow query near its time limit.
DURATION_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Key = tuple[str, str]  # (name, labels as canonical JSON)

CREATE = """
    CREATE TABLE IF NOT EXISTS counters (
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        value REAL NOT NULL,
        updated_ms INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (name, labels)
    ) WITHOUT ROWID"""

_ADD = ("INSERT INTO counters (name, labels, value, updated_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value,"
        " updated_ms = excluded.updated_ms")
_SET = ("INSERT INTO counters (name, labels, value, updated_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name, labels) DO UPDATE SET value = excluded.value,"
        " updated_ms = excluded.updated_ms WHERE excluded.updated_ms >= counters.updated_ms")


def labels(**values: str) -> str:
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode()


def type_key(name: str, type_: str) -> Key:
    return (name, labels(type=type_))


def create_table(conn: sqlite3.Connection) -> None:
    """The table, with the accepted counts of a log written before it existed (its events
    as they are now: what was pruned before is not known)."""
    conn.execute(CREATE)
    conn.execute(
        "INSERT OR IGNORE INTO counters (name, labels, value)"
        " SELECT ?, json_object('type', type), count(*) FROM events GROUP BY type",
        (ACCEPTED,))


def add(conn: sqlite3.Connection, increments: Mapping[Key, float],
        now_ms: int | None = None) -> None:
    """Inside the caller's write transaction: add each increment to its counter."""
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    conn.executemany(_ADD, [(name, lab, value, stamp)
                            for (name, lab), value in increments.items() if value])


def set_gauges(conn: sqlite3.Connection, gauges: Mapping[Key, tuple[float, int]]) -> None:
    """Inside the caller's write transaction: each gauge takes its value unless the table
    has a newer one (two workers' views: the latest wins)."""
    conn.executemany(_SET, [(name, lab, value, at_ms)
                            for (name, lab), (value, at_ms) in gauges.items()])


def add_events(conn: sqlite3.Connection, accepted: Mapping[str, int],
               duplicates: Mapping[str, int]) -> None:
    """The insert path's counts, per event type, in the events' own transaction."""
    increments: dict[Key, float] = {}
    for type_, n in accepted.items():
        increments[type_key(ACCEPTED, type_)] = n
    for type_, n in duplicates.items():
        increments[type_key(DUPLICATE, type_)] = n
    if increments:
        add(conn, increments)


def log_events(conn: sqlite3.Connection) -> int:
    """Events in the log now: accepted minus pruned, read by the counters' key."""
    row = conn.execute(
        "SELECT (SELECT coalesce(sum(value), 0) FROM counters WHERE name = ?)"
        " - (SELECT coalesce(sum(value), 0) FROM counters WHERE name = ?)",
        (ACCEPTED, PRUNED)).fetchone()
    return int(row[0])


def add_points(conn: sqlite3.Connection, accepted: Mapping[str, int],
               duplicates: Mapping[str, int]) -> None:
    """The insert path's counts of raw points, per dataset, in the points' transaction."""
    increments: dict[Key, float] = {}
    for dataset, n in accepted.items():
        increments[(POINTS_ACCEPTED, labels(dataset=dataset))] = n
    for dataset, n in duplicates.items():
        increments[(POINTS_DUPLICATE, labels(dataset=dataset))] = n
    if increments:
        add(conn, increments)


def points_held(conn: sqlite3.Connection) -> dict[str, int]:
    """{dataset: points it holds}: accepted minus pruned, read by the counters' key (no
    scan of the points)."""
    held: dict[str, float] = {}
    for name, lab, value in conn.execute(
            "SELECT name, labels, value FROM counters WHERE name IN (?, ?)",
            (POINTS_ACCEPTED, POINTS_PRUNED)):
        dataset = orjson.loads(lab)["dataset"]
        held[dataset] = held.get(dataset, 0.0) + (value if name == POINTS_ACCEPTED else -value)
    return {dataset: int(n) for dataset, n in held.items()}


def read(conn: sqlite3.Connection) -> list[tuple[str, dict[str, str], float]]:
    """Every row, labels decoded: a few hundred at most (labels have few values)."""
    return [(name, orjson.loads(lab), value) for name, lab, value in
            conn.execute("SELECT name, labels, value FROM counters ORDER BY name, labels")]


# -- a worker's own figures -----------------------------------------------------------------

class Tally:
    """What one worker counted since its last flush. Thread-safe: the event loop counts,
    the flusher takes. A histogram observation is one bucket index here; `take` turns
    the tally into the table's cumulative rows."""

    def __init__(self, buckets: Sequence[float] = DURATION_BUCKETS):
        self.buckets = tuple(buckets)
        self._lock = threading.Lock()
        self._counts: dict[Key, float] = {}
        self._gauges: dict[Key, tuple[float, int]] = {}
        # (name, label, value) -> [count per bucket (the last is +Inf), sum]
        self._histograms: dict[tuple[str, str, str], list[Any]] = {}

    def count(self, name: str, labels_json: str, by: float = 1.0) -> None:
        key = (name, labels_json)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + by

    def observe(self, name: str, label: str, value: str, seconds: float) -> None:
        index = bisect.bisect_left(self.buckets, seconds)
        key = (name, label, value)
        with self._lock:
            entry = self._histograms.get(key)
            if entry is None:
                entry = self._histograms[key] = [[0] * (len(self.buckets) + 1), 0.0]
            entry[0][index] += 1
            entry[1] += seconds

    def set_gauge(self, name: str, labels_json: str, value: float, at_ms: int) -> None:
        with self._lock:
            self._gauges[(name, labels_json)] = (value, at_ms)

    def take(self) -> tuple[dict[Key, float], dict[Key, tuple[float, int]]]:
        """Everything counted, as increments of the table's rows (a histogram as
        cumulative `name_bucket` rows with `le`, `name_sum` and `name_count`, as
        Prometheus reads them), and the gauges set."""
        with self._lock:
            counts, self._counts = self._counts, {}
            gauges, self._gauges = self._gauges, {}
            histograms, self._histograms = self._histograms, {}
        for (name, label, value), (per_bucket, total) in histograms.items():
            running = 0
            for le, n in zip((*map(repr, self.buckets), "+Inf"), per_bucket):
                running += n
                if running:
                    key = (name + "_bucket", _labels(label, value, le))
                    counts[key] = counts.get(key, 0.0) + running
            for suffix, by in (("_count", running), ("_sum", total)):
                key = (name + suffix, _labels(label, value))
                counts[key] = counts.get(key, 0.0) + by
        return counts, gauges

    def give_back(self, counts: Mapping[Key, float],
                  gauges: Mapping[Key, tuple[float, int]]) -> None:
        """After a flush that failed (the log locked or full): kept for the next one.
        Bounded by the number of label combinations, not by time."""
        with self._lock:
            for key, by in counts.items():
                self._counts[key] = self._counts.get(key, 0.0) + by
            for key, gauge in gauges.items():
                if key not in self._gauges or self._gauges[key][1] < gauge[1]:
                    self._gauges[key] = gauge

    def empty(self) -> bool:
        with self._lock:
            return not self._counts and not self._gauges and not self._histograms


@functools.lru_cache(maxsize=4096)
def _labels(label: str, value: str, le: str | None = None) -> str:
    return labels(**{label: value}) if le is None else labels(**{label: value, "le": le})


class Flusher:
    """Adds a worker's `Tally` to the table every `every_s`, on a daemon thread with a
    write connection of its own (`open_log` returns an `EventLog`, opened on the first
    flush). `poll` runs before each flush (to read state into the tally)."""

    def __init__(self, tally: Tally, open_log: Callable[[], Any], *, every_s: float = 1.0,
                 poll: Callable[[], None] | None = None):
        self.tally = tally
        self._open_log = open_log
        self._every_s = every_s
        self._poll = poll
        self._lock = threading.Lock()
        self._log: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # The thread holds the flusher weakly: it ends once the app that owns it is gone.
        self._thread = threading.Thread(
            target=_run, args=(weakref.ref(self), self._stop, self._every_s),
            name="counters", daemon=True)
        self._thread.start()
        atexit.register(_flush_at_exit, weakref.ref(self))

    def flush(self) -> bool:
        """Write what was counted; False (and nothing lost) when the log refused."""
        if self._poll is not None:
            try:
                self._poll()
            except Exception:
                log.debug("counters: poll failed", exc_info=True)
        if self.tally.empty():
            return True
        with self._lock:
            counts, gauges = self.tally.take()
            try:
                if self._log is None:
                    self._log = self._open_log()
                with self._log.transaction() as conn:
                    add(conn, counts)
                    set_gauges(conn, gauges)
            except Exception as e:  # the log is locked, full or gone: try again later
                self.tally.give_back(counts, gauges)
                log.debug("counters: flush failed: %s", e)
                return False
        return True

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        self.flush()
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None


def _run(flusher: "weakref.ref[Flusher]", stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        running = flusher()
        if running is None:
            return
        running.flush()
        del running


def _flush_at_exit(flusher: "weakref.ref[Flusher]") -> None:
    running = flusher()
    if running is not None:
        running.stop()


def histogram_rows(rows: Iterable[tuple[str, dict[str, str], float]], name: str, label: str
                   ) -> dict[str, tuple[list[tuple[str, float]], float]]:
    """{label value: (cumulative buckets [(le, count)], sum)} of histogram `name`."""
    out: dict[str, tuple[list[tuple[str, float]], float]] = {}
    for row_name, lab, value in rows:
        if row_name == name + "_bucket":
            out.setdefault(lab[label], ([], 0.0))[0].append((lab["le"], value))
        elif row_name == name + "_sum":
            buckets, _ = out.setdefault(lab[label], ([], 0.0))
            out[lab[label]] = (buckets, value)
    for key, (buckets, total) in out.items():
        # Buckets below the smallest observation have no row: they count 0.
        have = {le for le, _ in buckets}
        buckets.extend((repr(le), 0.0) for le in DURATION_BUCKETS if repr(le) not in have)
        buckets.sort(key=lambda b: float(b[0]))
    return out
