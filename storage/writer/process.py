"""The service's writer: one process that owns the log's only connection for events.

The workers send it rows over a Unix socket (`storage/writer/wire.py`); it reads everything the
workers sent while it was committing, commits it in one transaction
(`EventLog.append_row_groups`), and only then answers each request. So groups grow with
the load, no two processes contend for the file, and an answer still means committed.
Committing blocks its event loop, which has nothing else to do: what arrives meanwhile
waits in the socket buffers and forms the next group.

gunicorn's master starts and supervises it (`Supervisor`, from `gunicorn_conf`'s hooks):
if it dies it is started again, and the workers reconnect. It exits when its parent does,
and on SIGTERM once the workers have hung up (they finish their requests first).

    python -m storage.writer.process SOCKET   # with the service's ANALYTICS_* settings
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from .. import supervisor
from ..config import Config
from ..log import EventLog, LogError, LogFull
from . import wire

log = logging.getLogger("analytics_worker")

# A transaction stops growing at this many events; whatever is left goes into the next.
MAX_GROUP_EVENTS = 20_000
CHECKPOINT_EVERY_S = 1.0
# After SIGTERM, the longest the writer waits for the workers to hang up.
DRAIN_S = 30.0


class _Pending:
    __slots__ = ("peer", "tag", "rows", "table")

    def __init__(self, peer: "_Peer", tag: int, rows: list | None, table: str = "events"):
        self.peer, self.tag, self.rows, self.table = peer, tag, rows, table


class _Peer(asyncio.Protocol):
    """One worker's connection."""

    def __init__(self, server: "WriterServer"):
        self._server = server
        self._reader = wire.Reader(wire.REQUEST)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._server.peers.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.peers.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            for (tag, kind), payload in self._reader.feed(data):
                if kind == wire.PROBE:
                    self._server.queue(_Pending(self, tag, None))
                elif kind in wire.TABLES:
                    self._server.queue(_Pending(self, tag, wire.rows_of(payload),
                                                wire.TABLES[kind]))
                else:
                    raise wire.FrameError(f"a request of unknown kind {kind}")
        except (wire.FrameError, ValueError) as e:
            log.error("writer: dropping a connection that sent a broken frame: %s", e)
            if self.transport is not None:
                self.transport.close()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class WriterServer:
    def __init__(self, event_log: EventLog, *, max_group_events: int = MAX_GROUP_EVENTS):
        self._log = event_log
        self._max_group_events = max_group_events
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.peers: set[_Peer] = set()

    def queue(self, pending: _Pending) -> None:
        self._pending.append(pending)
        if not self._scheduled:
            self._scheduled = True
            assert self._loop is not None
            # After every callback of this loop iteration: all the data that is there now
            # joins the group.
            self._loop.call_soon(self._commit)

    def _commit(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        while pending:
            size, count = 0, 0
            for item in pending:
                n = len(item.rows) if item.rows is not None else 0
                if count and size + n > self._max_group_events:
                    break
                size += n
                count += 1
            group, pending = pending[:count], pending[count:]
            self._commit_group(group)

    def _commit_group(self, group: list[_Pending]) -> None:
        probes = [p for p in group if p.rows is None]
        appends = [p for p in group if p.rows is not None]
        if probes:
            try:
                writable = self._log.writable()
            except Exception:
                writable = False
            for p in probes:
                p.peer.send(wire.answer(p.tag, wire.OK if writable else wire.NOT_WRITABLE))
        if not appends:
            return
        try:
            outcomes: list[Any] = self._log.append_row_groups([p.rows for p in appends],
                                                              [p.table for p in appends])
        except Exception as e:  # not the log's own error: every request hears of it
            log.exception("writer: group commit failed")
            outcomes = [e] * len(appends)
        # One write per worker connection for the whole group, not one per request.
        answers: dict[_Peer, list[bytes]] = {}
        for p, outcome in zip(appends, outcomes):
            if isinstance(outcome, LogFull):
                frame = wire.answer(p.tag, wire.FULL, message=str(outcome))
            elif isinstance(outcome, Exception):
                frame = wire.answer(p.tag, wire.UNAVAILABLE, message=str(outcome))
            else:
                frame = wire.answer(p.tag, wire.OK, outcome.accepted, outcome.duplicates)
            answers.setdefault(p.peer, []).append(frame)
        for peer, frames in answers.items():
            peer.send(b"".join(frames))

    async def serve(self, path: str, *, parent: int | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        self._loop.add_signal_handler(signal.SIGTERM, stopping.set)
        self._loop.add_signal_handler(signal.SIGINT, stopping.set)
        # A socket of our own, bound before it is announced: a worker never meets a
        # half-started writer, and a restarted writer replaces the file atomically.
        temporary = f"{path}.{os.getpid()}"
        server = await self._loop.create_unix_server(lambda: _Peer(self), temporary,
                                                     backlog=1024)
        os.replace(temporary, path)
        try:
            while not stopping.is_set():
                if parent is not None and os.getppid() != parent:
                    break  # the master is gone: nobody supervises us any more
                self._log.checkpoint()
                try:
                    await asyncio.wait_for(stopping.wait(), CHECKPOINT_EVERY_S)
                except asyncio.TimeoutError:
                    pass
            # The workers finish their requests before they hang up: serve them until then.
            deadline = time.monotonic() + DRAIN_S
            while self.peers and time.monotonic() < deadline and (
                    parent is None or os.getppid() == parent):
                await asyncio.sleep(0.05)
        finally:
            server.close()
            if self._pending:
                self._commit()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m storage.writer.process SOCKET")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s writer %(message)s")
    config = Config.from_env()
    parent = os.getppid()
    try:
        event_log = EventLog(config.db_path, layout=config.layout, sync=config.sync)
    except LogError as e:
        log.error("writer: the event log cannot be opened: %s", e)
        sys.exit(3)
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # uvloop comes with uvicorn[standard]; asyncio's loop also works
        pass
    try:
        asyncio.run(WriterServer(event_log).serve(args[0], parent=parent))
    finally:
        event_log.close()


# -- supervision, from gunicorn's master ----------------------------------------------------

class Supervisor(supervisor.Supervisor):
    """The writer, started before the workers and waited for until it answers."""

    def __init__(self, socket_path: str, env: dict[str, str] | None = None):
        # After the workers have exited, the writer commits what it holds and exits.
        super().__init__("storage.writer.process", socket_path, env, ready=_answers,
                         restart_after_s=(0.05, 0.5), stop_timeout_s=DRAIN_S + 5)


def _answers(path: str, pid: int) -> bool:
    """Whether the writer `pid` has announced its socket (a previous writer's file may
    still be there until the new one replaces it)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(path)
        # Connected: to this writer if its temporary socket is gone (it was renamed).
        return not os.path.exists(f"{path}.{pid}")
    except OSError:
        return False


if __name__ == "__main__":
    main()
