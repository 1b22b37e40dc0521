"""The Codex app-server link on the shared endpoint, against a stand-in app-server (a real
process speaking its dialect: JSON-RPC without the `"jsonrpc"` member): our frames carry no
`"jsonrpc"` either, Codex's errors keep their shape (`CodexRpcError`), and an app-server that
breaks the protocol fails what waits on it at once — the request and the running turn
(`Handler.violation`) — while the link goes on serving."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters.codex.rpc import AppServer, CodexRpcError
from bridge.errors import AGENT_PROTOCOL_ERROR, AgentError, AgentExitedError, AgentProtocolError
from bridge.process.agent_process import open_agent_process

pytestmark = pytest.mark.anyio

STAND_IN = textwrap.dedent(
    """
    import json, sys
    for line in sys.stdin:
        msg = json.loads(line)
        rid, method = msg.get("id"), msg.get("method")
        out = sys.stdout
        if method == "echo":
            out.write(json.dumps({"id": rid, "result": {"hadJsonrpc": "jsonrpc" in msg}}) + "\\n")
        elif method == "fail":
            out.write(json.dumps({"id": rid, "error": {"code": -32600, "message": "no such thread"}}) + "\\n")
        elif method == "stray":
            out.write(json.dumps({"id": "never-sent", "result": {}}) + "\\n")
        elif method == "unhashable":
            out.write(json.dumps({"id": [rid], "result": {}}) + "\\n")
        elif method == "big":
            out.write('{"method":"x","params":"' + "a" * (17 << 20) + '"}\\n')
        out.flush()
    """
)


class Recorder:
    def __init__(self) -> None:
        self.violations: list[AgentError] = []

    def notification(self, method: str, params: dict[str, Any]) -> None:
        return

    async def server_request(self, request_id: Any, method: str, params: dict[str, Any]) -> Any:
        return {}

    def batch_done(self) -> None:
        return

    async def drain(self) -> None:
        return

    def closed(self, error: AgentExitedError) -> None:
        return

    def violation(self, error: AgentError) -> None:
        self.violations.append(error)


async def test_codex_link_dialect_errors_and_violations(tmp_path: Path) -> None:
    script = tmp_path / "app_server.py"
    script.write_text(STAND_IN)
    handler = Recorder()
    async with open_agent_process("codex", [sys.executable, str(script)], env=dict(os.environ), stop_grace=1) as proc:
        server = AppServer(proc, "codex", handler, exit_grace=1)
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            with anyio.fail_after(15):
                assert await server.request("echo", {}) == {"hadJsonrpc": False}
                with pytest.raises(CodexRpcError, match="codex fail failed: no such thread"):
                    await server.request("fail", {})
                for method, said in (("stray", "never sent"), ("unhashable", "id"), ("big", "size limit")):
                    with pytest.raises(AgentProtocolError) as failed:
                        await server.request(method, {})
                    assert failed.value.code == AGENT_PROTOCOL_ERROR and said in failed.value.message
                assert len(handler.violations) == 3
                assert await server.request("echo", {}) == {"hadJsonrpc": False}  # still serving
            tg.cancel_scope.cancel()
