"""`BridgeClient`: one connection to an agent-bridge daemon, spawned over stdio or reached
over WebSocket, speaking ACP v1 through the same `Endpoint` the daemon uses (correlation of
our requests, dispatch of the daemon's requests and notifications).

    async with BridgeClient.spawn(agent="claude") as client:
        session = await client.create_session(cwd=".")
        answer = (await session.send("What does this repository do?")).text

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
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup

from bridge import __version__, timeouts
from bridge.client.catalog import Catalog
from bridge.client.errors import ConnectionLost, from_rpc
from bridge.client.handles import Handles
from bridge.client.permissions import Permissions, check_permissions
from bridge.client.results import Event, EventPage, SessionInfo
from bridge.client.session import Session
from bridge.client.transport import (
    Link,
    StderrSink,
    daemon_argv,
    daemon_env,
    resolve_token,
    spawn_link,
    websocket_link,
)
from bridge.errors import METHOD_NOT_FOUND, RpcError
from bridge.rpc.endpoint import ConnectionClosed, Endpoint
from bridge.rpc.outbox import Outbox
from bridge.wire import jsonrpc
from bridge.wire.framing import Oversize
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

# Updates for a session id the client has no handle for yet (they can arrive just before
# the `session/new` answer that names it) are kept briefly, boundedly.
ORPHAN_SESSIONS = 16
ORPHAN_UPDATES = 1000

MessageTap = Callable[[str, JsonObj], None]


class BridgeClient(Handles, Catalog):
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
        check_permissions(permissions)
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
        self._channel = SessionChannel(self)

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
        shutdown_timeout: float = timeouts.CLIENT_SHUTDOWN_TIMEOUT,
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
            session.opened = False
            session.connection_lost()

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

    def _run_callback(self, callback: Callable[[Any], Any], update: Any) -> None:
        try:
            result = callback(update)
        except Exception:
            log.exception("on_event callback %r failed", callback)
            return
        if inspect.iscoroutine(result):
            self._tg.start_soon(_log_failures, result)

    # -- the daemon's messages ---------------------------------------------------------------------
    async def _on_notification(self, note: jsonrpc.Notification) -> None:
        if note.method != "session/update" or not isinstance(note.params, dict):
            return
        sid = note.params.get("sessionId")
        if not isinstance(sid, str):
            return
        session = self._sessions.get(sid)
        if session is not None:
            session.receive_update(note.params)
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
            return await session.answer_permission(params)
        if req.method in ("fs/read_text_file", "fs/write_text_file") and self.fs and session is not None:
            return await session.answer_fs(req.method, params)
        raise RpcError(METHOD_NOT_FOUND, f"the client does not handle {req.method}", {"method": req.method})


class SessionChannel:
    """The client as its session handles see it (`bridge.client.channel.Daemon`)."""

    def __init__(self, client: BridgeClient) -> None:
        self._client = client

    @property
    def permissions(self) -> Permissions:
        return self._client.permissions

    async def request(self, method: str, params: Any = None) -> Any:
        return await self._client.request(method, params)

    def notify(self, method: str, params: Any) -> None:
        self._client._notify(method, params)

    def start_task(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self._client._tg.start_soon(fn)

    def run_callback(self, callback: Callable[[Any], Any], update: Any) -> None:
        self._client._run_callback(callback, update)

    def callback_failed(self, turn: object, exc: BaseException) -> None:
        self._client._callback_errors.setdefault(id(turn), []).append(exc)

    def take_callback_errors(self, turn: object) -> list[BaseException]:
        return self._client._callback_errors.pop(id(turn), [])

    async def reopen(self, session: Session, mode: str) -> JsonObj:
        return await self._client._reopen(session, mode)

    async def fork_session(
        self, session_id: str, *, cwd: str | None = None, mcp_servers: Sequence[Any] | None = None
    ) -> Session:
        return await self._client.fork_session(session_id, cwd=cwd, mcp_servers=mcp_servers)

    async def get_info(self, session_id: str) -> SessionInfo:
        return await self._client.get_info(session_id)

    async def get_events(self, session_id: str, *, after: int = 0, limit: int = 100) -> EventPage:
        return await self._client.get_events(session_id, after=after, limit=limit)

    def iter_events(self, session_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        return self._client.iter_events(session_id, after=after)

    async def close_session(self, session_id: str) -> None:
        await self._client.close_session(session_id)

    async def delete_session(self, session_id: str) -> None:
        await self._client.delete_session(session_id)


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
