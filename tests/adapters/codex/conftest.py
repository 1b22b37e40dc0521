from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.codex.support import CODEX, Codex
from tests.fakes.model_server import FakeModelServer
from tests.fakes.openai_responses import responses_server, write_codex_home


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with responses_server() as server:
        yield server


@pytest.fixture
def codex(tmp_path: Path, fake: FakeModelServer) -> Codex:
    """The real Codex CLI with an isolated HOME and CODEX_HOME, talking to `fake`."""
    if not CODEX.exists():
        pytest.skip(f"the pinned Codex CLI is not installed at {CODEX}: run tools/install-agents.sh")
    home = tmp_path / "home"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_codex_home(home / "codex-home", fake.url)
    return Codex(home=home, workspace=workspace)
