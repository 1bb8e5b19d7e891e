"""The mirror's server, in the mirror's process once the log needs it
(`mirror_process.main`): it feeds the columnar copy from the log every `FEED_EVERY_S` and
before every query (up to the newest event the asking worker sees), and answers the
workers' queries over a Unix socket (`storage.query.mirror.ask`). Importing it imports
chdb and the engine."""

from __future__ import annotations

import json
import logging
import os
import signal
import socketserver
import threading
import time

from ..config import Config
from .mirror import _TIMEOUT_CODES, MAX_TAIL_EVENTS, MirrorStore

log = logging.getLogger("analytics_worker")

# How often the feed looks at the log's files (two stats; the log is read only when
# they changed, and then at most every FEED_LOOK_S).
FEED_EVERY_S = 0.5
FEED_LOOK_S = 5.0
# A tail is copied once it reaches FEED_AT_EVENTS events, or FEED_AFTER_S after it
# began: a query reads the tail up to the newest event itself before it is answered,
# so copying often buys nothing, and each copy is a ClickHouse insert (a new part).
FEED_AT_EVENTS = 20_000
FEED_AFTER_S = 30.0
# A query waits this long at most for a feed in progress before the log's own engine
# answers it instead (a long feed must not hold answers up).
CATCH_UP_WAIT_S = 2.0


class _Handler(socketserver.StreamRequestHandler):
    server: "MirrorServer"

    def handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline())
            head, body = self.server.answer(request)
        except Exception as e:  # a bad request: the worker's log engine answers it
            head, body = {"status": "error", "error": str(e)}, b""
        self.wfile.write(json.dumps(head).encode() + b"\n" + body)


class MirrorServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, store: MirrorStore):
        self.store = store
        self._feeding = threading.Lock()
        super().__init__(path, _Handler)

    def catch_up(self, through: int) -> bool:
        """Feed up to `through` unless that tail is too long for a query, or a feed in
        progress holds the copy for longer than a query should wait."""
        if through == self.store.seq:
            return True
        if not self._feeding.acquire(timeout=CATCH_UP_WAIT_S):
            return False
        try:
            if through - self.store.seq > MAX_TAIL_EVENTS:
                return False
            if through != self.store.seq:  # behind it, or a log started over
                if self.store.feed(start_over=False) is None:
                    return False  # a log replaced: the feed copies it again
            return self.store.seq >= through
        finally:
            self._feeding.release()

    def feed_forever(self, parent: int, retention_days: int, pruned: float | None) -> None:
        """Wait for work: look at the log's files every FEED_EVERY_S, and read the log
        only when they changed; copy a tail once it is long or old enough; follow
        retention when it pruned events (the log's counter of them moved from
        `pruned`), within FEED_LOOK_S."""
        since: float | None = None  # when the files first changed since the last copy
        looked = 0.0
        while os.getppid() == parent:
            now = time.monotonic()
            try:
                if self.store.log_changed() and since is None:
                    since = now
                if since is not None and now - looked >= FEED_LOOK_S:
                    looked = now
                    tail = self.store.log_high() - self.store.seq
                    now_pruned = self.store.pruned()
                    if tail == 0 and now_pruned == pruned:
                        since = None  # queries copied it meanwhile
                    elif (tail < 0 or tail >= FEED_AT_EVENTS or now_pruned != pruned
                          or now - since >= FEED_AFTER_S):
                        self._feed_all()
                        since = None
                        if now_pruned != pruned:
                            with self._feeding:
                                self.store.reconcile(reconcile_before(retention_days))
                            pruned = now_pruned
            except Exception:  # the log busy or absent for now: the next round retries
                log.exception("the mirror could not read the log")
                self.store.recheck()
                pruned = None
            time.sleep(FEED_EVERY_S)
        os.kill(os.getpid(), signal.SIGTERM)  # orphaned: the service is gone

    def _feed_all(self) -> None:
        """The whole tail, in chunks, the lock let go between them so that a query can
        take its turn."""
        copied = MAX_TAIL_EVENTS
        while copied == MAX_TAIL_EVENTS:
            with self._feeding:
                copied = self.store.feed(limit=MAX_TAIL_EVENTS)

    def answer(self, request: dict) -> tuple[dict, bytes]:
        if request.get("ping"):
            return {"status": "ok", "seq": self.store.seq, "pid": os.getpid()}, b""
        if not self.catch_up(int(request["through"])):
            return {"status": "behind", "error": "the mirror is catching up"}, b""
        try:
            body = self.store.query(request["sql"], int(request["timeout_ms"]),
                                    int(request["max_rows"]))
        except Exception as e:
            text = str(e)
            status = "timeout" if any(c in text for c in _TIMEOUT_CODES) else "error"
            return {"status": status, "error": text[:500]}, b""
        return {"status": "ok"}, body


def serve(socket_path: str, config: Config) -> None:
    store = MirrorStore(config.db_path, config.mirror_path, config.dataset)
    try:
        os.unlink(socket_path)  # a socket left by an earlier mirror
    except FileNotFoundError:
        pass
    # Caught up before the socket exists: until then the workers see no mirror and the
    # log's engine answers, instead of queries waiting on a copy being made.
    while store.feed(limit=MAX_TAIL_EVENTS) == MAX_TAIL_EVENTS:
        pass
    pruned = store.pruned()
    store.reconcile(reconcile_before(config.retention_days))
    server = MirrorServer(socket_path, store)
    parent = os.getppid()
    threading.Thread(target=server.feed_forever, args=(parent, config.retention_days, pruned),
                     daemon=True, name="mirror-feed").start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=1.0)
    finally:
        server.server_close()
        store.close()


def reconcile_before(retention_days: int) -> int:
    """Where the days retention can touch end, with a day of margin: retention's cutoff
    moves while it runs."""
    return int(time.time()) - (retention_days - 1) * 86400
