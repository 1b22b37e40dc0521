"""Test support for the Codex adapter: ACP schema checks, a recording `SessionHost`, and a
runner that drives `CodexAdapter.run` against the real CLI and the fake Responses server."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import jsonschema

from adapters.codex import create
from adapters.codex.session import CodexSession
from bridge.core import to_acp
from bridge.core.adapter import AdapterEnv, AgentSpec, StartRequest
from bridge.core.events import CoreEvent
from bridge.wire.types import JsonObj
from tests.fakes.openai_responses import write_codex_home
from tests.real_agents import BIN

ROOT = Path(__file__).resolve().parents[3]
CODEX = BIN / "codex"
FIXTURES = ROOT / "tests/fixtures/codex"
ECHO_MCP = FIXTURES / "echo_mcp.py"

_SCHEMA = json.loads((ROOT / "spec/acp/v1/schema.json").read_text())
_UNSTABLE = json.loads((ROOT / "spec/acp/v1/schema.unstable.json").read_text())
_validators: dict[tuple[bool, str], Any] = {}


def validate(definition: str, instance: Any, *, unstable: bool = False) -> None:
    """Validate against `$defs/<definition>` of the ACP v1 schema (or its unstable variant)."""
    key = (unstable, definition)
    if key not in _validators:
        root = _UNSTABLE if unstable else _SCHEMA
        schema = {"$schema": root["$schema"], "$defs": root["$defs"], "$ref": f"#/$defs/{definition}"}
        _validators[key] = jsonschema.validators.validator_for(schema)(schema)
    _validators[key].validate(instance)


def validate_update(update: JsonObj) -> None:
    # Compaction updates are ACP's unstable surface (sent only to clients that opt in).
    unstable = str(update.get("sessionUpdate")).startswith("compaction_")
    validate("SessionNotification", {"sessionId": "s", "update": update}, unstable=unstable)


def text_of(updates: list[JsonObj], kind: str = "agent_message_chunk") -> str:
    return "".join(u["content"].get("text", "") for u in updates if u["sessionUpdate"] == kind)


Answer = Callable[[str, JsonObj], Any]


def select(option_kind: str) -> Answer:
    """A client that picks the first permission option of the given kind."""

    def answer(method: str, params: JsonObj) -> Any:
        assert method == "session/request_permission", method
        option = next(o for o in params["options"] if o["kind"] == option_kind)
        return {"outcome": {"outcome": "selected", "optionId": option["optionId"]}}

    return answer


@dataclass
class Host:
    """A `SessionHost` that validates and keeps everything the adapter sends."""

    answer: Answer | None = None
    session_id: str = "s"
    updates: list[JsonObj] = field(default_factory=list)
    events: list[CoreEvent] = field(default_factory=list)  # what came through `emit_event`
    requests: list[tuple[str, JsonObj]] = field(default_factory=list)
    records: list[JsonObj] = field(default_factory=list)
    touches: int = 0
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def emit_event(self, event: CoreEvent) -> None:
        self.events.append(event)
        self.emit(to_acp.update(event))

    def emit(self, update: JsonObj) -> None:
        validate_update(update)
        self.updates.append(update)
        self._changed.set()

    def emit_params(self, params: JsonObj) -> None:
        self.emit(params["update"])

    def touch(self) -> None:
        self.touches += 1

    async def request_client(self, method: str, params: JsonObj) -> Any:
        full = {**params, "sessionId": self.session_id}
        if method == "session/request_permission":
            validate("RequestPermissionRequest", full)
        elif method == "elicitation/create":
            validate("CreateElicitationRequest", full)
        self.requests.append((method, full))
        self._changed.set()
        if self.answer is None:
            return {"outcome": {"outcome": "cancelled"}}
        answer = self.answer(method, full)
        return await answer if inspect.isawaitable(answer) else answer

    def notify_client(self, method: str, params: JsonObj) -> None:
        self.requests.append((method, params))

    def record_event(self, event: JsonObj) -> None:
        self.records.append(event)

    async def wait_writable(self) -> None:
        return

    async def wait_for(self, predicate: Callable[[JsonObj], bool]) -> JsonObj:
        """The first update matching `predicate`, waiting for it (callers bound the wait)."""
        while True:
            for update in self.updates:
                if predicate(update):
                    return update
            self._changed = anyio.Event()
            await self._changed.wait()

    def of(self, kind: str) -> list[JsonObj]:
        return [u for u in self.updates if u["sessionUpdate"] == kind]


@dataclass
class Codex:
    """A temp HOME + CODEX_HOME for the real CLI, pointed at a fake Responses server."""

    home: Path
    workspace: Path

    @property
    def codex_home(self) -> Path:
        return self.home / "codex-home"

    def __post_init__(self) -> None:
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)

    def configure(self, base_url: str, extra: str) -> None:
        """Rewrite the user's config.toml with extra top-level settings (policies, MCP servers)."""
        write_codex_home(self.codex_home, base_url, extra=extra)

    def spec(self) -> AgentSpec:
        env = {
            "HOME": str(self.home),
            "CODEX_HOME": str(self.codex_home),
            "FAKE_API_KEY": "fake",
            "PATH": os.environ.get("PATH", ""),
            # Codex will not link its helpers (the `codex-linux-sandbox` that bubblewrap runs)
            # into a CODEX_HOME under the temp dir; the test's home is under /tmp, so point
            # the temp dir elsewhere.
            "TMPDIR": str(self.home / "tmp"),
        }
        return AgentSpec(name="codex", protocol="codex", command=str(CODEX), args=("app-server",), env=env)

    def adapter_env(self) -> AdapterEnv:
        return AdapterEnv(state_dir=str(self.home / "state"), handshake_timeout=30.0, stop_grace=2.0)

    @asynccontextmanager
    async def session(
        self,
        host: Host,
        *,
        mode: str = "new",
        thread: str | None = None,
        mcp_servers: list[JsonObj] | None = None,
        client_capabilities: JsonObj | None = None,
        history_turns: int = 0,
    ) -> AsyncIterator[CodexSession]:
        """Run the adapter in a task; yield the opened session; stop it on exit."""
        adapter = create(self.spec(), self.adapter_env())
        request = StartRequest(
            mode=mode,  # type: ignore[arg-type]
            cwd=str(self.workspace),
            mcp_servers=mcp_servers or [],
            agent_session_id=thread,
            client_capabilities=client_capabilities or {},
            history_turns=history_turns,
        )
        failed: Exception | None = None
        async with anyio.create_task_group() as tg:
            try:
                session: CodexSession = await tg.start(_run, adapter, host, request)
            except Exception as exc:  # re-raised below, outside the group: not wrapped
                failed = exc
            else:
                yield session
            tg.cancel_scope.cancel()
        if failed is not None:
            raise failed


async def _run(adapter: Any, host: Host, request: StartRequest, *, task_status: Any) -> None:
    await adapter.run(host, request, task_status=task_status)


def prompt(text: str) -> JsonObj:
    return {"sessionId": "s", "prompt": [{"type": "text", "text": text}]}


def option(session: CodexSession, config_id: str) -> JsonObj:
    return next(o for o in session.settings.config_options() if o["id"] == config_id)


def request_text(body: Any) -> str:
    """Everything Codex sent the model in one request, as text (for `in` checks)."""
    return json.dumps(body)
