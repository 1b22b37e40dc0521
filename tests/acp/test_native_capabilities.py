"""`initialize` with a native default agent answers from the adapter's static capabilities,
without spawning the agent (Claude Code's handshake alone takes seconds)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.conftest import in_process

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("agent", "sse"), [("claude", True), ("codex", False)])
async def test_native_default_agent_is_not_spawned_for_initialize(tmp_path: Path, agent: str, sse: bool) -> None:
    config = tmp_path / "native.toml"
    # A binary that does not exist: a probe that spawned it would fail and fall back to the
    # bridge's own set, which has no `fork`.
    config.write_text(
        f'default_agent = "{agent}"\nlogin_shell_env = false\n[agents.{agent}]\ncommand = "/nonexistent/{agent}"\n'
    )
    async with in_process(tmp_path, config) as d:
        with anyio.fail_after(5):
            result = await d.client.initialize()
    caps = result["agentCapabilities"]
    assert "fork" in caps["sessionCapabilities"]
    assert caps["mcpCapabilities"]["sse"] is sse
    assert caps["loadSession"] is True
