"""Helpers for fault-injection tests: a config for the fault agent, and process checks
that look at the real process table (psutil)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from bridge.process.tree import MARKER_ENV
from tests.acp_client import AcpClient

FAULT_AGENT = Path(__file__).resolve().parent / "fault_agent.py"


def fault_config(
    tmp: Path, *, agent_env: dict[str, str] | None = None, extra: str = "", agent_extra: str = ""
) -> Path:
    """A config whose default agent `fault` is the fault agent; `extra` is appended at the top
    level (before the tables), `agent_extra` inside `[agents.fault]`."""
    state = tmp / "fake-agent-state"
    state.mkdir(exist_ok=True)
    env = {"FAKE_ACP_STATE": str(state), **(agent_env or {})}
    env_toml = ", ".join(f'{k} = "{v}"' for k, v in env.items())
    path = tmp / "config.toml"
    path.write_text(
        'default_agent = "fault"\n'
        f"{extra}\n"
        "[agents.fault]\n"
        'protocol = "acp"\n'
        f'command = "{sys.executable}"\n'
        f'args = ["{FAULT_AGENT}"]\n'
        f"env = {{ {env_toml} }}\n"
        f"{agent_extra}\n"
    )
    return path


def alive(pids: Iterable[int]) -> list[int]:
    """The pids that still name a running (non-zombie) process."""
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
    return out


def marked(instance: str) -> list[int]:
    """Live processes carrying the bridge's env marker for `instance`."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARKER_ENV) == instance:
                found.append(proc.pid)
    return found


async def agent_pid(client: AcpClient, sid: str) -> int:
    metrics = await client.request("_bridge/session/metrics", {"sessionId": sid})
    return int(metrics["process"]["pid"])


async def status(client: AcpClient, sid: str) -> Any:
    return (await client.request("_bridge/session/info", {"sessionId": sid}))["status"]


def family_pids(client: AcpClient, sid: str) -> list[int]:
    text = client.text(sid)
    return [int(p) for p in text.split("family:", 1)[1].split()]
