"""ACP v1 methods the daemon answers as an agent. The method table is explicit: see
`Handlers.table()`. Session-scoped requests and their answers are appended to the
session's log before the answer is sent."""

from __future__ import annotations

import base64
import functools
import logging
import os
import subprocess
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from bridge import envsetup
from bridge.acp import auth
from bridge.acp.connection import ClientConnection
from bridge.acp.handshake import initialize_params
from bridge.acp.multiclient import MultiClient, driven_by_other, not_owner_error
from bridge.acp.replay import replay_to
from bridge.acp.unstable import prompt_result, wants_unstable
from bridge.config import Policy
from bridge.core.adapter import AgentSpec, SessionSetup
from bridge.core.continuation import announce, with_continued
from bridge.core.manager import OpenParams, SessionManager
from bridge.core.session import Session
from bridge.diagnostics.redact import mask_mcp_servers
from bridge.errors import INTERNAL_ERROR, INVALID_PARAMS, RESOURCE_NOT_FOUND, RpcError
from bridge.lazy import lazy_module
from bridge.rpc import arrival
from bridge.rpc.dispatch import Handler
from bridge.store.base import Instance, LeaseHeld, SessionRecord, Store
from bridge.wire import jsonrpc
from bridge.wire.types import JsonObj

if TYPE_CHECKING:
    from bridge.acp import params as P
else:  # pydantic models: imported by the first request that parses them (bridge/lazy.py)
    P = lazy_module("bridge.acp.params")


class AcpServer(Protocol):
    """What the handlers use of the server that builds them (`bridge.acp.server.AcpServer`),
    named here so that neither module imports the other."""

    manager: SessionManager
    store: Store
    version: str
    policy: Policy
    multiclient: MultiClient

    async def capabilities(self) -> JsonObj: ...
    async def auth_methods(self, client_capabilities: JsonObj | None = None) -> list[JsonObj]: ...
    def session_info(self, rec: SessionRecord, owners: Mapping[str, Instance] | None = None) -> JsonObj: ...
    def spawn(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> None: ...
    async def run_turn(
        self, conn: ClientConnection, session: Session, turn: Callable[[], Awaitable[JsonObj]]
    ) -> JsonObj: ...


log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
# session/delete waits this long (seconds) for the session's agent to stop.
DELETE_STOP_WAIT = 15.0
LIST_PAGE = 50
LOGOUT_TIMEOUT = 30.0


class Handlers:
    def __init__(self, server: AcpServer) -> None:
        self.server = server
        self.manager = server.manager
        self.store = server.store

    def table(self) -> dict[str, Handler]:
        return {
            "initialize": self.initialize,
            "authenticate": self.authenticate,
            "logout": self.logout,
            "session/new": self.session_new,
            "session/load": self.session_load,
            "session/resume": self.session_resume,
            "session/fork": self.session_fork,
            "session/prompt": self.session_prompt,
            "session/set_mode": self.session_set_mode,
            "session/set_config_option": self.session_set_config_option,
            "session/close": self.session_close,
            "session/list": self.session_list,
            "session/delete": self.session_delete,
        }

    # -- handshake -----------------------------------------------------------------------------
    async def initialize(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        client_capabilities, client_info = initialize_params(params)
        conn.initialized = True
        conn.protocol_version = PROTOCOL_VERSION
        conn.client_capabilities = client_capabilities
        conn.client_info = client_info
        caps = await self.server.capabilities()
        if conn.transport != "stdio":
            # Several connections share this daemon: the multi-client attach RFD's capability.
            roles = ["observer"] if conn.read_only else ["controller", "observer"]
            caps = {
                **caps,
                "sessionCapabilities": {**caps.get("sessionCapabilities", {}), "attach": {"roles": roles}},
            }
        return {
            "protocolVersion": PROTOCOL_VERSION,
            "agentCapabilities": caps,
            "authMethods": await self.server.auth_methods(client_capabilities),
            "agentInfo": {"name": "agent-bridge", "title": "agent-bridge", "version": self.server.version},
        }

    async def authenticate(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.AuthenticateParams, params)
        native = next(
            (
                s
                for s in self.manager.agents.values()
                if auth.native_login(s) and auth.method_id(s) == p.method_id
            ),
            None,
        )
        if native is not None:
            # The login itself runs in a terminal (`agent-bridge login NAME`); a session that
            # still finds no credentials answers auth_required with this method again.
            return {"_meta": {"bridge": {"agent": native.name, "login": f"agent-bridge login {native.name}"}}}
        spec = self.manager.pick_agent(p.meta)
        probe = await self.manager.adapter_for(spec).probe(authenticate=params)
        conn.auth[spec.name] = params
        return probe.auth_result or {}

    async def logout(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        conn.auth.clear()
        name = self.manager.default_agent
        spec = self.manager.agents.get(name) if name else None
        argv = auth.logout_argv(spec) if spec is not None else None
        if spec is not None and argv is not None:
            await _run_logout(spec, argv)
        return {}

    # -- session lifecycle ---------------------------------------------------------------------
    def _open(self, conn: ClientConnection, p: P.Opening, agent: str | None) -> OpenParams:
        servers = p.mcp_dicts()
        if self.server.policy.mcp_stdio == "deny":
            _refuse_stdio_servers(servers)
        return OpenParams(
            cwd=p.cwd,
            mcp_servers=servers,
            additional_directories=p.additional_directories,
            meta=p.meta,
            client_capabilities=conn.client_capabilities,
            client_info=conn.client_info,
            authenticate=conn.auth.get(agent) if agent else None,
        )

    async def session_new(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.NewSessionParams, params)
        spec = self.manager.pick_agent(p.meta)
        session, setup = await self.manager.new(self._open(conn, p, spec.name), owner=conn)
        conn.owned.add(session.session_id)
        session.log("client", _opening("session/new", params))
        return self._answer(session, _setup_result(setup, session.session_id))

    async def session_load(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        return await self._reopen(conn, P.parse(P.LoadSessionParams, params), "load", params)

    async def session_resume(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        return await self._reopen(conn, P.parse(P.ResumeSessionParams, params), "resume", params)

    async def _reopen(
        self, conn: ClientConnection, p: P.LoadSessionParams | P.ResumeSessionParams, mode: str, raw: JsonObj
    ) -> JsonObj:
        rec = await self.manager.record(p.session_id)
        if self.server.policy.mcp_stdio == "deny":
            # Without servers of its own, the request reuses the ones the session was created with.
            _refuse_stdio_servers(p.mcp_dicts() or rec.mcp_servers)
        live = self.manager.sessions.get(rec.id)
        how = f"session/{mode}"
        if live is not None:
            # Live in this daemon. Driven by another connected client: refused, unless this is
            # an explicit takeover. Else (a reconnecting client) it becomes this connection's;
            # history from the log, paced, then its live stream from exactly where it ends.
            if driven_by_other(conn, live) and not _takeover(p.meta):
                raise not_owner_error(rec.id, how)
            own = self.server.multiclient.own
            if mode == "load":
                session = live
                await replay_to(
                    conn,
                    self.store,
                    rec.id,
                    live=lambda: session.last_seq,
                    follow=lambda: own(conn, session, reason=how),
                )
            else:
                own(conn, live, reason=how)
            live.log("client", _opening(f"session/{mode}", raw))
            return self._answer(live, _setup_result(live.setup, None))
        upto = await self.store.last_seq(rec.id)
        session, setup = await self.manager.reopen(
            rec, "load" if mode == "load" else "resume", self._open(conn, p, rec.agent), owner=conn
        )
        self.server.multiclient.own(conn, session, reason=how)
        if mode == "load" and not setup.replayed:
            await replay_to(conn, self.store, rec.id, 0, upto)
        session.log("client", _opening(f"session/{mode}", raw))
        result = _setup_result(setup, None)
        if session.continued is not None:
            # The agent had lost it: said after the history, before the answer (and in the log).
            announce(session)
            result = with_continued(result, session)
        return self._answer(session, result)

    async def session_fork(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.ForkSessionParams, params)
        parent = await self.manager.record(p.session_id)
        if not parent.agent_session_id:
            raise RpcError(RESOURCE_NOT_FOUND, f"session {parent.id} has no agent-side session to fork")
        live = self.manager.sessions.get(parent.id)
        if live is not None and live.turn_active:
            raise RpcError(-32012, f"session {parent.id} is running a prompt; fork it once the turn ends")
        session, setup = await self.manager.new(self._open(conn, p, parent.agent), parent=parent, owner=conn)
        conn.owned.add(session.session_id)
        session.log("client", _opening("session/fork", params))
        return self._answer(session, _setup_result(setup, session.session_id))

    async def session_close(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.CloseSessionParams, params)
        session = self.manager.sessions.get(p.session_id)
        if session is None:
            await self.manager.record(p.session_id)  # -32002 when unknown
            return {}
        session.log("client", jsonrpc.request_frame(None, "session/close", params))
        await self.manager.close(session)
        conn.owned.discard(session.session_id)
        return {}

    async def session_delete(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.DeleteSessionParams, params)
        rec = await self.store.get_session(p.session_id)
        if rec is None or rec.deleted:
            # Idempotent, as ACP asks: deleting what does not exist (any more) succeeds.
            return {}
        session = self.manager.sessions.get(rec.id)
        if session is not None:
            await self.manager.close(session)
            # Its agent's files (Claude Code's MCP config) go with the agent: wait for it.
            if session.agent_stopped is not None:
                with anyio.move_on_after(DELETE_STOP_WAIT):
                    await session.agent_stopped.wait()
        # Gone, not hidden: its log (prompts, answers, tool output) and MCP config are erased.
        # Catalog first: the purge's checkpoint then also wipes the old MCP config from the WAL.
        await self.manager.save(rec.id, deleted=True, mcp_servers=[])
        await self.store.purge_events(rec.id)
        return {}

    async def session_list(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.ListSessionsParams, params)
        offset = _decode_cursor(p.cursor) if p.cursor else 0
        recs = await self.store.list_sessions(cwd=p.cwd, offset=offset, limit=LIST_PAGE + 1)
        owners = await self.manager.owners()
        result: JsonObj = {"sessions": [self.server.session_info(r, owners) for r in recs[:LIST_PAGE]]}
        if len(recs) > LIST_PAGE:
            result["nextCursor"] = base64.urlsafe_b64encode(f"o:{offset + LIST_PAGE}".encode()).decode()
        return result

    # -- turns ---------------------------------------------------------------------------------
    async def live(self, session_id: str) -> Session:
        session = self.manager.sessions.get(session_id)
        if session is None:
            rec = await self.manager.record(session_id)
            holder = await self.manager.live_owner(rec)
            if holder is not None:
                raise LeaseHeld(rec.id, holder)
            raise RpcError(
                RESOURCE_NOT_FOUND,
                f"session {rec.id} is not active in this daemon; call session/load or session/resume first",
                {"sessionId": rec.id, "status": rec.status},
            )
        return session

    async def session_prompt(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        received = arrival.current()  # before any await: the cancels it must see come later
        p = P.parse(P.PromptParams, params)
        session = await self.live(p.session_id)
        session.log("client", jsonrpc.request_frame(None, "session/prompt", params))
        _check_content(session, params["prompt"])
        await self.manager.ensure_agent(session)
        if session.owner is not conn:
            # Its owner is gone (the guard let this through): the prompt makes this connection
            # the owner — unless it is refused (someone else got there first, or a turn runs).
            if driven_by_other(conn, session):
                raise not_owner_error(session.session_id, "session/prompt")
            if not session.turn_active:
                self.server.multiclient.own(conn, session, reason="session/prompt")
        # Persisted so that a daemon killed mid-turn records the turn as interrupted on restart.
        await self.manager.save(session.session_id, status="busy")
        # The turn outlives this request if the client goes away (disconnect policy).
        with session.answering():
            result = await self.server.run_turn(conn, session, lambda: self._turn(session, params, received))
            return prompt_result(result, unstable=wants_unstable(conn.client_capabilities))

    async def _turn(self, session: Session, params: JsonObj, received: int) -> JsonObj:
        try:
            result = await session.prompt(params, received)
        except RpcError as exc:
            session.log("bridge", jsonrpc.error_frame(None, exc))
            raise
        finally:
            with anyio.CancelScope(shield=True):
                # The counters go with every turn's end: they outlive this daemon.
                await self.manager.save(
                    session.session_id, status=session.status, metrics=session.metrics.to_json()
                )
        return self._answer(session, result)

    async def session_set_mode(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.SetModeParams, params)
        session = await self.live(p.session_id)
        session.log("client", jsonrpc.request_frame(None, "session/set_mode", params))
        agent = await self._agent(session)
        return self._answer(session, await agent.set_mode(p.mode_id))

    async def session_set_config_option(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        P.parse(P.SetConfigOptionParams, params)
        session = await self.live(params["sessionId"])
        session.log("client", jsonrpc.request_frame(None, "session/set_config_option", params))
        agent = await self._agent(session)
        return self._answer(session, await agent.set_config_option(params))

    async def _agent(self, session: Session) -> Any:
        await self.manager.ensure_agent(session)
        assert session.agent is not None
        return session.agent

    @staticmethod
    def _answer(session: Session, result: JsonObj) -> JsonObj:
        session.log("agent", jsonrpc.encode({"result": result}))
        return result

    async def cancel(self, conn: ClientConnection, params: Any) -> None:
        if not isinstance(params, dict) or not isinstance(params.get("sessionId"), str):
            return
        session = self.manager.sessions.get(params["sessionId"])
        if session is None:
            return
        session.log("client", jsonrpc.notification_frame("session/cancel", params))
        if not self.server.multiclient.cancel_allowed(conn, session):
            return
        # Never block the receive loop on the agent: cancel runs beside it, knowing which
        # prompts came before it (`bridge.rpc.arrival`).
        self.server.spawn(functools.partial(session.cancel, arrival.current()))


def _refuse_stdio_servers(servers: list[JsonObj]) -> None:
    """`mcp_stdio = "deny"`: a stdio MCP server is a command the agent would run."""
    for i, server in enumerate(servers):
        if server.get("type", "stdio") == "stdio":
            name = server.get("name")
            raise RpcError(
                INVALID_PARAMS,
                f"MCP server {name!r} is a stdio server (a command the agent would run), and this daemon's "
                'config says mcp_stdio = "deny"; use an http or sse server, or ask the operator to allow them',
                {"field": f"mcpServers.{i}", "server": name},
            )


def _opening(method: str, params: JsonObj) -> bytes:
    """The log's copy of a request that opens a session: MCP `env` and `headers` masked."""
    return jsonrpc.request_frame(None, method, mask_mcp_servers(params))


async def _run_logout(spec: AgentSpec, argv: list[str]) -> None:
    """The native CLI's logout, without a terminal, in the environment its sessions get."""
    environment = envsetup.current()
    env = {**os.environ, **spec.env}
    env = environment.complete(env) if environment is not None else env
    try:
        with anyio.fail_after(LOGOUT_TIMEOUT):
            done = await anyio.run_process(
                argv, check=False, env=env, stdin=subprocess.DEVNULL, start_new_session=True
            )
    except (OSError, TimeoutError) as exc:
        raise RpcError(INTERNAL_ERROR, f"logout of {spec.name} failed: {exc}", {"agent": spec.name}) from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode("utf-8", "replace").strip()[-500:]
        raise RpcError(
            INTERNAL_ERROR,
            f"`{' '.join(argv)}` failed (exit code {done.returncode})",
            {"agent": spec.name, "stderr": tail},
        )


def _setup_result(setup: SessionSetup | None, session_id: str | None) -> JsonObj:
    result: JsonObj = {}
    if setup is not None:
        result.update(setup.extra)
    if session_id is not None:
        result["sessionId"] = session_id
    if setup is not None:
        if setup.modes is not None:
            result["modes"] = setup.modes
        if setup.config_options is not None:
            result["configOptions"] = setup.config_options
        if setup.meta is not None:
            result["_meta"] = setup.meta
    return result


# Content block type → the prompt capability an agent must advertise to take it.
_NEEDS = {"image": "image", "audio": "audio", "resource": "embeddedContext"}
_ALWAYS = {"text", "resource_link"}


def _check_content(session: Session, blocks: list[JsonObj]) -> None:
    caps = session.setup.prompt_capabilities if session.setup is not None else None
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if not isinstance(kind, str):
            raise RpcError(
                INVALID_PARAMS, f"invalid params: prompt.{i}.type: missing", {"field": f"prompt.{i}.type"}
            )
        if caps is None or kind in _ALWAYS:
            continue
        need = _NEEDS.get(kind)
        if need is not None and not caps.get(need):
            raise RpcError(
                INVALID_PARAMS,
                f"agent {session.spec.name!r} does not accept {kind} content in prompts",
                {"field": f"prompt.{i}", "agent": session.spec.name},
            )


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        if raw.startswith("o:"):
            return max(0, int(raw[2:]))
    except (ValueError, UnicodeDecodeError):
        pass
    raise RpcError(-32602, "invalid params: cursor: not a cursor this daemon issued", {"field": "cursor"})


def _takeover(meta: JsonObj | None) -> bool:
    bridge_meta = meta.get("bridge") if isinstance(meta, dict) else None
    return isinstance(bridge_meta, dict) and bridge_meta.get("takeover") is True
