"""Store: sustained event-log appends per second, and what the durability policy costs.

The real `SqliteStore` (WAL, batched writer) is driven as the daemon drives it: `append()`
for every message, then `await flush()` every B messages (the daemon flushes before each
write to a client, so B is its client write batch: large when a turn streams fast, 1 for a
lone request). Messages are real `session/update` frames (~200 bytes) spread over S
sessions. Policies (SQLite `synchronous` with WAL) are interleaved round by round:
  NORMAL  the daemon's policy: a commit is in the WAL when it returns (survives SIGKILL);
          fsynced at checkpoints, so a power loss may lose the newest commits
  FULL    fsync of the WAL at every commit (survives power loss)
  OFF     no fsync at all (an OS crash may corrupt the file)
Every run reads its log back and checks that each session's seq is 1..n without gaps.
The same figures for PostgreSQL, and the lease heartbeat's cost, come from bench/store_pg.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anyio

from bench import common as C

POLICIES = ("NORMAL", "FULL", "OFF")


def frame(sid: str, i: int) -> bytes:
    return (
        b'{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"%s","update":'
        b'{"sessionUpdate":"agent_message_chunk","messageId":"m1","content":{"type":"text","text":"chunk %d "}}}}'
        % (sid.encode(), i)
    )


async def one(tmp: Path, policy: str, n: int, sessions: int, batch: int) -> tuple[float, float]:
    """(appends per wall second, appends per CPU second of the process)."""
    from bridge.store.sqlite import SqliteStore

    store = SqliteStore(str(tmp / f"store-{policy}-{batch}-{time.monotonic_ns()}.db"))
    await store.open()
    assert store._log is not None
    store._log.db.execute(f"PRAGMA synchronous={policy}")  # the writer's connection
    sids = [f"bench-session-{k:04d}-0000-0000-000000000000" for k in range(sessions)]
    frames = [frame(sids[i % sessions], i) for i in range(n)]
    t0, c0 = time.perf_counter(), time.process_time()
    for i, f in enumerate(frames, 1):
        store.append(sids[i % sessions], "agent", f)
        if i % batch == 0:
            await store.flush()
    await store.flush()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    for sid in sids:
        seqs = [e.seq for e in await store.events(sid, 0, n + 1)]
        if seqs != list(range(1, len(seqs) + 1)) or len(seqs) != n // sessions + (sids.index(sid) < n % sessions):
            raise RuntimeError(f"{policy}: log of {sid} is not gap-free ({len(seqs)} rows)")
    await store.close()
    return n / dt, n / cpu


async def run(n: int, repeats: int, sessions: int, batches: list[int]) -> None:
    C.header(f"store: {n} appends over {sessions} session(s), flush every B appends, {repeats} rounds")
    rows = []
    with C.workdir("store") as tmp:
        for b in batches:
            count = n if b >= 32 else min(n, 20_000)  # a commit per message is slow: fewer of them
            rates: dict[str, list[float]] = {p: [] for p in POLICIES}
            per_cpu: list[float] = []
            loads = []
            for order in C.rotations(POLICIES, repeats):
                for p in order:
                    wall, cpu = await one(tmp, p, count, sessions, b)
                    rates[p].append(wall)
                    if p == "NORMAL":
                        per_cpu.append(cpu)
                loads.append(C.load1())
            med = {p: C.median(v) for p, v in rates.items()}
            rows.append(
                [
                    f"B = {b}",
                    *(f"{med[p]:,.0f}/s" for p in POLICIES),
                    f"{C.median(per_cpu):,.0f}",
                    f"{med['NORMAL'] / med['FULL']:.2f}x",
                    f"{med['NORMAL'] / med['OFF']:.2f}x",
                    f"{min(loads):.1f}-{max(loads):.1f}",
                ]
            )
            print(f"   B = {b}: " + "  ".join(f"{p} {med[p]:,.0f}/s" for p in POLICIES) + f"  ({C.load()})")
    print(
        C.table(
            rows,
            [
                "flush every",
                "NORMAL (daemon)",
                "FULL",
                "OFF",
                "NORMAL per CPU-s",
                "NORMAL/FULL speed",
                "NORMAL/OFF speed",
                "load",
            ],
        )
    )
    print(f"   {C.load()} at end")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench store", description=__doc__)
    ap.add_argument("-n", type=int, default=200_000, help="appends per run (default 200000)")
    ap.add_argument("-r", "--repeats", type=int, default=3)
    ap.add_argument("-s", "--sessions", type=int, default=20)
    ap.add_argument("--batches", default="1,32,256,2000", help="flush intervals to try")
    ap.add_argument("--backends", default="sqlite,postgresql", help="which stores (PostgreSQL: bench/store_pg.py)")
    a = ap.parse_args(argv)
    batches = [int(x) for x in a.batches.split(",")]
    backends = a.backends.split(",")
    if "sqlite" in backends:
        anyio.run(run, a.n, a.repeats, a.sessions, batches)
    if "postgresql" in backends:
        from bench import store_pg

        store_pg.main(a.n, a.repeats, a.sessions, batches)
