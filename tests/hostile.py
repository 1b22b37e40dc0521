"""Hostile input for the daemon, shared by the tests that throw it at a live daemon: the
frames that once took the whole daemon down, and `hypothesis` strategies for envelopes, the
params of every method and extension, and agent output.

Frames are written as raw JSON text (`dump`), not through a JSON library: what they must be
able to carry is exactly what a library refuses to write (nesting past orjson's ~254 levels,
integers past 64 bits). Property tests use the `FUZZ` settings: derandomized and without an
example database, so every run (and CI) tries the same examples, and bounded in count so each
property stays within a few seconds against a real daemon.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.acp_client import AcpClient
from tests.acp_schema import check_message

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # FUZZ_EXAMPLES=N for a longer hunt by hand; shrinking against a live daemon is slow then.
    phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if "FUZZ_EXAMPLES" not in os.environ else []),
)


class Raw(str):
    """A JSON fragment written as it is."""


def nested(depth: int, kind: str = "obj", leaf: str = "1") -> Raw:
    opened, closed = ('{"a":', "}") if kind == "obj" else ("[", "]")
    return Raw(opened * depth + leaf + closed * depth)


def dump(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)  # any size: past 64 bits is the point
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump(v) for v in value) + "]"
    raise TypeError(type(value))


@dataclass(frozen=True)
class Frame:
    """One line/frame to send; `expect` is the id its answer must carry (a request with a
    readable id gets exactly one answer), None when no answer is owed or it cannot be waited
    for by id (a null id shares the key of every unattributable error)."""

    data: bytes
    expect: Any = None
    method: str | None = None


def frame(msg: Any) -> Frame:
    data = dump(msg).encode()
    if not (isinstance(msg, dict) and msg.get("jsonrpc") == "2.0" and isinstance(msg.get("method"), str)):
        return Frame(data)
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:  # past 1024 levels, a lone surrogate: no id can be read
        return Frame(data)
    rid = msg.get("id")
    waitable = type(rid) is str or (type(rid) is int and -(2**63) <= rid < 2**63)
    method = msg["method"]
    return Frame(data, rid if waitable else None, method if waitable else None)


# -- the frames that took the daemon down -------------------------------------------------------
DEEP = 300
ANSWER_WITHIN = 30.0  # generous: a fuzzed session/new or authenticate starts a real agent
KNOWN_BAD: list[tuple[str, Frame]] = [
    ("response with a list id", frame(Raw('{"jsonrpc":"2.0","id":[1],"result":null}'))),
    (
        "error response with an object id and a string code",
        frame(Raw('{"jsonrpc":"2.0","id":{"a":1},"error":{"code":"boom","message":"x"}}')),
    ),
    (
        "$/cancel_request with requestId {}",
        frame(Raw('{"jsonrpc":"2.0","method":"$/cancel_request","params":{"requestId":{}}}')),
    ),
    (
        "session/cancel with params nested 300 deep",
        frame(
            {"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": "x", "n": nested(DEEP)}}
        ),
    ),
    (
        "session/prompt with _meta nested 300 deep",
        frame(
            {
                "jsonrpc": "2.0",
                "id": "deep-meta",
                "method": "session/prompt",
                "params": {"sessionId": "x", "prompt": [], "_meta": nested(DEEP)},
            }
        ),
    ),
    (
        "unknown method with params nested 300 deep",
        frame(
            {
                "jsonrpc": "2.0",
                "id": "deep-unknown",
                "method": "no/such",
                "params": {"p": nested(DEEP, "arr")},
            }
        ),
    ),
    # Neighbours of those.
    ("response to a request never made", frame({"jsonrpc": "2.0", "id": "never-asked", "result": {}})),
    (
        "request with a 100-bit id",
        frame(Raw('{"jsonrpc":"2.0","id":1267650600228229401496703205376,"method":"initialize"}')),
    ),
    ("request with a bool id", frame(Raw('{"jsonrpc":"2.0","id":true,"method":"initialize","params":{}}'))),
    (
        "nesting orjson cannot read",
        frame({"jsonrpc": "2.0", "id": "deeper", "method": "initialize", "params": nested(1100)}),
    ),
    (
        "$/cancel_request nested 300 deep",
        frame({"jsonrpc": "2.0", "method": "$/cancel_request", "params": nested(DEEP)}),
    ),
    ("a batch", frame(Raw('[{"jsonrpc":"2.0","id":"in-batch","method":"initialize"}]'))),
    (
        "an error code past 32 bits",
        frame(Raw('{"jsonrpc":"2.0","id":1,"error":{"code":99999999999,"message":"x"}}')),
    ),
    ("not JSON", Frame("\x00 garbage \u00ff {".encode())),
]

# -- strategies --------------------------------------------------------------------------------
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    leaves,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=8,
)
deep_values = st.builds(nested, st.integers(min_value=120, max_value=1100), st.sampled_from(["obj", "arr"]))
# Mostly shallow oddities; deep nesting is rarer (it is one kind of hostility among many).
hostile = st.one_of(json_values, json_values, json_values, deep_values)


def _often(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value two times in three, else a hostile one: deep enough into the
    handlers to reach their checks, hostile enough to test them."""
    return st.one_of(plausible, plausible, hostile)


# Ids the fuzzer's requests carry: none can be one of the test client's own (small integers), so
# a fuzzed `$/cancel_request` never cancels the turn that must complete.
own_ids = st.text(max_size=8).map(lambda t: "fz-" + t) | st.integers(min_value=2**40, max_value=2**62)
bad_ids = (
    st.lists(leaves, max_size=2)
    | st.dictionaries(st.text(max_size=3), leaves, max_size=2)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=2**63, max_value=2**80)
    | deep_values
)
ids = st.one_of(own_ids, own_ids, own_ids, st.none(), bad_ids)

CLIENT_METHODS = [
    "initialize",
    "authenticate",
    "logout",
    "session/new",
    "session/load",
    "session/resume",
    "session/fork",
    "session/prompt",
    "session/set_mode",
    "session/set_config_option",
    "session/close",
    "session/list",
    "session/delete",
    "_bridge/agents",
    "_bridge/session/info",
    "_bridge/session/events",
    "_bridge/session/attach",
    "_bridge/session/metrics",
    "_bridge/session/update",
    "_bridge/session/shell",
    "_bridge/session/read_file",
    "_vendor/anything",
    "no/such/method",
]
NOTIFICATIONS = ["session/cancel", "$/cancel_request", "no/such/notification"]


def _text_blocks() -> st.SearchStrategy[Any]:
    # The fake agent reads a prompt's first word as a command: "fuzz" keeps it an echo.
    text = st.text(max_size=20).map(lambda t: "fuzz " + t)
    block = st.fixed_dictionaries({"type": st.just("text"), "text": text}) | hostile
    return st.lists(block, max_size=3) | hostile


def params_for(session_ids: Sequence[str], cwd: str) -> st.SearchStrategy[Any]:
    """Params of any method: the fields the daemon's methods read, each plausible or hostile."""
    # The edges of int64 and u64 too: orjson reads up to 2**64 - 1 as an int, a store column
    # holds up to 2**63 - 1.
    edges = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, -(2**63), -(2**63) - 1])
    numbers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), edges, hostile)
    fields: dict[str, st.SearchStrategy[Any]] = {
        "sessionId": _often(st.sampled_from([*session_ids, "sess_unknown", ""])),
        "cwd": _often(st.sampled_from([cwd, "relative/dir", "/no/such/dir"])),
        "mcpServers": _often(st.just([])),
        "prompt": _text_blocks(),
        "modeId": _often(st.sampled_from(["default", "plan", "nope"])),
        "configId": _often(st.sampled_from(["mode", "model", "nope"])),
        "value": _often(st.sampled_from(["fast", "smart", "plan"])),
        "requestId": own_ids | bad_ids,
        "after": numbers,
        "limit": numbers,
        "offset": numbers,
        "timeoutMs": numbers,
        "cursor": _often(st.text(max_size=10)),
        "title": _often(st.text(max_size=10)),
        "archived": _often(st.booleans()),
        # Never a random command line: the shell extension runs what it is given (when allowed).
        "command": st.sampled_from(["true", "echo fuzz"])
        | json_values.filter(lambda v: not isinstance(v, str)),
        "path": _often(st.sampled_from(["README.md", "/etc/hostname", "../../x"])),
        "protocolVersion": numbers,
        "clientCapabilities": _often(st.just({})),
        "methodId": _often(st.text(max_size=10)),
        "additionalDirectories": _often(st.lists(st.text(max_size=10), max_size=2)),
        "_meta": hostile,
    }
    fielded = st.fixed_dictionaries({}, optional=fields)
    return st.one_of(fielded, fielded, fielded, hostile)


def envelopes(session_ids: Sequence[str], cwd: str) -> st.SearchStrategy[Frame]:
    """Whole frames: requests and notifications of every method with fuzzed params and ids,
    responses with fuzzed ids and errors, and things that are no message at all."""
    params = params_for(session_ids, cwd)
    version = st.just("2.0") | st.sampled_from(["1.0", 2.0, None])
    request = st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "id": ids, "method": st.sampled_from(CLIENT_METHODS), "params": params}
    )
    notification = st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "method": st.sampled_from(NOTIFICATIONS), "params": params}
    )
    error = st.fixed_dictionaries(
        {},
        optional={
            "code": st.integers(min_value=-(2**40), max_value=2**40) | hostile,
            "message": st.text() | hostile,
        },
    )
    response = st.fixed_dictionaries(
        {"jsonrpc": version, "id": ids}, optional={"result": hostile, "error": error | hostile}
    )
    loose = st.dictionaries(
        st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error"]),
        hostile | version | st.sampled_from(CLIENT_METHODS),
        max_size=5,
    )
    garbage = st.text(max_size=30).map(lambda t: Raw(t.replace("\n", " ").replace("\r", " ") or "x"))
    return st.one_of(
        request, request, request, request, notification, notification, response, loose, hostile, garbage
    ).map(frame)


def agent_lines() -> st.SearchStrategy[bytes]:
    """What an ACP agent might print during a turn, envelope-level hostility only: bridge-bound
    content (update kinds it knows, requests it forwards) is the agent's to get right and is
    forwarded untouched by design."""
    never_asked = (
        st.text(max_size=6).map(lambda t: "a-" + t)
        | st.integers(min_value=2**40, max_value=2**62)
        | st.integers(max_value=-1)
    )
    response = st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "id": never_asked | bad_ids},
        optional={
            "result": hostile,
            "error": st.fixed_dictionaries({}, optional={"code": hostile, "message": hostile}),
        },
    )
    request = st.fixed_dictionaries(
        {
            "jsonrpc": st.just("2.0"),
            "id": own_ids | bad_ids,
            "method": st.sampled_from(["no/such", "", "session/prompt"]) | hostile,
        }
    )
    unknown_update = st.fixed_dictionaries(
        {
            "jsonrpc": st.just("2.0"),
            "method": st.just("session/update"),
            "params": st.fixed_dictionaries(
                {
                    "sessionId": st.just(Raw('"$SID"')),
                    "update": st.fixed_dictionaries(
                        {"sessionUpdate": st.just("fuzz_kind"), "x": json_values}
                    ),
                }
            ),
        }
    )
    notification = st.fixed_dictionaries(
        {
            "jsonrpc": st.just("2.0"),
            "method": st.sampled_from(["no/such", "session/update"]),
            "params": hostile,
        }
    )
    noise = st.text(max_size=30).map(lambda t: Raw("note: " + t.replace("\n", " ").replace("\r", " ")))
    truncated = st.text(max_size=20).map(lambda t: Raw('{"jsonrpc":"2.0","id":' + t.replace("\n", " ")))
    line = (response | request | unknown_update | notification | noise | truncated | hostile).map(
        lambda m: dump(m).encode()
    )
    return st.lists(line, min_size=1, max_size=3).map(lambda lines: b"\n".join(lines) + b"\n")


def inject(lines: bytes) -> str:
    """The fake agent's prompt that prints `lines` during the turn."""
    return "inject " + base64.b64encode(lines).decode()


# -- driving a live daemon ---------------------------------------------------------------------
async def send_checked(client: AcpClient, f: Frame) -> None:
    """Send one frame and check what follows: its answer if one is owed (exactly one), the
    daemon still answering the next request, and every message since valid ACP."""
    start = len(client.received)
    if f.method is not None:
        client._method_of[f.expect] = f.method
    # An earlier frame that owed no answer may still have got one under the same id.
    client._responses.pop(f.expect, None)
    await client.send_raw(f.data)
    with anyio.fail_after(ANSWER_WITHIN):
        if f.expect is not None:
            await client.wait_response(f.expect)
        probe = await client.request_raw("session/list", {})
    assert "result" in probe, probe
    for msg in client.received[start:]:
        check_message(msg, client._method_of)
    if f.expect is not None:
        answers = [m for m in client.received[start:] if "method" not in m and m.get("id") == f.expect]
        assert len(answers) == 1, (f.data[:300], answers)


async def chunks_seen(client: AcpClient, sid: str, n: int) -> None:
    """Wait until `n` agent_message_chunk updates of `sid` arrived."""
    while sum(1 for u in client.updates(sid) if u.get("sessionUpdate") == "agent_message_chunk") < n:
        await client.wait_for(lambda m: m.get("method") == "session/update", start=len(client.notifications))
