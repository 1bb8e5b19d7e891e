"""The service under real gunicorn with two sync workers sharing one log."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import AUTH, HTTP, api_call
from storage.log import EventLog

pytestmark = pytest.mark.gunicorn


def post_events(url: str, prefix: str, count: int, acked: list[str], errors: list[str],
                stop: threading.Event | None = None, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        for i in range(count):
            if (stop and stop.is_set()) or time.monotonic() > deadline:
                return
            request_id = f"{prefix}-{i}"
            try:
                response = http.post("/track/api-call", json=api_call(request_id))
            except httpx.HTTPError as e:  # the worker serving us was killed
                errors.append(f"{request_id}: {e!r}")
                continue
            if response.status_code == 200:
                acked.append(request_id)
            else:
                errors.append(f"{request_id}: {response.status_code} {response.text}")


def test_concurrent_posts_from_several_threads_are_all_stored_exactly_once(
        gunicorn_server, db_path):
    server = gunicorn_server()
    acked: list[str] = []
    errors: list[str] = []
    with ThreadPoolExecutor(6) as pool:
        for t in range(6):
            pool.submit(post_events, server.url, f"t{t}", 150, acked, errors)
    assert errors == []
    assert len(acked) == 900
    # every thread also resends some of its ids: acknowledged as duplicates, stored once
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        for request_id in acked[:50]:
            response = http.post("/track/api-call", json=api_call(request_id))
            assert response.json() == {"success": True, "duplicate": True}
    log = EventLog(db_path)
    ids = [row["request_id"] for row in log.events()]
    assert sorted(ids) == sorted(acked)
    seqs = [row["seq"] for row in log.events()]
    assert seqs == sorted(set(seqs))
    log.close()


BETWEEN_KILLS = 40  # events acknowledged between two kills, and after the last


def test_a_worker_killed_mid_load_loses_no_acknowledged_event(gunicorn_server, db_path):
    server = gunicorn_server()
    acked: list[str] = []
    errors: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=post_events,
                                args=(server.url, f"k{t}", 100_000, acked, errors, stop, 30))
               for t in range(4)]
    for thread in threads:
        thread.start()
    try:
        killed = 0
        deadline = time.monotonic() + 20
        while killed < 3 and time.monotonic() < deadline:
            # each kill lands mid-load: BETWEEN_KILLS more events acknowledged since the
            # last one (counted, not timed: a busy machine acknowledges fewer a second)
            if len(acked) < BETWEEN_KILLS * (killed + 1):
                time.sleep(0.05)
                continue
            pids = server.worker_pids()
            if pids:
                os.kill(pids[killed % len(pids)], signal.SIGKILL)
                killed += 1
        while len(acked) < BETWEEN_KILLS * (killed + 1) and time.monotonic() < deadline:
            time.sleep(0.05)  # and the load goes on after the last
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert killed == 3, f"{len(acked)} events acknowledged in 20 s"
    assert len(acked) >= BETWEEN_KILLS * (killed + 1)
    server.stop()

    # After a restart, every acknowledged event is there, once.
    restarted = gunicorn_server()
    log = EventLog(db_path)
    ids = [row["request_id"] for row in log.events()]
    assert len(ids) == len(set(ids))
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost"
    # Unacknowledged requests may or may not have been committed; nothing else is there.
    unacked = {e.split(":")[0] for e in errors}
    assert set(ids) <= set(acked) | unacked
    log.close()
    with httpx.Client(base_url=restarted.url, headers=AUTH) as http:
        assert http.get("/status").json()["events"] == len(ids)


def test_the_writer_killed_under_load_loses_no_acknowledged_event_and_comes_back(
        gunicorn_server, db_path):
    """kill -9 of the service's writer process, three times under load: every
    acknowledged event is in the log once, and each time the service takes events again
    within 5 s."""
    server = gunicorn_server()
    acked: list[str] = []
    errors: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=post_events,
                                args=(server.url, f"w{t}", 100_000, acked, errors, stop, 40))
               for t in range(4)]
    for thread in threads:
        thread.start()
    back_within: list[float] = []
    try:
        for kill in range(3):
            time.sleep(0.5)
            pid = server.writer_pid()
            assert pid is not None
            before = len(acked)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            while len(acked) == before or server.writer_pid() in (None, pid):
                assert time.monotonic() - killed_at < 5, "the service did not come back"
                time.sleep(0.01)
            back_within.append(time.monotonic() - killed_at)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(back_within) == 3
    server.stop()
    # Refused requests were told so (503), never left hanging.
    assert all(": 503 " in e or "Error" in e for e in errors), errors[:3]
    log = EventLog(db_path)
    ids = [row["request_id"] for row in log.events()]
    log.close()
    assert len(ids) == len(set(ids))
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert set(ids) <= set(acked) | {e.split(":")[0] for e in errors}


def test_a_held_up_writer_makes_requests_wait_then_refuses_them_with_nothing_stored(
        gunicorn_server, db_path):
    """The writer stopped (SIGSTOP): requests wait; past the bound of events waiting for
    it they get a 503 within seconds and nothing of theirs is stored. When it resumes,
    every request that waited is answered and stored."""
    server = gunicorn_server(workers=1, ANALYTICS_WRITER_QUEUE_EVENTS="500")
    pid = server.writer_pid()
    assert pid is not None
    answers: dict[str, tuple[int, float]] = {}

    def post_batch(name: str) -> None:
        events = [{"type": "api-call", **api_call(f"{name}-{i}")} for i in range(100)]
        start = time.monotonic()
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            status = http.post("/track/batch", json={"events": events}).status_code
        answers[name] = (status, time.monotonic() - start)

    os.kill(pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(post_batch, f"b{n}") for n in range(12)]
            time.sleep(6)  # past the 4 s a request waits for room
            refused = {n for n, (status, _) in answers.items() if status == 503}
            os.kill(pid, signal.SIGCONT)
            for f in futures:
                f.result(30)
    finally:
        os.kill(pid, signal.SIGCONT)
    # 500 events may wait: 5 batches; the other 7 were refused after waiting ~4 s.
    stored_batches = {n for n, (status, _) in answers.items() if status == 200}
    assert len(stored_batches) == 5 and len(refused) == 7, answers
    assert all(3.5 < answers[n][1] < 6 for n in refused)
    log = EventLog(db_path)
    ids = {row["request_id"] for row in log.events()}
    log.close()
    assert {i.split("-")[0] for i in ids} == stored_batches
    assert len(ids) == 500


def test_a_tmpdir_too_long_for_a_unix_socket_still_serves(gunicorn_server, db_path, tmp_path):
    # AF_UNIX paths hold at most 107 bytes: the writer's socket must not live under this
    long_tmp = tmp_path / ("t" * 100)
    long_tmp.mkdir()
    assert len(str(long_tmp / "analytics-writer-xxxxxxxx" / "writer.sock")) > 107
    server = gunicorn_server(workers=1, TMPDIR=str(long_tmp))
    response = HTTP.post(server.url + "/track/api-call", json=api_call("long-tmpdir"),
                         headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    log = EventLog(db_path)
    try:
        assert log.contains("long-tmpdir")
    finally:
        log.close()
