"""Typed core events: what an adapter that translates a native protocol (Claude Code
stream-json, Codex app-server) tells the core about a session.

The pure translators (adapters/*/translate.py) produce these; `bridge/core/to_acp.py` turns
each into its ACP v1 `session/update` payload, in that one place, and `SessionHost.emit_event`
publishes it. The ACP passthrough builds none: it forwards the agent's own lines as they are.

Only what the adapters emit is here. Payloads that are ACP content already (content blocks,
tool-call content, locations, config options, raw input/output) stay JSON: the translators
build them once, in ACP's shape, and the core passes them on without looking inside.

Frozen dataclasses with slots rather than pydantic models: an event is built for every
chunk an agent streams. Measured (CPython 3.11, this machine): building a message chunk
costs ~0.5 µs as a frozen slotted dataclass, ~1.4 µs as a frozen pydantic model (2.7 µs
through `model_construct`), ~0.2 µs as the bare dict it replaced; the fields come from the
bridge's own translators, so pydantic's validation would check nothing the types do not.
End to end, a streamed text delta through translator + `to_acp.update` went from 0.52 to
1.12 µs (Claude) and 0.35 to 0.95 µs (Codex), against the ~13 µs the daemon spends per
relayed message (bench/results); the passthrough's hot path builds no event and is unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from bridge.mcp import status as mcp_status
from bridge.wire.types import JsonObj


class Unset(enum.Enum):
    """A field left out of the update (ACP: unchanged), as opposed to one sent as `null`."""

    UNSET = 0


UNSET = Unset.UNSET

ToolKind = Literal[
    "read", "edit", "delete", "move", "search", "execute", "think", "fetch", "switch_mode", "other"
]
ToolStatus = Literal["pending", "in_progress", "completed", "failed"]
PlanStatus = Literal["pending", "in_progress", "completed"]


@dataclass(frozen=True, slots=True)
class MessageChunk:
    """A piece of a message: the agent's answer, its reasoning, or (history replay) the user's."""

    role: Literal["agent", "thought", "user"]
    content: JsonObj  # an ACP ContentBlock
    message_id: str | None = None
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """A new tool call (ACP `tool_call`)."""

    tool_call_id: str
    title: str
    kind: str = "other"  # a ToolKind
    status: str = "pending"  # a ToolStatus
    content: list[JsonObj] | None = None
    locations: list[JsonObj] | None = None
    raw_input: Any = UNSET
    raw_output: Any = UNSET
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class ToolCallUpdate:
    """What changed in a tool call (ACP `tool_call_update`): None / UNSET fields are left as
    they were (`content=[]` clears the content)."""

    tool_call_id: str
    title: str | None = None
    kind: str | None = None
    status: str | None = None
    content: list[JsonObj] | None = None
    locations: list[JsonObj] | None = None
    raw_input: Any = UNSET
    raw_output: Any = UNSET
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class PlanEntry:
    content: str
    status: str = "pending"  # a PlanStatus
    priority: str = "medium"


@dataclass(frozen=True, slots=True)
class Plan:
    """The agent's whole plan (each one replaces the last)."""

    entries: tuple[PlanEntry, ...]
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class Cost:
    amount: float
    currency: str


@dataclass(frozen=True, slots=True)
class Usage:
    """How full the context window is (tokens), and what the session cost so far."""

    used: int
    size: int
    cost: Cost | None = None
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class ModeChange:
    mode_id: str
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class ConfigOptionsChange:
    """The session's complete list of config options (bridge/core/config_options.py builds them)."""

    options: list[JsonObj]
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The session's title (None clears it), and/or bridge metadata such as the MCP servers'
    state (bridge/mcp/status.py)."""

    title: str | Unset | None = UNSET
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    description: str
    hint: str | None = None  # what to type after the command, if it takes input


@dataclass(frozen=True, slots=True)
class AvailableCommands:
    commands: tuple[Command, ...]
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class Compaction:
    """ACP's unstable `compaction_update`, for clients that advertise `session.compaction`."""

    compaction_id: str
    status: str  # in_progress | completed | failed
    summary: list[JsonObj] | None = None
    error: str | None = None
    meta: JsonObj | None = None


@dataclass(frozen=True, slots=True)
class PermissionOption:
    option_id: str
    name: str
    kind: str  # allow_once | allow_always | reject_once | reject_always


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """What the agent asks the user before a tool runs (ACP `session/request_permission`,
    sent with `SessionHost.request_client`). A request, not an update: not a `CoreEvent`."""

    tool_call: ToolCallUpdate
    options: tuple[PermissionOption, ...]
    meta: JsonObj | None = None


CoreEvent = (
    MessageChunk
    | ToolCallStart
    | ToolCallUpdate
    | Plan
    | Usage
    | ModeChange
    | ConfigOptionsChange
    | SessionInfo
    | AvailableCommands
    | Compaction
)
E = TypeVar("E", bound=CoreEvent)


def tool_call_id(event: CoreEvent) -> str | None:
    """The tool call an event is about, if any."""
    return event.tool_call_id if isinstance(event, ToolCallStart | ToolCallUpdate) else None


def with_meta(event: E, **fields: Any) -> E:
    """`event` with `fields` set in its `_meta` (a field given replaces the one there)."""
    return replace(event, meta={**(event.meta or {}), **fields})


def nested(event: E, parent: str) -> E:
    """`event` linked to the tool call its subagent runs under (spec/bridge-extensions.md,
    "Subagents"): `_meta.bridge.parentToolCallId`, other bridge metadata kept."""
    bridge = (event.meta or {}).get("bridge")
    return with_meta(
        event, bridge={**(bridge if isinstance(bridge, dict) else {}), "parentToolCallId": parent}
    )


def mcp_report(servers: list[JsonObj]) -> SessionInfo:
    """The MCP servers' state as a session-info event (bridge/mcp/status.py, `report`)."""
    return SessionInfo(meta=mcp_status.report(servers)["_meta"])
