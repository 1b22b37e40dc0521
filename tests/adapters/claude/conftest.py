from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.anthropic import anthropic_server
from tests.fakes.model_server import FakeModelServer

from .support import CLAUDE, ClaudeWorld, make_world


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with anthropic_server() as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, fake: FakeModelServer) -> ClaudeWorld:
    """The real, pinned Claude Code CLI in an isolated HOME, talking to `fake`."""
    if not CLAUDE.exists():
        pytest.skip(f"the pinned Claude Code CLI is not installed at {CLAUDE}: run tools/install-agents.sh")
    return make_world(tmp_path, fake)
