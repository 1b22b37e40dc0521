"""One running `claude` process seen as a message channel: whole-line writes to its stdin,
our control requests matched to their responses, and the stdout read loop.

Everything the CLI writes goes to `on_message` (conversation lines) or `on_request` (its
own control requests: permission prompts, cancellations of them) in order, inline in the
read loop. When stdout ends the CLI is gone: every waiter fails with its exit code and
stderr tail, and `exited` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from adapters.claude import native
from bridge.errors import INTERNAL_ERROR, AgentError, AgentExitedError, RpcError
from bridge.process.agent_process import AgentProcess
from bridge.rpc.correlation import Correlator, Pending
from bridge.wire.framing import Oversize
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

# Our control requests' ids: `bridge_1`, `bridge_2`… (the correlator's numbers, prefixed so
# they cannot be taken for the CLI's own).
ID_PREFIX = "bridge_"


@dataclass(frozen=True)
class Sent:
    """A control request written and not yet answered (`Channel.send`)."""

    number: int
    subtype: str
    waiter: Pending


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
        self._sent = Correlator()

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

    async def send(self, subtype: str, **fields: Any) -> Sent:
        """Write a control request without waiting for its answer (`answer` waits): several
        can be in flight at once, so a session opens in one round trip instead of three."""
        number, waiter = self._sent.open(subtype)
        try:
            await self.write(native.control(f"{ID_PREFIX}{number}", subtype, **fields))
        except BaseException:
            self._sent.forget(number)
            raise
        return Sent(number, subtype, waiter)

    async def answer(self, sent: Sent) -> JsonObj:
        try:
            with anyio.fail_after(self.timeout):
                await sent.waiter.done.wait()
        except TimeoutError:
            raise AgentError(
                INTERNAL_ERROR,
                f"agent {self.name!r} did not answer {sent.subtype} in time",
                {"agent": self.name, "stderrTail": self.proc.stderr_tail()},
            ) from None
        finally:
            self._sent.forget(sent.number)
        value: JsonObj = sent.waiter.outcome()
        return value

    def _resolve(self, response: JsonObj) -> None:
        rid = str(response.get("request_id"))
        number = rid[len(ID_PREFIX) :] if rid.startswith(ID_PREFIX) else ""
        waiter = self._sent.get(int(number)) if number.isdecimal() else None
        if waiter is None:
            return  # not ours (e.g. an echo of our own reply), or one we stopped waiting for
        if response.get("subtype") == "error":
            waiter.fail(
                RpcError(INTERNAL_ERROR, f"Claude Code: {response.get('error')}", {"agent": self.name})
            )
        else:
            value = response.get("response")
            waiter.resolve(value if isinstance(value, dict) else {})

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
            self._sent.fail_all(self.exit_error)
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
