"""Agent subprocesses: spawn in their own process group, drain stderr into a bounded tail,
and stop with the ladder close stdin → grace → SIGTERM group → SIGKILL group + sweep.

Use `open_agent_process` as an async context manager: it owns the stderr drain task and
always stops the whole process tree on exit, shielded and bounded in time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
import psutil
from anyio.abc import Process

from bridge.errors import AgentStartError
from bridge.process import tree
from bridge.wire.framing import DEFAULT_MAX_LINE, LineDecoder, Oversize

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 8192
READ_CHUNK = 256 * 1024


class AgentProcess:
    """A running agent. Reads stdout as lines, writes stdin, keeps the stderr tail."""

    def __init__(self, name: str, process: Process, max_line: int) -> None:
        self.name = name
        self.process = process
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._decoder = LineDecoder(max_line)
        self.stdout_garbage = 0
        self._descendants: set[int] = set()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def stderr_tail(self) -> str:
        return b"".join(self._tail).decode("utf-8", "replace")[-STDERR_TAIL_BYTES:]

    async def send(self, data: bytes) -> None:
        """Write bytes to the agent's stdin (raises `anyio.BrokenResourceError` once it is gone)."""
        assert self.process.stdin is not None
        await self.process.stdin.send(data)

    async def batches(self) -> AsyncIterator[list[bytes | Oversize]]:
        """Yield the complete stdout lines of each read: one batch per large read, so the
        caller handles many lines without a task hop each."""
        assert self.process.stdout is not None
        stream = self.process.stdout
        while True:
            try:
                chunk = await stream.receive(READ_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            lines = self._decoder.feed(chunk)
            if lines:
                yield lines

    async def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            async for chunk in self.process.stderr:
                self._tail.append(chunk)
                self._tail_size += len(chunk)
                while self._tail_size > STDERR_TAIL_BYTES and len(self._tail) > 1:
                    self._tail_size -= len(self._tail.popleft())
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s stderr: %s", self.name, chunk.decode("utf-8", "replace").rstrip())

    def remember_descendants(self) -> None:
        """Note the current descendants so the stop ladder can reach ones that escape the group."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                self._descendants.add(child.pid)

    async def stop(self, grace: float = 2.0) -> None:
        """close stdin → wait `grace` → SIGTERM the group → wait → SIGKILL group and sweep."""
        with anyio.CancelScope(shield=True):
            self.remember_descendants()
            if self.process.stdin is not None:
                with contextlib.suppress(Exception):
                    await self.process.stdin.aclose()
            if self.returncode is None:
                with anyio.move_on_after(grace):
                    await self.process.wait()
            if self.returncode is None:
                self._signal_group(signal.SIGTERM)
                with anyio.move_on_after(grace):
                    await self.process.wait()
            self._signal_group(signal.SIGKILL)
            tree.kill_pids(self._descendants)
            with anyio.move_on_after(grace):
                await self.process.wait()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        await stream.aclose()

    def _signal_group(self, sig: signal.Signals) -> None:
        # The agent leads its own process group (start_new_session), so its pid is the pgid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def resolve_command(name: str, command: str, env: Mapping[str, str]) -> str:
    """Find the agent's binary the way a shell would, or say where we looked."""
    path = env.get("PATH", os.defpath)
    if os.sep in command:
        if not os.path.exists(command):
            raise AgentStartError(name, f"{command} does not exist", {"command": command})
        if not os.access(command, os.X_OK):
            raise AgentStartError(name, f"{command} is not executable", {"command": command})
        return command
    found = shutil.which(command, path=path)
    if found is None:
        raise AgentStartError(
            name,
            f"{command!r} was not found on PATH; install it or set [agents.{name}] command "
            "to its full path in the config file",
            {"command": command, "searched": path.split(os.pathsep)},
        )
    return found


@contextlib.asynccontextmanager
async def open_agent_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    max_line: int = DEFAULT_MAX_LINE,
    stop_grace: float = 2.0,
) -> AsyncIterator[AgentProcess]:
    exe = resolve_command(name, argv[0], env)
    if cwd is not None and not await anyio.Path(cwd).is_dir():
        raise AgentStartError(name, f"working directory {cwd} does not exist", {"cwd": cwd})
    try:
        process = await anyio.open_process(
            [exe, *argv[1:]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise AgentStartError(name, f"{exe}: {exc.strerror or exc}", {"command": exe}) from exc
    tree.register(process.pid)
    proc = AgentProcess(name, process, max_line)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(proc._drain_stderr)
            try:
                yield proc
            finally:
                await proc.stop(stop_grace)
                tg.cancel_scope.cancel()
    finally:
        tree.unregister(process.pid)
