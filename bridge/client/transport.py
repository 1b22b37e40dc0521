"""How the client reaches a daemon: an `agent-bridge` it spawns and talks to over the child's
stdin/stdout, or a running daemon over WebSocket (`ws://HOST:PORT/acp`, bearer token).

Both give a `Link`: batches of incoming messages, a batched writer, and — once the link is
gone — an explanation (the daemon's exit code and stderr tail, or the WebSocket close code).
"""

from __future__ import annotations

import contextlib
import os
import site
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import anyio

from bridge import timeouts
from bridge.client.errors import ConnectFailed, ConnectionLost
from bridge.paths import WS_TOKEN_FILE, default_state_dir
from bridge.process.ladder import stop_ladder
from bridge.wire.framing import DEFAULT_MAX_LINE, LineDecoder, Oversize

STDERR_TAIL = 64 * 1024
WS_MAX_MESSAGE = 64 * 1024 * 1024

StderrSink = Callable[[bytes], None] | BinaryIO | None


@dataclass
class Link:
    incoming: AsyncIterator[list[bytes | Oversize]]
    # Writes a batch of encoded messages; raises anyio.BrokenResourceError once the link is gone.
    write: Callable[[list[bytes]], Awaitable[None]]
    # Why the link ended; waits briefly for the daemon's exit status.
    loss: Callable[[], Awaitable[ConnectionLost]]
    description: str
    pid: int | None = None  # of a spawned daemon


# -- a spawned daemon over stdio ------------------------------------------------------------------


def daemon_argv(
    command: Sequence[str] | None,
    *,
    agent: str | None = None,
    config: str | os.PathLike[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    log_level: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of the daemon to spawn: `command` (default: this interpreter running
    `-m bridge`, i.e. the very package the client was imported from) plus options."""
    argv = list(command) if command else [sys.executable, "-m", "bridge"]
    for flag, value in (
        ("--config", config),
        ("--state-dir", state_dir),
        ("--agent", agent),
        ("--log-level", log_level),
    ):
        if value is not None:
            argv += [flag, os.fspath(value)]
    return argv + list(extra)


def daemon_env(env: Mapping[str, str] | None, *, own_package: bool) -> dict[str, str]:
    out = dict(os.environ)
    out.update(env or {})
    if own_package:
        # Run the same `bridge` the client was imported from, installed or from a checkout.
        root = str(Path(__file__).resolve().parents[2])
        installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
        if root not in installed:
            parts = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p]
            if root not in parts:
                out["PYTHONPATH"] = os.pathsep.join([root, *parts])
    return out


@contextlib.asynccontextmanager
async def spawn_link(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stderr: StderrSink = None,
    shutdown_timeout: float = timeouts.CLIENT_SHUTDOWN_TIMEOUT,
    max_line: int = DEFAULT_MAX_LINE,
) -> AsyncIterator[Link]:
    """Run the daemon as a child in its own session (a Ctrl-C at the terminal reaches the
    client, which cancels turns gracefully, not the daemon). On exit: stdin EOF, then wait
    for the daemon to stop its agents; SIGTERM, then SIGKILL only if it does not."""
    try:
        proc = await anyio.open_process(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise ConnectFailed(f"cannot start the daemon {argv[0]!r}: {exc.strerror or exc}") from None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stdout, stderr_stream = proc.stdin, proc.stdout, proc.stderr
    tail = bytearray()
    stderr_done = anyio.Event()

    async def pump_stderr() -> None:
        try:
            async for chunk in stderr_stream:
                tail.extend(chunk)
                del tail[:-STDERR_TAIL]
                _sink(stderr, chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            stderr_done.set()

    async def incoming() -> AsyncIterator[list[bytes | Oversize]]:
        decoder = LineDecoder(max_line)
        try:
            async for chunk in stdout:
                lines = decoder.feed(chunk)
                if lines:
                    yield lines
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return

    async def write(frames: list[bytes]) -> None:
        try:
            await stdin.send(b"\n".join(frames) + b"\n")
        except (anyio.ClosedResourceError, BrokenPipeError, ConnectionResetError) as exc:
            raise anyio.BrokenResourceError from exc

    async def loss() -> ConnectionLost:
        with anyio.move_on_after(5):
            await proc.wait()
            await stderr_done.wait()
        return ConnectionLost(
            "the agent-bridge daemon closed the connection",
            exit_code=proc.returncode,
            stderr_tail=tail.decode("utf-8", "replace"),
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_stderr)
        try:
            yield Link(incoming(), write, loss, f"agent-bridge (pid {proc.pid}) over stdio", proc.pid)
        finally:
            with anyio.CancelScope(shield=True):
                # The daemon stops its agents itself once its stdin closes.
                await stop_ladder(proc, grace=shutdown_timeout, term_grace=5)
                with anyio.move_on_after(2):
                    await stderr_done.wait()
                tg.cancel_scope.cancel()


def _sink(target: StderrSink, chunk: bytes) -> None:
    if target is None:
        return
    if callable(target):
        target(chunk)
        return
    with contextlib.suppress(OSError, ValueError):
        target.write(chunk)
        target.flush()


# -- a running daemon over WebSocket --------------------------------------------------------------


def resolve_token(token: str | None, token_file: str | os.PathLike[str] | None, state_dir: str | None) -> str:
    """The bearer token: given, else read from `token_file`, else from the daemon's
    `<state-dir>/ws-token` (the file `agent-bridge serve --listen` writes at start)."""
    if token:
        return token
    if token_file is None:
        token_file = os.path.join(state_dir or default_state_dir(), WS_TOKEN_FILE)
    try:
        value = Path(token_file).read_text().strip()
    except OSError as exc:
        raise ConnectFailed(
            f"no WebSocket token: pass token= or token_file= (could not read {os.fspath(token_file)}: "
            f"{exc.strerror})"
        ) from None
    if not value:
        raise ConnectFailed(f"the token file {os.fspath(token_file)} is empty")
    return value


_REFUSALS = {
    401: "missing or wrong token",
    403: "Origin or Host not allowed",
}


@contextlib.asynccontextmanager
async def websocket_link(
    url: str,
    *,
    token: str,
    origin: str | None = None,
    open_timeout: float = 10.0,
    max_size: int = WS_MAX_MESSAGE,
) -> AsyncIterator[Link]:
    """One JSON-RPC message per text frame; binary frames are ignored."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            origin=origin,  # type: ignore[arg-type]
            proxy=None,  # the daemon is on loopback: never go through a proxy from the environment
            max_size=max_size,
            open_timeout=open_timeout,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        why = _REFUSALS.get(status, exc.response.reason_phrase)
        raise ConnectFailed(
            f"{url}: the daemon refused the connection: HTTP {status} ({why})", status=status
        ) from None
    except InvalidURI as exc:
        raise ConnectFailed(f"{url}: not a WebSocket URL: {exc}") from None
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise ConnectFailed(f"cannot connect to {url}: {exc or type(exc).__name__}") from None

    async def incoming() -> AsyncIterator[list[bytes | Oversize]]:
        try:
            async for message in ws:
                if isinstance(message, str):
                    yield [message.encode()]
        except ConnectionClosed:
            return

    async def write(frames: list[bytes]) -> None:
        try:
            for frame in frames:
                await ws.send(frame, text=True)
        except ConnectionClosed as exc:
            raise anyio.BrokenResourceError from exc

    async def loss() -> ConnectionLost:
        code: Any = ws.close_code
        reason = ws.close_reason or ""
        return ConnectionLost(f"the WebSocket to {url} closed (code {code}{': ' + reason if reason else ''})")

    try:
        yield Link(incoming(), write, loss, f"agent-bridge at {url}")
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await ws.close()
