"""History replay from the bridge's own event log, as `session/update` notifications.

Used for `session/load` when the agent cannot replay (or the session is live here), and
for `_bridge/session/attach`. Replayed notifications carry `_meta.bridge.replay = "log"`
and their `seq`, so a client can tell them from live ones."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import orjson

from bridge.rpc.outbox import HIGH_WATER
from bridge.store.base import Event, Store

PAGE = 1000
CATCH_UP_ROUNDS = 100  # bounds the catch-up with a session that never stops appending


async def iter_events(
    store: Store, session_id: str, after: int, upto: int | None = None
) -> AsyncGenerator[Event, None]:
    while True:
        page = await store.events(session_id, after, PAGE)
        for ev in page:
            if upto is not None and ev.seq > upto:
                return
            yield ev
        if len(page) < PAGE:
            return
        after = page[-1].seq


async def replay_frames(
    store: Store, session_id: str, after: int = 0, upto: int | None = None
) -> AsyncIterator[bytes]:
    """The session's updates (and the user's prompts, as `user_message_chunk`) after `after`."""
    async for ev in iter_events(store, session_id, after, upto):
        for frame in event_frames(ev, session_id):
            yield frame


def event_frames(ev: Event, session_id: str) -> Iterator[bytes]:
    try:
        msg: Any = orjson.loads(ev.message)
    except orjson.JSONDecodeError:
        return
    if not isinstance(msg, dict):
        return
    method = msg.get("method")
    params = msg.get("params")
    if not isinstance(params, dict):
        return
    if ev.direction == "agent" and method == "session/update":
        yield _frame({**params, "sessionId": session_id}, ev.seq)
    elif ev.direction == "client" and method == "session/prompt":
        for block in params.get("prompt") or []:
            if isinstance(block, dict):
                update = {"sessionUpdate": "user_message_chunk", "content": block}
                yield _frame({"sessionId": session_id, "update": update}, ev.seq)


class Sink(Protocol):
    @property
    def closed(self) -> bool: ...

    @property
    def queued_bytes(self) -> int: ...

    def send_frame(self, frame: bytes) -> None: ...

    async def wait_writable(self) -> None: ...


async def replay_to(
    sink: Sink,
    store: Store,
    session_id: str,
    after: int = 0,
    upto: int | None = None,
    *,
    live: Callable[[], int] | None = None,
    follow: Callable[[], None] | None = None,
) -> int:
    """Replay to a client whatever the history holds, pausing while its outgoing queue is above
    the high-water mark: a long history never overflows a connection. Returns the last seq read.

    With `follow`, the client then gets the session's live frames: `follow()` subscribes it in
    the same step (no await) as the check that every seq up to `live()` (the newest this
    daemon committed, or "more" while rows await their commit) has been read, so the live
    stream picks up exactly where the replay ends — nothing lost, nothing twice."""
    last = after
    catch_up = 0
    while catch_up < CATCH_UP_ROUNDS:
        await store.flush()
        paused = False
        async with contextlib.aclosing(iter_events(store, session_id, last, upto)) as events:
            async for ev in events:
                for frame in event_frames(ev, session_id):
                    sink.send_frame(frame)
                last = ev.seq
                if sink.queued_bytes > HIGH_WATER:
                    paused = True
                    break
        if sink.closed:
            return last
        if paused:
            await sink.wait_writable()
            continue
        if follow is None or live is None or live() <= last or store.failed is not None:
            break
        # More was appended while the log was being flushed: read that too.
        catch_up += 1
    if follow is not None:
        follow()
    return last


def _frame(params: dict[str, Any], seq: int) -> bytes:
    meta = params.get("_meta")
    params["_meta"] = {**(meta if isinstance(meta, dict) else {}), "bridge": {"replay": "log", "seq": seq}}
    return orjson.dumps({"jsonrpc": "2.0", "method": "session/update", "params": params})
