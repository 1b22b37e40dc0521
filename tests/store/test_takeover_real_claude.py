"""Takeover after SIGKILL with the real, pinned Claude Code CLI behind two daemons on one
state dir (real subprocesses, the fake Anthropic server): the second daemon takes the
dead one's session over through Claude's own `--resume`, and the conversation goes on."""

from __future__ import annotations

import contextlib
import json

import anyio
import pytest

from tests.adapters.claude.support import CLAUDE, ClaudeWorld
from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply
from tests.real_agents import claude_fake, claude_world  # noqa: F401 (pytest fixtures)
from tests.store.test_durability import all_events, assert_gap_free, kill_daemon
from tests.store.test_many_daemons import interrupted

pytestmark = pytest.mark.anyio


def _args(world: ClaudeWorld) -> list[str]:
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in world.env().items())
    path = world.tmp / "config.toml"
    path.write_text(
        'default_agent = "claude"\nlease_timeout = 30\n[agents.claude]\nprotocol = "claude"\n'
        f"command = {json.dumps(str(CLAUDE))}\nenv = {{ {env} }}\n"
    )
    return ["--config", str(path), "--state-dir", str(world.tmp / "state")]


async def test_a_session_of_a_sigkilled_daemon_is_taken_over_with_claudes_resume(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    fake.script(
        Reply(text="I will remember 42."),
        Reply(text="word " * 400, chunks=400, delay=0.05),  # cut off by the kill
        Reply(text="It was 42."),
    )
    cwd = str(world.ws)
    async with daemon_process(_args(world)) as first:
        c = first.client
        await c.initialize()
        with anyio.fail_after(60):
            sid = await c.new_session(cwd)
            assert (await c.prompt(sid, "remember 42"))["stopReason"] == "end_turn"

        async def doomed() -> None:
            with contextlib.suppress(ConnectionError):
                await c.prompt(sid, "count words")

        async with anyio.create_task_group() as tg:
            tg.start_soon(doomed)
            with anyio.fail_after(60):
                await c.wait_for(lambda m: "word" in json.dumps(m.get("params", {}).get("update", {})))
            before = await all_events(c, sid)
            await kill_daemon(first.process)
            tg.cancel_scope.cancel()

    async with daemon_process(_args(world)) as heir:
        h = heir.client
        await h.initialize()
        listed = {s["sessionId"]: s for s in (await h.request("session/list", {}))["sessions"]}
        assert listed[sid]["_meta"]["bridge"]["status"] == "closed"
        with anyio.fail_after(90):
            await h.request("session/resume", {"sessionId": sid, "cwd": cwd, "mcpServers": []})
            assert (await h.prompt(sid, "what number?"))["stopReason"] == "end_turn"
        assert "It was 42." in h.text(sid)
        # Claude's own resume: the model sees the conversation the first daemon had.
        texts = json.dumps(world.last_body()["messages"])
        assert "remember 42" in texts and "I will remember 42." in texts
        events = await all_events(h, sid)
        assert events[: len(before)] == before
        assert_gap_free(events)
        assert len(interrupted(events)) == 1
