"""`agent-bridge` as a real subprocess over stdio, with an `AcpClient` on its pipes."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import Process

from tests.acp_client import AcpClient
from tests.conftest import bridge_cmd, subprocess_env


@dataclass
class DaemonProc:
    process: Process
    client: AcpClient
    stderr: bytearray


@contextlib.asynccontextmanager
async def daemon_process(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    prefix: Sequence[str] = (),
) -> AsyncIterator[DaemonProc]:
    """`prefix` runs the daemon through a wrapper that execs it (e.g. `unshare`)."""
    process = await anyio.open_process(
        [*prefix, *bridge_cmd(), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(**(env or {})),
        cwd=str(cwd) if cwd else None,
    )
    assert process.stdin and process.stdout and process.stderr
    stdin, stdout, stderr_stream = process.stdin, process.stdout, process.stderr
    lines_send, lines_recv = anyio.create_memory_object_stream[bytes](100_000)
    stderr = bytearray()

    async def pump_stdout() -> None:
        buf = b""
        async with lines_send:
            async for chunk in stdout:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        await lines_send.send(line)

    async def pump_stderr() -> None:
        async for chunk in stderr_stream:
            stderr.extend(chunk)

    async def send(data: bytes) -> None:
        await stdin.send(data + b"\n")

    client = AcpClient(send, lines_recv)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_stdout)
        tg.start_soon(pump_stderr)
        await tg.start(client.run)
        try:
            yield DaemonProc(process, client, stderr)
        finally:
            with contextlib.suppress(Exception):
                await stdin.aclose()
            with anyio.move_on_after(15):
                await process.wait()
            if process.returncode is None:
                process.kill()
            tg.cancel_scope.cancel()
    # Close the pipes and the transport explicitly (no "unclosed transport" at GC time).
    with anyio.CancelScope(shield=True):
        await process.aclose()
