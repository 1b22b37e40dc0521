"""`BridgeClient`: one connection to an agent-bridge daemon, spawned over stdio or reached
over WebSocket, speaking ACP v1 through the same `Endpoint` the daemon uses (correlation of
our requests, dispatch of the daemon's requests and notifications).

    async with BridgeClient.spawn(agent="claude") as client:
        session = await client.create_session(cwd=".")
        print((await session.send("What does this repository do?")).text)

Everything runs in the task group the `async with` opens: the receive loop, the writer, and
every turn. Leaving the block closes the connection (a spawned daemon then stops its agents
and exits).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup

from bridge import __version__
from bridge.client.errors import ClientError, ConnectionLost, from_rpc
from bridge.client.permissions import Permissions
from bridge.client.results import AgentInfo, Event, EventPage, SessionInfo, SessionSummary
from bridge.client.session import Session, _check_permissions
from bridge.client.transport import (
    Link,
    StderrSink,
    daemon_argv,
    daemon_env,
    resolve_token,
    spawn_link,
    websocket_link,
)
from bridge.client.turn import Turn
from bridge.client.updates import JsonObj
from bridge.errors import METHOD_NOT_FOUND, RpcError
from bridge.rpc.endpoint import ConnectionClosed, Endpoint
from bridge.rpc.outbox import Outbox
from bridge.wire import jsonrpc
from bridge.wire.framing import Oversize

log = logging.getLogger(__name__)

# Updates for a session id the client has no handle for yet (they can arrive just before
# the `session/new` answer that names it) are kept briefly, boundedly.
ORPHAN_SESSIONS = 16
ORPHAN_UPDATES = 1000

MessageTap = Callable[[str, JsonObj], None]


@dataclass
class McpServer:
    """An MCP server for the agent: stdio (`command`, `args`, `env`) or, with `url`, HTTP
    (`transport="sse"` for the deprecated SSE kind). Plain ACP dicts are accepted too."""

    name: str
    command: str | None = None
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    transport: str = "http"

    def to_wire(self) -> JsonObj:
        if self.url is not None:
            headers = [{"name": k, "value": v} for k, v in (self.headers or {}).items()]
            return {"type": self.transport, "name": self.name, "url": self.url, "headers": headers}
        if self.command is None:
            raise ValueError(f"MCP server {self.name!r} needs a command or a url")
        env = [{"name": k, "value": v} for k, v in (self.env or {}).items()]
        return {"name": self.name, "command": self.command, "args": list(self.args), "env": env}


def _absolute(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


def _mcp_wire(servers: Sequence[McpServer | JsonObj] | None) -> list[JsonObj]:
    return [s.to_wire() if isinstance(s, McpServer) else dict(s) for s in servers or ()]


class BridgeClient:
    """Use `BridgeClient.spawn(...)` or `BridgeClient.connect(...)` with `async with`."""

    def __init__(
        self,
        link: Link,
        tg: TaskGroup,
        *,
        permissions: Permissions = None,
        fs: bool = False,
        client_name: str = "agent-bridge-client",
        on_message: MessageTap | None = None,
    ) -> None:
        _check_permissions(permissions)
        self.permissions: Permissions = permissions
        self.fs = fs
        self.link = link
        self._tg = tg
        self._client_name = client_name
        self._tap = on_message
        self._outbox = Outbox(self._write)
        self._endpoint = Endpoint("daemon", self._outbox, self._on_request, self._on_notification)
        self._sessions: dict[str, Session] = {}
        self._orphans: dict[str, list[JsonObj]] = {}
        self._lost: ConnectionLost | None = None
        self._lost_ready = anyio.Event()
        self._write_failed = False
        self._outbox_done = anyio.Event()
        self._callback_errors: dict[int, list[BaseException]] = {}
        self.daemon: JsonObj = {}

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def spawn(
        cls,
        *,
        agent: str | None = None,
        config: str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        command: Sequence[str] | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_level: str | None = None,
        stderr: StderrSink = None,
        permissions: Permissions = None,
        fs: bool = False,
        shutdown_timeout: float = 30.0,
        on_message: MessageTap | None = None,
    ) -> AbstractAsyncContextManager[BridgeClient]:
        """Start `agent-bridge` as a child process and talk ACP over its stdio.

        `agent` is the default agent for new sessions; `config` a TOML config file (default:
        `$AGENT_BRIDGE_CONFIG` if set); `state_dir` the daemon's state directory (default:
        its own, `$AGENT_BRIDGE_STATE_DIR` or `~/.local/state/agent-bridge`). `command`
        replaces the daemon's command (default: this Python running `-m bridge`). The
        daemon's stderr is kept (its tail explains a crash) and copied to `stderr` (a
        binary file or a callable) if given. `permissions` is the default answer to
        permission requests: "allow_once", "allow_always", "reject", "ask" or a callback.
        With `fs=True` the client serves the agent's `fs/*` requests from local files under
        each session's directories."""
        config = config if config is not None else os.environ.get("AGENT_BRIDGE_CONFIG") or None
        argv = daemon_argv(
            command, agent=agent, config=config, state_dir=state_dir, log_level=log_level, extra=args
        )
        link = spawn_link(
            argv,
            env=daemon_env(env, own_package=command is None),
            stderr=stderr,
            shutdown_timeout=shutdown_timeout,
        )
        return _running(cls, link, permissions=permissions, fs=fs, on_message=on_message)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        state_dir: str | None = None,
        origin: str | None = None,
        permissions: Permissions = None,
        fs: bool = False,
        on_message: MessageTap | None = None,
    ) -> AbstractAsyncContextManager[BridgeClient]:
        """Connect to a daemon serving WebSocket (`agent-bridge serve --listen ...`) at
        `url` (`ws://127.0.0.1:PORT/acp`), sending `Authorization: Bearer <token>`. Without
        `token`, it is read from `token_file`, else from the daemon's `<state_dir>/ws-token`."""

        @contextlib.asynccontextmanager
        async def link() -> AsyncIterator[Link]:
            value = resolve_token(token, token_file, state_dir)
            async with websocket_link(url, token=value, origin=origin) as opened:
                yield opened

        return _running(cls, link(), permissions=permissions, fs=fs, on_message=on_message)

    @classmethod
    def open(
        cls,
        link: AbstractAsyncContextManager[Link],
        *,
        permissions: Permissions = None,
        fs: bool = False,
        on_message: MessageTap | None = None,
    ) -> AbstractAsyncContextManager[BridgeClient]:
        """Over a transport of your own: `link` is an async context manager giving a `Link`
        (see `bridge.client.transport`)."""
        return _running(cls, link, permissions=permissions, fs=fs, on_message=on_message)

    async def _start(self) -> None:
        await self._tg.start(self._run_outbox)
        await self._tg.start(self._receive)
        self.daemon = await self.request(
            "initialize",
            {
                "protocolVersion": 1,
                "clientCapabilities": {
                    "fs": {"readTextFile": self.fs, "writeTextFile": self.fs},
                    "terminal": False,
                    "session": {"configOptions": {"boolean": {}}},
                },
                "clientInfo": {
                    "name": self._client_name,
                    "title": "agent-bridge client",
                    "version": __version__,
                },
            },
        )

    async def _run_outbox(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await self._outbox.run(task_status=task_status)
        finally:
            self._outbox_done.set()

    async def _receive(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self._endpoint.run(self._incoming(), task_status=task_status)
        self._lost = await self.link.loss()
        self._lost_ready.set()
        for session in self._sessions.values():
            session._opened = False
            session._connection_lost()

    async def _incoming(self) -> AsyncIterator[list[bytes | Oversize]]:
        async for batch in self.link.incoming:
            if self._tap is not None:
                for item in batch:
                    if isinstance(item, bytes):
                        with contextlib.suppress(orjson.JSONDecodeError):
                            self._tap("recv", orjson.loads(item))
            yield batch

    async def _write(self, frames: list[bytes]) -> None:
        if self._write_failed:
            return
        if self._tap is not None:
            for frame in frames:
                self._tap("send", orjson.loads(frame))
        try:
            await self.link.write(frames)
        except anyio.BrokenResourceError:
            # The daemon is gone; the receive loop ends too and says why.
            self._write_failed = True

    async def _close(self) -> None:
        """Flush what is queued (a last `session/cancel`...) before the link closes."""
        self._outbox.close()
        with anyio.move_on_after(5):
            await self._outbox_done.wait()

    # -- plumbing used by sessions ----------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """The daemon went away (requests raise `ConnectionLost`)."""
        return self._lost is not None

    @property
    def daemon_pid(self) -> int | None:
        """The process id of a spawned daemon (None over WebSocket)."""
        return self.link.pid

    async def request(self, method: str, params: Any = None) -> Any:
        """Send any request (ACP or `_bridge/*`) and return its result; raises
        `RequestError` (by code: `SessionNotFound`, `InvalidParams`...) or `ConnectionLost`."""
        if self._lost is not None:
            raise self._lost
        try:
            return await self._endpoint.request(method, params if params is not None else {})
        except ConnectionClosed:
            raise await self._loss() from None
        except RpcError as exc:
            raise from_rpc(method, exc) from None

    def _notify(self, method: str, params: Any) -> None:
        if self._lost is None:
            self._endpoint.notify(method, params)

    async def _loss(self) -> ConnectionLost:
        with anyio.move_on_after(10):
            await self._lost_ready.wait()
        return self._lost or ConnectionLost("the connection to the daemon closed")

    def _spawn(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self._tg.start_soon(fn)

    def _run_callback(self, callback: Callable[[Any], Any], update: Any) -> None:
        try:
            result = callback(update)
        except Exception:
            log.exception("on_event callback %r failed", callback)
            return
        if inspect.iscoroutine(result):
            self._tg.start_soon(_log_failures, result)

    def _callback_failed(self, turn: Turn, exc: BaseException) -> None:
        self._callback_errors.setdefault(id(turn), []).append(exc)

    def _take_callback_errors(self, turn: Turn) -> list[BaseException]:
        return self._callback_errors.pop(id(turn), [])

    # -- the daemon's messages ---------------------------------------------------------------------
    async def _on_notification(self, note: jsonrpc.Notification) -> None:
        if note.method != "session/update" or not isinstance(note.params, dict):
            return
        sid = note.params.get("sessionId")
        if not isinstance(sid, str):
            return
        session = self._sessions.get(sid)
        if session is not None:
            session._receive_update(note.params)
            return
        if sid not in self._orphans and len(self._orphans) >= ORPHAN_SESSIONS:
            self._orphans.pop(next(iter(self._orphans)))
        kept = self._orphans.setdefault(sid, [])
        if len(kept) < ORPHAN_UPDATES:
            kept.append(note.params)

    async def _on_request(self, req: jsonrpc.Request) -> Any:
        params = req.params if isinstance(req.params, dict) else {}
        session = self._sessions.get(params.get("sessionId"))  # type: ignore[arg-type]
        if req.method == "session/request_permission":
            if session is None:
                return {"outcome": {"outcome": "cancelled"}}
            return await session._permission(params)
        if req.method in ("fs/read_text_file", "fs/write_text_file") and self.fs and session is not None:
            return await session._fs(req.method, params)
        raise RpcError(METHOD_NOT_FOUND, f"the client does not handle {req.method}", {"method": req.method})

    # -- session handles --------------------------------------------------------------------------
    def _handle(self, session_id: str, **kw: Any) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = Session(self, session_id, **kw)
            for params in self._orphans.pop(session_id, []):
                session._receive_update(params)
        else:
            for key, value in kw.items():
                if value is not None:
                    setattr(session, key, value)
        return session

    def session(self, session_id: str, *, permissions: Permissions = None) -> Session:
        """A handle on an existing session, without a round trip. The first prompt (or
        config change) resumes it in the daemon if this connection has not opened it."""
        return self._handle(session_id, permissions=permissions)

    async def create_session(
        self,
        *,
        agent: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        model: str | None = None,
        mode: str | None = None,
        thought_level: str | None = None,
        config: Mapping[str, str | bool] | None = None,
        title: str | None = None,
        additional_directories: Sequence[str] | None = None,
        permissions: Permissions = None,
        meta: JsonObj | None = None,
    ) -> Session:
        """`session/new` with `agent` (default: the daemon's default agent) in `cwd`
        (default: the current directory), then model / mode / thought level / other config
        options and the title. If any of those fails the new session is closed again."""
        _check_permissions(permissions)
        cwd_abs = _absolute(cwd if cwd is not None else ".")
        params: JsonObj = {"cwd": cwd_abs, "mcpServers": _mcp_wire(mcp_servers)}
        if additional_directories:
            params["additionalDirectories"] = [_absolute(d) for d in additional_directories]
        meta = dict(meta or {})
        if agent is not None:
            meta["bridge"] = {**(meta.get("bridge") or {}), "agent": agent}
        if meta:
            params["_meta"] = meta
        result = await self.request("session/new", params)
        session = self._handle(str(result["sessionId"]), cwd=cwd_abs, agent=agent, permissions=permissions)
        session.additional_directories = params.get("additionalDirectories")
        session._apply_setup(result)
        try:
            await session.configure(model=model, mode=mode, thought_level=thought_level, options=config)
            if title is not None:
                await session.update(title=title)
            await session.info()
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(ClientError):
                await self.close_session(session.id)
            raise
        return session

    async def _reopen(
        self,
        session: Session,
        mode: str,
        *,
        cwd: str | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        additional_directories: Sequence[str] | None = None,
        continue_lost: bool = False,
    ) -> JsonObj:
        if cwd is None:
            cwd = session.cwd or (await self.get_info(session.id)).cwd
        params: JsonObj = {"sessionId": session.id, "cwd": cwd, "mcpServers": _mcp_wire(mcp_servers)}
        if continue_lost:
            params["_meta"] = {"bridge": {"continue": True}}
        if additional_directories is not None:
            params["additionalDirectories"] = list(additional_directories)
        session.cwd = cwd
        session._loading = mode == "load"
        if mode == "load":
            session.history = []
        try:
            result = await self.request(f"session/{mode}", params)
        finally:
            session._loading = False
        session._apply_setup(result)
        return result if isinstance(result, dict) else {}

    async def resume_session(
        self,
        session_id: str,
        *,
        cwd: str | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        permissions: Permissions = None,
        continue_lost: bool = False,
    ) -> Session:
        """Continue a stored session without replaying it (`session/resume`), through the
        agent's own resume. `cwd` defaults to the session's. `continue_lost`: when the agent
        no longer has the session, continue in a new agent session seeded with the bridge's
        transcript (`session.setup["_meta"]["bridge"]["continued"]` says so) instead of failing."""
        session = self._handle(session_id, permissions=permissions)
        await self._reopen(session, "resume", cwd=cwd, mcp_servers=mcp_servers, continue_lost=continue_lost)
        await session.info()
        return session

    async def load_session(
        self,
        session_id: str,
        *,
        cwd: str | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        permissions: Permissions = None,
        continue_lost: bool = False,
    ) -> Session:
        """Open a stored session and replay its history (`session/load`): the replayed
        updates are in `session.history`. `continue_lost` as for `resume_session`."""
        session = self._handle(session_id, permissions=permissions)
        await self._reopen(session, "load", cwd=cwd, mcp_servers=mcp_servers, continue_lost=continue_lost)
        await session.info()
        return session

    async def fork_session(
        self,
        session_id: str,
        *,
        cwd: str | None = None,
        mcp_servers: Sequence[McpServer | JsonObj] | None = None,
        permissions: Permissions = None,
    ) -> Session:
        """A new session carrying on from `session_id`'s conversation (`session/fork`)."""
        if cwd is None:
            parent = self._sessions.get(session_id)
            cwd = (parent.cwd if parent is not None else None) or (await self.get_info(session_id)).cwd
        params = {"sessionId": session_id, "cwd": cwd, "mcpServers": _mcp_wire(mcp_servers)}
        result = await self.request("session/fork", params)
        session = self._handle(str(result["sessionId"]), cwd=cwd, permissions=permissions)
        session._apply_setup(result)
        await session.info()
        return session

    async def attach(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_event: Callable[[Any], Any] | None = None,
        role: str = "observer",
        history_policy: str = "full",
    ) -> Session:
        """Follow a session another client runs (`session/attach`): its history after
        `after` is replayed (into `session.history`, and to `on_event`), then its live
        updates arrive here too. `session.live` says whether it is running in the daemon.
        `role="controller"` is asked its permission requests while the owner shares it;
        `history_policy` is `full`, `pending_only` or `none` (spec/multi-client.md). Acting
        on it (prompt, config, close) takes `session.take_over()` first."""
        session = self._handle(session_id)
        if on_event is not None:
            session.on_event(on_event)
        params = {"sessionId": session_id, "after": after, "role": role, "historyPolicy": history_policy}
        result = await self.request("session/attach", params)
        session.live = bool(result.get("live"))
        session.cursor = result.get("cursor")
        await session.info()
        return session

    @contextlib.asynccontextmanager
    async def follow(self, session_id: str, *, after: int = 0) -> AsyncIterator[AsyncIterator[Any]]:
        """`async with client.follow(id) as updates: async for u in updates` — the session's
        history after `after`, then its live updates, as one stream."""
        session = self._handle(session_id)
        async with session.updates() as updates:
            await self.attach(session_id, after=after)
            yield updates

    # -- catalog -----------------------------------------------------------------------------------
    async def list_sessions(
        self, *, cwd: str | None = None, limit: int | None = None, include_archived: bool = True
    ) -> list[SessionSummary]:
        """Sessions the daemon knows (`session/list`, all pages), most recent first."""
        out: list[SessionSummary] = []
        cursor: str | None = None
        while True:
            params: JsonObj = {}
            if cwd is not None:
                params["cwd"] = _absolute(cwd)
            if cursor is not None:
                params["cursor"] = cursor
            page = await self.request("session/list", params)
            for raw in page.get("sessions") or []:
                summary = SessionSummary.from_wire(raw)
                if include_archived or not summary.archived:
                    out.append(summary)
                    if limit is not None and len(out) >= limit:
                        return out
            cursor = page.get("nextCursor")
            if not cursor:
                return out

    async def get_info(self, session_id: str) -> SessionInfo:
        return SessionInfo.model_validate(
            await self.request("_bridge/session/info", {"sessionId": session_id})
        )

    async def get_events(self, session_id: str, *, after: int = 0, limit: int = 100) -> EventPage:
        """One page of the session's durable log (`_bridge/session/events`)."""
        result = await self.request(
            "_bridge/session/events", {"sessionId": session_id, "after": after, "limit": limit}
        )
        return EventPage.model_validate(result)

    async def iter_events(
        self, session_id: str, *, after: int = 0, page_size: int = 1000
    ) -> AsyncIterator[Event]:
        """Every logged event after `after`, page by page."""
        while True:
            page = await self.get_events(session_id, after=after, limit=page_size)
            for event in page.events:
                yield event
            if page.next is None:
                return
            after = page.next

    async def close_session(self, session_id: str) -> None:
        await self.request("session/close", {"sessionId": session_id})
        session = self._sessions.get(session_id)
        if session is not None:
            session._opened = False

    async def delete_session(self, session_id: str) -> None:
        await self.request("session/delete", {"sessionId": session_id})
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session._opened = False

    async def agents(self) -> list[AgentInfo]:
        """The daemon's agent table (`_bridge/agents`)."""
        result = await self.request("_bridge/agents", {})
        return [AgentInfo.model_validate(a) for a in result.get("agents") or []]

    async def authenticate(self, method_id: str, *, agent: str | None = None) -> JsonObj:
        params: JsonObj = {"methodId": method_id}
        if agent is not None:
            params["_meta"] = {"bridge": {"agent": agent}}
        result: JsonObj = await self.request("authenticate", params)
        return result

    async def logout(self) -> None:
        await self.request("logout", {})


async def _log_failures(coro: Awaitable[Any]) -> None:
    try:
        await coro
    except Exception:
        log.exception("on_event callback failed")


@contextlib.asynccontextmanager
async def _running(
    cls: type[BridgeClient],
    link_cm: AbstractAsyncContextManager[Link],
    **options: Any,
) -> AsyncIterator[BridgeClient]:
    # An error raised in the `async with` body is re-raised as itself, not wrapped in the
    # ExceptionGroup of the client's task group.
    start_error: Exception | None = None
    body_error: Exception | None = None
    async with link_cm as link, anyio.create_task_group() as tg:
        client = cls(link, tg, **options)
        try:
            await client._start()
        except Exception as exc:
            start_error = exc
            tg.cancel_scope.cancel()
        else:
            try:
                yield client
            except Exception as exc:
                body_error = exc
            finally:
                with anyio.CancelScope(shield=True):
                    await client._close()
                tg.cancel_scope.cancel()
    if start_error is not None:
        raise start_error
    if body_error is not None:
        raise body_error
