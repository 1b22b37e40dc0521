"""The daemon's per-message cost on the relay hot path, in-process, without any pipe.

The real objects (ACP passthrough router, `Endpoint`, `Session`, `SqliteStore`, the client's
`Outbox` and `ClientConnection`) are wired as the daemon wires them; the agent's lines are
fed to `Endpoint.receive` in read-sized batches and the client writer discards the bytes.
Each stage is timed alone too, so the figures say where the microseconds go. CPU-bound and
single-process: much steadier than the end-to-end benchmarks on a loaded machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import orjson

from bench import common as C

N_DEFAULT = 20_000
BATCH = 270  # lines per read of the agent's stdout, as counted in the relay benchmark


def agent_lines(n: int, sid: str) -> list[bytes]:
    # The fake agent's own encoding (json.dumps: spaces after separators).
    import json

    return [
        json.dumps(
            {
                "method": "session/update",
                "params": {
                    "sessionId": sid,
                    "update": {
                        "sessionUpdate": "agent_message_chunk",
                        "messageId": "m1",
                        "content": {"type": "text", "text": f"chunk {i} "},
                    },
                },
                "jsonrpc": "2.0",
            }
        ).encode()
        for i in range(n)
    ]


async def pipeline(n: int, tmp: Path, synchronous: str) -> dict[str, float]:
    from adapters.acp.adapter import _Router
    from adapters.acp.fastpath import FastPath
    from bridge.acp.connection import ClientConnection
    from bridge.core.adapter import AgentSpec
    from bridge.core.session import Session
    from bridge.rpc.endpoint import Endpoint
    from bridge.rpc.outbox import Outbox
    from bridge.store.base import SessionRecord
    from bridge.store.sqlite import SqliteStore, now_iso

    store = SqliteStore(str(tmp / f"hot-{synchronous}-{time.monotonic_ns()}.db"), synchronous=synchronous)
    await store.open()
    now = now_iso()
    rec = SessionRecord(id="bridge-session-0001", agent="fake", cwd=str(tmp), created_at=now, updated_at=now)
    await store.create_session(rec)
    session = Session(rec, AgentSpec(name="fake", protocol="acp", command="x"), store)
    written = [0]
    all_written = anyio.Event()

    async def write(frames: list[bytes]) -> None:
        written[0] += len(frames)
        if written[0] >= n:
            all_written.set()

    client_outbox = Outbox(write, before_write=store.flush)
    conn = ClientConnection(client_outbox, "bench")
    session.owner = conn
    router = _Router("fake", session)

    async def nowhere(frames: list[bytes]) -> None:
        return None

    router.fast = FastPath("agent-sid", session.session_id)
    endpoint = Endpoint(
        "agent fake", Outbox(nowhere), router.on_request, router.on_notification, on_line=router.on_line
    )
    lines = agent_lines(n, "agent-sid")
    batches = [lines[i : i + BATCH] for i in range(0, n, BATCH)]
    async with anyio.create_task_group() as tg:
        await tg.start(client_outbox.run)
        c0, t0 = time.process_time(), time.perf_counter()
        for batch in batches:
            await endpoint.receive_batch(batch)
            await session.wait_writable()
            await anyio.lowlevel.checkpoint()  # the read between batches: lets the client writer run
        await all_written.wait()
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        client_outbox.close()
        tg.cancel_scope.cancel()
    await store.close()
    return {"cpu": cpu / n, "wall": wall / n}


def stages(n: int, tmp: Path) -> dict[str, float]:
    """Each step of the path alone, µs per message (called inside the event loop)."""
    from bridge.store.sqlite import SqliteStore, now_iso
    from bridge.wire import jsonrpc
    from bridge.wire.framing import LineDecoder

    sid = "bridge-session-0001"
    lines = agent_lines(n, "agent-sid")
    blob = b"\n".join(lines) + b"\n"
    out: dict[str, float] = {}

    def timed(name: str, fn: Any) -> None:
        t = time.process_time()
        fn()
        out[name] = (time.process_time() - t) / n * 1e6

    def frame_lines() -> None:
        d = LineDecoder()
        for i in range(0, len(blob), 64 * 1024):
            d.feed(blob[i : i + 64 * 1024])

    timed("LineDecoder.feed (64 KiB reads)", frame_lines)
    timed("orjson.loads", lambda: [orjson.loads(x) for x in lines])
    from adapters.acp.fastpath import FastPath

    fast = FastPath("agent-sid", sid)
    timed("FastPath.rewrite (byte-level chunk)", lambda: [fast.rewrite(x) for x in lines])
    timed("jsonrpc.decode (loads + classify)", lambda: [jsonrpc.decode(x) for x in lines])
    objs = [orjson.loads(x)["params"] for x in lines]
    timed("jsonrpc.notification_frame (dumps)", lambda: [jsonrpc.notification_frame("session/update", p) for p in objs])
    timed("now_iso", lambda: [now_iso() for _ in lines])
    timed("time.monotonic", lambda: [time.monotonic() for _ in lines])

    timed("anyio.current_time", lambda: [anyio.current_time() for _ in lines])
    frames = [jsonrpc.notification_frame("session/update", p) for p in objs]
    for level in ("OFF", "NORMAL", "FULL"):
        store = SqliteStore(str(tmp / f"stage-{level}.db"), synchronous=level)
        store.open_sync()

        def append_and_write(store: SqliteStore = store) -> None:
            for f in frames:
                store.append(sid, "agent", f)
            store.flush_sync()

        timed(f"SqliteStore.append + one commit ({level})", append_and_write)
        store.close_sync()
    return out


async def run(n: int, repeats: int) -> None:
    C.header(f"hot path in-process: {n} agent_message_chunk lines, {repeats} repeats")
    with C.workdir("hotpath") as tmp:
        st: dict[str, list[float]] = {}
        for _ in range(repeats):
            for k, v in stages(n, tmp).items():
                st.setdefault(k, []).append(v)
        print(C.table([[k, f"{C.median(v):.2f} µs"] for k, v in st.items()], ["stage", "CPU per message"]))
        results: dict[str, list[dict[str, float]]] = {"NORMAL": [], "OFF": [], "FULL": []}
        for order in C.rotations(list(results), repeats):
            for level in order:
                results[level].append(await pipeline(n, tmp, level))
        rows = [
            [
                f"router → session → log → client outbox (synchronous={level})",
                f"{C.median([r['cpu'] for r in rs]) * 1e6:.2f} µs",
                f"{C.median([r['wall'] for r in rs]) * 1e6:.2f} µs",
            ]
            for level, rs in results.items()
        ]
        print(C.table(rows, ["whole path (daemon objects)", "CPU per message", "wall per message"]))
    print(f"   {C.load()} at end")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench hotpath", description=__doc__)
    ap.add_argument("-n", type=int, default=N_DEFAULT)
    ap.add_argument("-r", "--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    anyio.run(run, a.n, a.repeats)
