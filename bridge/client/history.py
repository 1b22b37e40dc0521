"""Views rebuilt from a session's durable log (`_bridge/session/events`): the conversation
as messages, the latest plan (todos), the resources the agent produced (artifacts)."""

from __future__ import annotations

from collections.abc import AsyncIterable

from bridge.client.results import Artifact, Event, Message, ToolCalls
from bridge.client.updates import (
    AgentMessageChunk,
    AgentThoughtChunk,
    ContentBlock,
    EmbeddedResource,
    Plan,
    PlanEntry,
    ResourceLink,
    ToolCall,
    ToolCallUpdate,
    ToolContent,
    Update,
)

# What one `_bridge/session/read_file` call returns at most.
READ_LIMIT = 4 * 1024 * 1024


async def messages(events: AsyncIterable[Event]) -> list[Message]:
    """User prompts and the agent's answers, in order. A turn that never ended (the daemon
    or agent died) is kept with `stop_reason=None`."""
    out: list[Message] = []
    answer: Message | None = None
    tools = ToolCalls()
    text: list[str] = []

    def finish(stop: str | None) -> None:
        nonlocal answer
        if answer is not None:
            answer.text = "".join(text)
            answer.tool_calls = tools.all()
            answer.stop_reason = stop
            out.append(answer)
            answer = None

    async for ev in events:
        prompt = ev.prompt if ev.direction == "client" else None
        if prompt is not None:
            finish(None)
            user_text = "".join(str(b.get("text", "")) for b in prompt if b.get("type") == "text")
            out.append(Message("user", user_text, prompt=prompt, first_seq=ev.seq))
            answer, tools, text = Message("assistant", "", first_seq=ev.seq), ToolCalls(), []
            continue
        update = ev.update if ev.direction == "agent" else None
        if update is not None and answer is not None:
            answer.parts.append(update)
            if isinstance(update, AgentMessageChunk):
                text.append(update.text)
                answer.message_id = update.message_id or answer.message_id
            tools.apply(update)
            continue
        if answer is not None and ev.stop_reason is not None:
            finish(ev.stop_reason)
        elif answer is not None and "error" in ev.message and ev.direction == "bridge":
            finish("error")
    if answer is not None and answer.parts:
        finish(None)
    return out


async def latest_plan(events: AsyncIterable[Event]) -> list[PlanEntry]:
    plan: list[PlanEntry] = []
    async for ev in events:
        update = ev.update if ev.direction == "agent" else None
        if isinstance(update, Plan):
            plan = list(update.entries)
    return plan


def _blocks(update: Update) -> list[ContentBlock]:
    if isinstance(update, AgentMessageChunk | AgentThoughtChunk):
        return [update.content]
    if isinstance(update, ToolCall | ToolCallUpdate):
        return [c.content for c in update.content or [] if isinstance(c, ToolContent)]
    return []


async def artifacts(events: AsyncIterable[Event]) -> list[Artifact]:
    """Resources the agent produced, later ones replacing earlier ones with the same key."""
    found: dict[str, Artifact] = {}
    async for ev in events:
        update = ev.update if ev.direction == "agent" else None
        if update is None:
            continue
        for block in _blocks(update):
            if isinstance(block, ResourceLink):
                key = block.name or block.uri
                found[key] = Artifact(key, block.uri, block.mime_type, seq=ev.seq)
            elif isinstance(block, EmbeddedResource):
                r = block.resource
                key = r.uri.rsplit("/", 1)[-1] or r.uri
                found[key] = Artifact(key, r.uri, r.mime_type, text=r.text, blob=r.blob, seq=ev.seq)
    return list(found.values())


def file_uri_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    if uri.startswith("/"):
        return uri
    return None
