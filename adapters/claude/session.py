"""A live Claude session: prompts, cancel, settings changes, and what the CLI sends back.

A prompt is one user line on the CLI's stdin; its turn ends at the CLI's `result` line. The
CLI's conversation lines are translated inline in the read loop (no task per message); each
of its permission prompts gets a task that asks the client and answers the CLI.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import anyio
from anyio.abc import TaskGroup

from adapters.claude import elicit, native, permissions, translate
from adapters.claude.channel import Channel
from adapters.claude.jsonutil import obj
from adapters.claude.options import ClaudeConfig
from adapters.claude.translate import Translator
from adapters.common import wants_compaction
from bridge.core import to_acp
from bridge.core.adapter import SessionHost, SessionSetup
from bridge.errors import METHOD_NOT_FOUND, AgentError, AgentExitedError, RpcError, invalid_params
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)


class _Turn:
    __slots__ = ("cancelled", "done", "error", "model_stop", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.cancelled = False
        self.result: JsonObj | None = None
        self.model_stop: str | None = None
        self.error: Exception | None = None


class ClaudeSession:
    def __init__(self, host: SessionHost, chan: Channel, config: ClaudeConfig, tg: TaskGroup, init: JsonObj,
                 client_capabilities: JsonObj | None = None) -> None:
        self.host = host
        self.client_capabilities = client_capabilities or {}
        self.init = init
        self.chan = chan
        self.config = config
        self.translator = Translator(config, compaction=wants_compaction(self.client_capabilities))
        self.setup = SessionSetup(agent_session_id="")
        # The CLI's `mcp_status` at start (its config included: never sent on as is).
        self.mcp_servers: list[JsonObj] = []
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
        for event in self.translator.mode_changed(mode):
            self.host.emit_event(event)

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
        for event in self.translator.feed(msg):
            self.host.emit_event(event)
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
        elif req.get("subtype") == "elicitation":
            self._tg.start_soon(self._elicit, rid, req)
        else:
            # Hooks, SDK MCP servers: nothing of ours is registered for them.
            reply = native.control_reply(rid, error=f"agent-bridge does not handle {req.get('subtype')}")
            self._tg.start_soon(self._reply, reply)

    async def _ask(self, rid: str, req: JsonObj) -> None:
        with anyio.CancelScope() as scope:
            self._asks[rid] = scope
            try:
                if self._turns and self._turns[0].cancelled:
                    answer = permissions.deny("The turn was cancelled.", interrupt=True)
                else:
                    parent = self.translator.parent_of(str(req.get("tool_use_id") or ""), req.get("agent_id"))
                    params = to_acp.permission_request(permissions.request(req, parent))
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

    async def _elicit(self, rid: str, req: JsonObj) -> None:
        server = str(req.get("mcp_server_name") or "")
        call = self.translator.running_mcp_call(server)
        ask = elicit.for_client(req, self.client_capabilities, call)
        with anyio.CancelScope() as scope:
            self._asks[rid] = scope
            try:
                if ask is None:
                    log.info("agent %s: MCP server %r asked for input (%s mode); the client does not "
                             "advertise that elicitation capability: declined", self.chan.name, server,
                             req.get("mode") or "form")
                    answer = elicit.DECLINE
                else:
                    answer = elicit.answer(await self.host.request_client("elicitation/create", ask))
            except RpcError as exc:
                log.info("agent %s: elicitation failed at the client, cancelling: %s", self.chan.name, exc.message)
                answer = elicit.answer(None)
            finally:
                self._asks.pop(rid, None)
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
