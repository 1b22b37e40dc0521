"""What the client's methods return: the result of a turn (`SendResult`), and typed views of
the daemon's answers (session info, metrics, events, list entries, shell results).

The client's own models, not `acp.schema`'s: `bridge/client/updates.py` says why (measured);
most of these answers are the bridge's extensions, which the schema has no model for."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationError

from bridge.client.updates import (
    AcpModel,
    AgentMessageChunk,
    AgentThoughtChunk,
    ContentBlock,
    Cost,
    Plan,
    PlanEntry,
    ToolCall,
    ToolCallContent,
    ToolCallLocation,
    ToolCallUpdate,
    Update,
    UsageUpdate,
    parse_update,
)
from bridge.wire.types import JsonObj


class Usage(AcpModel):
    """Token use of one turn, as the agent reported it in the prompt response."""

    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int | None = None
    cached_read_tokens: int | None = None
    cached_write_tokens: int | None = None


@dataclass
class ToolCallState:
    """A tool call with all its updates applied (what it finally looked like)."""

    tool_call_id: str
    title: str = ""
    kind: str = "other"
    status: str = "pending"
    content: list[ToolCallContent] = field(default_factory=list)
    locations: list[ToolCallLocation] = field(default_factory=list)
    raw_input: Any = None
    raw_output: Any = None
    name: str | None = None

    def apply(self, update: ToolCall | ToolCallUpdate) -> None:
        for attr in ("title", "kind", "status", "content", "locations", "raw_input", "raw_output"):
            value = getattr(update, attr)
            if value is not None:
                setattr(self, attr, value)
        if isinstance(update, ToolCall) and update.name:
            self.name = update.name


class ToolCalls:
    """Merges `tool_call` / `tool_call_update` into `ToolCallState`s, in first-seen order."""

    def __init__(self) -> None:
        self.by_id: dict[str, ToolCallState] = {}

    def apply(self, update: Update) -> ToolCallState | None:
        if not isinstance(update, ToolCall | ToolCallUpdate):
            return None
        state = self.by_id.get(update.tool_call_id)
        if state is None:
            state = self.by_id[update.tool_call_id] = ToolCallState(update.tool_call_id)
        state.apply(update)
        return state

    def all(self) -> list[ToolCallState]:
        return list(self.by_id.values())


@dataclass
class PermissionDecision:
    """How one permission request of the turn was answered."""

    tool_call_id: str | None
    title: str | None
    outcome: Literal["selected", "cancelled"]
    option_id: str | None
    kind: str | None
    decided_by: str  # "callback", "policy:<name>", "reply", "cancel", "no-answer"


@dataclass
class SendResult:
    """The outcome of one prompt turn.

    `text` is the agent's answer (its `agent_message_chunk` text, concatenated); `updates`
    every typed update of the turn in order (`parts` is the same list); `usage` the turn's
    token use when the agent reported it; `cost` the session's cumulative cost as of the
    turn's last `usage_update` (ACP reports cost per session, not per turn)."""

    session_id: str
    stop_reason: str
    text: str = ""
    thought: str = ""
    updates: list[Update] = field(default_factory=list)
    tool_calls: list[ToolCallState] = field(default_factory=list)
    plan: list[PlanEntry] | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    context: UsageUpdate | None = None
    message_id: str | None = None
    permissions: list[PermissionDecision] = field(default_factory=list)
    raw: JsonObj = field(default_factory=dict)

    @property
    def parts(self) -> list[Update]:
        return self.updates

    @property
    def tokens(self) -> Usage | None:
        return self.usage

    @property
    def ok(self) -> bool:
        return self.stop_reason == "end_turn"

    @property
    def cancelled(self) -> bool:
        return self.stop_reason == "cancelled"


class TurnAccumulator:
    """Builds a `SendResult` from a turn's updates as they arrive."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.text: list[str] = []
        self.thought: list[str] = []
        self.updates: list[Update] = []
        self.tools = ToolCalls()
        self.plan: list[PlanEntry] | None = None
        self.cost: Cost | None = None
        self.context: UsageUpdate | None = None
        self.message_id: str | None = None
        self.permissions: list[PermissionDecision] = []

    def add(self, update: Update) -> None:
        self.updates.append(update)
        if isinstance(update, AgentMessageChunk):
            self.text.append(update.text)
            if update.message_id:
                self.message_id = update.message_id
        elif isinstance(update, AgentThoughtChunk):
            self.thought.append(update.text)
        elif isinstance(update, Plan):
            self.plan = list(update.entries)
        elif isinstance(update, UsageUpdate):
            self.context = update
            if update.cost is not None:
                self.cost = update.cost
        else:
            self.tools.apply(update)

    def result(self, raw: JsonObj | None) -> SendResult:
        raw = raw or {}
        usage = None
        found = raw.get("usage")
        if not isinstance(found, dict):
            # The daemon keeps the unstable `usage` out of the root unless a client opts in;
            # `_meta.bridge.usage` always has it (spec/bridge-extensions.md).
            meta = raw.get("_meta")
            bridge = meta.get("bridge") if isinstance(meta, dict) else None
            found = bridge.get("usage") if isinstance(bridge, dict) else None
        if isinstance(found, dict):
            with contextlib.suppress(ValidationError):  # a malformed usage is not worth failing the turn
                usage = Usage.model_validate(found)
        return SendResult(
            session_id=self.session_id,
            stop_reason=str(raw.get("stopReason", "")),
            text="".join(self.text),
            thought="".join(self.thought),
            updates=list(self.updates),
            tool_calls=self.tools.all(),
            plan=self.plan,
            usage=usage,
            cost=self.cost,
            context=self.context,
            message_id=self.message_id,
            permissions=list(self.permissions),
            raw=raw,
        )


@dataclass
class ShellResult:
    stdout: str
    stderr: str
    exit_code: int
    truncated: bool = False  # a stream was over 1 MiB: only its last 1 MiB is here


# -- the daemon's records -----------------------------------------------------------------------


class SessionInfo(AcpModel):
    """`_bridge/session/info`. `status`: idle, busy, error (live in the daemon) or closed."""

    session_id: str
    agent: str
    cwd: str
    status: str
    created_at: str
    updated_at: str
    title: str | None = None
    parent_id: str | None = None
    agent_session_id: str | None = None
    additional_directories: list[str] | None = None
    archived: bool = False
    warning: str | None = None
    # Live sessions: `{name, source, transport, status, error?, tools?}` per MCP server.
    mcp_servers: list[JsonObj] | None = None

    @property
    def id(self) -> str:
        return self.session_id


class SessionSummary(AcpModel):
    """One entry of `session/list` (with the bridge's `_meta.bridge` details lifted up)."""

    session_id: str
    cwd: str
    title: str | None = None
    updated_at: str | None = None
    additional_directories: list[str] | None = None
    agent: str | None = None
    status: str | None = None
    archived: bool = False
    created_at: str | None = None
    parent_id: str | None = None

    @property
    def id(self) -> str:
        return self.session_id

    @property
    def running(self) -> bool:
        """Live in the daemon that answered (it has an agent process)."""
        return self.status in ("idle", "busy")

    @classmethod
    def from_wire(cls, raw: JsonObj) -> SessionSummary:
        meta = raw.get("_meta")
        bridge = meta.get("bridge") if isinstance(meta, dict) else None
        lifted = ("agent", "status", "archived", "createdAt", "parentId")
        extra = {k: v for k, v in bridge.items() if k in lifted} if isinstance(bridge, dict) else {}
        merged = {**extra, **raw}
        return cls.model_validate(merged)


class Tokens(AcpModel):
    input: int = 0
    output: int = 0
    thought: int = 0  # the reasoning share of `output`, where the agent reports it
    cached_read: int = 0
    cached_write: int = 0
    total: int = 0


class ProcessStats(AcpModel):
    pid: int
    rss_bytes: int
    cpu_seconds: float


class Metrics(AcpModel):
    """`_bridge/session/metrics`: the session's counters over its whole life (the daemon keeps
    them in its catalog). `total_cost` is the cost with its currency; `cost` the USD amount."""

    turns: int = 0
    messages: int = 0
    tool_calls: int = 0
    tool_usage: dict[str, int] = Field(default_factory=dict)
    tokens: Tokens = Field(default_factory=Tokens)
    cost_usd: float | None = None
    total_cost: Cost | None = Field(default=None, alias="cost")
    process: ProcessStats | None = None

    @property
    def cost(self) -> float:
        return self.cost_usd or 0.0


class Event(AcpModel):
    """One entry of the session's durable log. `direction` (also `sender`): client, agent or
    bridge. `message` is the JSON-RPC message (or bridge record) exactly as logged."""

    seq: int
    at: str
    direction: str
    message: JsonObj

    @property
    def sender(self) -> str:
        return self.direction

    @property
    def id(self) -> int:
        return self.seq

    @property
    def created_at(self) -> str:
        return self.at

    @property
    def method(self) -> str | None:
        m = self.message.get("method")
        return m if isinstance(m, str) else None

    @property
    def update(self) -> Update | None:
        """The typed update when this event is a `session/update` notification."""
        params = self.message.get("params")
        if (
            self.method == "session/update"
            and isinstance(params, dict)
            and isinstance(params.get("update"), dict)
        ):
            return parse_update(params["update"], session_id=str(params.get("sessionId", "")))
        return None

    @property
    def prompt(self) -> list[ContentBlockDict] | None:
        """The prompt blocks when this event is the client's `session/prompt`."""
        params = self.message.get("params")
        if (
            self.method == "session/prompt"
            and isinstance(params, dict)
            and isinstance(params.get("prompt"), list)
        ):
            return list(params["prompt"])
        return None

    @property
    def stop_reason(self) -> str | None:
        result = self.message.get("result")
        if isinstance(result, dict) and isinstance(result.get("stopReason"), str):
            return str(result["stopReason"])
        return None


ContentBlockDict = JsonObj


class EventPage(AcpModel):
    """A page of the log; pass `next` as `after` for the following page (None on the last)."""

    events: list[Event] = Field(default_factory=list)
    next: int | None = None
    warning: str | None = None

    @property
    def items(self) -> list[Event]:
        return self.events


class AgentInfo(AcpModel):
    """An entry of `_bridge/agents`."""

    name: str
    protocol: str
    command: str
    installed: bool
    version: str | None = None


@dataclass
class Message:
    """One message of the conversation, rebuilt from the log: a user prompt or the agent's
    answer to it. `parts` are the typed updates (chunks, tool calls, plans...) it was made of."""

    role: Literal["user", "assistant"]
    text: str
    parts: list[Update] = field(default_factory=list)
    prompt: list[JsonObj] = field(default_factory=list)
    tool_calls: list[ToolCallState] = field(default_factory=list)
    stop_reason: str | None = None
    message_id: str | None = None
    first_seq: int = 0


@dataclass
class Artifact:
    """A resource the agent produced in the session (a `resource_link` or an embedded
    `resource` in a message or tool call). `key` is its name, else its URI."""

    key: str
    uri: str
    mime_type: str | None = None
    text: str | None = None
    blob: str | None = None
    seq: int = 0


__all__ = [
    "AgentInfo",
    "Artifact",
    "ContentBlock",
    "Event",
    "EventPage",
    "Message",
    "Metrics",
    "PermissionDecision",
    "SendResult",
    "SessionInfo",
    "SessionSummary",
    "ShellResult",
    "ToolCallState",
    "Usage",
]
