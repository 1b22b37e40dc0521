"""The daemon as a real subprocess serving WebSocket (`serve --listen ws://127.0.0.1:0`),
real WebSocket clients on it (the `websockets` client under an `AcpClient`), and raw HTTP
handshakes for the gate tests."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import psutil
from anyio.abc import Process
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.acp_client import AcpClient
from tests.conftest import FAKE_AGENT, bridge_cmd, fake_agent_config, subprocess_env

LISTENING = re.compile(rb"listening ws://([^\s:]+|\[[^\]]+\]):(\d+)/acp\n")


@dataclass
class Stderr:
    data: bytearray = field(default_factory=bytearray)
    _grew: anyio.Event = field(default_factory=anyio.Event)
    ended: bool = False

    def feed(self, chunk: bytes) -> None:
        self.data.extend(chunk)
        self._grew.set()
        self._grew = anyio.Event()

    def end(self) -> None:
        self.ended = True
        self._grew.set()

    async def wait_for(self, pattern: bytes | re.Pattern[bytes], start: int = 0) -> re.Match[bytes]:
        """The first match of `pattern` in stderr (after byte `start`), waiting for it."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        while True:
            m = rx.search(bytes(self.data), start)
            if m is not None:
                return m
            if self.ended:
                raise AssertionError(f"daemon exited without logging {rx.pattern!r}:\n{self.text()}")
            await self._grew.wait()

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class WsDaemon:
    process: Process
    host: str
    port: int
    state_dir: Path
    stderr: Stderr

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/acp"

    @property
    def token(self) -> str:
        return (self.state_dir / "ws-token").read_text().strip()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def children(self) -> list[psutil.Process]:
        """Every live descendant (agents, and whatever helpers the daemon runs)."""
        found = []
        for p in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
        return found

    def agents(self) -> list[psutil.Process]:
        """The agent processes (the fake ACP agent) among the daemon's descendants."""
        found = []
        for p in self.children():
            with contextlib.suppress(psutil.Error):
                if any(FAKE_AGENT.name in part for part in p.cmdline()):
                    found.append(p)
        return found

    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)


def ws_args(
    tmp: Path, *extra: str, config: Path | None = None, listen: str = "ws://127.0.0.1:0"
) -> list[str]:
    return [
        "serve",
        "--listen",
        listen,
        "--config",
        str(config or fake_agent_config(tmp)),
        "--state-dir",
        str(tmp / "state"),
        "--log-level",
        "info",
        *extra,
    ]


async def start(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[Process, Stderr]:
    process = await anyio.open_process(
        [*bridge_cmd(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(**(env or {})),
    )
    return process, Stderr()


async def pump(process: Process, err: Stderr) -> None:
    assert process.stderr is not None
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        async for chunk in process.stderr:
            err.feed(chunk)
    err.end()


@contextlib.asynccontextmanager
async def ws_daemon(
    tmp: Path,
    *extra: str,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    listen: str = "ws://127.0.0.1:0",
) -> AsyncIterator[WsDaemon]:
    """A daemon serving WebSocket on a free loopback port; SIGTERM (then kill) on exit."""
    process, err = await start(ws_args(tmp, *extra, config=config, listen=listen), env)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump, process, err)
        try:
            with anyio.fail_after(30):
                m = await err.wait_for(LISTENING)
            yield WsDaemon(process, m.group(1).decode(), int(m.group(2)), tmp / "state", err)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGTERM)
                    with anyio.move_on_after(20):
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
            tg.cancel_scope.cancel()


@dataclass
class WsClient:
    acp: AcpClient
    ws: ClientConnection


@contextlib.asynccontextmanager
async def ws_client(
    d: WsDaemon, *, headers: dict[str, str] | None = None, **connect_kwargs: Any
) -> AsyncIterator[WsClient]:
    """A real WebSocket client (the `websockets` library) under an AcpClient, which validates
    every message the daemon sends against the ACP schema."""
    ws = await connect(d.url, additional_headers={**d.auth(), **(headers or {})}, **connect_kwargs)
    send_stream, receive_stream = anyio.create_memory_object_stream[bytes](1_000_000)

    async def reader() -> None:
        async with send_stream:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    if isinstance(message, str):
                        await send_stream.send(message.encode())

    async def send(data: bytes) -> None:
        await ws.send(data.decode())

    client = AcpClient(send, receive_stream)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await tg.start(client.run)
        try:
            yield WsClient(client, ws)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await ws.close()
            tg.cancel_scope.cancel()


UPGRADE = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Version", "13"),
]


def upgrade_headers() -> list[tuple[str, str]]:
    return [*UPGRADE, ("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode())]


async def raw_handshake(
    port: int, headers: Sequence[tuple[str, str]], path: str = "/acp"
) -> tuple[int, bytes]:
    """Send exactly these request headers (no Host unless given) and return the status and
    the whole response head."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        await stream.send(head.encode("latin-1"))
        data = b""
        with anyio.fail_after(15):
            while b"\r\n\r\n" not in data:
                try:
                    data += await stream.receive()
                except anyio.EndOfStream:
                    break
    status_line = data.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), data
    return int(status_line.split(b" ")[1]), data
