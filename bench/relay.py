"""Relay throughput: the fake ACP agent streams N `agent_message_chunk` updates in one turn.

Three variants, interleaved round by round (order rotated), each a fresh process tree:
  direct  the client talks to the fake agent itself
  relay   `cat | agent | cat`: two byte-copying processes in between (any extra hop)
  bridge  `agent-bridge` with its durable SQLite log on (the default), passthrough adapter

Measured: turn wall time from sending `session/prompt` to its answer (all N chunks received
before it), and the CPU each party spent on the turn: the middle hop (the daemon, or the two
`cat`s), the agent, the client (this process). Ratios are taken per round, then the median
across rounds. CPU times come from /proc in clock ticks (10 ms: ±0.5 µs a chunk at N=20000).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import psutil

from bench import common as C
from bench.targets import Figures, with_load

VARIANTS = ("direct", "relay", "bridge")
BASELINE: list[Path] = []


def _agent_pid(root: int) -> int | None:
    with contextlib.suppress(psutil.Error):
        for p in [psutil.Process(root), *psutil.Process(root).children(recursive=True)]:
            cmd = p.cmdline()
            if len(cmd) > 1 and "python" in Path(cmd[0]).name and cmd[1] == str(C.FAKE_AGENT):
                return p.pid
    return None


async def one_turn(
    variant: str, n: int, tmp: Path, synchronous: str | None = None, argv: list[str] | None = None
) -> dict[str, float]:
    if argv is not None:
        pass
    elif variant == "direct":
        argv = C.direct_argv()
    elif variant == "relay":
        argv = C.relay_argv()
    elif variant == "base":  # another checkout (`--baseline DIR`): before/after in one run
        run_it = f"import sys, runpy; sys.path[0] = {str(BASELINE[0])!r}; runpy.run_module('bridge', run_name='__main__')"
        argv = C.bridge_argv(tmp, head=[C.PY, "-c", run_it])
    elif variant.startswith("bridge:"):  # e.g. bridge:FULL: another SQLite `synchronous`
        argv = C.bridge_argv(tmp, synchronous=variant.partition(":")[2].upper())
    else:
        argv = C.bridge_argv(tmp, synchronous=synchronous)
    async with C.running(argv, name=variant, tmp=tmp) as peer:
        await peer.initialize()
        sid = (await peer.new_session(str(tmp)))["sessionId"]
        await peer.prompt(sid, "stream 10")  # warm: the agent's prompt thread, the bridge's adapter
        agent = _agent_pid(peer.pid)
        hop0 = C.tree_cpu(peer.pid) - (C.tree_cpu(agent, children=False) if agent else 0.0)
        agent0 = C.tree_cpu(agent, children=False) if agent else 0.0
        before = peer.counts(sid).chunks
        load = C.load1()
        client0 = time.process_time()
        t0 = asyncio.get_running_loop().time()
        result = await peer.prompt(sid, f"stream {n}")
        wall = asyncio.get_running_loop().time() - t0
        client = time.process_time() - client0
        hop1 = C.tree_cpu(peer.pid) - (C.tree_cpu(agent, children=False) if agent else 0.0)
        agent1 = C.tree_cpu(agent, children=False) if agent else 0.0
        got = peer.counts(sid).chunks - before
        if got != n or result.get("stopReason") != "end_turn":
            raise RuntimeError(f"{variant}: {got}/{n} chunks, result {result}; {peer.stderr_tail()}")
    hop, own = hop1 - hop0, agent1 - agent0
    return {
        "wall": wall,
        "hop_cpu": hop,
        "agent_cpu": own,
        "client_cpu": client,
        "cpu": hop + own + client,
        "load": load,
    }


async def run(n: int, repeats: int, variants: tuple[str, ...], synchronous: str | None) -> Figures:
    C.header(f"relay throughput: {n} agent_message_chunk updates in one turn, {repeats} rounds")
    got: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with C.workdir("relay") as tmp:
        for r, order in enumerate(C.rotations(variants, repeats)):
            line = []
            for v in order:
                m = await one_turn(v, n, tmp, synchronous)
                got[v].append(m)
                line.append(f"{v} {m['wall'] * 1000:7.1f} ms")
            print(f"   round {r + 1:2d}: " + "  ".join(line) + f"   ({C.load()})")
    walls = {v: [m["wall"] for m in got[v]] for v in variants}
    rows = []
    for v in variants:
        med = C.median(walls[v])
        rows.append(
            [
                v,
                f"{med * 1000:.0f} ms",
                f"{n / med:,.0f}/s",
                f"{C.median([m['hop_cpu'] for m in got[v]]) / n * 1e6:.1f} µs" if v != "direct" else "-",
                f"{C.median([m['agent_cpu'] for m in got[v]]) / n * 1e6:.1f} µs",
                f"{C.median([m['client_cpu'] for m in got[v]]) / n * 1e6:.1f} µs",
                f"{C.median([m['cpu'] for m in got[v]]) / n * 1e6:.1f} µs",
            ]
        )
    head = [
        "variant",
        "turn wall (median)",
        "chunks/s",
        "hop CPU/chunk",
        "agent CPU/chunk",
        "client CPU/chunk",
    ]
    print(C.table(rows, [*head, "all CPU/chunk"]))
    pairs = [
        ("bridge", "relay"),
        ("bridge", "direct"),
        ("relay", "direct"),
        ("base", "relay"),
        ("bridge", "base"),
    ]
    pairs += [(v, "bridge") for v in variants if v.startswith("bridge:")]
    for a, b in pairs:
        if a in walls and b in walls:
            ratios = [x / y for x, y in zip(walls[a], walls[b], strict=True)]
            print(
                f"   {a}/{b}: median of per-round ratios {C.median(ratios):.2f}x "
                f"(min {min(ratios):.2f}, max {max(ratios):.2f}); ratio of medians "
                f"{C.median(walls[a]) / C.median(walls[b]):.2f}x"
            )
    cpu = {v: [m["cpu"] for m in got[v]] for v in variants}
    if "bridge" in cpu and "relay" in cpu:
        ratios = [x / y for x, y in zip(cpu["bridge"], cpu["relay"], strict=True)]
        print(
            f"   CPU of all processes per turn, bridge/relay: {C.median(ratios):.2f}x "
            "(on a saturated machine this, not the wall time, sets the throughput)"
        )
    print(f"   {C.load()} at end")
    figures: Figures = {}
    if "bridge" in walls and "relay" in walls:
        ratios = [x / y for x, y in zip(walls["bridge"], walls["relay"], strict=True)]
        figures["relay.bridge_over_relay_x"] = C.median(ratios)
    if "bridge" in got:
        figures["relay.bridge_cpu_per_chunk_us"] = C.median([m["hop_cpu"] for m in got["bridge"]]) / n * 1e6
    return with_load(figures, "relay", [m["load"] for ms in got.values() for m in ms])


def main(argv: list[str]) -> Figures:
    ap = argparse.ArgumentParser(prog="python -m bench relay", description=__doc__)
    ap.add_argument("-n", type=int, default=20_000, help="chunks per turn (default 20000)")
    ap.add_argument("-r", "--repeats", type=int, default=7, help="rounds (default 7)")
    ap.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated, from "
        + ",".join(VARIANTS)
        + ", plus bridge:OFF|NORMAL|FULL (the log's durability)",
    )
    ap.add_argument(
        "--synchronous", choices=["OFF", "NORMAL", "FULL"], help="SQLite synchronous for the bridge"
    )
    ap.add_argument(
        "--installed",
        action="store_true",
        help="the bridge pip-installed in a fresh venv (bench/installed.py)",
    )
    ap.add_argument("--baseline", type=Path, help="also another checkout of the bridge, as variant `base`")
    a = ap.parse_args(argv)
    if a.baseline is not None:
        BASELINE[:] = [a.baseline]
        a.variants += ",base"
    if a.installed:
        return _installed(a)
    return asyncio.run(run(a.n, a.repeats, tuple(a.variants.split(",")), a.synchronous))


def _installed(a: argparse.Namespace) -> Figures:
    from bench import installed

    with C.workdir("relay-venv") as tmp:
        C.BRIDGE_HEAD = installed.head(installed.make_venv(tmp))
        print(f"   the bridge as pip-installed: {' '.join(C.BRIDGE_HEAD)}")
        try:
            return asyncio.run(run(a.n, a.repeats, tuple(a.variants.split(",")), a.synchronous))
        finally:
            C.BRIDGE_HEAD = [C.PY, "-m", "bridge"]
