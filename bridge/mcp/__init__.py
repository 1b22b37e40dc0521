"""MCP servers wired in the config: the entries, their status per session, and the checks of
`agent-bridge mcp`. Only `check` imports the `mcp` package (never on the daemon's start-up path)."""
