"""The Codex adapter: opens each bridge session as a thread of a `codex app-server` (see
session.py for what a session does). In a daemon, an agent's sessions share one process
(shared.py; spec/codex-shared-server.md) unless its config says `share_process = false`;
then, and outside a daemon, each session starts its own.

Codex's own configuration (CODEX_HOME from the environment, else ~/.codex: login, providers,
MCP servers, policies) is used as Codex itself uses it: the process inherits the daemon's
environment plus the agent's configured `env`, and nothing is written to the user's files.
If the process dies, `run()` raises `AgentExitedError` with its exit code and stderr tail
(for every session a shared process held).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
from anyio.abc import TaskStatus

import bridge
from adapters.codex import shared
from adapters.codex.native import native_binary
from adapters.codex.options import mcp_servers
from adapters.codex.rpc import AppServer, method_not_found, stderr_tail
from adapters.codex.session import CAPABILITIES, CodexSession
from adapters.common import agent_env
from bridge.core import events as ev
from bridge.core.adapter import AdapterEnv, AgentProbe, AgentSpec, SessionHost, StartRequest
from bridge.errors import AgentError, AgentExitedError, AgentStartError
from bridge.process import handshake
from bridge.process.agent_process import open_agent_process
from bridge.process.lookup import on_agent_path
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

# Noise we never use: keeps the pipe quiet.
OPT_OUT = ["account/rateLimits/updated", "remoteControl/status/changed", "thread/started"]


class CodexAdapter:
    # What `initialize` advertises for this agent, without spawning it (bridge/acp/server.py).
    static_capabilities = CAPABILITIES
    # No ACP client of its own: the bridge offers it the client's fs/terminal as MCP tools.
    client_tools = True

    def __init__(self, spec: AgentSpec, env: AdapterEnv) -> None:
        self.spec = spec
        self.env = env
        self._native: tuple[str, dict[str, str]] | bool | None = False  # False: not looked up yet

    def _binary(self) -> tuple[str, dict[str, str]] | None:
        # The npm launcher's native binary, looked up once (native.py says why).
        if self._native is False:
            found = on_agent_path(self.spec.command, self.spec.env)
            self._native = native_binary(found) if found else None
        return self._native if isinstance(self._native, tuple) else None

    def _argv(self) -> list[str]:
        native = self._binary()
        return [native[0] if native else self.spec.command, *(self.spec.args or ("app-server",))]

    def _environ(self) -> dict[str, str]:
        native = self._binary()
        return agent_env(self.spec, native[1] if native else None)

    async def probe(self, authenticate: JsonObj | None = None) -> AgentProbe:
        async with open_agent_process(
            self.spec.name, self._argv(), env=self._environ(), stop_grace=self.env.stop_grace
        ) as proc:
            server = AppServer(proc, self.spec.name, _Quiet(), self.env.stop_grace)
            async with anyio.create_task_group() as tg:
                await tg.start(server.run)
                info = await self._handshake(server)
                tg.cancel_scope.cancel()
        return AgentProbe(1, CAPABILITIES, [], {"name": "codex", "title": "Codex", "version": _version(info)})

    async def _handshake(self, server: AppServer) -> JsonObj:
        try:
            with anyio.fail_after(self.env.handshake_timeout):
                client = {"name": "agent-bridge", "title": "agent-bridge", "version": bridge.__version__}
                caps = {"experimentalApi": False, "optOutNotificationMethods": OPT_OUT}
                info = await server.request("initialize", {"clientInfo": client, "capabilities": caps})
                await server.notify("initialized")
        except TimeoutError:
            raise handshake.timed_out(
                self.spec.name, "initialize", self.env.handshake_timeout, server.proc.stderr_tail()
            ) from None
        return info if isinstance(info, dict) else {}

    def _sharing(self) -> tuple[dict[object, Any], object] | None:
        """The daemon's pool of shared processes and this agent's key in it, or None when this
        agent's sessions each get their own process. One process per agent spec and
        environment: sessions differing in those never share."""
        tasks = self.env.tasks
        if tasks is None or tasks.group is None or not self.spec.share_process:
            return None
        argv, environ = self._argv(), self._environ()
        return tasks.shared, ("codex", self.spec.name, tuple(argv), frozenset(environ.items()))

    async def _shared_server(self) -> shared.SharedServer | None:
        sharing = self._sharing()
        if sharing is None:
            return None
        pool, key = sharing
        argv, environ = self._argv(), self._environ()

        def start(server: shared.SharedServer) -> None:
            assert self.env.tasks is not None and self.env.tasks.group is not None
            self.env.tasks.group.start_soon(server.run, argv, environ, self.env, self._handshake)

        return await shared.get(pool, key, start, self.spec.name)

    async def prewarm(self) -> None:
        """Start the shared process now (daemon start), so the first session finds it ready."""
        try:
            await self._shared_server()
        except Exception as exc:  # the first session starts one, and reports the failure
            log.info("%s: could not start the shared app-server ahead: %s", self.spec.name, exc)

    async def run(
        self, host: SessionHost, request: StartRequest, *, task_status: TaskStatus[CodexSession]
    ) -> None:
        # Refuse bad MCP servers before spawning anything; a config-wired SSE server is left
        # out (Codex has no SSE) and reported failed instead.
        usable, dropped = split_sse(request)
        servers = mcp_servers(usable)
        if self._sharing() is not None:
            # The thread's cwd goes in thread/start; check it as a spawn in it would.
            if not await anyio.Path(request.cwd).is_dir():
                raise AgentStartError(
                    self.spec.name,
                    f"working directory {request.cwd} does not exist",
                    {"cwd": request.cwd, "kind": "bad_cwd"},
                )
            pool = await self._shared_server()
            assert pool is not None and pool.server is not None
            session = CodexSession(self.spec.name, host, request, pool.server.proc)
            session.server = pool.server
            pool.attach(session)
            try:
                failure = await self._serve(session, servers, dropped, task_status, handshake=False)
            finally:
                await pool.detach(session, self.env.stop_grace)
            raise failure
        # Errors are raised after the process context closes: raised inside it they would
        # reach the bridge wrapped in the context's task-group ExceptionGroup.
        async with open_agent_process(
            self.spec.name, self._argv(), env=self._environ(), cwd=request.cwd, stop_grace=self.env.stop_grace
        ) as proc:
            session = CodexSession(self.spec.name, host, request, proc)
            server = session.server = AppServer(proc, self.spec.name, session, self.env.stop_grace)
            async with anyio.create_task_group() as tg:
                await tg.start(server.run)
                failure = await self._serve(session, servers, dropped, task_status, handshake=True)
                tg.cancel_scope.cancel()
        raise failure

    async def _serve(
        self,
        session: CodexSession,
        servers: JsonObj,
        dropped: list[JsonObj],
        task_status: TaskStatus[CodexSession],
        *,
        handshake: bool,
    ) -> BaseException:
        """Open the session's thread and serve it until the process ends; what to raise then."""
        server, host = session.server, session.host
        async with anyio.create_task_group() as tg:
            try:
                if handshake:
                    await self._handshake(server)
                with anyio.fail_after(self.env.handshake_timeout):
                    await session.open(servers)
            except TimeoutError:
                tg.cancel_scope.cancel()
                return AgentStartError(
                    self.spec.name, f"codex did not open the thread within {self.env.handshake_timeout:g} s"
                )
            except Exception as exc:
                tg.cancel_scope.cancel()
                return exc
            task_status.started(session)
            if dropped:
                host.emit_event(ev.mcp_report(dropped))
            tg.start_soon(session.report_mcp_tools)
            host.emit_event(session.commands_update())
            await server.exited.wait()
            tg.cancel_scope.cancel()
        return server.exit_error or AgentExitedError(self.spec.name, server.proc.returncode, stderr_tail(server.proc))


def split_sse(request: StartRequest) -> tuple[list[JsonObj], list[JsonObj]]:
    usable, dropped = [], []
    for server in request.mcp_servers:
        if server.get("type") == "sse" and server.get("name") in request.mcp_optional:
            why = "Codex does not support SSE MCP servers; configure it as a stdio or http server"
            dropped.append({"name": server.get("name"), "status": "failed", "error": why})
        else:
            usable.append(server)
    return usable, dropped


class _Quiet:
    """Handler for the probe: no session, so nothing to tell; requests are refused."""

    def notification(self, method: str, params: JsonObj) -> None:
        return

    async def server_request(self, request_id: Any, method: str, params: JsonObj) -> Any:
        raise method_not_found(method)

    def batch_done(self) -> None:
        return

    async def drain(self) -> None:
        return

    def closed(self, error: AgentExitedError) -> None:
        return

    def violation(self, error: AgentError) -> None:
        return


def _version(info: JsonObj) -> str | None:
    match = re.search(r"/(\d+\.\d+\.\d+\S*)", str(info.get("userAgent", "")))
    return match.group(1) if match else None
