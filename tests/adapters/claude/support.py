"""Driving `ClaudeAdapter` directly against the real CLI and the fake Anthropic server:
a recording `SessionHost` (every update and permission request validated against the
ACP v1 schema) and the isolated environment the CLI runs in."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from adapters.claude import ClaudeAdapter, create
from adapters.claude.session import ClaudeSession
from bridge.core import to_acp
from bridge.core.adapter import AdapterEnv, AgentSpec, StartRequest
from bridge.core.events import CoreEvent
from bridge.wire.types import JsonObj
from tests.acp_schema import check
from tests.fakes.model_server import FakeModelServer
from tests.real_agents import BIN

ROOT = Path(__file__).resolve().parents[3]
CLAUDE = BIN / "claude"
ECHO_MCP = Path(__file__).resolve().parent / "echo_mcp.py"


Policy = Callable[[JsonObj], Awaitable[Any]]


def select(option: str) -> Policy:
    async def policy(params: JsonObj) -> Any:
        return {"outcome": {"outcome": "selected", "optionId": option}}

    return policy


async def _no_elicitation(params: JsonObj) -> Any:
    raise AssertionError(f"unexpected elicitation {params}")


class Host:
    """A `SessionHost` that keeps everything the adapter publishes."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.updates: list[JsonObj] = []
        self.events: list[CoreEvent] = []  # what came through `emit_event`, before to_acp
        self.permission_requests: list[JsonObj] = []
        self.records: list[JsonObj] = []
        self.policy = policy or select("allow")
        self.elicitations: list[JsonObj] = []
        self.elicit: Policy = _no_elicitation
        self._changed = anyio.Event()

    @property
    def session_id(self) -> str:
        return "bridge-session"

    def emit_event(self, event: CoreEvent) -> None:
        self.events.append(event)
        self.emit(to_acp.update(event))

    def emit(self, update: JsonObj) -> None:
        check("SessionNotification", {"sessionId": self.session_id, "update": update})
        self.updates.append(update)
        self._changed.set()
        self._changed = anyio.Event()

    def emit_params(self, params: JsonObj) -> None:
        self.emit(params["update"])

    def touch(self) -> None:
        return

    async def wait_writable(self) -> None:
        return

    async def request_client(self, method: str, params: JsonObj) -> Any:
        if method == "elicitation/create":
            check("CreateElicitationRequest", {"sessionId": self.session_id, **params})
            self.elicitations.append(params)
            return await self.elicit(params)
        assert method == "session/request_permission", method
        check("RequestPermissionRequest", {"sessionId": self.session_id, **params})
        self.permission_requests.append(params)
        self._changed.set()
        self._changed = anyio.Event()
        return await self.policy(params)

    def notify_client(self, method: str, params: JsonObj) -> None:
        raise AssertionError(f"unexpected notification {method}")

    def record_event(self, event: JsonObj) -> None:
        self.records.append(event)

    async def wait_for(self, pred: Callable[[JsonObj], bool]) -> JsonObj:
        """The first update (already emitted or to come) matching `pred`."""
        seen = 0
        while True:
            for u in self.updates[seen:]:
                if pred(u):
                    return u
            seen = len(self.updates)
            await self._changed.wait()

    async def wait_permission(self) -> JsonObj:
        while not self.permission_requests:
            await self._changed.wait()
        return self.permission_requests[-1]

    def of(self, kind: str) -> list[JsonObj]:
        return [u for u in self.updates if u["sessionUpdate"] == kind]

    def text(self, kind: str = "agent_message_chunk") -> str:
        return "".join(u["content"]["text"] for u in self.of(kind))


@dataclass
class ClaudeWorld:
    """One test's isolated world: HOME/CLAUDE_CONFIG_DIR, workspace, fake model server."""

    tmp: Path
    server: FakeModelServer
    args: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def ws(self) -> Path:
        return self.tmp / "ws"

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home), "CLAUDE_CONFIG_DIR": str(self.home / ".claude"),
            "ANTHROPIC_BASE_URL": self.server.url, "ANTHROPIC_API_KEY": "sk-ant-fake",
            # CI runs as root; the CLI's own root check wants this (the bridge never sets it).
            "IS_SANDBOX": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1",
            # Newer Claude Code defers MCP tools behind its ToolSearch tool; the fake model
            # calls them directly, so offer them directly.
            "ENABLE_TOOL_SEARCH": "false", **self.extra_env,
        }

    def adapter(self) -> ClaudeAdapter:
        spec = AgentSpec(name="claude", protocol="claude", command=str(CLAUDE), args=self.args, env=self.env())
        return create(spec, AdapterEnv(state_dir=str(self.tmp / "state"), handshake_timeout=30.0, stop_grace=2.0))

    def request(self, mode: str = "new", agent_session_id: str | None = None, **kw: Any) -> StartRequest:
        return StartRequest(mode=mode, cwd=str(self.ws), mcp_servers=kw.pop("mcp_servers", []),  # type: ignore[arg-type]
                            agent_session_id=agent_session_id, **kw)

    def last_body(self) -> JsonObj:
        bodies = [r.body for r in self.server.requests if r.path.startswith("/v1/messages?") and isinstance(r.body, dict)]
        return bodies[-1]


def make_world(tmp: Path, server: FakeModelServer) -> ClaudeWorld:
    world = ClaudeWorld(tmp, server)
    os.makedirs(world.ws)
    os.makedirs(world.home / ".claude")
    return world


@contextlib.asynccontextmanager
async def open_session(world: ClaudeWorld, host: Host, request: StartRequest | None = None,
                       adapter: ClaudeAdapter | None = None) -> AsyncIterator[ClaudeSession]:
    """Run the adapter for one session; closing it is cancelling `run` (as the bridge does)."""
    adapter = adapter or world.adapter()
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(60):
            session = await tg.start(adapter.run, host, request or world.request())
        assert isinstance(session, ClaudeSession)
        yield session
        tg.cancel_scope.cancel()


def prompt(text: str) -> JsonObj:
    return {"sessionId": "bridge-session", "prompt": [{"type": "text", "text": text}]}
