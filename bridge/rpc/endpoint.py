"""One JSON-RPC peer, both directions: the receive loop, a task and cancel scope per
inbound request, correlation of our outbound requests, `$/cancel_request`, and the single
place where exceptions become JSON-RPC errors.

The endpoint is transport-agnostic: it consumes decoded lines/frames and writes frames
to an `Outbox`. Notifications are handled inline in the receive loop (no task per
message: `session/update` streams are the hot path and must keep their order).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from bridge.errors import INTERNAL_ERROR, INVALID_REQUEST, REQUEST_CANCELLED, RpcError, find_rpc_error
from bridge.rpc.outbox import Outbox
from bridge.wire import jsonrpc
from bridge.wire.framing import Oversize

log = logging.getLogger(__name__)

# Answers a request: returns the `result`, or raises RpcError.
RequestHandler = Callable[[jsonrpc.Request], Awaitable[Any]]
NotificationHandler = Callable[[jsonrpc.Notification], Awaitable[None]]


class ConnectionClosed(RpcError):
    def __init__(self, peer: str) -> None:
        super().__init__(INTERNAL_ERROR, f"connection to {peer} closed")


@dataclass
class _Pending:
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: RpcError | None = None


class Endpoint:
    def __init__(
        self,
        peer: str,
        outbox: Outbox,
        on_request: RequestHandler,
        on_notification: NotificationHandler,
        *,
        require_jsonrpc: bool = True,
        on_invalid: Callable[[jsonrpc.Invalid], None] | None = None,
    ) -> None:
        self.peer = peer
        self.outbox = outbox
        self._on_request = on_request
        self._on_notification = on_notification
        self._require_jsonrpc = require_jsonrpc
        self._on_invalid = on_invalid
        self._next_id = 0
        self._pending: dict[Any, _Pending] = {}
        self._inflight: dict[Any, anyio.CancelScope] = {}
        self._tg: TaskGroup | None = None
        self._closed_error: RpcError | None = None

    # -- outbound ------------------------------------------------------------------------
    async def request(self, method: str, params: Any) -> Any:
        """Send a request and wait for its answer. Raises RpcError (the peer's error, or
        `ConnectionClosed`). Cancelling the caller sends `$/cancel_request`."""
        if self._closed_error is not None:
            raise self._closed_error
        self._next_id += 1
        rid = self._next_id
        slot = _Pending()
        self._pending[rid] = slot
        try:
            self.outbox.put(jsonrpc.request_frame(rid, method, params))
            await slot.done.wait()
        except anyio.get_cancelled_exc_class():
            if rid in self._pending and self._closed_error is None:
                self.outbox.put(jsonrpc.notification_frame("$/cancel_request", {"requestId": rid}))
            raise
        finally:
            self._pending.pop(rid, None)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def notify(self, method: str, params: Any) -> None:
        self.outbox.put(jsonrpc.notification_frame(method, params))

    def send_frame(self, frame: bytes) -> None:
        self.outbox.put(frame)

    def close(self, error: RpcError | None = None) -> None:
        """Fail every pending outbound request (e.g. the agent died) and refuse new ones.
        The first reason given wins (the agent's exit status over a bare closed pipe)."""
        if self._closed_error is not None:
            return
        self._closed_error = error or ConnectionClosed(self.peer)
        for slot in self._pending.values():
            slot.error = self._closed_error
            slot.done.set()

    # -- inbound ---------------------------------------------------------------------------
    async def run(
        self,
        incoming: AsyncIterable[list[bytes | Oversize]],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until `incoming` ends. In-flight inbound requests are cancelled then."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            async for batch in incoming:
                for item in batch:
                    await self.receive(item)
            tg.cancel_scope.cancel()
        self.close()

    async def receive(self, item: bytes | Oversize) -> None:
        if isinstance(item, Oversize):
            rid = jsonrpc.id_from_head(item.head)
            err = RpcError(INVALID_REQUEST, f"message of {item.size} bytes exceeds the size limit")
            self._invalid(jsonrpc.Invalid(err, rid))
            return
        msg = jsonrpc.decode(item, require_jsonrpc=self._require_jsonrpc)
        if isinstance(msg, jsonrpc.Notification):
            if msg.method == "$/cancel_request":
                self._cancel_inbound(msg.params)
                return
            try:
                await self._on_notification(msg)
            except RpcError as exc:
                log.info("%s: notification %s failed: %s", self.peer, msg.method, exc.message)
        elif isinstance(msg, jsonrpc.Response):
            slot = self._pending.get(msg.id)
            if slot is None:
                log.info("%s: response to unknown request id %r dropped", self.peer, msg.id)
                return
            if msg.error is not None:
                slot.error = RpcError(
                    int(msg.error.get("code", INTERNAL_ERROR)),
                    str(msg.error.get("message", "")),
                    msg.error.get("data"),
                )
            else:
                slot.result = msg.result
            slot.done.set()
        elif isinstance(msg, jsonrpc.Request):
            assert self._tg is not None
            self._tg.start_soon(self._serve_request, msg)
        else:
            self._invalid(msg)

    def _invalid(self, msg: jsonrpc.Invalid) -> None:
        if self._on_invalid is not None:
            self._on_invalid(msg)
        else:
            self.outbox.put(jsonrpc.error_frame(msg.id, msg.error))

    def _cancel_inbound(self, params: Any) -> None:
        rid = params.get("requestId") if isinstance(params, dict) else None
        scope = self._inflight.get(rid)
        if scope is not None:
            scope.cancel()

    async def _serve_request(self, req: jsonrpc.Request) -> None:
        # The one boundary where failures become JSON-RPC errors.
        with anyio.CancelScope() as scope:
            self._inflight[req.id] = scope
            try:
                result = await self._on_request(req)
            except RpcError as exc:
                self.outbox.put(jsonrpc.error_frame(req.id, exc))
                return
            except Exception as exc:
                found = find_rpc_error(exc)
                if found is None:
                    log.exception("%s: %s failed", self.peer, req.method)
                    found = RpcError(INTERNAL_ERROR, f"internal error in the bridge: {exc!r}")
                self.outbox.put(jsonrpc.error_frame(req.id, found))
                return
            finally:
                self._inflight.pop(req.id, None)
            self.outbox.put(jsonrpc.result_frame(req.id, result))
            return
        # Only reached when the scope was cancelled by `$/cancel_request`.
        self.outbox.put(jsonrpc.error_frame(req.id, RpcError(REQUEST_CANCELLED, "request cancelled")))
