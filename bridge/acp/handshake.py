"""`initialize`'s params, read without pydantic in the common case (issue 17: the first
answer of every connection should not wait ~100 ms for the request models to import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.lazy import lazy_module
from bridge.wire.types import JsonObj

if TYPE_CHECKING:
    from bridge.acp import params as P
else:
    P = lazy_module("bridge.acp.params")


def initialize_params(params: JsonObj) -> tuple[JsonObj, JsonObj | None]:
    """(clientCapabilities, clientInfo). The well-typed case (what every client sends) is
    read here; anything else — protocolVersion missing or not an int, a value pydantic would
    coerce, a bad field — goes through `InitializeParams`, for the same result or the same
    -32602."""
    caps, info, meta = params.get("clientCapabilities", {}), params.get("clientInfo"), params.get("_meta")
    if (
        type(params.get("protocolVersion")) is int
        and type(caps) is dict
        and (info is None or type(info) is dict)
        and (meta is None or type(meta) is dict)
        and "meta" not in params
    ):
        return dict(caps), None if info is None else dict(info)
    p = P.parse(P.InitializeParams, params)
    return p.clientCapabilities, p.clientInfo
