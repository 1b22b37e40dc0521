"""ACP passthrough: one agent process per bridge session, messages forwarded untouched
except for the session id (bridge id upstream, the agent's id downstream).

Hot path: the agent's text chunks get the bridge's session id at byte level
(adapters/acp/fastpath.py); other `session/update` lines are parsed once, get the bridge's
session id, and go to `host.emit_params`; both inline in the read loop (no task per message)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.abc import TaskStatus

# The router is also imported from here (tests, bench), as before the split: re-exported.
from adapters.acp.fastpath import FastPath
from adapters.acp.router import FORWARDED as FORWARDED
from adapters.acp.router import _Router as _Router
from adapters.acp.settings import AgentSettings
from adapters.common import agent_env
from bridge.core import events as ev
from bridge.core.adapter import (
    AdapterEnv,
    AgentProbe,
    AgentSession,
    AgentSpec,
    SessionHost,
    SessionSetup,
    StartRequest,
)
from bridge.errors import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    RESOURCE_NOT_FOUND,
    AgentExitedError,
    AgentStartError,
    RpcError,
)
from bridge.process import handshake
from bridge.process.agent_process import AgentProcess, open_agent_process
from bridge.rpc.endpoint import ConnectionClosed, Endpoint
from bridge.rpc.outbox import Outbox
from bridge.wire.framing import Oversize
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

CLIENT_INFO = {"name": "agent-bridge", "version": "0.1.0"}
# A probe holds no session: its agent is stopped without the graceful stdin-EOF wait, which
# the Zed adapters never honour (they ignore EOF), so `initialize` stays fast.
PROBE_STOP_GRACE = 0.3


class _Link:
    """The agent's stdio connection: its process, endpoint and handshake answer."""

    def __init__(self, proc: AgentProcess, endpoint: Endpoint, router: _Router) -> None:
        self.proc = proc
        self.endpoint = endpoint
        self.router = router
        self.init: JsonObj = {}

    @property
    def caps(self) -> JsonObj:
        c = self.init.get("agentCapabilities")
        return c if isinstance(c, dict) else {}

    def session_cap(self, name: str) -> bool:
        sc = self.caps.get("sessionCapabilities")
        return isinstance(sc, dict) and sc.get(name) is not None


class AcpSession:
    def __init__(self, link: _Link, setup: SessionSetup, settings: AgentSettings) -> None:
        self.link = link
        self.setup = setup
        self.settings = settings
        self.agent_sid = setup.agent_session_id

    def _params(self, params: JsonObj) -> JsonObj:
        return {**params, "sessionId": self.agent_sid}

    async def prompt(self, params: JsonObj) -> JsonObj:
        # Whatever the agent says from now on is this turn's, not a replayed history.
        self.link.router.mute_history = False
        result = await self.link.endpoint.request("session/prompt", self._params(params))
        return result if isinstance(result, dict) else {"stopReason": "end_turn"}

    async def cancel(self) -> None:
        self.link.endpoint.notify("session/cancel", {"sessionId": self.agent_sid})

    async def set_mode(self, mode_id: str) -> JsonObj:
        method, params = self.settings.route_mode(mode_id)
        result = await self.link.endpoint.request(method, self._params(params))
        if method == "session/set_mode":
            self.settings.mode_set(mode_id)
            return result if isinstance(result, dict) else {}
        # Made-up modes over the agent's mode config option.
        self.settings.config_result(result)
        return {}

    async def set_config_option(self, params: JsonObj) -> JsonObj:
        method, forwarded = self.settings.route_config(params)
        result = await self.link.endpoint.request(method, self._params(forwarded))
        if method != "session/set_config_option":
            # A made-up option over session/set_mode or session/set_model.
            self.settings.set_value(str(params.get("configId")), params.get("value"))
            return self.settings.config_result(None)
        return self.settings.config_result(result)

    async def call(self, method: str, params: JsonObj) -> Any:
        return await self.link.endpoint.request(method, self._params(params))

    def pid(self) -> int | None:
        return self.link.proc.pid if self.link.proc.returncode is None else None


class AcpAdapter:
    def __init__(self, spec: AgentSpec, env: AdapterEnv) -> None:
        self.spec = spec
        self.env = env

    # -- connection ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _connect(
        self, host: SessionHost | None, cwd: str | None, stop_grace: float | None = None
    ) -> AsyncIterator[_Link]:
        argv = [self.spec.command, *self.spec.args]
        grace = self.env.stop_grace if stop_grace is None else stop_grace
        async with open_agent_process(
            self.spec.name, argv, env=agent_env(self.spec), cwd=cwd, stop_grace=grace
        ) as proc:

            async def write(frames: list[bytes]) -> None:
                try:
                    await proc.send(b"\n".join(frames) + b"\n")
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    outbox.close()

            outbox = Outbox(write, whole_writes=True)  # `proc.send` buffers a batch whole
            router = _Router(self.spec.name, host)
            endpoint = Endpoint(
                f"agent {self.spec.name}",
                outbox,
                router.on_request,
                router.on_notification,
                on_noise=router.on_noise,
                on_violation=router.on_violation,
                int64=False,  # relayed, never stored as numbers
                on_line=router.on_line,
            )
            link = _Link(proc, endpoint, router)
            async with anyio.create_task_group() as tg:
                await tg.start(outbox.run)

                async def until_exit() -> AsyncIterator[list[bytes | Oversize]]:
                    async for batch in _paced(proc, host):
                        yield batch
                    # stdout closed: the agent is exiting. Fail everything pending with its exit
                    # status and last stderr words, before the endpoint could call it a bare close.
                    await proc.wait(grace)
                    endpoint.close(AgentExitedError(self.spec.name, proc.returncode, proc.stderr_tail()))

                async def pump() -> None:
                    await endpoint.run(until_exit())
                    router.exited.set()

                tg.start_soon(pump)
                try:
                    yield link
                finally:
                    tg.cancel_scope.cancel()

    async def _handshake(self, link: _Link, request: StartRequest | None) -> JsonObj:
        caps = request.client_capabilities if request else {}
        params: JsonObj = {"protocolVersion": 1, "clientCapabilities": caps, "clientInfo": CLIENT_INFO}
        try:
            with anyio.fail_after(self.env.handshake_timeout):
                init = await link.endpoint.request("initialize", params)
        except TimeoutError:
            raise handshake.timed_out(
                self.spec.name,
                "initialize",
                self.env.handshake_timeout,
                link.proc.stderr_tail(),
                "is the command an ACP agent (e.g. missing --acp)?",
            ) from None
        except AgentExitedError as exc:
            raise handshake.exited(self.spec.name, exc.returncode, exc.stderr_tail) from None
        except ConnectionClosed:
            # Its stdout closed before the exit status was known: wait for it (bounded) to say
            # how it ended rather than "connection closed".
            with anyio.move_on_after(self.env.stop_grace + 1):
                await link.router.exited.wait()
            raise handshake.exited(self.spec.name, link.proc.returncode, link.proc.stderr_tail()) from None
        link.init = init if isinstance(init, dict) else {}
        version = link.init.get("protocolVersion")
        if isinstance(version, int) and version != 1:
            raise AgentStartError(
                self.spec.name,
                f"it speaks ACP version {version}; agent-bridge speaks version 1",
                {"protocolVersion": version, "kind": "wrong_version"},
            )
        if request is not None and request.authenticate is not None:
            await link.endpoint.request("authenticate", request.authenticate)
        return link.init

    async def probe(self, authenticate: JsonObj | None = None) -> AgentProbe:
        # After an authenticate the agent may still be saving credentials: the full grace.
        grace = PROBE_STOP_GRACE if authenticate is None else None
        async with self._connect(None, None, grace) as link:
            init = await self._handshake(link, None)
            auth_result = None
            if authenticate is not None:
                auth_result = await link.endpoint.request("authenticate", authenticate)
            return AgentProbe(
                protocol_version=int(init.get("protocolVersion") or 1),
                agent_capabilities=link.caps,
                auth_methods=list(init.get("authMethods") or []),
                agent_info=init.get("agentInfo"),
                auth_result=auth_result if isinstance(auth_result, dict) else None,
            )

    # -- a session -------------------------------------------------------------------------------
    async def run(
        self, host: SessionHost, request: StartRequest, *, task_status: TaskStatus[AgentSession]
    ) -> None:
        async with self._connect(host, request.cwd) as link:
            await self._handshake(link, request)
            servers, reports = self._check_mcp(link, request)
            setup = await self._open(link, request, servers)
            assert link.router.settings is not None
            task_status.started(AcpSession(link, setup, link.router.settings))
            if reports:
                host.emit_event(ev.mcp_report(reports))
            await link.router.exited.wait()
            raise AgentExitedError(self.spec.name, link.proc.returncode, link.proc.stderr_tail())

    async def _open(self, link: _Link, req: StartRequest, servers: list[JsonObj]) -> SessionSetup:
        params: JsonObj = {"cwd": req.cwd, "mcpServers": servers}
        if req.additional_directories is not None:
            params["additionalDirectories"] = req.additional_directories
        if req.meta is not None:
            params["_meta"] = req.meta
        replayed = False
        if req.mode == "new":
            result = await link.endpoint.request("session/new", params)
            agent_sid = result.get("sessionId") if isinstance(result, dict) else None
        else:
            agent_sid = req.agent_session_id
            params["sessionId"] = agent_sid
            method = self._method_for(link, req)
            # Resuming through the agent's load: its replay would duplicate what the client
            # has. Muted until the first prompt, not just until the answer: Gemini CLI 0.61
            # sends most of its replay *after* answering session/load.
            link.router.mute_history = req.mode == "resume" and method == "session/load"
            result = await link.endpoint.request(method, params)
            replayed = req.mode == "load" and method == "session/load"
            if req.mode == "fork":
                agent_sid = result.get("sessionId") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(agent_sid, str):
            raise AgentStartError(self.spec.name, f"its answer to session/{req.mode} has no sessionId")
        extra = {k: v for k, v in result.items() if k not in ("sessionId", "modes", "configOptions", "_meta")}
        settings = AgentSettings(result.get("modes"), result.get("configOptions"), result.get("models"))
        link.router.settings = settings
        if link.router.host is not None:
            link.router.fast = FastPath(agent_sid, link.router.host.session_id)
        return SessionSetup(
            agent_session_id=agent_sid,
            modes=settings.modes,
            config_options=settings.options,
            meta=result.get("_meta"),
            extra=extra,
            replayed=replayed,
            prompt_capabilities=_dict(link.caps.get("promptCapabilities")),
        )

    def _method_for(self, link: _Link, req: StartRequest) -> str:
        load = bool(link.caps.get("loadSession"))
        resume = link.session_cap("resume")
        if req.mode == "fork":
            if link.session_cap("fork"):
                return "session/fork"
            raise RpcError(METHOD_NOT_FOUND, f"agent {self.spec.name!r} cannot fork sessions")
        if req.mode == "resume" or (req.mode == "load" and not load):
            # Load without agent replay: resume it, the bridge replays from its own log.
            if resume:
                return "session/resume"
            if load:
                return "session/load"
        elif load:
            return "session/load"
        raise RpcError(
            RESOURCE_NOT_FOUND,
            f"agent {self.spec.name!r} can neither load nor resume sessions, so session "
            f"{req.agent_session_id} cannot be reopened; start a new session",
        )

    def _check_mcp(self, link: _Link, req: StartRequest) -> tuple[list[JsonObj], list[JsonObj]]:
        """The servers to pass on, and their status: `sent` (ACP has no MCP status for an
        agent to report), or failed when the agent cannot take a config-wired server's
        transport (a client's own is refused: the client asked for it)."""
        mcp = link.caps.get("mcpCapabilities")
        mcp = mcp if isinstance(mcp, dict) else {}
        kept: list[JsonObj] = []
        reports: list[JsonObj] = []
        for server in req.mcp_servers:
            kind, name = server.get("type"), server.get("name")
            if kind in ("http", "sse") and not mcp.get(kind):
                why = f"agent {self.spec.name!r} does not support {kind} MCP servers"
                if name not in req.mcp_optional:
                    raise RpcError(INVALID_PARAMS, f"{why} (server {name!r})", {"field": "mcpServers"})
                reports.append({"name": name, "status": "failed", "error": why})
                continue
            kept.append(server)
            reports.append({"name": name, "status": "sent"})
        return kept, reports


async def _paced(proc: AgentProcess, host: SessionHost | None) -> AsyncIterator[list[bytes | Oversize]]:
    """The agent's stdout batches, pausing while the client lags (backpressure)."""
    async for batch in proc.batches():
        yield batch
        if host is not None:
            await host.wait_writable()


def _dict(value: Any) -> JsonObj:
    return value if isinstance(value, dict) else {}


def create(spec: AgentSpec, env: AdapterEnv) -> AcpAdapter:
    return AcpAdapter(spec, env)
