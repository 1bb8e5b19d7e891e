"""Group commit: one thread per process that commits the events of concurrent requests
together.

A commit is most of what storing one event costs, and with two processes writing one file
each commit also empties the other process's page cache. So requests hand their events to
this writer and wait; the writer takes everything that queued up while it was committing
and commits it in one transaction (`EventLog.append_groups`), then tells each request its
own outcome. A request is answered only after the transaction holding its events
committed, so an acknowledgement still means committed. Under light load a group is one
request and nothing waits longer than its own commit.

Callers say how they want to hear back: `submit(events, waiter, notify)` calls
`notify([(waiter, outcome), …])` from the writer thread once per group for all the
requests that gave that same `notify` (an event loop wakes once per group, not once per
request). `append(events)` is the blocking form.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Hashable, Sequence, Union

from ..intake.events import Event
from ..log import EVENTS, AppendResult, EventLog, LogUnavailable, event_rows

log = logging.getLogger("analytics_worker")

Outcome = Union[AppendResult, Exception]
Notify = Callable[[list[tuple[Any, Outcome]]], None]

# A group stops growing at this many events (a few batch requests), so that one
# transaction stays short; whatever is left goes into the next one.
MAX_GROUP_EVENTS = 4000


class WriterClosed(LogUnavailable):
    """The writer is shutting down and takes no more events."""


class _Pending:
    __slots__ = ("events", "waiter", "notify", "table")

    def __init__(self, events: Sequence[Any] | None, waiter: Any, notify: Notify,
                 table: str = EVENTS):
        self.events = events
        self.waiter = waiter
        self.notify = notify
        self.table = table


class Writer:
    """Commits queued requests' events in groups, on a thread of its own that owns the
    log's write connection from the first `submit` on. Create it after a fork."""

    def __init__(self, event_log: EventLog, *, max_group_events: int = MAX_GROUP_EVENTS):
        self._log = event_log
        self._max_group_events = max_group_events
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._closing = False
        self._thread: threading.Thread | None = None
        self.groups = 0  # transactions committed or tried: how well requests are grouped

    def submit(self, events: Sequence[Any] | None, waiter: Hashable | Any,
               notify: Notify, table: str = EVENTS) -> None:
        """Queue `events`; None queues a probe, whose outcome is whether the log can
        take a write transaction now (a bool). With `table` POINTS, `events` are raw
        data points already made rows (`points.row`)."""
        with self._cond:
            if self._closing:
                raise WriterClosed("The service is shutting down; nothing was stored")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
                self._thread.start()
            self._queue.append(_Pending(events, waiter, notify, table))
            self._cond.notify()

    def append(self, events: Sequence[Event]) -> AppendResult:
        """Commit `events` with whatever else is queued and wait; raises the log's error."""
        done = threading.Event()
        box: list[Outcome] = []

        def notify(items: list[tuple[Any, Outcome]]) -> None:
            for _, outcome in items:
                box.append(outcome)
            done.set()

        # A fresh notify per call: each blocking caller hears only about itself.
        self.submit(events, None, notify)
        done.wait()
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def writable(self) -> bool:
        """Whether the log takes a write transaction now, asked of the writer thread."""
        done = threading.Event()
        box: list[Any] = []

        def notify(items: list[tuple[Any, Any]]) -> None:
            box.extend(outcome for _, outcome in items)
            done.set()

        try:
            self.submit(None, None, notify)
        except WriterClosed:
            return False
        done.wait()
        return box[0] is True

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued, then stop the thread. Later submits are refused."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _take(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            count, size = 0, 0
            for pending in self._queue:
                n = len(pending.events) if pending.events is not None else 0
                if count and size + n > self._max_group_events:
                    break
                count += 1
                size += n
            group, self._queue = self._queue[:count], self._queue[count:]
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            probes = [p for p in group if p.events is None]
            group = [p for p in group if p.events is not None]
            if probes:
                try:
                    ok: Any = self._log.writable()
                except Exception:
                    ok = False
                self._tell(probes, [ok] * len(probes))
            if not group:
                continue
            outcomes: list[Outcome]
            try:
                if all(p.table == EVENTS for p in group):
                    outcomes = list(self._log.append_groups([p.events for p in group]))
                else:  # raw points among them: every request as rows, one transaction
                    layout = self._log.layout
                    outcomes = list(self._log.append_row_groups(
                        [event_rows(p.events, layout) if p.table == EVENTS else p.events
                         for p in group], [p.table for p in group]))
            except Exception as e:  # not the log's own error: every request hears of it
                log.exception("group commit failed")
                outcomes = [e] * len(group)
            self.groups += 1
            self._tell(group, outcomes)

    @staticmethod
    def _tell(group: list[_Pending], outcomes: Sequence[Any]) -> None:
        """Hand each request its outcome: one call per distinct `notify`."""
        by_notify: dict[int, tuple[Notify, list[tuple[Any, Outcome]]]] = {}
        for pending, outcome in zip(group, outcomes):
            by_notify.setdefault(id(pending.notify), (pending.notify, []))[1].append(
                (pending.waiter, outcome))
        for notify, items in by_notify.values():
            try:
                notify(items)
            except Exception:  # e.g. the waiting event loop has closed
                log.exception("could not hand a commit's outcome back")
