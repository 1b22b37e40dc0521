"""Real MCP servers that prove they received a secret without it ever being on a command
line: they report only its SHA-256.

    secret_mcp.py stdio          one tool, `env_digest`: the digest of $MCP_SECRET
    secret_mcp.py http DIGESTS   streamable HTTP on a free loopback port (printed as
                                 `port N`); appends the digest of every Authorization
                                 header it receives to the file DIGESTS
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mcp.server.mcpserver import MCPServer

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


server = MCPServer("secret")


@server.tool()
def env_digest() -> str:
    """The SHA-256 of this server's MCP_SECRET."""
    return f"digest:{digest(os.environ.get('MCP_SECRET', ''))}"


def recording(app: App, path: str) -> App:
    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name.lower() == b"authorization":
                    with open(path, "a") as f:
                        f.write(digest(value.decode()) + "\n")
        await app(scope, receive, send)

    return wrapped


def serve_http(digests: str) -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    print(f"port {sock.getsockname()[1]}", flush=True)  # the test reads it
    app = recording(server.streamable_http_app(), digests)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    if sys.argv[1] == "http":
        serve_http(sys.argv[2])
    else:
        server.run("stdio")
