"""Batched, ordered writing of encoded messages to one peer.

`put()` is synchronous and cheap (the hot path appends a frame to a list); one writer task
drains whatever accumulated and hands it to the transport in a single call. Before each
write, `before_write` runs — the daemon uses it to commit the durable log, so nothing
reaches a client before it is in the log. Producers that can wait (agent read loops)
call `wait_writable()` between batches: a slow reader then slows its agent down instead of
growing memory. `limit` is a hard bound: a peer that lets more pile up is cut off.
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
    ) -> None:
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
            if not self._frames:
                if self._closed:
                    return
                self._ready = anyio.Event()
                continue
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
