"""Serving ACP v1 on one connection: wires an Outbox, an Endpoint and the method tables
(`Handlers`, `Extensions`) to the session manager. Transports call `serve()`."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from bridge import timeouts
from bridge.acp import auth, schema_load
from bridge.acp.capabilities import AgentCapabilities
from bridge.acp.connection import ClientConnection
from bridge.acp.extensions import Extensions
from bridge.acp.handlers import Handlers
from bridge.acp.multiclient import MultiClient
from bridge.config import Policy
from bridge.core.adapter import AgentProbe, AgentSpec
from bridge.core.manager import SessionManager
from bridge.core.session import Session
from bridge.errors import AUTH_REQUIRED, INTERNAL_ERROR, METHOD_NOT_FOUND, RpcError
from bridge.rpc.dispatch import Dispatcher
from bridge.rpc.endpoint import Endpoint
from bridge.rpc.outbox import HARD_LIMIT, Outbox
from bridge.store.base import Instance, SessionRecord, Store, lease_error_data
from bridge.wire import jsonrpc
from bridge.wire.framing import Oversize
from bridge.wire.types import JsonObj

if TYPE_CHECKING:
    from bridge.trace import Tracer

log = logging.getLogger(__name__)

WARM_UP = "warm-up after the first initialize answer"

# Where a session ended up once its owner is gone: turns keep running this long so the
# client (or another) can reattach; then the session is closed (permissions fail closed).
DISCONNECT_GRACE = timeouts.DISCONNECT_GRACE


class AcpServer:
    def __init__(
        self,
        manager: SessionManager,
        store: Store,
        *,
        version: str,
        agents_table: Callable[[], Awaitable[list[JsonObj]]],
        disconnect_grace: float = DISCONNECT_GRACE,
    ) -> None:
        self.manager = manager
        self.store = store
        self.version = version
        self._agents_table = agents_table
        self.disconnect_grace = disconnect_grace
        self.handlers = Handlers(self)
        self.extensions = Extensions(self)
        self.multiclient = MultiClient(self)
        table = {**self.handlers.table(), **self.extensions.table(), **self.multiclient.table()}
        table["initialize"] = self._initialize
        self.dispatcher = Dispatcher(
            table,
            direct=frozenset({"initialize"}),  # the first answer need not load jsonrpcserver
        )
        self._warming = False
        self.agent_capabilities = AgentCapabilities(
            self._probe, cache_file=os.path.join(manager.env.state_dir, "agent-capabilities.json")
        )
        self._tg: TaskGroup | None = None
        # `--trace`: set by the app; None costs one check per connection, nothing per frame.
        self.tracer: Tracer | None = None
        # What clients may run through the daemon (config `allow_shell`, `mcp_stdio`); set by the app.
        self.policy = Policy()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Owns the background work of the server (cancels, disconnect grace timers)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            await anyio.sleep_forever()

    async def _initialize(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        result = await self.handlers.initialize(conn, params)
        if not self._warming:
            self._warming = True
            self.spawn(self._warm_up)
        return result

    async def _warm_up(self) -> None:
        """Once, after the first `initialize` answer: load what the first `session/new` needs
        (the ACP models and jsonrpcserver: 0.4-1.5 s of imports on this kind of machine) in a
        worker thread, then start the default agent's shared process (Codex). Start-up keeps
        these off the path to the first answer; without this the first session paid for them."""
        log.debug(WARM_UP)  # tests/e2e/test_startup_imports.py: what came before answered initialize
        # Side by side: the shared process mostly waits on its child, the imports run on a thread.
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._warm, "loading the session path", schema_load.ensure_session_path)
            tg.start_soon(self._warm, "starting the default agent's process", self.manager.prewarm)

    @staticmethod
    async def _warm(what: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        try:
            await fn(*args)
        except Exception as exc:  # the first session loads or starts it itself, and reports
            log.info("warm-up after initialize: %s failed: %r", what, exc)

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        assert self._tg is not None
        self._tg.start_soon(fn)

    async def agents_table(self) -> list[JsonObj]:
        return await self._agents_table()

    async def capabilities(self) -> JsonObj:
        # Only what the bridge and the default agent can both honour; the agent is probed
        # once per spec, and not at all without a default agent (bridge/acp/capabilities.py).
        name = self.manager.default_agent
        spec = self.manager.agents.get(name) if name else None
        caps = await self.agent_capabilities.advertised(spec)
        if spec is not None and auth.native_login(spec) is not None:
            caps["auth"] = {"logout": {}}  # the CLI's own logout (bridge/acp/auth.py)
        return caps

    async def _probe(self, spec: AgentSpec) -> AgentProbe:
        # Native adapters know their capabilities (they are the bridge's own implementation):
        # no need to spawn the agent just to answer `initialize`, nor to import its adapter
        # when the registry carries them (adapters/static.py).
        static = getattr(self.manager.registry.get(spec.protocol), "static_capabilities", None)
        adapter = None if isinstance(static, dict) else self.manager.adapter_for(spec)
        static = static if adapter is None else getattr(adapter, "static_capabilities", None)
        if isinstance(static, dict):
            return AgentProbe(protocol_version=1, agent_capabilities=static, auth_methods=[])
        assert adapter is not None
        return await adapter.probe()

    async def auth_methods(self, client_capabilities: JsonObj | None = None) -> list[JsonObj]:
        """`initialize`'s authMethods (bridge/acp/auth.py): the default agent's logins, or
        without one those of the native built-ins."""
        terminal = auth.terminal_capable(client_capabilities)
        name = self.manager.default_agent
        spec = self.manager.agents.get(name) if name else None
        if spec is None:
            natives = [s for s in self.manager.agents.values() if auth.native_login(s) is not None]
            return [auth.native_method(s, terminal) for s in natives]
        if spec.protocol == "acp":
            await self.agent_capabilities.of(spec)  # probed once per spec, shared with capabilities()
        return self.auth_methods_for(spec, terminal)

    def auth_methods_for(self, spec: AgentSpec, terminal: bool) -> list[JsonObj]:
        if auth.native_login(spec) is not None:
            return [auth.native_method(spec, terminal)]
        return auth.passed_through(spec, self.agent_capabilities.auth_methods(spec), terminal)

    def session_info(self, rec: SessionRecord, owners: Mapping[str, Instance] | None = None) -> JsonObj:
        """`rec` as ACP SessionInfo. `owners` (live daemons by instance id): a session another
        live daemon runs shows its catalog status and `_meta.bridge.owner`, never `closed`."""
        info: JsonObj = {"sessionId": rec.id, "cwd": rec.cwd, "updatedAt": rec.updated_at}
        if rec.title is not None:
            info["title"] = rec.title
        if rec.additional_directories:
            info["additionalDirectories"] = rec.additional_directories
        live = self.manager.sessions.get(rec.id)
        holder = owners.get(rec.owner) if owners and rec.owner and live is None else None
        if holder is not None and holder.id == self.manager.instance.id:
            holder = None
        status = live.status if live is not None else rec.status if holder is not None else "closed"
        info["_meta"] = {
            "bridge": {
                "agent": rec.agent,
                "status": status,
                **(lease_error_data(holder) if holder is not None else {}),
                "archived": rec.archived,
                "createdAt": rec.created_at,
                **({"parentId": rec.parent_id} if rec.parent_id else {}),
            }
        }
        return info

    # -- one connection ----------------------------------------------------------------------------
    async def serve(
        self,
        incoming: AsyncIterable[list[bytes | Oversize]],
        write: Callable[[list[bytes]], Awaitable[None]],
        *,
        transport: str,
        outbox_limit: int | None = None,
        read_only: bool = False,
        drain: float = 0.0,
    ) -> ClientConnection:
        """Serve one connection until `incoming` ends; requests in progress then get `drain`
        seconds to be answered (stdio: a pipe's last requests)."""
        if self.tracer is not None:
            incoming, write = self.tracer.wrap_connection(incoming, write, transport)
        outbox = Outbox(write, before_write=self.store.flush, limit=outbox_limit or HARD_LIMIT)
        conn = ClientConnection(outbox, transport, read_only=read_only)

        async def on_request(req: jsonrpc.Request) -> Any:
            try:
                known = self.dispatcher.has(req.method)
                # Before anything runs: a refused request changes nothing (spec/multi-client.md).
                self.multiclient.check(conn, req.method, req.params, known=known)
                if not known:
                    return await self._forward_extension(req)
                if not schema_load.loaded and (schema_load.started or req.method != "initialize"):
                    # Only the first `initialize` answers before these imports, on the loop;
                    # any other request waits for the loader's thread (bridge/acp/schema_load.py).
                    await schema_load.ensure_session_path()
                return await self.dispatcher(conn, req)
            except Exception as exc:
                explained = await self._explain(req, exc, conn)
                if explained is exc:
                    raise
                raise explained from exc

        async def on_notification(note: jsonrpc.Notification) -> None:
            if note.method == "session/cancel":
                await self.handlers.cancel(conn, note.params)
            # Unknown notifications are ignored, as JSON-RPC and ACP ask.

        endpoint = Endpoint("client", outbox, on_request, on_notification)
        conn.endpoint = endpoint

        # `conn.gone` is set as soon as the connection is known to be over — before the
        # endpoint cancels its in-flight requests — so running turns keep going (`run_turn`).
        async def feed() -> AsyncIterator[list[bytes | Oversize]]:
            async for batch in incoming:
                yield batch
            conn.gone = True

        async def run_outbox(*, task_status: TaskStatus[None]) -> None:
            try:
                await outbox.run(task_status=task_status)
            except BaseException:
                conn.gone = True
                raise
            if outbox.overflowed:
                # A peer that stopped reading past the hard limit is cut off; the transport
                # sees `conn.outbox.overflowed` and says why.
                conn.gone = True
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            await tg.start(run_outbox)
            try:
                await endpoint.run(feed(), drain=drain)
            finally:
                conn.gone = True
                self._disconnected(conn)
                outbox.close()
        return conn

    async def run_turn(
        self, conn: ClientConnection, session: Session, turn: Callable[[], Awaitable[JsonObj]]
    ) -> JsonObj:
        """Run a prompt turn in the server's task group, not the request's: a client that goes
        away mid-turn does not end it — it runs on, logged, for whoever reattaches, who is told
        when it ends (`_bridge/session/turn_ended`). `$/cancel_request` from a client that is
        still connected still ends it, as before."""
        assert self._tg is not None
        done = anyio.Event()
        outcome: list[JsonObj | Exception] = []
        scope = anyio.CancelScope()

        async def run() -> None:
            try:
                with scope:
                    outcome.append(await turn())
            except Exception as exc:
                outcome.append(exc)
            finally:
                done.set()
            if outcome:
                self._turn_ended(conn, session, outcome[0])

        self._tg.start_soon(run)
        try:
            await done.wait()
        except anyio.get_cancelled_exc_class():
            # A client that lost the session to a takeover may withdraw its request, not end
            # the turn its new owner now drives.
            if not conn.gone and session.owner is conn:
                scope.cancel()
            raise
        if not outcome:
            raise RpcError(INTERNAL_ERROR, "the turn was stopped: the daemon is shutting down")
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    def _turn_ended(self, conn: ClientConnection, session: Session, outcome: JsonObj | Exception) -> None:
        """Tell the session's other clients (followers, a client that took it over) that the turn
        ended; the client that sent the prompt has its answer."""
        params: JsonObj = {"sessionId": session.session_id}
        if isinstance(outcome, RpcError):
            params["error"] = outcome.to_dict()
        elif isinstance(outcome, Exception):
            params["error"] = {"code": INTERNAL_ERROR, "message": "internal error"}
        else:
            params["stopReason"] = outcome.get("stopReason")
        frame = jsonrpc.notification_frame("_bridge/session/turn_ended", params)
        for link in (session.owner, *session.followers):
            if link is not None and link is not conn and not link.closed:
                link.send_frame(frame)

    async def _explain(self, req: jsonrpc.Request, exc: Exception, conn: ClientConnection) -> Exception:
        """An error on its way to the client: a recognised agent failure gains what happened
        and what to do, and secrets are masked (bridge/diagnostics/classify.py)."""
        from bridge.diagnostics.classify import explain_request

        params = req.params if isinstance(req.params, dict) else {}
        sid = params.get("sessionId")
        spec = None
        try:
            if isinstance(sid, str):
                live = self.manager.sessions.get(sid)
                rec = await self.store.get_session(sid) if live is None else None
                spec = live.spec if live is not None else self.manager.agents.get(rec.agent) if rec else None
            elif req.method == "session/new":
                spec = self.manager.pick_agent(params.get("_meta"))
        except RpcError:
            pass  # no agent to name: explained without one (a StoreError is one too)
        explained = explain_request(exc, spec)
        if spec is not None and isinstance(explained, RpcError) and explained.code == AUTH_REQUIRED:
            # Say how to fix it: the logins of that agent (as `initialize` offers them).
            terminal = auth.terminal_capable(conn.client_capabilities)
            explained.data = auth.with_methods(explained.data, self.auth_methods_for(spec, terminal))
        return explained

    async def _forward_extension(self, req: jsonrpc.Request) -> Any:
        """Unknown `_vendor/...` requests on a live session go to its agent untouched."""
        params = req.params if isinstance(req.params, dict) else None
        sid = params.get("sessionId") if params else None
        if req.method.startswith("_") and isinstance(sid, str) and sid in self.manager.sessions:
            session = self.manager.sessions[sid]
            if session.agent is not None:
                return await session.agent.call(req.method, params or {})
        raise RpcError(METHOD_NOT_FOUND, f"unknown method: {req.method}", {"method": req.method})

    def _disconnected(self, conn: ClientConnection) -> None:
        for sid in conn.following:
            session = self.manager.sessions.get(sid)
            if session is not None:
                session.remove_follower(conn)
        for sid in conn.owned:
            session = self.manager.sessions.get(sid)
            if session is not None and session.owner is conn:
                self.orphaned(session, {"type": "client_disconnected"})

    def orphaned(self, session: Session, event: JsonObj) -> None:
        """The session's owner is gone (disconnected, or detached): unless a client takes it
        within the grace period, it is closed. Only the owner's leaving starts this — never
        another connection's."""
        if self._tg is None:
            return
        # Its pending permission requests wait this long for a client to reattach.
        session.disconnect_grace = self.disconnect_grace
        session.record_event({**event, "graceSeconds": self.disconnect_grace})
        session.links_changed()
        self._tg.start_soon(self._close_after_grace, session.session_id, session.owner_epoch)

    async def _close_after_grace(self, sid: str, epoch: int) -> None:
        await anyio.sleep(self.disconnect_grace)
        session = self.manager.sessions.get(sid)
        # Nobody took it meanwhile (any change of owner moves the epoch on).
        if session is not None and session.owner_epoch == epoch:
            await self.manager.close(session)



