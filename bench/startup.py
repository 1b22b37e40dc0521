"""Start-up: from spawning a process to its `initialize` answer, and what `session/new`
through the bridge costs over the agent's own start.

Variants, each a fresh process per round, rounds interleaved (order rotated):
  bridge        `python -m bridge` (what `agent-bridge` runs) with a default agent (the fake
                ACP agent): `initialize` then probes that agent once (spawn + handshake) to
                advertise only what both support; fresh state dir, durable store
  bridge-bare   the same without a default agent: `initialize` spawns nothing
  bridge-native `--agent codex`: a native agent, whose capabilities are static, so that
                `initialize` spawns nothing and imports none of the adapter's modules
  bridge-nopyc  bridge-bare without a bytecode cache, as this sandbox runs everything
                (PYTHONDONTWRITEBYTECODE=1 and no __pycache__ in the checkout): every start
                compiles the daemon's own modules. The other Python variants use a bytecode
                cache (PYTHONPYCACHEPREFIX in the bench's temp dir, filled by one untimed start),
                as an installed package has
  fake-agent    the fake ACP agent itself (a small stdlib Python program)
  python        `python -c pass`-like floor: an interpreter that answers one line
  claude-acp    @zed-industries/claude-agent-acp (Node), when installed: a peer for scale
  codex-acp     @zed-industries/codex-acp (Rust), when installed
  installed-*   (`--installed`) bridge-bare and bridge-native from a fresh venv where the
                checkout was pip-installed (bench/installed.py): the bytecode a user has
  base-*        (`--baseline DIR`) bridge-bare and bridge-native from another checkout
                (e.g. `git worktree add /tmp/base HEAD~1`): before/after in the same run

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
from bench.targets import Figures, with_load

BIN = C.AGENTS / "node_modules" / ".bin"
ECHO_INIT = (
    "import sys,json\n"
    "line=sys.stdin.readline()\n"
    "print(json.dumps({'jsonrpc':'2.0','id':json.loads(line)['id'],'result':{'protocolVersion':1}}),flush=True)\n"
    "sys.stdin.read()\n"
)


def variants(tmp: Path, heads: dict[str, list[str]]) -> dict[str, Callable[[], list[str]]]:
    """name → argv maker (the bridge gets a fresh state dir at every start). `heads`: other
    daemons to start (prefix → argv head), each as `<prefix>-bare` and `<prefix>-native`."""
    bare = C.bridge_config(tmp, default_agent=None, name="bare.toml")
    out: dict[str, Callable[[], list[str]]] = {
        "bridge": lambda: C.bridge_argv(tmp),
        "bridge-bare": lambda: C.bridge_argv(tmp, config=bare),
        "bridge-native": lambda: C.bridge_argv(tmp, "--agent", "codex", config=bare),
        "bridge-nopyc": lambda: C.bridge_argv(tmp, config=bare),
        "fake-agent": C.direct_argv,
        "python": lambda: [C.PY, "-c", ECHO_INIT],
    }
    for prefix, head in heads.items():
        out[f"{prefix}-bare"] = lambda head=head: C.bridge_argv(tmp, config=bare, head=head)  # type: ignore[misc]
        out[f"{prefix}-native"] = lambda head=head: C.bridge_argv(
            tmp, "--agent", "codex", config=bare, head=head
        )  # type: ignore[misc]
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


async def time_session_new(tmp: Path, env: dict[str, str]) -> tuple[float, float]:
    """(bridge session/new, agent's own spawn+initialize+session/new)."""
    async with C.running(C.bridge_argv(tmp), name="bridge", tmp=tmp, env=env) as peer:
        await peer.initialize()
        t0 = time.perf_counter()
        await peer.new_session(str(tmp))
        through = time.perf_counter() - t0
    t0 = time.perf_counter()
    async with C.running(C.direct_argv(), name="fake-agent", tmp=tmp, env=env) as peer:
        await peer.initialize()
        await peer.new_session(str(tmp))
        direct = time.perf_counter() - t0
    return through, direct


def peer_env(tmp: Path, *, pyc: bool = True) -> dict[str, str]:
    # The Node/Rust adapters answer initialize without a model; keep their homes isolated.
    home = tmp / "home"
    for d in (home, home / ".claude", home / ".codex"):
        d.mkdir(exist_ok=True)
    cache = {"PYTHONPYCACHEPREFIX": str(tmp / "pycache")} if pyc else {"PYTHONDONTWRITEBYTECODE": "1"}
    env = C.child_env(
        HOME=str(home),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        CODEX_HOME=str(home / ".codex"),
        ANTHROPIC_API_KEY="sk-ant-fake",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        **cache,
    )
    if pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def import_costs(env: dict[str, str], top: int = 12) -> tuple[float, list[tuple[str, float, int]]]:
    """Import time on the stdio serve path (`python -X importtime`, one run): the total, and
    the self time grouped by top-level package (ms, modules), largest first."""
    code = "import bridge.__main__, bridge.cli.serve, bridge.app, bridge.transports.stdio, adapters.registry"
    done = subprocess.run(
        [C.PY, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, check=True
    )
    ms: dict[str, float] = {}
    count: dict[str, int] = {}
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            pkg = m.group(4).split(".")[0]
            ms[pkg] = ms.get(pkg, 0.0) + int(m.group(1)) / 1000
            count[pkg] = count.get(pkg, 0) + 1
    rows = sorted(((k, v, count[k]) for k, v in ms.items()), key=lambda r: -r[1])
    return sum(ms.values()), rows[:top]


async def run(
    repeats: int, only: list[str] | None, installed: bool, baseline: Path | None, session_new: bool = True
) -> Figures:
    C.header(f"start-up: spawn → initialize answer, {repeats} rounds")
    with C.workdir("startup") as tmp:
        env = peer_env(tmp)
        nopyc = peer_env(tmp, pyc=False)
        heads: dict[str, list[str]] = {}
        if installed:
            from bench import installed as venv

            heads["installed"] = venv.head(venv.make_venv(tmp))
            print(f"   pip-installed: {' '.join(heads['installed'])}")
        if baseline is not None:
            heads["base"] = [
                C.PY,
                "-c",
                f"import sys, runpy; sys.path[0] = {str(baseline)!r}; runpy.run_module('bridge', run_name='__main__')",
            ]
        table = variants(tmp, heads)
        if only:
            table = {k: v for k, v in table.items() if k in only or k.split("-")[0] in heads}
        for warm in (
            "bridge",
            "fake-agent",
            *(f"{p}-bare" for p in heads),
        ):  # fills the bytecode caches; not timed
            if warm in table:
                await time_initialize(table[warm](), tmp, warm, env)
        times: dict[str, list[float]] = {k: [] for k in table}
        loads = [C.load1()]
        for r, order in enumerate(C.rotations(list(table), repeats)):
            for name in order:
                e = nopyc if name == "bridge-nopyc" else env
                times[name].append(await time_initialize(table[name](), tmp, name, e))
            print(
                f"   round {r + 1:2d}: "
                + "  ".join(f"{k} {times[k][-1] * 1000:.0f}" for k in table)
                + f"  ({C.load()})"
            )
            loads.append(C.load1())
        rows = [
            [k, f"{C.median(v) * 1000:.0f} ms", f"{min(v) * 1000:.0f} ms", f"{max(v) * 1000:.0f} ms"]
            for k, v in times.items()
        ]
        print(C.table(rows, ["spawn → initialize answer", "median", "min", "max"]))
        if "bridge-nopyc" in times and "bridge-bare" in times:
            d = [b - p for b, p in zip(times["bridge-nopyc"], times["bridge-bare"], strict=True)]
            print(
                f"   compiling the daemon's modules at every start (no .pyc): median {C.median(d) * 1000:.0f} ms"
            )
        if "bridge-bare" in times and "python" in times:
            d = [b - p for b, p in zip(times["bridge-bare"], times["python"], strict=True)]
            print(
                f"   bridge-bare minus a bare interpreter: median {C.median(d) * 1000:.0f} ms (imports, store, config)"
            )
        if "bridge" in times and "bridge-bare" in times:
            d = [b - p for b, p in zip(times["bridge"], times["bridge-bare"], strict=True)]
            print(f"   the default agent's probe in initialize: median {C.median(d) * 1000:.0f} ms")
        through, direct = [], []
        for _ in range(repeats if session_new else 0):
            a, b = await time_session_new(tmp, env)
            through.append(a)
            direct.append(b)
        over = [a - b for a, b in zip(through, direct, strict=True)]
        if over:
            print(
                f"   session/new through the bridge: median {C.median(through) * 1000:.0f} ms; the agent's own "
                f"spawn+initialize+session/new: {C.median(direct) * 1000:.0f} ms; overhead (paired median) "
                f"{C.median(over) * 1000:.0f} ms"
            )
        total, by_package = import_costs(env)
    print(
        f"   imports on the serve path, with the bytecode cache: {total:.0f} ms in all (one run); by package:"
    )
    for pkg, ms, n in by_package:
        print(f"     {ms:6.1f} ms  {pkg} ({n} modules)")
    print(f"   {C.load()} at end")
    names = {
        "bridge-bare": "bridge_bare_ms",
        "bridge-native": "bridge_native_ms",
        "bridge": "bridge_acp_agent_ms",
        "codex-acp": "codex_acp_ms",
        "claude-acp": "claude_acp_ms",
        "python": "python_ms",
        "installed-bare": "installed_bare_ms",
        "installed-native": "installed_native_ms",
        "base-bare": "base_bare_ms",
        "base-native": "base_native_ms",
    }
    figures: Figures = {
        f"startup.{names[k]}": C.median(v) * 1000 for k, v in times.items() if k in names and v
    }
    if over:
        figures["startup.session_new_overhead_ms"] = C.median(over) * 1000
    return with_load(figures, "startup", loads)


def main(argv: list[str]) -> Figures:
    ap = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__)
    ap.add_argument("-r", "--repeats", type=int, default=15)
    ap.add_argument(
        "--only",
        help="comma-separated variants (bridge,bridge-bare,bridge-nopyc,fake-agent,python,claude-acp,codex-acp)",
    )
    ap.add_argument(
        "--installed", action="store_true", help="also from a fresh `pip install .` venv (bench/installed.py)"
    )
    ap.add_argument(
        "--baseline", type=Path, help="also another checkout of the bridge (before/after in one run)"
    )
    ap.add_argument("--no-session-new", action="store_true", help="skip the session/new overhead rounds")
    a = ap.parse_args(argv)
    only = a.only.split(",") if a.only else None
    return asyncio.run(run(a.repeats, only, a.installed, a.baseline, not a.no_session_new))
