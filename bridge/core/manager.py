"""The session manager: owns every live session's agent task, the catalog, and the
lifecycle (new / load / resume / fork / close / delete), for all client connections.

Agent tasks live in the manager's task group, not the connection's: a client that drops
does not kill its sessions' turns (transports decide when to close them).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from bridge.core.adapter import (
    AdapterEnv,
    AdapterFactory,
    AgentAdapter,
    AgentSession,
    AgentSpec,
    JsonObj,
    SessionSetup,
    StartMode,
    StartRequest,
)
from bridge.core.links import ClientLink
from bridge.core.session import Session
from bridge.errors import (
    AGENT_START_FAILED,
    INVALID_PARAMS,
    AgentError,
    AgentExitedError,
    AgentStartError,
    RpcError,
    StoreError,
    find_rpc_error,
    session_not_found,
)
from bridge.process.agent_process import ExitRecord, recording_exits
from bridge.rpc.endpoint import ConnectionClosed
from bridge.store.base import (
    DEFAULT_LEASE_SECONDS,
    LIVE_STATUSES,
    Instance,
    LeaseHeld,
    SessionRecord,
    Store,
    Transport,
    new_instance,
    owner_gone,
)
from bridge.store.sqlite import now_iso

log = logging.getLogger(__name__)

# Crash restarts: at most MAX_RESTARTS within RESTART_WINDOW seconds, with exponential
# backoff; restarts the bridge itself causes (forced cancel, stall) do not count.
MAX_RESTARTS = 3
RESTART_WINDOW = 60.0


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
        stall_timeout: float = 600.0,
        cancel_grace: float = 10.0,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        transport: Transport = "stdio",
    ) -> None:
        self.lease_seconds = lease_seconds
        # This daemon's registration in the store: the lease on every session it runs.
        self.instance: Instance = new_instance(transport, lease_seconds)
        # Catalog fields asked for from synchronous code (`save_soon`), not written yet.
        self._unsaved: dict[str, dict[str, Any]] = {}
        self._unsaved_added = anyio.Event()
        self.stall_timeout = stall_timeout
        self.cancel_grace = cancel_grace
        self.store = store
        self.agents = agents
        self.registry = registry
        self.env = env
        self.default_agent = default_agent
        self.sessions: dict[str, Session] = {}
        self._tg: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.register()
        await self._recover()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._heartbeat)
                tg.start_soon(self._catalog_writer)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await self.store.flush()

    async def register(self, ws_url: str | None = None) -> None:
        """(Re-)register this daemon, e.g. with its WebSocket URL once the listener is bound."""
        if ws_url is not None:
            self.instance = dataclasses.replace(self.instance, ws_url=ws_url)
        try:
            await self.store.register(self.instance)
        except StoreError as exc:
            log.warning("could not register this daemon in the session store: %s", exc.message)

    async def _heartbeat(self) -> None:
        """Renew this daemon's lease (all its sessions at once) at a third of its length,
        so that two missed renewals still leave it owned."""
        while True:
            await anyio.sleep(self.lease_seconds / 3)
            try:
                await self.store.heartbeat(self.lease_seconds)
            except StoreError as exc:
                log.warning("could not renew this daemon's session lease: %s", exc.message)

    async def _catalog_writer(self) -> None:
        while True:
            await self._unsaved_added.wait()
            self._unsaved_added = anyio.Event()
            while self._unsaved:
                await self.save(next(iter(self._unsaved)), touch=False)

    async def _recover(self) -> None:
        """Sessions whose daemon is gone (lease expired, or its pid dead on this host):
        record how they ended. Sessions of live daemons are never touched."""
        try:
            await self.store.forget_instances()
            orphans = await self.store.orphaned_sessions()
        except StoreError as exc:
            log.warning("start-up recovery skipped: %s", exc.message)
            return
        for rec in orphans:
            try:
                if await self.store.acquire(rec.id) is None:
                    await self._close_orphan(rec)
                    await self.store.release(rec.id)
            except StoreError as exc:
                log.warning("could not recover session %s: %s", rec.id, exc.message)

    async def _close_orphan(self, rec: SessionRecord) -> None:
        """A session whose daemon died (its lease is ours now): a turn it was running is
        recorded as interrupted, and nothing runs for it until it is loaded or resumed."""
        if rec.status == "busy":
            self.store.append(rec.id, "bridge", b'{"bridge":{"type":"turn_interrupted","reason":"restart"}}')
            await self.store.flush()
        if rec.status != "closed":
            await self.store.update_session(rec.id, status="closed", touch=False)
            rec.status = "closed"

    # -- the catalog, failure-tolerant -----------------------------------------------------------
    async def save(self, session_id: str, *, touch: bool = True, **fields: Any) -> None:
        """A catalog write that never fails a turn: a store that cannot be written (full disk,
        a lock held too long) costs a warning, and the session keeps running."""
        # Fields `save_soon` queued for the session go with this write, in order.
        fields = {**self._unsaved.pop(session_id, {}), **fields}
        try:
            await self.store.update_session(session_id, touch=touch, **fields)
        except StoreError as exc:
            log.warning("session %s: catalog not updated (%s): %s", session_id, sorted(fields), exc.message)

    def save_soon(self, session_id: str, fields: dict[str, Any]) -> None:
        """`save` from synchronous code: written by the manager's catalog writer, or with
        the session's next `save`, whichever comes first."""
        self._unsaved.setdefault(session_id, {}).update(fields)
        self._unsaved_added.set()

    async def owners(self) -> dict[str, Instance]:
        """Every live daemon on the store by instance id (this one included)."""
        try:
            return {inst.id: inst for inst in await self.store.instances()}
        except StoreError as exc:
            log.warning("could not read the daemons sharing the store: %s", exc.message)
            return {self.instance.id: self.instance}

    async def live_owner(self, rec: SessionRecord) -> Instance | None:
        """The other live daemon that owns `rec`, if any."""
        if rec.owner is None or rec.owner == self.instance.id:
            return None
        try:
            inst = await self.store.instance(rec.owner)
        except StoreError:
            return None
        return None if owner_gone(inst) else inst

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
        await self._take(rec)
        session = Session(rec, spec, self.store)
        session.owner = owner
        try:
            setup = await self._start(session, mode, params, rec.agent_session_id, create=False)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._release(rec.id)
            raise
        return session, setup

    async def _take(self, rec: SessionRecord) -> None:
        """Take the session's lease for this daemon, or refuse (`LeaseHeld`, naming the
        owner) while another live daemon runs it. A session whose daemon died is closed
        first, as start-up recovery would have."""
        try:
            holder = await self.store.acquire(rec.id)
        except StoreError as exc:
            # No lease can be taken (store failing): run the session anyway, unrecorded.
            log.warning("session %s: lease not taken (%s); running it anyway", rec.id, exc.message)
            return
        if holder is not None:
            raise LeaseHeld(rec.id, holder)
        if rec.status in LIVE_STATUSES:
            try:
                await self._close_orphan(rec)
            except StoreError as exc:
                log.warning("session %s: %s", rec.id, exc.message)
        rec.owner = self.instance.id

    async def _release(self, session_id: str) -> None:
        try:
            await self.store.flush()
            await self.store.release(session_id)
        except StoreError as exc:
            log.warning("session %s: lease not released (%s); it expires on its own", session_id, exc.message)

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
        rec = session.record
        request = StartRequest(
            mode=mode,
            cwd=rec.cwd,
            mcp_servers=rec.mcp_servers,
            additional_directories=rec.additional_directories,
            agent_session_id=agent_session_id,
            meta=params.meta,
            client_capabilities=params.client_capabilities,
            client_info=params.client_info,
            authenticate=params.authenticate,
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
            agent = await self._start_bounded(session, adapter, request)
        except BaseException:
            if not restart:
                # A failed restart keeps the session: the client may retry (bounded by the limit).
                self.sessions.pop(rec.id, None)
            if create:
                with anyio.CancelScope(shield=True):
                    await self.save(rec.id, status="closed", deleted=True, owner=None)
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

    async def _start_bounded(
        self, session: Session, adapter: AgentAdapter, request: StartRequest
    ) -> AgentSession:
        """Start the agent task; fail if the agent goes silent for too long while starting
        (it answered initialize but never session/new, say). Anything it emits resets the clock."""
        assert self._tg is not None
        limit = 2 * self.env.handshake_timeout
        session.touch()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def watchdog() -> None:
                    while True:
                        left = session.last_activity + limit - anyio.current_time()
                        if left <= 0:
                            scope.cancel()
                            return
                        await anyio.sleep(left)

                tg.start_soon(watchdog)
                agent: AgentSession = await self._tg.start(self._run_agent, session, adapter, request)
                tg.cancel_scope.cancel()
            return agent
        raise AgentStartError(
            session.spec.name,
            f"it sent nothing for {limit:g} s while opening the session ({request.mode})",
            {"timeoutSeconds": limit},
        )

    async def _run_agent(
        self,
        session: Session,
        adapter: AgentAdapter,
        request: StartRequest,
        *,
        task_status: TaskStatus[AgentSession],
    ) -> None:
        started = False

        class _Relay:
            def started(self, value: AgentSession) -> None:
                nonlocal started
                started = True
                session.agent = value
                session.agent_error = None
                task_status.started(value)

        with anyio.CancelScope() as scope, recording_exits() as exits:
            session.run_scope = scope
            try:
                await adapter.run(session, request, task_status=_Relay())  # type: ignore[arg-type]
                if started and not scope.cancel_called:
                    session.agent_exited(
                        _exit_error(session.spec.name, exits, started=True)
                        if exits.ended
                        else AgentExitedError(session.spec.name, None, "agent ended the session")
                    )
            except Exception as exc:
                found = find_rpc_error(exc)
                if exits.on_its_own and (found is None or isinstance(found, ConnectionClosed)):
                    # The adapter only saw the pipe close; the process's exit says why.
                    found = _exit_error(session.spec.name, exits, started=started)
                if not started:
                    if found is not None:
                        raise found from exc
                    raise
                if isinstance(found, AgentError):
                    session.agent_exited(found)
                else:
                    log.exception("agent task of session %s failed", session.session_id)
                    session.agent_exited(
                        AgentExitedError(session.spec.name, None, f"adapter failure: {exc!r}")
                    )
        if session.status == "error":
            with anyio.CancelScope(shield=True):
                await self.save(session.session_id, status="error", touch=False)

    async def ensure_agent(self, session: Session) -> None:
        """Restart a dead agent (resuming its native session) before the next prompt.
        Crashes count against the restart limit and back off; a restart the bridge caused
        itself (forced cancel, stall) does not."""
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
            now = anyio.current_time()
            recent = [t for t in session.restart_times if now - t < RESTART_WINDOW]
            session.restart_times = recent
            if len(recent) >= MAX_RESTARTS:
                raise _restart_limit_error(session, crashed, recent[0] + RESTART_WINDOW - now)
            session.restart_times.append(now)
            await anyio.sleep(min(2.0, 0.25 * (2 ** (len(recent)))))
        session.restarts += 1
        params = session.restart_params
        assert params is not None
        session.record_event(
            {"type": "agent_restart", "attempt": session.restarts, "afterCrash": crashed is not None}
        )
        try:
            await self._start(
                session, "resume", params, session.record.agent_session_id, create=False, restart=True
            )
        except AgentError as exc:
            # Counts as a crash for the next attempt (backoff, limit).
            session.agent_error = exc
            raise

    async def close(self, session: Session) -> None:
        if session.turn_active:
            await session.cancel()
        if session.run_scope is not None:
            session.run_scope.cancel()
        session.agent = None
        session.status = "closed"
        self.sessions.pop(session.session_id, None)
        session.record_event({"type": "closed"})
        with anyio.CancelScope(shield=True):
            await self.save(session.session_id, status="closed", touch=False)
            await self._release(session.session_id)

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await self.close(session)


def _exit_error(agent: str, exits: ExitRecord, *, started: bool) -> AgentError:
    if started:
        return AgentExitedError(agent, exits.returncode, exits.stderr_tail)
    rc = exits.returncode
    how = (
        f"exit code {rc}"
        if rc is not None and rc >= 0
        else f"signal {-rc}"
        if rc is not None
        else "no status"
    )
    tail = exits.stderr_tail.strip()
    last = tail.splitlines()[-1][:300] if tail else "nothing on stderr"
    return AgentStartError(
        agent, f"it exited while starting ({how}): {last}", {"exitCode": rc, "stderrTail": exits.stderr_tail}
    )


def _restart_limit_error(session: Session, last: AgentError, retry_in: float) -> AgentError:
    data = last.data if isinstance(last.data, dict) else {}
    return AgentError(
        last.code,
        f"agent {session.spec.name!r} failed {MAX_RESTARTS} times within {RESTART_WINDOW:g} s; restart limit "
        f"reached, next attempt allowed in {max(retry_in, 0):.0f} s. Last failure: {last.message}",
        {
            **data,
            "agent": session.spec.name,
            "restartLimit": MAX_RESTARTS,
            "windowSeconds": RESTART_WINDOW,
            "retryAfterSeconds": round(max(retry_in, 0), 1),
        },
    )
