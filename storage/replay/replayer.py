"""Replay of the event log to a sink (SPEC §5): in sequence order, in batches of at most
250 points, at least once, nothing skipped.

One replayer per database. Every gunicorn worker runs a `ReplayLoop` thread, and they
contend for one lease row (`replay_lease`) in the same SQLite file: whoever holds an
unexpired lease replays, the others only watch it expire. The lease carries a fencing
number that grows with every change of holder; the cursor moves only in a transaction
that finds the caller's holder and fence still in the row. So

- a killed holder is replaced after the lease runs out (`ANALYTICS_REPLAY_LEASE_MS`);
- a holder that stalled past its expiry (SIGSTOP, a long GC pause) cannot move the
  cursor any more: what it sent is sent again by the new holder — a duplicate, never a
  gap;
- a holder sends only while its lease has at least half its length left, and the length
  is at least four times the longest call to the sink, so two workers never have the
  same batch in flight at once.

A lease rather than a dedicated process because a gunicorn deployment must replay with
no extra process to start, and because SQLite's write lock already makes "take the lease
if it expired" atomic across processes.

The cursor is stored per sink in `replay_state` and advanced in the same transaction
that proves the lease, after the sink confirmed the batch. A failure to deliver backs
off exponentially with jitter, up to a cap, and waits at least what a Retry-After said;
the schedule is kept in the database, so a new holder keeps to it. A batch the sink
refuses as invalid is split — by the sink's list of bad points when it gave one, else in
halves — until each bad point is alone; those go to `replay_dead_letters` with the
reason, and the cursor moves past them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ..intake.datapoint import MAX_POINTS_PER_CALL
from ..log import EventLog, counters
from .lease import Clock, Lease, LeaseLost, clock_ms, new_holder
from .sink import Sink, SinkRejected, SinkUnavailable
from .state import Pending, pending, read_state

log = logging.getLogger("analytics_worker.replay")


# -- backoff ------------------------------------------------------------------------------

@dataclass
class Backoff:
    """Exponential backoff with jitter: after the n-th consecutive failure wait between
    half and all of min(cap, base * 2^(n-1)), and never less than the server's
    Retry-After (itself bounded, so a bogus header cannot stop replay for days)."""

    base_s: float = 0.5
    cap_s: float = 60.0
    retry_after_cap_s: float = 3600.0
    random: Callable[[], float] = random.random

    def delay(self, failures: int, retry_after_s: float | None = None) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(max(failures, 1) - 1, 30))
        # Jitter spreads retries from several deployments; the floor of half keeps the
        # growth real.
        wait = ceiling / 2 + self.random() * ceiling / 2
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.retry_after_cap_s))
        return wait


# -- the replayer -------------------------------------------------------------------------

@dataclass(frozen=True)
class Tick:
    """What one `Replayer.tick()` did, and how long until calling it again is useful."""
    outcome: str  # "sent" | "idle" (nothing to send) | "waiting" (backoff) | "failed"
    #               | "follower" (another replayer holds the lease)
    wait_s: float
    sent: int = 0
    dead: int = 0
    error: str | None = None


# The longest pause of an idle replayer: a new event waits at most this long to leave
# (Analytics Engine shows points tens of seconds after they are written anyway).
IDLE_MAX_S = 2.0


class Replayer:
    """Moves the log to a sink. Call `tick()` repeatedly (the server's `ReplayLoop`) or
    `drain()` (the command line)."""

    def __init__(self, event_log: EventLog, sink: Sink, *, holder: str | None = None,
                 lease_ms: int = 30_000, send_timeout_ms: int = 5_000,
                 batch_size: int = MAX_POINTS_PER_CALL, backoff: Backoff | None = None,
                 idle_s: float = 0.25, clock: Clock = time.time):
        if not 1 <= batch_size <= MAX_POINTS_PER_CALL:
            raise ValueError(f"batch_size must be 1..{MAX_POINTS_PER_CALL}")
        self.log = event_log
        self.sink = sink
        # Four sends fit in a lease: one that starts with half of it left ends in time.
        self.lease = Lease(event_log, holder or new_holder(),
                           ttl_ms=max(lease_ms, 4 * send_timeout_ms), clock=clock)
        self.batch_size = batch_size
        self.backoff = backoff or Backoff()
        self.idle_s = idle_s
        self._idle_rounds = 0
        self._clock = clock

    def _idle_wait(self) -> float:
        """The pause after a round with nothing to do: `idle_s`, doubling while nothing
        happens up to IDLE_MAX_S, so that a service at rest wakes up seldom."""
        self._idle_rounds += 1
        return max(self.idle_s, min(IDLE_MAX_S, self.idle_s * 2 ** (self._idle_rounds - 1)))

    def tick(self) -> Tick:
        """At most one batch (split if the sink refused it)."""
        tick = self._tick()
        if tick.outcome not in ("idle", "follower"):
            self._idle_rounds = 0
        return tick

    def _tick(self) -> Tick:
        fence = self.lease.hold()
        if fence is None:
            return Tick("follower", self._idle_wait())
        state = read_state(self.log, self.sink.name)
        now = clock_ms(self._clock)
        if state.next_attempt_ms > now:
            # Wake up in time to renew the lease while backing off.
            return Tick("waiting", min((state.next_attempt_ms - now) / 1000.0,
                                       self.lease.ttl_ms / 3000.0))
        batch = pending(self.log, state.seq, self.batch_size)
        if not batch:
            return Tick("idle", self._idle_wait())
        counts = [0, 0]
        try:
            self._deliver(batch, counts)
        except SinkUnavailable as e:
            failures = state.failures + 1
            delay = self.backoff.delay(failures, e.retry_after_s)
            self._record_failure(failures, delay, str(e), getattr(e, "reason", "error"))
            log.warning("replay to %s failed (%d in a row), next try in %.1f s: %s",
                        self.sink.name, failures, delay, e)
            return Tick("failed", min(delay, self.lease.ttl_ms / 3000.0), *counts,
                        error=str(e))
        except LeaseLost:
            return Tick("follower", self.idle_s, *counts)
        # A full batch: more is waiting, go on at once. A partial one: replay has caught
        # up, so let events gather for a moment rather than send a request per event
        # (that would cost the ingest path CPU for nothing: Analytics Engine shows points
        # only after tens of seconds anyway).
        return Tick("sent", 0.0 if len(batch) == self.batch_size else self.idle_s, *counts)

    def _deliver(self, batch: Sequence[Pending], counts: list[int]) -> None:
        try:
            self.sink.send([p.point for p in batch], f"{batch[0].seq}-{batch[-1].seq}")
        except SinkRejected as e:
            if len(batch) == 1:
                self._advance(batch, dead=[(batch[0], e.reasons.get(0) or str(e))])
                counts[1] += 1
                return
            for part, reason in _split(batch, e.reasons):
                if reason is not None:
                    self._advance(part, dead=[(part[0], reason)])
                    counts[1] += 1
                else:
                    self._deliver(part, counts)
            return
        self._advance(batch, dead=[])
        counts[0] += len(batch)

    def _advance(self, done: Sequence[Pending], dead: list[tuple[Pending, str]]) -> None:
        """Move the cursor past `done` (confirmed, or dead letters) — only if this
        replayer still holds the lease."""
        now = clock_ms(self._clock)
        name = self.sink.name
        with self.log.transaction() as conn:
            self.lease.prove(conn)
            conn.execute("INSERT INTO replay_state (sink) VALUES (?) ON CONFLICT DO NOTHING",
                         (name,))
            conn.execute(
                "UPDATE replay_state SET seq = max(seq, ?), sent = sent + ?, dead = dead + ?,"
                " last_success_ms = CASE WHEN ? THEN ? ELSE last_success_ms END,"
                " failures = 0, next_attempt_ms = 0 WHERE sink = ?",
                (done[-1].seq, len(done) - len(dead), len(dead), len(done) > len(dead), now,
                 name))
            conn.executemany(
                "INSERT INTO replay_dead_letters (sink, seq, request_id, reason, failed_ms)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(name, p.seq, p.request_id, reason, now) for p, reason in dead])
        for p, reason in dead:
            log.error("replay: event %s (seq %d) refused by %s, dead-lettered: %s",
                      p.request_id, p.seq, name, reason)

    def _record_failure(self, failures: int, delay_s: float, error: str,
                        reason: str = "error") -> None:
        now = clock_ms(self._clock)
        with self.log.transaction() as conn:
            self.lease.prove(conn)
            counters.add(conn, {(counters.REPLAY_FAILURES,
                                 counters.labels(sink=self.sink.name, reason=reason)): 1}, now)
            conn.execute("INSERT INTO replay_state (sink) VALUES (?) ON CONFLICT DO NOTHING",
                         (self.sink.name,))
            conn.execute("UPDATE replay_state SET failures = ?, next_attempt_ms = ?,"
                         " last_error_ms = ?, last_error = ? WHERE sink = ?",
                         (failures, now + int(delay_s * 1000), now, error[:1000],
                          self.sink.name))

    def drain(self, *, max_failures: int = 5, timeout_s: float = 3600.0,
              sleep: Callable[[float], None] = time.sleep,
              monotonic: Callable[[], float] = time.monotonic,
              progress: Callable[[Tick], None] | None = None) -> "DrainResult":
        """Replay until the backlog is empty; stop after `max_failures` failures in a
        row, after `timeout_s`, or when another replayer holds the lease."""
        deadline = monotonic() + timeout_s
        sent = dead = failures = 0
        while True:
            tick = self.tick()
            sent, dead = sent + tick.sent, dead + tick.dead
            if progress is not None:
                progress(tick)
            if tick.outcome in ("idle", "follower"):
                return DrainResult(sent, dead, tick.outcome == "idle", tick.error)
            failures = failures + 1 if tick.outcome == "failed" else (
                failures if tick.outcome == "waiting" else 0)
            if failures >= max_failures or monotonic() >= deadline:
                return DrainResult(sent, dead, False,
                                   tick.error or read_state(self.log, self.sink.name).last_error)
            if tick.outcome != "sent":  # draining: no pause to let events gather
                sleep(min(tick.wait_s, max(0.0, deadline - monotonic())))

    def release(self) -> None:
        try:
            self.lease.release()
        except Exception:  # shutting down: the lease will expire on its own
            log.debug("could not release the replay lease", exc_info=True)


@dataclass(frozen=True)
class DrainResult:
    sent: int
    dead: int
    drained: bool  # False: stopped by failures, the time limit, or another replayer
    error: str | None = None


def _split(batch: Sequence[Pending], reasons: dict[int, str]
           ) -> list[tuple[Sequence[Pending], str | None]]:
    """The parts to retry, in order: runs of points the sink did not name, and each named
    bad point alone with its reason. Without names, the two halves."""
    if not reasons:
        middle = len(batch) // 2
        return [(batch[:middle], None), (batch[middle:], None)]
    parts: list[tuple[Sequence[Pending], str | None]] = []
    start = 0
    for i in sorted(reasons):
        if start < i:
            parts.append((batch[start:i], None))
        parts.append((batch[i:i + 1], reasons[i]))
        start = i + 1
    if start < len(batch):
        parts.append((batch[start:], None))
    return parts


# -- the background loop of a server process ---------------------------------------------

class ReplayLoop:
    """One daemon thread per gunicorn worker, on its own connection to the log: it
    checkpoints the WAL about every second (the request connection never does, on the
    hot path), when a sink is configured contends for the replay lease and replays, and
    now and then runs `maintain` (retention). Nothing here runs on a request."""

    def __init__(self, open_log: Callable[[], EventLog],
                 make_replayer: Callable[[EventLog], Replayer | None], *,
                 checkpoint_every_s: float = 1.0, idle_s: float = 0.25,
                 maintain: Callable[[EventLog], object] | None = None,
                 maintain_every_s: float = 3600.0,
                 alive: Callable[[], bool] = lambda: True,
                 monotonic: Clock = time.monotonic):
        self._open_log = open_log
        self._make_replayer = make_replayer
        self._checkpoint_every_s = checkpoint_every_s
        self._idle_s = idle_s
        self._maintain = maintain
        self._maintain_every_s = maintain_every_s
        self._alive = alive
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            event_log = self._open_log()
        except Exception:
            log.exception("replay loop could not open the log")
            return
        replayer = None
        try:
            replayer = self._make_replayer(event_log)
            next_checkpoint = 0.0
            # Not at once: a worker that starts is busy enough serving its first requests.
            next_maintenance = self._monotonic() + min(60.0, self._maintain_every_s)
            while not self._stop.is_set() and self._alive():
                if self._monotonic() >= next_checkpoint:
                    event_log.checkpoint()
                    next_checkpoint = self._monotonic() + self._checkpoint_every_s
                if self._maintain is not None and self._monotonic() >= next_maintenance:
                    try:
                        self._maintain(event_log)
                    except Exception:  # locked or full: the next round tries again
                        log.exception("maintenance failed")
                    next_maintenance = self._monotonic() + self._maintain_every_s
                wait = self._idle_s
                if replayer is not None:
                    try:
                        wait = replayer.tick().wait_s
                    except Exception:  # the log is locked or full: try again later
                        log.exception("replay tick failed")
                        wait = max(self._idle_s, 1.0)
                if wait > 0:
                    self._stop.wait(min(wait, max(0.0, next_checkpoint - self._monotonic())))
        finally:
            if replayer is not None:
                replayer.release()
            event_log.close()
