"""The params of ACP's own requests, validated with the official schema models
(`agent-client-protocol`'s `acp.schema`), made strict.

The generated models deserialize leniently where the schema says so
(`x-deserialize-skip-invalid-items`, `x-deserialize-default-on-error`): a malformed MCP server
is dropped, a malformed `_meta` or `clientCapabilities` replaced by its default, a
`protocolVersion` that is not a number taken for 1. That suits an agent; the bridge answers
such params with a -32602 naming the field instead (a client must learn that its MCP server
was not wired), so every lenient validator is overridden here by a pass-through of the same
name, and `_check_strict` refuses, at import, a model that still has one (a newer SDK adding
one fails the tests instead of going lenient silently).

Imported at the first request that needs it (through `bridge.acp.params`), never on the way
to the `initialize` answer; of the generated module only the models used here and what they
are made of are built (bridge/acp/schema_subset.py: ~40 ms, the whole module ~210 ms).
Validating a request costs about what the bridge's own models did (2-3 µs).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator

from bridge.wire.types import JsonObj

if TYPE_CHECKING:
    from acp import schema as S
else:  # only the models below and what they are made of (bridge/acp/schema_subset.py)
    from bridge.acp import schema_subset

    S = schema_subset.load(
        "AuthenticateRequest",
        "NewSessionRequest",
        "LoadSessionRequest",
        "ResumeSessionRequest",
        "ForkSessionRequest",
        "PromptRequest",
        "SetSessionModeRequest",
        "SetSessionConfigOptionSelectRequest",
        "CloseSessionRequest",
        "DeleteSessionRequest",
        "ListSessionsRequest",
        "HttpMcpServer",
        "SseMcpServer",
        "AcpMcpServer",
        "McpServerStdio",
    )

_MCP_KINDS = ("http", "sse", "acp")


def _replaced(cls: Any, value: Any) -> Any:
    return value


def _none() -> Any:
    # Bound to no field of any model: the name replaces the generated validator, at no cost.
    return field_validator("no_such_field", mode="before", check_fields=False)(classmethod(_replaced))


class _Strict(BaseModel):
    """Validators named as the generated lenient ones, replacing them (see the docstring)."""

    _salvage_meta_on_error = _none()
    _skip_invalid_items_0 = _none()
    _skip_invalid_items_1 = _none()
    _salvage_on_error_0 = _none()
    _salvage_on_error_1 = _none()
    _coerce_protocol_version = _none()

    @property
    def meta(self) -> JsonObj | None:
        meta: JsonObj | None = getattr(self, "field_meta", None)
        return meta


def _absolute(path: str) -> str:
    if not os.path.isabs(path):
        raise ValueError("must be an absolute path")
    return path


def _mcp_kind(v: Any) -> str:
    kind = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    return "stdio" if kind in (None, "stdio") else str(kind)


# By `type` rather than the generated union's first match: a stdio server with a mistake is
# reported as one (`mcpServers.0.stdio.args`), and an unknown `type` is not taken for stdio.
McpServer = Annotated[
    Annotated[S.HttpMcpServer, Tag("http")]
    | Annotated[S.SseMcpServer, Tag("sse")]
    | Annotated[S.AcpMcpServer, Tag("acp")]
    | Annotated[S.McpServerStdio, Tag("stdio")],
    Discriminator(
        _mcp_kind,
        custom_error_type="mcp_server_type",
        custom_error_message="type must be one of http, sse, acp (or absent for stdio)",
    ),
]


class Opening(_Strict):
    """What session/new, load, resume and fork share: an absolute cwd, MCP servers."""

    cwd: str
    additional_directories: Annotated[list[str] | None, Field(alias="additionalDirectories")] = None
    mcp_servers: Annotated[list[McpServer], Field(alias="mcpServers")] = []

    @field_validator("cwd")
    @classmethod
    def _abs_cwd(cls, v: str) -> str:
        return _absolute(v)

    @field_validator("additional_directories")
    @classmethod
    def _abs_dirs(cls, v: list[str] | None) -> list[str] | None:
        for d in v or []:
            _absolute(d)
        return v

    def mcp_dicts(self) -> list[JsonObj]:
        """The servers in wire form, as the agents are given them."""
        out = []
        for server in self.mcp_servers:
            wire = server.model_dump(by_alias=True, exclude_none=True)
            out.append(wire)
        return out


class AuthenticateParams(_Strict, S.AuthenticateRequest):
    pass


class NewSessionParams(Opening, S.NewSessionRequest):
    pass


class LoadSessionParams(Opening, S.LoadSessionRequest):
    pass


# ACP makes their `mcpServers` optional: absent is taken as [] (the session keeps the servers
# it was created with), as for session/new and load.
class ResumeSessionParams(Opening, S.ResumeSessionRequest):  # type: ignore[misc]
    pass


class ForkSessionParams(Opening, S.ForkSessionRequest):  # type: ignore[misc]
    pass


class PromptParams(_Strict, S.PromptRequest):
    pass


class SetModeParams(_Strict, S.SetSessionModeRequest):
    pass


class SetConfigOptionParams(_Strict, S.SetSessionConfigOptionSelectRequest):
    # ACP's two request shapes (`type: "boolean"` with a bool value, else a select's string),
    # as one model: the union's errors would name both shapes for one mistake.
    value: str | bool  # type: ignore[assignment]
    type: str | None = None


class CloseSessionParams(_Strict, S.CloseSessionRequest):
    pass


class DeleteSessionParams(_Strict, S.DeleteSessionRequest):
    pass


class ListSessionsParams(_Strict, S.ListSessionsRequest):
    pass


def _check_strict(*models: type[BaseModel]) -> None:
    for model in models:
        lenient = [
            name
            for name, dec in model.__pydantic_decorators__.field_validators.items()
            if getattr(dec.func, "__module__", "") == S.__name__
        ]
        if lenient:
            raise TypeError(f"{model.__name__}: lenient validators of acp.schema left: {lenient}")


PARAMS_MODELS: tuple[type[BaseModel], ...] = (
    AuthenticateParams,
    NewSessionParams,
    LoadSessionParams,
    ResumeSessionParams,
    ForkSessionParams,
    PromptParams,
    SetModeParams,
    SetConfigOptionParams,
    CloseSessionParams,
    DeleteSessionParams,
    ListSessionsParams,
)
_check_strict(*PARAMS_MODELS)
