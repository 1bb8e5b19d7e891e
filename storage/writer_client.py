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

from . import wire
from .log import AppendResult, LogFull, LogUnavailable

MAX_EVENTS = 100_000
WAIT_S = 4.0
# A writer that took the frame and never answers (its disk hung): refused after this.
ANSWER_S = 30.0


class WriterAway(LogUnavailable):
    """The writer did not answer in time; nothing was acknowledged."""


class _Connection(asyncio.Protocol):
    def __init__(self, client: "WriterClient"):
        self._client = client
        self._reader = wire.Reader(wire.ANSWER)
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, tuple[asyncio.Future, int]] = {}
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

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
            future, events = entry
            self._client._release(events)
            if not future.done():
                future.set_result((code, accepted, duplicates, message.decode("utf-8")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._client._lost(self)
        waiting, self.waiting = self.waiting, {}
        for future, events in waiting.values():
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

    async def append(self, rows: Sequence[Sequence[Any]]) -> AppendResult:
        code, accepted, duplicates, message = await self._ask(wire.APPEND, rows)
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
        conn.waiting[tag] = (future, events)
        assert conn.transport is not None
        conn.transport.write(wire.request(tag, kind, rows))
        try:
            return await asyncio.wait_for(future, self._answer_s)
        except asyncio.TimeoutError:
            if conn.waiting.pop(tag, None) is not None:
                self._release(events)
            raise WriterAway("The writer did not answer in time; the events may or may "
                             "not be stored: retry them (a retry is a duplicate if they "
                             "were)") from None

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
            return conn
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
                _, conn = await loop.create_unix_connection(lambda: _Connection(self),
                                                            self.socket_path)
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
