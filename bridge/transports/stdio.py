"""ACP over the daemon's own stdin/stdout. stdout carries protocol messages only.

The descriptors are switched to non-blocking and driven by the event loop (epoll), so
reads and writes cost no thread hop; regular files (never blocking) work too. Their flags
are restored on exit."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import anyio

from bridge.wire.framing import DEFAULT_MAX_LINE, LineDecoder, Oversize

READ_CHUNK = 256 * 1024
# At stdin EOF, requests already read get this long to be answered before the daemon stops:
# `echo '<request>' | agent-bridge` prints its answer. Bounded, so a closing editor with a
# turn running still sees the daemon exit promptly.
EOF_DRAIN = 5.0


@contextlib.contextmanager
def nonblocking(*fds: int) -> Iterator[None]:
    saved = {fd: fcntl.fcntl(fd, fcntl.F_GETFL) for fd in fds}
    try:
        for fd, flags in saved.items():
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        yield
    finally:
        for fd, flags in saved.items():
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)


async def read_batches(fd: int, max_line: int = DEFAULT_MAX_LINE) -> AsyncIterator[list[bytes | Oversize]]:
    decoder = LineDecoder(max_line)
    while True:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            await anyio.wait_readable(fd)
            continue
        except OSError as exc:
            if exc.errno in (errno.EBADF, errno.EIO):
                return
            raise
        if not chunk:
            return
        lines = decoder.feed(chunk)
        if lines:
            yield lines


class BrokenOutput(Exception):
    """The client closed our stdout."""


def writer(fd: int) -> Callable[[list[bytes]], Awaitable[None]]:
    async def write(frames: list[bytes]) -> None:
        data = memoryview(b"\n".join(frames) + b"\n")
        while data:
            try:
                n = os.write(fd, data)
            except BlockingIOError:
                await anyio.wait_writable(fd)
                continue
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise BrokenOutput() from exc
            data = data[n:]

    return write
