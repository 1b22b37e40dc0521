"""Finding the real agent CLIs for the tests that drive them.

`tools/install-agents.sh` (run by `.ci/run`) installs the pinned set
(tools/agents/package.json) into `.agents/node_modules/.bin/`. `AGENT_BRIDGE_AGENTS_DIR`
points the suite at another installed set instead (any directory with
`node_modules/.bin`, e.g. `npm install --prefix DIR @openai/codex@0.170.0 ...`), to check a
version range: the tests then expect the versions installed there, not the pins.

Locally a missing CLI skips its tests with the install hint; in CI
(`AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1`) it fails them, so real-agent coverage can never
silently disappear.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.acp_client import AcpClient
    from tests.adapters.claude.support import ClaudeWorld
    from tests.adapters.codex.support import Codex
    from tests.fakes.model_server import FakeModelServer

ROOT = Path(__file__).resolve().parent.parent
AGENTS_DIR_ENV = "AGENT_BRIDGE_AGENTS_DIR"
AGENTS = Path(os.environ.get(AGENTS_DIR_ENV) or ROOT / ".agents").resolve()
BIN = AGENTS / "node_modules" / ".bin"
REQUIRE_ENV = "AGENT_BRIDGE_REQUIRE_REAL_AGENTS"
PINS = ROOT / "tools" / "agents" / "package.json"

# The npm package of each CLI the suite drives.
PACKAGES = {
    "claude": "@anthropic-ai/claude-code",
    "codex": "@openai/codex",
    "gemini": "@google/gemini-cli",
    "opencode": "opencode-ai",
    "qwen": "@qwen-code/qwen-code",
    "claude-agent-acp": "@agentclientprotocol/claude-agent-acp",
    "codex-acp": "@agentclientprotocol/codex-acp",
}
# The Zed adapters' former package names: an older set (the oldest tested versions) has them.
FORMER = {
    "claude-agent-acp": "@zed-industries/claude-agent-acp",
    "codex-acp": "@zed-industries/codex-acp",
}


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def require_cli(name: str) -> Path:
    """The path of the CLI `name` (e.g. "gemini", "claude-agent-acp"); skips the test
    when it is not installed, or fails it when real agents are required."""
    path = BIN / name
    if path.exists() and os.access(path, os.X_OK):
        return path
    reason = f"the {name!r} CLI is not installed at {path}: run tools/install-agents.sh"
    if required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so real-agent tests may not be skipped)")
    pytest.skip(reason)


def require_program(name: str) -> str:
    """The path of the program `name` on PATH (npm, bash, ...): a test that needs it skips
    when it is missing, or fails under AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1 (`.ci/run` has it)."""
    found = shutil.which(name)
    if found is not None:
        return found
    reason = f"{name} is not installed (not on PATH)"
    if required():
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1, so the tests that need it may not be skipped")
    pytest.skip(reason)


def package_path(*parts: str) -> Path:
    """A file inside the installed agent packages (e.g. a platform binary)."""
    return AGENTS.joinpath("node_modules", *parts)


def installed_version(cli: str) -> str:
    """The version of the installed package behind CLI `cli` (its package.json), under its
    current package name or, in an older set, its former one."""
    names = [PACKAGES[cli], *([FORMER[cli]] if cli in FORMER else [])]
    manifests = [package_path(*name.split("/"), "package.json") for name in names]
    manifest = next((m for m in manifests if m.exists()), manifests[0])
    return str(json.loads(manifest.read_text())["version"])


def installed_major(cli: str) -> int | None:
    """The major version of the installed CLI `cli`, None when it is not installed."""
    try:
        return int(installed_version(cli).split(".")[0])
    except (OSError, ValueError, KeyError):
        return None


def pinned_version(cli: str) -> str:
    return str(json.loads(PINS.read_text())["dependencies"][PACKAGES[cli]])


# The real Claude Code CLI against the fake Anthropic server: the fixtures every module that
# drives it uses (`from tests.real_agents import claude_fake, claude_world`), named `fake` and
# `world` in the tests. Imported lazily: most users of this module drive other CLIs.
@pytest.fixture(name="fake")
def claude_fake() -> Iterator[FakeModelServer]:
    from tests.fakes.anthropic import anthropic_server

    with anthropic_server() as server:
        yield server


@pytest.fixture(name="world")
def claude_world(tmp_path: Path, fake: FakeModelServer) -> ClaudeWorld:
    """The real, pinned Claude Code CLI in an isolated HOME, talking to `fake`. Skipped when
    the CLI is not installed, failed instead under AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1."""
    from tests.adapters.claude.support import make_world

    require_cli("claude")
    return make_world(tmp_path, fake)


def make_codex(tmp_path: Path, fake: FakeModelServer) -> Codex:
    """The real, pinned Codex CLI with an isolated HOME and CODEX_HOME, talking to `fake`.
    Skipped when the CLI is not installed, failed instead under AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1."""
    from tests.adapters.codex.support import Codex
    from tests.fakes.openai_responses import write_codex_home

    require_cli("codex")
    home = tmp_path / "home"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_codex_home(home / "codex-home", fake.url)
    return Codex(home=home, workspace=workspace)


# -- the metrics scenario both real-CLI metrics tests run (Claude Code, Codex) ----------------


async def session_metrics(c: AcpClient, sid: str) -> dict[str, Any]:
    """`_bridge/session/metrics` of `sid`, checked against the bridge's result schema."""
    from tests.acp_schema import check_bridge_result

    m: dict[str, Any] = await c.request("_bridge/session/metrics", {"sessionId": sid})
    check_bridge_result("_bridge/session/metrics", m)
    return m


async def third_turn_after_restart(
    args: list[str], sid: str, ws: str, before: dict[str, Any]
) -> dict[str, Any]:
    """A new daemon on the same state: the closed session's metrics are `before`'s (its
    process figures aside); loaded, it takes a third turn. Returns the metrics after it."""
    from tests.daemon_proc import daemon_process

    async with daemon_process(args) as d:
        await d.client.initialize()
        closed = await session_metrics(d.client, sid)
        assert {k: v for k, v in before.items() if k != "process"} == closed
        await d.client.request("session/load", {"sessionId": sid, "cwd": ws, "mcpServers": []})
        await d.client.prompt(sid, "third")
        third = await session_metrics(d.client, sid)
    assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    return third
