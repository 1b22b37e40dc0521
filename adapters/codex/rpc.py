"""The JSON-RPC link to one `codex app-server` process, over its stdio.

App-server speaks JSON-RPC 2.0 without the `"jsonrpc"` member, one message per line, and
numbers its own requests from 0: its ids and ours are separate spaces. This module only
correlates our requests with their responses and hands everything else to a `Handler`:

- notifications are handled inline, in order, with no task hop (the hot path: thousands of
  deltas per turn), then `batch_done()` once per read so the handler can coalesce, and
  `drain()` so a lagging client slows the reading down instead of growing a queue;
- server requests (approvals) each get a task, and are always answered — with the
  handler's result, or an error if it raised — so a turn never waits on a lost request.

When the process's stdout ends, every pending request fails with `AgentExitedError`
(exit code and stderr tail) and `exited` is set.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Any, Protocol

import anyio
import orjson
from anyio.abc import TaskStatus

from bridge.errors import INTERNAL_ERROR, METHOD_NOT_FOUND, AgentError, AgentExitedError, RpcError
from bridge.process.agent_process import AgentProcess
from bridge.wire.framing import Oversize

log = logging.getLogger(__name__)

JsonObj = dict[str, Any]


class Handler(Protocol):
    def notification(self, method: str, params: JsonObj) -> None: ...

    async def server_request(self, request_id: Any, method: str, params: JsonObj) -> Any: ...

    def batch_done(self) -> None: ...

    async def drain(self) -> None:
        """Backpressure: wait while the client lags (called between batches)."""

    def closed(self, error: AgentExitedError) -> None:
        """The process is gone (or being stopped): fail whatever waits on it."""


class CodexRpcError(AgentError):
    """Codex answered one of our requests with an error."""

    def __init__(self, agent: str, method: str, error: JsonObj) -> None:
        message = str(error.get("message") or error)
        super().__init__(
            INTERNAL_ERROR, f"codex {method} failed: {message}", {"agent": agent, "codexError": error}
        )
        self.codex_error = error


class _Pending:
    __slots__ = ("done", "error", "method", "result")

    def __init__(self, method: str) -> None:
        self.method = method
        self.done = anyio.Event()
        self.result: Any = None
        self.error: Exception | None = None


class AppServer:
    def __init__(self, proc: AgentProcess, agent: str, handler: Handler, exit_grace: float = 2.0) -> None:
        self.proc = proc
        self.agent = agent
        self.handler = handler
        self.exit_grace = exit_grace
        self.exited = anyio.Event()
        self.exit_error: AgentExitedError | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._write_lock = anyio.Lock()

    # -- outbound ---------------------------------------------------------------------------
    async def request(self, method: str, params: JsonObj) -> Any:
        if self.exit_error is not None:
            raise self.exit_error
        request_id = next(self._ids)
        slot = self._pending[request_id] = _Pending(method)
        try:
            await self._send({"id": request_id, "method": method, "params": params})
            await slot.done.wait()
        finally:
            self._pending.pop(request_id, None)
        if slot.error is not None:
            raise slot.error
        return slot.result

    async def notify(self, method: str, params: JsonObj | None = None) -> None:
        await self._send({"method": method} if params is None else {"method": method, "params": params})

    async def _send(self, message: JsonObj) -> None:
        data = orjson.dumps(message) + b"\n"
        try:
            async with self._write_lock:
                await self.proc.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            # stdin is gone, so the process is exiting: report it the way the reader will.
            with anyio.move_on_after(self.exit_grace * 2):
                await self.exited.wait()
            raise self.exit_error or AgentExitedError(self.agent, None, stderr_tail(self.proc)) from exc

    # -- inbound ----------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read until the process ends. Server requests run in this task group.

        The end is whichever comes first, stdout's EOF or the process's exit: Codex's own
        children can keep stdout open after Codex died, and the stop ladder kills them later."""
        try:
            async with anyio.create_task_group() as tg:
                task_status.started()
                ended = anyio.Event()
                read_done, exited = anyio.Event(), anyio.Event()
                tg.start_soon(self._read, tg, read_done, ended)
                tg.start_soon(self._wait_exit, exited, ended)
                await ended.wait()
                with anyio.move_on_after(self.exit_grace):  # let the other side catch up
                    await read_done.wait()
                    await exited.wait()
                self._fail_all(AgentExitedError(self.agent, self.proc.returncode, stderr_tail(self.proc)))
                tg.cancel_scope.cancel()
        finally:
            if self.exit_error is None:  # cancelled: the bridge is closing the session
                self._fail_all(AgentExitedError(self.agent, None, "the agent process was stopped"))

    async def _read(self, tg: anyio.abc.TaskGroup, done: anyio.Event, ended: anyio.Event) -> None:
        async for batch in self.proc.batches():
            for line in batch:
                self._dispatch(line, tg)
            self.handler.batch_done()
            await self.handler.drain()
        done.set()
        ended.set()

    async def _wait_exit(self, done: anyio.Event, ended: anyio.Event) -> None:
        await self.proc.process.wait()
        done.set()
        ended.set()

    def _dispatch(self, line: bytes | Oversize, tg: anyio.abc.TaskGroup) -> None:
        if isinstance(line, Oversize):
            log.warning("%s: dropped a %d-byte line from codex: %r", self.agent, line.size, line.head[:200])
            return
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("%s: codex wrote a line that is not JSON: %r", self.agent, line[:200])
            return
        if not isinstance(msg, dict):
            return
        method = msg.get("method")
        if isinstance(method, str):
            raw = msg.get("params")
            params: JsonObj = raw if isinstance(raw, dict) else {}
            if "id" in msg:
                tg.start_soon(self._serve, msg["id"], method, params)
            else:
                self.handler.notification(method, params)
            return
        slot = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
        if slot is None:
            log.debug("%s: response to an unknown request: %r", self.agent, msg)
            return
        error = msg.get("error")
        if isinstance(error, dict):
            slot.error = CodexRpcError(self.agent, slot.method, error)
        else:
            slot.result = msg.get("result")
        slot.done.set()

    async def _serve(self, request_id: Any, method: str, params: JsonObj) -> None:
        try:
            result = await self.handler.server_request(request_id, method, params)
            reply: JsonObj = {"id": request_id, "result": result}
        except RpcError as exc:
            reply = {"id": request_id, "error": exc.to_dict()}
        except Exception as exc:  # a bug of ours must still answer Codex, or its turn hangs
            log.exception("%s: handling codex request %s failed", self.agent, method)
            reply = {"id": request_id, "error": {"code": INTERNAL_ERROR, "message": str(exc)}}
        with contextlib.suppress(AgentExitedError):  # nobody left to answer
            await self._send(reply)

    def _fail_all(self, error: AgentExitedError) -> None:
        self.exit_error = error
        for slot in self._pending.values():
            slot.error = error
            slot.done.set()
        self.exited.set()
        self.handler.closed(error)


def stderr_tail(proc: AgentProcess) -> str:
    """Codex's stderr tail without the Rust backtrace it prints after a fatal error, so the
    error's last line is the reason ("Error: …"), not a frame number."""
    tail = proc.stderr_tail()
    cut = tail.find("\nStack backtrace:")
    return tail[:cut] if cut >= 0 else tail


def method_not_found(method: str) -> RpcError:
    return RpcError(METHOD_NOT_FOUND, f"agent-bridge does not serve {method}")
