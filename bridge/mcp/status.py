"""Per session: which MCP servers started, which failed and why, and their tools.

Adapters say what their agent reports (Claude Code's init message and `mcp_status`, Codex's
`mcpServer/startupStatus/updated`, an ACP agent's silence) by emitting `report(...)`: a
`session_info_update` with `_meta.bridge.mcpServers`. The session's `McpStatus` folds each
report into the full view (every server the session was given, where it came from, its
state) and the update the client receives carries that whole view (spec/bridge-extensions.md).
No config value (env, headers, url) is ever part of it."""

from __future__ import annotations

from typing import Any

from bridge.wire.types import JsonObj

# The states of the view. `sent`: handed to an agent that reports no MCP status (most ACP
# agents); `dropped` is reported as `failed` with the reason.
STATES = ("starting", "ready", "failed", "needs-auth", "disabled", "sent")
# Agents' own words for them.
_ALIASES = {
    "connected": "ready",
    "pending": "starting",
    "cancelled": "failed",
    "needs_auth": "needs-auth",
}


def report(servers: list[JsonObj]) -> JsonObj:
    """The update an adapter emits: `servers` are `{name, status, error?, tools?}`."""
    return {"sessionUpdate": "session_info_update", "_meta": {"bridge": {"mcpServers": servers}}}


def reported(update: JsonObj) -> list[Any] | None:
    """The servers a `report(...)` update carries, else None."""
    if update.get("sessionUpdate") != "session_info_update":
        return None
    meta = update.get("_meta")
    bridge = meta.get("bridge") if isinstance(meta, dict) else None
    servers = bridge.get("mcpServers") if isinstance(bridge, dict) else None
    return servers if isinstance(servers, list) else None


def state(value: Any) -> str:
    text = str(value or "starting")
    text = _ALIASES.get(text, text)
    return text if text in STATES else "failed"


def tools_by_server(tool_names: list[Any]) -> dict[str, list[str]]:
    """`mcp__SERVER__TOOL` names (Claude Code's init `tools`) grouped by server."""
    out: dict[str, list[str]] = {}
    for name in tool_names:
        if isinstance(name, str) and name.startswith("mcp__"):
            server, sep, tool = name[5:].partition("__")
            if sep:
                out.setdefault(server, []).append(tool)
    return out


class McpStatus:
    """The view of one agent run's MCP servers (a restart starts a new one)."""

    def __init__(self, servers: list[JsonObj], configured: frozenset[str]) -> None:
        self.servers: dict[str, JsonObj] = {}
        for s in servers:
            name = str(s.get("name"))
            self.servers[name] = {
                "name": name,
                "source": "config" if name in configured else "session",
                "transport": str(s.get("type") or "stdio"),
                "status": "starting",
            }

    def view(self) -> list[JsonObj]:
        return [dict(s) for s in self.servers.values()]

    def fold(self, reports: list[Any]) -> None:
        for r in reports:
            if not isinstance(r, dict) or not isinstance(r.get("name"), str):
                continue
            entry = self.servers.setdefault(
                r["name"], {"name": r["name"], "source": "agent", "status": "starting"}
            )
            if "status" in r:  # a report of tools alone keeps the state
                entry["status"] = state(r["status"])
                if entry["status"] == "failed":
                    entry["error"] = str(r.get("error") or "the agent gave no reason")
                else:
                    entry.pop("error", None)
            if isinstance(r.get("tools"), list):
                entry["tools"] = [str(t) for t in r["tools"]]

    def observe(self, update: JsonObj) -> None:
        """Fold a `report(...)` update in, and make it carry the whole view (in place: the
        update is published right after)."""
        servers = reported(update)
        if servers is None:
            return
        self.fold(servers)
        update["_meta"]["bridge"]["mcpServers"] = self.view()

    def summary(self) -> str:
        """One line for humans (the CLI's `prompt` prints it on stderr)."""
        return summary(self.view())


def summary(servers: list[Any]) -> str:
    parts = []
    for s in servers:
        if not isinstance(s, dict):
            continue
        text = f"{s.get('name')} {s.get('status')}"
        if isinstance(s.get("tools"), list):
            n = len(s["tools"])
            text += f" ({n} tool{'s' if n != 1 else ''})"
        if s.get("error"):
            text += f": {s['error']}"
        parts.append(text)
    return "mcp: " + ("; ".join(parts) if parts else "no servers")
