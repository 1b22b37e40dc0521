"""The streaming fast path: an agent's text-chunk `session/update` rewritten at byte level.

A turn is mostly `agent_message_chunk` lines. For a line of exactly this shape — the three
envelope members (`"jsonrpc":"2.0"`, `"method":"session/update"`, `params`) in any order,
`params` holding the agent's own session id and an update whose first member is a chunk kind,
then `content` (`{"type":"text","text":…}`, either order) and optionally a string
`messageId`, JSON whitespace anywhere — the line is forwarded as it came with only the session
id's string replaced: no `orjson.loads`, no envelope objects, no re-encoding.

Why that is the parse path's message: the patterns admit no other member, so no duplicate
key exists (`session/update`'s keys are fixed literals), every string is matched by JSON's own
grammar (valid escapes only; `\\u` escapes of surrogates go to the parse path, which decides
what they are) and the bytes are valid UTF-8 (checked), so the line is valid JSON whose value
is exactly what the parse path decodes; it then sets `params.sessionId`, as done here. Anything
else — other kinds, `_meta`, another session id, a line that does not match — goes through
the parse path unchanged. `tests/adapters/acp/test_fastpath.py` compares both on generated
lines.
"""

from __future__ import annotations

import itertools
import re
from functools import cache

import orjson

# Chunk kinds the router forwards without looking into them (not `_WATCHED`).
KINDS = ("agent_message_chunk", "agent_thought_chunk", "user_message_chunk")

_WS = rb"[ \t\n\r]*+"
# A JSON string: no raw control characters, only JSON's escapes; no surrogate escapes.
_STR = (
    rb'"(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))*+"'
)


def _member(key: bytes, value: bytes) -> bytes:
    return b'"' + key + b'"' + _WS + b":" + _WS + value


def _obj(*alternatives: bytes) -> bytes:
    return rb"\{" + _WS + b"(?:" + b"|".join(alternatives) + b")" + _WS + rb"\}"


def _sep(members: tuple[bytes, ...]) -> bytes:
    return (_WS + b"," + _WS).join(members)


_TYPE = _member(b"type", b'"text"')


def _content(i: int) -> bytes:
    # The text's string is a group of its own (`t0`…`t5`: a name appears once in a pattern).
    def text(n: int) -> bytes:
        return _member(b"text", b"(?P<t%d>" % n + _STR + b")")

    return _member(b"content", _obj(_sep((_TYPE, text(2 * i))), _sep((text(2 * i + 1), _TYPE))))


_TEXTS = tuple(f"t{n}" for n in range(6))
_MID = _member(b"messageId", _STR)
_KIND = _member(b"sessionUpdate", b'"(?P<k>' + b"|".join(k.encode() for k in KINDS) + b')"')
_UPDATE = _member(
    b"update",
    _obj(
        _sep(
            (
                _KIND,
                b"(?:"
                + b"|".join([_content(0), _sep((_content(1), _MID)), _sep((_MID, _content(2)))])
                + b")",
            )
        )
    ),
)
_TEXT_STRING = re.compile(_STR)
_SID = _member(b"sessionId", b"(?P<s>" + _STR + b")")
_JSONRPC = _member(b"jsonrpc", b'"2\\.0"')
_METHOD = _member(b"method", b'"session/update"')


@cache
def _patterns() -> list[re.Pattern[bytes]]:
    """One pattern per member order (the groups appear once each): 6 envelope orders by 2 of
    `params`. Compiled at the first session, not at import."""
    out = []
    for params in (_obj(_sep((_SID, _UPDATE))), _obj(_sep((_UPDATE, _SID)))):
        envelope = (_JSONRPC, _METHOD, _member(b"params", params))
        for order in itertools.permutations(envelope):
            out.append(re.compile(_WS + rb"\{" + _WS + _sep(order) + _WS + rb"\}" + _WS))
    return out


class FastPath:
    """Rewrites one agent session's text chunks: `rewrite(line)` → (frame, kind) or None.

    An agent writes its chunks alike but for the text: after a line matched, what came before
    its text's string and what came after are kept (`_head`, `_tail`), and a line that starts
    and ends with exactly those and has a JSON string in between is that pattern's too — the
    same bytes take the same way through it, and the string is checked by the same `_STR` —
    so only the text is scanned (half the cost of the whole pattern, measured in bench)."""

    __slots__ = (
        "_agent",
        "_bridge",
        "_first",
        "_head",
        "_kind",
        "_new",
        "_patterns",
        "_sid_in_head",
        "_tail",
    )

    def __init__(self, agent_session_id: str, bridge_session_id: str) -> None:
        self._agent = orjson.dumps(agent_session_id)
        self._bridge = orjson.dumps(bridge_session_id)
        self._patterns = _patterns()
        # An agent writes every line in one member order: the last one that matched is tried first.
        self._first = 0
        self._head = self._tail = self._new = b""
        self._kind = ""
        self._sid_in_head = True

    def rewrite(self, line: bytes) -> tuple[bytes, str] | None:
        head, tail = self._head, self._tail
        if head and line.startswith(head) and line.endswith(tail):
            start, end = len(head), len(line) - len(tail)
            if start < end and _TEXT_STRING.fullmatch(line, start, end) is not None and _utf8(line):
                # `_new` is the head or the tail with the bridge's session id in it.
                if self._sid_in_head:
                    return self._new + line[start:], self._kind
                return line[:end] + self._new, self._kind
        return self._match(line)

    def _match(self, line: bytes) -> tuple[bytes, str] | None:
        patterns = self._patterns
        m = patterns[self._first].fullmatch(line)
        if m is None:
            for i, pattern in enumerate(patterns):
                m = pattern.fullmatch(line)
                if m is not None:
                    self._first = i
                    break
            else:
                return None
        start, end = m.span("s")
        if line[start:end] != self._agent or not _utf8(line):
            return None
        kind = m.group("k").decode()
        text_start, text_end = next(m.span(g) for g in _TEXTS if m.start(g) >= 0)
        self._head, self._tail, self._kind = line[:text_start], line[text_end:], kind
        self._sid_in_head = end <= text_start
        rewritten = line[:start] + self._bridge + line[end:]
        shift = len(self._bridge) - len(self._agent)
        self._new = rewritten[: text_start + shift] if self._sid_in_head else rewritten[text_end:]
        return rewritten, kind


def _utf8(line: bytes) -> bool:
    if line.isascii():
        return True
    try:
        line.decode()
    except UnicodeDecodeError:
        return False
    return True
