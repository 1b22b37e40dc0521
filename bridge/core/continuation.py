"""Continuing a session its agent lost, in a new agent session seeded with the bridge's log.

Agents lose sessions (a restart without persistence, a deleted native file, Gemini's
same-minute load). The bridge still has the whole conversation in its log: when the agent
can neither load nor resume, a client that opted in (`_meta.bridge.continue`) gets a new
agent session under the same bridge session id, and the agent gets a bounded transcript of
the conversation with the next prompt.

Why prepended to the next prompt rather than a hidden turn of its own: a hidden turn would
cost a model call the user never asked for, could not be watched or cancelled, and its
answer would have to be hidden; prepended, the agent reads the history once, as context
of the question it answers. Why a `text` block: every agent takes text, while a `resource`
block needs the agent's `embeddedContext` capability and some agents flatten it anyway.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from bridge.errors import (
    AUTH_REQUIRED,
    RESOURCE_NOT_FOUND,
    AgentExitedError,
    AgentStartError,
    RpcError,
)
from bridge.store.base import Store
from bridge.wire.types import JsonObj

if TYPE_CHECKING:
    from bridge.core.adapter import SessionSetup
    from bridge.core.session import Session

# The manager's logger: a continuation reads as the session manager's record, as before.
log = logging.getLogger("bridge.core.manager")

# The transcript handed to the new agent session: at most this many characters, the most
# recent turns kept whole, the older ones left out with a one-line note.
TRANSCRIPT_LIMIT = 16_000
# One message longer than this keeps its start and end (a pasted log, a long answer).
MESSAGE_LIMIT = 4_000
PAGE = 1000
LOST_REASON = "agent_lost_session"

# How agents word "I do not have that session" when they do not use ACP's -32002.
_LOST_WORDS = re.compile(
    r"(session|thread|conversation|rollout|chat)\b.{0,80}\b(not found|no such|does not exist|doesn't exist|"
    r"unknown|missing|expired)|\b(no such|unknown|missing|no) (session|thread|conversation|rollout)",
    re.IGNORECASE | re.DOTALL,
)


def agent_lost_session(exc: BaseException) -> bool:
    """Whether the agent's answer to session/load or session/resume says it does not know the
    session (as opposed to the agent failing: it exited, never started, wants a login)."""
    if not isinstance(exc, RpcError) or isinstance(exc, AgentExitedError | AgentStartError):
        return False
    if exc.code == AUTH_REQUIRED:
        return False
    if exc.code == RESOURCE_NOT_FOUND:
        return True
    detail = exc.data.get("details") if isinstance(exc.data, dict) else None
    return bool(_LOST_WORDS.search(exc.message) or (isinstance(detail, str) and _LOST_WORDS.search(detail)))


def wants_continue(meta: JsonObj | None) -> bool:
    bridge_meta = meta.get("bridge") if isinstance(meta, dict) else None
    value = bridge_meta.get("continue") if isinstance(bridge_meta, dict) else None
    if value is not None and not isinstance(value, bool):
        raise RpcError(-32602, "_meta.bridge.continue must be a boolean", {"field": "_meta.bridge.continue"})
    return value is True


def lost_error(
    session_id: str, agent: str, agent_session_id: str | None, cause: RpcError, mode: str
) -> RpcError:
    """What a client that did not opt in gets: which session, which agent, how to go on."""
    return RpcError(
        RESOURCE_NOT_FOUND,
        f"agent {agent!r} no longer has the agent session {agent_session_id} behind bridge session "
        f"{session_id} (it answered session/{mode}: {cause.message}). The bridge still has the "
        f"conversation: send session/{mode} again with _meta.bridge.continue = true to continue it in "
        f"a new agent session seeded with the transcript (`agent-bridge prompt --session {session_id}` "
        "does so unless given --no-continue), or start a new session",
        {
            "sessionId": session_id,
            "agent": agent,
            "agentSessionId": agent_session_id,
            "reason": LOST_REASON,
            "continueWith": {"_meta": {"bridge": {"continue": True}}},
            "agentError": cause.to_dict(),
        },
    )


@dataclass
class _Turn:
    user: str
    parts: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"User: {_clip(self.user)}"]
        lines += self.parts
        return "\n".join(lines)


@dataclass
class Transcript:
    text: str  # the rendered conversation ("" when there was none)
    turns: int  # turns in the log
    kept: int  # turns in `text`

    @property
    def omitted(self) -> int:
        return self.turns - self.kept

    def block(self, session_id: str) -> JsonObj:
        """The content block prepended to the first prompt of the new agent session."""
        text = (
            "[agent-bridge] This conversation began in an earlier agent session that is no longer "
            f"available. Here is what was said there (bridge session {session_id}), as context for "
            "the message that follows; do not answer it, and do not redo its tool calls.\n"
            f"<prior_conversation>\n{self.text}\n</prior_conversation>"
        )
        return {"type": "text", "text": text, "_meta": {"bridge": {"priorConversation": True}}}


async def build_transcript(store: Store, session_id: str, limit: int = TRANSCRIPT_LIMIT) -> Transcript:
    """The conversation in the session's log: the user's prompts, the agent's messages and the
    titles of its tool calls, turn by turn, the most recent turns kept within `limit`."""
    await store.flush()
    turns: list[_Turn] = []
    current: _Turn | None = None
    after = 0
    while True:
        page = await store.events(session_id, after, PAGE)
        for ev in page:
            current = _absorb(turns, current, ev.direction, ev.message)
        if len(page) < PAGE:
            break
        after = page[-1].seq
    rendered = [t.render() for t in turns]
    kept: list[str] = []
    size = 0
    for text in reversed(rendered):
        if kept and size + len(text) + 2 > limit:
            break
        kept.append(text)
        size += len(text) + 2
    kept.reverse()
    if kept and len(kept[0]) > limit:
        kept[0] = kept[0][-limit:]
    omitted = len(rendered) - len(kept)
    head = [f"[{omitted} earlier turn{'s' if omitted != 1 else ''} left out]"] if omitted else []
    return Transcript("\n\n".join(head + kept), len(rendered), len(kept))


def _absorb(turns: list[_Turn], current: _Turn | None, direction: str, raw: bytes) -> _Turn | None:
    """One log record: a prompt opens a turn; the agent's updates count only inside one (an
    agent's replay on session/load, outside any turn, would repeat earlier turns)."""
    try:
        msg: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return current
    if not isinstance(msg, dict):
        return current
    method, params = msg.get("method"), msg.get("params")
    if direction == "client" and method == "session/prompt" and isinstance(params, dict):
        turn = _Turn(_text_of(params.get("prompt")))
        turns.append(turn)
        return turn
    if current is None:
        return None
    if "error" in msg or (isinstance(msg.get("result"), dict) and "stopReason" in msg["result"]):
        return None
    if direction == "agent" and method == "session/update" and isinstance(params, dict):
        update = params.get("update")
        if isinstance(update, dict):
            _add_update(current, update)
    return current


def _add_update(turn: _Turn, update: JsonObj) -> None:
    kind = update.get("sessionUpdate")
    meta = update.get("_meta")
    if isinstance(meta, dict) and isinstance(meta.get("bridge"), dict) and "notice" in meta["bridge"]:
        return  # the bridge's own words, not the agent's
    if kind == "agent_message_chunk":
        content = update.get("content")
        text = content.get("text") if isinstance(content, dict) else None
        if isinstance(text, str) and text:
            if turn.parts and turn.parts[-1].startswith("Assistant: "):
                turn.parts[-1] += text
            else:
                turn.parts.append("Assistant: " + text)
    elif kind == "tool_call":
        title = update.get("title") or update.get("kind") or "tool"
        turn.parts.append(f"  (tool call: {str(title)[:200]})")
    if turn.parts and len(turn.parts[-1]) > MESSAGE_LIMIT + 200:
        # Bounded while reading too: a turn of megabytes must not sit whole in memory.
        turn.parts[-1] = _clip(turn.parts[-1])


def _text_of(blocks: Any) -> str:
    out: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            meta = block.get("_meta")
            bridge_meta = meta.get("bridge") if isinstance(meta, dict) else None
            if isinstance(bridge_meta, dict) and bridge_meta.get("priorConversation"):
                continue
            out.append(block["text"])
        elif block.get("type") in ("resource_link", "resource"):
            inner = block.get("resource")
            res: JsonObj = inner if isinstance(inner, dict) else block
            out.append(f"[{block['type']}: {res.get('uri') or res.get('name') or '?'}]")
        elif isinstance(block.get("type"), str):
            out.append(f"[{block['type']}]")
    return "\n".join(out)


def _clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} […{len(text) - 2 * half} characters left out…] {text[-half:]}"


def continued(
    session: Session,
    transcript: Transcript,
    previous: str | None,
    setup: SessionSetup,
    cause: RpcError,
    *,
    restart: bool,
) -> None:
    """Record that `session` continues in the new agent session `setup` started: the
    transcript rides on the next prompt, the session's log and clients are told."""
    rec = session.record
    session.metrics.new_count()  # a new agent session counts its cost from zero
    session.seed = [transcript.block(rec.id)] if transcript.turns else None
    session.continued = {
        "previousAgentSessionId": previous,
        "agentSessionId": setup.agent_session_id,
        "agentError": cause.message,
        "turns": transcript.turns,
        "omittedTurns": transcript.omitted,
        "transcriptChars": len(transcript.text),
    }
    session.record_event({"type": "continued", **session.continued})
    if restart:
        announce(session)  # mid-use: the client is there; a reopen announces after its replay
    # Info, not a warning: the client is told (the notice), this is the daemon's own record.
    log.info(
        "session %s: agent %s no longer had session %s; continued in new agent session %s",
        rec.id,
        session.spec.name,
        previous,
        setup.agent_session_id,
    )


def announce(session: Session) -> None:
    """Tell the session's clients (and its log) that it continues in a new agent session: an
    `agent_message_chunk` marked `_meta.bridge.notice`, so even a client that knows nothing of
    the bridge shows it. Once per continuation."""
    info = session.continued
    if info is None or info.get("announced"):
        return
    info["announced"] = True
    turns, omitted = info["turns"], info["omittedTurns"]
    carried = (
        f"the next prompt carries the bridge's transcript of the {turns} earlier turn{'s' if turns != 1 else ''}"
        + (f" ({omitted} of the oldest left out)" if omitted else "")
        if turns
        else "there was no earlier turn to carry over"
    )
    text = (
        f"[agent-bridge] Agent {session.spec.name!r} no longer had this conversation (its session "
        f"{info['previousAgentSessionId']}: {info['agentError']}). It continues in a new agent session; "
        f"{carried}.\n"
    )
    notice = {k: v for k, v in info.items() if k != "announced"}
    update = {
        "sessionUpdate": "agent_message_chunk",
        "content": {"type": "text", "text": text},
        "_meta": {"bridge": {"notice": {"type": "continued", **notice}}},
    }
    # Not through `emit`: a notice is not the agent's message (no metrics, no transcript).
    session.notify_client("session/update", {"sessionId": session.session_id, "update": update})


def with_continued(result: JsonObj, session: Session) -> JsonObj:
    """A load/resume answer with `_meta.bridge.continued` added (next to the agent's `_meta`)."""
    info = session.continued or {}
    meta: JsonObj = dict(result.get("_meta") or {}) if isinstance(result.get("_meta"), dict) else {}
    bridge_meta: JsonObj = dict(meta.get("bridge") or {}) if isinstance(meta.get("bridge"), dict) else {}
    bridge_meta["continued"] = {k: v for k, v in info.items() if k != "announced"}
    return {**result, "_meta": {**meta, "bridge": bridge_meta}}
