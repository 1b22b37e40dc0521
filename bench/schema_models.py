"""What the official ACP schema models (`agent-client-protocol`'s `acp.schema`) cost against
the bridge's own pydantic models, at the two edges where the bridge interprets ACP (issue 21):

  import     a fresh interpreter (pydantic already imported) importing the models
  params     validating the params of `session/new` and `session/prompt` (what the daemon does
             once per request): the daemon's strict subclasses (bridge/acp/acp_params.py)
             against the generated models as they are (lenient)
  updates    typing one `session/update` (what the client library does once per notification):
             the client's own models (bridge/client/updates.py) against the generated ones

Before issue 21 moved the daemon's params to the official models, its hand-written ones took
2.1 µs (session/new) and 1.2 µs (session/prompt) here, and imported in 46 ms; after (idle
machine): 2.7 µs and 2.2 µs (the prompt's content blocks are now checked too), 42 ms for
`bridge.acp.params` and 350 ms for `bridge.acp.acp_params` at the first session.

Figures are per call, the median of `--rounds` rounds of `--n` calls each.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

NEW = {
    "cwd": "/tmp/project",
    "mcpServers": [{"name": "fs", "command": "/usr/bin/mcp-fs", "args": ["--root", "/tmp"], "env": []}],
}
PROMPT = {
    "sessionId": "sess-0123456789",
    "prompt": [{"type": "text", "text": "Explain this repository in one paragraph."}],
}
CHUNK = {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "Hello, world."}}
TOOL = {
    "sessionUpdate": "tool_call",
    "toolCallId": "call-1",
    "title": "Read README.md",
    "kind": "read",
    "status": "pending",
    "locations": [{"path": "/tmp/project/README.md"}],
    "rawInput": {"path": "/tmp/project/README.md"},
}


def per_call(fn: Callable[[], Any], n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t) / n)
    return statistics.median(times)


def import_time(module: str, rounds: int) -> float:
    code = f"import pydantic.main, time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(rounds)
    ]
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    import acp.schema as S

    from bridge.acp import params as P
    from bridge.client.updates import parse_update

    print("import (fresh interpreter, pydantic loaded):")
    for module in ("bridge.acp.params", "bridge.acp.acp_params", "bridge.client.updates", "acp.schema"):
        print(f"  {module:26s} {import_time(module, args.rounds) * 1e3:8.1f} ms")
    rows: list[tuple[str, Callable[[], Any]]] = [
        ("session/new   bridge strict", lambda: P.NewSessionParams.model_validate(NEW)),
        ("session/new   acp.schema as is", lambda: S.NewSessionRequest.model_validate(NEW)),
        ("session/prompt bridge strict", lambda: P.PromptParams.model_validate(PROMPT)),
        ("session/prompt acp.schema as is", lambda: S.PromptRequest.model_validate(PROMPT)),
        ("update chunk  bridge", lambda: parse_update(CHUNK)),
        ("update chunk  acp.schema", lambda: S.AgentMessageChunk.model_validate(CHUNK)),
        ("update tool   bridge", lambda: parse_update(TOOL)),
        ("update tool   acp.schema", lambda: S.ToolCallStart.model_validate(TOOL)),
    ]
    print(f"validation (per call, median of {args.rounds} x {args.n}):")
    for name, fn in rows:
        print(f"  {name:32s} {per_call(fn, args.n, args.rounds) * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
