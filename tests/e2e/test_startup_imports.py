"""What the stdio daemon imports to answer `initialize` (issue 17, start-up).

Structural, not timed: the real `python -m bridge` answers one `initialize` and exits at the
end of its input, under `-X importtime`, which names every module the process imported.
Packages that only other paths need (the WebSocket/HTTP transports, PostgreSQL, MCP, the
agent adapters' own modules) must stay off the path to the first answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Not imported before the first answer today; keep it that way.
KEPT_OUT = (
    "websockets",
    "starlette",
    "uvicorn",
    "psycopg",
    "psycopg_pool",
    "mcp",
    "httpx",
    "adapters.codex",
    "adapters.claude",
    # The dispatcher answers `initialize` itself (bridge/rpc/dispatch.py, `direct`).
    "jsonrpcserver",
    "jsonschema",
    # The official ACP schema models (bridge/acp/acp_params.py): ~0.3 s, at the first session.
    "acp",
    # Config and `initialize` params are read without pydantic when they are well-typed
    # (bridge/config.py `_plain`, bridge/acp/handlers.py `_initialize_params`); the request
    # params' models load at the first request that needs them (bridge/lazy.py).
    "pydantic",
    "pydantic_core",
    "bridge.acp.params",
    "bridge.config_schema",
    # Process checks; the daemon's own start time is read from /proc (bridge/store/base.py).
    "psutil",
    # `agent-bridge inspect` only (its module is imported to build the command line).
    "urllib.request",
)


def imported_to_answer_initialize(tmp_path: Path, *extra: str) -> set[str]:
    config = tmp_path / "bridge.toml"
    config.write_text("login_shell_env = false\n")
    request = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "bridge",
            "--config",
            str(config),
            "--state-dir",
            str(tmp_path / "state"),
            *extra,
        ],
        input=request + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    answer = json.loads(done.stdout.splitlines()[0])
    assert answer["id"] == 1 and answer["result"]["protocolVersion"] == 1
    names = {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", done.stderr, re.M)}
    assert "bridge.app" in names, "importtime saw the daemon's own modules"
    return names


def kept_out_but_loaded(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == k or n.startswith(k + ".") for k in KEPT_OUT))


def test_initialize_imports_no_transport_store_or_adapter_extras(tmp_path: Path) -> None:
    assert kept_out_but_loaded(imported_to_answer_initialize(tmp_path)) == []


def test_initialize_with_a_native_default_agent_imports_none_of_them(tmp_path: Path) -> None:
    # Native agents answer `initialize` from static capabilities: the adapter registry is read,
    # no agent is spawned and none of the adapters' own modules is imported.
    assert kept_out_but_loaded(imported_to_answer_initialize(tmp_path, "--agent", "codex")) == []
