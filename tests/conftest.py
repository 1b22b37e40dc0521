"""Shared fixtures: the daemon in-process over memory streams (`bridge`), as a real
subprocess over stdio (`daemon_proc`), and the fake ACP agent's config."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from bridge.app import Bridge, Settings
from bridge.config import load_config
from bridge.wire.framing import LineDecoder
from tests.acp_client import AcpClient

ROOT = Path(__file__).resolve().parent.parent
FAKE_AGENT = ROOT / "tests" / "fakes" / "fake_acp_agent.py"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fake_agent_config(tmp: Path, **env: str) -> Path:
    """A config whose `fake` agent is the fake ACP agent (and default_agent)."""
    state = tmp / "fake-agent-state"
    state.mkdir(exist_ok=True)
    env_toml = ", ".join(f'{k} = "{v}"' for k, v in {"FAKE_ACP_STATE": str(state), **env}.items())
    path = tmp / "config.toml"
    path.write_text(
        'default_agent = "fake"\n'
        # The login-shell probe has its own tests (tests/diagnostics); here it would only add
        # a shell per daemon start (one that takes seconds on some machines).
        "login_shell_env = false\n"
        "[agents.fake]\n"
        'protocol = "acp"\n'
        f'command = "{sys.executable}"\n'
        f'args = ["{FAKE_AGENT}"]\n'
        f"env = {{ {env_toml} }}\n"
    )
    return path


@dataclass
class InProcess:
    bridge: Bridge
    client: AcpClient
    cwd: str


@contextlib.asynccontextmanager
async def connect(bridge: Bridge) -> AsyncIterator[AcpClient]:
    """One more client connection to a running in-process daemon, over memory streams."""
    to_daemon_send, to_daemon_recv = anyio.create_memory_object_stream[bytes](1000)
    to_client_send, to_client_recv = anyio.create_memory_object_stream[bytes](100_000)

    async def incoming() -> AsyncIterator[list[Any]]:
        decoder = LineDecoder()
        async for data in to_daemon_recv:
            lines = decoder.feed(data + b"\n")
            if lines:
                yield lines

    async def write(frames: list[bytes]) -> None:
        for f in frames:
            await to_client_send.send(f)

    client = AcpClient(to_daemon_send.send, to_client_recv)
    async with anyio.create_task_group() as tg:

        async def serve() -> None:
            await bridge.server.serve(incoming(), write, transport="memory")
            await to_client_send.aclose()

        tg.start_soon(serve)
        await tg.start(client.run)
        try:
            yield client
        finally:
            await to_daemon_send.aclose()
            tg.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def in_process(tmp: Path, config: Path | None = None, **settings: Any) -> AsyncIterator[InProcess]:
    """The whole daemon (store, manager, ACP server) over in-memory streams."""
    cfg = load_config(str(config or fake_agent_config(tmp)))
    for key, value in settings.items():
        setattr(cfg, key, value)
    bridge = Bridge(Settings(state_dir=str(tmp / "state"), config=cfg))
    workdir = tmp / "work"
    workdir.mkdir(exist_ok=True)
    async with bridge.running(), connect(bridge) as client:
        yield InProcess(bridge, client, str(workdir))


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path) as d:
        await d.client.initialize()
        yield d


def bridge_cmd() -> list[str]:
    return [sys.executable, "-m", "bridge"]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env
