"""One ACP connection of the Streamable HTTP profile: the JSON-RPC messages POSTed in, and the
daemon's messages routed out to SSE streams — one connection-scoped, one per session.

Routing follows the RFD (and the official SDKs built on it):

- the answer to `initialize` is captured for the POST's own 200 body;
- a response to a session-scoped request (one POSTed with `Acp-Session-Id`) goes on that
  session's stream; every other response — `session/new` and `session/load` included, whose
  session stream the client cannot have open yet — on the connection stream;
- a request or notification carrying `params.sessionId` goes on that session's stream once
  the session has one (a GET opened it, a response established it, or a POST named it in
  `Acp-Session-Id`), else on the connection stream, where a client first learns of it.

All of one session's traffic during a turn therefore stays on one stream, so its order holds
(two SSE streams are two TCP connections; nothing orders them against each other). A stream
keeps what it is given until a GET takes it. What the connection holds for streams nobody
reads is bounded: past `limit` bytes the daemon's writer waits, and a client that takes
nothing for `send_timeout` seconds is cut off (`ClientTooSlow`), as on WebSocket.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson

from bridge.wire.framing import Oversize

# Methods whose POST must name its session in `Acp-Session-Id` (as the SDKs send it).
SESSION_SCOPED = frozenset(
    {"session/prompt", "session/cancel", "session/set_mode", "session/set_config_option", "session/close"}
)
MAX_SESSIONS = 1024  # session ids one connection may name (each may get a stream)


class ClientTooSlow(Exception):
    """Nothing was taken from this connection's streams for `send_timeout` seconds while more
    than `limit` bytes waited for it."""


def id_key(value: Any) -> str:
    # JSON-RPC ids are numbers or strings; 1 and "1" are different requests.
    return f"{type(value).__name__}:{value}"


class SseStream:
    """The messages waiting for one SSE stream, and whether a GET is reading them."""

    def __init__(self, owner: HttpConnection) -> None:
        self._owner = owner
        self._frames: list[bytes] = []
        self._wake = anyio.Event()
        self.attached = False
        self.closed = False

    def push(self, frame: bytes) -> None:
        if self.closed:
            return
        self._frames.append(frame)
        self._owner.held += len(frame)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def take(self, wait: float) -> list[bytes] | None:
        """What is waiting (after at most `wait` seconds: `[]`), or None once closed and empty."""
        if not self._frames and not self.closed:
            with anyio.move_on_after(wait):
                await self._wake.wait()
        if not self._frames:
            if self.closed:
                return None
            self._wake = anyio.Event()
            return []
        frames, self._frames = self._frames, []
        self._wake = anyio.Event()
        self._owner.taken(sum(len(f) for f in frames))
        return frames


class HttpConnection:
    def __init__(self, access: str, *, limit: int, send_timeout: float) -> None:
        self.id = secrets.token_urlsafe(18)  # unguessable: it names the connection in requests
        self.access = access  # "full" or "observer": what the token of `initialize` granted
        self.limit = limit
        self.send_timeout = send_timeout
        self._in, self._out = anyio.create_memory_object_stream[list[bytes | Oversize]](64)
        self.main = SseStream(self)
        self.streams: dict[str, SseStream] = {}
        self.known: set[str] = set()  # session ids seen on this connection, either way
        self._routes: dict[str, str] = {}  # request id → session, for session-scoped requests
        self._captured: dict[str, dict[str, Any]] = {}
        self._capture_wake: dict[str, anyio.Event] = {}
        self.held = 0
        self._drained = anyio.Event()
        self.ended = False
        self.last_used = anyio.current_time()

    # -- in ----------------------------------------------------------------------------------------
    async def incoming(self) -> AsyncIterator[list[bytes | Oversize]]:
        async with self._out:
            async for batch in self._out:
                yield batch

    def note_session(self, session_id: str, *, stream: bool) -> bool:
        """Remember a session named on this connection (and give it a stream). False when the
        connection has named too many."""
        if session_id not in self.known:
            if len(self.known) >= MAX_SESSIONS:
                return False
            self.known.add(session_id)
        if stream and session_id not in self.streams:
            self.streams[session_id] = SseStream(self)
        return True

    async def post(self, message: dict[str, Any], raw: bytes, session_id: str | None) -> None:
        """Hand one client message to the daemon; `session_id` is its `Acp-Session-Id`."""
        self.last_used = anyio.current_time()
        if session_id is not None and "method" in message and "id" in message:
            self._routes[id_key(message["id"])] = session_id
        await self._in.send([raw])

    async def call(self, message: dict[str, Any], raw: bytes, wait: float) -> dict[str, Any] | None:
        """Send a request and wait for its response, captured instead of streamed (`initialize`,
        answered in the POST's own body). None if no answer came in `wait` seconds."""
        key = id_key(message["id"])
        wake = self._capture_wake[key] = anyio.Event()
        try:
            await self.post(message, raw, None)
            with anyio.move_on_after(wait):
                await wake.wait()
            return self._captured.pop(key, None)
        finally:
            self._capture_wake.pop(key, None)

    def end(self) -> None:
        """No more client messages: the daemon finishes the connection (then `close`)."""
        self.ended = True
        self._in.close()

    def close(self) -> None:
        self.end()
        self.main.close()
        for stream in self.streams.values():
            stream.close()
        self._drained.set()

    # -- out ---------------------------------------------------------------------------------------
    async def write(self, frames: list[bytes]) -> None:
        """The daemon's writer for this connection (`Outbox`): route, then wait while more than
        `limit` bytes are waiting for streams."""
        for frame in frames:
            self._route(frame.rstrip(b"\n"))
        while self.held > self.limit and not self.ended:
            self._drained = anyio.Event()
            with anyio.move_on_after(self.send_timeout) as scope:
                await self._drained.wait()
            if scope.cancelled_caught:
                raise ClientTooSlow()

    def taken(self, size: int) -> None:
        self.held -= size
        if self.held <= self.limit:
            self._drained.set()

    def _route(self, frame: bytes) -> None:
        message = orjson.loads(frame)  # the daemon's own output: one JSON object
        if "method" not in message:
            key = id_key(message.get("id"))
            if key in self._capture_wake:
                self._captured[key] = message
                self._capture_wake[key].set()
                return
            result = message.get("result")
            established = result.get("sessionId") if isinstance(result, dict) else None
            routed = self._routes.pop(key, None)
            if isinstance(established, str):
                self.note_session(established, stream=True)
                self.main.push(frame)
            elif routed is not None and routed in self.streams:
                self.streams[routed].push(frame)
            else:
                self.main.push(frame)
            return
        params = message.get("params")
        session_id = params.get("sessionId") if isinstance(params, dict) else None
        if isinstance(session_id, str):
            self.note_session(session_id, stream=False)
            stream = self.streams.get(session_id)
            if stream is not None:
                stream.push(frame)
                return
        self.main.push(frame)
