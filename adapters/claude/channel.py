"""One running `claude` process seen as a message channel: whole-line writes to its stdin,
our control requests matched to their responses, and the stdout read loop.

Everything the CLI writes goes to `on_message` (conversation lines) or `on_request` (its
own control requests: permission prompts, cancellations of them) in order, inline in the
read loop. When stdout ends the CLI is gone: every waiter fails with its exit code and
stderr tail, and `exited` is set.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from adapters.claude import native
from bridge.errors import INTERNAL_ERROR, AgentError, AgentExitedError, RpcError
from bridge.process.agent_process import AgentProcess
from bridge.wire.framing import Oversize
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)


class _Waiter:
    __slots__ = ("error", "event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: JsonObj = {}
        self.error: Exception | None = None


@dataclass(frozen=True)
class Pending:
    """A control request written and not yet answered (`Channel.send`)."""

    request_id: str
    subtype: str
    waiter: _Waiter


class Channel:
    def __init__(self, name: str, proc: AgentProcess, *, timeout: float, grace: float) -> None:
        self.name = name
        self.proc = proc
        self.timeout = timeout
        self.grace = grace
        self.on_message: Callable[[JsonObj], None] = lambda msg: None
        self.on_request: Callable[[JsonObj], None] = self._refuse
        self.after_batch: Callable[[], Any] | None = None
        self.on_exit: Callable[[AgentExitedError], None] = lambda exc: None
        self.exited = anyio.Event()
        self.exit_error: AgentExitedError | None = None
        self._lock = anyio.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[str, _Waiter] = {}

    # -- writing -------------------------------------------------------------------------
    async def write(self, msg: JsonObj) -> None:
        data = orjson.dumps(msg) + b"\n"
        if self.exit_error is not None:
            raise self.exit_error
        try:
            async with self._lock:
                await self.proc.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # stdin is gone: the process is exiting. Report how it ended, not the pipe.
            with anyio.move_on_after(self.grace + 1):
                await self.exited.wait()
            raise self.exit_error or AgentExitedError(
                self.name, self.proc.returncode, self.proc.stderr_tail()
            ) from None

    async def request(self, subtype: str, **fields: Any) -> JsonObj:
        """Send a control request and wait (bounded) for its response's `response` object."""
        return await self.answer(await self.send(subtype, **fields))

    async def send(self, subtype: str, **fields: Any) -> Pending:
        """Write a control request without waiting for its answer (`answer` waits): several
        can be in flight at once, so a session opens in one round trip instead of three."""
        rid = f"bridge_{next(self._ids)}"
        waiter = self._pending[rid] = _Waiter()
        try:
            await self.write(native.control(rid, subtype, **fields))
        except BaseException:
            self._pending.pop(rid, None)
            raise
        return Pending(rid, subtype, waiter)

    async def answer(self, pending: Pending) -> JsonObj:
        waiter = pending.waiter
        try:
            with anyio.fail_after(self.timeout):
                await waiter.event.wait()
        except TimeoutError:
            raise AgentError(
                INTERNAL_ERROR,
                f"agent {self.name!r} did not answer {pending.subtype} in time",
                {"agent": self.name, "stderrTail": self.proc.stderr_tail()},
            ) from None
        finally:
            self._pending.pop(pending.request_id, None)
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    def _resolve(self, response: JsonObj) -> None:
        waiter = self._pending.get(str(response.get("request_id")))
        if waiter is None:
            return  # not ours (e.g. an echo of our own reply): ignore
        if response.get("subtype") == "error":
            waiter.error = RpcError(
                INTERNAL_ERROR, f"Claude Code: {response.get('error')}", {"agent": self.name}
            )
        else:
            value = response.get("response")
            waiter.value = value if isinstance(value, dict) else {}
        waiter.event.set()

    def _refuse(self, msg: JsonObj) -> None:
        log.warning(
            "agent %s: control request before the session was ready: %s", self.name, msg.get("request")
        )

    # -- reading -------------------------------------------------------------------------
    async def run(self) -> None:
        """The read loop. Returns when the CLI's stdout ends (the process is exiting)."""
        try:
            async for batch in self.proc.batches():
                for line in batch:
                    self._line(line)
                if self.after_batch is not None:
                    await self.after_batch()
            with anyio.move_on_after(self.grace):
                await self.proc.process.wait()
        finally:
            self.exit_error = AgentExitedError(self.name, self.proc.returncode, self.proc.stderr_tail())
            for waiter in self._pending.values():
                waiter.error = self.exit_error
                waiter.event.set()
            # Also when the loop is cancelled (the session closes): nothing may wait forever.
            self.on_exit(self.exit_error)
            self.exited.set()

    def _line(self, line: bytes | Oversize) -> None:
        if isinstance(line, Oversize):
            log.warning("agent %s wrote a %d-byte line (over the limit, skipped)", self.name, line.size)
            return
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("agent %s wrote a non-JSON line (skipped): %.200r", self.name, line)
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind == "control_response" and isinstance(msg.get("response"), dict):
            self._resolve(msg["response"])
        elif kind in ("control_request", "control_cancel_request"):
            self.on_request(msg)
        else:
            self.on_message(msg)
