"""Start-up: from spawning a process to its `initialize` answer, and what `session/new`
through the bridge costs over the agent's own start.

Variants, each a fresh process per round, rounds interleaved (order rotated):
  bridge        `python -m bridge` (what `agent-bridge` runs) with a default agent (the fake
                ACP agent): `initialize` then probes that agent once (spawn + handshake) to
                advertise only what both support; fresh state dir, durable store
  bridge-bare   the same without a default agent: `initialize` spawns nothing
  fake-agent    the fake ACP agent itself (a small stdlib Python program)
  python        `python -c pass`-like floor: an interpreter that answers one line
  claude-acp    @zed-industries/claude-agent-acp (Node), when installed: a peer for scale
  codex-acp     @zed-industries/codex-acp (Rust), when installed

`session/new` overhead: through the bridge, `session/new` spawns the agent, runs its
`initialize` and its `session/new`; directly, the same three steps cost the agent's own start.
The difference is what the bridge adds (store, catalog, bookkeeping).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench import common as C

BIN = C.ROOT / ".agents" / "node_modules" / ".bin"
ECHO_INIT = (
    "import sys,json\n"
    "line=sys.stdin.readline()\n"
    "print(json.dumps({'jsonrpc':'2.0','id':json.loads(line)['id'],'result':{'protocolVersion':1}}),flush=True)\n"
    "sys.stdin.read()\n"
)


def variants(tmp: Path) -> dict[str, Callable[[], list[str]]]:
    """name → argv maker (the bridge gets a fresh state dir at every start)."""
    bare = C.bridge_config(tmp, default_agent=None, name="bare.toml")
    out: dict[str, Callable[[], list[str]]] = {
        "bridge": lambda: C.bridge_argv(tmp),
        "bridge-bare": lambda: C.bridge_argv(tmp, config=bare),
        "fake-agent": C.direct_argv,
        "python": lambda: [C.PY, "-c", ECHO_INIT],
    }
    for name in ("claude-agent-acp", "codex-acp"):
        path = BIN / name
        if path.exists():
            out[name.replace("-agent", "")] = lambda path=path: [str(path)]  # type: ignore[misc]
    return out


async def time_initialize(argv: list[str], tmp: Path, name: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    async with C.running(argv, name=name, tmp=tmp, env=env, cwd=str(tmp)) as peer:
        await asyncio.wait_for(peer.initialize(), 60)
        return time.perf_counter() - t0


async def time_session_new(tmp: Path) -> tuple[float, float]:
    """(bridge session/new, agent's own spawn+initialize+session/new)."""
    async with C.running(C.bridge_argv(tmp), name="bridge", tmp=tmp) as peer:
        await peer.initialize()
        t0 = time.perf_counter()
        await peer.new_session(str(tmp))
        through = time.perf_counter() - t0
    t0 = time.perf_counter()
    async with C.running(C.direct_argv(), name="fake-agent", tmp=tmp) as peer:
        await peer.initialize()
        await peer.new_session(str(tmp))
        direct = time.perf_counter() - t0
    return through, direct


def peer_env(tmp: Path) -> dict[str, str]:
    # The Node/Rust adapters answer initialize without a model; keep their homes isolated.
    home = tmp / "home"
    for d in (home, home / ".claude", home / ".codex"):
        d.mkdir(exist_ok=True)
    return C.child_env(
        HOME=str(home),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        CODEX_HOME=str(home / ".codex"),
        ANTHROPIC_API_KEY="sk-ant-fake",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )


def import_costs(top: int = 12) -> list[tuple[str, float]]:
    """The biggest imports on the stdio serve path (`python -X importtime`), cumulative ms."""
    code = "import bridge.__main__, bridge.cli.serve, bridge.app, bridge.transports.stdio, adapters.registry"
    done = subprocess.run(
        [C.PY, "-X", "importtime", "-c", code], capture_output=True, text=True, env=C.child_env(), check=True
    )
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) <= 2:  # top-level and first-level imports
            rows.append((m.group(4), int(m.group(2)) / 1000))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


async def run(repeats: int, only: list[str] | None) -> None:
    C.header(f"start-up: spawn → initialize answer, {repeats} rounds")
    with C.workdir("startup") as tmp:
        env = peer_env(tmp)
        table = variants(tmp)
        if only:
            table = {k: v for k, v in table.items() if k in only}
        times: dict[str, list[float]] = {k: [] for k in table}
        for r, order in enumerate(C.rotations(list(table), repeats)):
            for name in order:
                times[name].append(await time_initialize(table[name](), tmp, name, env))
            print(f"   round {r + 1:2d}: " + "  ".join(f"{k} {times[k][-1] * 1000:.0f}" for k in table) + f"  ({C.load()})")
        rows = [
            [k, f"{C.median(v) * 1000:.0f} ms", f"{min(v) * 1000:.0f} ms", f"{max(v) * 1000:.0f} ms"] for k, v in times.items()
        ]
        print(C.table(rows, ["spawn → initialize answer", "median", "min", "max"]))
        if "bridge-bare" in times and "python" in times:
            d = [b - p for b, p in zip(times["bridge-bare"], times["python"], strict=True)]
            print(f"   bridge-bare minus a bare interpreter: median {C.median(d) * 1000:.0f} ms (imports, store, config)")
        if "bridge" in times and "bridge-bare" in times:
            d = [b - p for b, p in zip(times["bridge"], times["bridge-bare"], strict=True)]
            print(f"   the default agent's probe in initialize: median {C.median(d) * 1000:.0f} ms")
        through, direct = [], []
        for _ in range(repeats):
            a, b = await time_session_new(tmp)
            through.append(a)
            direct.append(b)
        over = [a - b for a, b in zip(through, direct, strict=True)]
        print(
            f"   session/new through the bridge: median {C.median(through) * 1000:.0f} ms; the agent's own "
            f"spawn+initialize+session/new: {C.median(direct) * 1000:.0f} ms; overhead (paired median) "
            f"{C.median(over) * 1000:.0f} ms"
        )
    print("   largest imports on the serve path (cumulative, one run):")
    for mod, ms in import_costs():
        print(f"     {ms:6.1f} ms  {mod}")
    print(f"   {C.load()} at end")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__)
    ap.add_argument("-r", "--repeats", type=int, default=15)
    ap.add_argument("--only", help="comma-separated variants (bridge,bridge-bare,fake-agent,python,claude-acp,codex-acp)")
    a = ap.parse_args(argv)
    asyncio.run(run(a.repeats, a.only.split(",") if a.only else None))
