"""The mirror's process: the only one that opens the chdb data directory.

It waits until the log holds ANALYTICS_MIRROR_MIN_EVENTS events, without chdb or the
engine: until then it is a small process. Then it imports them and serves the copy
(`mirror_server`). gunicorn's master starts it with exec (`Supervisor`), so chdb is never
imported in a process that forks; it exits when its parent does.

    python -m storage.query.mirror_process SOCKET   # with the service's ANALYTICS_* settings
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import sys
import time
import urllib.parse

from .. import supervisor
from ..config import Config

# How often a mirror that waits for the log to grow looks at it.
WAIT_EVERY_S = 5.0


def wait_until_needed(config: Config, parent: int) -> bool:
    """Until the log holds ANALYTICS_MIRROR_MIN_EVENTS events (True), or the service is
    gone (False). chdb is not imported meanwhile: a waiting mirror is a small process
    that looks at the log every WAIT_EVERY_S. (It waits here rather than in gunicorn's
    master, which forks workers: a fork while a thread of the master was inside SQLite
    leaves the child's SQLite locked.)"""
    while not log_events_at_least(config.db_path, config.mirror_min_events):
        if os.getppid() != parent:
            return False
        time.sleep(WAIT_EVERY_S)
    return True


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mirror %(message)s")
    config = Config.from_env()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # while waiting
    if wait_until_needed(config, os.getppid()):
        from .mirror_server import serve  # chdb and the engine, only now they are needed

        serve(sys.argv[1], config)


def log_events_at_least(db_path: str, events: int) -> bool:
    """Whether the log spans at least `events` sequence numbers: two steps down its key
    on a connection opened for the question (the master forks; it keeps none open).
    Retention's gaps make it an upper bound, which is all a threshold needs."""
    if events <= 0:
        return True
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(db_path)}?mode=ro", uri=True)
    except sqlite3.Error:
        return False  # no log yet
    try:
        return seq_span(conn) >= events
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def seq_span(conn: sqlite3.Connection) -> int:
    """Highest minus lowest sequence number, plus one (0 for an empty log)."""
    low, high = conn.execute(
        "SELECT (SELECT min(seq) FROM events), (SELECT max(seq) FROM events)").fetchone()
    return 0 if high is None else high - low + 1


class Supervisor(supervisor.Supervisor):
    """The mirror (exec, never fork: chdb must not be inherited). Queries do not wait
    for it: while it is down the log's engine answers them."""

    def __init__(self, socket_path: str, env: dict[str, str] | None = None):
        super().__init__("storage.query.mirror_process", socket_path, env,
                         restart_after_s=(1.0, 10.0))


if __name__ == "__main__":
    main()
