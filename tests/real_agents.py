"""Finding the real, pinned agent CLIs for the tests that drive them.

`tools/install-agents.sh` (run by `.ci/run`) installs them into `.agents/node_modules/.bin/`.
Locally a missing CLI skips its tests with the install hint; in CI
(`AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1`) it fails them, so real-agent coverage can never
silently disappear.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AGENTS = ROOT / ".agents"
BIN = AGENTS / "node_modules" / ".bin"
REQUIRE_ENV = "AGENT_BRIDGE_REQUIRE_REAL_AGENTS"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def require_cli(name: str) -> Path:
    """The path of the pinned CLI `name` (e.g. "gemini", "claude-agent-acp"); skips the test
    when it is not installed, or fails it when real agents are required."""
    path = BIN / name
    if path.exists() and os.access(path, os.X_OK):
        return path
    reason = f"the pinned {name!r} CLI is not installed at {path}: run tools/install-agents.sh"
    if required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so real-agent tests may not be skipped)")
    pytest.skip(reason)


def package_path(*parts: str) -> Path:
    """A file inside the installed agent packages (e.g. a platform binary)."""
    return AGENTS.joinpath("node_modules", *parts)
