"""The Claude Code adapter: one long-lived `claude` process per bridge session, driven over
stream-json (notes/native-protocols.md §1).

A session is: spawn the CLI with the session's flags, `initialize` (its commands, models,
account), read its effective settings (so the user's default mode/model are the starting
values), replay the history for `session/load`, then serve prompts. A prompt is one user
line on stdin; the turn ends at the CLI's `result` line. The CLI's stdout is translated
inline in the read loop; its permission prompts each get a task that asks the client.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from adapters.claude import history, native, permissions, translate
from adapters.claude.channel import Channel
from adapters.claude.jsonutil import obj
from adapters.claude.options import ClaudeConfig
from adapters.claude.translate import Translator
from adapters.common import agent_env
from bridge.core.adapter import (
    AdapterEnv,
    AgentProbe,
    AgentSession,
    AgentSpec,
    JsonObj,
    SessionHost,
    SessionSetup,
    StartRequest,
)
from bridge.errors import (
    METHOD_NOT_FOUND,
    AgentError,
    AgentExitedError,
    AgentStartError,
    RpcError,
    invalid_params,
)
from bridge.process.agent_process import open_agent_process

log = logging.getLogger(__name__)
T = TypeVar("T")

CAPABILITIES: JsonObj = {
    "loadSession": True,
    "promptCapabilities": {"image": True, "audio": False, "embeddedContext": True},
    "mcpCapabilities": {"http": True, "sse": True},
    "sessionCapabilities": {"resume": {}, "fork": {}, "additionalDirectories": {}},
}
# How long a new session waits for the MCP servers it was given to connect (seconds).
MCP_CONNECT_WAIT = 10.0
# Commands that only make sense in the CLI's own terminal UI.
HIDDEN_COMMANDS = frozenset({"login", "logout", "keybindings-help", "release-notes", "heapdump", "insights"})


class _Turn:
    __slots__ = ("cancelled", "done", "error", "model_stop", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.cancelled = False
        self.result: JsonObj | None = None
        self.model_stop: str | None = None
        self.error: Exception | None = None


class ClaudeSession:
    def __init__(self, host: SessionHost, chan: Channel, config: ClaudeConfig, tg: TaskGroup, init: JsonObj) -> None:
        self.host = host
        self.init = init
        self.chan = chan
        self.config = config
        self.translator = Translator(config)
        self.setup = SessionSetup(agent_session_id="")
        self._tg = tg
        # One entry per user line written, in order: each gets exactly one `result`. A turn
        # whose prompt call was abandoned stays queued so its result is not taken by the next.
        self._turns: deque[_Turn] = deque()
        self._lock = anyio.Lock()
        self._asks: dict[str, anyio.CancelScope] = {}
        chan.on_message = self._on_message
        chan.on_request = self._on_request
        chan.on_exit = self.fail_turns

    # -- AgentSession ---------------------------------------------------------------------
    async def prompt(self, params: JsonObj) -> JsonObj:
        line = native.user_message(params.get("prompt") or [])
        async with self._lock:
            turn = _Turn()
            self._turns.append(turn)
            try:
                await self.chan.write(line)
            except BaseException:
                self._turns.remove(turn)
                raise
            try:
                await turn.done.wait()
            except anyio.get_cancelled_exc_class():
                # The caller gave up on the turn: stop the CLI's work too.
                turn.cancelled = True
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.chan.grace):
                    await self._interrupt()
                raise
        if turn.error is not None:
            raise turn.error
        assert turn.result is not None
        return translate.prompt_response(turn.result, turn.cancelled, turn.model_stop)

    async def cancel(self) -> None:
        live = [t for t in self._turns if not t.done.is_set()]
        if not live:
            return
        for t in live:
            t.cancelled = True
        await self._interrupt()

    async def _interrupt(self) -> None:
        try:
            await self.chan.request("interrupt")
        except AgentError as exc:
            log.warning("agent %s: interrupt failed: %s", self.chan.name, exc)

    async def set_mode(self, mode_id: str) -> JsonObj:
        await self._set_mode(self.config.check("mode", mode_id))
        return {}

    async def set_config_option(self, params: JsonObj) -> JsonObj:
        cid = str(params.get("configId"))
        value = self.config.check(cid, params.get("value"))
        if cid == "mode":
            await self._set_mode(value)
        elif cid == "model":
            await self._control("set_model", model=value)
            self.config.model = value
            effort = self.config.effort
            self.config.refit_effort()
            if self.config.effort is not None and self.config.effort != effort:
                await self._control("apply_flag_settings", settings={"effortLevel": self.config.effort})
        else:
            # Flag settings live in the CLI's memory for this process: the user's files are untouched.
            await self._control("apply_flag_settings", settings={"effortLevel": value})
            self.config.effort = value
        return {"configOptions": self.config.config_options()}

    async def _set_mode(self, mode: str) -> None:
        await self._control("set_permission_mode", mode=mode)
        for update in self.translator.mode_changed(mode):
            self.host.emit(update)

    async def _control(self, subtype: str, **fields: Any) -> JsonObj:
        try:
            return await self.chan.request(subtype, **fields)
        except AgentExitedError:
            raise
        except RpcError as exc:  # the CLI refused the value (e.g. bypass without the flag)
            raise invalid_params(exc.message, "value") from None

    async def call(self, method: str, params: JsonObj) -> Any:
        if method == "_claude/mcp_status":
            status = await self.chan.request("mcp_status")
            return {"mcpServers": translate.mcp_status(status.get("mcpServers") or [])}
        raise RpcError(METHOD_NOT_FOUND, f"Claude Code has no method {method}")

    def pid(self) -> int | None:
        return self.chan.proc.pid if self.chan.proc.returncode is None else None

    # -- what the CLI sends --------------------------------------------------------------------
    def _on_message(self, msg: JsonObj) -> None:
        for update in self.translator.feed(msg):
            self.host.emit(update)
        if msg.get("type") == "result":
            model_stop, self.translator.model_stop = self.translator.model_stop, None
            if self._turns:
                turn = self._turns.popleft()
                turn.result, turn.model_stop = msg, model_stop
                turn.done.set()
        else:
            self.host.touch()

    def _on_request(self, msg: JsonObj) -> None:
        rid = str(msg.get("request_id"))
        if msg.get("type") == "control_cancel_request":
            scope = self._asks.pop(rid, None)
            if scope is not None:
                scope.cancel()
            return
        req = obj(msg.get("request"))
        if req.get("subtype") == "can_use_tool":
            self._tg.start_soon(self._ask, rid, req)
        else:
            # Hooks, SDK MCP servers, elicitations: nothing of ours is registered for them.
            reply = native.control_reply(rid, error=f"agent-bridge does not handle {req.get('subtype')}")
            self._tg.start_soon(self._reply, reply)

    async def _ask(self, rid: str, req: JsonObj) -> None:
        with anyio.CancelScope() as scope:
            self._asks[rid] = scope
            try:
                if self._turns and self._turns[0].cancelled:
                    answer = permissions.deny("The turn was cancelled.", interrupt=True)
                else:
                    params = permissions.request_params(req)
                    result = await self.host.request_client("session/request_permission", params)
                    answer = permissions.answer(req, result)
            except Exception as exc:
                # The client failed: fail closed. The model is told and goes on without the tool.
                log.warning("agent %s: permission request failed, denying: %s", self.chan.name, exc)
                answer = permissions.deny("The permission request could not be answered.")
            finally:
                self._asks.pop(rid, None)
            if answer.get("interrupt") and self._turns:
                # A cancelled request stops the turn (the head of the queue is the one running):
                # it ends as a cancel, not an error.
                self._turns[0].cancelled = True
            await self._reply(native.control_reply(rid, answer))

    async def _reply(self, msg: JsonObj) -> None:
        try:
            await self.chan.write(msg)
        except AgentError as exc:  # the CLI is gone; the read loop reports how
            log.info("agent %s: could not answer a control request: %s", self.chan.name, exc)

    def fail_turns(self, exc: Exception) -> None:
        while self._turns:
            turn = self._turns.popleft()
            turn.error = exc
            turn.done.set()


class ClaudeAdapter:
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
        async with open_agent_process(self.spec.name, argv, env=self._env(), stop_grace=self.env.stop_grace) as proc:
            chan = Channel(self.spec.name, proc, timeout=self.env.handshake_timeout, grace=self.env.stop_grace)
            version = await _serving(chan, self._version)
        info = {"name": "claude-code", "title": "Claude Code", "version": version}
        return AgentProbe(protocol_version=1, agent_capabilities=CAPABILITIES, auth_methods=[],
                          agent_info=info, auth_result={} if authenticate is not None else None)

    async def _version(self, chan: Channel, tg: TaskGroup) -> str:
        await self._handshake(chan)
        return str((await self._optional(chan, "get_binary_version")).get("version") or "")

    async def _handshake(self, chan: Channel) -> JsonObj:
        try:
            return await chan.request("initialize", hooks=None)
        except AgentExitedError as exc:
            raise AgentStartError(
                self.spec.name, f"it exited during the handshake (exit code {exc.returncode}): "
                f"{exc.stderr_tail.strip()[-500:]}", {"exitCode": exc.returncode, "stderrTail": exc.stderr_tail},
            ) from None
        except AgentError as exc:
            raise AgentStartError(self.spec.name, exc.message, {"stderrTail": chan.proc.stderr_tail()}) from None

    async def run(self, host: SessionHost, request: StartRequest, *, task_status: TaskStatus[AgentSession]) -> None:
        env = self._env()
        session_id, flags = self._session_flags(host, request, env)
        argv = native.argv(self.spec, request, flags)
        async with open_agent_process(
            self.spec.name, argv, env=env, cwd=request.cwd, stop_grace=self.env.stop_grace
        ) as proc:
            chan = Channel(self.spec.name, proc, timeout=self.env.handshake_timeout, grace=self.env.stop_grace)
            chan.after_batch = host.wait_writable

            async def serve(chan: Channel, tg: TaskGroup) -> AgentExitedError:
                session = await self._open(host, request, env, session_id, chan, tg)
                task_status.started(session)
                host.emit(commands_update(session.init))
                await chan.exited.wait()
                assert chan.exit_error is not None
                return chan.exit_error

            exit_error = await _serving(chan, serve)
        # A fresh instance: the one the failed prompt raised carries that call's traceback.
        raise AgentExitedError(self.spec.name, exit_error.returncode, exit_error.stderr_tail)

    async def _open(self, host: SessionHost, request: StartRequest, env: dict[str, str], session_id: str,
                    chan: Channel, tg: TaskGroup) -> ClaudeSession:
        init = await self._handshake(chan)
        settings = await self._optional(chan, "get_settings")
        mcp = await self._mcp_ready(chan, request)
        args = self.spec.args
        config = ClaudeConfig.from_cli(
            init, settings, bypass=native.bypass_allowed(self.spec), mode=native.flag_value(args, "--permission-mode"),
            model=native.flag_value(args, "--model"), effort=native.flag_value(args, "--effort"))
        session = ClaudeSession(host, chan, config, tg, init)
        meta = {"mcpServers": translate.mcp_status(mcp.get("mcpServers") or []), "account": init.get("account")}
        session.setup = SessionSetup(agent_session_id=session_id, modes=config.modes_state(),
                                     config_options=config.config_options(), meta={"claudeCode": meta})
        if request.mode == "load":
            session.setup.replayed = self._replay(host, env, session_id)
        return session

    def _session_flags(self, host: SessionHost, request: StartRequest, env: dict[str, str]) -> tuple[str, list[str]]:
        if request.mode == "new":
            sid = str(uuid.uuid4())
            return sid, native.session_flags("new", sid, None)
        source = native.check_session_id(request.agent_session_id)
        target = str(uuid.uuid4()) if request.mode == "fork" else source
        path = history.find_session(env, source)
        recorded = history.session_cwd(path) if path is not None else None
        if recorded is not None and os.path.realpath(recorded) != os.path.realpath(request.cwd):
            # The CLI only looks for a session under the directory it was recorded in.
            raise invalid_params(f"Claude Code session {source} belongs to {recorded}, not {request.cwd}", "cwd")
        if path is None:
            # The CLI writes its session file at the first turn: a session never prompted has
            # none, and `--resume` would refuse it. Open it afresh under its id (it was empty),
            # and say so in the log rather than pretending.
            log.warning("agent %s: no Claude Code session file for %s; starting it empty", self.spec.name, source)
            host.record_event({"type": "claude_session_missing", "agentSessionId": source})
            return target, native.session_flags("new", target, None)
        return target, native.session_flags(request.mode, target, source)

    def _replay(self, host: SessionHost, env: dict[str, str], session_id: str) -> bool:
        path = history.find_session(env, session_id)
        if path is None:
            return False
        for update in history.replay(history.read_entries(path)):
            host.emit(update)
        return True

    async def _mcp_ready(self, chan: Channel, request: StartRequest) -> JsonObj:
        """The MCP servers' status, after the ones this session was given have connected (or
        failed), within a bound. The CLI does not wait for them before its first model call,
        so without this a first prompt can run without the tools the client just passed."""
        names = {s.get("name") for s in request.mcp_servers}
        deadline = anyio.current_time() + min(MCP_CONNECT_WAIT, self.env.handshake_timeout)
        while True:
            status = await self._optional(chan, "mcp_status")
            servers = [obj(s) for s in status.get("mcpServers") or []]
            if not any(s.get("status") == "pending" and s.get("name") in names for s in servers):
                return status
            if anyio.current_time() >= deadline:
                log.warning("agent %s: MCP servers still connecting after %gs", self.spec.name, MCP_CONNECT_WAIT)
                return status
            await anyio.sleep(0.05)

    async def _optional(self, chan: Channel, subtype: str) -> JsonObj:
        """A control request older CLIs may not know: its absence is not fatal."""
        try:
            return await chan.request(subtype)
        except AgentExitedError:
            raise
        except AgentError as exc:
            log.info("agent %s: %s unavailable: %s", self.spec.name, subtype, exc)
            return {}


def commands_update(init: JsonObj) -> JsonObj:
    """The CLI's slash commands (with descriptions, from `initialize`) as ACP commands."""
    commands = []
    for c in init.get("commands") or []:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or c["name"] in HIDDEN_COMMANDS:
            continue
        cmd: JsonObj = {"name": c["name"], "description": str(c.get("description") or "")}
        if c.get("argumentHint"):
            cmd["input"] = {"hint": str(c["argumentHint"])}
        commands.append(cmd)
    return {"sessionUpdate": "available_commands_update", "availableCommands": commands}


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
