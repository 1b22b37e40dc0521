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
import threading
from pathlib import Path
from typing import IO

from bridge.acp import schema_load
from bridge.acp.server import WARM_UP

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
    # The official ACP schema models (bridge/acp/acp_params.py): at the first session, and
    # then only a part of them (bridge/acp/schema_subset.py), never the `acp` package.
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


def _imported(stderr: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", stderr, re.M)}


def run_initialize(tmp_path: Path, *extra: str, until: str = WARM_UP) -> tuple[set[str], set[str]]:
    """(modules imported before the warm-up that follows the answer, modules imported after,
    up to the stderr line holding `until`). The daemon logs the warm-up's start (debug) on
    stderr, in order with importtime's lines; its input stays open until `until` is seen, so
    the warm-up is not cut short by the end of input."""
    config = tmp_path / "bridge.toml"
    config.write_text("login_shell_env = false\n")
    request = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-X", "importtime", "-m", "bridge", "--config", str(config)]
    argv += ["--state-dir", str(tmp_path / "state"), "--log-level", "debug", *extra]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    lines: list[str] = []
    seen = threading.Event()

    def read_stderr(stream: IO[str]) -> None:
        for line in stream:  # read all of it: a full pipe would stall the daemon
            lines.append(line)
            if until in line:
                seen.set()
        seen.set()  # end of stderr: the daemon is gone

    reader = threading.Thread(target=read_stderr, args=(proc.stderr,), daemon=True)
    reader.start()
    try:
        proc.stdin.write(request + "\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        assert answer["id"] == 1 and answer["result"]["protocolVersion"] == 1
        assert seen.wait(60), f"no {until!r} on the daemon's stderr within 60 s"
    finally:
        proc.stdin.close()
        assert proc.wait(60) == 0
        reader.join(10)
    before, marker, after = "".join(lines).partition(WARM_UP)
    assert marker, "the daemon warms up after the first initialize answer"
    names = _imported(before)
    assert "bridge.app" in names, "importtime saw the daemon's own modules"
    return names, _imported(after)


def imported_to_answer_initialize(tmp_path: Path, *extra: str) -> set[str]:
    return run_initialize(tmp_path, *extra)[0]


def kept_out_but_loaded(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == k or n.startswith(k + ".") for k in KEPT_OUT))


def test_initialize_imports_no_transport_store_or_adapter_extras(tmp_path: Path) -> None:
    assert kept_out_but_loaded(imported_to_answer_initialize(tmp_path)) == []


def test_initialize_with_a_native_default_agent_imports_none_of_them(tmp_path: Path) -> None:
    # Native agents answer `initialize` from static capabilities: the adapter registry is read,
    # no agent is spawned and none of the adapters' own modules is imported.
    assert kept_out_but_loaded(imported_to_answer_initialize(tmp_path, "--agent", "codex")) == []


def test_the_warm_up_after_the_answer_loads_what_the_first_session_needs(tmp_path: Path) -> None:
    # Off the path to the first answer, on the way to the first session/new.
    # (importtime does not see `importlib.import_module`, the loader's way to acp_params.)
    after = run_initialize(tmp_path, until=schema_load.LOADED)[1]
    assert {"bridge.acp.schema_subset", "jsonrpcserver.async_dispatcher"} <= after
    # Of the official models only the params models' part is built (bridge/acp/schema_subset.py).
    assert not {n for n in after if n == "acp" or n.startswith("acp.")}
