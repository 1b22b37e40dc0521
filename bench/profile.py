"""Profile the daemon on the relay hot path with py-spy (sampling, whole process).

`python -m bench profile [relay|latency] [-n N] [--turns 3] [--idle] [--out FILE]` attaches
`py-spy record` to a running `agent-bridge`, streams `--turns` turns of N chunks through it
(or sends N `session/set_config_option` requests one after the other), and prints the
functions with the most samples (self and inclusive). The raw collapsed stacks are kept in
FILE (flamegraph.pl / speedscope can read them). Needs `py-spy` (`pip install py-spy`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import sys
from pathlib import Path

from bench import common as C


async def run(workload: str, n: int, turns: int, idle: bool, gil: bool, out: Path, rate: int) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with C.workdir("profile") as tmp:
        async with C.running(C.bridge_argv(tmp), name="bridge", tmp=tmp) as peer:
            await peer.initialize()
            sid = (await peer.new_session(str(tmp)))["sessionId"]
            await peer.prompt(sid, "stream 10")
            # Attached to the running daemon (py-spy as its parent would sit on its stdio).
            flags = ["record", "-r", str(rate), "-f", "raw", "-o", str(out), "--nonblocking"]
            if idle:
                flags.append("--idle")
            if gil:
                flags.append("--gil")
            spy_proc = await asyncio.create_subprocess_exec(
                spy, *flags, "--pid", str(peer.pid), stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.sleep(0.5)
            if workload == "latency":
                t0 = asyncio.get_running_loop().time()
                for i in range(n):
                    value = ("smart", "fast")[i % 2]
                    params = {"sessionId": sid, "configId": "model", "value": value}
                    await peer.request("session/set_config_option", params)
                print(f"   {n} requests: {(asyncio.get_running_loop().time() - t0) / n * 1e3:.3f} ms each ({C.load()})")
            for _ in range(turns if workload == "relay" else 0):
                t0 = asyncio.get_running_loop().time()
                await peer.prompt(sid, f"stream {n}")
                print(f"   turn: {(asyncio.get_running_loop().time() - t0) * 1000:.0f} ms ({C.load()})")
        await spy_proc.wait()
    summarize(out)


def summarize(path: Path, top: int = 25) -> None:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = [f for f in stack.split(";") if f]
        if frames:
            own[_short(frames[-1])] += k
        for f in {_short(f) for f in frames}:
            incl[f] += k
    print(f"   {total} samples")
    print("   -- self --")
    for f, k in own.most_common(top):
        print(f"   {k / total * 100:5.1f}%  {f}")
    print("   -- inclusive --")
    for f, k in incl.most_common(top + 15):
        print(f"   {k / total * 100:5.1f}%  {f}")


def _short(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py:123)"
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__)
    ap.add_argument("workload", nargs="?", choices=["relay", "latency"], default="relay")
    ap.add_argument("-n", type=int, default=20_000, help="chunks per turn, or requests (latency)")
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--idle", action="store_true", help="count idle (waiting) samples too")
    ap.add_argument("--gil", action="store_true", help="only samples of the thread holding the GIL")
    ap.add_argument("--rate", type=int, default=500, help="samples per second")
    ap.add_argument("--out", type=Path, default=Path("/tmp/agent-bridge-relay.prof.txt"))
    ap.add_argument("--summarize", type=Path, help="only summarize an existing raw profile")
    a = ap.parse_args(argv)
    if a.summarize:
        summarize(a.summarize)
        return
    asyncio.run(run(a.workload, a.n, a.turns, a.idle, a.gil, a.out, a.rate))
