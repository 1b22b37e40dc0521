"""One-shot commands the daemon runs for a client (`_bridge/session/shell`): in their own
process group, output kept in bounded buffers, the whole tree killed when they end.

Bounded on every side: only the last `limit` bytes of each stream are kept (the rest is
read and dropped, so a chatty command never blocks on a full pipe nor grows our memory);
on timeout the group is SIGKILLed and everything carrying the command's env marker (a
`setsid` escapee) is swept. When the shell exits, whatever it left running in the
background goes too: a command is one request, not a way to start daemons.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import ByteReceiveStream

from bridge.process import tree

READ_CHUNK = 64 * 1024
DRAIN_AFTER_EXIT = 2.0


@dataclass
class CommandResult:
    stdout: bytes
    stderr: bytes
    exit_code: int | None  # None: killed at the timeout
    stdout_size: int  # bytes the command wrote, kept or not
    stderr_size: int
    timed_out: bool = False

    @property
    def truncated(self) -> bool:
        return self.stdout_size > len(self.stdout) or self.stderr_size > len(self.stderr)


class _Tail:
    """The last `limit` bytes written to a stream, and how many there were in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: deque[bytes] = deque()
        self.kept = 0
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.chunks.append(chunk)
        self.kept += len(chunk)
        while self.kept - len(self.chunks[0]) >= self.limit:
            self.kept -= len(self.chunks.popleft())

    def value(self) -> bytes:
        return b"".join(self.chunks)[-self.limit :] if self.limit else b""


async def _drain(stream: ByteReceiveStream | None, into: _Tail) -> None:
    if stream is None:
        return
    with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        while True:
            into.add(await stream.receive(READ_CHUNK))


def kill_tree(pgid: int, token: str) -> None:
    """SIGKILL the process group and every process that carries the command's marker."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    swept = tree.sweep(token, tree.AGENT_ENV)
    tree.reap(pid for pid in swept if pid != pgid)


async def run_command(
    argv: Sequence[str],
    *,
    cwd: str,
    time_limit: float,
    limit: int,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run `argv` (stdin closed) in a new session for at most `time_limit` seconds; raises
    OSError when it cannot start."""
    token = uuid.uuid4().hex
    base = dict(os.environ if env is None else env)
    process = await anyio.open_process(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        # The markers let the sweep find descendants that left the group (`setsid`).
        env={**base, tree.MARKER_ENV: tree.INSTANCE_ID, tree.AGENT_ENV: token},
        start_new_session=True,
    )
    out, err = _Tail(limit), _Tail(limit)
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, process.stdout, out)
            tg.start_soon(_drain, process.stderr, err)
            with anyio.move_on_after(time_limit) as waited:
                await process.wait()
            timed_out = waited.cancelled_caught
            # The shell exited (or its time is up): nothing of its tree outlives it. What the
            # dead wrote is still in the pipes; read it, bounded in time in case a writer
            # we cannot see (no marker, other group) keeps them open.
            kill_tree(process.pid, token)
            tg.cancel_scope.deadline = anyio.current_time() + DRAIN_AFTER_EXIT
    finally:
        with anyio.CancelScope(shield=True):
            kill_tree(process.pid, token)
            with anyio.move_on_after(5):
                await process.wait()
            with contextlib.suppress(Exception):
                await process.aclose()
    return CommandResult(
        out.value(),
        err.value(),
        None if timed_out else process.returncode,
        out.size,
        err.size,
        timed_out,
    )
