"""JSON-RPC 2.0 envelopes: classify a decoded message and build answers. No I/O.

Parse failures travel as values (`Invalid`), never as exceptions, so the receive loop has
exactly one place that turns them into error responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.errors import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, RpcError
from bridge.wire.types import JsonObj


@dataclass(frozen=True, slots=True)
class Request:
    id: Any
    method: str
    params: Any
    raw: JsonObj


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: Any
    raw: JsonObj


@dataclass(frozen=True, slots=True)
class Response:
    id: Any
    result: Any
    error: JsonObj | None
    raw: JsonObj


@dataclass(frozen=True, slots=True)
class Invalid:
    """Not a usable message; `id` is the request id when it could be read. `reply_to` is the
    id of one of our requests when the message was a malformed answer to it (its waiter
    must not wait forever); the error to the peer then carries `id: null`, not that id."""

    error: RpcError
    id: Any = None
    reply_to: Any = None


Message = Request | Notification | Response | Invalid

# Deeper than this, a message is refused at the edge. orjson reads 1024 levels but writes only
# ~254, and what the daemon sends on (the log, `_bridge/session/events`, the trace) wraps a
# message in a few more levels: anything it accepts must stay encodable. ACP messages are a
# dozen levels deep at most (tool-call inputs included).
MAX_DEPTH = 128
# ACP's `RequestId` is an int64; a larger id could be echoed but not stored or compared
# reliably by the peer.
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1


def valid_id(rid: Any) -> bool:
    """String, int64 or null: usable as a dict key and echoed exactly."""
    if rid is None or isinstance(rid, str):
        return True
    return type(rid) is int and _ID_MIN <= rid <= _ID_MAX


def classify(obj: Any, *, require_jsonrpc: bool = True) -> Message:
    if not isinstance(obj, dict):
        return Invalid(RpcError(INVALID_REQUEST, "a JSON-RPC message must be a JSON object"))
    if require_jsonrpc and obj.get("jsonrpc") != "2.0":
        return Invalid(
            RpcError(INVALID_REQUEST, 'missing or wrong "jsonrpc" member (must be "2.0")'), _id(obj)
        )
    method = obj.get("method")
    if method is None and "method" not in obj and ("result" in obj or "error" in obj):
        return _response(obj)
    if not isinstance(method, str):
        what = 'a request needs a string "method"' if method is None else '"method" must be a string'
        return Invalid(RpcError(INVALID_REQUEST, what), _id(obj))
    params = obj.get("params")
    if params is not None and not isinstance(params, dict | list):
        return Invalid(RpcError(INVALID_REQUEST, '"params" must be an object or an array'), _id(obj))
    if "id" in obj:
        rid = obj["id"]
        if not valid_id(rid):
            return Invalid(RpcError(INVALID_REQUEST, '"id" must be a string, an integer (int64) or null'))
        return Request(rid, method, params, obj)
    return Notification(method, params, obj)


def _response(obj: JsonObj) -> Message:
    if "id" not in obj:
        return Invalid(RpcError(INVALID_REQUEST, 'a response needs an "id"'))
    rid = obj["id"]
    if not valid_id(rid):
        return Invalid(
            RpcError(INVALID_REQUEST, 'a response "id" must be a string, an integer (int64) or null')
        )
    if "result" in obj and "error" in obj:
        return Invalid(
            RpcError(INVALID_REQUEST, 'a response has "result" or "error", not both'), reply_to=rid
        )
    if "error" not in obj:
        return Response(rid, obj["result"], None, obj)
    err = obj["error"]
    if not isinstance(err, dict):
        return Invalid(RpcError(INVALID_REQUEST, '"error" must be an object'), reply_to=rid)
    code = err.get("code")
    if type(code) is not int or not -(2**31) <= code < 2**31:
        return Invalid(RpcError(INVALID_REQUEST, '"error.code" must be an integer (int32)'), reply_to=rid)
    if not isinstance(err.get("message"), str):
        return Invalid(RpcError(INVALID_REQUEST, '"error.message" must be a string'), reply_to=rid)
    return Response(rid, None, err, obj)


def _id(obj: JsonObj) -> Any:
    rid = obj.get("id")
    return rid if valid_id(rid) else None


def too_deep(line: bytes, obj: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `obj` (decoded from `line`) nests more than `limit` arrays/objects."""
    return _unusable(line, obj, limit, int64=False) is not None


# 19 digits in a row: the shortest text of an integer outside int64 (and a cheap pre-check).
_LONG_DIGITS = re.compile(rb"\d{19}")


def _unusable(line: bytes, obj: Any, limit: int, *, int64: bool) -> str | None:
    """Why `obj` (decoded from `line`) is beyond what the daemon can carry on: nesting past
    `limit`, or (`int64`) an integer a 64-bit store column cannot hold. Counting brackets and
    looking for a run of digits in the raw line (C-speed passes) clears almost every message
    without a walk."""
    deep = line.count(b"{") + line.count(b"[") > limit
    long = int64 and _LONG_DIGITS.search(line) is not None
    if not deep and not long:
        return None
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            if long and type(value) is int and not _ID_MIN <= value <= _ID_MAX:
                return "hold an integer outside the 64-bit range"
            continue
        if depth > limit:
            return f"nested deeper than {limit} levels"
        stack.extend((v, depth + 1) for v in children if long or isinstance(v, dict | list))
    return None


def decode(
    line: bytes, *, require_jsonrpc: bool = True, max_depth: int = MAX_DEPTH, int64: bool = False
) -> Message:
    """`int64`: refuse integers past 64 bits too (a client's params reach the store's integer
    columns; what an agent sends is only relayed, and orjson writes back all it reads)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Invalid(RpcError(PARSE_ERROR, f"invalid JSON: {exc}"))
    msg = classify(obj, require_jsonrpc=require_jsonrpc)
    if isinstance(msg, Invalid):
        return msg
    what = _unusable(line, obj, max_depth, int64=int64)
    if what is None:
        return msg
    if isinstance(msg, Request):
        return Invalid(RpcError(INVALID_PARAMS, f"params {what}", {"field": "params"}), msg.id)
    if isinstance(msg, Response):
        return Invalid(RpcError(INVALID_REQUEST, f"response {what}"), reply_to=msg.id)
    return Invalid(RpcError(INVALID_REQUEST, f"notification {msg.method!r:.100} {what}"))


def id_from_head(head: bytes) -> Any:
    """Best effort: the `"id"` of an oversized request from its first bytes."""
    m = re.search(rb'"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,18})', head)
    if not m:
        return None
    try:
        rid = orjson.loads(m.group(1))
    except orjson.JSONDecodeError:
        return None
    return rid if valid_id(rid) else None


def encode(obj: JsonObj) -> bytes:
    return _dumps(obj)


def _dumps(obj: Any) -> bytes:
    # orjson (>= 3.12) hands back a bytes object whose allocation is at least 4 KiB whatever
    # its length; frames wait in the log queue and the client queues, so a fast turn would
    # hold ~16x its size in memory. A right-sized copy costs ~0.4 µs.
    return memoryview(orjson.dumps(obj)).tobytes()


def result_frame(rid: Any, result: Any) -> bytes:
    return _dumps({"jsonrpc": "2.0", "id": rid, "result": result})


def error_frame(rid: Any, error: RpcError) -> bytes:
    return _dumps({"jsonrpc": "2.0", "id": rid, "error": error.to_dict()})


def request_frame(rid: Any, method: str, params: Any) -> bytes:
    msg: JsonObj = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return _dumps(msg)


def notification_frame(method: str, params: Any) -> bytes:
    msg: JsonObj = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return _dumps(msg)
