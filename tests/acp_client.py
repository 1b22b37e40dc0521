"""A test-side ACP client: sends requests, collects notifications, answers the daemon's
requests through a handler, and validates every message the daemon sends against the
ACP v1 schema."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream

from tests.acp_schema import check_message

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


async def default_handler(method: str, params: dict[str, Any]) -> Any:
    if method == "session/request_permission":
        return {"outcome": {"outcome": "selected", "optionId": params["options"][0]["optionId"]}}
    if method == "fs/read_text_file":
        with open(params["path"]) as f:
            return {"content": f.read()}
    if method == "fs/write_text_file":
        with open(params["path"], "w") as f:
            f.write(params["content"])
        return {}
    raise RuntimeError(f"unexpected request {method}")


class AcpClient:
    def __init__(
        self, send: Callable[[bytes], Awaitable[None]], messages: ObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._messages = messages
        self._ids = itertools.count(1)
        self._method_of: dict[Any, str] = {}
        self._responses: dict[Any, dict[str, Any]] = {}
        self._arrived = anyio.Event()
        self.notifications: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.handler: Handler = default_handler
        self.validate = True
        self.closed = anyio.Event()
        self._tg: Any = None

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            async for raw in self._messages:
                msg = json.loads(raw)
                self.received.append(msg)
                if self.validate:
                    check_message(msg, self._method_of)
                if "method" in msg and "id" in msg:
                    tg.start_soon(self._answer, msg)
                elif "method" in msg:
                    self.notifications.append(msg)
                else:
                    self._responses[msg["id"]] = msg
                self._arrived.set()
                self._arrived = anyio.Event()
            self.closed.set()
            self._arrived.set()

    async def _answer(self, msg: dict[str, Any]) -> None:
        try:
            result = await self.handler(msg["method"], msg.get("params") or {})
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": msg["id"], "result": result}
        except RpcFailure as exc:
            reply = {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": exc.code, "message": exc.message}}
        await self._send(json.dumps(reply).encode())

    async def send_raw(self, data: bytes) -> None:
        await self._send(data)

    async def send_request(self, rid: Any, method: str, params: Any) -> None:
        """Send a request with the caller's id without waiting (`wait_response(rid)` later)."""
        self._method_of[rid] = method
        await self._send(
            json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()
        )

    def response_index(self, rid: Any) -> int:
        """Where the response to `rid` is in `received`."""
        return next(i for i, m in enumerate(self.received) if "method" not in m and m.get("id") == rid)

    async def request_raw(self, method: str, params: Any) -> dict[str, Any]:
        rid = next(self._ids)
        self._method_of[rid] = method
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        await self._send(json.dumps(msg).encode())
        return await self.wait_response(rid)

    async def wait_response(self, rid: Any) -> dict[str, Any]:
        while rid not in self._responses:
            if self.closed.is_set():
                raise ConnectionError("daemon closed the connection")
            await self._arrived.wait()
        return self._responses.pop(rid)

    async def request(self, method: str, params: Any = None) -> Any:
        resp = await self.request_raw(method, params if params is not None else {})
        if "error" in resp:
            raise RpcFailure(resp["error"])
        return resp["result"]

    async def notify(self, method: str, params: Any) -> None:
        await self._send(json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode())

    async def wait_for(self, pred: Callable[[dict[str, Any]], bool], start: int = 0) -> dict[str, Any]:
        seen = start
        while True:
            for msg in self.notifications[seen:]:
                if pred(msg):
                    return msg
            seen = len(self.notifications)
            if self.closed.is_set():
                raise ConnectionError("daemon closed the connection")
            await self._arrived.wait()

    async def wait_received(
        self, pred: Callable[[dict[str, Any]], bool], count: int = 1
    ) -> list[dict[str, Any]]:
        """The messages in `received` matching `pred`, once there are `count` of them."""
        while True:
            found = [m for m in self.received if pred(m)]
            if len(found) >= count:
                return found
            if self.closed.is_set():
                raise ConnectionError(f"daemon closed the connection with {len(found)} of {count} messages")
            await self._arrived.wait()

    def updates(self, session_id: str) -> list[dict[str, Any]]:
        return [
            n["params"]["update"]
            for n in self.notifications
            if n["method"] == "session/update" and n["params"]["sessionId"] == session_id
        ]

    def text(self, session_id: str) -> str:
        return "".join(
            u["content"].get("text", "")
            for u in self.updates(session_id)
            if u.get("sessionUpdate") == "agent_message_chunk"
        )

    # -- conveniences ----------------------------------------------------------------------------
    async def initialize(self, **caps: Any) -> Any:
        return await self.request(
            "initialize",
            {
                "protocolVersion": 1,
                "clientCapabilities": caps
                or {"fs": {"readTextFile": True, "writeTextFile": True}, "terminal": False},
                "clientInfo": {"name": "test-client", "version": "1"},
            },
        )

    async def new_session(self, cwd: str, agent: str | None = None, **extra: Any) -> str:
        params: dict[str, Any] = {"cwd": cwd, "mcpServers": [], **extra}
        if agent:
            params["_meta"] = {"bridge": {"agent": agent}}
        result = await self.request("session/new", params)
        return str(result["sessionId"])

    async def prompt(self, session_id: str, text: str) -> Any:
        return await self.request(
            "session/prompt", {"sessionId": session_id, "prompt": [{"type": "text", "text": text}]}
        )


async def iterate(stream: ObjectReceiveStream[bytes]) -> AsyncIterator[bytes]:
    async for item in stream:
        yield item
