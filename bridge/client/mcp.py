"""MCP servers given to an agent with a session, as the client library's callers name them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.wire.types import JsonObj


@dataclass
class McpServer:
    """An MCP server for the agent: stdio (`command`, `args`, `env`) or, with `url`, HTTP
    (`transport="sse"` for the deprecated SSE kind). Plain ACP dicts are accepted too."""

    name: str
    command: str | None = None
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    transport: str = "http"

    def to_wire(self) -> JsonObj:
        if self.url is not None:
            headers = [{"name": k, "value": v} for k, v in (self.headers or {}).items()]
            return {"type": self.transport, "name": self.name, "url": self.url, "headers": headers}
        if self.command is None:
            raise ValueError(f"MCP server {self.name!r} needs a command or a url")
        env = [{"name": k, "value": v} for k, v in (self.env or {}).items()]
        return {"name": self.name, "command": self.command, "args": list(self.args), "env": env}


def absolute(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


def mcp_wire(servers: Sequence[McpServer | JsonObj] | None) -> list[JsonObj]:
    return [s.to_wire() if isinstance(s, McpServer) else dict(s) for s in servers or ()]
