from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.anthropic import anthropic_server
from tests.fakes.model_server import FakeModelServer
from tests.real_agents import require_cli

from .support import ClaudeWorld, make_world


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with anthropic_server() as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, fake: FakeModelServer) -> ClaudeWorld:
    """The real, pinned Claude Code CLI in an isolated HOME, talking to `fake`. Skipped when
    the CLI is not installed, failed instead under AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1."""
    require_cli("claude")
    return make_world(tmp_path, fake)
