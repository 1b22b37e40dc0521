"""The official Python SDK's two remote clients — Streamable HTTP (`acp.http.create_http_stream`)
and WebSocket (`acp.ws.create_websocket_stream`) — each drive a full turn against a real
`agent-bridge serve --listen` subprocess on the same `/acp` endpoint: initialize, session/new,
a prompt with streamed updates, a permission request answered, a cancelled prompt."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from acp import connect_to_agent, text_block
from acp.http import create_http_stream
from acp.schema import ClientCapabilities
from acp.ws import create_websocket_stream

from tests.acp_schema import check_message
from tests.e2e.test_websocket_sdk import Recorder as SdkRecorder
from tests.e2e.ws_support import WsDaemon, ws_daemon

pytestmark = pytest.mark.anyio

METHODS = {1: "initialize", 2: "session/new", 3: "session/prompt"}


class Recorder(SdkRecorder):
    """The WebSocket SDK test's recorder, which also marks the first chunk of a slow turn."""

    def __init__(self) -> None:
        super().__init__()
        self.first_slow = anyio.Event()

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        await super().session_update(session_id, update, **kwargs)
        if "slow 0" in str(update):
            self.first_slow.set()


async def _full_turn(d: WsDaemon, transport: Any, tmp_path: Path) -> None:
    client = Recorder()
    conn = connect_to_agent(client, transport)  # type: ignore[arg-type]
    try:
        with anyio.fail_after(60):
            init = await conn.initialize(protocol_version=1, client_capabilities=ClientCapabilities())
            assert init.protocol_version == 1
            session = await conn.new_session(cwd=str(tmp_path), mcp_servers=[])
            sid = session.session_id
            result = await conn.prompt(session_id=sid, prompt=[text_block("stream 25")])
            assert result.stop_reason == "end_turn"
            texts = [
                u.content.text
                for s, u in client.updates
                if getattr(u, "session_update", "") == "agent_message_chunk"
            ]
            assert texts == [f"chunk {i} " for i in range(25)]
            assert {s for s, _ in client.updates} == {sid}
            result = await conn.prompt(session_id=sid, prompt=[text_block("permission")])
            assert client.permissions == [sid]
            assert result.stop_reason == "end_turn"

            async with anyio.create_task_group() as tg:
                answers: list[Any] = []

                async def slow() -> None:
                    answers.append(await conn.prompt(session_id=sid, prompt=[text_block("slow 200 0.05")]))

                tg.start_soon(slow)
                await client.first_slow.wait()
                await conn.cancel(session_id=sid)
            assert answers[0].stop_reason == "cancelled"
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
        await transport.close()


async def test_the_sdk_http_client_runs_a_full_turn(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        url = f"http://127.0.0.1:{d.port}/acp"
        await _full_turn(d, create_http_stream(url, headers=d.auth()), tmp_path)
        # DELETE (the transport's close) ended the connection: its id is gone.
        assert "HTTP connection" in d.stderr.text()


async def test_the_sdk_websocket_client_runs_a_full_turn_and_gets_a_connection_id(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        transport = await create_websocket_stream(d.url, headers=d.auth())
        response = transport._ws.response  # type: ignore[attr-defined]
        assert response.status_code == 101 and len(response.headers["Acp-Connection-Id"]) >= 20
        await _full_turn(d, transport, tmp_path)


async def test_http_profile_messages_validate_and_streams_route_by_session(tmp_path: Path) -> None:
    """By hand, as the RFD draws it: the answers and notifications on each SSE stream are
    valid ACP, session traffic on the session stream, session/new's answer on the
    connection stream."""
    async with ws_daemon(tmp_path) as d, httpx.AsyncClient(timeout=30) as http:
        url = f"http://127.0.0.1:{d.port}/acp"
        auth = d.auth()
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}
        r = await http.post(url, json=init, headers=auth)
        assert r.status_code == 200 and r.json()["id"] == 1
        check_message(r.json(), METHODS)
        cid = r.headers["Acp-Connection-Id"]
        base = {**auth, "Acp-Connection-Id": cid}
        with anyio.fail_after(60):
            async with http.stream("GET", url, headers={**base, "Accept": "text/event-stream"}) as main:
                assert main.status_code == 200
                assert main.headers["content-type"].startswith("text/event-stream")
                lines = main.aiter_lines()
                new = {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "session/new",
                    "params": {"cwd": str(tmp_path), "mcpServers": []},
                }
                assert (await http.post(url, json=new, headers=base)).status_code == 202
                # Before its answer, what the session sends goes on the connection stream (the
                # client has no session stream yet): the answer comes after.
                created = await _next_event(lines)
                while created.get("id") != 2:
                    check_message(created, METHODS)
                    created = await _next_event(lines)
                check_message(created, METHODS)
                sid = created["result"]["sessionId"]
                sess_headers = {**base, "Acp-Session-Id": sid, "Accept": "text/event-stream"}
                async with http.stream("GET", url, headers=sess_headers) as sess:
                    assert sess.status_code == 200
                    # A second reader of the same stream is refused.
                    assert (await http.get(url, headers=sess_headers)).status_code == 409
                    slines = sess.aiter_lines()
                    prompt = {
                        "jsonrpc": "2.0",
                        "id": 3,
                        "method": "session/prompt",
                        "params": {"sessionId": sid, "prompt": [{"type": "text", "text": "stream 3"}]},
                    }
                    no_header = await http.post(url, json=prompt, headers=base)
                    assert no_header.status_code == 400 and no_header.json()["error"]["code"] == -32600
                    ok = await http.post(url, json=prompt, headers={**base, "Acp-Session-Id": sid})
                    assert ok.status_code == 202 and ok.content == b""
                    seen = []
                    while True:
                        event = await _next_event(slines)
                        check_message(event, METHODS)
                        seen.append(event)
                        if event.get("id") == 3:
                            break
                    assert seen[-1]["result"]["stopReason"] == "end_turn"
                    assert [e["params"]["sessionId"] for e in seen[:-1]] == [sid] * (len(seen) - 1)
        r = await http.delete(url, headers=base)
        assert r.status_code == 202
        r = await http.post(url, json={"jsonrpc": "2.0", "method": "x"}, headers=base)
        assert r.status_code == 404


async def _next_event(lines: Any) -> dict[str, Any]:
    import json

    async for line in lines:
        if line.startswith("data: "):
            return dict(json.loads(line[6:]))
    raise AssertionError("stream ended")
