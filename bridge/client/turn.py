"""One prompt turn. It runs in the client's task group (so a caller that stops waiting — or
is cancelled — does not tear the request down mid-flight: the client sends `session/cancel`
and the turn ends as ACP says, with stop reason "cancelled"). The caller iterates it for
typed updates and permission requests, or just waits for its `SendResult`."""

from __future__ import annotations

import logging
import math
from types import TracebackType
from typing import Any, Protocol

import anyio

from bridge.client.channel import Daemon
from bridge.client.errors import ClientError, ConnectionLost, RequestError, TurnFailed
from bridge.client.permissions import PermissionRequest, Permissions
from bridge.client.results import PermissionDecision, SendResult, TurnAccumulator
from bridge.client.updates import Update
from bridge.wire.types import JsonObj


class Session(Protocol):
    """What a turn uses of its session (`bridge.client.session.Session`): one turn at a time
    (`turn_lock`, `current_turn`), the session opened before the prompt, its channel to the daemon."""

    id: str
    channel: Daemon[Any]
    turn_lock: anyio.Lock
    current_turn: Turn | None

    async def ensure_open(self) -> None: ...
    async def cancel(self) -> None: ...


TurnEvent = Update | PermissionRequest
log = logging.getLogger(__name__)


class Turn:
    """Iterate (`async for event in turn`) to get each `Update` as it arrives and — when no
        callback or policy answers them — each `PermissionRequest` to `reply()` to. Iteration
        ends with the turn; a failed turn raises `TurnFailed` (with the partial result) from the
        iteration and from `wait()` (an error before the prompt was sent, such as an unknown
    session, is raised as itself). As an async context manager, leaving the block early
        cancels the turn."""

    def __init__(
        self, session: Session, prompt: list[JsonObj], *, permissions: Permissions, streaming: bool
    ) -> None:
        self.session = session
        self.prompt = prompt
        self.permissions = permissions
        self.streaming = streaming
        self.done = anyio.Event()
        self.acc = TurnAccumulator(session.id)
        self._send, self._recv = anyio.create_memory_object_stream[TurnEvent](math.inf)
        self._result: SendResult | None = None
        self._error: ClientError | None = None
        self.pending: dict[str, PermissionRequest] = {}
        self.sent = False  # the prompt went out (errors before that are raised as themselves)
        # `cancel()` came before the prompt went out: the daemon applies a `session/cancel`
        # only to prompts it received before it, so the cancel goes right behind the prompt.
        self._cancel_when_sent = False

    # -- run by the client's task group -------------------------------------------------------------
    async def run(self) -> None:
        session = self.session
        raw: Any = None
        try:
            async with session.turn_lock:
                try:
                    await session.ensure_open()
                    session.current_turn = self
                    self.sent = True
                    if self._cancel_when_sent:
                        # Starts once this task waits for the answer, the prompt then queued.
                        session.channel.start_task(session.cancel)
                    raw = await session.channel.request(
                        "session/prompt", {"sessionId": session.id, "prompt": self.prompt}
                    )
                except ClientError as exc:
                    self._error = exc
                except Exception as exc:
                    # A bug here must fail this turn, not the client's whole task group.
                    log.exception("turn of session %s failed", session.id)
                    self._error = ClientError(f"internal client error: {exc!r}")
                finally:
                    session.current_turn = None
                    for req in list(self.pending.values()):
                        req.cancel("turn ended")
            if self._error is None:
                self._result = self.acc.result(raw if isinstance(raw, dict) else {})
        except anyio.get_cancelled_exc_class():
            self._error = ConnectionLost("the client closed before the turn ended")
            raise
        finally:
            self._send.close()
            self.done.set()

    # -- fed by the session -------------------------------------------------------------------------
    def add(self, update: Update) -> None:
        self.acc.add(update)
        if self.streaming:
            self._send.send_nowait(update)

    def offer(self, request: PermissionRequest) -> bool:
        """Hand a permission request to the program iterating the turn; False if nobody is."""
        if not self.streaming or self.done.is_set():
            return False
        self.pending[request.id] = request
        self._send.send_nowait(request)
        return True

    def decided(self, request: PermissionRequest) -> None:
        self.pending.pop(request.id, None)
        option = request.chosen
        self.acc.permissions.append(
            PermissionDecision(
                tool_call_id=request.tool_call.tool_call_id,
                title=request.title,
                outcome="selected" if option is not None else "cancelled",
                option_id=option.option_id if option is not None else None,
                kind=option.kind if option is not None else None,
                decided_by=request.decided_by,
            )
        )

    # -- the caller's side ------------------------------------------------------------------------
    def __aiter__(self) -> Turn:
        if not self.streaming:
            raise TypeError("this turn was started without streaming: use `await turn.wait()`")
        return self

    async def __anext__(self) -> TurnEvent:
        try:
            return await self._recv.receive()
        except anyio.EndOfStream:
            if self._error is not None:
                raise self._failure() from None
            raise StopAsyncIteration from None

    async def wait(self) -> SendResult:
        """Wait for the turn to end; its result, or `TurnFailed`."""
        await self.done.wait()
        return self.result

    @property
    def result(self) -> SendResult:
        if not self.done.is_set():
            raise RuntimeError("the turn has not ended yet: `await turn.wait()`")
        if self._error is not None:
            raise self._failure()
        assert self._result is not None
        return self._result

    @property
    def error(self) -> ClientError | None:
        return self._error

    async def cancel(self) -> None:
        """Ask the agent to stop (`session/cancel`); the turn then ends with "cancelled"."""
        if self.done.is_set():
            return
        if not self.sent:
            self._cancel_when_sent = True
            return
        await self.session.cancel()

    def _failure(self) -> ClientError:
        assert self._error is not None
        if not self.sent:
            return self._error
        partial = self.acc.result({"stopReason": "error"})
        return TurnFailed(self._error, partial)

    async def __aenter__(self) -> Turn:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.done.is_set():
            await self.cancel()
            if exc_type is None:
                await self.done.wait()

    @property
    def request_error(self) -> RequestError | None:
        return self._error if isinstance(self._error, RequestError) else None
