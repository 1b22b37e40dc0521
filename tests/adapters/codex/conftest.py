from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.codex.support import Codex
from tests.fakes.model_server import FakeModelServer
from tests.fakes.openai_responses import responses_server
from tests.real_agents import make_codex


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with responses_server() as server:
        yield server


@pytest.fixture
def codex(tmp_path: Path, fake: FakeModelServer) -> Codex:
    """The real Codex CLI talking to `fake` (tests/real_agents.py)."""
    return make_codex(tmp_path, fake)
