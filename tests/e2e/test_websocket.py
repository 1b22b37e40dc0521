"""ACP over WebSocket against the real daemon (a `python -m bridge serve --listen` subprocess)
and real WebSocket clients: a full session, several clients at once, the limits (message
size, connection cap, dead peers, a client that stops reading), the disconnect policy
(a turn outlives its client; reattach with load or attach and replay; permissions wait the
grace period, then fail closed), and shutdown."""

from __future__ import annotations

import contextlib
import json
import re
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.acp_client import AcpClient, default_handler
from tests.conftest import connect as in_memory
from tests.conftest import fake_agent_config, in_process
from tests.e2e.ws_support import LISTENING, WsClient, raw_handshake, upgrade_headers, ws_client, ws_daemon

pytestmark = pytest.mark.anyio

CHUNK = re.compile(r"^slow (\d+) $")


def grace_config(tmp: Path, grace: float) -> Path:
    cfg = fake_agent_config(tmp)
    cfg.write_text(f"disconnect_grace = {grace}\n" + cfg.read_text())
    return cfg


def chunks(updates: list[dict[str, Any]]) -> list[int]:
    """The indices of the fake agent's `slow` chunks, in the order received."""
    out = []
    for u in updates:
        if u.get("sessionUpdate") == "agent_message_chunk":
            m = CHUNK.match(u["content"].get("text", ""))
            if m:
                out.append(int(m.group(1)))
    return out


def turn_ended(client: AcpClient, sid: str) -> Any:
    return client.wait_for(
        lambda m: m["method"] == "_bridge/session/turn_ended" and m["params"]["sessionId"] == sid
    )


async def test_full_session_over_websocket(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        assert len(LISTENING.findall(bytes(d.stderr.data))) == 1
        note = tmp_path / "note.txt"
        note.write_text("from the editor")
        async with ws_client(d) as c:
            init = await c.acp.initialize()
            assert init["protocolVersion"] == 1 and init["agentCapabilities"]["loadSession"] is True
            sid = await c.acp.new_session(str(tmp_path))
            assert (await c.acp.prompt(sid, "echo hello over websocket"))["stopReason"] == "end_turn"
            assert "hello over websocket" in c.acp.text(sid)
            # Agent → client requests travel over the socket too (permission, fs).
            await c.acp.prompt(sid, "permission")
            assert "permission: allow" in c.acp.text(sid)
            await c.acp.prompt(sid, f"read {note}")
            assert "content: from the editor" in c.acp.text(sid)
            result = await c.acp.prompt(sid, "stream 300")
            assert result["stopReason"] == "end_turn"
            listed = await c.acp.request("session/list", {})
            assert sid in [s["sessionId"] for s in listed["sessions"]]
            info = await c.acp.request("_bridge/session/info", {"sessionId": sid})
            assert info["status"] == "idle" and info["cwd"] == str(tmp_path)
            assert await c.acp.request("session/close", {"sessionId": sid}) == {}
        # The client validated every message against the ACP schema; all came as text frames.
        assert all(m.get("jsonrpc") == "2.0" for m in c.acp.received)


async def test_two_clients_with_their_own_sessions_interleave_without_crosstalk(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d, ws_client(d) as a, ws_client(d) as b:
        await a.acp.initialize()
        await b.acp.initialize()
        sid_a = await a.acp.new_session(str(tmp_path))
        sid_b = await b.acp.new_session(str(tmp_path))
        results: dict[str, Any] = {}

        async def run(c: WsClient, sid: str, text: str) -> None:
            results[sid] = await c.acp.prompt(sid, text)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, a, sid_a, "stream 400")
            tg.start_soon(run, b, sid_b, "slow 40 0.01")
        assert results[sid_a]["stopReason"] == results[sid_b]["stopReason"] == "end_turn"
        for c, mine, other in ((a, sid_a, sid_b), (b, sid_b, sid_a)):
            sids = {n["params"]["sessionId"] for n in c.acp.notifications if n["method"] == "session/update"}
            assert sids == {mine}, (mine, sids)
            assert other not in json.dumps(c.acp.received)
        texts = [
            u["content"]["text"] for u in a.acp.updates(sid_a) if u["sessionUpdate"] == "agent_message_chunk"
        ]
        assert texts == [f"chunk {i} " for i in range(400)]
        assert chunks(b.acp.updates(sid_b)) == list(range(40))


async def test_oversized_messages_get_32600_and_absurd_ones_close_1009(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path, "--ws-max-message", "65536") as d, ws_client(d) as c:
        big = {"jsonrpc": "2.0", "id": 5, "method": "initialize", "params": {"x": "a" * 100_000}}
        await c.acp.send_raw(json.dumps(big).encode())
        resp = await c.acp.wait_response(5)
        assert resp["error"]["code"] == -32600 and "size limit" in resp["error"]["message"]
        # A binary frame is ignored (ACP uses text frames); the connection keeps serving.
        await c.ws.send(b'{"jsonrpc":"2.0","id":6,"method":"initialize","params":{"protocolVersion":1}}')
        assert (await c.acp.initialize())["protocolVersion"] == 1
        assert 6 not in [m.get("id") for m in c.acp.received]
        # Past 4x the limit the message is not read at all: close 1009.
        await c.acp.send_raw(json.dumps({**big, "params": {"x": "a" * 300_000}}).encode())
        with anyio.fail_after(30):
            await c.ws.wait_closed()
        assert c.ws.close_code == 1009


async def test_connection_cap_answers_503(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path, "--ws-max-connections", "2") as d:
        host = ("Host", f"127.0.0.1:{d.port}")
        bearer = ("Authorization", f"Bearer {d.token}")
        async with ws_client(d) as a:
            async with ws_client(d) as b:
                await a.acp.initialize()
                await b.acp.initialize()
                status, head = await raw_handshake(d.port, [host, bearer, *upgrade_headers()])
                assert status == 503 and b"too many connections" in head
                # Refused before the token check matters: the gate still applies first.
                assert (await raw_handshake(d.port, [host, *upgrade_headers()]))[0] == 401
                # Taken before `b` closes: its "closed" line may be logged right away.
                start = len(d.stderr.data)
            with anyio.fail_after(30):
                await d.stderr.wait_for(re.compile(rb"WebSocket connection from \S+ closed"), start)
            # A slot is free again.
            async with ws_client(d) as c2:
                assert (await c2.acp.initialize())["protocolVersion"] == 1


async def test_a_dead_peer_is_detected_by_keepalive(tmp_path: Path) -> None:
    async with (
        ws_daemon(tmp_path, "--ws-ping-interval", "1") as d,
        await anyio.connect_tcp("127.0.0.1", d.port) as stream,
    ):
        head = f"GET /acp HTTP/1.1\r\nHost: 127.0.0.1:{d.port}\r\nAuthorization: Bearer {d.token}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in upgrade_headers()) + "\r\n"
        await stream.send(head.encode())
        assert (await stream.receive()).startswith(b"HTTP/1.1 101")
        local = stream.extra(anyio.abc.SocketAttribute.local_port)
        # Now silent: never answers a ping, never closes. The daemon must notice.
        with anyio.fail_after(60):
            await d.stderr.wait_for(
                re.compile(rb"WebSocket connection from 127\.0\.0\.1:" + str(local).encode() + rb" closed")
            )


async def test_a_client_that_stops_reading_is_disconnected_and_memory_stays_bounded(tmp_path: Path) -> None:
    # A million chunks is ~170 MB of frames (and far more as Python objects): a daemon that
    # buffered what a client does not read would blow through the bound below. Measured here:
    # ~100 MB of growth at the cut (allocator high-water of the streaming itself), flat after;
    # without the log being committed while no client paces the turn, ~300 MB and climbing.
    n = 1_000_000
    bound = 192 * 2**20
    async with ws_daemon(tmp_path, "--ws-send-timeout", "2") as d:
        ws = await connect(d.url, additional_headers=d.auth(), max_queue=1)
        try:
            ids = iter(range(1, 100))

            async def call(method: str, params: dict[str, Any]) -> Any:
                rid = next(ids)
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("id") == rid and "method" not in msg:
                        return msg["result"]

            await call("initialize", {"protocolVersion": 1, "clientCapabilities": {}})
            sid = (await call("session/new", {"cwd": str(tmp_path), "mcpServers": []}))["sessionId"]
            base_rss = d.rss()
            prompt = {"sessionId": sid, "prompt": [{"type": "text", "text": f"stream {n}"}]}
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 99, "method": "session/prompt", "params": prompt})
            )
            # ...and never reads again. The daemon cuts it off with a clear close code.
            with anyio.fail_after(60):
                await d.stderr.wait_for(
                    re.compile(rb"disconnecting WebSocket client \S+ \(close 1008\): client too slow")
                )
            rss_at_cut = d.rss()
            # The client wakes up: what it gets is the backlog, then the close frame saying why.
            received = 0
            with anyio.fail_after(60), contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    received += 1
            assert ws.close_code == 1008, ws.close_code
            assert ws.close_reason.startswith("client too slow")
            assert received < n // 2  # cut off, not fed everything
        finally:
            await ws.close()
        # The turn was not killed with the connection: it runs on (disconnect grace), now at
        # the pace of the log since no client paces it. Follow it from another connection — a
        # lean reader that keeps up — for a while, and look at the daemon's memory meanwhile.
        async with await connect(d.url, additional_headers=d.auth(), max_queue=None) as follower:
            attach = {"sessionId": sid, "after": 10**9}
            await follower.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "_bridge/session/attach", "params": attach})
            )
            seen = 0
            with anyio.fail_after(120):
                async for message in follower:
                    assert isinstance(message, str)
                    if '"agent_message_chunk"' in message:
                        seen += 1
                        if seen == 100_000:
                            break
            rss_running = d.rss()
            # Then end it (the fake agent's stream ignores cancel): close the session.
            await follower.send(
                json.dumps(
                    {"jsonrpc": "2.0", "id": 2, "method": "session/close", "params": {"sessionId": sid}}
                )
            )
            with anyio.fail_after(60):
                async for message in follower:
                    assert isinstance(message, str)
                    if message.startswith('{"jsonrpc":"2.0","id":2,'):
                        assert json.loads(message)["result"] == {}
                        break
        assert rss_at_cut - base_rss < bound, rss_at_cut - base_rss
        assert rss_running - base_rss < bound, rss_running - base_rss
        assert d.rss() - base_rss < bound


async def test_a_follower_that_stops_reading_is_cut_off_without_slowing_the_owner(tmp_path: Path) -> None:
    async with (
        ws_daemon(tmp_path, "--ws-queue-limit", str(6 * 2**20), "--ws-send-timeout", "5") as d,
        ws_client(d) as a,
    ):
        a.acp.validate = False  # a fast owner
        await a.acp.initialize()
        sid = await a.acp.new_session(str(tmp_path))
        stalled = await connect(d.url, additional_headers=d.auth(), max_queue=1)
        try:
            attach = {"sessionId": sid, "after": 0}
            await stalled.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "_bridge/session/attach", "params": attach})
            )
            while json.loads(await stalled.recv()).get("id") != 1:
                pass
            # The follower now reads nothing; the owner's turn must not wait for it.
            with anyio.fail_after(120):
                result = await a.acp.prompt(sid, "stream 100000")
            assert result["stopReason"] == "end_turn"
            assert a.acp.text(sid).count("chunk") == 100_000
            with anyio.fail_after(60):
                await d.stderr.wait_for(re.compile(rb"disconnecting WebSocket client \S+ \(close 1008\)"))
            with anyio.fail_after(60), contextlib.suppress(ConnectionClosed):
                async for _ in stalled:
                    pass
            assert stalled.close_code == 1008 and stalled.close_reason.startswith("client too slow")
        finally:
            await stalled.close()


async def test_reattach_after_a_drop_mid_turn_sees_the_turn_finish_with_replay(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        async with ws_client(d) as a:
            await a.acp.initialize()
            sid = await a.acp.new_session(str(tmp_path))

            async def prompt() -> None:
                with contextlib.suppress(ConnectionError):
                    await a.acp.prompt(sid, "slow 40 0.05")

            async with anyio.create_task_group() as tg:
                tg.start_soon(prompt)
                with anyio.fail_after(30):
                    await a.acp.wait_for(lambda m: "slow 3 " in json.dumps(m))
                # The network goes away under the client: no close frame, just gone.
                a.ws.transport.abort()
        async with ws_client(d) as b:
            await b.acp.initialize()
            # Another connection takes the session over: the history is replayed from the log,
            # then the live stream continues from exactly there.
            await b.acp.request("session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []})
            with anyio.fail_after(60):
                ended = await turn_ended(b.acp, sid)
            assert ended["params"]["stopReason"] == "end_turn"
            updates = b.acp.updates(sid)
            assert chunks(updates) == list(range(40))  # every chunk once, in order: none lost, none twice
            replayed = [
                n["params"]["update"]
                for n in b.acp.notifications
                if n["method"] == "session/update"
                and n["params"].get("_meta", {}).get("bridge", {}).get("replay")
            ]
            assert replayed and chunks(replayed) == list(range(len(chunks(replayed))))
            assert any(u["sessionUpdate"] == "user_message_chunk" for u in replayed)
            # The session is B's now, and idle: it prompts normally.
            assert (await b.acp.prompt(sid, "echo after reattach"))["stopReason"] == "end_turn"
            events = await b.acp.request("_bridge/session/events", {"sessionId": sid, "limit": 1000})
            results = [e["message"]["result"] for e in events["events"] if "result" in e["message"]]
            assert {"stopReason": "end_turn"}.items() <= results[-2].items()


async def test_attach_follows_a_live_turn_from_a_cursor_without_loss_or_repeats(tmp_path: Path) -> None:
    # Attach and replay are the ACP server's, whatever the transport: in-process.
    async with in_process(tmp_path) as d, in_memory(d.bridge) as b:
        a = d.client
        await a.initialize()
        await b.initialize()
        sid = await a.new_session(str(tmp_path))
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.prompt, sid, "slow 30 0.03")
            with anyio.fail_after(30):
                await a.wait_for(lambda m: "slow 5 " in json.dumps(m))
            att = await b.request("_bridge/session/attach", {"sessionId": sid, "after": 0})
            assert att["live"] is True and att["cursor"] > 0
            with anyio.fail_after(60):
                await turn_ended(b, sid)
        assert chunks(b.updates(sid)) == list(range(30))
        assert chunks(a.updates(sid)) == list(range(30))
        # A later client replays from a cursor: only what came after it.
        events = await b.request("_bridge/session/events", {"sessionId": sid, "limit": 1000})
        seq_10 = next(e["seq"] for e in events["events"] if "slow 10 " in json.dumps(e["message"]))
        async with in_memory(d.bridge) as c:
            await c.initialize()
            await c.request("_bridge/session/attach", {"sessionId": sid, "after": seq_10})
            assert chunks(c.updates(sid)) == list(range(11, 30))


async def test_a_pending_permission_is_asked_again_of_the_client_that_reattaches(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        asked_a = anyio.Event()

        async def never_answer(method: str, params: dict[str, Any]) -> Any:
            if method == "session/request_permission":
                asked_a.set()
                await anyio.sleep_forever()
            return await default_handler(method, params)

        async with ws_client(d) as a:
            a.acp.handler = never_answer
            await a.acp.initialize()
            sid = await a.acp.new_session(str(tmp_path))

            async def prompt() -> None:
                with contextlib.suppress(ConnectionError):
                    await a.acp.prompt(sid, "permission")

            async with anyio.create_task_group() as tg:
                tg.start_soon(prompt)
                with anyio.fail_after(30):
                    await asked_a.wait()
                a.ws.transport.abort()
        async with ws_client(d) as b:
            asked_b: list[dict[str, Any]] = []

            async def answer(method: str, params: dict[str, Any]) -> Any:
                if method == "session/request_permission":
                    asked_b.append(params)
                return await default_handler(method, params)  # selects "allow"

            b.acp.handler = answer
            await b.acp.initialize()
            await b.acp.request("session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []})
            with anyio.fail_after(60):
                ended = await turn_ended(b.acp, sid)
            assert ended["params"]["stopReason"] == "end_turn"
            assert len(asked_b) == 1 and asked_b[0]["sessionId"] == sid
            assert "permission: allow" in b.acp.text(sid)


async def test_a_permission_pending_for_a_gone_client_fails_closed_after_the_grace(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path, config=grace_config(tmp_path, 2)) as d:
        asked = anyio.Event()

        async def never_answer(method: str, params: dict[str, Any]) -> Any:
            asked.set()
            await anyio.sleep_forever()

        async with ws_client(d) as a:
            a.acp.handler = never_answer
            await a.acp.initialize()
            sid = await a.acp.new_session(str(tmp_path))

            async def prompt() -> None:
                with contextlib.suppress(ConnectionError):
                    await a.acp.prompt(sid, "permission")

            async with anyio.create_task_group() as tg:
                tg.start_soon(prompt)
                with anyio.fail_after(30):
                    await asked.wait()
                a.ws.transport.abort()
        async with ws_client(d) as b:
            b.acp.handler = never_answer  # a follower is never asked: it does not own the session
            await b.acp.initialize()
            await b.acp.request("_bridge/session/attach", {"sessionId": sid, "after": 10**9})
            with anyio.fail_after(60):
                ended = await turn_ended(b.acp, sid)
            assert "stopReason" in ended["params"] or "error" in ended["params"]
            assert not [m for m in b.acp.received if m.get("method") == "session/request_permission"]
            events = await b.acp.request("_bridge/session/events", {"sessionId": sid, "limit": 1000})
            log = [e["message"] for e in events["events"]]
            # Nobody answered; the tool never ran with an "allow".
            assert not [m for m in log if m.get("method") == "session/request_permission" and "result" in m]
            assert "permission: allow" not in json.dumps(log)
            kinds = [m["bridge"]["type"] for m in log if "bridge" in m]
            assert "client_disconnected" in kinds


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_exits_zero_closes_clients_and_stops_agents(tmp_path: Path, signum: int) -> None:
    async with ws_daemon(tmp_path) as d, ws_client(d) as c:
        await c.acp.initialize()
        sid = await c.acp.new_session(str(tmp_path))
        agents = d.agents()
        assert agents
        async with anyio.create_task_group() as tg:

            async def prompt() -> None:
                with contextlib.suppress(ConnectionError):
                    await c.acp.prompt(sid, "slow 1000 0.05")

            tg.start_soon(prompt)
            with anyio.fail_after(30):
                await c.acp.wait_for(lambda m: "slow 1 " in json.dumps(m))
            d.process.send_signal(signum)
            with anyio.fail_after(30):
                await d.process.wait()
                await c.ws.wait_closed()
        assert d.process.returncode == 0, d.stderr.text()
        assert c.ws.close_code == 1001
        assert not [p for p in agents if p.is_running() and p.status() != "zombie"]
