"""One JSON-RPC peer, both directions: the receive loop, a task and cancel scope per
inbound request (a plain asyncio task, owned by the endpoint: cancelled and awaited before
`run` returns; anyio's task group costs ~25 µs more a request), correlation of our outbound requests (`bridge.rpc.correlation`), `$/cancel_request`, and the single
place where exceptions become JSON-RPC errors.

Every conversation of the daemon runs on it: the client connection, ACP agents, and Codex's
app-server (JSON-RPC without the `"jsonrpc"` member: `require_jsonrpc=False`, which also
leaves it out of what we send). The endpoint is transport-agnostic: it consumes decoded
lines/frames and writes frames to an `Outbox`. Notifications are handled inline in the
receive loop (no task per message: `session/update` streams are the hot path and must keep
their order).

Envelopes are validated (`bridge.wire.jsonrpc`) before any field is used, and nothing one
message does ends the loop: a bad message costs that message (an error answer), or, for a
peer given `on_violation` (agents), the requests waiting on that peer (the turn fails fast
with a clear error instead of waiting for a stall timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from bridge.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    REQUEST_CANCELLED,
    RpcError,
    find_rpc_error,
)
from bridge.rpc import arrival
from bridge.rpc.correlation import Correlator
from bridge.rpc.outbox import Outbox
from bridge.wire import jsonrpc
from bridge.wire.framing import Oversize
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

# Answers a request: returns the `result`, or raises RpcError.
RequestHandler = Callable[[jsonrpc.Request], Awaitable[Any]]
NotificationHandler = Callable[[jsonrpc.Notification], Awaitable[None]]
# (the method we called, the peer's error object) → what our caller gets raised.
PeerError = Callable[[str, JsonObj], RpcError]
# A protocol violation, described ("answered a request it was never sent …") → the error that
# fails every request waiting on the peer.
Violation = Callable[[str], RpcError]


class ConnectionClosed(RpcError):
    def __init__(self, peer: str) -> None:
        super().__init__(INTERNAL_ERROR, f"connection to {peer} closed")


def _peer_error(method: str, error: JsonObj) -> RpcError:
    # Validated by `jsonrpc.classify`: an int32 code and a string message.
    return RpcError(error["code"], error["message"], error.get("data"))


def _looks_like_json(line: bytes) -> bool:
    first = line[:1]
    if first.isspace():
        first = line.lstrip()[:1]
    return first in (b"{", b"[")


class Endpoint:
    def __init__(
        self,
        peer: str,
        outbox: Outbox,
        on_request: RequestHandler,
        on_notification: NotificationHandler,
        *,
        require_jsonrpc: bool = True,
        on_noise: Callable[[bytes], None] | None = None,
        on_violation: Violation | None = None,
        peer_error: PeerError = _peer_error,
        cancel_method: str | None = "$/cancel_request",
        max_depth: int = jsonrpc.MAX_DEPTH,
        int64: bool = True,
        on_line: Callable[[bytes], bool] | None = None,
    ) -> None:
        """`on_noise`: lines that are not JSON at all (an agent's banner) go there instead of
        being protocol errors. `int64`: integers past 64 bits are refused (-32602): a client's
        params reach integer columns of the store; agents' messages are relayed, and pass
        False. `on_violation`: the peer's protocol violations (a line over the
        size limit, an invalid envelope, an answer to a request never sent) fail every request
        waiting on it with the error this returns, instead of being answered with an error.
        `on_line`: sees every line first and returns True when it handled it (the ACP
        passthrough's byte-level fast path); other lines are decoded as usual."""
        self.peer = peer
        self.outbox = outbox
        self._on_request = on_request
        self._on_notification = on_notification
        self._require_jsonrpc = require_jsonrpc
        self._on_noise = on_noise
        self._on_violation = on_violation
        self._peer_error = peer_error
        self._cancel_method = cancel_method
        self._max_depth = max_depth
        self._int64 = int64
        self._on_line = on_line
        self._sent = Correlator()
        self._inflight: dict[Any, anyio.CancelScope] = {}
        self._idle = anyio.Event()
        self._idle.set()
        # Every request's task, until it is done, with the scope around all of it (the
        # answer's write and log commit too); `run` cancels those scopes and awaits the tasks.
        self._tasks: dict[asyncio.Task[None], anyio.CancelScope] = {}
        self._stopping = False
        self._closed_error: RpcError | None = None

    # -- frames ----------------------------------------------------------------------------------
    def _frame(self, msg: JsonObj) -> bytes:
        return jsonrpc.encode({"jsonrpc": "2.0", **msg} if self._require_jsonrpc else msg)

    def _error_frame(self, rid: Any, error: RpcError) -> bytes:
        try:
            return self._frame({"id": rid, "error": error.to_dict()})
        except TypeError:  # its `data` cannot be encoded: the code and message still go out
            return self._frame({"id": rid, "error": {"code": error.code, "message": error.message}})

    def _notification_frame(self, method: str, params: Any) -> bytes:
        return self._frame({"method": method} if params is None else {"method": method, "params": params})

    # -- outbound ------------------------------------------------------------------------
    async def request(self, method: str, params: Any) -> Any:
        """Send a request and wait for its answer. Raises RpcError (the peer's error, or
        `ConnectionClosed`). Cancelling the caller sends `$/cancel_request`."""
        if self._closed_error is not None:
            raise self._closed_error
        rid, slot = self._sent.open(method)
        frame = self._frame(
            {"id": rid, "method": method}
            if params is None
            else {"id": rid, "method": method, "params": params}
        )
        try:
            if self.outbox.whole_writes:
                await self.outbox.send(frame)  # written now: no turn of the writer task
            else:
                self.outbox.put(frame)
            await slot.done.wait()
        except anyio.get_cancelled_exc_class():
            if not slot.done.is_set() and self._closed_error is None and self._cancel_method:
                self.outbox.put(self._notification_frame(self._cancel_method, {"requestId": rid}))
            raise
        finally:
            self._sent.forget(rid)
        return slot.outcome()

    def notify(self, method: str, params: Any) -> None:
        self.outbox.put(self._notification_frame(method, params))

    def send_frame(self, frame: bytes) -> None:
        self.outbox.put(frame)

    def close(self, error: RpcError | None = None) -> None:
        """Fail every pending outbound request (e.g. the agent died) and refuse new ones.
        The first reason given wins (the agent's exit status over a bare closed pipe)."""
        if self._closed_error is not None:
            return
        self._closed_error = error or ConnectionClosed(self.peer)
        self._sent.fail_all(self._closed_error)

    # -- inbound ---------------------------------------------------------------------------
    async def run(
        self,
        incoming: AsyncIterable[list[bytes | Oversize]],
        *,
        drain: float = 0.0,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until `incoming` ends. Requests still being answered then get up to `drain`
        seconds to finish (a client that wrote its requests and closed its input, as a pipe
        does, still reads the answers); then they are cancelled."""
        try:
            task_status.started()
            async for batch in incoming:
                await self.receive_batch(batch)
            if drain > 0 and self._inflight:
                with anyio.move_on_after(drain):
                    await self._idle.wait()
        finally:
            await self._stop_requests()
        self.close()

    async def _stop_requests(self) -> None:
        # What leaving a task group did: every request still running is cancelled (and not
        # answered: the connection is over), and `run` returns only once all have ended.
        self._stopping = True
        for scope in self._inflight.values():
            scope.cancel()
        if not self._tasks:
            return
        tasks = dict(self._tasks)
        try:
            await asyncio.wait(tasks)
        except BaseException:
            # Cancelled while waiting (e.g. an answer's write stuck on a peer that stopped
            # reading): the tasks are cancelled too, and still awaited. Through their anyio
            # scopes, not `Task.cancel()`, which would pierce the shields inside them: a log
            # commit on a worker thread would be abandoned while the thread still commits it,
            # and its batch queued again (written twice).
            for outer in tasks.values():
                outer.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)
            raise

    async def receive_batch(self, batch: list[bytes | Oversize]) -> None:
        """`receive` each of one read's lines, in order. Lines the `on_line` hook takes (the
        common text chunk) are handled here, without the two coroutines per line of
        `receive`: at 100k+ lines a second that is a tenth of the daemon's CPU a line."""
        on_line = self._on_line
        for item in batch:
            if on_line is not None and type(item) is bytes:
                try:
                    if on_line(item):
                        continue
                except Exception:
                    log.exception("%s: handling a message failed (message dropped)", self.peer)
                    continue
                await self.receive(item, hooked=True)
            else:
                await self.receive(item)

    async def receive(self, item: bytes | Oversize, *, hooked: bool = False) -> None:
        """Handle one line or frame (`hooked`: the `on_line` hook has already declined it).
        Whatever it contains, the loop goes on: a failure of ours while handling it is
        logged and costs only this message."""
        try:
            await self._receive(item, hooked)
        except Exception:
            log.exception("%s: handling a message failed (message dropped)", self.peer)

    async def _receive(self, item: bytes | Oversize, hooked: bool) -> None:
        if isinstance(item, Oversize):
            if self._on_violation is not None:
                self._violation(f"wrote a message of {item.size} bytes, over the size limit")
                return
            err = RpcError(INVALID_REQUEST, f"message of {item.size} bytes exceeds the size limit")
            self._invalid(jsonrpc.Invalid(err, jsonrpc.id_from_head(item.head)))
            return
        if not hooked and self._on_line is not None and self._on_line(item):
            return
        if self._on_noise is not None and not _looks_like_json(item):
            self._on_noise(item)
            return
        msg = jsonrpc.decode(
            item, require_jsonrpc=self._require_jsonrpc, max_depth=self._max_depth, int64=self._int64
        )
        if isinstance(msg, jsonrpc.Notification):
            if self._cancel_method is not None and msg.method == self._cancel_method:
                self._cancel_inbound(msg.params)
                return
            try:
                with arrival.handling(arrival.stamp()):
                    await self._on_notification(msg)
            except RpcError as exc:
                log.info("%s: notification %.100s failed: %s", self.peer, msg.method, exc.message)
        elif isinstance(msg, jsonrpc.Response):
            self._answered(msg)
        elif isinstance(msg, jsonrpc.Request):
            self._start(msg)
        else:
            self._invalid(msg)

    def _answered(self, msg: jsonrpc.Response) -> None:
        slot = self._sent.get(msg.id)
        if slot is None:
            if self._sent.was_sent(msg.id):
                # One we stopped waiting for (cancelled, timed out, failed): nothing to do.
                log.debug("%s: late answer to request %d dropped", self.peer, msg.id)
            else:
                self._violation(f"answered a request it was never sent (id {msg.id!r:.60})")
            return
        if msg.error is not None:
            slot.fail(self._peer_error(slot.method, msg.error))
        else:
            slot.resolve(msg.result)

    def _invalid(self, msg: jsonrpc.Invalid) -> None:
        slot = self._sent.get(msg.reply_to)
        if self._on_violation is not None:
            self._violation(f"wrote an invalid message: {msg.error.message}")
            return
        if slot is not None:
            # A malformed answer to one of our requests: its waiter fails rather than waits.
            slot.fail(
                RpcError(
                    INVALID_REQUEST,
                    f"{self.peer} answered {slot.method} with an invalid response: {msg.error.message}",
                )
            )
        self.outbox.put(self._error_frame(msg.id, msg.error))

    def _violation(self, what: str) -> None:
        if self._on_violation is None:
            log.info("%s %s (ignored)", self.peer, what)
            return
        self._sent.fail_all(self._on_violation(what))

    def _cancel_inbound(self, params: Any) -> None:
        rid = params.get("requestId") if isinstance(params, dict) else None
        if rid is None or not jsonrpc.valid_id(rid):
            log.info("%s: $/cancel_request without a valid requestId ignored", self.peer)
            return
        scope = self._inflight.get(rid)
        if scope is not None:
            scope.cancel()

    def _start(self, req: jsonrpc.Request) -> None:
        if req.id in self._inflight:
            # Answering with that id would look like the answer to the first request.
            err = RpcError(
                INVALID_REQUEST, f"request id {req.id!r:.60} is already in use by a request in progress"
            )
            self._invalid(jsonrpc.Invalid(err))
            return
        if self._stopping:
            return
        # Registered before the task starts: a `$/cancel_request` or the end of the input
        # right behind the request still finds it. Stamped now too, in the order received.
        scope = self._inflight[req.id] = anyio.CancelScope()
        if self._idle.is_set():
            self._idle = anyio.Event()
        outer = anyio.CancelScope()
        task = asyncio.get_running_loop().create_task(self._serve_request(req, scope, outer, arrival.stamp()))
        self._tasks[task] = outer
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            # `_serve_request` answers every failure; this is a bug of ours, not the peer's.
            log.error("%s: a request's task failed", self.peer, exc_info=task.exception())

    async def _serve_request(
        self, req: jsonrpc.Request, scope: anyio.CancelScope, outer: anyio.CancelScope, number: int
    ) -> None:
        with outer:
            await self._answer(req, scope, number)

    async def _answer(self, req: jsonrpc.Request, scope: anyio.CancelScope, number: int) -> None:
        frame: bytes | None = None
        try:
            with scope, arrival.handling(number):
                try:
                    result = await self._on_request(req)
                    frame = self._frame({"id": req.id, "result": result})
                except Exception as exc:
                    frame = self._error_frame(req.id, self._as_error(req, exc))
            if frame is None and scope.cancelled_caught and not self._stopping:
                frame = self._error_frame(req.id, RpcError(REQUEST_CANCELLED, "request cancelled"))
        finally:
            self._inflight.pop(req.id, None)
            if not self._inflight:
                self._idle.set()
        if frame is not None:
            # Out of the request's scope: a cancel arriving now does not take back its answer.
            await self.outbox.send(frame)

    def _as_error(self, req: jsonrpc.Request, exc: Exception) -> RpcError:
        # The one boundary where failures become JSON-RPC errors: an RpcError travels as it is
        # (its message keeps its meaning); anything else is a bug of ours, logged with its trace.
        found = find_rpc_error(exc)
        if found is None:
            log.exception("%s: %.100s failed", self.peer, req.method)
            found = RpcError(INTERNAL_ERROR, f"internal error in the bridge: {exc!r:.500}")
        return found
