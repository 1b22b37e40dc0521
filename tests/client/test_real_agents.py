"""The client and the CLI driving the real, pinned Claude Code and Codex CLIs through the
daemon (native drivers), each against its fake model server. Skipped when the CLIs are not
installed (failed instead under AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from bridge.client import BridgeClient, PermissionRequest
from tests.adapters.claude.support import make_world
from tests.adapters.codex.support import CODEX, Codex
from tests.conftest import bridge_cmd, subprocess_env
from tests.fakes.anthropic import anthropic_server
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse
from tests.fakes.openai_responses import responses_server, shell_call, write_codex_home
from tests.real_agents import require_cli

pytestmark = pytest.mark.anyio


def agent_config(
    path: Path, name: str, protocol: str, command: Path, env: dict[str, str], args: str = ""
) -> Path:
    pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())
    path.write_text(
        f'login_shell_env = false\ndefault_agent = "{name}"\n[agents.{name}]\nprotocol = "{protocol}"\n'
        f"command = {json.dumps(str(command))}\n{args}env = {{ {pairs} }}\n"
    )
    return path


@pytest.fixture
def anthropic() -> Iterator[FakeModelServer]:
    with anthropic_server() as server:
        yield server


@pytest.fixture
def responses() -> Iterator[FakeModelServer]:
    with responses_server() as server:
        yield server


async def test_claude_code_through_the_client_and_the_cli(tmp_path: Path, anthropic: FakeModelServer) -> None:
    claude = require_cli("claude")
    world = make_world(tmp_path, anthropic)
    config = agent_config(tmp_path / "config.toml", "claude", "claude", claude, world.env())
    target = world.ws / "created.txt"
    anthropic.script(
        Reply(tools=[ToolUse("Bash", {"command": f"touch {target} && echo made", "description": "touch"})]),
        Reply(text="Made the file.", chunks=3),
        Reply(text="Hello from the CLI."),
    )
    asked: list[PermissionRequest] = []

    def allow(req: PermissionRequest) -> str:
        asked.append(req)
        return "once"

    with anyio.fail_after(120):
        async with BridgeClient.spawn(config=config, state_dir=tmp_path / "state") as client:
            session = await client.create_session(cwd=world.ws, model="sonnet")
            assert {o.category for o in session.config_options} >= {"mode", "model", "thought_level"}
            result = await session.send("make a file", on_permission=allow)
            assert result.stop_reason == "end_turn" and result.text == "Made the file."
            assert target.exists()
            assert [t.kind for t in result.tool_calls] == ["execute"] and result.tool_calls[
                0
            ].status == "completed"
            assert asked and asked[0].kind == "execute" and result.permissions[0].decided_by == "callback"
            assert session.config_option("model").current_value == "sonnet"  # type: ignore[union-attr]
            assert session.agent_session_id
        done = await anyio.run_process(
            [
                *bridge_cmd(),
                "--config",
                str(config),
                "--state-dir",
                str(tmp_path / "state"),
                "prompt",
                "--cwd",
                str(world.ws),
                "say hello",
            ],
            check=False,
            env=subprocess_env(),
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode() == "Hello from the CLI.\n"


async def test_codex_through_the_client(tmp_path: Path, responses: FakeModelServer) -> None:
    require_cli("codex")
    home, workspace = tmp_path / "home", tmp_path / "ws"
    workspace.mkdir()
    write_codex_home(home / "codex-home", responses.url)
    codex = Codex(home=home, workspace=workspace)
    config = agent_config(
        tmp_path / "config.toml", "codex", "codex", CODEX, dict(codex.spec().env), 'args = ["app-server"]\n'
    )
    target = workspace / "created.txt"
    responses.script(
        Reply(tools=[shell_call(f"touch {target} && echo made", "call_touch", escalate=True)]),
        Reply(text="Made the file."),
    )
    with anyio.fail_after(120):
        async with BridgeClient.spawn(
            config=config, state_dir=tmp_path / "state", permissions="allow_once"
        ) as client:
            session = await client.create_session(cwd=workspace)
            assert session.modes is not None and session.modes.current_mode_id == "read-only"
            result = await session.send("make a file")
            await session.set_model("mock-model-mini")
            info = await session.info()
    assert result.stop_reason == "end_turn" and result.text == "Made the file." and target.exists()
    assert result.permissions and result.permissions[0].kind == "allow_once"
    assert session.config_option("model").current_value == "mock-model-mini"  # type: ignore[union-attr]
    assert info.agent == "codex" and info.agent_session_id


async def test_summarize_compacts_claude_code_and_codex(
    tmp_path: Path, anthropic: FakeModelServer, responses: FakeModelServer
) -> None:
    """`session.summarize()` runs each agent's own compaction (`/compact`: Claude Code's
    command, Codex's `thread/compact/start`), visible as a completed "Compact the
    conversation" tool call in the turn's result."""
    claude = require_cli("claude")
    require_cli("codex")
    world = make_world(tmp_path / "claude", anthropic)
    claude_config = agent_config(tmp_path / "claude.toml", "claude", "claude", claude, world.env())
    anthropic.script(Reply(text="Hi."), Reply(text="Summary: the user said hello."))
    home, workspace = tmp_path / "home", tmp_path / "ws"
    workspace.mkdir()
    write_codex_home(home / "codex-home", responses.url)
    codex = Codex(home=home, workspace=workspace)
    codex_config = agent_config(
        tmp_path / "codex.toml", "codex", "codex", CODEX, dict(codex.spec().env), 'args = ["app-server"]\n'
    )
    responses.script(Reply(text="Hi."), Reply(text="Summary: the user said hello."))
    for config, cwd, state in ((claude_config, world.ws, "s1"), (codex_config, workspace, "s2")):
        with anyio.fail_after(120):
            async with BridgeClient.spawn(config=config, state_dir=tmp_path / state) as client:
                session = await client.create_session(cwd=cwd)
                await session.send("hello")
                assert "compact" in [c.name for c in session.available_commands]
                result = await session.summarize()
        assert result.stop_reason == "end_turn", config
        compactions = [t for t in result.tool_calls if t.title == "Compact the conversation"]
        assert len(compactions) == 1 and compactions[0].status == "completed", (config, result.tool_calls)
