"""Validated params of the client's requests (pydantic); a bad field gives -32602 naming it.

ACP's own requests (session/new, session/prompt…) are validated with the official schema
models, made strict, in `bridge/acp/acp_params.py`, loaded at their first use (the module
`__getattr__` below). `initialize` is the exception: its answer is the daemon's first, and
importing the generated models costs ~0.3 s (7x the bridge's own models, `python -m
bench.schema_models`), more than the whole start-up budget of that answer; its params are
three fields, checked here. The `_bridge/*` extensions have no official model: theirs are
here too. Unknown fields are kept (`extra="allow"`) so they can be passed on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.errors import INVALID_PARAMS, RpcError
from bridge.wire.types import JsonObj

if TYPE_CHECKING:
    from bridge.acp.acp_params import (
        AuthenticateParams,
        CloseSessionParams,
        DeleteSessionParams,
        ForkSessionParams,
        ListSessionsParams,
        LoadSessionParams,
        NewSessionParams,
        Opening,
        PromptParams,
        ResumeSessionParams,
        SetConfigOptionParams,
        SetModeParams,
    )

_ACP = frozenset(
    {
        "AuthenticateParams",
        "CloseSessionParams",
        "DeleteSessionParams",
        "ForkSessionParams",
        "ListSessionsParams",
        "LoadSessionParams",
        "NewSessionParams",
        "Opening",
        "PromptParams",
        "ResumeSessionParams",
        "SetConfigOptionParams",
        "SetModeParams",
    }
)


__all__ = [
    "AttachParams",
    "AuthenticateParams",
    "CloseSessionParams",
    "DeleteSessionParams",
    "EventsParams",
    "ForkSessionParams",
    "InitializeParams",
    "ListSessionsParams",
    "LoadSessionParams",
    "NewSessionParams",
    "Opening",
    "PromptParams",
    "ReadFileParams",
    "ResumeSessionParams",
    "SessionParams",
    "SetConfigOptionParams",
    "SetModeParams",
    "ShareParams",
    "ShellParams",
    "UpdateSessionParams",
    "parse",
]


def __getattr__(name: str) -> Any:
    if name in _ACP:
        from bridge.acp.schema_load import load_acp_params

        return getattr(load_acp_params(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Params(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    meta: JsonObj | None = Field(default=None, alias="_meta")


class InitializeParams(_Params):
    # ACP's InitializeRequest (not `acp.schema`'s: see the module's docstring); the
    # protocol version's range and the capabilities' object are the schema's.
    protocolVersion: int = Field(ge=0, le=65535)
    clientCapabilities: JsonObj = Field(default_factory=dict)
    clientInfo: JsonObj | None = None


class SessionParams(_Params):
    sessionId: str


class EventsParams(SessionParams):
    after: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)


class AttachParams(SessionParams):
    # The multi-client attach RFD's names; `after` (a seq of the bridge's log) is ours.
    role: Literal["observer", "controller"] = "observer"
    historyPolicy: Literal["full", "pending_only", "none"] = "full"
    after: int = Field(default=0, ge=0)
    clientInfo: JsonObj | None = None


class ShareParams(SessionParams):
    shared: bool = True


class UpdateSessionParams(SessionParams):
    title: str | None = None
    archived: bool | None = None


class ShellParams(SessionParams):
    command: str
    cwd: str | None = None
    timeoutMs: int = Field(default=60_000, ge=1, le=3_600_000)


class ReadFileParams(SessionParams):
    path: str = Field(min_length=1)
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=4 * 1024 * 1024, ge=1, le=4 * 1024 * 1024)
    encoding: Literal["text", "base64"] = "text"


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], params: JsonObj) -> M:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "params"
        raise RpcError(
            INVALID_PARAMS,
            f"invalid params: {field}: {first['msg']}",
            {
                "field": field,
                "errors": [
                    {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()[:10]
                ],
            },
        ) from None
