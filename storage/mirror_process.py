"""The mirror's process: the only one that opens the chdb data directory.

It feeds the mirror from the log every `FEED_EVERY_S` and before every query (up to the
newest event the asking worker sees), and answers the workers' queries over a Unix socket
(`storage.mirror.ask`). gunicorn's master starts it with exec (`Supervisor`), so chdb is
never imported in a process that forks; it exits when its parent does.

    python -m storage.mirror_process SOCKET   # with the service's ANALYTICS_* settings
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socketserver
import sys
import threading
import time

from . import supervisor
from .config import Config
from .mirror import _TIMEOUT_CODES, MAX_TAIL_EVENTS, MirrorStore

log = logging.getLogger("analytics_worker")

FEED_EVERY_S = 0.5
# How often the mirror looks for events retention pruned (a count per day of the days
# retention can touch); an event pruned shows in answers at most this much longer.
RECONCILE_EVERY_S = 10.0


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
        """Feed up to `through` unless that tail is too long for a query."""
        with self._feeding:
            if through - self.store.seq > MAX_TAIL_EVENTS:
                return False
            if through != self.store.seq:  # behind it, or a log started over
                self.store.feed()
            return self.store.seq >= through

    def feed_forever(self, parent: int, retention_days: int) -> None:
        reconciled = 0.0
        while os.getppid() == parent:
            try:
                with self._feeding:
                    self.store.feed(limit=MAX_TAIL_EVENTS)
                    if time.monotonic() - reconciled > RECONCILE_EVERY_S:
                        # a day of margin: retention's cutoff moves while it runs
                        self.store.reconcile(int(time.time()) - (retention_days - 1) * 86400)
                        reconciled = time.monotonic()
            except Exception:  # the log busy or absent for now: the next round retries
                log.exception("the mirror could not read the log")
            time.sleep(FEED_EVERY_S)
        os.kill(os.getpid(), signal.SIGTERM)  # orphaned: the service is gone

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
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    server = MirrorServer(socket_path, store)
    parent = os.getppid()
    threading.Thread(target=server.feed_forever, args=(parent, config.retention_days), daemon=True,
                     name="mirror-feed").start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        store.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mirror %(message)s")
    serve(sys.argv[1], Config.from_env())


class Supervisor(supervisor.Supervisor):
    """The mirror (exec, never fork: chdb must not be inherited). Queries do not wait
    for it: while it is down the log's engine answers them."""

    def __init__(self, socket_path: str, env: dict[str, str] | None = None):
        super().__init__("storage.mirror_process", socket_path, env,
                         restart_after_s=(1.0, 10.0))


if __name__ == "__main__":
    main()
