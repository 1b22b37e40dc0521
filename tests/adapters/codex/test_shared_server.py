"""One `codex app-server` shared by a daemon's Codex sessions (spec/codex-shared-server.md),
end to end: the real daemon (a `python -m bridge` subprocess) driving the real Codex CLI
against the fake Responses server.

Two sessions run on one process; their turns stream concurrently and nothing of one reaches
the other (text, approvals); each thread runs in its own session's cwd; a SIGKILL of the
shared process fails both sessions as a private process's death would, and the next prompt
on each works on a new shared process; `share_process = false` gives a process each; the
daemon's exit leaves no Codex process behind."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from tests.acp_client import RpcFailure
from tests.adapters.codex.support import CODEX, Codex
from tests.daemon_proc import DaemonProc, daemon_process
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.openai_responses import shell_call
from tests.waiting import wait_exited, wait_until

pytestmark = pytest.mark.anyio


def _args(codex: Codex, extra: str = "") -> list[str]:
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in codex.spec().env.items())
    path = codex.home / "bridge.toml"
    path.write_text(
        f'default_agent = "codex"\n[agents.codex]\nprotocol = "codex"\ncommand = {json.dumps(str(CODEX))}\n'
        f'args = ["app-server"]\nenv = {{ {env} }}\n{extra}'
    )
    return ["--config", str(path), "--state-dir", str(codex.home / "state")]


def app_servers(d: DaemonProc, marker: str = "app-server") -> set[int]:
    """The daemon's `codex app-server` children (running, not zombies)."""
    found = set()
    for child in psutil.Process(d.process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and marker in child.cmdline():
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def asks(word: str) -> Any:
    """A reply only for the turn whose prompt holds `word` (the sessions ask concurrently)."""
    return lambda body: word in json.dumps(body)


async def allow(method: str, params: dict[str, Any]) -> Any:
    option = next(o for o in params["options"] if o["kind"] == "allow_once")
    return {"outcome": {"outcome": "selected", "optionId": option["optionId"]}}


def workspaces(codex: Codex) -> tuple[str, str]:
    a, b = codex.home / "ws-a", codex.home / "ws-b"
    a.mkdir()
    b.mkdir()
    return str(a), str(b)


async def test_two_sessions_share_one_process_and_never_cross(codex: Codex, fake: FakeModelServer) -> None:
    ws_a, ws_b = workspaces(codex)
    alpha = "alpha " * 40
    beta = "beta " * 40
    fake.script(
        # Slow enough that the two turns overlap on the one process.
        Reply(text=alpha, chunks=20, delay=0.05, when=asks("say alpha")),
        Reply(text=beta, chunks=20, delay=0.05, when=asks("say beta")),
        Reply(tools=[shell_call("touch made-a.txt", "call_a", escalate=True)], when=asks("touch in a")),
        Reply(tools=[shell_call("touch made-b.txt", "call_b", escalate=True)], when=asks("touch in b")),
        Reply(text="made a", when=lambda body: "call_a" in json.dumps(body)),
        Reply(text="made b", when=lambda body: "call_b" in json.dumps(body)),
    )
    with anyio.fail_after(120):
        async with daemon_process(_args(codex)) as d:
            c = d.client
            c.handler = allow
            await c.initialize()
            a = await c.new_session(ws_a)
            b = await c.new_session(ws_b)
            pids = app_servers(d)
            assert len(pids) == 1, pids

            results: dict[str, Any] = {}

            async def ask(sid: str, text: str) -> None:
                results[sid] = await c.prompt(sid, text)

            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, a, "say alpha")
                tg.start_soon(ask, b, "say beta")
            assert results[a]["stopReason"] == results[b]["stopReason"] == "end_turn"
            assert c.text(a) == alpha and c.text(b) == beta
            chunks = [
                n["params"]["sessionId"]
                for n in c.notifications
                if n["method"] == "session/update"
                and n["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
            ]
            # The turns ran at the same time: one session's chunks came between the other's.
            first_b, last_a = chunks.index(b), len(chunks) - 1 - chunks[::-1].index(a)
            assert first_b < last_a, chunks

            # Each thread runs its tools in its own session's cwd; each approval goes to its own session.
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, a, "touch in a")
                tg.start_soon(ask, b, "touch in b")
            assert (Path(ws_a) / "made-a.txt").exists() and (Path(ws_b) / "made-b.txt").exists()
            assert not (Path(ws_a) / "made-b.txt").exists() and not (Path(ws_b) / "made-a.txt").exists()
            asked = [m["params"] for m in c.received if m.get("method") == "session/request_permission"]
            assert sorted(p["sessionId"] for p in asked) == sorted([a, b])
            for p in asked:
                command = json.dumps(p["toolCall"])
                assert ("made-a" in command) == (p["sessionId"] == a), p
            assert c.text(a).endswith("made a") and c.text(b).endswith("made b")

            # Closing one session leaves the other's process and thread alone.
            await c.request("session/close", {"sessionId": a})
            fake.script(Reply(text="still here"))
            assert (await c.prompt(b, "still there?"))["stopReason"] == "end_turn"
            assert c.text(b).endswith("still here")
            assert app_servers(d) == pids
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
        # The daemon's exit stopped the shared process.
        await wait_exited(pids, 10, "the shared app-server after the daemon exited")


async def test_sigkill_of_the_shared_process_fails_both_and_both_recover(
    codex: Codex, fake: FakeModelServer
) -> None:
    ws_a, ws_b = workspaces(codex)
    fake.script(Reply(text="slow " * 50, chunks=50, delay=0.2, when=asks("long answer")))
    with anyio.fail_after(120):
        async with daemon_process(_args(codex)) as d:
            c = d.client
            await c.initialize()
            a = await c.new_session(ws_a)
            b = await c.new_session(ws_b)
            (old,) = app_servers(d)

            failed: dict[str, Any] = {}

            async def long_turn() -> None:
                with pytest.raises(RpcFailure) as exc:
                    await c.prompt(a, "long answer")
                failed["error"] = exc.value

            async with anyio.create_task_group() as tg:
                tg.start_soon(long_turn)
                await c.wait_for(
                    lambda n: (
                        n["method"] == "session/update"
                        and n["params"]["sessionId"] == a
                        and n["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
                    )
                )
                os.kill(old, signal.SIGKILL)
            # The running turn failed as when a session's own agent dies.
            error = failed["error"]
            assert "exit" in str(error.message).lower() or "signal" in str(error.message).lower(), error

            fake.script(
                Reply(text="back a", when=asks("again a")), Reply(text="back b", when=asks("again b"))
            )
            assert (await c.prompt(a, "again a"))["stopReason"] == "end_turn"
            assert (await c.prompt(b, "again b"))["stopReason"] == "end_turn"
            assert c.text(a).endswith("back a") and c.text(b).endswith("back b")
            await wait_until(lambda: len(app_servers(d)) == 1, 10, "one app-server after the restart")
            (new,) = app_servers(d)
            assert new != old
        await wait_exited([new], 10, "the new shared app-server after the daemon exited")


async def test_share_process_false_gives_each_session_its_own(codex: Codex, fake: FakeModelServer) -> None:
    ws_a, ws_b = workspaces(codex)
    with anyio.fail_after(90):
        async with daemon_process(_args(codex, "share_process = false\n")) as d:
            await d.client.initialize()
            await d.client.new_session(ws_a)
            await d.client.new_session(ws_b)
            pids = app_servers(d)
            assert len(pids) == 2, pids
        await wait_exited(pids, 10, "the private app-servers after the daemon exited")


async def test_prewarm_starts_the_shared_process_before_the_first_session(
    codex: Codex, fake: FakeModelServer
) -> None:
    """With Codex the default agent, the daemon starts its shared process at start-up, off the
    `initialize` path; the first `session/new` uses that process instead of spawning one."""
    with anyio.fail_after(90):
        async with daemon_process(_args(codex)) as d:
            await d.client.initialize()
            await wait_until(lambda: len(app_servers(d)) == 1, 30, "the pre-warmed app-server")
            warmed = app_servers(d)
            await d.client.new_session(str(codex.home))
            assert app_servers(d) == warmed
        await wait_exited(warmed, 10, "the pre-warmed app-server after the daemon exited")


async def test_prewarm_of_a_missing_binary_leaves_the_daemon_serving(codex: Codex, tmp_path: Path) -> None:
    """A default Codex agent whose command does not exist: the pre-warm fails quietly, the
    daemon answers, and `session/new` reports the agent's start failure to that request."""
    config = tmp_path / "bridge.toml"
    config.write_text(
        'default_agent = "codex"\n[agents.codex]\nprotocol = "codex"\n'
        f"command = {json.dumps(str(tmp_path / 'no-such-codex'))}\n"
    )
    with anyio.fail_after(60):
        async with daemon_process(["--config", str(config), "--state-dir", str(tmp_path / "state")]) as d:
            await d.client.initialize()
            with pytest.raises(RpcFailure) as exc:
                await d.client.new_session(str(tmp_path))
            assert "no-such-codex" in json.dumps([exc.value.message, exc.value.data]), exc.value
            # Still serving after both failures.
            assert (await d.client.request("session/list", {}))["sessions"] == []
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]


# A stand-in app-server (a real process in Codex's dialect: no "jsonrpc" member) for what the
# real CLI cannot be made to do: break the protocol while two threads have turns running.
STAND_IN = """
import json, sys
threads = 0
for line in sys.stdin:
    msg = json.loads(line)
    rid, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
    if rid is None:
        continue
    result = {}
    if method == "initialize":
        result = {"userAgent": "stand-in/0.0.0"}
    elif method == "thread/start":
        threads += 1
        result = {"thread": {"id": f"thread-{threads}"}, "model": "stand-in", "sandbox": {}}
    elif method == "model/list":
        result = {"data": []}
    elif method == "config/read":
        result = {"config": {}}
    elif method == "turn/start":
        text = json.dumps(params.get("input"))
        turn = f"turn-{rid}"
        result = {"turn": {"id": turn}}
    sys.stdout.write(json.dumps({"id": rid, "result": result}) + "\\n")
    if method == "turn/start":
        if "break" in text:
            # An answer to a request never sent: a violation no thread can be blamed for.
            sys.stdout.write(json.dumps({"id": "never-sent", "result": {}}) + "\\n")
        elif "wait" in text:
            started = {"threadId": params["threadId"], "turnId": turn, "itemId": "m1", "delta": "waiting"}
            sys.stdout.write(json.dumps({"method": "item/agentMessage/delta", "params": started}) + "\\n")
        else:
            done = {"threadId": params["threadId"], "turn": {"id": turn, "status": "completed"}}
            sys.stdout.write(json.dumps({"method": "turn/completed", "params": done}) + "\\n")
    sys.stdout.flush()
"""


async def test_a_protocol_violation_fails_every_running_turn_and_the_sessions_go_on(tmp_path: Path) -> None:
    script = tmp_path / "stand_in_app_server.py"
    script.write_text(STAND_IN)
    config = tmp_path / "bridge.toml"
    config.write_text(
        'default_agent = "codex"\n[agents.codex]\nprotocol = "codex"\n'
        f"command = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(script))}]\n"
        # No MCP servers: the stand-in reports none started, and a turn would wait for them.
        "client_tools = false\n"
    )
    with anyio.fail_after(60):
        async with daemon_process(["--config", str(config), "--state-dir", str(tmp_path / "state")]) as d:
            c = d.client
            await c.initialize()
            a = await c.new_session(str(tmp_path))
            b = await c.new_session(str(tmp_path))
            (stand_in,) = app_servers(d, str(script))
            failures: dict[str, RpcFailure] = {}

            async def doomed(sid: str, text: str) -> None:
                with pytest.raises(RpcFailure) as exc:
                    await c.prompt(sid, text)
                failures[sid] = exc.value

            async with anyio.create_task_group() as tg:
                tg.start_soon(doomed, a, "wait for me")
                # a's turn is running on the process before b breaks the protocol.
                await c.wait_for(
                    lambda n: (
                        n["method"] == "session/update"
                        and n["params"]["sessionId"] == a
                        and n["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
                    )
                )
                tg.start_soon(doomed, b, "break it")
            assert set(failures) == {a, b}, failures
            # Both sessions stay open, on the same process, and their next turn works.
            assert (await c.prompt(a, "hello"))["stopReason"] == "end_turn"
            assert (await c.prompt(b, "hello"))["stopReason"] == "end_turn"
            assert app_servers(d, str(script)) == {stand_in}
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
