"""A session handle: prompts (send / stream / start), permissions, config options, and the
bridge's per-session extensions (info, metrics, events, shell...).

Handles are made by `BridgeClient` (`create_session`, `session`, `resume_session`,
`load_session`, `fork_session`, `attach`). The client routes every `session/update` and
`session/request_permission` for the session here; the handle keeps the session's live
state (config options, modes, commands, title, usage, plan) current from them."""

from __future__ import annotations

import base64
import contextlib
import inspect
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bridge.client import history
from bridge.client.channel import Daemon
from bridge.client.errors import ClientError, NotSupported, TurnFailed
from bridge.client.permissions import (
    POLICIES,
    InvalidReply,
    PermissionRequest,
    Permissions,
    select_for_policy,
)
from bridge.client.results import (
    Artifact,
    Event,
    EventPage,
    Message,
    Metrics,
    SendResult,
    SessionInfo,
    ShellResult,
    ToolCalls,
    ToolCallState,
)
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
from bridge.errors import INVALID_PARAMS, RESOURCE_NOT_FOUND, RpcError
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

PromptInput = str | Sequence[str | JsonObj | AcpModel | Path]
Callback = Callable[[Any], Any]


class InvalidValue(ClientError, ValueError):
    """A config value the option does not offer."""


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


class Session:
    def __init__(
        self,
        client: Daemon[Session],
        session_id: str,
        *,
        cwd: str | None = None,
        agent: str | None = None,
        permissions: Permissions = None,
    ) -> None:
        self.channel = client
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

    # -- config options --------------------------------------------------------------------------
    async def get_config_options(self) -> list[ConfigOption]:
        await self.ensure_open()
        return list(self.config_options)

    async def get_modes(self) -> Modes | None:
        await self.ensure_open()
        return self.modes

    def config_option(self, category_or_id: str) -> ConfigOption | None:
        """The option with this id, else the first with this category."""
        for opt in self.config_options:
            if opt.id == category_or_id:
                return opt
        return next((o for o in self.config_options if o.category == category_or_id), None)

    async def set_config_option(self, option_id: str, value: str | bool) -> list[ConfigOption]:
        """Set any config option by id (`session/set_config_option`); the value may be given
        as a choice's value or its name. Returns the complete, updated list."""
        await self.ensure_open()
        opt = next((o for o in self.config_options if o.id == option_id), None)
        params: JsonObj = {"sessionId": self.id, "configId": option_id}
        if isinstance(value, bool):
            params.update(type="boolean", value=value)
        else:
            params["value"] = _match_value(opt, value) if opt is not None else value
        result = await self.channel.request("session/set_config_option", params)
        if isinstance(result, dict) and "configOptions" in result:
            self.config_options = parse_config_options(result["configOptions"])
        return list(self.config_options)

    async def _set_category(self, category: str, value: str) -> None:
        await self.ensure_open()
        opt = next((o for o in self.config_options if o.category == category), None)
        if opt is None:
            offered = sorted({o.category or o.id for o in self.config_options})
            raise NotSupported(
                f"the agent offers no {category} option"
                + (f" (its options: {', '.join(offered)})" if offered else " (it reports no config options)")
            )
        await self.set_config_option(opt.id, value)

    async def set_model(self, model: str) -> None:
        await self._set_category("model", model)

    async def set_thought_level(self, level: str) -> None:
        await self._set_category("thought_level", level)

    async def set_mode(self, mode: str) -> None:
        """The "mode" config option; `session/set_mode` for agents that only have modes."""
        await self.ensure_open()
        if any(o.category == "mode" for o in self.config_options) or self.modes is None:
            await self._set_category("mode", mode)
            return
        ids = {m.id: m.id for m in self.modes.available_modes}
        ids.update({m.name.lower(): m.id for m in self.modes.available_modes})
        mode_id = ids.get(mode) or ids.get(mode.lower())
        if mode_id is None:
            raise InvalidValue(
                f"no mode {mode!r}; modes: {', '.join(m.id for m in self.modes.available_modes)}"
            )
        await self.channel.request("session/set_mode", {"sessionId": self.id, "modeId": mode_id})
        self.modes.current_mode_id = mode_id

    async def configure(
        self,
        *,
        model: str | None = None,
        mode: str | None = None,
        thought_level: str | None = None,
        options: Mapping[str, str | bool] | None = None,
    ) -> None:
        """Set several at once (each a separate request, in this order)."""
        if mode is not None:
            await self.set_mode(mode)
        if model is not None:
            await self.set_model(model)
        if thought_level is not None:
            await self.set_thought_level(thought_level)
        for option_id, value in (options or {}).items():
            await self.set_config_option(option_id, value)

    # -- bridge extensions ------------------------------------------------------------------------
    async def info(self) -> SessionInfo:
        """`_bridge/session/info`: agent, cwd, title, status, times, parent, archived."""
        info = await self.channel.get_info(self.id)
        self.agent = info.agent
        self.cwd = self.cwd or info.cwd
        self.agent_session_id = info.agent_session_id or self.agent_session_id
        self.title = info.title
        return info

    async def metrics(self) -> Metrics:
        return Metrics.model_validate(
            await self.channel.request("_bridge/session/metrics", {"sessionId": self.id})
        )

    async def update(self, *, title: str | None = None, archived: bool | None = None) -> None:
        """Set the title and/or the archived flag (`_bridge/session/update`)."""
        params: JsonObj = {"sessionId": self.id}
        if title is not None:
            params["title"] = title
        if archived is not None:
            params["archived"] = archived
        await self.channel.request("_bridge/session/update", params)
        if title is not None:
            self.title = title

    async def archive(self, archived: bool = True) -> None:
        await self.update(archived=archived)

    # `timeout` is the daemon's limit for the command, not a wait of ours.
    async def shell(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        cwd: str | None = None,
    ) -> ShellResult:
        """Run `command` with /bin/sh in the session's cwd on the daemon's host; no model
        involved. `timeout` in seconds (the daemon's default is 60). Off unless the daemon's
        config sets `allow_shell = true` (else `MethodNotFound` saying so)."""
        params: JsonObj = {"sessionId": self.id, "command": command}
        if timeout is not None:
            params["timeoutMs"] = max(1, int(timeout * 1000))
        if cwd is not None:
            params["cwd"] = cwd
        r = await self.channel.request("_bridge/session/shell", params)
        return ShellResult(
            stdout=r["stdout"], stderr=r["stderr"], exit_code=r["exitCode"], truncated=bool(r.get("truncated"))
        )

    async def read_bytes(self, path: str) -> bytes:
        """A file of the session's workspace (its cwd and additional directories; relative
        paths from the cwd), up to 4 MiB, read with `_bridge/session/read_file`."""
        r = await self.channel.request(
            "_bridge/session/read_file", {"sessionId": self.id, "path": path, "encoding": "base64"}
        )
        if r["truncated"]:
            raise NotSupported(f"{path} is larger than {history.READ_LIMIT} bytes ({r['size']} bytes)")
        return base64.b64decode(r["content"])

    async def read_file(self, path: str) -> str:
        """`read_bytes()` decoded as UTF-8."""
        return (await self.read_bytes(path)).decode("utf-8")

    async def events(self, *, after: int = 0, limit: int = 100) -> EventPage:
        return await self.channel.get_events(self.id, after=after, limit=limit)

    def iter_events(self, *, after: int = 0) -> AsyncIterator[Event]:
        return self.channel.iter_events(self.id, after=after)

    async def messages(self) -> list[Message]:
        """The conversation rebuilt from the durable log: user prompts and agent answers."""
        return await history.messages(self.iter_events())

    async def todos(self) -> list[PlanEntry]:
        """The agent's latest plan (empty if it never sent one)."""
        return await history.latest_plan(self.iter_events())

    async def artifacts(self) -> list[Artifact]:
        """Resources the agent produced in this session (`resource_link` / `resource`)."""
        return await history.artifacts(self.iter_events())

    async def get_artifact_bytes(self, key: str) -> bytes:
        found = {a.key: a for a in await self.artifacts()}
        art = found.get(key) or next((a for a in found.values() if a.uri == key), None)
        if art is None:
            raise NotSupported(
                f"no artifact {key!r} in session {self.id} (artifacts: {', '.join(found) or 'none'})"
            )
        if art.text is not None:
            return art.text.encode()
        if art.blob is not None:
            return base64.b64decode(art.blob)
        path = history.file_uri_path(art.uri)
        if path is None:
            raise NotSupported(f"artifact {key!r} is at {art.uri}, which the bridge cannot fetch")
        return await self.read_bytes(path)

    async def get_artifact(self, key: str) -> str:
        return (await self.get_artifact_bytes(key)).decode("utf-8")

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

    # -- fs requests (when the client was created with fs=True) -----------------------------------------
    def _roots(self) -> list[str]:
        return [os.path.realpath(r) for r in [self.cwd or "", *(self.additional_directories or [])] if r]

    def _inside(self, path: Any) -> str:
        if not isinstance(path, str) or not os.path.isabs(path):
            raise RpcError(
                INVALID_PARAMS, "invalid params: path: must be an absolute path", {"field": "path"}
            )
        real = os.path.realpath(path)
        if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in self._roots()):
            raise RpcError(INVALID_PARAMS, f"{path} is outside the session's directories", {"field": "path"})
        return real

    async def answer_fs(self, method: str, params: JsonObj) -> JsonObj:
        path = anyio.Path(self._inside(params.get("path")))
        if method == "fs/read_text_file":
            try:
                text = await path.read_text()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise RpcError(RESOURCE_NOT_FOUND, f"no such file: {params['path']}") from None
            line, limit = params.get("line"), params.get("limit")
            if isinstance(line, int) or isinstance(limit, int):
                lines = text.splitlines(keepends=True)
                start = max(0, (line if isinstance(line, int) else 1) - 1)
                end = start + limit if isinstance(limit, int) else None
                text = "".join(lines[start:end])
            return {"content": text}
        content = params.get("content")
        if not isinstance(content, str):
            raise RpcError(INVALID_PARAMS, "invalid params: content: must be a string", {"field": "content"})
        await path.parent.mkdir(parents=True, exist_ok=True)
        await path.write_text(content)
        return {}


def _match_value(opt: ConfigOption, value: str) -> str:
    choices = opt.choices()
    if not choices or any(c.value == value for c in choices):
        return value
    lowered = value.lower()
    for c in choices:
        if c.value.lower() == lowered or c.name.lower() == lowered:
            return c.value
    raise InvalidValue(
        f"{opt.name} ({opt.id}) has no value {value!r}; choices: {', '.join(c.value for c in choices)}"
    )


def check_permissions(permissions: Permissions) -> None:
    if permissions is not None and not callable(permissions) and permissions not in POLICIES:
        raise ValueError(
            f"permissions must be a callback or one of {', '.join(POLICIES)}, not {permissions!r}"
        )


__all__ = ["InvalidValue", "PromptInput", "Session", "TurnFailed", "prompt_blocks"]
