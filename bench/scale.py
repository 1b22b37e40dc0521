"""Scale: many concurrent sessions, each with its own fake ACP agent process, on one daemon.

1. Idle sessions: sessions are opened in steps (0, S/4, S/2, 3S/4, S); after each step the
   daemon's own RSS and USS are read (its agents are other processes and not counted).
   Memory per idle session = least-squares slope of the daemon's memory over the count.
   Then the daemon's CPU over `--idle-seconds` with all of them open and nothing happening.
2. Streaming: every session first runs `stream K` all at once, its first turn (cold: what this
   bench reported until issue 17; `bench relay` leaves its first turn out as a warm-up). Then, alone: `--solo` sessions run `stream K` one after
   the other (the 1-session figure, in the same daemon, with the same K and the same
   accounting: the daemon process's own CPU, its agents and this client not counted, the
   sampler not running). Then all at once: every session runs `stream K` at the same moment.
   Reported: wall time until the last turn ends, daemon CPU seconds per chunk in both phases
   and their ratio (the target: concurrent ≤ alone), daemon peak RSS (sampled every 50 ms),
   that every turn ended with `end_turn` and delivered its K chunks to the client.
3. The log: after a clean shutdown the SQLite file is read directly: per session, its rows
   must cover seq 1..n with no gap and K agent_message_chunk messages must be there.

`--baseline DIR` runs the whole bench for another checkout too (variant `base`), the two
alternating for `-r` rounds: before/after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import psutil

from bench import common as C
from bench.targets import Figures, with_load

BASELINE: list[Path] = []


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else float("nan")


async def sample_peak(pid: int, stop: asyncio.Event, out: list[int]) -> None:
    while not stop.is_set():
        out.append(C.rss(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


def check_log(db: Path, sids: list[str], k: int) -> tuple[int, list[str]]:
    """(messages in the log, problems found). A row holds `n` messages, `seq - n + 1 .. seq`
    (bridge/store/packing.py): the rows of a session must cover 1..last exactly once."""
    con = sqlite3.connect(str(db))
    problems = []
    total = 0
    found: dict[str, tuple[int, int, int]] = {}  # session -> (messages, seq reached, chunk messages)
    sql = "SELECT session_id, seq, n, message FROM events ORDER BY session_id, seq"
    for sid, seq, n, message in con.execute(sql):
        count, reached, chunks = found.get(sid, (0, 0, 0))
        if seq - n != reached:
            problems.append(f"{sid}: a row covers {seq - n + 1}..{seq} after {reached} (gap or duplicate)")
        parts = bytes(message).split(b"\n") if n > 1 else [bytes(message)]
        found[sid] = (count + n, seq, chunks + sum(b'"agent_message_chunk"' in m for m in parts))
    con.close()
    for sid in sids:
        if sid not in found:
            problems.append(f"{sid}: no events")
            continue
        n, _, chunks = found[sid]
        total += n
        if chunks < k:
            problems.append(f"{sid}: {chunks} agent_message_chunk messages, expected {k}")
    return total, problems


async def run(
    sessions: int, k: int, parallel: int, solo: int, variant: str = "bridge", idle_seconds: float = 12.0
) -> Figures:
    C.header(
        f"scale ({variant}): {sessions} sessions (one fake agent process each), {solo} stream {k} chunks "
        "alone, one after the other, then all at once"
    )
    with C.workdir("scale") as tmp:
        if variant == "base":
            run_it = f"import sys, runpy; sys.path[0] = {str(BASELINE[0])!r}; runpy.run_module('bridge', run_name='__main__')"
            argv = C.bridge_argv(tmp, head=[C.PY, "-c", run_it])
        else:
            argv = C.bridge_argv(tmp)
        state = Path(argv[argv.index("--state-dir") + 1])
        async with C.running(argv, name="bridge", tmp=tmp) as peer:
            await peer.initialize()
            pid = peer.pid
            counts, rss, uss = [0], [C.rss(pid)], [C.uss(pid)]
            sids: list[str] = []
            sem = asyncio.Semaphore(parallel)

            async def open_one() -> None:
                async with sem:
                    sids.append((await peer.new_session(str(tmp)))["sessionId"])

            t0 = time.perf_counter()
            for step in range(1, 5):
                target = sessions * step // 4
                await asyncio.gather(*(open_one() for _ in range(target - len(sids))))
                await asyncio.sleep(1.0)  # let the daemon settle (stderr drains, buffers)
                counts.append(len(sids))
                rss.append(C.rss(pid))
                uss.append(C.uss(pid))
                print(
                    f"   {len(sids):4d} idle sessions: daemon RSS {rss[-1] / 2**20:6.1f} MiB, "
                    f"USS {uss[-1] / 2**20:6.1f} MiB  ({C.load()})"
                )
            open_time = time.perf_counter() - t0
            per_rss = slope([float(c) for c in counts], [float(r) for r in rss])
            per_uss = slope([float(c) for c in counts], [float(u) for u in uss])
            agents_rss = sum(C.rss(c.pid) for c in _children(pid))
            # Idle: what the open sessions cost while nothing happens (the lease heartbeat
            # every lease_timeout / 3 = 10 s checks every session's owner).
            idle_cpu0 = C.tree_cpu(pid, children=False)
            await asyncio.sleep(idle_seconds)
            idle_cpu = C.tree_cpu(pid, children=False) - idle_cpu0

            # Each session's first turn, all at once: what the bench measured before (no
            # warm-up), kept for comparison; then every turn is warm, as in `bench relay`.
            cold_cpu0 = C.tree_cpu(pid, children=False)
            await asyncio.gather(*(peer.prompt(sid, f"stream {k}") for sid in sids))
            cold_cpu = C.tree_cpu(pid, children=False) - cold_cpu0
            before = {sid: peer.counts(sid).chunks for sid in sids}
            alone = sids[:solo]
            solo_cpu0 = C.tree_cpu(pid, children=False)
            solo_t0 = time.perf_counter()
            for sid in alone:
                await peer.prompt(sid, f"stream {k}")
            solo_wall = time.perf_counter() - solo_t0
            solo_cpu = C.tree_cpu(pid, children=False) - solo_cpu0
            solo_ok = sum(1 for sid in alone if peer.counts(sid).chunks - before[sid] == k)
            before = {sid: peer.counts(sid).chunks for sid in sids}
            stop = asyncio.Event()
            peaks: list[int] = []
            sampler = asyncio.create_task(sample_peak(pid, stop, peaks))
            cpu0 = C.tree_cpu(pid, children=False)
            load0 = C.load1()
            t0 = time.perf_counter()
            results = await asyncio.gather(*(peer.prompt(sid, f"stream {k}") for sid in sids))
            wall = time.perf_counter() - t0
            cpu = C.tree_cpu(pid, children=False) - cpu0
            stop.set()
            await sampler
            ended = sum(1 for r in results if r.get("stopReason") == "end_turn")
            delivered = sum(1 for sid in sids if peer.counts(sid).chunks - before[sid] >= k)
        # The daemon has exited cleanly (stdin EOF): its log is complete on disk.
        rows, problems = check_log(state / "sessions.db", sids, k)
    mib = 2**20
    print(
        C.table(
            [
                ["sessions opened", f"{len(sids)} in {open_time:.1f} s"],
                ["daemon RSS with 0 sessions", f"{rss[0] / mib:.1f} MiB (USS {uss[0] / mib:.1f} MiB)"],
                [
                    f"daemon RSS with {len(sids)} idle sessions",
                    f"{rss[-1] / mib:.1f} MiB (USS {uss[-1] / mib:.1f} MiB)",
                ],
                [
                    "daemon memory per idle session (slope)",
                    f"{per_rss / 2**10:.0f} KiB RSS, {per_uss / 2**10:.0f} KiB USS",
                ],
                ["the agents' own RSS (for scale)", f"{agents_rss / mib:.0f} MiB for {len(sids)} processes"],
                [
                    f"daemon CPU idle, {len(sids)} sessions, {idle_seconds:g} s",
                    f"{idle_cpu * 1e3:.0f} ms ({idle_cpu / idle_seconds * 1e3:.1f} ms/s)",
                ],
                [
                    f"all {len(sids)} turns of {k} chunks at once (warm)",
                    f"{wall:.2f} s wall, {len(sids) * k / wall:,.0f} chunks/s",
                ],
                [
                    "daemon CPU during those turns",
                    f"{cpu:.2f} s ({cpu / (len(sids) * k) * 1e6:.1f} µs per chunk)",
                ],
                [
                    "the same, each session's first turn (cold)",
                    f"{cold_cpu:.2f} s ({cold_cpu / (len(sids) * k) * 1e6:.1f} µs per chunk)",
                ],
                [
                    f"alone: {len(alone)} turns of {k} chunks, one after the other",
                    f"{solo_wall:.2f} s wall, daemon CPU {solo_cpu:.2f} s "
                    f"({solo_cpu / max(1, len(alone) * k) * 1e6:.1f} µs per chunk), {solo_ok}/{len(alone)} complete",
                ],
                [
                    "daemon CPU per chunk, all at once ÷ alone",
                    f"{cpu / (len(sids) * k) / (solo_cpu / max(1, len(alone) * k)):.2f}x"
                    if solo_cpu
                    else "-",
                ],
                ["daemon peak RSS while streaming", f"{max(peaks) / mib:.1f} MiB"],
                ["turns ended with end_turn", f"{ended}/{len(sids)}"],
                ["turns whose chunks all reached the client", f"{delivered}/{len(sids)}"],
                [
                    "logged messages, gap-free sessions",
                    f"{rows} messages, {len(sids) - len(problems)}/{len(sids)} sessions clean",
                ],
            ],
            ["scale", "value"],
        )
    )
    for p in problems[:10]:
        print(f"   problem: {p}")
    print(f"   load {load0:.2f} when the turns started; {C.load()} at end")
    figures: Figures = {
        "scale.per_session_b": per_rss,
        "scale.cpu_per_chunk_us": cpu / (len(sids) * k) * 1e6,
        "scale.idle_cpu_ms_per_s": idle_cpu / idle_seconds * 1e3,
        "scale.cold_cpu_per_chunk_us": cold_cpu / (len(sids) * k) * 1e6,
        "scale.solo_cpu_per_chunk_us": solo_cpu / max(1, len(alone) * k) * 1e6,
        "scale.turns_ended": float(ended),
        "scale.clean_logs": float(len(sids) - len(problems)),
    }
    return with_load(figures, "scale", [load0, C.load1()])


def _children(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def main(argv: list[str]) -> Figures:
    ap = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__)
    ap.add_argument("-s", "--sessions", type=int, default=200)
    ap.add_argument("-k", type=int, default=500, help="chunks each session streams (default 500)")
    ap.add_argument("--parallel", type=int, default=10, help="session/new requests in flight at once")
    ap.add_argument(
        "--solo",
        type=int,
        default=40,
        help="sessions that stream K alone, one after the other, before all at once (default 40: "
        "20,000 chunks at K = 500, so the CPU clock's 10 ms tick is ±5%%)",
    )
    ap.add_argument(
        "--idle-seconds",
        type=float,
        default=12.0,
        help="idle window measured (default 12: one lease heartbeat)",
    )
    ap.add_argument("-r", "--repeats", type=int, default=1, help="rounds (with --baseline: each runs both)")
    ap.add_argument("--baseline", type=Path, help="also another checkout of the bridge, as variant `base`")
    a = ap.parse_args(argv)
    variants = ["bridge"]
    if a.baseline is not None:
        BASELINE[:] = [a.baseline]
        variants.append("base")
    got: dict[str, list[Figures]] = {v: [] for v in variants}
    for order in C.rotations(variants, a.repeats):
        for v in order:
            got[v].append(
                asyncio.run(run(a.sessions, a.k, a.parallel, min(a.solo, a.sessions), v, a.idle_seconds))
            )
    if len(variants) > 1 or a.repeats > 1:
        print(
            C.table(
                [
                    [
                        v,
                        "  ".join(f"{f['scale.idle_cpu_ms_per_s']:.2f}" for f in got[v]),
                        "  ".join(f"{f['scale.solo_cpu_per_chunk_us']:.1f}" for f in got[v]),
                        "  ".join(f"{f['scale.cpu_per_chunk_us']:.1f}" for f in got[v]),
                        "  ".join(
                            f"{f['scale.cpu_per_chunk_us'] / f['scale.solo_cpu_per_chunk_us']:.2f}x"
                            for f in got[v]
                        ),
                    ]
                    for v in variants
                ],
                [
                    "variant",
                    "idle CPU, ms/s (each round)",
                    "alone, µs/chunk",
                    "all at once, µs/chunk",
                    "all at once ÷ alone",
                ],
            )
        )
    return got["bridge"][len(got["bridge"]) // 2] if a.repeats > 1 else got["bridge"][0]
