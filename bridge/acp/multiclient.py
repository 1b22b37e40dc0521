"""Several connections on one session (spec/multi-client.md).

A session is driven by one connection, its owner: the one that created, loaded or resumed
it. Other connections follow it (`session/attach`, the multi-client attach RFD's method;
`_bridge/session/attach` is the same), and act on it only after `_bridge/session/takeover`
(or `_meta.bridge.takeover` on `session/load` / `session/resume`), or once its owner's
connection is gone. An observer-token connection reads and follows, never acts.

The guard runs before any handler, so a refused request changes nothing — ownership least
of all. On stdio there is one connection: it owns everything it opens.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from bridge.acp.connection import ClientConnection
from bridge.acp.replay import replay_to
from bridge.core.manager import SessionManager
from bridge.core.session import Session
from bridge.errors import NOT_OWNER, READ_ONLY, RpcError
from bridge.lazy import lazy_module
from bridge.rpc.dispatch import Handler
from bridge.store.base import Store
from bridge.wire import jsonrpc
from bridge.wire.types import JsonObj

if TYPE_CHECKING:
    from bridge.acp import params as P
else:
    # pydantic models: imported by the first request that parses them (bridge/lazy.py).
    P = lazy_module("bridge.acp.params")


class _Sessions(Protocol):
    async def live(self, session_id: str) -> Session: ...


class AcpServer(Protocol):
    """What multi-client handling uses of the server that builds it (`bridge.acp.server.AcpServer`)."""

    manager: SessionManager
    store: Store

    @property
    def handlers(self) -> _Sessions: ...
    def orphaned(self, session: Session, event: JsonObj) -> None: ...


log = logging.getLogger(__name__)

TAKEOVER = "_bridge/session/takeover"
TAKEN_OVER = "_bridge/session/taken_over"

# What an observer-token connection may call: reading and following, nothing that changes a
# session, starts an agent, or reaches one.
READ_METHODS = frozenset(
    {
        "initialize",
        "session/list",
        "session/attach",
        "session/detach",
        "_bridge/session/attach",
        "_bridge/session/detach",
        "_bridge/session/events",
        "_bridge/session/info",
        "_bridge/session/metrics",
        "_bridge/agents",
    }
)
# Requests that act on an existing session: only its owner (or anyone once the owner's
# connection is gone). `session/load` / `session/resume` are checked by their handler (they
# may carry a takeover); `session/cancel` is a notification (`cancel_allowed`).
ACTING = frozenset(
    {
        "session/prompt",
        "session/set_mode",
        "session/set_config_option",
        "session/close",
        "session/delete",
        "_bridge/session/update",
        "_bridge/session/shell",
        "_bridge/session/read_file",
        "_bridge/session/share",
    }
)


def read_only_error(method: str) -> RpcError:
    return RpcError(
        READ_ONLY,
        f"this connection is read-only (observer token): {method} is not allowed; it may list, "
        "attach to and read sessions",
        {"method": method},
    )


def not_owner_error(session_id: str, method: str) -> RpcError:
    return RpcError(
        NOT_OWNER,
        f"session {session_id} is driven by another connected client; follow it with session/attach, "
        f"or take it over with {TAKEOVER} (or session/load with _meta.bridge.takeover = true)",
        {"sessionId": session_id, "method": method, "takeover": TAKEOVER},
    )


def driven_by_other(conn: ClientConnection, session: Session) -> bool:
    owner = session.owner
    return owner is not None and owner is not conn and not owner.closed


def link_info(link: Any) -> JsonObj:
    who: JsonObj = {"connection": link.link_id}
    info = getattr(link, "client_info", None)
    if isinstance(info, dict):
        who.update({k: info[k] for k in ("name", "version") if isinstance(info.get(k), str)})
    return who


class MultiClient:
    def __init__(self, server: AcpServer) -> None:
        self.server = server
        self.manager = server.manager
        self.store = server.store

    def table(self) -> dict[str, Handler]:
        return {
            "session/attach": self.attach,
            "session/detach": self.detach,
            "_bridge/session/attach": self.attach,
            "_bridge/session/detach": self.detach,
            TAKEOVER: self.takeover,
            "_bridge/session/share": self.share,
        }

    # -- the guard -------------------------------------------------------------------------------
    def check(self, conn: ClientConnection, method: str, params: Any, *, known: bool) -> None:
        """Raise before a request runs if this connection may not make it."""
        if conn.read_only and method not in READ_METHODS and (known or method.startswith("_")):
            raise read_only_error(method)
        if method in ACTING or (not known and method.startswith("_")):
            sid = params.get("sessionId") if isinstance(params, dict) else None
            session = self.manager.sessions.get(sid) if isinstance(sid, str) else None
            if session is not None and driven_by_other(conn, session):
                raise not_owner_error(session.session_id, method)

    def cancel_allowed(self, conn: ClientConnection, session: Session) -> bool:
        if not conn.read_only and not driven_by_other(conn, session):
            return True
        session.record_event(
            {
                "type": "refused",
                "method": "session/cancel",
                "connection": conn.link_id,
                "reason": "not the owner",
            }
        )
        return False

    # -- ownership -------------------------------------------------------------------------------
    def own(self, conn: ClientConnection, session: Session, *, reason: str) -> None:
        """Make `conn` the session's owner. Taking it from a connected owner is a takeover:
        logged in the session's log, and the previous owner is told and keeps following."""
        old = session.owner
        if old is conn:
            return
        session.owner = conn
        conn.owned.add(session.session_id)
        conn.following.discard(session.session_id)
        if old is None:
            return
        if isinstance(old, ClientConnection):
            old.owned.discard(session.session_id)
        if old.closed:
            return
        session.record_event({"type": "takeover", "from": old.link_id, "to": conn.link_id, "via": reason})
        log.info(
            "session %s taken over by %s from %s (%s)", session.session_id, conn.link_id, old.link_id, reason
        )
        session.add_follower(old, controller=False)
        if isinstance(old, ClientConnection):
            old.following.add(session.session_id)
        old.send_frame(
            jsonrpc.notification_frame(TAKEN_OVER, {"sessionId": session.session_id, "by": link_info(conn)})
        )

    async def takeover(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.SessionParams, params)
        session = await self.server.handlers.live(p.sessionId)
        old = session.owner
        previous = "self" if old is conn else "none" if old is None else "gone" if old.closed else "connected"
        self.own(conn, session, reason=TAKEOVER)
        return {"sessionId": session.session_id, "previousOwner": previous}

    async def share(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.ShareParams, params)
        session = await self.server.handlers.live(p.sessionId)
        if session.shared != p.shared:
            session.shared = p.shared
            session.record_event({"type": "shared" if p.shared else "unshared", "by": conn.link_id})
            session.links_changed()  # pending permission requests reach (or leave) controllers
        return {"sessionId": session.session_id, "shared": session.shared}

    # -- attach / detach -------------------------------------------------------------------------
    async def attach(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.AttachParams, params)
        if conn.read_only and p.role == "controller":
            raise read_only_error("session/attach with role controller")
        rec = await self.manager.record(p.sessionId)
        session = self.manager.sessions.get(rec.id)
        controller = p.role == "controller"

        def follow() -> None:
            live = self.manager.sessions.get(rec.id)
            if live is not None and live.owner is not conn:
                live.add_follower(conn, controller=controller)
                conn.following.add(rec.id)

        result: JsonObj = {"sessionId": rec.id, "role": p.role, "historyPolicy": p.historyPolicy}
        if p.historyPolicy == "full":
            # Paced (a long history never overflows the connection); the live stream is joined
            # exactly where the replay ends.
            cursor = await replay_to(
                conn,
                self.store,
                rec.id,
                p.after,
                live=(lambda: session.last_seq) if session is not None else None,
                follow=follow,
            )
        else:
            # Nothing replayed: the live stream starts after the newest seq, in the same step.
            await self.store.flush()
            cursor = session.last_seq if session is not None else await self.store.last_seq(rec.id)
            follow()
            if p.historyPolicy == "pending_only":
                result["history"] = [
                    _pending_item(q) for q in (session.pending_permissions if session else [])
                ]
        result["cursor"] = cursor
        live = self.manager.sessions.get(rec.id)
        result["live"] = live is not None
        result["shared"] = bool(live and live.shared)
        result["connectedClients"] = _connected(live) if live is not None else []
        return result

    async def detach(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.SessionParams, params)
        rec = await self.manager.record(p.sessionId)
        session = self.manager.sessions.get(rec.id)
        conn.following.discard(rec.id)
        if session is not None:
            if session.owner is conn:
                # The owner letting go: as if it had disconnected (the grace period starts, any
                # client may load the session meanwhile), but it stays connected.
                session.owner = None
                conn.owned.discard(rec.id)
                self.server.orphaned(session, {"type": "detached", "connection": conn.link_id, "owner": True})
            else:
                session.remove_follower(conn)
        return {"sessionId": rec.id, "status": "detached"}


def _pending_item(params: JsonObj) -> JsonObj:
    tool_call = params.get("toolCall")
    item: JsonObj = {"type": "permission_request", "status": "pending"}
    if isinstance(tool_call, dict) and isinstance(tool_call.get("toolCallId"), str):
        item["toolCallId"] = tool_call["toolCallId"]
    return item


def _connected(session: Session) -> list[JsonObj]:
    clients: list[JsonObj] = []
    owner = session.owner
    if owner is not None and not owner.closed:
        clients.append({**link_info(owner), "role": "controller", "owner": True})
    for f in session.followers:
        if not f.closed:
            role = "controller" if f.link_id in session.controllers else "observer"
            clients.append({**link_info(f), "role": role})
    return clients
