"""A tiny real MCP server (stdio) for the Claude adapter tests: one tool, `echo`.

Run as a script; Claude Code spawns it from the `--mcp-config` the adapter builds.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo")


@server.tool()
def echo(text: str) -> str:
    """Echo the given text back, prefixed."""
    return f"mcp-echo:{text}"


if __name__ == "__main__":
    server.run("stdio")
