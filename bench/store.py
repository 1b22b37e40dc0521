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
Then: two stores (as two daemons) streaming into one file at once, and the cost of the
lease heartbeat (spec/durability.md) beside the appends. The same for PostgreSQL (appends/s,
the heartbeat) comes from bench/store_pg.py (`--backends`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import anyio

from bench import common as C
from bench.targets import Figures, with_load

POLICIES = ("NORMAL", "FULL", "OFF")


def frame(sid: str, i: int) -> bytes:
    return (
        b'{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"%s","update":'
        b'{"sessionUpdate":"agent_message_chunk","messageId":"m1","content":{"type":"text","text":"chunk %d "}}}}'
        % (sid.encode(), i)
    )


async def opened(path: Path, policy: str = "NORMAL", sessions: list[str] | None = None) -> Any:
    """A store as a daemon has it: registered, owning its sessions (so every commit also
    runs the lease check of each session in the batch)."""
    from bridge.store.base import SessionRecord, new_instance
    from bridge.store.sqlite import SqliteStore, now_iso

    store = SqliteStore(str(path), synchronous=policy)
    await store.open()
    me = new_instance("stdio", 30.0)
    await store.register(me)
    for sid in sessions or []:
        now = now_iso()
        await store.create_session(
            SessionRecord(id=sid, agent="bench", cwd="/", created_at=now, updated_at=now, owner=me.id)
        )
    return store


def session_ids(sessions: int, tag: str = "") -> list[str]:
    return [f"bench-session-{tag}{k:04d}-0000-0000-000000000000" for k in range(sessions)]


async def stream(store: Any, sids: list[str], n: int, batch: int) -> None:
    sessions = len(sids)
    frames = [frame(sids[i % sessions], i) for i in range(n)]
    for i, f in enumerate(frames, 1):
        store.append(sids[i % sessions], "agent", f)
        if i % batch == 0:
            await store.flush()
    await store.flush()


async def check(store: Any, sids: list[str], n: int) -> None:
    sessions = len(sids)
    for k, sid in enumerate(sids):
        seqs = [e.seq for e in await store.events(sid, 0, n + 1)]
        if seqs != list(range(1, len(seqs) + 1)) or len(seqs) != n // sessions + (k < n % sessions):
            raise RuntimeError(f"log of {sid} is not gap-free ({len(seqs)} rows)")


async def one(tmp: Path, policy: str, n: int, sessions: int, batch: int) -> tuple[float, float]:
    """(appends per wall second, appends per CPU second of the process)."""
    sids = session_ids(sessions)
    store = await opened(tmp / f"store-{policy}-{batch}-{time.monotonic_ns()}.db", policy, sids)
    t0, c0 = time.perf_counter(), time.process_time()
    await stream(store, sids, n, batch)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    await check(store, sids, n)
    await store.close()
    return n / dt, n / cpu


async def two_writers(tmp: Path, n: int, sessions: int, batch: int) -> float:
    """Two stores (as two daemons) streaming into one file at once: combined appends/s."""
    path = tmp / f"shared-{time.monotonic_ns()}.db"
    a_sids, b_sids = session_ids(sessions, "a"), session_ids(sessions, "b")
    a, b = await opened(path, sessions=a_sids), await opened(path, sessions=b_sids)
    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream, a, a_sids, n // 2, batch)
        tg.start_soon(stream, b, b_sids, n // 2, batch)
    dt = time.perf_counter() - t0
    await check(a, a_sids, n // 2)
    await check(a, b_sids, n // 2)
    await a.close()
    await b.close()
    return n / dt


async def heartbeats(
    tmp: Path, n: int, sessions: int, batch: int, interval: float
) -> tuple[float, list[float]]:
    """Appends/s while another store on the file renews its lease every `interval` s, and
    the latency of each renewal (ms)."""
    path = tmp / f"lease-{time.monotonic_ns()}.db"
    sids = session_ids(sessions)
    store = await opened(path, sessions=sids)
    other = await opened(path, sessions=session_ids(200, "owned"))
    latencies: list[float] = []
    async with anyio.create_task_group() as tg:

        async def renew() -> None:
            while True:
                t = time.perf_counter()
                await other.heartbeat(30.0)
                latencies.append((time.perf_counter() - t) * 1e3)
                await anyio.sleep(interval)

        if interval > 0:
            tg.start_soon(renew)
        t0 = time.perf_counter()
        await stream(store, sids, n, batch)
        dt = time.perf_counter() - t0
        tg.cancel_scope.cancel()
    await check(store, sids, n)
    await store.close()
    await other.close()
    return n / dt, latencies


async def leases(tmp: Path, n: int, sessions: int, repeats: int) -> None:
    """What owning sessions costs: one heartbeat renews every lease of a daemon."""
    batch = 256
    base, loaded, lat = [], [], []
    for _ in range(repeats):
        base.append((await heartbeats(tmp, n, sessions, batch, 0))[0])
        rate, ms = await heartbeats(tmp, n, sessions, batch, 0.02)
        loaded.append(rate)
        lat += ms
    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    b, h = C.median(base), C.median(loaded)
    print(
        C.table(
            [
                [
                    f"{b:,.0f}/s",
                    f"{h:,.0f}/s",
                    f"{(1 - h / b) * 100:.1f}%",
                    f"{pct(0.5):.2f} ms",
                    f"{pct(0.99):.2f} ms",
                ]
            ],
            [
                "appends, no heartbeat",
                "with a heartbeat every 20 ms",
                "slowdown",
                "heartbeat p50",
                "heartbeat p99",
            ],
        )
    )
    print(
        "   a daemon renews once per lease/3 (10 s by default): "
        f"{pct(0.5) / 10_000 * 100:.4f}% of one thread's time at the median"
    )


async def run(n: int, repeats: int, sessions: int, batches: list[int]) -> Figures:
    C.header(f"store: {n} appends over {sessions} session(s), flush every B appends, {repeats} rounds")
    rows = []
    figures: Figures = {}
    all_loads: list[float] = []
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
            figures[f"store.appends_per_s_{b}"] = med["NORMAL"]
            all_loads += loads
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
    with C.workdir("store-shared") as tmp:
        shared = [await two_writers(tmp, min(n, 100_000), sessions, 256) for _ in range(repeats)]
        print(
            f"   two stores on one file (two daemons), B = 256: {C.median(shared):,.0f} appends/s combined, gap-free"
        )
        C.header("store: the lease heartbeat (another daemon on the file renews 200 leases)")
        await leases(tmp, min(n, 100_000), sessions, repeats)
    print(f"   {C.load()} at end")
    return with_load(figures, "store", all_loads)


def main(argv: list[str]) -> Figures:
    ap = argparse.ArgumentParser(prog="python -m bench store", description=__doc__)
    ap.add_argument("-n", type=int, default=200_000, help="appends per run (default 200000)")
    ap.add_argument("-r", "--repeats", type=int, default=3)
    ap.add_argument("-s", "--sessions", type=int, default=20)
    ap.add_argument("--batches", default="1,32,256,2000", help="flush intervals to try")
    ap.add_argument(
        "--backends", default="sqlite,postgresql", help="which stores (PostgreSQL: bench/store_pg.py)"
    )
    a = ap.parse_args(argv)
    batches = [int(x) for x in a.batches.split(",")]
    backends = a.backends.split(",")
    figures: Figures = {}
    if "sqlite" in backends:
        figures = anyio.run(run, a.n, a.repeats, a.sessions, batches)
    if "postgresql" in backends:
        from bench import store_pg

        store_pg.main(a.n, a.repeats, a.sessions, batches)
    return figures
