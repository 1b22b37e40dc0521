"""The JSON-RPC link to one `codex app-server` process, over its stdio, on the daemon's one
JSON-RPC peer (`bridge.rpc.endpoint`).

App-server speaks JSON-RPC 2.0 without the `"jsonrpc"` member, one message per line, and
numbers its own requests from 0: its ids and ours are separate spaces. The endpoint correlates
our requests with their responses and hands everything else to a `Handler`:

- notifications are handled inline, in order, with no task hop (the hot path: thousands of
  deltas per turn), then `batch_done()` once per read so the handler can coalesce, and
  `drain()` so a lagging client slows the reading down instead of growing a queue;
- server requests (approvals) each get a task, and are always answered — with the
  handler's result, or an error if it raised — so a turn never waits on a lost request.

A protocol violation (a line over the size limit, an invalid message, an answer to a request
never sent) fails what waits on Codex — our requests, and the running turn through
`violation()` — at once. When the process's stdout ends, every pending request fails with
`AgentExitedError` (exit code and stderr tail) and `exited` is set.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import anyio
from anyio.abc import TaskStatus

from bridge import timeouts
from bridge.errors import (
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    AgentError,
    AgentExitedError,
    AgentProtocolError,
    RpcError,
)
from bridge.process.agent_process import AgentProcess
from bridge.rpc.endpoint import Endpoint
from bridge.rpc.outbox import Outbox
from bridge.wire import jsonrpc
from bridge.wire.framing import Oversize
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)


class Handler(Protocol):
    def notification(self, method: str, params: JsonObj) -> None: ...

    async def server_request(self, request_id: Any, method: str, params: JsonObj) -> Any: ...

    def batch_done(self) -> None: ...

    async def drain(self) -> None:
        """Backpressure: wait while the client lags (called between batches)."""

    def closed(self, error: AgentExitedError) -> None:
        """The process is gone (or being stopped): fail whatever waits on it."""

    def violation(self, error: AgentError) -> None:
        """Codex broke the protocol: fail the running turn with `error`."""


class CodexRpcError(AgentError):
    """Codex answered one of our requests with an error."""

    def __init__(self, agent: str, method: str, error: JsonObj) -> None:
        message = str(error.get("message") or error)
        super().__init__(
            INTERNAL_ERROR, f"codex {method} failed: {message}", {"agent": agent, "codexError": error}
        )
        self.codex_error = error


class AppServer:
    def __init__(
        self, proc: AgentProcess, agent: str, handler: Handler, exit_grace: float = timeouts.STOP_GRACE
    ) -> None:
        self.proc = proc
        self.agent = agent
        self.handler = handler
        self.exit_grace = exit_grace
        self.exited = anyio.Event()
        self.exit_error: AgentExitedError | None = None
        self._outbox = Outbox(self._write, whole_writes=True)  # `proc.send` buffers a batch whole
        self.endpoint = Endpoint(
            f"agent {agent}",
            self._outbox,
            self._on_request,
            self._on_notification,
            require_jsonrpc=False,
            on_violation=self._violation,
            int64=False,  # relayed, never stored as numbers
            peer_error=lambda method, error: CodexRpcError(agent, method, error),
            cancel_method=None,  # app-server has no `$/cancel_request`; turns end by turn/interrupt
        )

    # -- outbound ---------------------------------------------------------------------------
    async def request(self, method: str, params: JsonObj) -> Any:
        if self.exit_error is not None:
            raise self.exit_error
        return await self.endpoint.request(method, params)

    async def notify(self, method: str, params: JsonObj | None = None) -> None:
        self.endpoint.notify(method, params)

    async def _write(self, frames: list[bytes]) -> None:
        try:
            await self.proc.send(b"\n".join(frames) + b"\n")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # stdin is gone, so the process is exiting: what waits fails with its exit status
            # once the reader or the exit watcher sees it go.
            self._outbox.close()

    # -- inbound ----------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read until the process ends. Server requests run in the endpoint's task group.

        The end is whichever comes first, stdout's EOF or the process's exit: Codex's own
        children can keep stdout open after Codex died, and the stop ladder kills them later."""
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self._outbox.run)
                ended = anyio.Event()
                read_done, exited = anyio.Event(), anyio.Event()
                tg.start_soon(self._read, exited, read_done, ended)
                tg.start_soon(self._wait_exit, exited, ended)
                task_status.started()
                await ended.wait()
                with anyio.move_on_after(self.exit_grace):  # let the other side catch up
                    await read_done.wait()
                    await exited.wait()
                self._fail_all(AgentExitedError(self.agent, self.proc.returncode, stderr_tail(self.proc)))
                tg.cancel_scope.cancel()
        finally:
            if self.exit_error is None:  # cancelled: the bridge is closing the session
                self._fail_all(AgentExitedError(self.agent, None, "the agent process was stopped"))

    async def _read(self, exited: anyio.Event, done: anyio.Event, ended: anyio.Event) -> None:
        await self.endpoint.run(self._batches(exited))
        done.set()
        ended.set()

    async def _batches(self, exited: anyio.Event) -> AsyncIterator[list[bytes | Oversize]]:
        async for batch in self.proc.batches():
            yield batch
            # The endpoint handled the whole batch before asking for the next one.
            self.handler.batch_done()
            await self.handler.drain()
        # stdout closed: fail what waits with the exit status, not as a bare closed pipe.
        with anyio.move_on_after(self.exit_grace):
            await exited.wait()
        self._fail_all(AgentExitedError(self.agent, self.proc.returncode, stderr_tail(self.proc)))

    async def _wait_exit(self, done: anyio.Event, ended: anyio.Event) -> None:
        await self.proc.process.wait()
        done.set()
        ended.set()

    async def _on_notification(self, note: jsonrpc.Notification) -> None:
        self.handler.notification(note.method, note.params if isinstance(note.params, dict) else {})

    async def _on_request(self, req: jsonrpc.Request) -> Any:
        return await self.handler.server_request(
            req.id, req.method, req.params if isinstance(req.params, dict) else {}
        )

    def _violation(self, what: str) -> RpcError:
        log.warning("%s: codex broke the protocol: it %s", self.agent, what)
        error = AgentProtocolError(self.agent, what)
        self.handler.violation(error)
        return error

    def _fail_all(self, error: AgentExitedError) -> None:
        if self.exit_error is not None:
            return
        self.exit_error = error
        self.endpoint.close(error)
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
