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
from pathlib import Path

import pytest

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
