"""The contract between the session core and every agent adapter.

An adapter drives one kind of agent (ACP passthrough, Claude Code stream-json, Codex
app-server). The bridge runs one agent process per bridge session (a crash, a stall or a
restart then touches exactly one session) unless an adapter's agent serves many sessions
well in one process: Codex's app-server does (`share_process`, spec/codex-shared-server.md),
and keeps that process in the daemon's task group (`DaemonTasks`).

Adapters that translate a native protocol (Claude, Codex) produce typed core events
(bridge/core/events.py) in their pure `translate.py` and publish them with `emit_event`;
bridge/core/to_acp.py is the one place they become ACP v1 `session/update` payloads (a
future ACP v2 surface maps from the same events). The ACP passthrough forwards the agent's
own updates untouched (`emit_params`, `emit`): no event is built for a line it only forwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from anyio.abc import TaskGroup, TaskStatus

from bridge import timeouts
from bridge.core.events import CoreEvent
from bridge.wire.types import JsonObj

StartMode = Literal["new", "load", "resume", "fork"]


@dataclass(frozen=True)
class AgentSpec:
    """One agent as configured (built-in or from the config file). Never from the wire."""

    name: str
    protocol: str  # "acp" | "claude" | "codex"
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # Inactivity deadline for a turn, seconds; None = the bridge default.
    stall_timeout: float | None = None
    # Offer the client's fs/terminal methods as MCP tools to a native agent (Claude, Codex):
    # bridge/core/client_tools.py. `[agents.NAME] client_tools = false` turns it off.
    client_tools: bool = True
    # One agent process for many sessions, where the adapter can (Codex: one app-server,
    # one thread per session). `[agents.NAME] share_process = false`: one process each.
    share_process: bool = True


@dataclass(frozen=True)
class StartRequest:
    """How to open the agent-side session behind a bridge session."""

    mode: StartMode
    cwd: str
    mcp_servers: list[JsonObj]
    additional_directories: list[str] | None = None
    # The agent's native session id: required for load / resume / fork.
    agent_session_id: str | None = None
    # The client's `_meta` on the request, passed on to the agent untouched.
    meta: JsonObj | None = None
    client_capabilities: JsonObj = field(default_factory=dict)
    client_info: JsonObj | None = None
    # The client's last successful `authenticate` params for this agent, replayed on
    # every process the bridge starts for it (some methods keep state per process).
    authenticate: JsonObj | None = None
    # Servers of `mcp_servers` the session may run without (config-wired ones): an agent that
    # cannot take one's transport drops it and reports it failed, rather than refusing the session.
    mcp_optional: frozenset[str] = frozenset()
    # Turns the session has had (its catalog counters): an adapter whose agent-side session
    # has vanished tells a session never prompted (nothing lost: open it afresh) from one
    # the agent lost (answer -32002, which the bridge can continue: bridge/core/continuation.py).
    history_turns: int = 0


@dataclass
class SessionSetup:
    """What an opened agent session reports back (ACP `NewSessionResponse` terms)."""

    agent_session_id: str
    modes: JsonObj | None = None
    config_options: list[JsonObj] | None = None
    meta: JsonObj | None = None
    # Unknown fields of the agent's answer, passed through to the client.
    extra: JsonObj = field(default_factory=dict)
    # For mode "load": True when the agent itself replayed the history through `emit`;
    # False asks the bridge to replay it from its own event log.
    replayed: bool = False
    # The agent's ACP `promptCapabilities` (image/audio/embeddedContext) when known: the
    # bridge refuses content the agent cannot take with a clear error instead of passing it on.
    prompt_capabilities: JsonObj | None = None


@dataclass(frozen=True)
class AgentProbe:
    """What an agent says of itself in its handshake (ACP `InitializeResponse` terms)."""

    protocol_version: int
    agent_capabilities: JsonObj
    auth_methods: list[JsonObj]
    agent_info: JsonObj | None = None
    auth_result: JsonObj | None = None


class SessionHost(Protocol):
    """What the bridge offers an adapter for one session. Everything here is ordered:
    updates reach the client in the order they are emitted, before the prompt's answer."""

    @property
    def session_id(self) -> str: ...

    def emit_event(self, event: CoreEvent) -> None:
        """Publish one core event, as the `session/update` bridge/core/to_acp.py makes of it."""

    def emit(self, update: JsonObj) -> None:
        """Publish one `session/update` payload (`{"sessionUpdate": ...}`) as the agent sent
        it in ACP (the passthrough); translating adapters use `emit_event`."""

    def emit_params(self, params: JsonObj) -> None:
        """Publish full `session/update` params whose `sessionId` the adapter already set to
        `session_id` (the passthrough's fast path: no re-wrapping)."""

    def emit_frame(self, frame: bytes, kind: str) -> None:
        """Publish an encoded `session/update` notification already carrying `session_id`,
        whose update is of `kind` (a chunk kind, nothing to look into): the passthrough's
        byte-level path."""

    def touch(self) -> None:
        """Tell the stall watchdog the agent is alive without emitting anything."""

    async def wait_writable(self) -> None:
        """Backpressure: call between batches of output; waits while the client lags."""

    async def request_client(self, method: str, params: JsonObj) -> Any:
        """Send an agent→client request (`session/request_permission`, `fs/*`, `terminal/*`,
        `elicitation/create`) to the client that owns the session. `sessionId` is set by the
        host; a translating adapter builds a permission request's params from an
        `events.PermissionRequest` with `to_acp.permission_request`. Raises `RpcError` with the client's error; a permission request that cannot be
        answered (client gone, turn cancelled) resolves `{"outcome": {"outcome": "cancelled"}}`."""

    def notify_client(self, method: str, params: JsonObj) -> None:
        """Send an agent→client notification other than `session/update`."""

    def record_event(self, event: JsonObj) -> None:
        """Append a bridge record (`{"type": ..., ...}`) to the session's durable log."""


class AgentSession(Protocol):
    """A live agent-side session, handed back through `task_status.started()`."""

    setup: SessionSetup

    async def prompt(self, params: JsonObj) -> JsonObj:
        """Run one turn. `params` are the client's `session/prompt` params; returns the
        `PromptResponse` (`{"stopReason": ...}`). Raises `AgentError` if the agent dies."""

    async def cancel(self) -> None:
        """Ask the agent to end the running turn (it then answers `stopReason: cancelled`)."""

    async def set_mode(self, mode_id: str) -> JsonObj: ...

    async def set_config_option(self, params: JsonObj) -> JsonObj:
        """Returns `{"configOptions": [...]}` (the complete list)."""

    async def call(self, method: str, params: JsonObj) -> Any:
        """Forward any other session-scoped request (e.g. an agent's `_vendor/...` extension).
        Raise `RpcError(METHOD_NOT_FOUND)` when the agent has no such method."""

    def pid(self) -> int | None:
        """The agent process's pid while it runs."""


class AgentAdapter(Protocol):
    """One per agent process. Built by an `AdapterFactory` from the agent's spec.

    An adapter may also have a `static_capabilities` attribute (ACP `agentCapabilities`):
    then `initialize` uses it instead of spawning the agent for a `probe()`. And an async
    `prewarm()`: called once at daemon start for the default agent (a shared process starts
    ahead of the first session); wrappers of adapters must pass both through."""

    async def probe(self, authenticate: JsonObj | None = None) -> AgentProbe:
        """Handshake only (spawn, initialize, optionally authenticate, stop). Used for
        `authenticate`, capability intersection and `doctor`."""

    async def run(
        self,
        host: SessionHost,
        request: StartRequest,
        *,
        task_status: TaskStatus[AgentSession],
    ) -> None:
        """Spawn the agent, open the session as `request` says, call
        `task_status.started(session)`, then serve until cancelled (the bridge closes the
        session) or the agent exits (raise `AgentExitedError`). Must leave no process behind."""


class DaemonTasks:
    """What outlives one session: the daemon's task group (set by `SessionManager.run` while
    it runs, cancelled at shutdown, which stops what runs in it) and the objects adapters
    share among sessions in it, by a key of the adapter's choosing (a shared agent process)."""

    def __init__(self) -> None:
        self.group: TaskGroup | None = None
        self.shared: dict[object, Any] = {}


@dataclass(frozen=True)
class AdapterEnv:
    """Daemon-wide settings an adapter may need."""

    state_dir: str
    handshake_timeout: float = timeouts.HANDSHAKE_TIMEOUT
    stop_grace: float = timeouts.STOP_GRACE
    # None (an adapter run outside a daemon): nothing is shared, every session has its own process.
    tasks: DaemonTasks | None = None


AdapterFactory = Callable[[AgentSpec, AdapterEnv], AgentAdapter]
