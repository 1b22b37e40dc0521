"""One Codex thread behind one bridge session.

Opening: `thread/start` (new), `thread/resume` (load / resume; load then replays the
thread's items from `thread/items/list`), or `thread/fork`; then `model/list` and
`config/read` build the config options. Client MCP servers go in the thread's
`config.mcp_servers` (a per-thread override: the user's config.toml is left alone).

A prompt is one `turn/start` (with any pending mode/model/effort overrides) that ends at
`turn/completed`; cancel is `turn/interrupt`. The prompt `/compact` (the one command the
session advertises) is `thread/compact/start` instead: Codex runs the compaction as a turn of
its own (a `contextCompaction` item, shown as a tool call) and the prompt ends with it. Codex's approval requests become
`session/request_permission` (approvals.py). If the process dies, the running prompt fails
at once with the exit code and stderr tail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio

from adapters import static
from adapters.codex import approvals
from adapters.codex import usage as tokens
from adapters.codex.options import Settings, user_input
from adapters.codex.rpc import AppServer, CodexRpcError, method_not_found
from adapters.codex.translate import Translator, replay
from adapters.common import wants_compaction
from bridge.core import events as ev
from bridge.core.adapter import SessionHost, SessionSetup, StartRequest
from bridge.errors import AUTH_REQUIRED, INTERNAL_ERROR, AgentError, AgentExitedError, RpcError
from bridge.process.agent_process import AgentProcess
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

CAPABILITIES: JsonObj = static.CODEX  # what initialize advertises (adapters/static.py)
# Read-only app-server methods a client may call through `_codex/<method>`.
PASSTHROUGH = {"thread/list", "thread/read", "thread/turns/list", "thread/items/list", "model/list"}
PAGE = 200
MAX_PAGES = 50
COMMANDS = (ev.Command("compact", "Summarize the conversation to free context (thread/compact/start)"),)
# How long a first prompt waits for the client's MCP servers to finish starting: Codex does
# not wait for them, and a turn started earlier runs without their tools.
MCP_STARTUP_WAIT = 30.0


class _Turn:
    def __init__(self) -> None:
        self.id: str | None = None
        self.done = anyio.Event()
        self.status = "inProgress"
        self.error: JsonObj | None = None
        self.failure: AgentError | None = None
        self.cancel_requested = False
        self.usage_before: JsonObj | None = None
        self.usage_after: JsonObj | None = None
        self.waiting = anyio.CancelScope()  # the wait for MCP servers before turn/start


class CodexSession:
    """One Codex thread behind one bridge session (`AgentSession`, and the app-server `Handler`)."""

    server: AppServer
    setup: SessionSetup
    settings: Settings

    def __init__(self, agent: str, host: SessionHost, request: StartRequest, proc: AgentProcess) -> None:
        self.agent = agent
        self.host = host
        self.request = request
        self.proc = proc
        self.translator = Translator(compaction=wants_compaction(request.client_capabilities))
        self.thread_id = ""
        self._turn: _Turn | None = None
        self._usage_total: JsonObj | None = None
        self._mcp_starting: set[str] = set()
        self._mcp_started = anyio.Event()
        self._mcp_names: frozenset[str] = frozenset()
        # Sub-agent thread → (the collabAgentToolCall that spawned it, that thread's translator).
        self._children: dict[str, tuple[str, Translator]] = {}
        # A shared process's router (shared.py), told as soon as the thread id is known.
        self.on_thread: Callable[[CodexSession], None] | None = None

    # -- opening ----------------------------------------------------------------------------
    async def open(self, servers: JsonObj) -> None:
        req = self.request
        params: JsonObj = {"cwd": req.cwd}
        if servers:
            params["config"] = {"mcp_servers": servers}
            self._mcp_starting = set(servers)
            self._mcp_names = frozenset(servers)
        else:
            self._mcp_started.set()
        if req.mode == "new":
            res = await self.server.request("thread/start", params)
        else:
            if not req.agent_session_id:
                raise RpcError(INTERNAL_ERROR, f"cannot {req.mode} a Codex session without its thread id")
            method = "thread/fork" if req.mode == "fork" else "thread/resume"
            try:
                res = await self.server.request(
                    method, {"threadId": req.agent_session_id, "excludeTurns": True, **params}
                )
            except CodexRpcError as exc:
                # Codex writes a thread's rollout at its first turn: one never prompted has none
                # (e.g. its shared process died first). Nothing is lost: open it afresh, and say so.
                if req.mode == "fork" or req.history_turns or "no rollout found" not in exc.message:
                    raise
                log.warning("%s: thread %s was never prompted; starting it empty", self.agent, req.agent_session_id)
                self.host.record_event({"type": "codex_thread_missing", "agentSessionId": req.agent_session_id})
                res = await self.server.request("thread/start", params)
        thread = res.get("thread") or {}
        if not thread.get("id"):
            raise AgentError(INTERNAL_ERROR, f"codex opened no thread: {res!r:.300}", {"agent": self.agent})
        self.thread_id = str(thread["id"])
        if self.on_thread is not None:
            self.on_thread(self)
        self.settings = Settings(
            model=str(res.get("model")),
            effort=res.get("reasoningEffort"),
            approval=res.get("approvalPolicy"),
            sandbox=res.get("sandbox") or {},
            models=await self._models(),
            configured=await self._configured(),
            extra_roots=list(req.additional_directories or []),
        )
        if req.mode == "load":
            await self._replay()
        meta = {
            "codex": {k: thread.get(k) for k in ("id", "path", "cliVersion", "forkedFromId") if thread.get(k)}
        }
        self.setup = SessionSetup(
            agent_session_id=self.thread_id,
            modes=self.settings.modes(),
            config_options=self.settings.config_options(),
            meta=meta,
            replayed=req.mode == "load",
            prompt_capabilities=CAPABILITIES["promptCapabilities"],
        )

    async def _models(self) -> list[JsonObj]:
        models: list[JsonObj] = []
        cursor = None
        for _ in range(MAX_PAGES):
            page = await self.server.request("model/list", {"cursor": cursor, "limit": PAGE})
            models += page.get("data") or []
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return models

    async def _configured(self) -> JsonObj:
        """What the user's own config sets for the policies (None where Codex's default applies)."""
        res = await self.server.request("config/read", {"cwd": self.request.cwd})
        config = res.get("config") or {}
        return {"approval_policy": config.get("approval_policy"), "sandbox_mode": config.get("sandbox_mode")}

    async def _replay(self) -> None:
        cursor = None
        for _ in range(MAX_PAGES):
            params = {"threadId": self.thread_id, "sortDirection": "asc", "limit": PAGE, "cursor": cursor}
            page = await self.server.request("thread/items/list", params)
            for entry in page.get("data") or []:
                for event in replay(entry.get("item") or {}):
                    self.host.emit_event(event)
            cursor = page.get("nextCursor")
            if not cursor:
                break

    # -- turns --------------------------------------------------------------------------------
    async def prompt(self, params: JsonObj) -> JsonObj:
        items = user_input(params.get("prompt") or [])
        turn = self._turn = _Turn()
        turn.usage_before = self._usage_total
        try:
            with turn.waiting, anyio.move_on_after(MCP_STARTUP_WAIT):
                await self._mcp_started.wait()
            if turn.cancel_requested:  # cancelled before Codex heard of the turn
                return {"stopReason": "cancelled"}
            if _is_compact(params.get("prompt")):
                # No turn id in the answer: the compaction's turn is the next one to complete.
                await self.server.request("thread/compact/start", {"threadId": self.thread_id})
                if turn.cancel_requested and turn.id is not None and not turn.done.is_set():
                    await self._interrupt(turn)
            else:
                overrides = self.settings.take_overrides()
                try:
                    res = await self.server.request(
                        "turn/start", {"threadId": self.thread_id, "input": items, **overrides}
                    )
                except BaseException:
                    self.settings.pending = {**overrides, **self.settings.pending}  # not applied: keep them
                    raise
                turn.id = str((res.get("turn") or {}).get("id"))
            if turn.cancel_requested and not turn.done.is_set():
                await self._interrupt(turn)
            await turn.done.wait()
        finally:
            self._turn = None
        if turn.failure is not None:
            raise turn.failure
        result: JsonObj = {"stopReason": self._stop_reason(turn)}
        took = tokens.delta(turn.usage_before, turn.usage_after)
        if took:
            result["usage"] = took
        return result

    def commands_update(self) -> ev.AvailableCommands:
        return ev.AvailableCommands(COMMANDS)

    def _stop_reason(self, turn: _Turn) -> str:
        if turn.cancel_requested or turn.status == "interrupted":
            return "cancelled"
        if turn.status != "failed":
            return "end_turn"
        error = turn.error or {}
        info = error.get("codexErrorInfo")
        if info == "contextWindowExceeded":
            return "max_tokens"
        if info in ("cyberPolicy", "bioPolicy", "misalignmentPolicyViolation"):
            return "refusal"
        message = f"codex turn failed: {error.get('message') or 'unknown error'}"
        data = {"agent": self.agent, "codexError": error}
        if info == "unauthorized":
            # Say whose move it is: the user has to log Codex in (or set its API key).
            raise AgentError(AUTH_REQUIRED, message + " (log in with `codex login` or set the API key)", data)
        raise AgentError(INTERNAL_ERROR, message, data)

    async def cancel(self) -> None:
        turn = self._turn
        if turn is None or turn.done.is_set():
            return
        turn.cancel_requested = True
        turn.waiting.cancel()
        if turn.id is not None:  # else prompt() interrupts as soon as turn/start answers
            await self._interrupt(turn)

    async def interrupt_running(self) -> None:
        if self._turn is not None and self._turn.id is not None and not self._turn.done.is_set():
            await self._interrupt(self._turn)

    async def _interrupt(self, turn: _Turn) -> None:
        try:
            await self.server.request("turn/interrupt", {"threadId": self.thread_id, "turnId": turn.id})
        except CodexRpcError as exc:  # the turn ended on its own meanwhile
            log.debug("%s: turn/interrupt: %s", self.agent, exc.message)

    # -- settings -----------------------------------------------------------------------------
    async def set_mode(self, mode_id: str) -> JsonObj:
        self.settings.set_mode(mode_id)
        self.host.emit_event(ev.ModeChange(mode_id))
        self.host.emit_event(ev.ConfigOptionsChange(self.settings.config_options()))
        return {}

    async def set_config_option(self, params: JsonObj) -> JsonObj:
        config_id = str(params.get("configId"))
        self.settings.set_option(config_id, params.get("value"))
        if config_id == "mode":
            self.host.emit_event(ev.ModeChange(self.settings.mode))
        return {"configOptions": self.settings.config_options()}

    async def call(self, method: str, params: JsonObj) -> Any:
        native = method.removeprefix("_codex/")
        if native == method or native not in PASSTHROUGH:
            raise method_not_found(method)
        forwarded = {k: v for k, v in params.items() if k != "sessionId"}
        if native != "thread/list" and native != "model/list":
            forwarded.setdefault("threadId", self.thread_id)
        return await self.server.request(native, forwarded)

    def pid(self) -> int | None:
        return self.proc.pid if self.proc.returncode is None else None

    # -- app-server Handler ---------------------------------------------------------------------
    def notification(self, method: str, params: JsonObj) -> None:
        if method == "mcpServer/startupStatus/updated":
            self._mcp_status(params)
        thread = params.get("threadId")
        if thread is not None and thread != self.thread_id:
            # A sub-agent's thread: shown nested under the call that spawned it. Anything
            # else (the handshake before ours is known) is not this session's.
            if thread in self._children:
                self._child_notification(str(thread), method, params)
            return
        for event in self.translator.notification(method, params):
            self.host.emit_event(event)
        if method == "item/completed":
            self._spawned(params.get("item") or {})
        if method == "turn/started" and self._turn is not None and self._turn.id is None:
            # A compaction's turn (its start request answers no turn id): now cancel can reach it.
            self._turn.id = str((params.get("turn") or {}).get("id"))
        if method == "turn/completed":
            self._turn_completed(params.get("turn") or {})
        elif method == "thread/tokenUsage/updated":
            usage = params.get("tokenUsage") or {}
            self._usage_total = usage.get("total")
            if self._turn is not None:
                if self._turn.usage_before is None:
                    # The first count since this process opened the thread: a resumed thread's
                    # totals already hold its earlier turns (from the rollout), so this turn
                    # starts where the total stood before this call (`total - last`).
                    self._turn.usage_before = tokens.minus(self._usage_total, usage.get("last"))
                self._turn.usage_after = self._usage_total
        elif method == "model/rerouted":
            self.settings.model = str(params.get("toModel"))
            self.host.emit_event(ev.ConfigOptionsChange(self.settings.config_options()))
        elif method in ("warning", "configWarning", "deprecationNotice", "error"):
            log.info("%s: codex %s: %s", self.agent, method, params)

    # -- sub-agents (Codex's multi-agent tools) ------------------------------------------------
    def _spawned(self, item: JsonObj) -> None:
        """A `collabAgentToolCall` that started sub-agents: their threads are linked to it."""
        if item.get("type") != "collabAgentToolCall":
            return
        for child in item.get("receiverThreadIds") or []:
            if isinstance(child, str) and child != self.thread_id and child not in self._children:
                self._children[child] = (str(item.get("id", "")), Translator(compaction=self.translator.compaction))

    def _child_notification(self, thread: str, method: str, params: JsonObj) -> None:
        parent, translator = self._children[thread]
        for event in translator.notification(method, params):
            if not isinstance(event, ev.Usage):  # the session's usage is its own thread's
                self.host.emit_event(ev.nested(event, parent))
        if method == "item/completed":
            self._spawned(params.get("item") or {})

    def has_child(self, thread: str) -> bool:
        return thread in self._children

    def awaits_mcp(self, name: Any) -> bool:
        return name in self._mcp_starting

    def _thread_translator(self, params: JsonObj) -> tuple[Translator, str | None]:
        child = self._children.get(str(params.get("threadId")))
        return (child[1], child[0]) if child is not None else (self.translator, None)

    def _mcp_status(self, params: JsonObj) -> None:
        name, status = params.get("name"), params.get("status")
        error = params.get("error") or params.get("failureReason")
        self.host.emit_event(ev.mcp_report([{"name": name, "status": status, "error": error}]))
        if status == "failed":
            log.warning("%s: MCP server %s failed to start: %s", self.agent, name, params.get("error"))
            self.host.record_event({"type": "mcp_server_failed", "name": name, "error": params.get("error")})
        if status != "starting" and name in self._mcp_starting:
            self._mcp_starting.discard(str(name))
            if not self._mcp_starting:
                self._mcp_started.set()

    async def report_mcp_tools(self) -> None:
        """Once the session's MCP servers are up, their tools (the startup status has none)."""
        if not self._mcp_names:
            return
        await self._mcp_started.wait()
        params = {"threadId": self.thread_id, "detail": "toolsAndAuthOnly"}
        try:
            res = await self.server.request("mcpServerStatus/list", params)
        except Exception as exc:  # an older Codex, or it exited: the status stays without tools
            log.info("%s: no MCP tool list: %s", self.agent, exc)
            return
        reports = [
            {"name": s["name"], "tools": sorted(s["tools"])}
            for s in res.get("data") or []
            if isinstance(s, dict) and s.get("name") in self._mcp_names and isinstance(s.get("tools"), dict)
        ]
        if reports:
            self.host.emit_event(ev.mcp_report(reports))

    def _turn_completed(self, turn_info: JsonObj) -> None:
        if turn_info.get("status") in ("interrupted", "failed"):
            for event in self.translator.close_open_calls():
                self.host.emit_event(event)
        turn = self._turn
        if turn is None or (turn.id is not None and turn.id != turn_info.get("id")):
            return
        turn.status = str(turn_info.get("status"))
        turn.error = turn_info.get("error")
        turn.done.set()

    def batch_done(self) -> None:
        for event in self.translator.flush():
            self.host.emit_event(event)
        for parent, translator in self._children.values():
            for event in translator.flush():
                self.host.emit_event(ev.nested(event, parent))
        self.host.touch()

    async def drain(self) -> None:
        await self.host.wait_writable()

    def closed(self, error: AgentExitedError) -> None:
        self._mcp_started.set()
        self.violation(error)

    def violation(self, error: AgentError) -> None:
        if self._turn is not None:
            self._turn.failure = error
            self._turn.done.set()

    async def server_request(self, request_id: Any, method: str, params: JsonObj) -> Any:
        translator, parent = self._thread_translator(params)
        approval = approvals.approval_for(method, params, translator, request_id)
        if approval is not None:
            if parent is not None:  # a sub-agent asks: say under which call
                approval.request = replace(approval.request, tool_call=ev.nested(approval.request.tool_call, parent))
            try:
                response = await self.host.request_client("session/request_permission", approval.params)
            except RpcError as exc:
                log.info("%s: permission request failed, refusing: %s", self.agent, exc.message)
                response = None
            return approval.answer(response)
        if method == approvals.ELICITATION:
            ask = approvals.elicitation_for_client(params, self.request.client_capabilities)
            if ask is None:
                log.info("%s: MCP server %r asked for input (%s mode); the client does not advertise that "
                         "elicitation capability: declined", self.agent, params.get("serverName"), params.get("mode"))
                return approvals.refusal(method)
            try:
                return approvals.elicitation_answer(await self.host.request_client("elicitation/create", ask))
            except RpcError:
                return approvals.elicitation_answer(None)
        refusal = approvals.refusal(method)
        if refusal is None:
            raise method_not_found(method)
        return refusal


def _is_compact(prompt: Any) -> bool:
    blocks = prompt if isinstance(prompt, list) else []
    return (len(blocks) == 1 and isinstance(blocks[0], dict) and blocks[0].get("type") == "text"
            and str(blocks[0].get("text") or "").strip() == "/compact")
