"""Request latency: sequential `session/set_config_option` round trips, bridge vs direct.

Both processes stay up for the whole run and the requests alternate between them
(bridge, direct, bridge, direct...), so both see the same machine load at the same moment.
Reported: p50/p99 of each, what the bridge adds at p50/p99, and the median of the paired
differences (request i through the bridge minus request i direct).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from bench import common as C
from bench.targets import Figures, with_load

VARIANTS = ("bridge", "direct")


async def run(n: int, warmup: int, with_relay: bool, baseline: Path | None = None) -> Figures:
    C.header(f"request latency: {n} sequential session/set_config_option round trips per variant")
    variants = [*VARIANTS, *(("relay",) if with_relay else ()), *(("base",) if baseline else ())]
    with C.workdir("latency") as tmp:
        argv = {"bridge": C.bridge_argv(tmp), "direct": C.direct_argv(), "relay": C.relay_argv()}
        if baseline:
            # Another checkout of the bridge (before/after in one run): its `bridge` first on sys.path.
            run_it = f"import sys, runpy; sys.path[0] = {str(baseline)!r}; runpy.run_module('bridge', run_name='__main__')"
            argv["base"] = C.bridge_argv(tmp, head=[C.PY, "-c", run_it])
        peers = {v: await C.spawn(argv[v], name=v, tmp=tmp) for v in variants}
        try:
            sids = {}
            for v, peer in peers.items():
                await peer.initialize()
                sids[v] = (await peer.new_session(str(tmp)))["sessionId"]
            times: dict[str, list[float]] = {v: [] for v in variants}
            cpu0 = {v: C.tree_cpu(peers[v].pid, children=False) for v in variants}
            loads = [C.load1()]
            values = ("smart", "fast")
            for i in range(warmup + n):
                order = variants if i % 2 == 0 else variants[::-1]
                for v in order:
                    params = {"sessionId": sids[v], "configId": "model", "value": values[i % 2]}
                    t0 = time.perf_counter()
                    await peers[v].request("session/set_config_option", params)
                    dt = time.perf_counter() - t0
                    if i >= warmup:
                        times[v].append(dt)
                if i % 500 == 0:
                    loads.append(C.load1())
            loads.append(C.load1())
            cpu = {v: (C.tree_cpu(peers[v].pid, children=False) - cpu0[v]) / (warmup + n) for v in variants}
        finally:
            for peer in peers.values():
                await peer.close()
    rows = []
    for v in variants:
        t = times[v]
        own = f"{cpu[v] * 1e6:.0f} µs" if v in ("bridge", "base") else "-"
        rows.append(
            [
                v,
                f"{C.pct(t, 50) * 1000:.3f} ms",
                f"{C.pct(t, 99) * 1000:.3f} ms",
                f"{max(t) * 1000:.1f} ms",
                own,
            ]
        )
    print(C.table(rows, ["variant", "p50", "p99", "max", "daemon CPU per request"]))
    b, d = times["bridge"], times["direct"]
    paired = [x - y for x, y in zip(b, d, strict=True)]
    print(
        f"   bridge adds: p50 {(C.pct(b, 50) - C.pct(d, 50)) * 1000:.3f} ms, p99 {(C.pct(b, 99) - C.pct(d, 99)) * 1000:.3f} ms; "
        f"median of paired differences {C.median(paired) * 1000:.3f} ms"
    )
    if "base" in times:
        base = times["base"]
        print(f"   the baseline checkout adds: p50 {(C.pct(base, 50) - C.pct(d, 50)) * 1000:.3f} ms")
    print(f"   load (1 min) during the run: {min(loads):.2f}..{max(loads):.2f}; {C.load()} at end")
    figures: Figures = {
        "latency.added_p50_ms": (C.pct(b, 50) - C.pct(d, 50)) * 1000,
        "latency.paired_median_ms": C.median(paired) * 1000,
        "latency.bridge_cpu_per_request_us": cpu["bridge"] * 1e6,
    }
    return with_load(figures, "latency", loads)


def main(argv: list[str]) -> Figures:
    ap = argparse.ArgumentParser(prog="python -m bench latency", description=__doc__)
    ap.add_argument("-n", type=int, default=2000, help="round trips per variant (default 2000)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--relay", action="store_true", help="also through `cat | agent | cat`")
    ap.add_argument(
        "--baseline", type=Path, help="also another checkout of the bridge (before/after in one run)"
    )
    a = ap.parse_args(argv)
    return asyncio.run(run(a.n, a.warmup, a.relay, a.baseline))
