"""Sessions belong to their connection (spec/multi-client.md), with the fake ACP agent and
several clients: a second client can follow a session but not act on it without a takeover;
a refused request changes no ownership; its disconnect leaves the owner's session alone;
takeover is explicit and logged; shared permission requests go to every controller and the
first valid answer wins; the observer token reads and never acts.

Ownership is the ACP server's, whatever the transport: those tests run the daemon in-process
with one memory-stream connection per client. The observer token is the WebSocket gate's, so
its tests run the real daemon (a `serve --listen` subprocess) with real WebSocket clients."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.acp_client import AcpClient, RpcFailure, default_handler
from tests.conftest import connect, in_process
from tests.e2e.test_websocket import chunks, turn_ended
from tests.e2e.ws_support import WsDaemon, raw_handshake, upgrade_headers, ws_args, ws_client, ws_daemon

pytestmark = pytest.mark.anyio

NOT_OWNER = -32020
READ_ONLY = -32021


async def refused(client: AcpClient, method: str, params: dict[str, Any], code: int) -> dict[str, Any]:
    with pytest.raises(RpcFailure) as info:
        await client.request(method, params)
    assert info.value.code == code, (method, info.value.code, info.value.message)
    return {"message": info.value.message, "data": info.value.data}


async def log_of(client: AcpClient, sid: str) -> list[dict[str, Any]]:
    page = await client.request("_bridge/session/events", {"sessionId": sid, "limit": 1000})
    return [e["message"] for e in page["events"]]


def bridge_events(log: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m["bridge"] for m in log if isinstance(m.get("bridge"), dict) and m["bridge"].get("type") == kind]


def acting_requests(sid: str, cwd: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "echo not yours"}]}),
        ("session/set_mode", {"sessionId": sid, "modeId": "plan"}),
        ("session/set_config_option", {"sessionId": sid, "configId": "model", "value": "smart"}),
        ("session/close", {"sessionId": sid}),
        ("session/delete", {"sessionId": sid}),
        ("_bridge/session/update", {"sessionId": sid, "title": "renamed by another client"}),
        ("_bridge/session/shell", {"sessionId": sid, "command": "true"}),
        ("_bridge/session/share", {"sessionId": sid}),
        ("session/load", {"sessionId": sid, "cwd": cwd, "mcpServers": []}),
        ("session/resume", {"sessionId": sid, "cwd": cwd, "mcpServers": []}),
    ]


async def test_a_second_client_cannot_act_on_a_session_and_its_refusals_and_disconnect_change_nothing(
    tmp_path: Path,
) -> None:
    # A short grace: had B's refused requests made it the owner, its disconnect would close
    # A's session (and cancel A's turn) within the turn that follows it.
    async with in_process(tmp_path, disconnect_grace=0.5) as d:
        a = d.client
        await a.initialize()
        sid = await a.new_session(str(tmp_path))
        async with connect(d.bridge) as b:
            await b.initialize()
            att = await b.request("session/attach", {"sessionId": sid})
            assert att["role"] == "observer" and att["live"] is True
            async with anyio.create_task_group() as tg:
                results: list[Any] = []

                async def a_turn() -> None:
                    results.append(await a.prompt(sid, "slow 30 0.03"))

                tg.start_soon(a_turn)
                with anyio.fail_after(30):
                    await b.wait_for(lambda m: "slow 3 " in json.dumps(m))
                # While A's turn streams, B tries everything that would act on A's session.
                await b.notify("session/cancel", {"sessionId": sid})
                for method, params in acting_requests(sid, str(tmp_path)):
                    err = await refused(b, method, params, NOT_OWNER)
                    assert err["data"]["sessionId"] == sid and "takeover" in err["message"]
            with anyio.fail_after(60):
                await turn_ended(b, sid)
            # A's turn ran to its end, untouched by B's cancel.
            assert [r["stopReason"] for r in results] == ["end_turn"]
            assert chunks(a.updates(sid)) == list(range(30))
            assert chunks(b.updates(sid)) == list(range(30))
            # B never was asked anything, and never owned it.
            assert not [m for m in b.received if "id" in m and "method" in m]
            cancels = bridge_events(await log_of(b, sid), "refused")
            assert [c["method"] for c in cancels] == ["session/cancel"]
        # B is gone (the server has seen its connection end when `connect` returns). A's session is still A's: no grace timer, A prompts, sets its mode,
        # and a turn longer than the grace runs to its end.
        assert (await a.prompt(sid, "slow 20 0.05"))["stopReason"] == "end_turn"
        await a.request("session/set_mode", {"sessionId": sid, "modeId": "plan"})
        info = await a.request("_bridge/session/info", {"sessionId": sid})
        assert info["status"] == "idle" and "title" not in info
        log = await log_of(a, sid)
        assert not bridge_events(log, "client_disconnected") and not bridge_events(log, "closed")
        assert not bridge_events(log, "takeover")


async def test_takeover_is_explicit_logged_and_the_previous_owner_follows(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d, connect(d.bridge) as b:
        a = d.client
        await a.initialize()
        await b.initialize(fs={"readTextFile": True, "writeTextFile": True})
        sid = await a.new_session(str(tmp_path))
        await a.prompt(sid, "echo one")
        await b.request("session/attach", {"sessionId": sid, "historyPolicy": "none"})
        await refused(b, "session/prompt", acting_requests(sid, "")[0][1], NOT_OWNER)

        taken = await b.request("_bridge/session/takeover", {"sessionId": sid})
        assert taken == {"sessionId": sid, "previousOwner": "connected"}
        with anyio.fail_after(30):
            told = await a.wait_for(lambda m: m["method"] == "_bridge/session/taken_over")
        assert told["params"]["sessionId"] == sid and told["params"]["by"]["name"] == "test-client"
        # Now A is the one refused; B drives, and A still sees the turn (it follows).
        await refused(a, "session/prompt", acting_requests(sid, "")[0][1], NOT_OWNER)
        assert (await b.prompt(sid, "permission"))["stopReason"] == "end_turn"
        assert "permission: allow" in b.text(sid)
        with anyio.fail_after(30):
            await turn_ended(a, sid)
        assert "permission: allow" in a.text(sid)
        # The permission request went to the new owner only.
        assert not [m for m in a.received if m.get("method") == "session/request_permission"]

        # Taking it back through session/load with the takeover flag (history replayed first).
        load = {
            "sessionId": sid,
            "cwd": str(tmp_path),
            "mcpServers": [],
            "_meta": {"bridge": {"takeover": True}},
        }
        await a.request("session/load", load)
        assert (await a.prompt(sid, "echo mine again"))["stopReason"] == "end_turn"
        log = await log_of(a, sid)
        takeovers = bridge_events(log, "takeover")
        assert [t["via"] for t in takeovers] == ["_bridge/session/takeover", "session/load"]
        assert takeovers[0]["to"] == takeovers[1]["from"] and takeovers[0]["from"] == takeovers[1]["to"]


async def test_shared_permissions_reach_every_controller_and_the_first_valid_answer_wins(
    tmp_path: Path,
) -> None:
    async with in_process(tmp_path) as d, connect(d.bridge) as b, connect(d.bridge) as c:
        a = d.client
        asked: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": []}
        seen = {"a": anyio.Event(), "b": anyio.Event()}
        release = anyio.Event()
        plan: dict[str, Any] = {}

        def handler(name: str) -> Any:
            async def answer(method: str, params: dict[str, Any]) -> Any:
                if method != "session/request_permission":
                    return await default_handler(method, params)
                asked[name].append(params)
                if name in seen:
                    seen[name].set()
                reply = plan.get(name)
                if reply is None:
                    await release.wait()  # never answers in time (its request is withdrawn)
                    return {"outcome": {"outcome": "cancelled"}}
                await seen["a" if name == "b" else "b"].wait()  # both have been asked
                return reply

            return answer

        a.handler, b.handler, c.handler = handler("a"), handler("b"), handler("c")
        await a.initialize()
        await b.initialize()
        await c.initialize()
        sid = await a.new_session(str(tmp_path))
        att = await b.request("session/attach", {"sessionId": sid, "role": "controller"})
        assert att["role"] == "controller" and att["shared"] is False
        await c.request("session/attach", {"sessionId": sid})  # an observer: never asked

        # Not shared: only the owner is asked.
        plan["a"] = {"outcome": {"outcome": "selected", "optionId": "allow"}}
        seen["b"].set()
        assert (await a.prompt(sid, "permission"))["stopReason"] == "end_turn"
        assert len(asked["a"]) == 1 and not asked["b"]

        shared = await a.request("_bridge/session/share", {"sessionId": sid})
        assert shared == {"sessionId": sid, "shared": True}
        roles = {
            c["role"]
            for c in (await c.request("session/attach", {"sessionId": sid, "historyPolicy": "none"}))[
                "connectedClients"
            ]
        }
        assert roles == {"controller", "observer"}

        # Round 1: both asked; B answers first, A's request is withdrawn and A is told.
        seen["a"], seen["b"] = anyio.Event(), anyio.Event()
        plan.clear()
        plan["b"] = {"outcome": {"outcome": "selected", "optionId": "allow"}}
        start_a = len(a.notifications)
        assert (await a.prompt(sid, "permission"))["stopReason"] == "end_turn"
        assert len(asked["a"]) == 2 and len(asked["b"]) == 1
        assert asked["a"][1]["toolCall"] == asked["b"][0]["toolCall"]
        resolved = await a.wait_for(lambda m: m["method"] == "_bridge/session/permission_resolved", start_a)
        assert resolved["params"]["chosenOptionId"] == "allow" and resolved["params"]["toolCallId"] == "t1"
        assert resolved["params"]["resolvedBy"]["connection"] != ""
        withdrawn = [m for m in a.received if m.get("method") == "$/cancel_request"]
        assert len(withdrawn) == 1
        assert a.text(sid).count("permission: allow") == 2
        await c.wait_for(lambda m: m["method"] == "_bridge/session/permission_resolved")

        # Round 2: B's answer names an option the agent never offered: not an answer. A's wins.
        seen["a"], seen["b"] = anyio.Event(), anyio.Event()
        plan.clear()
        plan["b"] = {"outcome": {"outcome": "selected", "optionId": "bogus"}}
        plan["a"] = {"outcome": {"outcome": "selected", "optionId": "reject"}}
        start_b = len(b.notifications)
        assert (await a.prompt(sid, "permission"))["stopReason"] == "end_turn"
        assert "permission: reject" in a.text(sid)
        told_b = await b.wait_for(lambda m: m["method"] == "_bridge/session/permission_resolved", start_b)
        assert told_b["params"]["chosenOptionId"] == "reject"

        assert not asked["c"]
        # The agent got exactly one answer per request: the log holds one per round.
        log = await log_of(a, sid)
        answers = [m for m in log if m.get("method") == "session/request_permission" and "result" in m]
        assert [x["result"]["outcome"].get("optionId") for x in answers] == ["allow", "allow", "reject"]
        assert len(bridge_events(log, "permission_resolved")) == 2
        release.set()


async def test_history_policies_and_detach(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d, connect(d.bridge) as b:
        a = d.client
        await a.initialize()
        await b.initialize()
        sid = await a.new_session(str(tmp_path))
        await a.prompt(sid, "echo before")
        none = await b.request("session/attach", {"sessionId": sid, "historyPolicy": "none"})
        assert none["cursor"] > 0 and not b.updates(sid)
        await a.prompt(sid, "echo live")
        with anyio.fail_after(30):
            await turn_ended(b, sid)
        assert b.text(sid) == "live"  # only what came after the attach

        # pending_only: the permission request waiting for an answer, nothing replayed.
        asked = anyio.Event()
        go = anyio.Event()

        async def slow_owner(method: str, params: dict[str, Any]) -> Any:
            asked.set()
            await go.wait()
            return await default_handler(method, params)

        a.handler = slow_owner
        async with connect(d.bridge) as c, anyio.create_task_group() as tg:
            await c.initialize()
            tg.start_soon(a.prompt, sid, "permission")
            with anyio.fail_after(30):
                await asked.wait()
            pending = await c.request("session/attach", {"sessionId": sid, "historyPolicy": "pending_only"})
            assert pending["history"] == [
                {"type": "permission_request", "status": "pending", "toolCallId": "t1"}
            ]
            assert not c.updates(sid)
            go.set()

        # Detach: no more live updates for B.
        assert await b.request("session/detach", {"sessionId": sid}) == {
            "sessionId": sid,
            "status": "detached",
        }
        before = len(b.updates(sid))
        await a.prompt(sid, "echo after detach")
        await b.request("_bridge/session/info", {"sessionId": sid})  # B's queue is in order
        assert len(b.updates(sid)) == before
        # The alias attaches too, from a cursor.
        again = await b.request("_bridge/session/attach", {"sessionId": sid, "after": none["cursor"]})
        assert again["live"] is True and "after detach" in b.text(sid)

        # The owner detaching lets go: the grace starts, and another client loads it without a takeover.
        await a.request("session/detach", {"sessionId": sid})
        await b.request("session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []})
        assert (await b.prompt(sid, "echo b now"))["stopReason"] == "end_turn"
        log = await log_of(b, sid)
        assert bridge_events(log, "detached")[0]["owner"] is True and not bridge_events(log, "takeover")


def observer_client(d: WsDaemon, token: str) -> Any:
    return ws_client(d, headers={"Authorization": f"Bearer {token}"})


async def test_the_observer_token_reads_and_follows_but_never_acts(tmp_path: Path) -> None:
    obs_file = tmp_path / "observer-token"
    async with ws_daemon(tmp_path, "--observer-token-file", str(obs_file)) as d:
        assert stat.S_IMODE(os.stat(obs_file).st_mode) == 0o600
        observer = obs_file.read_text().strip()
        assert len(observer) >= 32 and observer != d.token
        async with ws_client(d) as a, observer_client(d, observer) as o:
            o.acp.handler = default_handler
            await a.acp.initialize()
            init = await o.acp.initialize()
            assert init["agentCapabilities"]["sessionCapabilities"]["attach"] == {"roles": ["observer"]}
            sid = await a.acp.new_session(str(tmp_path))
            await a.acp.request("_bridge/session/share", {"sessionId": sid})
            await a.acp.prompt(sid, "echo history")

            listed = await o.acp.request("session/list", {})
            assert sid in [s["sessionId"] for s in listed["sessions"]]
            att = await o.acp.request("session/attach", {"sessionId": sid})
            assert att["role"] == "observer" and "history" in o.acp.text(sid)
            for method in ("_bridge/session/info", "_bridge/session/metrics", "_bridge/session/events"):
                await o.acp.request(method, {"sessionId": sid})
            await o.acp.request("_bridge/agents", {})

            acting = [
                *acting_requests(sid, str(tmp_path)),
                ("session/new", {"cwd": str(tmp_path), "mcpServers": []}),
                ("session/fork", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}),
                ("_bridge/session/takeover", {"sessionId": sid}),
                ("session/attach", {"sessionId": sid, "role": "controller"}),
                ("authenticate", {"methodId": "x"}),
                ("_vendor/poke", {"sessionId": sid}),
            ]
            for method, params in acting:
                err = await refused(o.acp, method, params, READ_ONLY)
                assert "read-only" in err["message"]
            # Its cancel is ignored; it follows the turn live, is never asked the (shared)
            # permission request, and is told when it was resolved.
            async with anyio.create_task_group() as tg:
                tg.start_soon(a.acp.prompt, sid, "permission")
                with anyio.fail_after(30):
                    await o.acp.wait_for(lambda m: m["method"] == "_bridge/session/permission_resolved")
                await o.acp.notify("session/cancel", {"sessionId": sid})
            with anyio.fail_after(30):
                await turn_ended(o.acp, sid)
            assert "permission: allow" in o.acp.text(sid) and "permission: allow" in a.acp.text(sid)
            assert not [m for m in o.acp.received if "id" in m and "method" in m]
            info = await o.acp.request("_bridge/session/info", {"sessionId": sid})
            assert info["status"] == "idle" and "title" not in info
        # Any other token is still refused at the gate.
        status, _ = await raw_handshake(
            d.port,
            [*upgrade_headers(), ("Host", f"127.0.0.1:{d.port}"), ("Authorization", f"Bearer {observer}x")],
        )
        assert status == 401


async def test_observer_token_file_must_be_private_and_distinct(tmp_path: Path) -> None:
    from tests.e2e.ws_support import pump, start

    loose = tmp_path / "loose"
    loose.write_text("o" * 40 + "\n")
    loose.chmod(0o644)
    same = tmp_path / "same"
    same.write_text("s" * 40 + "\n")
    same.chmod(0o600)
    for extra in (
        ["--observer-token-file", str(loose)],
        ["--token-file", str(same), "--observer-token-file", str(same)],
    ):
        process, err = await start(ws_args(tmp_path, *extra))
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, process, err)
            with anyio.fail_after(30):
                assert await process.wait() == 2
        assert "--observer-token-file" in err.text(), err.text()
    given = tmp_path / "given"
    given.write_text("g" * 40 + "\n")
    given.chmod(0o600)
    async with (
        ws_daemon(tmp_path, "--observer-token-file", str(given)) as d,
        observer_client(d, "g" * 40) as o,
    ):
        await o.acp.initialize()
        await refused(o.acp, "session/new", {"cwd": str(tmp_path), "mcpServers": []}, READ_ONLY)


async def test_after_a_takeover_the_previous_owner_cannot_end_the_turn_it_started(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d, connect(d.bridge) as b:
        a = d.client
        await a.initialize()
        await b.initialize()
        sid = await a.new_session(str(tmp_path))
        await b.request("session/attach", {"sessionId": sid, "historyPolicy": "none"})
        prompt = {"sessionId": sid, "prompt": [{"type": "text", "text": "slow 30 0.03"}]}
        await a.send_raw(
            json.dumps(
                {"jsonrpc": "2.0", "id": "turn", "method": "session/prompt", "params": prompt}
            ).encode()
        )
        with anyio.fail_after(30):
            await b.wait_for(lambda m: "slow 3 " in json.dumps(m))
        await b.request("_bridge/session/takeover", {"sessionId": sid})
        # A withdraws its prompt request and sends session/cancel: neither ends B's turn now.
        await a.notify("$/cancel_request", {"requestId": "turn"})
        await a.notify("session/cancel", {"sessionId": sid})
        with anyio.fail_after(30):
            answer = await a.wait_response("turn")
        assert "error" in answer or answer["result"]["stopReason"] == "end_turn"
        with anyio.fail_after(60):
            ended = await turn_ended(b, sid)
        assert ended["params"]["stopReason"] == "end_turn"
        assert chunks(b.updates(sid)) == list(range(30))[-len(chunks(b.updates(sid))) :]
        assert chunks(b.updates(sid))[-1] == 29


def test_the_gate_tells_the_two_tokens_apart_and_refuses_the_rest() -> None:
    from bridge.transports import ws_gate

    full, observer = "f" * 43, "o" * 43
    policy = ws_gate.Policy.build(full, 8765, observer_token=observer)
    base = [("Host", "127.0.0.1:8765")]
    for token, access in ((full, "full"), (observer, "observer")):
        headers = [*base, ("Authorization", f"Bearer {token}")]
        assert ws_gate.check(policy, "/acp", headers) is None
        assert ws_gate.granted(policy, headers) == access
    for bad in (observer[:-1], observer + "o", "", full.upper()):
        headers = [*base, ("Authorization", f"Bearer {bad}")]
        refusal = ws_gate.check(policy, "/acp", headers)
        assert refusal is not None and refusal.status == 401
        assert ws_gate.granted(policy, headers) is None
    # Without an observer token configured, only the full token passes.
    plain = ws_gate.Policy.build(full, 8765)
    assert ws_gate.check(plain, "/acp", [*base, ("Authorization", f"Bearer {observer}")]) is not None
    assert observer not in repr(policy) and full not in repr(policy)
