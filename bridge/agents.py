"""Agent detection: is each agent installed, where, and which version."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from bridge.config import INSTALL_HINTS
from bridge.core.adapter import AgentSpec
from bridge.process.lookup import on_agent_path
from bridge.process.versions import version_of
from bridge.wire.types import JsonObj

VERSION_TIMEOUT = 5.0


@dataclass(frozen=True)
class Package:
    """A built-in agent's npm package and the versions the test suite has run it at."""

    agent: str
    package: str
    bin: str
    oldest: str  # oldest version tested (README, Compatibility)
    newest: str  # newest tested: the pin in tools/agents/package.json, what `install` picks
    older: str  # what may break on an older version
    newer: str = ""
    aliases: tuple[str, ...] = ()  # former package names, still recognised
    answers_version: bool = True  # `bin --version` prints the version


PACKAGES: dict[str, Package] = {
    p.agent: p
    for p in (
        Package(
            "claude", "@anthropic-ai/claude-code", "claude", "2.1.197", "2.1.332",
            "not tested: stream-json control messages the bridge sends (interrupt, permission "
            "prompts, MCP setup) may be missing or shaped differently",
        ),
        Package(
            "codex", "@openai/codex", "codex", "0.169.0", "0.171.0",
            "not tested: the app-server protocol (spec/codex/) may lack methods or fields the "
            "bridge uses for threads, turns and approvals",
        ),
        Package(
            "gemini", "@google/gemini-cli", "gemini", "0.61.0", "0.61.0",
            "not tested: ACP session load, modes or config options may be missing",
        ),
        Package(
            "opencode", "opencode-ai", "opencode", "1.18.33", "1.18.33",
            "not tested: ACP session load, modes or config options may be missing",
        ),
        Package(
            "qwen", "@qwen-code/qwen-code", "qwen", "0.24.4", "0.24.4",
            "not tested: ACP session load or resume, modes or config options may be missing",
        ),
        Package(
            "claude-acp", "@agentclientprotocol/claude-agent-acp", "claude-agent-acp", "0.23.1", "0.101.0",
            "not tested: releases before 0.23.1 (as @zed-industries/claude-agent-acp) may lack "
            "session load and config options",
            aliases=("@zed-industries/claude-agent-acp",), answers_version=False,
        ),
        Package(
            "codex-acp", "@agentclientprotocol/codex-acp", "codex-acp", "0.16.0", "2.6.0",
            "not tested: releases before 0.16.0 (as @zed-industries/codex-acp) may lack session "
            "load and MCP servers",
            aliases=("@zed-industries/codex-acp",), answers_version=False,
        ),
    )
}

# New message kinds are passed through or ignored; changed ones are the risk.
NEWER = "not tested yet: changed messages or options may break turns, settings or history"


def package_named(name: str) -> Package | None:
    """A built-in agent by its name, its npm package, a former package name, or its binary."""
    for p in PACKAGES.values():
        if name in (p.agent, p.package, p.bin, *p.aliases):
            return p
    return None


def version_tuple(text: str) -> tuple[int, int, int] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def outside_range(agent: str, version: str) -> str | None:
    """Why `version` of built-in `agent` is outside the tested range, with what may break;
    None when it is inside (or unknown)."""
    p = PACKAGES.get(agent)
    have = version_tuple(version)
    if p is None or have is None:
        return None
    oldest, newest = version_tuple(p.oldest), version_tuple(p.newest)
    if oldest is not None and have < oldest:
        return f"older than the versions agent-bridge is tested with ({p.oldest}..{p.newest}): {p.older}"
    if newest is not None and have > newest:
        return f"newer than the versions agent-bridge is tested with ({p.oldest}..{p.newest}): {p.newer or NEWER}"
    return None


def resolve(spec: AgentSpec) -> str | None:
    return on_agent_path(spec.command, spec.env)


async def describe_agents(agents: Mapping[str, AgentSpec], *, versions: bool = True) -> list[JsonObj]:
    rows: list[JsonObj] = []

    async def one(spec: AgentSpec, row: JsonObj) -> None:
        path = resolve(spec)
        row["installed"] = path is not None
        if path is not None:
            row["path"] = path
            if versions:
                v = (await version_of(path, {**os.environ, **spec.env}, VERSION_TIMEOUT)).version
                if v:
                    row["version"] = v
        elif spec.name in INSTALL_HINTS:
            row["install"] = INSTALL_HINTS[spec.name]

    async with anyio.create_task_group() as tg:
        for spec in agents.values():
            row: JsonObj = {
                "name": spec.name,
                "protocol": spec.protocol,
                "command": " ".join([spec.command, *spec.args]),
            }
            rows.append(row)
            tg.start_soon(one, spec, row)
    return rows
