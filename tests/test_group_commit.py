"""Group commit: the events of concurrent requests in one transaction, each request with
its own outcome — every acknowledged event stored exactly once, and a failed transaction
failing exactly the requests that would have failed alone, with their own error."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import api_call

from storage.intake.events import Event, EventParser
from storage.log import AppendResult, EventLog, LogFull
from storage.writer.group import Writer, WriterClosed

PARSER = EventParser(lambda: "unused")


def events(*request_ids: str, worker: str = "trade-worker") -> list[Event]:
    return [PARSER.one(api_call(i, worker=worker), 1_764_000_000_000) for i in request_ids]


@pytest.fixture
def writer(db_path: Path) -> Iterator[Writer]:
    log = EventLog(db_path)
    writer = Writer(log)
    yield writer
    writer.close()
    log.close()


class Gate:
    """Holds the database's write lock from another connection, so that requests queue
    up behind the writer's current transaction and form one group when it opens."""

    def __init__(self, db_path: Path):
        self._conn = sqlite3.connect(str(db_path), isolation_level=None)

    def __enter__(self) -> "Gate":
        self._conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._conn.execute("COMMIT")
        self._conn.close()


def submit_all(writer: Writer, requests: list[list[Event]]) -> list[Any]:
    """Submit every request at once (the writer's queue held until all are in it, so
    that an idle writer takes them as one group) and wait for all outcomes, in request
    order."""
    outcomes: dict[int, Any] = {}
    done = threading.Event()

    def notify(items: list[tuple[Any, Any]]) -> None:
        for index, outcome in items:
            outcomes[index] = outcome
        if len(outcomes) == len(requests):
            done.set()

    with writer._cond:  # reentrant: submit takes it too
        for index, request in enumerate(requests):
            writer.submit(request, index, notify)
    assert done.wait(10), "not every request was answered"
    return [outcomes[i] for i in range(len(requests))]


def test_queued_requests_are_committed_in_one_transaction(writer, db_path, event_log):
    writer.append(events("first"))  # the writer thread runs and owns its connection
    groups = writer.groups
    with Gate(db_path):
        results: list[Any] = []
        thread = threading.Thread(
            target=lambda: results.extend(submit_all(writer, [events(f"g-{i}")
                                                               for i in range(20)])))
        thread.start()
        time.sleep(0.3)  # all 20 queue behind the held lock
    thread.join(10)
    assert results == [AppendResult(1, 0)] * 20
    assert writer.groups - groups <= 2  # one group, or the first alone and the rest
    assert event_log.count() == 21


def test_concurrent_requests_store_every_acknowledged_event_exactly_once(writer, event_log):
    acked: list[str] = []
    duplicates: list[str] = []
    lock = threading.Lock()

    def client(t: int) -> None:
        for i in range(60):
            # Every id is sent by two clients at once: one is stored, one is a duplicate.
            request_id = f"c{t // 2}-{i}"
            result = writer.append(events(request_id))
            with lock:
                (acked if result.accepted else duplicates).append(request_id)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(acked) == sorted(f"c{t}-{i}" for t in range(8) for i in range(60))
    assert sorted(duplicates) == sorted(acked)
    ids = [row["request_id"] for row in event_log.events()]
    assert sorted(ids) == sorted(acked)
    assert writer.groups < 16 * 60  # requests did share transactions


def test_a_failed_group_fails_exactly_its_own_requests_with_their_own_errors(
        writer, event_log):
    writer.append(events("already-there"))
    conn = writer._log.db.conn  # the write connection: cap the file's growth
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 4}")
    big_batch = events(*[f"big-{i}" for i in range(400)], worker="w" * 200)
    requests = [events("small-1"), big_batch, events("already-there"), events("small-2")]
    groups = writer.groups
    small_1, big, duplicate, small_2 = submit_all(writer, requests)
    assert writer.groups == groups + 1  # the four formed one group, yet each has its own outcome
    assert small_1 == AppendResult(1, 0)
    assert isinstance(big, LogFull) and "full" in str(big)
    assert duplicate == AppendResult(0, 1)
    assert small_2 == AppendResult(1, 0)
    ids = {row["request_id"] for row in event_log.events()}
    assert ids == {"already-there", "small-1", "small-2"}  # the batch: all or nothing


def test_a_group_whose_requests_all_fit_reports_each_ones_counts(db_path, event_log):
    log = EventLog(db_path)
    try:
        results = log.append_groups([events("a", "b"), events("a"), events("c", "c")])
    finally:
        log.close()
    assert results == [AppendResult(2, 0), AppendResult(0, 1), AppendResult(1, 1)]
    assert event_log.count() == 3


def test_a_closed_writer_commits_what_was_queued_and_refuses_more(db_path, event_log):
    log = EventLog(db_path)
    writer = Writer(log)
    outcomes: list[Any] = []
    with Gate(db_path):
        writer.submit(events("queued"), None, lambda items: outcomes.extend(items))
        time.sleep(0.1)
        closing = threading.Thread(target=writer.close)
        closing.start()
    closing.join(10)
    assert outcomes == [(None, AppendResult(1, 0))]
    with pytest.raises(WriterClosed):
        writer.submit(events("late"), None, lambda items: None)
    log.close()
    assert event_log.count() == 1


def test_reads_on_other_threads_never_disturb_the_writers_commits(db_path):
    """Two processes' writers (two logs on one file) commit fresh events while other
    threads read the first log as /status does. Every answer is checked on its own: a
    fresh id is never a duplicate, and every acknowledged id is stored exactly once."""
    first, second = EventLog(db_path), EventLog(db_path)
    writers = [Writer(first), Writer(second)]
    deadline = time.monotonic() + 4
    acked: list[str] = []
    wrong: list[str] = []

    def client(writer: Writer, name: str) -> None:
        for i in range(50_000):
            if time.monotonic() > deadline:
                return
            request_id = f"{name}-{i}"
            try:
                result = writer.append(events(request_id))
            except Exception as e:
                wrong.append(f"{request_id}: {e!r}")
                continue
            (acked if result == AppendResult(1, 0) else wrong).append(request_id)

    reads: list[int] = []
    read_errors: list[str] = []

    def reader() -> None:
        done = 0
        try:
            while time.monotonic() < deadline and done < 50_000:
                first.count()
                first.last_seq()
                first.replayed_through("relay")
                done += 1
                time.sleep(0.001)
        except Exception as e:  # a thread's exception is lost unless kept
            read_errors.append(repr(e))
        reads.append(done)

    threads = [threading.Thread(target=client, args=(w, f"{n}{t}"))
               for n, w in enumerate(writers) for t in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    for writer in writers:
        writer.close()
    stored = [row["request_id"] for row in first.events()]
    first.close()
    second.close()
    assert wrong == []
    assert read_errors == []
    assert len(reads) == 2 and min(reads) >= 100, reads  # each reader read all along
    assert len(acked) >= 100, len(acked)
    assert sorted(stored) == sorted(acked)
