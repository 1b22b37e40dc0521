"""Shared by the client tests: a config whose `fake` agent is the fake ACP agent with the
client tests' extras (rich_agent.py), a spawned client on it, and a wire check that
validates every message the client sends (and the daemon answers) against the ACP v1 and
bridge-extension schemas."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from bridge.client import BridgeClient
from tests.acp_schema import SchemaError, check_message
from tests.conftest import ROOT

RICH_AGENT = Path(__file__).resolve().parent / "rich_agent.py"
SPEC = ROOT / "spec"

# ACP requests the client sends → their schema definitions.
REQUESTS = {
    "initialize": "InitializeRequest",
    "authenticate": "AuthenticateRequest",
    "logout": "LogoutRequest",
    "session/new": "NewSessionRequest",
    "session/load": "LoadSessionRequest",
    "session/resume": "ResumeSessionRequest",
    "session/fork": "ForkSessionRequest",
    "session/list": "ListSessionsRequest",
    "session/close": "CloseSessionRequest",
    "session/delete": "DeleteSessionRequest",
    "session/set_mode": "SetSessionModeRequest",
    "session/set_config_option": "SetSessionConfigOptionRequest",
    "session/prompt": "PromptRequest",
}
NOTIFICATIONS = {"session/cancel": "CancelNotification", "$/cancel_request": "CancelRequestNotification"}
ANSWERS = {
    "session/request_permission": "RequestPermissionResponse",
    "fs/read_text_file": "ReadTextFileResponse",
    "fs/write_text_file": "WriteTextFileResponse",
}


def client_config(tmp: Path, name: str = "config.toml", *, agent: str = "fake", default: bool = True) -> Path:
    """A config (login shell off: no shell start-up in tests) with the rich fake agent as `agent`."""
    state = tmp / "fake-agent-state"
    state.mkdir(exist_ok=True)
    path = tmp / name
    path.write_text(
        "login_shell_env = false\n"
        + (f'default_agent = "{agent}"\n' if default else "")
        + f"[agents.{agent}]\n"
        + 'protocol = "acp"\n'
        + f'command = "{sys.executable}"\n'
        + f'args = ["{RICH_AGENT}"]\n'
        + f'env = {{ FAKE_ACP_STATE = "{state}" }}\n'
    )
    return path


@cache
def _validator(path: Path, defn: str) -> Any:
    root = json.loads(path.read_text())
    schema = {"$schema": root.get("$schema"), "$defs": root["$defs"], "$ref": f"#/$defs/{defn}"}
    return jsonschema.validators.validator_for(schema)(schema)


def _check(defn: str, value: Any, *, bridge: bool = False) -> None:
    path = SPEC / "bridge-extensions.schema.json" if bridge else SPEC / "acp" / "v1" / "schema.unstable.json"
    errors = list(_validator(path, defn).iter_errors(value))
    if errors:
        raise SchemaError(f"{defn} invalid at {list(errors[0].absolute_path)}: {errors[0].message}: {value}")


class WireCheck:
    """`on_message` tap: validates each message; failures are collected (raising inside the
    client's receive loop would only hide them) and checked with `assert_clean()`."""

    def __init__(self) -> None:
        self.method_of: dict[Any, str] = {}
        self.answering: dict[Any, str] = {}
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def __call__(self, direction: str, msg: dict[str, Any]) -> None:
        try:
            if direction == "send":
                self.sent.append(msg)
                self._sent(msg)
            else:
                self.received.append(msg)
                if "method" in msg and "id" in msg:
                    self.answering[msg["id"]] = msg["method"]
                check_message(msg, self.method_of)
        except (SchemaError, AssertionError, KeyError) as exc:
            self.errors.append(f"{direction}: {exc}")

    def _sent(self, msg: dict[str, Any]) -> None:
        assert msg.get("jsonrpc") == "2.0", msg
        method = msg.get("method")
        if method is not None and "id" in msg:
            self.method_of[msg["id"]] = method
            if method.startswith("_bridge/") or method in ("session/attach", "session/detach"):
                methods = json.loads((SPEC / "bridge-extensions.schema.json").read_text())["methods"]
                _check(methods[method]["params"], msg.get("params"), bridge=True)
            else:
                _check(REQUESTS[method], msg.get("params"))
        elif method is not None:
            _check(NOTIFICATIONS[method], msg.get("params"))
        elif "result" in msg:
            _check(ANSWERS[self.answering[msg["id"]]], msg["result"])
        else:
            _check("Error", msg["error"])

    def assert_clean(self) -> None:
        assert not self.errors, "\n".join(self.errors[:5])

    def methods_sent(self) -> list[str]:
        return [m["method"] for m in self.sent if "method" in m]


@contextlib.asynccontextmanager
async def spawned(tmp: Path, **kw: Any) -> AsyncIterator[tuple[BridgeClient, WireCheck]]:
    """A client on a spawned daemon (state in tmp/state), every message schema-checked."""
    wire = WireCheck()
    kw.setdefault("config", client_config(tmp))
    kw.setdefault("state_dir", tmp / "state")
    async with BridgeClient.spawn(on_message=wire, **kw) as client:
        yield client, wire
    wire.assert_clean()


@contextlib.asynccontextmanager
async def memory_link(bridge: Any) -> AsyncIterator[Any]:
    """A `Link` to an in-process daemon (tests.conftest.in_process) over memory streams, so
    several clients can share one daemon without a WebSocket."""
    import anyio

    from bridge.client.errors import ConnectionLost
    from bridge.client.transport import Link

    to_daemon_send, to_daemon_recv = anyio.create_memory_object_stream[list[bytes]](1000)
    to_client_send, to_client_recv = anyio.create_memory_object_stream[list[bytes]](100_000)

    async def daemon_incoming() -> AsyncIterator[list[Any]]:
        async for frames in to_daemon_recv:
            yield list(frames)

    async def daemon_write(frames: list[bytes]) -> None:
        await to_client_send.send(list(frames))

    async def client_incoming() -> AsyncIterator[list[Any]]:
        async for frames in to_client_recv:
            yield list(frames)

    async def client_write(frames: list[bytes]) -> None:
        try:
            await to_daemon_send.send(list(frames))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise anyio.BrokenResourceError from exc

    async def loss() -> ConnectionLost:
        return ConnectionLost("the in-process daemon closed the connection")

    async with anyio.create_task_group() as tg:

        async def serve() -> None:
            async with to_client_send:
                await bridge.server.serve(daemon_incoming(), daemon_write, transport="memory")

        tg.start_soon(serve)
        try:
            yield Link(client_incoming(), client_write, loss, "in-process daemon")
        finally:
            await to_daemon_send.aclose()
            tg.cancel_scope.cancel()
