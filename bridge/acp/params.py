"""Validated params of the client's ACP requests (pydantic). Unknown fields are kept
(`extra="allow"`) so they can be passed on; a bad field gives -32602 naming it."""

from __future__ import annotations

import os
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.errors import INVALID_PARAMS, RpcError
from bridge.wire.types import JsonObj


class _Params(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    meta: JsonObj | None = Field(default=None, alias="_meta")


def _absolute(path: str) -> str:
    if not os.path.isabs(path):
        raise ValueError("must be an absolute path")
    return path


class InitializeParams(_Params):
    protocolVersion: int
    clientCapabilities: JsonObj = Field(default_factory=dict)
    clientInfo: JsonObj | None = None


class AuthenticateParams(_Params):
    methodId: str


class McpServerParam(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    type: str | None = None
    command: str | None = None
    args: list[str] | None = None
    env: list[JsonObj] | None = None
    url: str | None = None
    headers: list[JsonObj] | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str | None) -> str | None:
        if v not in (None, "stdio", "http", "sse", "acp"):
            raise ValueError("must be one of http, sse, acp (or absent for stdio)")
        return v


class NewSessionParams(_Params):
    cwd: str
    mcpServers: list[McpServerParam] = Field(default_factory=list)
    additionalDirectories: list[str] | None = None

    @field_validator("cwd")
    @classmethod
    def _abs_cwd(cls, v: str) -> str:
        return _absolute(v)

    @field_validator("additionalDirectories")
    @classmethod
    def _abs_dirs(cls, v: list[str] | None) -> list[str] | None:
        for d in v or []:
            _absolute(d)
        return v

    def mcp_dicts(self) -> list[JsonObj]:
        return [m.model_dump(exclude_none=True) for m in self.mcpServers]


class SessionParams(_Params):
    sessionId: str


class LoadSessionParams(NewSessionParams):
    sessionId: str


class ResumeSessionParams(LoadSessionParams):
    pass


class ForkSessionParams(LoadSessionParams):
    pass


class PromptParams(SessionParams):
    prompt: list[JsonObj]


class SetModeParams(SessionParams):
    modeId: str


class SetConfigOptionParams(SessionParams):
    configId: str
    value: str | bool
    type: str | None = None


class ListSessionsParams(_Params):
    cwd: str | None = None
    cursor: str | None = None


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
