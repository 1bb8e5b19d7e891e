"""A worker's side of the writer process: sends each request's rows and waits for the
writer's answer, on one connection per worker that every request shares.

Bounded: at most `max_events` events wait for the writer at once. When it falls behind,
requests wait for room, and past `wait_s` they are refused (503, nothing stored). When the
writer is away (restarting), requests wait for it up to `wait_s` and then are refused;
a request whose events were sent but not answered when the connection broke is refused
too — its events may or may not be stored, and a retry is a duplicate if they were.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Sequence

from ..log import AppendResult, LogFull, LogUnavailable
from . import wire

MAX_EVENTS = 100_000
WAIT_S = 4.0
# A writer that took the frame and never answers (its disk hung): refused after this.
ANSWER_S = 30.0


class WriterAway(LogUnavailable):
    """The writer did not answer in time; nothing was acknowledged."""


class _Connection(asyncio.Protocol):
    def __init__(self, client: "WriterClient", loop: asyncio.AbstractEventLoop):
        self._client = client
        self.loop = loop
        self._reader = wire.Reader(wire.ANSWER)
        self.transport: asyncio.Transport | None = None
        # tag → (the request's future, its event count, when it was sent)
        self.waiting: dict[int, tuple[asyncio.Future, int, float]] = {}
        self.lost = False
        self._outgoing: list[bytes] = []
        self._sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._sweep()

    def send(self, frame: bytes) -> None:
        """Frames of one loop iteration go out in one write (one system call)."""
        if not self._outgoing:
            self.loop.call_soon(self._flush)
        self._outgoing.append(frame)

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(frames))

    def _sweep(self) -> None:
        """Once a second, not a timer per request: refuse what the writer has not
        answered for too long."""
        if self.lost:
            return
        oldest = self.loop.time() - self._client._answer_s
        late = [tag for tag, (_, _, sent) in self.waiting.items() if sent < oldest]
        for tag in late:
            future, events, _ = self.waiting.pop(tag)
            self._client._release(events)
            if not future.done():
                future.set_exception(WriterAway(
                    "The writer did not answer in time; the events may or may not be "
                    "stored: retry them (a retry is a duplicate if they were)"))
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    def data_received(self, data: bytes) -> None:
        try:
            frames = list(self._reader.feed(data))
        except wire.FrameError:
            if self.transport is not None:
                self.transport.close()
            return
        for (tag, code, accepted, duplicates), message in frames:
            entry = self.waiting.pop(tag, None)
            if entry is None:
                continue
            future, events, _ = entry
            self._client._release(events)
            if not future.done():
                future.set_result((code, accepted, duplicates, message.decode("utf-8")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._client._lost(self)
        waiting, self.waiting = self.waiting, {}
        for future, events, _ in waiting.values():
            self._client._release(events)
            if not future.done():
                future.set_exception(WriterAway(
                    "The writer restarted before it answered; the events may or may not "
                    "be stored: retry them (a retry is a duplicate if they were)"))


class WriterClient:
    def __init__(self, socket_path: str, *, max_events: int = MAX_EVENTS,
                 wait_s: float = WAIT_S, answer_s: float = ANSWER_S):
        self.socket_path = socket_path
        self._max_events = max_events
        self._wait_s = wait_s
        self._answer_s = answer_s
        self._tags = itertools.count(1)
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future | None = None
        self._in_flight = 0
        self._room: asyncio.Event | None = None

    async def append(self, rows: Sequence[Sequence[Any]], kind: int = wire.APPEND
                     ) -> AppendResult:
        """`kind`: APPEND for event rows, APPEND_POINTS for raw data points."""
        code, accepted, duplicates, message = await self._ask(kind, rows)
        if code == wire.OK:
            return AppendResult(accepted, duplicates)
        if code == wire.FULL:
            raise LogFull(message)
        raise LogUnavailable(message or "The writer could not store the events")

    async def writable(self) -> bool:
        try:
            code, *_ = await self._ask(wire.PROBE, ())
        except LogUnavailable:
            return False
        return code == wire.OK

    async def _ask(self, kind: int, rows: Sequence[Sequence[Any]]) -> tuple:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        events = len(rows)
        await self._make_room(events, deadline)
        self._in_flight += events
        try:
            conn = await self._connection(deadline)
        except BaseException:
            self._release(events)
            raise
        tag = next(self._tags) & 0xFFFFFFFF
        future = loop.create_future()
        conn.waiting[tag] = (future, events, loop.time())
        conn.send(wire.request(tag, kind, rows))
        return await future

    async def _make_room(self, events: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while self._in_flight and self._in_flight + events > self._max_events:
            if self._room is None:
                self._room = asyncio.Event()
            left = deadline - loop.time()
            if left <= 0:
                raise WriterAway("The writer is behind; nothing was stored, retry later")
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), left)
            except asyncio.TimeoutError:
                pass

    def _release(self, events: int) -> None:
        self._in_flight -= events
        if self._room is not None:
            self._room.set()

    def _lost(self, conn: _Connection) -> None:
        if self._conn is conn:
            self._conn = None

    async def _connection(self, deadline: float) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.lost:
            if conn.loop is asyncio.get_running_loop():
                return conn
            self._conn = None  # a connection of another event loop (tests run several)
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect(deadline))
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self, deadline: float) -> _Connection:
        """Connect, retrying while the writer is away (it is being started again)."""
        loop = asyncio.get_running_loop()
        delay = 0.01
        while True:
            try:
                _, conn = await loop.create_unix_connection(
                    lambda: _Connection(self, loop), self.socket_path)
                self._conn = conn
                return conn
            except OSError as e:
                if loop.time() + delay > deadline:
                    raise WriterAway(f"The writer is not answering ({e.strerror or e}); "
                                     "nothing was stored, retry later") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None
