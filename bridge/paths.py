"""Where the daemon keeps its state: shared by the daemon and by the client library (which
reads the WebSocket token a daemon wrote there), so it sits below both."""

from __future__ import annotations

import os
from collections.abc import Mapping

# `<state-dir>/ws-token`: the bearer token `agent-bridge serve --listen` writes at start.
WS_TOKEN_FILE = "ws-token"


def default_state_dir(env: Mapping[str, str] = os.environ) -> str:
    if env.get("AGENT_BRIDGE_STATE_DIR"):
        return env["AGENT_BRIDGE_STATE_DIR"]
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "agent-bridge")
