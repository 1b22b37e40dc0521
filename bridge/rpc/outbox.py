"""Batched, ordered writing of encoded messages to one peer.

`put()` is synchronous and cheap (the hot path appends a frame to a list); one writer task
drains whatever accumulated and hands it to the transport in a single call. Before each
write, `before_write` runs — the daemon uses it to commit the durable log, so nothing
reaches a client before it is in the log. Producers that can wait (agent read loops)
call `wait_writable()` between batches: a slow reader then slows its agent down instead of
growing memory. `limit` is a hard bound: a peer that lets more pile up is cut off.

`send()` is `put()` for a caller that can wait (an answer leaving its request's task): with
nothing queued and no write in progress it commits and writes the frame itself, in the same
loop turn, instead of waking the writer task (a loop turn, an event, a task step per answer).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

log = logging.getLogger(__name__)

HIGH_WATER = 4 * 1024 * 1024
HARD_LIMIT = 64 * 1024 * 1024


class OutboxOverflow(Exception):
    """The peer stopped reading and its queue passed the hard limit."""


class Outbox:
    def __init__(
        self,
        write: Callable[[list[bytes]], Awaitable[None]],
        *,
        before_write: Callable[[], Awaitable[None]] | None = None,
        high_water: int = HIGH_WATER,
        limit: int = HARD_LIMIT,
        whole_writes: bool = False,
    ) -> None:
        """`whole_writes`: `write` takes its frames whole before it can wait (asyncio's
        StreamWriter buffers them), so a cancellable caller (an outbound request) may `send`:
        cancelling it cannot leave half a frame on the wire."""
        self.whole_writes = whole_writes
        self._write = write
        self._before_write = before_write
        self._frames: list[bytes] = []
        self._size = 0
        self._high = high_water
        self._limit = limit
        self._ready = anyio.Event()
        self._writable = anyio.Event()
        self._writable.set()
        self._closed = False
        self.overflowed = False
        # Held for each write (the writer's batch or a `send`), so writes keep the order of
        # their frames' `put`/`send`; fast_acquire: taking it free costs no loop turn.
        self._writing = anyio.Lock(fast_acquire=True)
        # A `send` whose write failed: the writer task raises it, as if its own write had.
        self._failed: BaseException | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued_bytes(self) -> int:
        return self._size

    def put(self, frame: bytes) -> None:
        if self._closed:
            return
        frames = self._frames
        if not frames:
            # Frames queued ⇒ the writer is signalled (it takes the frames and a new event in one
            # step): one `set()` per batch, not per message.
            self._ready.set()
        frames.append(frame)
        self._size += len(frame)
        if self._size > self._high and self._writable.is_set():
            self._writable = anyio.Event()
        if self._size > self._limit:
            self.overflowed = True
            log.warning("peer stopped reading: %d bytes queued, disconnecting it", self._size)
            self.close()

    async def send(self, frame: bytes) -> None:
        """`put(frame)`, written by the caller when nothing is queued or being written: after
        `before_write` (the log commit), as the writer would. Never raises a write's error: the
        writer task does (the connection ends as before)."""
        if self._frames or self._closed or self._writing.locked():
            # Frames before this one are still to be written: it goes behind them.
            self.put(frame)
            return
        try:
            await self._writing.acquire()
        except BaseException:
            # Cancelled before anything was done: handed over all the same (queued), so that a
            # caller's `$/cancel_request` for it never names a request the peer was not sent.
            self.put(frame)
            raise
        try:
            try:
                if self._before_write is not None:
                    await self._before_write()
            except BaseException:
                # Not written (cancelled, say): queued, it still goes out before later frames.
                self._frames.insert(0, frame)
                self._size += len(frame)
                self._ready.set()
                raise
            try:
                await self._write([frame])
            except Exception as exc:
                self._failed = exc
                self._ready.set()
        finally:
            self._writing.release()

    async def wait_writable(self) -> None:
        if not self._closed:
            await self._writable.wait()

    def close(self) -> None:
        self._closed = True
        self._ready.set()
        self._writable.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Write until closed; what was queued before `close()` is still written."""
        task_status.started()
        while True:
            await self._ready.wait()
            if self._failed is not None:
                raise self._failed
            if not self._frames:
                if self._closed:
                    return
                self._ready = anyio.Event()
                continue
            async with self._writing:  # a `send` writing now goes first
                # Take the batch first: its log entries were all appended before this point, so
                # the flush below covers them; frames put meanwhile wait for the next round.
                frames, self._frames, self._size = self._frames, [], 0
                self._ready = anyio.Event()
                if self._closed and self.overflowed:
                    return
                if self._before_write is not None:
                    await self._before_write()
                await self._write(frames)
            if not self._writable.is_set() and self._size <= self._high:
                self._writable.set()
            if self._closed and not self._frames:
                return
