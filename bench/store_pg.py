"""Store on PostgreSQL: sustained appends per second and the cost of the lease heartbeat.

A throw-away cluster (tests/pg_cluster.py, default durability: fsync on) on loopback TCP
with a password, as a daemon on another machine would reach it. The real `PostgresStore` is
driven as the daemon drives it: `append()` per message, `await flush()` every B messages;
each flush is ONE statement (seq allocated from `log_heads` in it). Policies:
  on   synchronous_commit = on (the server's default): a commit is on disk when it returns
  off  synchronous_commit = off: the server may lose its last ~0.6 s of commits if IT
       crashes (never corrupts); the daemon dying loses nothing committed
Every run reads the log back and checks each session's seq is 1..n without gaps.

Heartbeat: one `heartbeat()` renews the daemon's registration, which is the lease of every
session it owns; timed with 1 and with 1000 owned sessions (it is one UPDATE either way).
"""

from __future__ import annotations

import time
from urllib.parse import quote

import anyio

from bench import common as C
from bench.store import frame

POLICIES = ("on", "off")


def _url(base: str, policy: str) -> str:
    return base + "?options=" + quote(f"-c synchronous_commit={policy}")


async def one(url: str, n: int, sessions: int, batch: int) -> tuple[float, float]:
    from bridge.store.base import SessionRecord, new_instance
    from bridge.store.postgres import PostgresStore

    store = PostgresStore(url)
    await store.open()
    # As a daemon has it: registered, owning its sessions (every commit checks each
    # session's owner).
    me = new_instance("stdio", 30.0)
    await store.register(me)
    run = time.monotonic_ns()
    sids = [f"bench-{run}-{k:04d}" for k in range(sessions)]
    for sid in sids:
        await store.create_session(SessionRecord(sid, "bench", "/", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", owner=me.id))
    frames = [frame(sids[i % sessions], i) for i in range(n)]
    t0, c0 = time.perf_counter(), time.process_time()
    for i, f in enumerate(frames, 1):
        store.append(sids[i % sessions], "agent", f)
        if i % batch == 0:
            await store.flush()
    await store.flush()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    for k, sid in enumerate(sids):
        got = [e.seq for e in await store.events(sid, 0, n + 1)]
        want = n // sessions + (k < n % sessions)
        if got != list(range(1, want + 1)):
            raise RuntimeError(f"log of {sid} is not gap-free ({len(got)} rows, {want} expected)")
    await store.unregister()
    await store.close()
    return n / dt, n / cpu


async def heartbeat_cost(url: str, owned: int, beats: int) -> tuple[float, float]:
    """(median wall µs, CPU µs of this process) per heartbeat with `owned` sessions leased."""
    from bridge.store.base import SessionRecord, new_instance
    from bridge.store.postgres import PostgresStore

    store = PostgresStore(url)
    await store.open()
    await store.register(new_instance("stdio", 30))
    run = time.monotonic_ns()
    for k in range(owned):
        sid = f"hb-{run}-{k}"
        await store.create_session(SessionRecord(sid, "fake", "/w", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"))
        await store.acquire(sid)
    walls = []
    c0 = time.process_time()
    for _ in range(beats):
        t = time.perf_counter()
        await store.heartbeat(30)
        walls.append(time.perf_counter() - t)
    cpu = (time.process_time() - c0) / beats
    await store.unregister()
    await store.close()
    return C.median(walls) * 1e6, cpu * 1e6


async def run(n: int, repeats: int, sessions: int, batches: list[int]) -> None:
    from tests import pg_cluster

    C.header(f"store (PostgreSQL): {n} appends over {sessions} session(s), flush every B appends, {repeats} rounds")
    rows = []
    with pg_cluster.cluster(durable=True) as pg:
        url = pg.create_database()
        version = pg.bin.parent.name
        for b in batches:
            count = n if b >= 32 else min(n, 20_000)
            rates: dict[str, list[float]] = {p: [] for p in POLICIES}
            per_cpu: list[float] = []
            loads = []
            for order in C.rotations(POLICIES, repeats):
                for p in order:
                    wall, cpu = await one(_url(url, p), count, sessions, b)
                    rates[p].append(wall)
                    if p == "on":
                        per_cpu.append(cpu)
                loads.append(C.load1())
            med = {p: C.median(v) for p, v in rates.items()}
            rows.append(
                [
                    f"B = {b}",
                    *(f"{med[p]:,.0f}/s" for p in POLICIES),
                    f"{C.median(per_cpu):,.0f}",
                    f"{min(loads):.1f}-{max(loads):.1f}",
                ]
            )
            print(f"   B = {b}: " + "  ".join(f"{p} {med[p]:,.0f}/s" for p in POLICIES) + f"  ({C.load()})")
        print(
            C.table(
                rows,
                ["flush every", "sync commit on (default)", "off", "on per CPU-s", "load"],
            )
        )
        beats = []
        for owned in (1, 1000):
            wall, cpu = await heartbeat_cost(_url(url, "on"), owned, 200)
            beats.append([f"{owned} session(s) owned", f"{wall:,.0f} µs", f"{cpu:,.0f} µs"])
        print(C.table(beats, ["heartbeat", "wall (median)", "daemon CPU"]))
        print(f"   PostgreSQL {version}, loopback TCP, scram-sha-256; {C.load()} at end")


def main(n: int, repeats: int, sessions: int, batches: list[int]) -> None:
    anyio.run(run, n, repeats, sessions, batches)
