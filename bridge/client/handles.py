"""Session handles: made for an id, or by opening a session in the daemon (`session/new`,
`resume`, `load`, `fork`, `attach`); one handle per session id, which every `session/update`
for it reaches. Part of `BridgeClient`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from bridge.client.channel import Daemon
from bridge.client.errors import ClientError
from bridge.client.mcp import McpServer, absolute, mcp_wire
from bridge.client.permissions import Permissions, check_permissions
from bridge.client.results import SessionInfo
from bridge.client.session import Session
from bridge.wire.types import JsonObj


class Handles:
    """Mixed into `BridgeClient` (bridge/client/client.py), which provides the rest."""

    _sessions: dict[str, Session]
    # Updates for a session id with no handle yet (they can arrive just before the
    # `session/new` answer that names it), kept briefly, boundedly.
    _orphans: dict[str, list[JsonObj]]
    _channel: Daemon[Session]

    if TYPE_CHECKING:  # provided by the class this is mixed into

        async def request(self, method: str, params: Any = None) -> Any: ...
        async def get_info(self, session_id: str) -> SessionInfo: ...

    def _handle(self, session_id: str, **kw: Any) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = Session(self._channel, session_id, **kw)
            for params in self._orphans.pop(session_id, []):
                session.receive_update(params)
        else:
            for key, value in kw.items():
                if value is not None:
                    setattr(session, key, value)
        return session

    def session(self, session_id: str, *, permissions: Permissions = None) -> Session:
        """A handle on an existing session, without a round trip. The first prompt (or
        config change) resumes it in the daemon if this connection has not opened it."""
        return self._handle(session_id, permissions=permissions)

    async def create_session(
        self,
        *,
        agent: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        model: str | None = None,
        mode: str | None = None,
        thought_level: str | None = None,
        config: Mapping[str, str | bool] | None = None,
        title: str | None = None,
        additional_directories: Sequence[str] | None = None,
        permissions: Permissions = None,
        meta: JsonObj | None = None,
    ) -> Session:
        """`session/new` with `agent` (default: the daemon's default agent) in `cwd`
        (default: the current directory), then model / mode / thought level / other config
        options and the title. If any of those fails the new session is closed again."""
        check_permissions(permissions)
        cwd_abs = absolute(cwd if cwd is not None else ".")
        params: JsonObj = {"cwd": cwd_abs, "mcpServers": mcp_wire(mcp_servers)}
        if additional_directories:
            params["additionalDirectories"] = [absolute(d) for d in additional_directories]
        meta = dict(meta or {})
        if agent is not None:
            meta["bridge"] = {**(meta.get("bridge") or {}), "agent": agent}
        if meta:
            params["_meta"] = meta
        result = await self.request("session/new", params)
        session = self._handle(str(result["sessionId"]), cwd=cwd_abs, agent=agent, permissions=permissions)
        session.additional_directories = params.get("additionalDirectories")
        session.apply_setup(result)
        try:
            await session.configure(model=model, mode=mode, thought_level=thought_level, options=config)
            if title is not None:
                await session.update(title=title)
            await session.info()
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(ClientError):
                await self.close_session(session.id)
            raise
        return session

    async def _reopen(
        self,
        session: Session,
        mode: str,
        *,
        cwd: str | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        additional_directories: Sequence[str] | None = None,
        continue_lost: bool = False,
    ) -> JsonObj:
        if cwd is None:
            cwd = session.cwd or (await self.get_info(session.id)).cwd
        params: JsonObj = {"sessionId": session.id, "cwd": cwd, "mcpServers": mcp_wire(mcp_servers)}
        if continue_lost:
            params["_meta"] = {"bridge": {"continue": True}}
        if additional_directories is not None:
            params["additionalDirectories"] = list(additional_directories)
        session.cwd = cwd
        session.loading = mode == "load"
        if mode == "load":
            session.history = []
        try:
            result = await self.request(f"session/{mode}", params)
        finally:
            session.loading = False
        session.apply_setup(result)
        return result if isinstance(result, dict) else {}

    async def resume_session(
        self,
        session_id: str,
        *,
        cwd: str | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        permissions: Permissions = None,
        continue_lost: bool = False,
    ) -> Session:
        """Continue a stored session without replaying it (`session/resume`), through the
        agent's own resume. `cwd` defaults to the session's. `continue_lost`: when the agent
        no longer has the session, continue in a new agent session seeded with the bridge's
        transcript (`session.setup["_meta"]["bridge"]["continued"]` says so) instead of failing."""
        return await self._open_stored(session_id, "resume", cwd, mcp_servers, permissions, continue_lost)

    async def load_session(
        self,
        session_id: str,
        *,
        cwd: str | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        permissions: Permissions = None,
        continue_lost: bool = False,
    ) -> Session:
        """Open a stored session and replay its history (`session/load`): the replayed
        updates are in `session.history`. `continue_lost` as for `resume_session`."""
        return await self._open_stored(session_id, "load", cwd, mcp_servers, permissions, continue_lost)

    async def _open_stored(
        self,
        session_id: str,
        mode: str,
        cwd: str | None,
        mcp_servers: Sequence[McpServer | JsonObj] | None,
        permissions: Permissions,
        continue_lost: bool = False,
    ) -> Session:
        session = self._handle(session_id, permissions=permissions)
        await self._reopen(session, mode, cwd=cwd, mcp_servers=mcp_servers, continue_lost=continue_lost)
        await session.info()
        return session

    async def fork_session(
        self,
        session_id: str,
        *,
        cwd: str | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        permissions: Permissions = None,
    ) -> Session:
        """A new session carrying on from `session_id`'s conversation (`session/fork`)."""
        if cwd is None:
            parent = self._sessions.get(session_id)
            cwd = (parent.cwd if parent is not None else None) or (await self.get_info(session_id)).cwd
        params = {"sessionId": session_id, "cwd": cwd, "mcpServers": mcp_wire(mcp_servers)}
        result = await self.request("session/fork", params)
        session = self._handle(str(result["sessionId"]), cwd=cwd, permissions=permissions)
        session.apply_setup(result)
        await session.info()
        return session

    async def attach(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_event: Callable[[Any], Any] | None = None,
        role: str = "observer",
        history_policy: str = "full",
    ) -> Session:
        """Follow a session another client runs (`session/attach`): its history after
        `after` is replayed (into `session.history`, and to `on_event`), then its live
        updates arrive here too. `session.live` says whether it is running in the daemon.
        `role="controller"` is asked its permission requests while the owner shares it;
        `history_policy` is `full`, `pending_only` or `none` (spec/multi-client.md). Acting
        on it (prompt, config, close) takes `session.take_over()` first."""
        session = self._handle(session_id)
        if on_event is not None:
            session.on_event(on_event)
        params = {"sessionId": session_id, "after": after, "role": role, "historyPolicy": history_policy}
        result = await self.request("session/attach", params)
        session.live = bool(result.get("live"))
        session.cursor = result.get("cursor")
        await session.info()
        return session

    @contextlib.asynccontextmanager
    async def follow(self, session_id: str, *, after: int = 0) -> AsyncIterator[AsyncIterator[Any]]:
        """`async with client.follow(id) as updates: async for u in updates` — the session's
        history after `after`, then its live updates, as one stream."""
        session = self._handle(session_id)
        async with session.updates() as updates:
            await self.attach(session_id, after=after)
            yield updates

    async def close_session(self, session_id: str) -> None:
        await self.request("session/close", {"sessionId": session_id})
        session = self._sessions.get(session_id)
        if session is not None:
            session.opened = False

    async def delete_session(self, session_id: str) -> None:
        await self.request("session/delete", {"sessionId": session_id})
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.opened = False
