"""What `initialize` advertises for the native agents (ACP `agentCapabilities`), by protocol.

Here rather than in each adapter's module so that a daemon whose default agent is Claude
Code or Codex answers `initialize` without importing that adapter (issue 17: nothing the
first answer does not need); the adapters advertise the same dicts (`static_capabilities`).
"""

from __future__ import annotations

from bridge.wire.types import JsonObj

CLAUDE: JsonObj = {
    "loadSession": True,
    "promptCapabilities": {"image": True, "audio": False, "embeddedContext": True},
    "mcpCapabilities": {"http": True, "sse": True},
    "sessionCapabilities": {"resume": {}, "fork": {}, "additionalDirectories": {}},
}
CODEX: JsonObj = {
    "loadSession": True,
    "promptCapabilities": {"image": True, "audio": False, "embeddedContext": True},
    "mcpCapabilities": {"http": True, "sse": False},
    "sessionCapabilities": {"resume": {}, "close": {}, "fork": {}},
}
BY_PROTOCOL: dict[str, JsonObj] = {"claude": CLAUDE, "codex": CODEX}
