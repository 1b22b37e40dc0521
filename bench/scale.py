"""Scale: many concurrent sessions, each with its own fake ACP agent process, on one daemon.

1. Idle sessions: sessions are opened in steps (0, S/4, S/2, 3S/4, S); after each step the
   daemon's own RSS and USS are read (its agents are other processes and not counted).
   Memory per idle session = least-squares slope of the daemon's memory over the count.
2. Streaming: every session runs `stream K` at the same moment. Reported: wall time until
   the last turn ends, daemon CPU seconds, daemon peak RSS (sampled every 50 ms), that
   every turn ended with `end_turn` and delivered its K chunks to the client.
3. The log: after a clean shutdown the SQLite file is read directly: per session, its rows
   must cover seq 1..n with no gap and K agent_message_chunk messages must be there.
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


async def run(sessions: int, k: int, parallel: int) -> Figures:
    C.header(f"scale: {sessions} sessions (one fake agent process each), then all stream {k} chunks at once")
    with C.workdir("scale") as tmp:
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

            for sid in sids:
                peer.counts(sid)
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
            delivered = sum(1 for sid in sids if peer.counts(sid).chunks >= k)
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
                    f"all {len(sids)} turns of {k} chunks",
                    f"{wall:.2f} s wall, {len(sids) * k / wall:,.0f} chunks/s",
                ],
                [
                    "daemon CPU during the turns",
                    f"{cpu:.2f} s ({cpu / (len(sids) * k) * 1e6:.1f} µs per chunk)",
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
    a = ap.parse_args(argv)
    return asyncio.run(run(a.sessions, a.k, a.parallel))
