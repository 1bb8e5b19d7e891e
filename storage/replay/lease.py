"""The one replay lease of a database: whoever holds it unexpired replays, the others watch
it expire. Its fencing number grows with every change of holder, and the cursor moves only
in a transaction that proves the holder and fence (`Lease.prove`)."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Callable

from ..log import EventLog

log = logging.getLogger("analytics_worker.replay")

Clock = Callable[[], float]
LEASE_NAME = "replay"


class LeaseLost(Exception):
    """Another replayer holds the lease now; this one must stop sending."""


def new_holder() -> str:
    """Who holds a lease: readable in /status (host and pid), unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def clock_ms(clock: Clock) -> int:
    return int(clock() * 1000)

@dataclass(frozen=True)
class LeaseInfo:
    holder: str
    fence: int
    acquired_ms: int
    expires_ms: int


class Lease:
    """The one replay lease of a database, from the point of view of `holder`."""

    def __init__(self, event_log: EventLog, holder: str, *, ttl_ms: int, clock: Clock):
        self._log = event_log
        self.holder = holder
        self.ttl_ms = ttl_ms
        self._clock = clock
        self.fence: int | None = None
        self._expires_ms = 0

    def current(self) -> LeaseInfo | None:
        return read_lease(self._log)

    def hold(self) -> int | None:
        """The fencing number if this holder has the lease (taking it when it is free or
        expired, renewing it when half of it is used), else None."""
        now = clock_ms(self._clock)
        if self.fence is not None and self._expires_ms - now > self.ttl_ms / 2:
            return self.fence  # nobody can take an unexpired lease: no need to look
        seen = self.current()
        if seen is not None and seen.holder != self.holder and seen.expires_ms > now:
            self.fence = None  # read-only check first: contenders never take the write lock
            return None
        with self._log.transaction() as conn:
            row = conn.execute("SELECT holder, fence, expires_ms FROM replay_lease"
                               " WHERE name = ?", (LEASE_NAME,)).fetchone()
            now = clock_ms(self._clock)
            if row is None:
                fence = 1
                conn.execute("INSERT INTO replay_lease (name, holder, fence, acquired_ms,"
                             " expires_ms) VALUES (?, ?, ?, ?, ?)",
                             (LEASE_NAME, self.holder, fence, now, now + self.ttl_ms))
            elif row[0] == self.holder:
                fence = row[1]  # still ours: nobody took it in between, the fence stands
                conn.execute("UPDATE replay_lease SET expires_ms = ? WHERE name = ?",
                             (now + self.ttl_ms, LEASE_NAME))
            elif row[2] <= now:
                fence = row[1] + 1
                conn.execute("UPDATE replay_lease SET holder = ?, fence = ?, acquired_ms = ?,"
                             " expires_ms = ? WHERE name = ?",
                             (self.holder, fence, now, now + self.ttl_ms, LEASE_NAME))
            else:
                self.fence = None
                return None
        if fence != self.fence:
            log.info("replay lease taken by %s (fence %d)", self.holder, fence)
        self.fence, self._expires_ms = fence, now + self.ttl_ms
        return fence

    def prove(self, conn: sqlite3.Connection) -> None:
        """Inside a write transaction: fail unless this holder still has the lease, and
        renew it (the transaction that moves the cursor keeps the lease fresh)."""
        now = clock_ms(self._clock)
        changed = conn.execute(
            "UPDATE replay_lease SET expires_ms = ? WHERE name = ? AND holder = ? AND fence = ?",
            (now + self.ttl_ms, LEASE_NAME, self.holder, self.fence)).rowcount
        if changed != 1:
            self.fence = None
            raise LeaseLost(f"{self.holder} lost the replay lease")
        self._expires_ms = now + self.ttl_ms

    def release(self) -> None:
        """Let another worker take over at once (on a clean shutdown)."""
        if self.fence is None:
            return
        with self._log.transaction() as conn:
            conn.execute("UPDATE replay_lease SET expires_ms = 0 WHERE name = ? AND holder = ?"
                         " AND fence = ?", (LEASE_NAME, self.holder, self.fence))
        self.fence = None


def read_lease(event_log: EventLog) -> LeaseInfo | None:
    row = event_log.conn.execute("SELECT holder, fence, acquired_ms, expires_ms FROM"
                                 " replay_lease WHERE name = ?", (LEASE_NAME,)).fetchone()
    return LeaseInfo(*row) if row else None
