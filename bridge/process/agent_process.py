"""Agent subprocesses: spawn in their own process group, drain stderr into a bounded tail,
and stop with the ladder close stdin → grace → SIGTERM group → SIGKILL group + sweep.

Every agent carries two env markers (`bridge.process.tree`): the daemon's instance, and
one of its own, so stopping it also finds descendants that left its group (`setsid`,
double-forking daemons re-parented to the subreaper daemon).

Use `open_agent_process` as an async context manager: it owns the stderr drain task and
always stops the whole process tree on exit, shielded and bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.abc import Process

from bridge import envsetup, timeouts
from bridge import trace as _trace
from bridge.errors import AgentStartError
from bridge.lazy import lazy_module
from bridge.process import tree
from bridge.process.ladder import stop_ladder
from bridge.process.lookup import locate
from bridge.wire.framing import DEFAULT_MAX_LINE, LineDecoder, Oversize

if TYPE_CHECKING:
    import psutil
else:
    # Imported at its first use: not on the path to the first `initialize` answer (bridge/lazy.py).
    psutil = lazy_module("psutil")

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 8192
# Applied to every stderr tail handed out (they end up in errors, logs and the event log):
# the app installs the secret masking of `bridge.diagnostics.redact`, a layer above this one.
stderr_filter: Callable[[str], str] = str
READ_CHUNK = 256 * 1024


@dataclass
class ExitRecord:
    """How the agent processes started under `recording_exits()` ended: lets a caller report
    an agent's exit code and stderr even when an adapter only saw its pipe close."""

    ended: bool = False
    returncode: int | None = None
    stderr_tail: str = ""
    # It exited (or closed its stdout) before the bridge began stopping it.
    on_its_own: bool = False


_exit_record: ContextVar[ExitRecord | None] = ContextVar("agent_exit_record", default=None)


@contextlib.contextmanager
def recording_exits() -> Iterator[ExitRecord]:
    record = ExitRecord()
    token = _exit_record.set(record)
    try:
        yield record
    finally:
        _exit_record.reset(token)


class AgentProcess:
    """A running agent. Reads stdout as lines, writes stdin, keeps the stderr tail."""

    def __init__(self, name: str, process: Process, max_line: int) -> None:
        self.name = name
        self.process = process
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._decoder = LineDecoder(max_line)
        self.stdout_garbage = 0
        self._descendants: dict[int, psutil.Process] = {}
        self.agent_token = ""
        self.stdout_closed = False
        self._stderr_done = anyio.Event()
        # The protocol trace (`--trace`), or None: one attribute check per read or write.
        self.trace: _trace.Tracer | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def stderr_tail(self) -> str:
        """The last of its stderr, secrets masked: it ends up in errors, logs and the event log."""
        return stderr_filter(b"".join(self._tail).decode("utf-8", "replace")[-STDERR_TAIL_BYTES:])

    async def send(self, data: bytes) -> None:
        """Write bytes to the agent's stdin (raises `anyio.BrokenResourceError` once it is gone)."""
        assert self.process.stdin is not None
        if self.trace is not None:
            self.trace.agent_out(self.name, self.pid, data)
        # anyio's `send` around asyncio's StreamWriter checks for cancellation and, after
        # every write, yields once more in a shielded cancel scope: an extra event-loop turn
        # per request to the agent. The writer itself is used (the same errors are raised);
        # it waits only when the pipe is full (back-pressure as before).
        writer = getattr(self.process.stdin, "_stream", None)
        if not isinstance(writer, asyncio.StreamWriter):
            await self.process.stdin.send(data)
            return
        if writer.is_closing():
            raise anyio.BrokenResourceError
        try:
            writer.write(data)
            if writer.is_closing():
                # The write failed (EPIPE: the agent closed its stdin); asyncio closed the
                # transport and swallowed the error, so nothing else would say the frame is lost.
                raise anyio.BrokenResourceError
            if writer.transport.get_write_buffer_size():
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise anyio.BrokenResourceError from exc

    async def batches(self) -> AsyncIterator[list[bytes | Oversize]]:
        """Yield the complete stdout lines of each read: one batch per large read, so the
        caller handles many lines without a task hop each."""
        assert self.process.stdout is not None
        stream = self.process.stdout
        while True:
            try:
                chunk = await stream.receive(READ_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self.stdout_closed = True
                return
            lines = self._decoder.feed(chunk)
            if lines:
                if self.trace is not None:
                    self.trace.agent_in(self.name, self.pid, lines)
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

    async def _drain(self) -> None:
        try:
            await self._drain_stderr()
        finally:
            self._stderr_done.set()

    async def wait(self, within: float = timeouts.STOP_GRACE) -> int | None:
        """Wait (at most `within` s) for the agent to exit and its stderr to be read to the end,
        so `stderr_tail()` has its last words. Returns the exit status (None if still running)."""
        with anyio.move_on_after(within):
            await self.process.wait()
            await self._stderr_done.wait()
        return self.returncode

    def remember_descendants(self) -> None:
        """Note the current descendants so the stop ladder can reach ones that escape the group."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                self._descendants.setdefault(child.pid, child)

    async def stop(self, grace: float = timeouts.STOP_GRACE) -> None:
        """close stdin → wait `grace` → SIGTERM (+SIGCONT) the group and escaped descendants →
        wait `grace` → SIGKILL them all, sweep by the agent's marker, reap re-parented orphans.
        Shielded, and bounded by about 4 grace periods whatever the agent does."""
        with anyio.CancelScope(shield=True):
            on_its_own = self.returncode is not None or self.stdout_closed
            self.remember_descendants()
            await stop_ladder(self.process, grace=grace, term_grace=grace, kill_grace=0, send=self._rung)
            # Whether the agent went at EOF or not: what it left behind goes now.
            self._signal_all(signal.SIGKILL)
            swept = tree.sweep(self.agent_token, tree.AGENT_ENV) if self.agent_token else []
            with anyio.move_on_after(grace):
                await self.process.wait()
            with anyio.move_on_after(grace):
                await self._stderr_done.wait()
            # Killed descendants that were re-parented to us are our zombies now. Never the
            # agent itself (it carries the marker too): asyncio waits for that one.
            tree.reap(pid for pid in {*self._descendants, *swept} if pid != self.pid)
            self._record_exit(on_its_own)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        await stream.aclose()
            # Finalise the subprocess transport too (else it is only closed, noisily, at GC).
            with anyio.move_on_after(grace), contextlib.suppress(Exception):
                await self.process.aclose()
            if self.trace is not None:
                self.trace.agent_exited(self.name, self.pid, self.returncode)

    def _rung(self, sig: signal.Signals) -> None:
        if sig == signal.SIGTERM:
            self.remember_descendants()
        self._signal_all(sig)

    def _signal_group(self, sig: signal.Signals) -> None:
        # The agent leads its own process group (start_new_session), so its pid is the pgid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _signal_all(self, sig: signal.Signals) -> None:
        """The group, the remembered descendants (checked against pid reuse) and, for SIGTERM,
        everything carrying the agent's marker; SIGCONT after SIGTERM so a stopped process
        gets to handle it."""
        sigs = (sig, signal.SIGCONT) if sig == signal.SIGTERM else (sig,)
        for s in sigs:
            self._signal_group(s)
        # Once each: a second SIGTERM could land while a process runs its handler's exit.
        for child in self._descendants.values():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(child.pid) != self.pid:
                    for s in sigs:
                        child.send_signal(s)
        if sig == signal.SIGTERM and self.agent_token:
            escaped = [
                pid
                for pid in tree.marked_pids(tree.AGENT_ENV, self.agent_token)
                if pid not in self._descendants and _pgid(pid) != self.pid
            ]
            for s in sigs:
                tree.kill_pids(escaped, s)

    def _record_exit(self, on_its_own: bool) -> None:
        record = _exit_record.get()
        if record is not None:
            record.ended = True
            record.returncode = self.returncode
            record.stderr_tail = self.stderr_tail()
            record.on_its_own = on_its_own


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def resolve_command(name: str, command: str, env: Mapping[str, str]) -> str:
    """Find the agent's binary the way a shell would (then in `agent-bridge install`'s
    prefix), or say where we looked."""
    found = locate(command, env)
    if found.path is not None:
        return found.path
    searched = found.searched
    if os.sep in command:
        what = "does not exist" if found.problem == "not_found" else "is not executable"
        raise AgentStartError(name, f"{command} {what}", {"command": command, "kind": found.problem})
    if found.unusable is not None:
        raise AgentStartError(
            name,
            f"{found.unusable} is not executable",
            {"command": found.unusable, "kind": "not_executable", "searched": searched},
        )
    shown = ", ".join(searched[:8]) + (f" and {len(searched) - 8} more" if len(searched) > 8 else "")
    raise AgentStartError(
        name,
        f"{command!r} was not found on PATH (looked in {shown or 'an empty PATH'})",
        {"command": command, "kind": "not_found", "searched": searched},
    )


async def _resolve(name: str, command: str, env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The binary and the environment to start it with: the daemon's environment completed
    from the login shell's (`bridge.envsetup`). When the binary is missing and the login
    environment came from the cache, it is looked up again once: the user may just have
    installed the agent."""
    environment = envsetup.current()
    if environment is None:
        return resolve_command(name, command, env), dict(env)
    if not environment.resolved:
        # The login shell is still being asked (it can take seconds): when the agent is
        # found without it, start now rather than make the user wait for their rc files.
        early = environment.complete(env)
        try:
            return resolve_command(name, command, early), early
        except AgentStartError:
            pass
    login = await environment.resolve()
    full = environment.complete(env)
    try:
        return resolve_command(name, command, full), full
    except AgentStartError as exc:
        if login.source != "cache" or (exc.data or {}).get("kind") != "not_found":
            raise
    await environment.resolve(refresh=True)
    full = environment.complete(env)
    return resolve_command(name, command, full), full


@contextlib.asynccontextmanager
async def open_agent_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    max_line: int = DEFAULT_MAX_LINE,
    stop_grace: float = timeouts.STOP_GRACE,
) -> AsyncIterator[AgentProcess]:
    exe, env = await _resolve(name, argv[0], env)
    if cwd is not None and not await anyio.Path(cwd).is_dir():
        raise AgentStartError(
            name, f"working directory {cwd} does not exist", {"cwd": cwd, "kind": "bad_cwd"}
        )
    token = uuid.uuid4().hex
    try:
        process = await anyio.open_process(
            [exe, *argv[1:]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={**env, tree.MARKER_ENV: tree.INSTANCE_ID, tree.AGENT_ENV: token},
            start_new_session=True,
        )
    except OSError as exc:
        raise AgentStartError(
            name, f"{exe}: {exc.strerror or exc}", {"command": exe, **_spawn_failure(exe, exc)}
        ) from exc
    tree.register(process.pid)
    proc = AgentProcess(name, process, max_line)
    proc.agent_token = token
    proc.trace = _trace.current()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(proc._drain)
            try:
                yield proc
            finally:
                await proc.stop(stop_grace)
                tg.cancel_scope.cancel()
    finally:
        tree.unregister(process.pid)


def _spawn_failure(exe: str, exc: OSError) -> dict[str, str]:
    """What an exec failure means: EACCES is permissions; ENOENT on a file that exists is
    its `#!` interpreter missing; ENOEXEC is a file that is not a program for this machine."""
    if exc.errno == errno.EACCES:
        return {"kind": "not_executable"}
    if exc.errno == errno.ENOENT and os.path.exists(exe):
        with contextlib.suppress(OSError):
            with open(exe, "rb") as f:
                first = f.readline(200).decode("utf-8", "replace").strip()
            if first.startswith("#!"):
                return {
                    "kind": "node_missing" if "node" in first else "broken_install",
                    "interpreter": first[2:],
                }
    if exc.errno in (errno.ENOEXEC, errno.ENOENT):
        return {"kind": "broken_install"}
    return {}
