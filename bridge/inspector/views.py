"""The store (and this daemon's live sessions) as the inspector's JSON: the session list with
its filters, one session's log, search in it. Reads only the `Store` interface, so a
PostgreSQL store — and sessions other daemons own — look the same as local SQLite ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from bridge.store.base import Event, Instance, SessionRecord, owner_gone, this_host

if TYPE_CHECKING:
    from bridge.core.manager import SessionManager

from bridge.core.metrics import Metrics
from bridge.wire.types import JsonObj

LIST_LIMIT = 500
PAGE = 1000  # events per read of the log
SEARCH_HITS = 200


def owner_info(inst: Instance | None, here: str) -> JsonObj | None:
    if inst is None:
        return None
    return {
        "id": inst.id,
        "pid": inst.pid,
        "host": inst.host,
        "url": inst.ws_url,
        "alive": not owner_gone(inst),
        "here": inst.id == here,
        "local": inst.host == this_host(),
    }


def session_row(rec: SessionRecord, manager: SessionManager, owners: dict[str, Instance]) -> JsonObj:
    live = manager.sessions.get(rec.id)
    owner = owners.get(rec.owner) if rec.owner else None
    row: JsonObj = {
        "id": rec.id,
        "agent": rec.agent,
        "cwd": rec.cwd,
        "title": rec.title,
        "status": live.status if live is not None else rec.status,
        "createdAt": rec.created_at,
        "updatedAt": rec.updated_at,
        "archived": rec.archived,
        "parentId": rec.parent_id,
        "owner": owner_info(owner, manager.ownership.instance.id),
        # Cost (USD) from the live counters, or those the catalog keeps for any other session
        # (bridge/core/metrics.py); the turn is known for sessions this daemon runs.
        "cost": (live.metrics if live is not None else Metrics.from_json(rec.metrics))
        .result()
        .get("costUsd"),
        "turnActive": live.turn_active if live is not None else False,
        "pendingPermissions": len(live.pending_permissions) if live is not None else 0,
        "controllable": live is not None and not live.closed,
    }
    return row


def matches(row: JsonObj, filters: dict[str, str]) -> bool:
    for name in ("agent", "status"):
        want = filters.get(name)
        if want and row[name] != want:
            return False
    cwd = filters.get("cwd")
    if cwd and cwd.lower() not in row["cwd"].lower():
        return False
    owner = filters.get("owner")
    if owner and (row["owner"] is None or owner not in (row["owner"]["id"], str(row["owner"]["pid"]))):
        return False
    q = filters.get("q", "").lower()
    return not q or q in row["id"].lower() or q in (row["title"] or "").lower()


async def session_list(manager: SessionManager, filters: dict[str, str]) -> JsonObj:
    store = manager.store
    records = await store.list_sessions(cwd=None, offset=0, limit=LIST_LIMIT)
    owners = {i.id: i for i in await store.instances()}
    for rec in records:
        if rec.owner and rec.owner not in owners:
            inst = await store.instance(rec.owner)
            if inst is not None:
                owners[inst.id] = inst
    rows = [session_row(rec, manager, owners) for rec in records]
    shown = [r for r in rows if matches(r, filters)]
    return {
        "sessions": shown,
        "total": len(rows),
        "agents": sorted({r["agent"] for r in rows}),
        "statuses": sorted({r["status"] for r in rows}),
    }


def pending(manager: SessionManager, session_id: str) -> list[JsonObj]:
    live = manager.sessions.get(session_id)
    if live is None:
        return []
    return [
        {
            "index": i,
            "toolCall": p.get("toolCall"),
            "options": p.get("options"),
        }
        for i, p in enumerate(live.pending_permissions)
    ]


def event_json(event: Event) -> JsonObj:
    try:
        message: Any = orjson.loads(event.message)
    except orjson.JSONDecodeError:
        message = {"raw": event.message.decode("utf-8", "replace")}
    return {"seq": event.seq, "at": event.at, "direction": event.direction, "message": message}


async def events(manager: SessionManager, session_id: str, after: int, limit: int) -> list[JsonObj]:
    return [event_json(e) for e in await manager.store.events(session_id, after, limit)]


async def search(manager: SessionManager, session_id: str, q: str) -> list[JsonObj]:
    """Events whose message contains `q` (case-insensitive, in the JSON text), first hits."""
    needle = q.lower().encode()
    hits: list[JsonObj] = []
    after = 0
    while len(hits) < SEARCH_HITS:
        page = await manager.store.events(session_id, after, PAGE)
        if not page:
            break
        hits += [event_json(e) for e in page if needle in e.message.lower()]
        after = page[-1].seq
    return hits[:SEARCH_HITS]
