"""Replay of the log to a sink (SPEC §5), against the Cloudflare stand-in and real SQLite
files: order, batches, the cursor, the lease and its fence, backoff, Retry-After, dead
letters, the sinks, the server's background loop and `analytics-worker replay`."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner
from conftest import DRAIN_S, FixedClock, api_call, service_env
from standin import StandIn

import cli
from storage import replay
from storage.intake import datapoint
from storage.intake.events import Event, EventParser
from storage.log import EventLog
from storage.replay import Backoff, Replayer, ReplayLoop
from storage.replay.sink import NoneSink, RelaySink, SinkRejected, SinkUnavailable, StdoutSink

PARSER = EventParser(lambda: "unused")
T0_MS = 1_764_000_000_000


def make_events(n: int, prefix: str = "req", start_ms: int = T0_MS) -> list[Event]:
    return [PARSER.one(api_call(f"{prefix}-{i}", latencyMs=i + 0.25, success=i % 3 != 0,
                                worker=f"worker-{i % 4}", endpoint=f"/e/{i % 5}"),
                       start_ms + i * 10)
            for i in range(n)]


def bad_event(request_id: str, received_ms: int = T0_MS) -> Event:
    """An event whose data point Analytics Engine refuses (the parser would refuse it too:
    this stands for rows written before a limit was known)."""
    payload = {"worker": "w", "endpoint": "/e", "latencyMs": 1.0, "success": True}
    return Event(request_id, "api-call", received_ms, payload,
                 datapoint.api_call(request_id, received_ms, payload))


@pytest.fixture
def log_a(db_path: Path) -> Iterator[EventLog]:
    log = EventLog(db_path)
    yield log
    log.close()


@pytest.fixture
def log_b(db_path: Path) -> Iterator[EventLog]:
    log = EventLog(db_path)
    yield log
    log.close()


def relay(standin: StandIn, http: httpx.Client, clock: Any, timeout_ms: int = 1000) -> RelaySink:
    return RelaySink(standin.relay_url, standin.relay_key, http=http, timeout_ms=timeout_ms,
                     clock=clock)


def replayer(log: EventLog, sink: Any, clock: Any, holder: str = "a", **kw: Any) -> Replayer:
    kw.setdefault("backoff", Backoff(base_s=0.01, cap_s=0.05, random=lambda: 1.0))
    kw.setdefault("send_timeout_ms", 1000)
    return Replayer(log, sink, holder=holder, lease_ms=10_000, clock=clock, **kw)


def expected_point(e: Event) -> dict[str, Any]:
    """SPEC §4, as the stand-in stores it."""
    return {"index1": e.request_id, "blob1": e.payload["worker"],
            "blob2": e.payload["endpoint"], "blob3": "1" if e.payload["success"] else "0",
            "double1": float(e.payload["latencyMs"]), "double2": e.received_ms / 1000.0}


# -- order, batches, cursor --------------------------------------------------------------

def test_replay_sends_every_event_in_order_in_batches_of_at_most_250(
        log_a: EventLog, standin: StandIn, http: httpx.Client, clock: FixedClock) -> None:
    events = make_events(600)
    log_a.append(events)
    result = replayer(log_a, relay(standin, http, clock), clock).drain(timeout_s=DRAIN_S)

    assert result.drained and result.sent == 600 and result.dead == 0
    assert [len(c.indexes) for c in standin.calls] == [250, 250, 100]
    assert standin.indexes() == [e.request_id for e in events]
    stored = {p["index1"]: {k: p[k] for k in expected_point(events[0])} for p in standin.points}
    assert all(stored[e.request_id] == expected_point(e) for e in events)
    assert log_a.replayed_through("relay") == log_a.last_seq() == 600
    assert replay.backlog(log_a, "relay") == replay.Backlog(0, None)


def test_cursor_stays_while_the_sink_is_down_and_nothing_is_lost_or_skipped(
        log_a: EventLog, standin: StandIn, http: httpx.Client, clock: FixedClock) -> None:
    first, second = make_events(300, "first"), make_events(100, "second")
    log_a.append(first)
    r = replayer(log_a, relay(standin, http, clock, timeout_ms=200), clock)
    for mode in ("refuse", "500", "hang"):
        standin.set_mode(mode)
        tick = r.tick()
        assert tick.outcome == "failed" and tick.sent == 0, (mode, tick)
        assert log_a.replayed_through("relay") == 0
        clock.advance(1)  # past the backoff
    log_a.append(second)  # ingest goes on during the outage
    standin.set_mode("up")
    # The rest with the usual timeout: a send that a busy machine holds past 200 ms would
    # fail, and back off on a clock that never moves.
    r = replayer(log_a, relay(standin, http, clock), clock)
    assert r.drain(timeout_s=DRAIN_S).drained
    assert set(standin.indexes()) == {e.request_id for e in first + second}
    assert standin.indexes()[:300] == [e.request_id for e in first]
    assert log_a.replayed_through("relay") == 400


def test_a_hanging_relay_holds_a_batch_no_longer_than_the_timeout(
        log_a: EventLog, standin: StandIn, http: httpx.Client, clock: FixedClock) -> None:
    log_a.append(make_events(5))
    standin.set_mode("hang")
    started = time.monotonic()
    tick = replayer(log_a, relay(standin, http, clock, timeout_ms=300), clock).tick()
    assert tick.outcome == "failed" and "did not answer" in (tick.error or "")
    assert time.monotonic() - started < 2.0


# -- backoff and Retry-After -------------------------------------------------------------

def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    highest = Backoff(base_s=0.5, cap_s=8, random=lambda: 0.999999)
    lowest = Backoff(base_s=0.5, cap_s=8, random=lambda: 0.0)
    assert [round(highest.delay(n), 3) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert [lowest.delay(n) for n in range(1, 8)] == [0.25, 0.5, 1, 2, 4, 4, 4]
    assert Backoff(random=lambda: 0.5).delay(1000) <= 60  # no overflow far out


def test_consecutive_failures_wait_longer_and_a_success_resets_them(
        log_a: EventLog, standin: StandIn, http: httpx.Client, clock: FixedClock) -> None:
    log_a.append(make_events(3))
    r = replayer(log_a, relay(standin, http, clock), clock,
                 backoff=Backoff(base_s=1, cap_s=4, random=lambda: 0.999))
    standin.set_mode("500")
    waits = []
    for _ in range(4):
        assert r.tick().outcome == "failed"
        state = replay.read_state(log_a, "relay")
        waits.append(round((state.next_attempt_ms - clock() * 1000) / 1000))
        assert r.tick().outcome == "waiting"  # not before the backoff is over
        clock.advance(waits[-1])
    assert waits == [1, 2, 4, 4]
    assert "500" in (replay.read_state(log_a, "relay").last_error or "")
    standin.set_mode("up")
    assert r.tick().outcome == "sent"
    state = replay.read_state(log_a, "relay")
    assert state.failures == 0 and state.last_success_ms == int(clock() * 1000)


def test_retry_after_is_honoured_even_beyond_the_backoff_cap(
        log_a: EventLog, standin: StandIn, http: httpx.Client, clock: FixedClock) -> None:
    log_a.append(make_events(3))
    r = replayer(log_a, relay(standin, http, clock), clock,
                 backoff=Backoff(base_s=0.01, cap_s=0.05))
    standin.set_mode("429", retry_after="7")
    assert r.tick().outcome == "failed"
    state = replay.read_state(log_a, "relay")
    assert state.next_attempt_ms - int(clock() * 1000) == 7000
    standin.set_mode("up")
    clock.advance(6.9)
    assert r.tick().outcome == "waiting"
    clock.advance(0.2)
    assert r.tick().outcome == "sent"


def test_retry_after_as_an_http_date_is_understood() -> None:
    assert replay_sink_retry("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 30) == 30
    assert replay_sink_retry("120", now=0) == 120
    assert replay_sink_retry("soon", now=0) is None


def replay_sink_retry(value: str, now: float) -> float | None:
    from storage.replay.sink import parse_retry_after
    return parse_retry_after(value, lambda: now)


# -- dead letters ------------------------------------------------------------------------

@pytest.mark.parametrize("relay_names_bad_points", [True, False])
def test_invalid_events_are_isolated_into_dead_letters_and_the_rest_go_on(
        log_a: EventLog, standin: StandIn, http: httpx.Client, clock: FixedClock,
        relay_names_bad_points: bool) -> None:
    standin.report_details = relay_names_bad_points  # else found by halving the batch
    good = make_events(40)
    bad = [bad_event("x" * 100, T0_MS + 1), bad_event("y" * 97, T0_MS + 2)]
    log_a.append(good[:10] + bad[:1] + good[10:30] + bad[1:] + good[30:])
    result = replayer(log_a, relay(standin, http, clock), clock).drain(timeout_s=DRAIN_S)

    assert result.drained and result.sent == 40 and result.dead == 2
    assert standin.indexes() == [e.request_id for e in good]  # in order, once each
    letters = replay.dead_letters(log_a, "relay")
    assert [d["requestId"] for d in letters] == ["x" * 100, "y" * 97]
    assert [d["seq"] for d in letters] == [11, 32]
    # The relay's own words: per point when it named them, else its refusal of the point
    # once it was alone in a batch.
    because = "at most 96" if relay_names_bad_points else "1 of 1 points are invalid"
    assert all(because in d["reason"] for d in letters), letters
    assert log_a.replayed_through("relay") == 42
    assert log_a.count() == 42  # the log itself is never rewritten


def test_relay_sink_reports_which_points_are_bad(
        standin: StandIn, http: httpx.Client, clock: FixedClock) -> None:
    points = [e.point for e in make_events(3)] + [bad_event("z" * 200).point]
    with pytest.raises(SinkRejected) as caught:
        relay(standin, http, clock).send(points, "b")
    assert list(caught.value.reasons) == [3] and "200 bytes" in caught.value.reasons[3]
    assert standin.points == []  # nothing of a refused batch is written


def test_a_wrong_relay_key_is_a_failure_to_retry_not_a_dead_letter(
        log_a: EventLog, standin: StandIn, http: httpx.Client, clock: FixedClock) -> None:
    log_a.append(make_events(2))
    sink = RelaySink(standin.relay_url, "wrong", http=http, timeout_ms=1000, clock=clock)
    tick = replayer(log_a, sink, clock).tick()
    assert tick.outcome == "failed" and "401" in (tick.error or "")
    assert replay.dead_letters(log_a, "relay") == [] and log_a.replayed_through() == 0


# -- the lease ----------------------------------------------------------------------------

def test_only_the_lease_holder_replays(log_a: EventLog, log_b: EventLog, standin: StandIn,
                                       http: httpx.Client, clock: FixedClock) -> None:
    log_a.append(make_events(600))
    a = replayer(log_a, relay(standin, http, clock), clock, "a")
    b = replayer(log_b, relay(standin, http, clock), clock, "b")
    assert a.tick().outcome == "sent"
    for _ in range(5):
        assert b.tick().outcome == "follower"
    assert a.drain(timeout_s=DRAIN_S).drained
    assert len(standin.calls) == 3 and len(standin.indexes()) == 600
    assert replay.read_lease(log_b).holder == "a"


def test_a_dead_holder_is_replaced_after_expiry_with_a_higher_fence(
        log_a: EventLog, log_b: EventLog, standin: StandIn, http: httpx.Client,
        clock: FixedClock) -> None:
    log_a.append(make_events(300))
    a = replayer(log_a, relay(standin, http, clock), clock, "a")
    b = replayer(log_b, relay(standin, http, clock), clock, "b")
    assert a.tick().outcome == "sent"  # then "a" dies without releasing
    clock.advance(a.lease.ttl_ms / 1000 - 0.001)
    assert b.tick().outcome == "follower"
    clock.advance(0.002)
    assert b.tick().outcome == "sent"
    lease = replay.read_lease(log_b)
    assert (lease.holder, lease.fence) == ("b", 2)
    assert standin.indexes() == [e.request_id for e in make_events(300)]


def test_a_holder_that_stalled_past_its_lease_cannot_move_the_cursor(
        log_a: EventLog, log_b: EventLog, standin: StandIn, http: httpx.Client,
        clock: FixedClock) -> None:
    events = make_events(300)
    log_a.append(events)
    real = relay(standin, http, clock)
    b = replayer(log_b, real, clock, "b")

    class Stalls:
        """The relay, reached by a holder that froze mid-send until its lease expired."""
        name = "relay"

        def send(self, points: list, batch_id: str = "") -> None:
            clock.advance(60)
            assert b.tick().outcome == "sent"  # "b" took over and sent the first batch
            real.send(points, batch_id)

    a = replayer(log_a, Stalls(), clock, "a")
    assert a.tick().outcome == "follower"  # its confirmation is refused by the fence
    assert log_a.replayed_through("relay") == 250  # what "b" confirmed, not "a"
    assert b.drain(timeout_s=DRAIN_S).drained
    assert set(standin.indexes()) == {e.request_id for e in events}  # duplicates, no gap
    assert len(standin.indexes()) == 550
    assert replay.read_lease(log_a).fence == 2


def test_releasing_the_lease_lets_another_take_over_at_once(
        log_a: EventLog, log_b: EventLog, standin: StandIn, http: httpx.Client,
        clock: FixedClock) -> None:
    log_a.append(make_events(3))
    a = replayer(log_a, relay(standin, http, clock), clock, "a")
    b = replayer(log_b, relay(standin, http, clock), clock, "b")
    assert a.tick().outcome == "sent"
    assert b.tick().outcome == "follower"
    a.release()
    log_a.append(make_events(2, "more"))
    assert b.tick().outcome == "sent"


def test_the_lease_outlasts_four_sends_whatever_it_is_configured_to(
        log_a: EventLog, clock: FixedClock) -> None:
    r = Replayer(log_a, NoneSink(), lease_ms=100, send_timeout_ms=5000, clock=clock)
    assert r.lease.ttl_ms == 20_000


# -- sinks --------------------------------------------------------------------------------

def test_stdout_sink_prints_one_line_per_data_point(log_a: EventLog, clock: FixedClock) -> None:
    events = make_events(3)
    log_a.append(events)
    out = io.StringIO()
    assert replayer(log_a, StdoutSink(out), clock).drain(timeout_s=DRAIN_S).sent == 3
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"blobs": [e.payload["worker"], e.payload["endpoint"],
                   "1" if e.payload["success"] else "0"],
         "doubles": [e.payload["latencyMs"], e.received_ms / 1000.0],
         "indexes": [e.request_id]} for e in events]
    assert log_a.replayed_through("stdout") == 3
    assert log_a.replayed_through("relay") == 0  # a cursor per sink


def test_none_sink_sends_nothing_and_keeps_the_backlog(log_a: EventLog, clock: FixedClock) -> None:
    log_a.append(make_events(4))
    with pytest.raises(SinkUnavailable):
        NoneSink().send([])
    assert replay.backlog(log_a, "none").events == 4


def test_status_reports_backlog_age_last_success_and_last_error(
        log_a: EventLog, standin: StandIn, http: httpx.Client, clock: FixedClock) -> None:
    log_a.append(make_events(3, start_ms=int(clock() * 1000) - 90_000))
    r = replayer(log_a, relay(standin, http, clock), clock)
    standin.set_mode("500")
    r.tick()
    now_ms = int(clock() * 1000)
    s = replay.status(log_a, "relay", now_ms)
    assert s["backlog"]["events"] == 3 and s["backlog"]["oldestAgeSeconds"] == 90.0
    assert s["lastSuccessAt"] is None and "500" in s["lastError"]
    assert s["consecutiveFailures"] == 1 and s["lease"]["holder"] == "a"
    standin.set_mode("up")
    clock.advance(1)
    r.drain(timeout_s=DRAIN_S)
    s = replay.status(log_a, "relay", int(clock() * 1000))
    assert s["backlog"] == {"events": 0, "oldestReceivedAt": None, "oldestAgeSeconds": None}
    assert s["lastSuccessAt"] is not None and s["sent"] == 3 and s["replayedThrough"] == 3


def test_lag_is_the_age_of_the_oldest_unconfirmed_event_and_zero_without_one(
        log_a: EventLog, standin: StandIn, http: httpx.Client, clock: FixedClock) -> None:
    now = lambda: int(clock() * 1000)  # noqa: E731
    assert replay.lag_ms(log_a, "relay", now()) == 0  # nothing to have
    received = now()
    log_a.append(make_events(2, start_ms=received))
    clock.advance(7)
    log_a.append(make_events(1, prefix="later", start_ms=now()))
    assert replay.lag_ms(log_a, "relay", now()) == 7000  # the oldest, not the newest
    replayer(log_a, relay(standin, http, clock), clock).drain(timeout_s=DRAIN_S)
    assert replay.lag_ms(log_a, "relay", now()) == 0


# -- the background loop of a server process ---------------------------------------------

def test_replay_loop_replays_checkpoints_and_stops(
        db_path: Path, log_a: EventLog, standin: StandIn, http: httpx.Client) -> None:
    events = make_events(300)
    log_a.append(events)
    schema_only = db_path.stat().st_size  # the events are in the WAL so far
    loop = ReplayLoop(lambda: EventLog(db_path),
                      lambda log: Replayer(log, relay(standin, http, time.time), holder="loop",
                                           send_timeout_ms=1000),
                      checkpoint_every_s=0.05, idle_s=0.02)
    loop.start()
    deadline = time.monotonic() + 10
    while len(standin.indexes()) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert standin.indexes() == [e.request_id for e in events]
    wal = Path(f"{db_path}-wal")
    # A checkpoint moved the WAL's pages into the database: the file has its data (300
    # events take about 60 KB).
    deadline = time.monotonic() + 5
    while db_path.stat().st_size < schema_only + 50_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert db_path.stat().st_size >= schema_only + 50_000 and wal.exists()
    loop.stop()
    assert not loop.running
    assert replay.read_lease(log_a).expires_ms == 0  # released on the way out


def test_replay_loop_ends_when_its_owner_is_gone(db_path: Path) -> None:
    alive = [True]
    loop = ReplayLoop(lambda: EventLog(db_path), lambda log: None,
                      checkpoint_every_s=0.01, idle_s=0.01, alive=lambda: alive[0])
    loop.start()
    assert loop.running
    alive[0] = False
    deadline = time.monotonic() + 5
    while loop.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not loop.running


def test_replay_loop_runs_maintenance_on_its_own_connection(db_path: Path) -> None:
    seen: list[EventLog] = []
    loop = ReplayLoop(lambda: EventLog(db_path), lambda log: None, idle_s=0.01,
                      checkpoint_every_s=0.01, maintain=seen.append, maintain_every_s=0.02)
    loop.start()
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    assert len(seen) >= 2 and seen[0] is seen[1]


# -- the command line ---------------------------------------------------------------------

def run_cli(args: list[str], db_path: Path, **env: str) -> Any:
    environ = service_env(db_path, **env)
    return CliRunner().invoke(cli.main, args, env=environ, catch_exceptions=False)


def test_cli_replay_drains_the_backlog_once(db_path: Path, log_a: EventLog,
                                            standin: StandIn) -> None:
    events = make_events(520)
    log_a.append(events)
    result = run_cli(["replay"], db_path, **standin.env())
    assert result.exit_code == 0, result.output
    assert "sent 520" in result.stderr
    assert standin.indexes() == [e.request_id for e in events]
    assert log_a.replayed_through("relay") == 520


def test_cli_replay_dry_run_prints_the_points_and_moves_nothing(
        db_path: Path, log_a: EventLog, standin: StandIn) -> None:
    log_a.append(make_events(3))
    result = run_cli(["replay", "--dry-run"], db_path, **standin.env())
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["indexes"] for p in lines] == [["req-0"], ["req-1"], ["req-2"]]
    assert standin.points == [] and log_a.replayed_through("relay") == 0


def test_cli_replay_resends_a_time_range_whatever_the_cursor(
        db_path: Path, log_a: EventLog, standin: StandIn) -> None:
    log_a.append(make_events(10))  # received at T0 + 0, 10, …, 90 ms
    assert run_cli(["replay"], db_path, **standin.env()).exit_code == 0
    result = run_cli(["replay", "--since", "2025-11-24T16:00:00.020Z",
                      "--until", "2025-11-24T16:00:00.050Z"], db_path, **standin.env())
    assert result.exit_code == 0, result.output
    assert standin.indexes()[10:] == ["req-2", "req-3", "req-4"]
    assert log_a.replayed_through("relay") == 10


def test_cli_replay_gives_up_after_failures_with_the_error(
        db_path: Path, log_a: EventLog, standin: StandIn) -> None:
    log_a.append(make_events(3))
    standin.set_mode("500")
    result = run_cli(["replay", "--max-failures", "2"], db_path, **standin.env(),
                     ANALYTICS_REPLAY_BACKOFF_MAX_MS="20")
    assert result.exit_code == 1
    assert "gave up after 2" in result.stderr and "500" in result.stderr


def test_cli_replay_does_not_race_a_replaying_server(
        db_path: Path, log_a: EventLog, standin: StandIn, http: httpx.Client) -> None:
    log_a.append(make_events(3))
    server = Replayer(log_a, relay(standin, http, time.time), holder="server:1:x")
    assert server.lease.hold() is not None
    result = run_cli(["replay"], db_path, **standin.env())
    assert result.exit_code == 1 and "server:1:x holds the replay lease" in result.stderr
    assert standin.points == []


def test_cli_replay_with_sink_none_says_what_to_set(db_path: Path) -> None:
    result = run_cli(["replay"], db_path, ANALYTICS_SINK="none")
    assert result.exit_code == 1 and "ANALYTICS_SINK" in result.stderr
