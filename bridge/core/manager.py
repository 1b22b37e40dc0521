"""The session manager: owns every live session's agent task, the catalog, and the
lifecycle (new / load / resume / fork / close / delete), for all client connections.

Agent tasks live in the manager's task group, not the connection's: a client that drops
does not kill its sessions' turns (transports decide when to close them).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from bridge import timeouts
from bridge.core.adapter import (
    AdapterEnv,
    AdapterFactory,
    AgentAdapter,
    AgentSpec,
    SessionSetup,
    StartMode,
    StartRequest,
)
from bridge.core.agent_run import start_bounded
from bridge.core.continuation import (
    agent_lost_session,
    build_transcript,
    continued,
    lost_error,
    wants_continue,
)
from bridge.core.links import ClientLink
from bridge.core.ownership import Ownership

# The restart limit is also read here (as before the split): re-exported.
from bridge.core.restarts import MAX_RESTARTS as MAX_RESTARTS
from bridge.core.restarts import RESTART_WINDOW as RESTART_WINDOW
from bridge.core.restarts import crash_backoff
from bridge.core.session import Session
from bridge.errors import (
    AGENT_START_FAILED,
    INVALID_PARAMS,
    SESSION_OWNED,
    AgentError,
    RpcError,
    StoreError,
    find_rpc_error,
    session_not_found,
)
from bridge.mcp.config import ConfiguredServers
from bridge.mcp.status import McpStatus
from bridge.store.base import DEFAULT_LEASE_SECONDS, Instance, LeaseHeld, SessionRecord, Store, Transport
from bridge.store.sqlite import now_iso
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenParams:
    cwd: str
    mcp_servers: list[JsonObj]
    additional_directories: list[str] | None
    meta: JsonObj | None
    client_capabilities: JsonObj
    client_info: JsonObj | None
    authenticate: JsonObj | None = None


class SessionManager:
    def __init__(
        self,
        store: Store,
        agents: Mapping[str, AgentSpec],
        registry: Mapping[str, AdapterFactory],
        env: AdapterEnv,
        default_agent: str | None,
        *,
        stall_timeout: float = timeouts.STALL_TIMEOUT,
        cancel_grace: float = timeouts.CANCEL_GRACE,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        transport: Transport = "stdio",
        mcp: ConfiguredServers | None = None,
    ) -> None:
        # Config-wired MCP servers (`[mcp_servers.NAME]`), merged in at every agent start.
        self.mcp = mcp or ConfiguredServers()
        self.stall_timeout = stall_timeout
        self.cancel_grace = cancel_grace
        self.store = store
        self.agents = agents
        self.registry = registry
        self.env = env
        self.default_agent = default_agent
        self.sessions: dict[str, Session] = {}
        self._tg: TaskGroup | None = None
        # Leases, recovery and failure-tolerant catalog writes (bridge/core/ownership.py).
        self.ownership = Ownership(store, self.sessions, lease_seconds, transport, on_lost=self._lost)
        self.save = self.ownership.save
        self.save_soon = self.ownership.save_soon
        self.owners = self.ownership.owners
        self.live_owner = self.ownership.live_owner
        self.register = self.ownership.register

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.ownership.register()
        await self.ownership.recover()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if self.env.tasks is not None:
                    # Shared agent processes live here: cancelled (so stopped) with the daemon.
                    self.env.tasks.group = tg
                tg.start_soon(self.ownership.heartbeat)
                tg.start_soon(self.ownership.catalog_writer)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            if self.env.tasks is not None:
                self.env.tasks.group = None
            with anyio.CancelScope(shield=True):
                await self.store.flush()

    async def prewarm(self) -> None:
        """Start the default agent's shared process (if its adapter shares one) in the
        background, so the first `session/new` need not wait for its spawn and handshake.
        Off the `initialize` path: the adapter is imported in a worker thread."""
        spec = self.agents.get(self.default_agent) if self.default_agent else None
        if spec is None or not spec.share_process or spec.protocol not in self.registry:
            return
        adapter = await anyio.to_thread.run_sync(self.adapter_for, spec)
        warm = getattr(adapter, "prewarm", None)
        if warm is not None:
            await warm()

    # -- lookup ----------------------------------------------------------------------------------
    def pick_agent(self, meta: JsonObj | None) -> AgentSpec:
        name = None
        if isinstance(meta, dict):
            bridge_meta = meta.get("bridge")
            if isinstance(bridge_meta, dict) and bridge_meta.get("agent") is not None:
                name = bridge_meta["agent"]
                if not isinstance(name, str):
                    raise RpcError(
                        INVALID_PARAMS, "_meta.bridge.agent must be a string", {"field": "_meta.bridge.agent"}
                    )
        name = name or self.default_agent
        known = sorted(self.agents)
        if name is None:
            raise RpcError(
                INVALID_PARAMS,
                "no agent chosen: pass _meta.bridge.agent, start with --agent, or set default_agent; "
                f"known agents: {', '.join(known)}",
                {"field": "_meta.bridge.agent", "agents": known},
            )
        spec = self.agents.get(name)
        if spec is None:
            raise RpcError(
                INVALID_PARAMS,
                f"unknown agent {name!r}; known agents: {', '.join(known)}",
                {"field": "_meta.bridge.agent", "agents": known},
            )
        return spec

    def adapter_for(self, spec: AgentSpec) -> AgentAdapter:
        factory = self.registry.get(spec.protocol)
        if factory is None:
            raise RpcError(
                AGENT_START_FAILED,
                f"agent {spec.name!r} uses protocol {spec.protocol!r}, which this bridge does not have",
                {"agent": spec.name},
            )
        return factory(spec, self.env)

    def live(self, session_id: Any) -> Session:
        s = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if s is None:
            raise session_not_found(session_id)
        return s

    async def record(self, session_id: Any) -> SessionRecord:
        rec = await self.store.get_session(session_id) if isinstance(session_id, str) else None
        if rec is None or rec.deleted:
            raise session_not_found(session_id)
        return rec

    # -- lifecycle -------------------------------------------------------------------------------
    async def new(
        self, params: OpenParams, *, owner: ClientLink, parent: SessionRecord | None = None
    ) -> tuple[Session, SessionSetup]:
        spec = (
            self.agents[parent.agent]
            if parent is not None and parent.agent in self.agents
            else self.pick_agent(params.meta)
        )
        now = now_iso()
        rec = SessionRecord(
            id=f"sess_{uuid.uuid4().hex}",
            agent=spec.name,
            cwd=params.cwd,
            created_at=now,
            updated_at=now,
            additional_directories=params.additional_directories,
            mcp_servers=params.mcp_servers,
            parent_id=parent.id if parent else None,
            status="idle",
            owner=self.instance.id,
        )
        mode: StartMode = "fork" if parent is not None else "new"
        session = Session(rec, spec, self.store)
        session.owner = owner
        setup = await self._start(
            session, mode, params, parent.agent_session_id if parent else None, create=True
        )
        return session, setup

    async def reopen(
        self, rec: SessionRecord, mode: StartMode, params: OpenParams, *, owner: ClientLink
    ) -> tuple[Session, SessionSetup]:
        """load / resume a stored session that has no live agent in this daemon."""
        spec = self.agents.get(rec.agent)
        if spec is None:
            raise RpcError(
                INVALID_PARAMS,
                f"session {rec.id} ran agent {rec.agent!r}, which is no longer configured",
                {"agent": rec.agent},
            )
        if not rec.agent_session_id:
            raise RpcError(
                AGENT_START_FAILED,
                f"session {rec.id} has no agent-side session to {mode}: it never finished starting",
            )
        rec.cwd = params.cwd or rec.cwd
        rec.mcp_servers = params.mcp_servers or rec.mcp_servers
        if params.additional_directories is not None:
            rec.additional_directories = params.additional_directories
        wanted = wants_continue(params.meta)
        await self.ownership.take(rec)
        session = Session(rec, spec, self.store)
        session.owner = owner
        try:
            setup = await self._reopen_agent(session, mode, params, continue_lost=wanted)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.ownership.release(rec.id)
            raise
        return session, setup

    async def _reopen_agent(
        self,
        session: Session,
        mode: StartMode,
        params: OpenParams,
        *,
        continue_lost: bool,
        restart: bool = False,
    ) -> SessionSetup:
        """Load or resume the agent's session; when the agent no longer has it, either say so
        (naming the bridge session and how to continue) or, when the client opted in, continue
        in a new agent session seeded with the bridge's transcript (bridge/core/continuation.py)."""
        rec = session.record
        previous = rec.agent_session_id
        try:
            return await self._start(session, mode, params, previous, create=False, restart=restart)
        except Exception as exc:
            found = find_rpc_error(exc)  # task groups wrap it
            if found is None or not agent_lost_session(found):
                raise
            if not continue_lost:
                raise lost_error(rec.id, session.spec.name, previous, found, mode) from None
            cause = found
        transcript = await build_transcript(self.store, rec.id)
        setup = await self._start(session, "new", params, None, create=False, restart=restart)
        continued(session, transcript, previous, setup, cause, restart=restart)
        return setup

    async def _start(
        self,
        session: Session,
        mode: StartMode,
        params: OpenParams,
        agent_session_id: str | None,
        *,
        create: bool,
        restart: bool = False,
    ) -> SessionSetup:
        assert self._tg is not None
        host = self._tg
        rec = session.record
        servers, configured = self._mcp_servers(session)
        request = StartRequest(
            mode=mode,
            cwd=rec.cwd,
            mcp_servers=servers,
            mcp_optional=configured,
            additional_directories=rec.additional_directories,
            agent_session_id=agent_session_id,
            meta=params.meta,
            client_capabilities=params.client_capabilities,
            client_info=params.client_info,
            authenticate=params.authenticate,
            history_turns=session.metrics.turns,
        )
        adapter = self.adapter_for(session.spec)
        session.stall_timeout = session.spec.stall_timeout or self.stall_timeout
        session.cancel_grace = self.cancel_grace
        if create:
            try:
                await self.store.create_session(rec)
            except StoreError as exc:
                # The session runs, but nothing of it is durable: say so, never refuse the user.
                log.warning("session %s is not recorded in the catalog: %s", rec.id, exc.message)
        self.sessions[rec.id] = session
        try:
            agent = await start_bounded(
                host, session, adapter, request, limit=2 * self.env.handshake_timeout, save=self.save
            )
        except BaseException:
            if not restart:
                # A failed restart keeps the session: the client may retry (bounded by the limit).
                self.sessions.pop(rec.id, None)
            if create:
                # Never listed again: keep no MCP config (its env and headers may be secrets).
                with anyio.CancelScope(shield=True):
                    await self.save(rec.id, status="closed", deleted=True, owner=None, mcp_servers=[])
            raise
        setup = agent.setup
        session.setup = setup
        rec.agent_session_id = setup.agent_session_id
        rec.status = "idle"
        await self.save(
            rec.id,
            agent_session_id=setup.agent_session_id,
            status="idle",
            cwd=rec.cwd,
            mcp_servers=rec.mcp_servers,
            additional_directories=rec.additional_directories,
        )
        session.restart_params = params
        return setup

    def _mcp_servers(self, session: Session) -> tuple[list[JsonObj], frozenset[str]]:
        """The servers this agent run gets: the config's, then the session's own (which win
        on a name), re-merged at every start (new, load, resume, fork, restart). The record
        keeps only the session's own: the config's may hold secrets, and stay in the config."""
        servers, configured = self.mcp.merge(session.spec.name, session.record.mcp_servers)
        session.mcp = McpStatus(servers, configured)
        return servers, configured

    async def ensure_agent(self, session: Session) -> None:
        """Restart a dead agent (resuming its native session) before the next prompt.
        Crashes count against the restart limit and back off; a restart the bridge caused
        itself (forced cancel, stall) does not."""
        if session.lost is not None:
            raise session.lost
        if session.agent is not None:
            return
        # A cancel arriving meanwhile waits for the prompt's turn (`Session.cancel`).
        session.restarting += 1
        try:
            async with session.restart_lock:
                if session.agent is None:
                    await self._restart(session)
        finally:
            session.restarting -= 1
            session.turn_changed()

    async def _restart(self, session: Session) -> None:
        crashed = session.agent_error
        if crashed is not None:
            await crash_backoff(session, crashed)
        # An agent the bridge stopped (forced cancel, stall) may still be exiting: the new one
        # must not meet it holding the session.
        await self._agent_gone(session)
        session.restarts += 1
        params = session.restart_params
        assert params is not None
        session.record_event(
            {"type": "agent_restart", "attempt": session.restarts, "afterCrash": crashed is not None}
        )
        try:
            # A session reopened with `_meta.bridge.continue` also continues when the agent
            # lost it in a crash (an agent that keeps nothing across restarts).
            await self._reopen_agent(
                session, "resume", params, continue_lost=wants_continue(params.meta), restart=True
            )
        except AgentError as exc:
            # Counts as a crash for the next attempt (backoff, limit).
            session.agent_error = exc
            raise

    async def close(self, session: Session) -> None:
        # A running turn resolves `cancelled` before the agent is stopped (ACP: closing a
        # session cancels its work as `session/cancel` would).
        await session.close_turn()
        if session.run_scope is not None:
            session.run_scope.cancel()
        session.agent = None
        session.status = "closed"
        self.sessions.pop(session.session_id, None)
        session.record_event({"type": "closed"})
        # Answered once the agent is gone: a load or resume right after must not meet the old
        # process still holding the session (Claude Code refuses a session in use).
        await self._agent_gone(session)
        with anyio.CancelScope(shield=True):
            await self.save(
                session.session_id, status="closed", touch=False, metrics=session.metrics.to_json()
            )
            await self.ownership.release(session.session_id)

    @property
    def instance(self) -> Instance:
        return self.ownership.instance

    def _lost(self, session: Session, holder: Instance | None) -> None:
        """Another daemon took the session over (this one stopped renewing its lease, e.g.
        paused past it): stop driving it here, without touching the new owner's catalog row."""
        log.warning(
            "session %s was taken over by another daemon; stopping its agent here", session.session_id
        )
        error = (
            LeaseHeld(session.session_id, holder)
            if holder is not None
            else RpcError(SESSION_OWNED, f"session {session.session_id} was taken over by another daemon")
        )
        session.taken_over(error)
        if session.run_scope is not None:
            session.run_scope.cancel()
        self.sessions.pop(session.session_id, None)

    async def _agent_gone(self, session: Session) -> None:
        # The stop ladder is bounded by about four grace periods.
        stopped = session.agent_stopped
        if session.run_scope is not None and stopped is not None:
            with anyio.move_on_after(4 * self.env.stop_grace + 1):
                await stopped.wait()

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await self.close(session)
