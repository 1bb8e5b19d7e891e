"""`GET /metrics` (SPEC §12): the service's figures in Prometheus's text format.

Everything comes from the log, never from one process's memory: the counters table
(`log/counters.py`), the replay tables, and the file's size. A scrape reads a few hundred
rows by key and stats two files; it never scans the events:

- the event count is accepted minus pruned, both counted in the log's transactions;
- the backlog is the newest sequence number minus the cursor: events above the cursor
  are never pruned and SQLite numbers new events max(seq) + 1, so they have no gaps;
- the oldest unconfirmed event is one lookup by primary key.

prometheus_client writes the format, from a collector over one snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                    Metric)
from prometheus_client.registry import Collector

from . import replay
from .config import VERSION, Config
from .log import EventLog, counters

PREFIX = "analytics_worker_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class SinkFigures:
    name: str
    backlog: int
    lag_s: float
    sent: int
    dead: int
    last_success_s: float | None


@dataclass(frozen=True)
class Snapshot:
    layout: str
    dataset: str
    types: tuple[str, ...]
    rows: list[tuple[str, dict[str, str], float]]
    log_bytes: int
    sinks: list[SinkFigures] = field(default_factory=list)

    def total(self, name: str) -> float:
        return sum(value for row, _, value in self.rows if row == name)

    @property
    def log_events(self) -> int:
        return int(self.total(counters.ACCEPTED) - self.total(counters.PRUNED))


def backlog_of(event_log: EventLog, sink: str, now_ms: int) -> tuple[int, float]:
    """(events the sink has not confirmed, age in seconds of the first of them)."""
    pending = replay.backlog(event_log, sink)
    if pending.oldest_ms is None:
        return 0, 0.0
    return pending.events, max(0.0, (now_ms - pending.oldest_ms) / 1000.0)


def snapshot(event_log: EventLog, config: Config, now_ms: int) -> Snapshot:
    rows = counters.read(event_log.conn)
    sinks = []
    if config.sink != "none":  # the none sink sends nothing: no backlog to watch
        state = replay.read_state(event_log, config.sink)
        backlog, lag_s = backlog_of(event_log, config.sink, now_ms)
        sinks.append(SinkFigures(config.sink, backlog, lag_s, state.sent, state.dead,
                                 None if not state.last_success_ms
                                 else state.last_success_ms / 1000.0))
    return Snapshot(layout=config.layout, dataset=config.dataset,
                    types=tuple(event_log.layout.types), rows=rows,
                    log_bytes=event_log.size_bytes(), sinks=sinks)


class _Figures(Collector):
    def __init__(self, snap: Snapshot):
        self._snap = snap

    def collect(self) -> Iterator[Metric]:
        snap = self._snap
        by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, labels, value in snap.rows:
            by_name.setdefault(name, []).append((labels, value))

        def counter(name: str, doc: str, labels: list[str],
                    always: list[list[str]] = ()) -> CounterMetricFamily:  # type: ignore
            family = CounterMetricFamily(PREFIX + name, doc, labels=labels)
            seen = set()
            for lab, value in by_name.get(name, []):
                values = [lab.get(k, "") for k in labels]
                seen.add(tuple(values))
                family.add_metric(values, value)
            for values in always:
                if tuple(values) not in seen:
                    family.add_metric(values, 0.0)
            return family

        types = [[t] for t in snap.types]
        yield counter(counters.ACCEPTED, "Events committed to the log.", ["type"], types)
        yield counter(counters.DUPLICATE, "Events acknowledged as duplicates.", ["type"],
                      types)
        yield counter(counters.REJECTED, "Requests refused, by HTTP status.", ["status"])
        yield self._histogram(counters.REQUEST_DURATION, "Time to answer a request, per "
                              "route template.", "route")

        gauge = GaugeMetricFamily(PREFIX + "log_events", "Events in the log.")
        gauge.add_metric([], snap.log_events)
        yield gauge
        gauge = GaugeMetricFamily(PREFIX + "log_bytes",
                                  "The log's size on disk, with its WAL.")
        gauge.add_metric([], snap.log_bytes)
        yield gauge

        families = {
            "backlog": GaugeMetricFamily(PREFIX + "replay_backlog_events",
                                         "Events not yet confirmed by the sink.",
                                         labels=["sink"]),
            "lag": GaugeMetricFamily(PREFIX + "replay_lag_seconds",
                                     "Age of the oldest unconfirmed event (0 when none).",
                                     labels=["sink"]),
            "sent": CounterMetricFamily(PREFIX + "replay_sent_events_total",
                                        "Events the sink confirmed.", labels=["sink"]),
            "dead": GaugeMetricFamily(PREFIX + "replay_dead_letter_events",
                                      "Events set aside after a permanent refusal.",
                                      labels=["sink"]),
            "last": GaugeMetricFamily(PREFIX + "replay_last_success_timestamp_seconds",
                                      "Unix time of the last confirmed send.",
                                      labels=["sink"]),
        }
        for sink in snap.sinks:
            families["backlog"].add_metric([sink.name], sink.backlog)
            families["lag"].add_metric([sink.name], sink.lag_s)
            families["sent"].add_metric([sink.name], sink.sent)
            families["dead"].add_metric([sink.name], sink.dead)
            if sink.last_success_s is not None:
                families["last"].add_metric([sink.name], sink.last_success_s)
        yield from families.values()
        yield counter(counters.REPLAY_FAILURES, "Failed sends, by class of failure.",
                      ["sink", "reason"])

        yield counter(counters.QUERIES, "/query and SQL API answers by source and outcome.",
                      ["source", "outcome"])
        yield self._histogram(counters.QUERY_DURATION, "Time to answer a query, per source.",
                              "source")
        gauge = GaugeMetricFamily(PREFIX + "cloudflare_reachable",
                                  "1 when the SQL API answered the last call, 0 when not; "
                                  "no sample until a call was made.")
        # Absent rather than 0 before any call: nothing failed, and an alert on == 0
        # must not fire on a service that never asked (or has no Cloudflare at all).
        for _, value in by_name.get(counters.CLOUDFLARE_REACHABLE, [])[:1]:
            gauge.add_metric([], value)
        yield gauge
        gauge = GaugeMetricFamily(PREFIX + "build_info", "The running version and layout.",
                                  labels=["version", "layout", "dataset"])
        gauge.add_metric([VERSION, snap.layout, snap.dataset], 1)
        yield gauge

    def _histogram(self, name: str, doc: str, label: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(PREFIX + name, doc, labels=[label])
        for value, (buckets, total) in sorted(
                counters.histogram_rows(self._snap.rows, name, label).items()):
            family.add_metric([value], buckets, total)
        return family


def render(snap: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(snap))
    return generate_latest(registry)
