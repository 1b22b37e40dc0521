"""A session handle: prompts (send / stream / start), permissions, config options, and the
bridge's per-session extensions (info, metrics, events, shell...).

Handles are made by `BridgeClient` (`create_session`, `session`, `resume_session`,
`load_session`, `fork_session`, `attach`). The client routes every `session/update` and
`session/request_permission` for the session here; the handle keeps the session's live
state (config options, modes, commands, title, usage, plan) current from them."""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bridge.client.channel import Daemon
from bridge.client.errors import NotSupported, TurnFailed
from bridge.client.permissions import (
    InvalidReply,
    PermissionRequest,
    Permissions,
    check_permissions,
    select_for_policy,
)
from bridge.client.results import (
    SendResult,
    ToolCalls,
    ToolCallState,
)
from bridge.client.session_extensions import Extensions
from bridge.client.session_fs import FsRequests
from bridge.client.session_options import ConfigOptions, InvalidValue
from bridge.client.turn import Turn
from bridge.client.updates import (
    AcpModel,
    AgentMessageChunk,
    AgentThoughtChunk,
    AvailableCommand,
    AvailableCommandsUpdate,
    ConfigOption,
    ConfigOptionUpdate,
    CurrentModeUpdate,
    Modes,
    Plan,
    PlanEntry,
    SessionInfoUpdate,
    ToolCall,
    ToolCallUpdate,
    Update,
    UsageUpdate,
    parse_config_options,
    parse_modes,
    parse_update,
)
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

PromptInput = str | Sequence[str | JsonObj | AcpModel | Path]
Callback = Callable[[Any], Any]


def prompt_blocks(input: PromptInput) -> list[JsonObj]:
    """A prompt as ACP content blocks: a string is one text block; a list may mix strings,
    block dicts, typed blocks and `Path`s (sent as `resource_link`s to the file)."""
    if isinstance(input, str):
        return [{"type": "text", "text": input}]
    blocks: list[JsonObj] = []
    for item in input:
        if isinstance(item, str):
            blocks.append({"type": "text", "text": item})
        elif isinstance(item, Path):
            p = item.resolve()
            blocks.append({"type": "resource_link", "uri": p.as_uri(), "name": p.name})
        elif isinstance(item, AcpModel):
            blocks.append(item.to_wire())
        elif isinstance(item, dict):
            blocks.append(item)
        else:
            raise TypeError(f"cannot send {type(item).__name__} in a prompt")
    return blocks


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Session(ConfigOptions, Extensions, FsRequests):
    def __init__(
        self,
        client: Daemon[Session],
        session_id: str,
        *,
        cwd: str | None = None,
        agent: str | None = None,
        permissions: Permissions = None,
    ) -> None:
        self.channel: Daemon[Session] = client
        self.id = session_id
        self.cwd = cwd
        self.agent = agent
        self.agent_session_id: str | None = None
        self.additional_directories: list[str] | None = None
        self.title: str | None = None
        self.permissions: Permissions = permissions
        self.config_options: list[ConfigOption] = []
        self.modes: Modes | None = None
        self.available_commands: list[AvailableCommand] = []
        self.usage: UsageUpdate | None = None
        self.plan: list[PlanEntry] | None = None
        self.history: list[Update] = []
        self.live: bool | None = None
        self.cursor: int | None = None
        self.setup: JsonObj = {}
        self._tools = ToolCalls()
        self.current_turn: Turn | None = None
        self.turn_lock = anyio.Lock()
        self.opened = False
        self.loading = False
        self._subscribers: list[MemoryObjectSendStream[Update]] = []
        self._callbacks: list[Callback] = []

    def __repr__(self) -> str:
        return f"<Session {self.id} agent={self.agent!r} cwd={self.cwd!r}>"

    @property
    def tool_calls(self) -> dict[str, ToolCallState]:
        """Every tool call seen in this session, by id, with its updates applied."""
        return self._tools.by_id

    @property
    def busy(self) -> bool:
        return self.current_turn is not None

    # -- state from the daemon -------------------------------------------------------------------
    def apply_setup(self, result: Any) -> None:
        if not isinstance(result, dict):
            return
        self.setup = result
        if "configOptions" in result:
            self.config_options = parse_config_options(result.get("configOptions"))
        modes = parse_modes(result.get("modes"))
        if modes is not None:
            self.modes = modes
        self.opened = True

    def receive_update(self, params: JsonObj) -> None:
        raw = params.get("update")
        if not isinstance(raw, dict):
            return
        update = parse_update(raw, session_id=self.id, meta=params.get("_meta"))
        self._track(update)
        if update.replayed or self.loading:
            self.history.append(update)
        else:
            turn = self.current_turn
            if turn is not None:
                turn.add(update)
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(update)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(stream)
        for callback in list(self._callbacks):
            self.channel.run_callback(callback, update)

    def _track(self, update: Update) -> None:
        if isinstance(update, ConfigOptionUpdate):
            self.config_options = list(update.config_options)
        elif isinstance(update, CurrentModeUpdate):
            if self.modes is not None:
                self.modes.current_mode_id = update.current_mode_id
        elif isinstance(update, AvailableCommandsUpdate):
            self.available_commands = list(update.available_commands)
        elif isinstance(update, SessionInfoUpdate):
            if "title" in update.raw:
                self.title = update.title
        elif isinstance(update, UsageUpdate):
            self.usage = update
        elif isinstance(update, Plan):
            self.plan = list(update.entries)
        else:
            self._tools.apply(update)

    # -- prompting -----------------------------------------------------------------------------
    def stream(self, input: PromptInput, *, permissions: Permissions = None) -> Turn:
        """Send a prompt; iterate the returned turn for typed updates (and, unless a policy or
        callback answers them, `PermissionRequest`s to reply to). Turns of one session run
        one after another."""
        return self._start_turn(input, permissions, streaming=True)

    def start(self, input: PromptInput, *, permissions: Permissions = None) -> Turn:
        """Send a prompt in the background; `await turn.wait()` for its result."""
        return self._start_turn(input, permissions, streaming=False)

    def _start_turn(self, input: PromptInput, permissions: Permissions, *, streaming: bool) -> Turn:
        check_permissions(permissions)
        turn = Turn(self, prompt_blocks(input), permissions=permissions, streaming=streaming)
        self.channel.start_task(turn.run)
        return turn

    async def send(
        self,
        input: PromptInput,
        *,
        on_text: Callable[[str], Any] | None = None,
        on_thought: Callable[[str], Any] | None = None,
        on_tool_start: Callable[[ToolCall], Any] | None = None,
        on_tool_update: Callable[[ToolCallUpdate], Any] | None = None,
        on_tool_end: Callable[[ToolCallState], Any] | None = None,
        on_plan: Callable[[Plan], Any] | None = None,
        on_update: Callable[[Update], Any] | None = None,
        on_permission: Callable[[PermissionRequest], Any] | None = None,
        permissions: Permissions = None,
    ) -> SendResult:
        """Send a prompt and wait for the turn to end. Callbacks (plain functions or
        coroutines) run in the caller's task as the updates arrive. Permission requests go
        to `on_permission` (returns "once", "always", "reject" or an option id), else to the
        `permissions` policy (this call's, the session's, the client's); if none applies
        they are rejected. Raises `TurnFailed` (with `.partial`) if the turn fails; if the
        caller is cancelled, the turn is cancelled (`session/cancel`) too."""
        turn = self.stream(input, permissions=on_permission if on_permission is not None else permissions)
        try:
            async for event in turn:
                if isinstance(event, PermissionRequest):
                    # Nobody answers it: fail closed.
                    event.decide(select_for_policy(event.options, "reject"), "no-answer")
                    continue
                if on_update is not None:
                    await _maybe_await(on_update(event))
                if isinstance(event, AgentMessageChunk) and on_text is not None:
                    await _maybe_await(on_text(event.text))
                elif isinstance(event, AgentThoughtChunk) and on_thought is not None:
                    await _maybe_await(on_thought(event.text))
                elif isinstance(event, ToolCall) and on_tool_start is not None:
                    await _maybe_await(on_tool_start(event))
                elif isinstance(event, ToolCallUpdate):
                    if on_tool_update is not None:
                        await _maybe_await(on_tool_update(event))
                    state = self._tools.by_id.get(event.tool_call_id)
                    if (
                        on_tool_end is not None
                        and state is not None
                        and event.status in ("completed", "failed")
                    ):
                        await _maybe_await(on_tool_end(state))
                elif isinstance(event, Plan) and on_plan is not None:
                    await _maybe_await(on_plan(event))
        except BaseException:
            if not turn.done.is_set():
                # The caller stopped waiting (cancelled, or a callback raised): stop the turn.
                self.channel.notify("session/cancel", {"sessionId": self.id})
            raise
        errors = self.channel.take_callback_errors(turn)
        if errors:
            raise errors[0]
        return turn.result

    async def run_command(
        self, name: str, args: str | Mapping[str, Any] | Sequence[str] | None = None
    ) -> SendResult:
        """Run one of the agent's slash commands (`/name args`, as ACP has them)."""
        names = [c.name for c in self.available_commands]
        if names and name not in names:
            raise NotSupported(
                f"the agent offers no /{name} command (it offers: {', '.join('/' + n for n in names)})"
            )
        if isinstance(args, Mapping):
            rest = " ".join(f"{k}={v}" for k, v in args.items())
        elif isinstance(args, str) or args is None:
            rest = args or ""
        else:
            rest = " ".join(args)
        return await self.send(f"/{name} {rest}".rstrip())

    async def summarize(self) -> SendResult:
        """Compact the conversation: the agent's `/compact` command, where it has one."""
        if not any(c.name == "compact" for c in self.available_commands):
            raise NotSupported(
                "the agent advertises no /compact command, and ACP v1 has no compaction request"
            )
        return await self.run_command("compact")

    async def revert(self, message_id: str) -> None:
        """Not available: ACP v1 cannot rewind an agent's conversation. `fork()` the session
        (a copy you can continue separately) or start a new one."""
        raise NotSupported(
            f"cannot revert to {message_id!r}: ACP v1 has no way to rewind an agent's conversation; "
            "use fork() to branch the session instead"
        )

    async def cancel(self) -> None:
        """Stop the running turn (`session/cancel`): it ends with stop reason "cancelled".
        Permission requests still waiting are answered "cancelled", as ACP requires."""
        self.channel.notify("session/cancel", {"sessionId": self.id})
        turn = self.current_turn
        if turn is not None:
            for req in list(turn.pending.values()):
                req.cancel("cancel")

    abort = cancel
    interrupt = cancel

    # -- permissions ---------------------------------------------------------------------------
    @property
    def pending_permissions(self) -> list[PermissionRequest]:
        turn = self.current_turn
        return list(turn.pending.values()) if turn is not None else []

    def reply_to_permission(self, request_id: str, reply: str, message: str | None = None) -> None:
        """Answer a pending permission request: "once", "always", "reject" (or an option
        kind or id). `message` travels in the answer's `_meta.bridge.message`."""
        turn = self.current_turn
        req = turn.pending.get(request_id) if turn is not None else None
        if req is None:
            raise InvalidReply(f"no pending permission request {request_id!r} in session {self.id}")
        req.reply(reply, message)

    async def answer_permission(self, params: JsonObj) -> JsonObj:
        req = PermissionRequest(self, params)
        turn = self.current_turn
        policy: Permissions = next(
            (
                p
                for p in (turn.permissions if turn else None, self.permissions, self.channel.permissions)
                if p is not None
            ),
            None,
        )
        try:
            if callable(policy):
                try:
                    answer = await _maybe_await(policy(req))
                except Exception as exc:
                    if turn is not None:
                        self.channel.callback_failed(turn, exc)
                    else:
                        log.exception("permission callback failed")
                    answer = None
                if not req.answered:
                    try:
                        if isinstance(answer, str):
                            req.reply(answer, decided_by="callback")
                    except InvalidReply as exc:
                        log.warning("permission callback: %s; rejecting", exc)
                    req.decide(select_for_policy(req.options, "reject"), "callback")
            elif policy in ("allow_once", "allow_always", "reject"):
                req.decide(select_for_policy(req.options, policy), f"policy:{policy}")
            elif turn is None or not turn.offer(req):
                req.decide(select_for_policy(req.options, "reject"), "no-answer")
            outcome = await req.wait()
        finally:
            if turn is not None and req.answered:
                turn.decided(req)
            elif turn is not None:
                turn.pending.pop(req.id, None)
        answer_msg: JsonObj = {"outcome": outcome}
        if req.message:
            answer_msg["_meta"] = {"bridge": {"message": req.message}}
        return answer_msg

    # -- lifecycle ---------------------------------------------------------------------------------
    async def fork(self, *, cwd: str | None = None, mcp_servers: Sequence[Any] | None = None) -> Session:
        """A new session seeded with this one's conversation (`session/fork`)."""
        return await self.channel.fork_session(self.id, cwd=cwd, mcp_servers=mcp_servers)

    async def close(self) -> None:
        """Stop the session's agent (`session/close`); it stays listed and can be resumed."""
        await self.channel.close_session(self.id)

    async def end(self, *, delete: bool = False) -> None:
        """Close the session; with `delete=True` also remove it from the list."""
        await self.close()
        if delete:
            await self.delete()

    async def delete(self) -> None:
        """Remove the session (`session/delete`; stops it if live)."""
        await self.channel.delete_session(self.id)

    async def take_over(self) -> str:
        """Become the driver of a session another connection runs (`_bridge/session/takeover`):
        until then a follower may read it but not prompt, cancel, configure or close it.
        Returns who had it: `connected` (a client still connected, told and logged), `gone`,
        `none` or `self`."""
        result = await self.channel.request("_bridge/session/takeover", {"sessionId": self.id})
        return str(result.get("previousOwner")) if isinstance(result, dict) else "none"

    async def share(self, shared: bool = True) -> None:
        """Owner only: also ask this session's permission requests of the clients attached
        as controllers (`_bridge/session/share`); the first valid answer wins."""
        await self.channel.request("_bridge/session/share", {"sessionId": self.id, "shared": shared})

    async def detach(self) -> None:
        """Stop following the session (`session/detach`); its owner detaching lets go of it."""
        await self.channel.request("session/detach", {"sessionId": self.id})

    async def ensure_open(self) -> None:
        if not self.opened:
            await self.channel.reopen(self, "resume")

    # -- subscriptions ------------------------------------------------------------------------------
    def on_event(self, callback: Callable[[Update], Any]) -> Callable[[], None]:
        """Call `callback(update)` for every update of this session (live and replayed),
        from the client's receive loop: keep it quick (a coroutine it returns runs as a
        task). Returns a function that unsubscribes."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    @contextlib.asynccontextmanager
    async def updates(self) -> AsyncIterator[MemoryObjectReceiveStream[Update]]:
        """`async with session.updates() as updates: async for u in updates: ...` — every
        update of the session from now on, across turns. The iteration ends if the
        connection to the daemon is lost (`client.closed`)."""
        send, recv = anyio.create_memory_object_stream[Update](math.inf)
        self._subscribers.append(send)
        try:
            yield recv
        finally:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(send)
            send.close()
            recv.close()

    def connection_lost(self) -> None:
        # Subscriptions end: `async for u in updates` stops; `client.closed` says why.
        for stream in self._subscribers:
            stream.close()
        self._subscribers.clear()


__all__ = ["InvalidValue", "PromptInput", "Session", "TurnFailed", "prompt_blocks"]
