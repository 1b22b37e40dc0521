"""The per-session MCP status (bridge/mcp/status.py): agents' words folded into one view."""

from __future__ import annotations

import subprocess
import sys

from bridge.mcp.status import McpStatus, report, summary, tools_by_server
from tests.conftest import subprocess_env


def test_reports_fold_into_the_whole_view() -> None:
    servers = [
        {"name": "gh", "command": "x", "args": [], "env": []},
        {"type": "http", "name": "docs", "url": "http://h", "headers": []},
    ]
    status = McpStatus(servers, frozenset({"gh"}))
    assert [s["status"] for s in status.view()] == ["starting", "starting"]
    update = report(
        [{"name": "gh", "status": "connected", "tools": ["a", "b"]}, {"name": "docs", "status": "pending"}]
    )
    status.observe(update)
    assert update["_meta"]["bridge"]["mcpServers"] == [
        {"name": "gh", "source": "config", "transport": "stdio", "status": "ready", "tools": ["a", "b"]},
        {"name": "docs", "source": "session", "transport": "http", "status": "starting"},
    ]
    # A failure keeps its reason; a later report of tools alone keeps the state; a server the
    # agent has from its own configuration is listed as the agent's.
    status.fold(
        [{"name": "docs", "status": "failed", "error": "HTTP 401"}, {"name": "mine", "status": "ready"}]
    )
    status.fold([{"name": "gh", "tools": ["a"]}, {"name": "x", "status": "weird"}])
    view = {s["name"]: s for s in status.view()}
    assert view["docs"]["status"] == "failed" and view["docs"]["error"] == "HTTP 401"
    assert view["gh"] == {
        "name": "gh",
        "source": "config",
        "transport": "stdio",
        "status": "ready",
        "tools": ["a"],
    }
    assert view["mine"]["source"] == "agent" and view["x"]["status"] == "failed"
    assert summary(status.view()).startswith("mcp: gh ready (1 tool); docs failed: HTTP 401; mine ready")
    # Other session_info_updates pass untouched.
    title = {"sessionUpdate": "session_info_update", "title": "t"}
    status.observe(title)
    assert title == {"sessionUpdate": "session_info_update", "title": "t"}


def test_tools_by_server_from_claude_tool_names() -> None:
    names = ["Bash", "mcp__gh__search", "mcp__gh__get_issue", "mcp__my-docs__read", "mcp__broken"]
    assert tools_by_server(names) == {"gh": ["search", "get_issue"], "my-docs": ["read"]}


def test_the_daemon_never_imports_the_mcp_package_to_start() -> None:
    code = (
        "import sys; from bridge.__main__ import build_parser; build_parser(); import bridge.app; "
        "assert 'mcp' not in sys.modules, sorted(m for m in sys.modules if m.startswith('mcp'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
