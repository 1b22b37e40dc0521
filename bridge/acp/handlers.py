"""ACP v1 methods the daemon answers as an agent. The method table is explicit: see
`Handlers.table()`. Session-scoped requests and their answers are appended to the
session's log before the answer is sent."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
from typing import TYPE_CHECKING, Any

import anyio

from bridge import envsetup
from bridge.acp import auth
from bridge.acp import params as P
from bridge.acp.connection import ClientConnection
from bridge.acp.replay import replay_to
from bridge.core.adapter import AgentSpec, JsonObj, SessionSetup
from bridge.core.manager import OpenParams
from bridge.core.session import Session
from bridge.errors import INTERNAL_ERROR, INVALID_PARAMS, RESOURCE_NOT_FOUND, RpcError, session_not_found
from bridge.rpc.dispatch import Handler
from bridge.store.base import SessionRecord
from bridge.wire import jsonrpc

if TYPE_CHECKING:
    from bridge.acp.server import AcpServer

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
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
        p = P.parse(P.InitializeParams, params)
        conn.initialized = True
        conn.protocol_version = PROTOCOL_VERSION
        conn.client_capabilities = p.clientCapabilities
        conn.client_info = p.clientInfo
        caps = await self.server.capabilities()
        return {
            "protocolVersion": PROTOCOL_VERSION,
            "agentCapabilities": caps,
            "authMethods": await self.server.auth_methods(p.clientCapabilities),
            "agentInfo": {"name": "agent-bridge", "title": "agent-bridge", "version": self.server.version},
        }

    async def authenticate(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.AuthenticateParams, params)
        native = next(
            (s for s in self.manager.agents.values() if auth.native_login(s) and auth.method_id(s) == p.methodId),
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
    def _open(self, conn: ClientConnection, p: P.NewSessionParams, agent: str | None) -> OpenParams:
        return OpenParams(
            cwd=p.cwd,
            mcp_servers=p.mcp_dicts(),
            additional_directories=p.additionalDirectories,
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
        session.log("client", jsonrpc.request_frame(None, "session/new", params))
        return self._answer(session, _setup_result(setup, session.session_id))

    async def session_load(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        return await self._reopen(conn, P.parse(P.LoadSessionParams, params), "load", params)

    async def session_resume(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        return await self._reopen(conn, P.parse(P.ResumeSessionParams, params), "resume", params)

    async def _reopen(
        self, conn: ClientConnection, p: P.LoadSessionParams, mode: str, raw: JsonObj
    ) -> JsonObj:
        rec = self.manager.record(p.sessionId)
        live = self.manager.sessions.get(rec.id)
        if live is not None:
            # Live in this daemon (a reconnecting client): take it over; history from the log,
            # paced, then its live stream from exactly where the history ends.
            if mode == "load":
                session = live
                await replay_to(
                    conn, self.store, rec.id, live=lambda: session.last_seq, follow=lambda: self._own(conn, session)
                )
            else:
                self._own(conn, live)
            live.log("client", jsonrpc.request_frame(None, f"session/{mode}", raw))
            return self._answer(live, _setup_result(live.setup, None))
        upto = self._last_seq(rec)
        session, setup = await self.manager.reopen(
            rec, "load" if mode == "load" else "resume", self._open(conn, p, rec.agent), owner=conn
        )
        self._own(conn, session)
        if mode == "load" and not setup.replayed:
            await replay_to(conn, self.store, rec.id, 0, upto)
        session.log("client", jsonrpc.request_frame(None, f"session/{mode}", raw))
        return self._answer(session, _setup_result(setup, None))

    def _last_seq(self, rec: SessionRecord) -> int:
        last = 0
        after = 0
        while True:
            page = self.store.events(rec.id, after, 1000)
            if not page:
                return last
            last = after = page[-1].seq

    def _own(self, conn: ClientConnection, session: Session) -> None:
        session.owner = conn
        conn.owned.add(session.session_id)
        if conn in session.followers:
            session.followers.remove(conn)

    async def session_fork(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.ForkSessionParams, params)
        parent = self.manager.record(p.sessionId)
        if not parent.agent_session_id:
            raise RpcError(RESOURCE_NOT_FOUND, f"session {parent.id} has no agent-side session to fork")
        live = self.manager.sessions.get(parent.id)
        if live is not None and live.turn_active:
            raise RpcError(-32012, f"session {parent.id} is running a prompt; fork it once the turn ends")
        session, setup = await self.manager.new(self._open(conn, p, parent.agent), parent=parent, owner=conn)
        conn.owned.add(session.session_id)
        session.log("client", jsonrpc.request_frame(None, "session/fork", params))
        return self._answer(session, _setup_result(setup, session.session_id))

    async def session_close(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.SessionParams, params)
        session = self.manager.sessions.get(p.sessionId)
        if session is None:
            self.manager.record(p.sessionId)  # -32002 when unknown
            return {}
        session.log("client", jsonrpc.request_frame(None, "session/close", params))
        await self.manager.close(session)
        conn.owned.discard(session.session_id)
        return {}

    async def session_delete(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.SessionParams, params)
        rec = self.store.get_session(p.sessionId)
        if rec is None:
            raise session_not_found(p.sessionId)
        if rec.deleted:
            return {}
        session = self.manager.sessions.get(rec.id)
        if session is not None:
            await self.manager.close(session)
        self.store.update_session(rec.id, deleted=True)
        return {}

    async def session_list(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.ListSessionsParams, params)
        offset = _decode_cursor(p.cursor) if p.cursor else 0
        recs = self.store.list_sessions(cwd=p.cwd, offset=offset, limit=LIST_PAGE + 1)
        result: JsonObj = {"sessions": [self.server.session_info(r) for r in recs[:LIST_PAGE]]}
        if len(recs) > LIST_PAGE:
            result["nextCursor"] = base64.urlsafe_b64encode(f"o:{offset + LIST_PAGE}".encode()).decode()
        return result

    # -- turns ---------------------------------------------------------------------------------
    def live(self, session_id: str) -> Session:
        session = self.manager.sessions.get(session_id)
        if session is None:
            rec = self.manager.record(session_id)
            raise RpcError(
                RESOURCE_NOT_FOUND,
                f"session {rec.id} is not active in this daemon; call session/load or session/resume first",
                {"sessionId": rec.id, "status": rec.status},
            )
        return session

    async def session_prompt(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.PromptParams, params)
        session = self.live(p.sessionId)
        if session.owner is not conn:
            self._own(conn, session)
        session.log("client", jsonrpc.request_frame(None, "session/prompt", params))
        _check_content(session, p.prompt)
        await self.manager.ensure_agent(session)
        # Persisted so that a daemon killed mid-turn records the turn as interrupted on restart.
        self.store.update_session(session.session_id, status="busy")
        # The turn outlives this request if the client goes away (disconnect policy).
        return await self.server.run_turn(conn, session, lambda: self._turn(session, params))

    async def _turn(self, session: Session, params: JsonObj) -> JsonObj:
        try:
            result = await session.prompt(params)
        except RpcError as exc:
            session.log("bridge", jsonrpc.error_frame(None, exc))
            raise
        finally:
            self.store.update_session(session.session_id, status=session.status)
        return self._answer(session, result)

    async def session_set_mode(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.SetModeParams, params)
        session = self.live(p.sessionId)
        session.log("client", jsonrpc.request_frame(None, "session/set_mode", params))
        agent = await self._agent(session)
        return self._answer(session, await agent.set_mode(p.modeId))

    async def session_set_config_option(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        P.parse(P.SetConfigOptionParams, params)
        session = self.live(params["sessionId"])
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
        # Never block the receive loop on the agent: cancel runs beside it.
        self.server.spawn(session.cancel)


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
            raise RpcError(INVALID_PARAMS, f"invalid params: prompt.{i}.type: missing", {"field": f"prompt.{i}.type"})
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
