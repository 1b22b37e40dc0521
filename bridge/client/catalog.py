"""The daemon's catalog as the client reads it: sessions (`session/list`, info, the durable
log), the agent table, authentication. Part of `BridgeClient`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from bridge.client.mcp import absolute
from bridge.client.results import AgentInfo, Event, EventPage, SessionInfo, SessionSummary
from bridge.wire.types import JsonObj


class Catalog:
    """Mixed into `BridgeClient` (bridge/client/client.py), which provides `request`."""

    if TYPE_CHECKING:  # provided by the class this is mixed into

        async def request(self, method: str, params: Any = None) -> Any: ...

    async def list_sessions(
        self, *, cwd: str | None = None, limit: int | None = None, include_archived: bool = True
    ) -> list[SessionSummary]:
        """Sessions the daemon knows (`session/list`, all pages), most recent first."""
        out: list[SessionSummary] = []
        cursor: str | None = None
        while True:
            params: JsonObj = {}
            if cwd is not None:
                params["cwd"] = absolute(cwd)
            if cursor is not None:
                params["cursor"] = cursor
            page = await self.request("session/list", params)
            for raw in page.get("sessions") or []:
                summary = SessionSummary.from_wire(raw)
                if include_archived or not summary.archived:
                    out.append(summary)
                    if limit is not None and len(out) >= limit:
                        return out
            cursor = page.get("nextCursor")
            if not cursor:
                return out

    async def get_info(self, session_id: str) -> SessionInfo:
        return SessionInfo.model_validate(
            await self.request("_bridge/session/info", {"sessionId": session_id})
        )

    async def get_events(self, session_id: str, *, after: int = 0, limit: int = 100) -> EventPage:
        """One page of the session's durable log (`_bridge/session/events`)."""
        result = await self.request(
            "_bridge/session/events", {"sessionId": session_id, "after": after, "limit": limit}
        )
        return EventPage.model_validate(result)

    async def iter_events(
        self, session_id: str, *, after: int = 0, page_size: int = 1000
    ) -> AsyncIterator[Event]:
        """Every logged event after `after`, page by page."""
        while True:
            page = await self.get_events(session_id, after=after, limit=page_size)
            for event in page.events:
                yield event
            if page.next is None:
                return
            after = page.next

    async def agents(self) -> list[AgentInfo]:
        """The daemon's agent table (`_bridge/agents`)."""
        result = await self.request("_bridge/agents", {})
        return [AgentInfo.model_validate(a) for a in result.get("agents") or []]

    async def authenticate(self, method_id: str, *, agent: str | None = None) -> JsonObj:
        params: JsonObj = {"methodId": method_id}
        if agent is not None:
            params["_meta"] = {"bridge": {"agent": agent}}
        result: JsonObj = await self.request("authenticate", params)
        return result

    async def logout(self) -> None:
        await self.request("logout", {})
