"""JSON-RPC 2.0 envelopes: classify a decoded message and build answers. No I/O.

Parse failures travel as values (`Invalid`), never as exceptions, so the receive loop has
exactly one place that turns them into error responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bridge.errors import INVALID_REQUEST, PARSE_ERROR, RpcError

JsonObj = dict[str, Any]


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
    """Not a usable message; `id` is the request id when it could be read."""

    error: RpcError
    id: Any = None


Message = Request | Notification | Response | Invalid


def classify(obj: Any, *, require_jsonrpc: bool = True) -> Message:
    if not isinstance(obj, dict):
        return Invalid(RpcError(INVALID_REQUEST, "a JSON-RPC message must be a JSON object"))
    if require_jsonrpc and obj.get("jsonrpc") != "2.0":
        return Invalid(
            RpcError(INVALID_REQUEST, 'missing or wrong "jsonrpc" member (must be "2.0")'), _id(obj)
        )
    method = obj.get("method")
    if method is None:
        if "id" in obj and ("result" in obj or "error" in obj):
            err = obj.get("error")
            return Response(obj["id"], obj.get("result"), err if isinstance(err, dict) else None, obj)
        return Invalid(RpcError(INVALID_REQUEST, 'a request needs a string "method"'), _id(obj))
    if not isinstance(method, str):
        return Invalid(RpcError(INVALID_REQUEST, '"method" must be a string'), _id(obj))
    params = obj.get("params")
    if params is not None and not isinstance(params, dict | list):
        return Invalid(RpcError(INVALID_REQUEST, '"params" must be an object or an array'), _id(obj))
    if "id" in obj:
        rid = obj["id"]
        if (rid is not None and not isinstance(rid, str | int)) or isinstance(rid, bool):
            return Invalid(RpcError(INVALID_REQUEST, '"id" must be a string, a number or null'))
        return Request(rid, method, params, obj)
    return Notification(method, params, obj)


def _id(obj: JsonObj) -> Any:
    rid = obj.get("id")
    return rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None


def decode(line: bytes, *, require_jsonrpc: bool = True) -> Message:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Invalid(RpcError(PARSE_ERROR, f"invalid JSON: {exc}"))
    return classify(obj, require_jsonrpc=require_jsonrpc)


def id_from_head(head: bytes) -> Any:
    """Best effort: the `"id"` of an oversized request from its first bytes."""
    import re

    m = re.search(rb'"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,18})', head)
    if not m:
        return None
    try:
        return orjson.loads(m.group(1))
    except orjson.JSONDecodeError:
        return None


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
