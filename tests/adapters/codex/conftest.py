from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.codex.support import Codex
from tests.fakes.model_server import FakeModelServer
from tests.fakes.openai_responses import responses_server, write_codex_home
from tests.real_agents import require_cli


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with responses_server() as server:
        yield server


@pytest.fixture
def codex(tmp_path: Path, fake: FakeModelServer) -> Codex:
    """The real, pinned Codex CLI with an isolated HOME and CODEX_HOME, talking to `fake`.
    Skipped when the CLI is not installed, failed instead under AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1."""
    require_cli("codex")
    home = tmp_path / "home"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_codex_home(home / "codex-home", fake.url)
    return Codex(home=home, workspace=workspace)
