"""The ACP passthrough proven on real agents: Gemini CLI, OpenCode, and the Zed adapters for
Claude Code and Codex, each the pinned CLI from `.agents/`, driven through the real daemon
(`python -m bridge` over stdio) against a scripted fake model server, HOME isolated per
test. Every message the daemon sends is checked against the ACP schema by `AcpClient`, and
every test ends by checking that no process it saw below the daemon outlived it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from bridge.wire.types import JsonObj
from tests.acp_client import AcpClient, RpcFailure
from tests.adapters.acp.support import (
    KITS,
    TURN_TIMEOUT,
    Kit,
    Rig,
    echo_mcp_server,
    make_rig,
    request_text,
    updates,
)
from tests.conftest import bridge_cmd, subprocess_env
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse
from tests.real_agents import BIN, installed_version, require_cli

pytestmark = pytest.mark.anyio


AGENTS = list(KITS)


@pytest.fixture(params=AGENTS)
def kit(request: pytest.FixtureRequest) -> Kit:
    return KITS[request.param]


@pytest.fixture
def fake(kit: Kit) -> Iterator[FakeModelServer]:
    with kit.server() as server:
        yield server


@pytest.fixture
async def rig(kit: Kit, fake: FakeModelServer, tmp_path: Path) -> AsyncIterator[Rig]:
    rig = make_rig(kit, tmp_path, fake)
    yield rig
    # The daemon has exited (stdin EOF): nothing it ever ran may still be running.
    assert await rig.wait_gone(within=15) == [], "processes outlived the daemon"


def answer(kind: str, seen: list[tuple[str, JsonObj]]) -> Callable[[str, JsonObj], Any]:
    """A client that picks the first permission option of `kind` and keeps every request."""

    async def handler(method: str, params: JsonObj) -> Any:
        seen.append((method, params))
        if method == "session/request_permission":
            option = next(o for o in params["options"] if o["kind"] == kind)
            return {"outcome": {"outcome": "selected", "optionId": option["optionId"]}}
        raise RpcFailure({"code": -32601, "message": f"test client has no {method}"})

    return handler


def option(options: list[JsonObj], category: str) -> JsonObj:
    return next(o for o in options if o.get("category") == category)


def values(opt: JsonObj) -> list[str]:
    return [c["value"] for c in opt["options"]]


async def first_chunk(client: AcpClient, sid: str) -> None:
    def is_text(msg: JsonObj) -> bool:
        params = msg.get("params") or {}
        update = params.get("update") or {}
        content = update.get("content") or {}
        return (
            params.get("sessionId") == sid
            and update.get("sessionUpdate") == "agent_message_chunk"
            and bool(content.get("text"))
        )

    with anyio.fail_after(TURN_TIMEOUT):
        await client.wait_for(is_text)


# -- turns, MCP, ids, catalog, close -----------------------------------------------------------------


async def test_turns_mcp_ids_and_close(rig: Rig, fake: FakeModelServer) -> None:
    """The agent as the daemon's default: `initialize` advertises the intersection with it;
    a session with a real MCP server from `session/new`; a text turn and an MCP tool turn;
    the bridge's ids upstream; list/info/metrics from the catalog; `session/close` stops the
    agent's whole process tree (the MCP server included) while the daemon keeps running."""
    use = ToolUse(name=rig.kit.mcp_tool("echo"), input={"text": "ping"}, id="call_mcp")
    fake.script(Reply(text="Hello from the fake model", chunks=3))
    async with rig.running("--agent", rig.kit.name) as client:
        init = await client.initialize()
        caps = init["agentCapabilities"]
        # All four can reopen sessions (load or resume), so the bridge offers both.
        assert caps["loadSession"] is True
        assert {"list", "close", "delete", "resume"} <= set(caps["sessionCapabilities"])
        result = await client.request(
            "session/new", {"cwd": str(rig.workspace), "mcpServers": [echo_mcp_server()]}
        )
        sid = result["sessionId"]
        rig.note_processes()
        # Both surfaces for mode and model, whichever one the agent has natively.
        mode = option(result["configOptions"], "mode")
        assert mode["currentValue"] in values(mode)
        assert option(result["configOptions"], "model")["options"]
        modes = result["modes"]
        assert modes["currentModeId"] in [m["id"] for m in modes["availableModes"]]

        assert (await rig.prompt(sid, "say hello"))["stopReason"] == "end_turn"
        assert client.text(sid).endswith("Hello from the fake model")
        turns = 1
        if rig.kit.mcp_connects_late:
            # The agent connects session/new's MCP servers in the background and answers
            # prompts meanwhile: more turns until one offers the MCP tool to the model.
            while turns < 20 and '"mcp__echo' not in json.dumps(fake.generations[-1].body):
                fake.script(Reply(text="still connecting"))
                assert (await rig.prompt(sid, "say hello again"))["stopReason"] == "end_turn"
                turns += 1
        fake.script(Reply(tools=[use]), Reply(text="echoed"))

        # The MCP server's answer went back to the model, and the client saw the call end.
        # (Gemini and codex-acp ask before an MCP tool runs; the default client allows.)
        assert (await rig.prompt(sid, "use the echo tool"))["stopReason"] == "end_turn"
        assert "mcp-echo:ping" in request_text(fake)
        done = [u for u in updates(client, sid, "tool_call_update") if u.get("status") == "completed"]
        assert done, client.updates(sid)

        # The bridge's id upstream; the agent's own is kept beside it and never leaks.
        session_notes = [n for n in client.notifications if n["method"] == "session/update"]
        assert {n["params"]["sessionId"] for n in session_notes} == {sid}
        everything_so_far = json.dumps(client.received)
        info = await client.request("_bridge/session/info", {"sessionId": sid})
        assert info["agent"] == rig.kit.name and info["status"] == "idle"
        assert info["agentSessionId"] and info["agentSessionId"] != sid
        assert info["agentSessionId"] not in everything_so_far
        listed = await client.request("session/list", {})
        assert sid in [s["sessionId"] for s in listed["sessions"]]
        metrics = await client.request("_bridge/session/metrics", {"sessionId": sid})
        assert metrics["turns"] == turns + 1

        # The agent's whole tree: the wrapper, native children, the MCP server.
        tree = agent_tree(metrics["process"]["pid"])
        assert any("echo_mcp.py" in " ".join(cmd) for cmd in tree.values()), tree
        pids = {pid: psutil.Process(pid).create_time() for pid in tree}
        await client.request("session/close", {"sessionId": sid})
        assert await rig.wait_gone(pids, within=15) == [], "session/close left processes behind"


def agent_tree(pid: int) -> dict[int, list[str]]:
    """pid → command line of an agent process and all its descendants."""
    root = psutil.Process(pid)
    out: dict[int, list[str]] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            out[proc.pid] = proc.cmdline()
        except psutil.Error:
            continue
    return out


# -- permissions -----------------------------------------------------------------------------------


async def test_shell_tool_permission_rejected_then_allowed(rig: Rig, fake: FakeModelServer) -> None:
    # The output (made-42) differs from the command text, which the model sees anyway.
    command = "touch made.txt && printf 'made-%s' 42"
    # Only the tool call: some agents ask the model again after a refusal (it then gets the
    # fake's default reply), others end the turn.
    fake.script(Reply(tools=[rig.kit.shell(command)]))
    seen: list[tuple[str, JsonObj]] = []
    async with rig.running() as client:
        await client.initialize()
        sid = await rig.new_session()

        client.handler = answer("reject_once", seen)
        rejected = await rig.prompt(sid, "make the file")
        [(method, ask)] = seen
        assert method == "session/request_permission"
        assert ask["sessionId"] == sid
        assert ask["toolCall"].get("kind") == "execute"
        assert not (rig.workspace / "made.txt").exists()
        # codex-acp's only refusal is "abort", which ends the turn; the others go on.
        assert rejected["stopReason"] in ("end_turn", "cancelled")
        assert "made-42" not in request_text(fake)

        seen.clear()
        client.handler = answer("allow_once", seen)
        fake.script(Reply(tools=[rig.kit.shell(command)]), Reply(text="done"))
        allowed = await rig.prompt(sid, "make the file, please")
        assert [m for m, _ in seen] == ["session/request_permission"]
        assert allowed["stopReason"] == "end_turn"
        assert (rig.workspace / "made.txt").exists()
        assert "made-42" in request_text(fake)


# -- cancel ----------------------------------------------------------------------------------------


async def test_cancel_mid_turn(rig: Rig, fake: FakeModelServer) -> None:
    fake.script(Reply(text="word " * 20, chunks=20, delay=0.25))
    async with rig.running() as client:
        await client.initialize()
        sid = await rig.new_session()
        outcome: JsonObj = {}
        async with anyio.create_task_group() as tg:

            async def turn() -> None:
                outcome.update(await rig.prompt(sid, "talk for a while"))

            tg.start_soon(turn)
            await first_chunk(client, sid)
            await client.notify("session/cancel", {"sessionId": sid})
        assert outcome["stopReason"] == "cancelled"
        # The session is still usable: the next turn resolves.
        fake.script(Reply(text="after the cancel"))
        assert (await rig.prompt(sid, "again"))["stopReason"] == "end_turn"


# -- mode and model --------------------------------------------------------------------------------


async def test_mode_and_model_change(rig: Rig, fake: FakeModelServer) -> None:
    """The model through `session/set_config_option`, the mode through the legacy
    `session/set_mode`, on every agent, whichever of the two it has natively (Gemini has
    modes and the unstable set_model only; OpenCode has config options only)."""
    kit = rig.kit
    seen: list[tuple[str, JsonObj]] = []
    async with rig.running() as client:
        await client.initialize()
        client.handler = answer("reject_once", seen)
        result = await client.request(
            "session/new",
            {"cwd": str(rig.workspace), "mcpServers": [], "_meta": {"bridge": {"agent": kit.name}}},
        )
        sid = result["sessionId"]
        model = option(result["configOptions"], "model")
        assert kit.model_pick in values(model)
        changed = await client.request(
            "session/set_config_option", {"sessionId": sid, "configId": model["id"], "value": kit.model_pick}
        )
        assert option(changed["configOptions"], "model")["currentValue"] == kit.model_pick

        assert kit.mode_pick in [m["id"] for m in result["modes"]["availableModes"]]
        assert await client.request("session/set_mode", {"sessionId": sid, "modeId": kit.mode_pick}) == {}
        again = await client.request(
            "session/set_config_option", {"sessionId": sid, "configId": model["id"], "value": kit.model_pick}
        )
        assert option(again["configOptions"], "mode")["currentValue"] == kit.mode_pick

        if kit.mode_runs_shell:
            # The new mode lets the command run without asking (the client would refuse).
            fake.script(Reply(tools=[(kit.free_shell or kit.shell)("touch free.txt")]), Reply(text="ran it"))
        else:
            fake.script(Reply(text="planned"))
        before = len(fake.requests)
        assert (await rig.prompt(sid, "go"))["stopReason"] == "end_turn"
        assert seen == []
        if kit.mode_runs_shell:
            assert (rig.workspace / "free.txt").exists()
        sent = [r for r in fake.requests[before:] if kit.model_sent in r.path + json.dumps(r.body)]
        assert sent, [r.path for r in fake.requests[before:]]


# -- load after a restart --------------------------------------------------------------------------


async def test_load_after_daemon_restart(rig: Rig, fake: FakeModelServer) -> None:
    """All four advertise loadSession: the bridge reopens through the agent's own load (the
    agent replays the history; the bridge adds no replay of its own) and the agent keeps the
    conversation."""
    fake.script(Reply(text="the first answer"))
    async with rig.running() as client:
        await client.initialize()
        sid = await rig.new_session()
        assert (await rig.prompt(sid, "remember this"))["stopReason"] == "end_turn"
    if rig.kit.name == "gemini":
        # Gemini CLI 0.61 names a chat file `session-<YYYY-MM-DDTHH-MM>-<id8>.jsonl` and, on
        # load, starts recording into the file of the *current* minute: loading a session in
        # the minute it was created overwrites it ("No previous sessions found for this
        # project"). Date the recorded chat's name back, as if the restart came later.
        for chat in (rig.tmp / "home" / ".gemini" / "tmp").glob("*/chats/session-*.jsonl"):
            chat.rename(
                chat.with_name(re.sub(r"-\d{4}-\d\d-\d\dT\d\d-\d\d-", "-2000-01-01T00-00-", chat.name))
            )

    async with rig.running() as client:
        await client.initialize()
        start = len(client.notifications)
        await client.request("session/load", {"sessionId": sid, "cwd": str(rig.workspace), "mcpServers": []})
        # Gemini CLI 0.61 answers session/load before it has sent most of the replay (the
        # others replay first, as ACP asks): wait for the answer's text to arrive.
        with anyio.fail_after(TURN_TIMEOUT):
            await client.wait_for(lambda n: "the first answer" in json.dumps(n), start)
        replay = [n["params"] for n in client.notifications[start:] if n["method"] == "session/update"]
        assert {p["sessionId"] for p in replay} == {sid}
        texts = [p["update"] for p in replay if p["update"].get("sessionUpdate") == "agent_message_chunk"]
        replayed = "".join(u["content"].get("text", "") for u in texts)
        assert "the first answer" in replayed, [p["update"].get("sessionUpdate") for p in replay]
        # Replayed by the agent itself, not from the bridge's log.
        assert not any((p.get("_meta") or {}).get("bridge", {}).get("replay") for p in replay)
        fake.script(Reply(text="the second answer"))
        assert (await rig.prompt(sid, "and now?"))["stopReason"] == "end_turn"
        # The turn's own model call: a title request may come after it (claude-agent-acp).
        assert "the first answer" in json.dumps(fake.generations[-1].body)


# -- the Zed adapters ignore stdin EOF, and their Node wrappers orphan native children ----------


@pytest.mark.parametrize("kit", ["claude-acp", "codex-acp"], indirect=True)
async def test_daemon_sigkill_leaves_no_agent_behind(rig: Rig) -> None:
    """Neither adapter exits when its stdin closes, and killing only the Node wrapper leaves
    the native child (codex-acp) or Claude Code (claude-agent-acp) running: the bridge must
    take the whole tree down even when it is SIGKILLed itself (CONTRACT: within 5 s; 10 s
    here for a loaded CI machine)."""
    async with rig.running() as client:
        await client.initialize()
        sid = await rig.new_session(mcpServers=[echo_mcp_server()])
        metrics = await client.request("_bridge/session/metrics", {"sessionId": sid})
        tree = agent_tree(metrics["process"]["pid"])
        assert len(tree) >= 2, tree  # the wrapper and what it started
        pids = {pid: psutil.Process(pid).create_time() for pid in tree}
        assert rig.daemon is not None
        rig.daemon.process.kill()
        assert await rig.wait_gone(pids, within=10) == [], "agent processes outlived the daemon"


# -- fs forwarding -------------------------------------------------------------------------------


@pytest.mark.parametrize("kit", ["gemini"], indirect=True)
async def test_file_edit_goes_through_the_clients_fs(rig: Rig, fake: FakeModelServer) -> None:
    """Gemini CLI reads and writes files through the client when the client offers `fs`
    (unsaved editor buffers win over the disk): the bridge forwards those requests to the
    session's owner with the bridge's session id, and the answers back."""
    target = rig.workspace / "notes.txt"
    target.write_text("on disk\n")
    buffers = {str(target): "in the editor\n"}
    write = ToolUse(name="write_file", input={"file_path": str(target), "content": "edited\n"}, id="call_w")
    fake.script(Reply(tools=[write]), Reply(text="written"))
    seen: list[tuple[str, JsonObj]] = []

    async def editor(method: str, params: JsonObj) -> Any:
        seen.append((method, params))
        if method == "session/request_permission":
            option = next(o for o in params["options"] if o["kind"] == "allow_once")
            return {"outcome": {"outcome": "selected", "optionId": option["optionId"]}}
        if method == "fs/read_text_file":
            return {"content": buffers[params["path"]]}
        if method == "fs/write_text_file":
            buffers[params["path"]] = params["content"]
            return {}
        raise RpcFailure({"code": -32601, "message": f"no {method}"})

    async with rig.running() as client:
        await client.initialize(fs={"readTextFile": True, "writeTextFile": True})
        client.handler = editor
        sid = await rig.new_session()
        assert (await rig.prompt(sid, "edit the notes"))["stopReason"] == "end_turn"
    methods = [m for m, _ in seen]
    assert "fs/read_text_file" in methods and "fs/write_text_file" in methods
    assert all(p["sessionId"] == sid for _, p in seen)
    assert buffers[str(target)] == "edited\n"
    # The edit went to the editor's buffer, not around it to the disk.
    assert target.read_text() == "on disk\n"
    [(_, ask)] = [(m, p) for m, p in seen if m == "session/request_permission"]
    diff = next(c for c in ask["toolCall"]["content"] if c["type"] == "diff")
    assert diff["oldText"] == "in the editor\n" and diff["newText"] == "edited\n"


# -- detection -------------------------------------------------------------------------------------


def test_agents_command_finds_the_pinned_clis_and_their_versions() -> None:
    """`agent-bridge agents` on the pinned installs: all found, with the installed
    versions (read from each npm package; the ACP adapters have no `--version`)."""
    for kit in KITS.values():
        require_cli(kit.cli)
    env = subprocess_env(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(
        [*bridge_cmd(), "agents", "--json"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    rows = {row["name"]: row for row in json.loads(done.stdout)["agents"]}
    for kit in KITS.values():
        row = rows[kit.name]
        assert row["protocol"] == "acp" and row["installed"], row
        assert row["version"] == installed_version(kit.cli), row
    assert rows["gemini"]["command"] == "gemini --acp" and rows["opencode"]["command"] == "opencode acp"


# -- resume after a restart ------------------------------------------------------------------------


@pytest.mark.parametrize("kit", ["codex-acp", "gemini", "qwen"], indirect=True)
async def test_resume_after_daemon_restart(rig: Rig, fake: FakeModelServer) -> None:
    """`session/resume` replays nothing. codex-acp resumes natively; Gemini has no resume,
    so the bridge reopens through its load and keeps the agent's replay from the client."""
    fake.script(Reply(text="the first answer"))
    async with rig.running() as client:
        await client.initialize()
        sid = await rig.new_session()
        assert (await rig.prompt(sid, "remember this"))["stopReason"] == "end_turn"
    for chat in (rig.tmp / "home" / ".gemini" / "tmp").glob("*/chats/session-*.jsonl"):
        # See test_load_after_daemon_restart: Gemini 0.61 must not reopen in the same minute.
        chat.rename(chat.with_name(re.sub(r"-\d{4}-\d\d-\d\dT\d\d-\d\d-", "-2000-01-01T00-00-", chat.name)))

    async with rig.running() as client:
        await client.initialize()
        start = len(client.notifications)
        await client.request(
            "session/resume", {"sessionId": sid, "cwd": str(rig.workspace), "mcpServers": []}
        )
        replayed = [
            n["params"]["update"]["sessionUpdate"]
            for n in client.notifications[start:]
            if n["method"] == "session/update"
            and n["params"]["update"]["sessionUpdate"] in ("user_message_chunk", "agent_message_chunk")
        ]
        assert replayed == []
        fake.script(Reply(text="the second answer"))
        assert (await rig.prompt(sid, "and now?"))["stopReason"] == "end_turn"
        # Nothing from the first turn: Gemini's late replay stays muted too.
        assert client.text(sid).endswith("the second answer")
        assert "the first answer" not in client.text(sid)
        # The turn's own model call: a title request may come after it (claude-agent-acp).
        assert "the first answer" in json.dumps(fake.generations[-1].body)
