"""History replay from the bridge's own event log, as `session/update` notifications.

Used for `session/load` when the agent cannot replay (or the session is live here), and
for `_bridge/session/attach`. Replayed notifications carry `_meta.bridge.replay = "log"`
and their `seq`, so a client can tell them from live ones."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from bridge.store.base import Event, Store

PAGE = 1000


def iter_events(store: Store, session_id: str, after: int, upto: int | None = None) -> Iterator[Event]:
    while True:
        page = store.events(session_id, after, PAGE)
        for ev in page:
            if upto is not None and ev.seq > upto:
                return
            yield ev
        if len(page) < PAGE:
            return
        after = page[-1].seq


def replay_frames(store: Store, session_id: str, after: int = 0, upto: int | None = None) -> Iterator[bytes]:
    """The session's updates (and the user's prompts, as `user_message_chunk`) after `after`."""
    for ev in iter_events(store, session_id, after, upto):
        try:
            msg: Any = orjson.loads(ev.message)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(msg, dict):
            continue
        method = msg.get("method")
        params = msg.get("params")
        if not isinstance(params, dict):
            continue
        if ev.direction == "agent" and method == "session/update":
            yield _frame({**params, "sessionId": session_id}, ev.seq)
        elif ev.direction == "client" and method == "session/prompt":
            for block in params.get("prompt") or []:
                if isinstance(block, dict):
                    update = {"sessionUpdate": "user_message_chunk", "content": block}
                    yield _frame({"sessionId": session_id, "update": update}, ev.seq)


def _frame(params: dict[str, Any], seq: int) -> bytes:
    meta = params.get("_meta")
    params["_meta"] = {**(meta if isinstance(meta, dict) else {}), "bridge": {"replay": "log", "seq": seq}}
    return orjson.dumps({"jsonrpc": "2.0", "method": "session/update", "params": params})
