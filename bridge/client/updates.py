"""Typed `session/update` payloads (pydantic), as the client hands them to programs.

Attribute names are snake_case; the wire names (camelCase) are the aliases. Every model
keeps unknown fields (`extra="allow"`) and the exact dict it came from (`.raw`), so nothing
an agent sends is lost. An update kind this module does not know, or a known kind that does
not validate, becomes an `UnknownUpdate` carrying the raw dict instead of an error: ACP v1
unions are closed, but agents run ahead of the schema and a client must not fail a session
over one notification.

Why not the official `acp.schema` models (the daemon validates params with them,
`bridge/acp/acp_params.py`): a client would import them before it can show the first
streamed chunk, and they cost more than the client itself. Measured (`python -m
bench.schema_models`, and a fresh interpreter importing `bridge.client` and the prompt CLI:
~0.25 s, then `acp.schema` ~0.36 s more, on this shared 2-core machine), that more than
doubles `agent-bridge prompt`'s own start before the first word. Per update they are faster
(1.8-3 µs against ~5 µs here, idle machine), which a stream does not make up for. And their unions are closed: an agent's newer
content block or tool-call content fails the whole update, where this module keeps it
(`UnknownContent`, `UnknownToolContent`) with the rest of the update typed. Names and fields
here follow the schema's (snake_case of its camelCase), so the shapes are the same.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from bridge.wire.types import JsonObj


class AcpModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    meta: JsonObj | None = Field(default=None, alias="_meta")

    def to_wire(self) -> JsonObj:
        return self.model_dump(by_alias=True, exclude_none=True)


# -- content blocks ---------------------------------------------------------------------------


class TextContent(AcpModel):
    type: Literal["text"] = "text"
    text: str
    annotations: JsonObj | None = None


class ImageContent(AcpModel):
    type: Literal["image"] = "image"
    data: str
    mime_type: str
    uri: str | None = None
    annotations: JsonObj | None = None


class AudioContent(AcpModel):
    type: Literal["audio"] = "audio"
    data: str
    mime_type: str
    annotations: JsonObj | None = None


class ResourceLink(AcpModel):
    type: Literal["resource_link"] = "resource_link"
    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None
    annotations: JsonObj | None = None


class ResourceContents(AcpModel):
    """Text (`text`) or binary (`blob`, base64) contents of an embedded resource."""

    uri: str
    mime_type: str | None = None
    text: str | None = None
    blob: str | None = None


class EmbeddedResource(AcpModel):
    type: Literal["resource"] = "resource"
    resource: ResourceContents
    annotations: JsonObj | None = None


class UnknownContent(AcpModel):
    """A content block type this client does not know; its fields are kept as extras."""

    type: str


def _content_tag(v: Any) -> str:
    t = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    return t if t in ("text", "image", "audio", "resource_link", "resource") else "unknown"


ContentBlock = Annotated[
    Annotated[TextContent, Tag("text")]
    | Annotated[ImageContent, Tag("image")]
    | Annotated[AudioContent, Tag("audio")]
    | Annotated[ResourceLink, Tag("resource_link")]
    | Annotated[EmbeddedResource, Tag("resource")]
    | Annotated[UnknownContent, Tag("unknown")],
    Discriminator(_content_tag),
]


def content_text(block: Any) -> str:
    return block.text if isinstance(block, TextContent) else ""


# -- tool calls -------------------------------------------------------------------------------


class ToolCallLocation(AcpModel):
    path: str
    line: int | None = None


class ToolContent(AcpModel):
    """`{"type": "content", "content": ContentBlock}`"""

    type: Literal["content"] = "content"
    content: ContentBlock


class Diff(AcpModel):
    type: Literal["diff"] = "diff"
    path: str
    old_text: str | None = None
    new_text: str


class TerminalRef(AcpModel):
    type: Literal["terminal"] = "terminal"
    terminal_id: str


class UnknownToolContent(AcpModel):
    type: str


def _tool_content_tag(v: Any) -> str:
    t = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    return t if t in ("content", "diff", "terminal") else "unknown"


ToolCallContent = Annotated[
    Annotated[ToolContent, Tag("content")]
    | Annotated[Diff, Tag("diff")]
    | Annotated[TerminalRef, Tag("terminal")]
    | Annotated[UnknownToolContent, Tag("unknown")],
    Discriminator(_tool_content_tag),
]


# -- config options and modes -----------------------------------------------------------------


class ConfigChoice(AcpModel):
    value: str
    name: str
    description: str | None = None


class ConfigChoiceGroup(AcpModel):
    group: str
    name: str
    options: list[ConfigChoice] = Field(default_factory=list)


class ConfigOption(AcpModel):
    """A session config option: `type` "select" (choices in `options`, possibly grouped) or
    "boolean". `category` is "model", "mode", "thought_level", "model_config" or custom."""

    id: str
    name: str
    description: str | None = None
    category: str | None = None
    type: str | None = None
    current_value: str | bool | None = None
    options: list[ConfigChoice | ConfigChoiceGroup] = Field(default_factory=list)

    def choices(self) -> list[ConfigChoice]:
        """Every selectable value, groups flattened, in the agent's order."""
        out: list[ConfigChoice] = []
        for item in self.options:
            if isinstance(item, ConfigChoiceGroup):
                out.extend(item.options)
            else:
                out.append(item)
        return out


class Mode(AcpModel):
    id: str
    name: str
    description: str | None = None


class Modes(AcpModel):
    """The legacy `modes` state (`session/set_mode`); config options supersede it."""

    current_mode_id: str
    available_modes: list[Mode] = Field(default_factory=list)


# -- session updates ----------------------------------------------------------------------------


class Update(AcpModel):
    """Base of every typed update. `raw` is the update exactly as received; `seq` is the log
    position when the update was replayed from the bridge's log (load/attach), else None."""

    session_update: str
    _raw: JsonObj = PrivateAttr(default_factory=dict)
    _session_id: str = PrivateAttr(default="")
    _seq: int | None = PrivateAttr(default=None)
    _replayed: bool = PrivateAttr(default=False)

    @property
    def raw(self) -> JsonObj:
        return self._raw

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def seq(self) -> int | None:
        return self._seq

    @property
    def replayed(self) -> bool:
        return self._replayed

    @property
    def parent_tool_call_id(self) -> str | None:
        """The tool call (a subagent's Agent/Task call) this update's work runs under, from
        `_meta.bridge.parentToolCallId` (spec/bridge-extensions.md); None for the main agent."""
        bridge = (
            self._raw.get("_meta", {}).get("bridge") if isinstance(self._raw.get("_meta"), dict) else None
        )
        parent = bridge.get("parentToolCallId") if isinstance(bridge, dict) else None
        return parent if isinstance(parent, str) else None


class _Chunk(Update):
    content: ContentBlock
    message_id: str | None = None

    @property
    def text(self) -> str:
        return content_text(self.content)


class UserMessageChunk(_Chunk):
    session_update: Literal["user_message_chunk"] = "user_message_chunk"


class AgentMessageChunk(_Chunk):
    session_update: Literal["agent_message_chunk"] = "agent_message_chunk"


class AgentThoughtChunk(_Chunk):
    session_update: Literal["agent_thought_chunk"] = "agent_thought_chunk"


class ToolCall(Update):
    """A new tool call. `kind`: read, edit, delete, move, search, execute, think, fetch,
    switch_mode, other; `status`: pending, in_progress, completed, failed."""

    session_update: Literal["tool_call"] = "tool_call"
    tool_call_id: str
    title: str
    kind: str = "other"
    status: str = "pending"
    content: list[ToolCallContent] = Field(default_factory=list)
    locations: list[ToolCallLocation] = Field(default_factory=list)
    raw_input: Any = None
    raw_output: Any = None
    name: str | None = None


class ToolCallUpdate(Update):
    """Changed fields of a tool call (only `tool_call_id` is always present)."""

    session_update: Literal["tool_call_update"] = "tool_call_update"
    tool_call_id: str
    title: str | None = None
    kind: str | None = None
    status: str | None = None
    content: list[ToolCallContent] | None = None
    locations: list[ToolCallLocation] | None = None
    raw_input: Any = None
    raw_output: Any = None


class PlanEntry(AcpModel):
    content: str
    priority: str = "medium"
    status: str = "pending"


class Plan(Update):
    """The agent's complete plan (each update replaces the previous one)."""

    session_update: Literal["plan"] = "plan"
    entries: list[PlanEntry] = Field(default_factory=list)


class AvailableCommand(AcpModel):
    name: str
    description: str = ""
    input: JsonObj | None = None


class AvailableCommandsUpdate(Update):
    session_update: Literal["available_commands_update"] = "available_commands_update"
    available_commands: list[AvailableCommand] = Field(default_factory=list)


class CurrentModeUpdate(Update):
    session_update: Literal["current_mode_update"] = "current_mode_update"
    current_mode_id: str


class ConfigOptionUpdate(Update):
    session_update: Literal["config_option_update"] = "config_option_update"
    config_options: list[ConfigOption] = Field(default_factory=list)


class SessionInfoUpdate(Update):
    session_update: Literal["session_info_update"] = "session_info_update"
    title: str | None = None
    updated_at: str | None = None


class Cost(AcpModel):
    amount: float
    currency: str


class UsageUpdate(Update):
    """Context window use (`used` of `size` tokens) and the cumulative session cost."""

    session_update: Literal["usage_update"] = "usage_update"
    used: int
    size: int
    cost: Cost | None = None


class UnknownUpdate(Update):
    """An update kind this client does not model (or one that did not validate): `raw`
    holds it untouched."""


_KINDS: dict[str, type[Update]] = {
    cls.model_fields["session_update"].default: cls
    for cls in (
        UserMessageChunk,
        AgentMessageChunk,
        AgentThoughtChunk,
        ToolCall,
        ToolCallUpdate,
        Plan,
        AvailableCommandsUpdate,
        CurrentModeUpdate,
        ConfigOptionUpdate,
        SessionInfoUpdate,
        UsageUpdate,
    )
}
_ADAPTERS: dict[type[Update], TypeAdapter[Any]] = {cls: TypeAdapter(cls) for cls in _KINDS.values()}


def parse_update(raw: JsonObj, *, session_id: str = "", meta: JsonObj | None = None) -> Update:
    """One `update` object of a `session/update` notification, typed. Never raises."""
    kind = raw.get("sessionUpdate")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    update: Update
    if cls is not None:
        try:
            update = _ADAPTERS[cls].validate_python(raw)
        except ValidationError:
            update = UnknownUpdate.model_validate({"sessionUpdate": kind})
    else:
        update = UnknownUpdate.model_validate({"sessionUpdate": kind if isinstance(kind, str) else ""})
    update._raw = raw
    update._session_id = session_id
    bridge_meta = (meta or {}).get("bridge") if isinstance(meta, dict) else None
    if isinstance(bridge_meta, dict) and bridge_meta.get("replay"):
        update._replayed = True
        seq = bridge_meta.get("seq")
        update._seq = seq if isinstance(seq, int) else None
    return update


def parse_config_options(raw: Any) -> list[ConfigOption]:
    """A `configOptions` list; entries that do not validate are skipped (ACP asks clients to
    tolerate what they do not understand)."""
    if not isinstance(raw, list):
        return []
    out: list[ConfigOption] = []
    for item in raw:
        try:
            out.append(ConfigOption.model_validate(item))
        except ValidationError:
            continue
    return out


def parse_modes(raw: Any) -> Modes | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Modes.model_validate(raw)
    except ValidationError:
        return None
