"""`--trace FILE`: every frame on both sides of the daemon as redacted JSONL, for bug reports.

One line per frame:

    {"ts": "...Z", "dir": "client>bridge", "conn": 1, "session": "sess_…", "msg": {...}}
    {"ts": "...Z", "dir": "bridge>agent", "agent": "gemini", "pid": 4242, "session": "sess_…",
     "agentSession": "…", "msg": {...}}

`dir` is one of `client>bridge`, `bridge>client`, `bridge>agent`, `agent>bridge`; lines an
agent printed that are not JSON (banners, OAuth URLs) appear as `"raw"` instead of `"msg"`.
`session` is the bridge's session id when it is known; `agentSession` the agent's own.
Secrets are masked (`***`) by the process-wide `Redactor`: values of secret-named variables
of the daemon's, the login shell's and the agents' configured environments, and key shapes.

Off by default and then free: the transports and agent processes hold `None` and check one
attribute per batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from bridge.diagnostics.redact import Redactor, mask_mcp_servers
from bridge.diagnostics.redact import default as default_redactor
from bridge.wire import jsonrpc
from bridge.wire.framing import Oversize

log = logging.getLogger(__name__)

CLIENT_IN = "client>bridge"
CLIENT_OUT = "bridge>client"
AGENT_IN = "agent>bridge"
AGENT_OUT = "bridge>agent"

Frames = Sequence[bytes | Oversize]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_RAW = object()


def _line(record: dict[str, Any]) -> str:
    try:
        return orjson.dumps(record).decode() + "\n"
    except TypeError as exc:  # cannot happen for what `_record` builds; a trace never raises
        return (
            orjson.dumps({"ts": record.get("ts"), "dir": record.get("dir"), "unrecorded": str(exc)}).decode()
            + "\n"
        )


def _session_of(msg: Any) -> str | None:
    if not isinstance(msg, dict):
        return None
    for part in ("params", "result"):
        body = msg.get(part)
        if isinstance(body, dict):
            sid = body.get("sessionId")
            if isinstance(sid, str):
                return sid
    return None


class Tracer:
    def __init__(self, path: str, redactor: Redactor | None = None) -> None:
        self.path = path.replace("{pid}", str(os.getpid()))
        self.redactor = redactor or default_redactor()
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        # Traces hold whole conversations: readable by the user only.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file: TextIO = os.fdopen(fd, "a", encoding="utf-8")
        self._conns = 0
        self._sessions_by_pid: dict[int, str] = {}
        # (conn, request id) → session id, so answers carry the session of their request.
        self._asked: dict[tuple[int, Any], str] = {}
        self.closed = False
        self.event({"event": "trace_started", "daemonPid": os.getpid()})

    # -- records -----------------------------------------------------------------------------
    def _write(self, records: list[dict[str, Any]]) -> None:
        if self.closed or not records:
            return
        try:
            self._file.write("".join(_line(r) for r in records))
            self._file.flush()
        except (OSError, ValueError) as exc:
            log.warning("protocol trace stopped: cannot write %s: %s", self.path, exc)
            self.close()

    def _record(self, direction: str, frame: bytes | Oversize, **where: Any) -> dict[str, Any]:
        # Frames are recorded before the endpoint has looked at them: anything a peer can
        # send (nesting orjson cannot write back, ids of any type) must make a record.
        rec: dict[str, Any] = {"ts": _now(), "dir": direction, **where}
        if isinstance(frame, Oversize):
            rec["oversize"] = frame.size
            return rec
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            msg = _RAW
        if msg is _RAW or jsonrpc.too_deep(frame, msg):
            rec["raw"] = self.redactor.text(frame.decode("utf-8", "replace"))
        else:
            if isinstance(msg, dict) and "params" in msg:
                # session/new & co. to us and to ACP agents: MCP env and header values.
                msg["params"] = mask_mcp_servers(msg["params"], self.redactor)
            rec["msg"] = self.redactor.value(msg)
        return rec

    def event(self, event: dict[str, Any]) -> None:
        """A line about the daemon itself (trace start, a session bound to an agent)."""
        self._write([{"ts": _now(), "dir": "bridge", **self.redactor.value(event)}])

    # -- client side ---------------------------------------------------------------------------
    def new_connection(self, transport: str) -> int:
        self._conns += 1
        self.event({"event": "client_connected", "conn": self._conns, "transport": transport})
        return self._conns

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        # The trace is a witness: whatever it trips over costs that record, never the frame.
        try:
            fn(*args)
        except Exception:
            log.exception("protocol trace: a frame could not be recorded")

    def client_in(self, conn: int, frames: Frames) -> None:
        self._guarded(self._client_in, conn, frames)

    def client_out(self, conn: int, frames: Frames) -> None:
        self._guarded(self._client_out, conn, frames)

    def _client_in(self, conn: int, frames: Frames) -> None:
        records = []
        for frame in frames:
            rec = self._record(CLIENT_IN, frame, conn=conn)
            msg = rec.get("msg")
            sid = _session_of(msg)
            if sid is not None:
                rec["session"] = sid
                if isinstance(msg, dict) and "method" in msg and jsonrpc.valid_id(msg.get("id", False)):
                    self._asked[(conn, msg["id"])] = sid
            records.append(rec)
        self._write(records)

    def _client_out(self, conn: int, frames: Frames) -> None:
        records = []
        for frame in frames:
            rec = self._record(CLIENT_OUT, frame, conn=conn)
            msg = rec.get("msg")
            sid = _session_of(msg)
            if isinstance(msg, dict) and "method" not in msg and jsonrpc.valid_id(msg.get("id", False)):
                sid = self._asked.pop((conn, msg["id"]), None) or sid
            if sid is not None:
                rec["session"] = sid
            records.append(rec)
        self._write(records)

    def wrap_connection(
        self,
        incoming: AsyncIterable[list[bytes | Oversize]],
        write: Callable[[list[bytes]], Awaitable[None]],
        transport: str,
    ) -> tuple[AsyncIterator[list[bytes | Oversize]], Callable[[list[bytes]], Awaitable[None]]]:
        """A client connection's two directions, traced."""
        conn = self.new_connection(transport)
        return self.wrap_incoming(incoming, conn), self.wrap_write(write, conn)

    def wrap_incoming(
        self, incoming: AsyncIterable[list[bytes | Oversize]], conn: int
    ) -> AsyncIterator[list[bytes | Oversize]]:
        async def traced() -> AsyncIterator[list[bytes | Oversize]]:
            async for batch in incoming:
                self.client_in(conn, batch)
                yield batch

        return traced()

    def wrap_write(
        self, write: Callable[[list[bytes]], Awaitable[None]], conn: int
    ) -> Callable[[list[bytes]], Awaitable[None]]:
        async def traced(frames: list[bytes]) -> None:
            self.client_out(conn, frames)
            await write(frames)

        return traced

    # -- agent side ------------------------------------------------------------------------------
    def bind(self, pid: int, session_id: str, agent: str) -> None:
        """From now on, frames of agent process `pid` belong to bridge session `session_id`."""
        self._sessions_by_pid[pid] = session_id
        self.event({"event": "agent_bound", "pid": pid, "agent": agent, "session": session_id})

    def unbind(self, pid: int) -> None:
        self._sessions_by_pid.pop(pid, None)

    def _agent(self, direction: str, agent: str, pid: int, frames: Frames) -> None:
        session = self._sessions_by_pid.get(pid)
        records = []
        for frame in frames:
            if not isinstance(frame, Oversize) and not frame.strip():
                continue
            rec = self._record(direction, frame, agent=agent, pid=pid)
            if session is not None:
                rec["session"] = session
            agent_sid = _session_of(rec.get("msg"))
            if agent_sid is not None:
                rec["agentSession"] = agent_sid
            records.append(rec)
        self._write(records)

    def agent_in(self, agent: str, pid: int, lines: Frames) -> None:
        self._guarded(self._agent, AGENT_IN, agent, pid, lines)

    def agent_out(self, agent: str, pid: int, data: bytes) -> None:
        self._guarded(self._agent, AGENT_OUT, agent, pid, data.split(b"\n"))

    def agent_exited(self, agent: str, pid: int, returncode: int | None) -> None:
        self.event({"event": "agent_exited", "agent": agent, "pid": pid, "exitCode": returncode})
        self.unbind(pid)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self._file.close()


_current: Tracer | None = None


def install(tracer: Tracer | None) -> None:
    """Make `tracer` the one agent processes report to (None: tracing off)."""
    global _current
    _current = tracer


def current() -> Tracer | None:
    return _current
