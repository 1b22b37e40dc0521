"""Helpers for the diagnostics tests: configs of misbehaving agents."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from tests.conftest import FAKE_AGENT


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def write_config(path: Path, agents: dict[str, dict[str, Any]], **top: Any) -> Path:
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for name, entry in agents.items():
        lines.append(f"[agents.{json.dumps(name)}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def fake_acp(**env: str) -> dict[str, Any]:
    """The fake ACP agent (tests/fakes/fake_acp_agent.py) with FAKE_ACP_* settings."""
    return {"protocol": "acp", "command": sys.executable, "args": [str(FAKE_AGENT)], "env": env}


def sh(script: str, **env: str) -> dict[str, Any]:
    """An "agent" that is a shell script (exits, prints to stderr...)."""
    return {"protocol": "acp", "command": "/bin/sh", "args": ["-c", script], "env": env}


def script(path: Path, text: str, *, executable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mode = stat.S_IRUSR | stat.S_IWUSR | (stat.S_IXUSR if executable else 0)
    os.chmod(path, mode)
    return path


# An ACP agent from the future: answers initialize with protocol version 2.
FUTURE_AGENT = """
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        answer = {"protocolVersion": 2, "agentCapabilities": {}, "authMethods": []}
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": answer}), flush=True)
"""


# Opens a session, then dies on the first prompt printing its key to stderr.
LEAKY_AGENT = """
import json, os, sys
def send(obj):
    print(json.dumps({"jsonrpc": "2.0", **obj}), flush=True)
for line in sys.stdin:
    msg = json.loads(line)
    method = msg.get("method")
    if method == "initialize":
        send({"id": msg["id"], "result": {"protocolVersion": 1, "agentCapabilities": {}, "authMethods": []}})
    elif method == "session/new":
        send({"id": msg["id"], "result": {"sessionId": "leaky-1"}})
    elif method == "session/prompt":
        sys.stderr.write("401 from upstream with key " + os.environ["LEAKY_API_KEY"] + "\\n")
        sys.stderr.flush()
        os._exit(1)
"""


def broken_agents(tmp: Path) -> dict[str, dict[str, Any]]:
    """One agent per known way to fail at start, plus a healthy one."""
    noexec = script(tmp / "bin" / "noexec-agent", "#!/bin/sh\nexit 0\n", executable=False)
    needs_node = script(tmp / "bin" / "node-agent", "#!/usr/bin/env node\nconsole.log('hi')\n")
    (tmp / "empty").mkdir(exist_ok=True)
    return {
        "healthy": fake_acp(),
        "missing": {"protocol": "acp", "command": "agent-bridge-test-no-such-agent"},
        "noexec": {"protocol": "acp", "command": str(noexec)},
        "nologin": fake_acp(FAKE_ACP_START="exit"),
        "crashy": sh("echo 'panic: index out of range' >&2; exit 3"),
        "nonode": {"protocol": "acp", "command": str(needs_node), "env": {"PATH": str(tmp / "empty")}},
        "mute": fake_acp(FAKE_ACP_START="noinit"),
        "oldcli": sh("echo \"error: unknown option '--acp'\" >&2; exit 1"),
        "future": {"protocol": "acp", "command": sys.executable, "args": ["-c", FUTURE_AGENT]},
        "chatty": fake_acp(FAKE_ACP_START="banner"),
    }
