"""The Claude Code adapter: one long-lived `claude` process per bridge session, driven over
stream-json (notes/native-protocols.md §1).

Opening a session: spawn the CLI with the session's flags, `initialize` (its commands,
models, account), read its effective settings (so the user's default mode/model are the
starting values), wait for the session's MCP servers, replay the history for
`session/load`, hand the `ClaudeSession` over, then serve until the CLI exits.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from adapters import static
from adapters.claude import history, native, translate
from adapters.claude.channel import Channel, Sent
from adapters.claude.jsonutil import obj
from adapters.claude.options import ClaudeConfig
from adapters.claude.session import ClaudeSession
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
    RESOURCE_NOT_FOUND,
    AgentError,
    AgentExitedError,
    AgentStartError,
    RpcError,
    invalid_params,
)
from bridge.process import handshake
from bridge.process.agent_process import open_agent_process
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)
T = TypeVar("T")

CAPABILITIES: JsonObj = static.CLAUDE  # what initialize advertises (adapters/static.py)
# How long a new session waits for the MCP servers it was given to connect (seconds).
MCP_CONNECT_WAIT = 10.0
# Commands that only make sense in the CLI's own terminal UI.
HIDDEN_COMMANDS = frozenset({"login", "logout", "keybindings-help", "release-notes", "heapdump", "insights"})


class ClaudeAdapter:
    # What `initialize` advertises for this agent, without spawning it (bridge/acp/server.py).
    static_capabilities = CAPABILITIES
    # No ACP client of its own: the bridge offers it the client's fs/terminal as MCP tools.
    client_tools = True

    def __init__(self, spec: AgentSpec, env: AdapterEnv) -> None:
        self.spec = spec
        self.env = env

    def _env(self) -> dict[str, str]:
        env = agent_env(self.spec)
        # Set when the daemon itself runs inside Claude Code; the CLI would think it is nested.
        env.pop("CLAUDECODE", None)
        return env

    async def probe(self, authenticate: JsonObj | None = None) -> AgentProbe:
        argv = native.argv(self.spec, None, [])
        async with open_agent_process(
            self.spec.name, argv, env=self._env(), stop_grace=self.env.stop_grace
        ) as proc:
            chan = Channel(
                self.spec.name, proc, timeout=self.env.handshake_timeout, grace=self.env.stop_grace
            )
            version = await _serving(chan, self._version)
        info = {"name": "claude-code", "title": "Claude Code", "version": version}
        return AgentProbe(
            protocol_version=1,
            agent_capabilities=CAPABILITIES,
            auth_methods=[],
            agent_info=info,
            auth_result={} if authenticate is not None else None,
        )

    async def _version(self, chan: Channel, tg: TaskGroup) -> str:
        _, (version,) = await self._handshake(chan, "get_binary_version")
        return str((await self._optional(chan, version)).get("version") or "")

    async def _handshake(self, chan: Channel, *then: str) -> tuple[JsonObj, list[Sent]]:
        """`initialize`, with the control requests `then` written right behind it: the CLI
        answers them in order, so opening a session costs one round trip, not one each."""
        try:
            # forwardSubagentText: a subagent's text and thinking come too (tagged with its Agent
            # call), not only its tool calls, so a client can show what it is doing.
            first = await chan.send("initialize", hooks=None, forwardSubagentText=True)
            rest = [await chan.send(subtype) for subtype in then]
            return await chan.answer(first), rest
        except AgentExitedError as exc:
            raise handshake.exited(self.spec.name, exc.returncode, exc.stderr_tail) from None
        except AgentError as exc:
            raise AgentStartError(
                self.spec.name, exc.message, {"stderrTail": chan.proc.stderr_tail()}
            ) from None

    async def run(
        self, host: SessionHost, request: StartRequest, *, task_status: TaskStatus[AgentSession]
    ) -> None:
        env = self._env()
        session_id, flags = self._session_flags(host, request, env)
        with native.mcp_config_file(self.env.state_dir, request.mcp_servers) as mcp_file:
            exit_error = await self._serve(
                host, request, env, session_id, native.argv(self.spec, request, flags, mcp_file), task_status
            )
        # A fresh instance: the one the failed prompt raised carries that call's traceback.
        raise AgentExitedError(self.spec.name, exit_error.returncode, exit_error.stderr_tail)

    async def _serve(
        self,
        host: SessionHost,
        request: StartRequest,
        env: dict[str, str],
        session_id: str,
        argv: list[str],
        task_status: TaskStatus[AgentSession],
    ) -> AgentExitedError:
        async with open_agent_process(
            self.spec.name, argv, env=env, cwd=request.cwd, stop_grace=self.env.stop_grace
        ) as proc:
            chan = Channel(
                self.spec.name, proc, timeout=self.env.handshake_timeout, grace=self.env.stop_grace
            )
            chan.after_batch = host.wait_writable

            async def serve(chan: Channel, tg: TaskGroup) -> AgentExitedError:
                session = await self._open(host, request, env, session_id, chan, tg)
                task_status.started(session)
                host.emit_event(commands_update(session.init))
                if session.mcp_servers:
                    host.emit_event(translate.mcp_report(session.mcp_servers))
                await chan.exited.wait()
                assert chan.exit_error is not None
                return chan.exit_error

            return await _serving(chan, serve)

    async def _open(
        self,
        host: SessionHost,
        request: StartRequest,
        env: dict[str, str],
        session_id: str,
        chan: Channel,
        tg: TaskGroup,
    ) -> ClaudeSession:
        init, (settings_asked, status_asked) = await self._handshake(chan, "get_settings", "mcp_status")
        settings = await self._optional(chan, settings_asked)
        mcp = await self._mcp_ready(chan, request, status_asked)
        args = self.spec.args
        config = ClaudeConfig.from_cli(
            init,
            settings,
            bypass=native.bypass_allowed(self.spec),
            mode=native.flag_value(args, "--permission-mode"),
            model=native.flag_value(args, "--model"),
            effort=native.flag_value(args, "--effort"),
        )
        session = ClaudeSession(host, chan, config, tg, init, request.client_capabilities)
        session.mcp_servers = [obj(s) for s in mcp.get("mcpServers") or []]
        meta = {
            "mcpServers": translate.mcp_status(mcp.get("mcpServers") or []),
            "account": init.get("account"),
        }
        session.setup = SessionSetup(
            agent_session_id=session_id,
            modes=config.modes_state(),
            config_options=config.config_options(),
            meta={"claudeCode": meta},
        )
        if request.mode == "load":
            session.setup.replayed = self._replay(host, env, session_id)
        return session

    def _session_flags(
        self, host: SessionHost, request: StartRequest, env: dict[str, str]
    ) -> tuple[str, list[str]]:
        if request.mode == "new":
            sid = str(uuid.uuid4())
            return sid, native.session_flags("new", sid, None)
        source = native.check_session_id(request.agent_session_id)
        target = str(uuid.uuid4()) if request.mode == "fork" else source
        path = history.find_session(env, source)
        recorded = history.session_cwd(path) if path is not None else None
        if recorded is not None and os.path.realpath(recorded) != os.path.realpath(request.cwd):
            # The CLI only looks for a session under the directory it was recorded in.
            raise invalid_params(
                f"Claude Code session {source} belongs to {recorded}, not {request.cwd}", "cwd"
            )
        if path is None and request.history_turns > 0:
            # Prompted before, and its file is gone (deleted, another CLAUDE_CONFIG_DIR): the
            # conversation is lost to Claude Code. Said so; the bridge can continue it.
            raise RpcError(
                RESOURCE_NOT_FOUND,
                f"Claude Code has no session file for session {source}, "
                f"so it cannot resume it (looked under {history.config_dir(env) / 'projects'})",
                {"agentSessionId": source},
            )
        if path is None:
            # The CLI writes its session file at the first turn: a session never prompted has
            # none, and `--resume` would refuse it. Open it afresh under its id (it was empty),
            # and say so in the log rather than pretending.
            log.warning(
                "agent %s: no Claude Code session file for %s; starting it empty", self.spec.name, source
            )
            host.record_event({"type": "claude_session_missing", "agentSessionId": source})
            return target, native.session_flags("new", target, None)
        return target, native.session_flags(request.mode, target, source)

    def _replay(self, host: SessionHost, env: dict[str, str], session_id: str) -> bool:
        path = history.find_session(env, session_id)
        if path is None:
            return False
        for event in history.replay(history.read_entries(path)):
            host.emit_event(event)
        return True

    async def _mcp_ready(self, chan: Channel, request: StartRequest, first: Sent) -> JsonObj:
        """The MCP servers' status, after the ones this session was given have connected (or
        failed), within a bound. The CLI does not wait for them before its first model call,
        so without this a first prompt can run without the tools the client just passed."""
        names = {s.get("name") for s in request.mcp_servers}
        deadline = anyio.current_time() + min(MCP_CONNECT_WAIT, self.env.handshake_timeout)
        asked: Sent | str = first
        while True:
            status, asked = await self._optional(chan, asked), "mcp_status"
            servers = [obj(s) for s in status.get("mcpServers") or []]
            if not any(s.get("status") == "pending" and s.get("name") in names for s in servers):
                return status
            if anyio.current_time() >= deadline:
                log.warning(
                    "agent %s: MCP servers still connecting after %gs", self.spec.name, MCP_CONNECT_WAIT
                )
                return status
            await anyio.sleep(0.05)

    async def _optional(self, chan: Channel, request: Sent | str) -> JsonObj:
        """A control request older CLIs may not know (its subtype, or one already sent):
        its absence is not fatal."""
        try:
            return await chan.answer(request if isinstance(request, Sent) else await chan.send(request))
        except AgentExitedError:
            raise
        except AgentError as exc:
            subtype = request.subtype if isinstance(request, Sent) else request
            log.info("agent %s: %s unavailable: %s", self.spec.name, subtype, exc)
            return {}


def commands_update(init: JsonObj) -> ev.AvailableCommands:
    """The CLI's slash commands (with descriptions, from `initialize`)."""
    return ev.AvailableCommands(tuple(
        ev.Command(c["name"], str(c.get("description") or ""), str(c["argumentHint"]) if c.get("argumentHint") else None)
        for c in init.get("commands") or []
        if isinstance(c, dict) and isinstance(c.get("name"), str) and c["name"] not in HIDDEN_COMMANDS))


async def _serving(chan: Channel, body: Callable[[Channel, TaskGroup], Awaitable[T]]) -> T:
    """Run `body(chan, tg)` while the channel's read loop runs beside it, and return its
    value. Errors leave the task group as themselves (not wrapped in an ExceptionGroup):
    callers and the bridge match on `AgentError`."""
    result: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(chan.run)
        try:
            result.append(await body(chan, tg))
        except Exception as exc:
            failure.append(exc)
        tg.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return result[0]
