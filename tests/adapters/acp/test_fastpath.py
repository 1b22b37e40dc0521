"""The byte-level fast path (adapters/acp/fastpath.py) against the parse path, on generated
lines: whenever the fast path takes a line, the parse path (the same router, `on_notification`
after `jsonrpc.decode`) publishes the same message (equal once decoded, same kind), and what
it publishes validates against the ACP schema. Lines it does not take go to the parse path,
so there is nothing else to compare."""

from __future__ import annotations

import json
from typing import Any

import anyio
import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.acp.fastpath import KINDS, FastPath
from adapters.acp.router import _Router
from bridge.wire import jsonrpc
from bridge.wire.types import JsonObj
from tests.acp_schema import check_message

AGENT_SID = "agent-sess-1"
BRIDGE_SID = "bridge-sess-0001"


class _Host:
    session_id = BRIDGE_SID

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, str | None]] = []

    def emit_params(self, params: JsonObj) -> None:
        update = params.get("update")
        kind = update.get("sessionUpdate") if isinstance(update, dict) else None
        self.frames.append((jsonrpc.notification_frame("session/update", params), kind))

    def emit_frame(self, frame: bytes, kind: str) -> None:
        self.frames.append((frame, kind))

    def emit(self, update: JsonObj) -> None:
        self.frames.append((jsonrpc.notification_frame("session/update", {"update": update}), None))

    def touch(self) -> None:
        pass

    def notify_client(self, method: str, params: JsonObj) -> None:
        self.frames.append((jsonrpc.notification_frame(method, params), None))


def parse_path(line: bytes) -> list[tuple[bytes, str | None]]:
    host = _Host()
    router = _Router("fake", host)  # type: ignore[arg-type]
    msg = jsonrpc.decode(line, int64=False)
    if isinstance(msg, jsonrpc.Notification):
        try:
            anyio.run(router.on_notification, msg)
        except TypeError:  # orjson cannot encode it (a lone surrogate): the message is dropped
            return []
    return host.frames


def fast_router() -> tuple[_Router, _Host]:
    host = _Host()
    router = _Router("fake", host)  # type: ignore[arg-type]
    router.fast = FastPath(AGENT_SID, BRIDGE_SID)
    return router, host


def fast_path(line: bytes) -> list[tuple[bytes, str | None]] | None:
    router, host = fast_router()
    return host.frames if router.on_line(line) else None


def same(line: bytes, through: tuple[_Router, _Host] | None = None) -> bool:
    """The property; True when the fast path took the line. `through`: a router that has
    seen other lines before (the fast path keeps the last one's layout), else a new one."""
    router, host = through or fast_router()
    before = len(host.frames)
    if not router.on_line(line):
        return False
    fast = host.frames[before:]
    slow = parse_path(line)
    assert len(fast) == 1 and len(slow) == 1, (line, fast, slow)
    (f, fk), (s, sk) = fast[0], slow[0]
    assert orjson.loads(f) == orjson.loads(s), (line, f, s)
    assert fk == sk
    check_message(orjson.loads(f), {})
    return True


# -- generated lines ------------------------------------------------------------------------

_ws = st.sampled_from(["", " "] * 30 + ["\t", "\n ", "\r\n", "\x0b", "\x0c"])
_text = st.lists(
    st.characters(codec="utf-8")
    | st.sampled_from(['"', "\\", "\x00", "\x1f", "\u2028", '"sessionId":"x"', AGENT_SID]),
    max_size=20,
).map("".join)


def _escape(s: str, style: int) -> str:
    out = []
    for ch in s:
        if ch in '"\\' or ord(ch) < 0x20:
            out.append(json.dumps(ch)[1:-1])
        elif style == 1 and ch.isalpha():
            out.append(f"\\u{ord(ch):04x}")
        elif style == 2 and ord(ch) > 0x7F:
            out.append(json.dumps(ch)[1:-1])  # \uXXXX, surrogate pairs for astral characters
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@st.composite
def _json(draw: Any, value: Any, hostile: bool) -> str:
    """`value` in JSON with random whitespace, escapes, member order, duplicate and extra members."""
    w = draw(_ws)
    if isinstance(value, dict):
        items = list(value.items())
        if draw(st.booleans()):
            items = draw(st.permutations(items))
        if hostile and items and draw(st.integers(0, 30)) == 0:
            k, _ = draw(st.sampled_from(items))
            items.insert(
                draw(st.integers(0, len(items))), (k, draw(st.sampled_from([value[k], "other", 1, None])))
            )
        if hostile and draw(st.integers(0, 30)) == 0:
            items.append(
                (draw(st.sampled_from(["_meta", "extra", "id"])), draw(st.sampled_from([{}, 1, "x"])))
            )
        parts = [
            f"{w}{_escape(k, draw(st.integers(0, 40)) if hostile else 0)}{w}:{w}{draw(_json(v, hostile))}{w}"
            for k, v in items
        ]
        return "{" + ",".join(parts) + "}"
    if isinstance(value, str):
        return _escape(value, draw(st.integers(0, 4)))
    return json.dumps(value)


@st.composite
def chunk_lines(draw: Any, text: st.SearchStrategy[str] = _text) -> bytes:
    # Half of them of the shape the fast path takes (the values vary), half anything near it.
    hostile = draw(st.booleans())
    ok = st.just if not hostile else (lambda good: st.sampled_from([good, good, good, "other"]))
    content: JsonObj = {"type": draw(ok("text")), "text": draw(text)}
    update: JsonObj = {
        "sessionUpdate": draw(st.sampled_from([*KINDS, *(("tool_call", "usage_update") if hostile else ())])),
        "content": content,
    }
    if draw(st.booleans()):
        update["messageId"] = draw(st.sampled_from(["m1", "\u00e9", *((None, 3) if hostile else ())]))
    sid = draw(ok(AGENT_SID))
    msg = {
        "jsonrpc": draw(ok("2.0")),
        "method": draw(ok("session/update")),
        "params": {"sessionId": sid, "update": update},
    }
    line = (draw(_ws) + draw(_json(msg, hostile)) + draw(_ws)).encode("utf-8", "surrogatepass")
    # Sometimes broken on purpose: a byte changed, dropped or inserted (also non-UTF-8 ones).
    if hostile and draw(st.integers(0, 3)) == 0 and line:
        line = _mutated(draw, line)
    return line


def _mutated(draw: Any, line: bytes) -> bytes:
    i = draw(st.integers(0, len(line) - 1))
    b = bytes([draw(st.integers(0, 255))])
    return draw(
        st.sampled_from([line[:i] + b + line[i + 1 :], line[:i] + line[i + 1 :], line[:i] + b + line[i:]])
    )


# Control characters are escaped in every style of `_escape`: the marker's rendering is known.
_MARK = "\x01\x02\x03"
_MARKED = b'"\\u0001\\u0002\\u0003"'


@st.composite
def chunk_runs(draw: Any) -> list[bytes]:
    """Lines in a row as an agent writes them: one layout with other texts in it (what the
    fast path keeps of the last line it took), now and then another line or a byte changed."""
    base = draw(chunk_lines(text=st.just(_MARK)))
    run = []
    for _ in range(draw(st.integers(1, 6))):
        if _MARKED in base and draw(st.integers(0, 4)):
            text = _escape(draw(_text), draw(st.integers(0, 4))).encode("utf-8", "surrogatepass")
            line = base.replace(_MARKED, text, 1)
        else:
            line = draw(chunk_lines())
        if line and draw(st.integers(0, 5)) == 0:
            line = _mutated(draw, line)
        run.append(line)
    return run


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk_runs())
def test_a_run_of_lines_through_one_fast_path_publishes_what_the_parse_path_does(run: list[bytes]) -> None:
    through = fast_router()
    for line in run:
        same(line, through)


def test_lines_alike_but_for_the_text_are_taken_without_the_whole_pattern(monkeypatch: Any) -> None:
    whole: list[bytes] = []
    match = FastPath._match
    monkeypatch.setattr(FastPath, "_match", lambda self, line: whole.append(line) or match(self, line))
    through = fast_router()
    head = b'{"jsonrpc":"2.0","method":"session/update","params":{"update":{"sessionUpdate":"agent_message_chunk",'
    for i, text in enumerate([b'"a"', b'"b \\u00e9"', b'"caf\xc3\xa9"', b'"\\"x"']):
        # The session id after the text: the kept tail is where it is replaced.
        line = head + b'"content":{"type":"text","text":' + text + b'}},"sessionId":"agent-sess-1"}}'
        assert same(line, through)
        assert whole == [line] if i == 0 else len(whole) == 1
    assert not same(line.replace(b'"x"', b'"x\x01"'), through)  # a raw control character
    assert not same(line.replace(b"agent-sess-1", b"agent-sess-2"), through)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk_lines())
@example(
    b'{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"agent-sess-1","update":'
    b'{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hi \\"sessionId\\":\\"agent-sess-1\\""}}}}'
)
def test_fast_path_publishes_what_the_parse_path_does(line: bytes) -> None:
    same(line)


def test_the_shapes_agents_write_take_the_fast_path() -> None:
    sdk = (
        b'{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"agent-sess-1","update":'
        b'{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"caf\xc3\xa9 \\u00e9\\n"}}}}'
    )
    fake = json.dumps(
        {
            "method": "session/update",
            "params": {
                "sessionId": AGENT_SID,
                "update": {
                    "sessionUpdate": "agent_thought_chunk",
                    "messageId": "m1",
                    "content": {"type": "text", "text": "x"},
                },
            },
            "jsonrpc": "2.0",
        }
    ).encode()
    for line in (sdk, fake):
        assert same(line)


def test_what_the_fast_path_leaves_to_the_parse_path() -> None:
    base = (
        b'{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"agent-sess-1","update":'
        b'{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"T"}}}}'
    )
    for text in (b"\\ud800", b"\\ud83d\\ude00", b"\xff", b"\xed\xa0\x80", b"\x01", b"\\x", b'"'):
        assert fast_path(base.replace(b'"T"', b'"' + text + b'"')) is None
    dup = base.replace(b'"content"', b'"sessionUpdate":"tool_call","content"')
    assert fast_path(dup) is None
    assert fast_path(base.replace(b"agent-sess-1", b"agent-sess-2")) is None
    assert fast_path(base[:-1]) is None
    assert fast_path(base.replace(b"}}}}", b'},"_meta":{}}}}')) is None
    huge = base.replace(b'"T"', b'"' + b"a\\\\" * 2_000_000 + b'"')
    assert same(huge)
