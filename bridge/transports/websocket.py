"""ACP over WebSocket: `agent-bridge serve --listen ws://127.0.0.1:PORT`, path `/acp`.

The shape of the ACP remote-transport RFD (GET /acp + Upgrade; one JSON-RPC message per
text frame; binary frames ignored), served with the `websockets` library. Every accepted
connection gets the same ACP server as stdio (`AcpServer.serve`), with its own sessions.

Secure by default (spec/websocket.md): the gate (`ws_gate`) runs in the handshake, before
any upgrade — Host, Origin, bearer token; loopback bind unless `--allow-remote`. Bounded:
message size, per-connection outgoing queue, a client that stops reading, connection count,
and keepalive pings for dead peers. The token is generated per launch and written 0600 to
`<state-dir>/ws-token` (or read from `--token-file`); it is never logged, never in argv or
URLs, and never in the environment agents inherit (it lives in this process's memory only).
"""

from __future__ import annotations

import logging
import secrets
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

if TYPE_CHECKING:
    from bridge.transports.http_acp import HttpAcp

from bridge.transports import ws_gate, ws_limits
from bridge.transports.ws_options import ServeFn, WsOptions
from bridge.wire.framing import Oversize

log = logging.getLogger(__name__)
# The library's own logger, never below INFO: at DEBUG it would log every request header,
# Authorization included.
_lib_log = logging.getLogger("bridge.transports.websocket.lib")
_lib_log.setLevel(logging.INFO)
# It logs every refused or broken handshake: at most a few a minute (ws_limits).
_lib_log.addFilter(ws_limits.BudgetFilter())

ABSURD_FACTOR = 4  # over MAX_MESSAGE * this: close 1009 without reading it
HANDSHAKE_TIMEOUT = 10.0  # a connection that has not upgraded by then is closed
_HEAD = 4096
WRITE_SLICE = 64 * 1024  # bytes of frames handed to the socket per transport write


class ClientTooSlow(Exception):
    """The client took no data for `send_timeout` seconds while we had some for it."""


class WebSocketTransport:
    def __init__(
        self,
        serve_connection: ServeFn,
        options: WsOptions,
        inspector: Callable[[Callable[[], ws_gate.Policy]], Any] | None = None,
    ) -> None:
        self._serve = serve_connection
        # Builds the session inspector's ASGI app (every HTTP path but /acp), given the gate.
        self._inspector = inspector
        self.options = options
        self._policy: ws_gate.Policy | None = None
        self._tg: TaskGroup | None = None
        self.http: HttpAcp
        self._active: set[ServerConnection] = set()
        # Came with the observer token (weak: a handshake that fails after the gate never
        # reaches `_handler` to be discarded).
        self._observers: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        self.refused = 0  # handshakes refused by the gate (tests and diagnostics)
        self.accepted = 0
        # Before authentication a peer costs a bounded number of descriptors and log lines.
        self.handshakes = ws_limits.Handshakes(options.max_handshakes, log)
        self._refusal_log = ws_limits.LogBudget()

    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen; `task_status.started(port)` once connections are accepted. On cancel:
        stop listening, close every connection (1001), wait for them (bounded)."""
        # The RFD's Streamable HTTP profile shares the port and the path (imported here: only
        # `--listen` pays for Starlette and uvicorn, never the stdio path).
        from bridge.transports import front_door
        from bridge.transports.http_acp import HttpAcp
        from bridge.transports.http_server import HttpServer

        o = self.options
        async with anyio.create_task_group() as tg:
            self._tg = tg
            inspector = self._inspector(self._gate_policy) if self._inspector is not None else None
            self.http = HttpAcp(self._serve, o, self._gate_policy, self._has_room, tg, inspector)
            http_server = HttpServer(self.http, max_requests=o.max_connections * 8 + 16, max_head=front_door.MAX_HEAD)
            where: dict[str, Any] = (
                {"sock": o.sock} if o.sock is not None else {"host": o.bind, "port": o.port}
            )
            server: Server = await serve(
                self._handler,
                **where,
                process_request=self._process_request,
                process_response=self._process_response,
                create_connection=front_door.connection_class(
                    self.handshakes, http_server.protocol_factory(), HANDSHAKE_TIMEOUT
                ),
                open_timeout=HANDSHAKE_TIMEOUT,
                compression=None,  # no inflate bombs; ACP frames are small and many
                max_size=o.max_message * ABSURD_FACTOR,
                max_queue=4,
                write_limit=256 * 1024,
                ping_interval=o.ping_interval,
                ping_timeout=o.ping_interval,
                close_timeout=5,
                server_header="agent-bridge",
                logger=_lib_log,
            )
            try:
                port = int(server.sockets[0].getsockname()[1])
                self._policy = ws_gate.Policy.build(o.token, port, o.origins, o.hosts, o.observer_token)
                log.info("WebSocket transport listening on %s port %d", o.bind, port)
                task_status.started(port)
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    server.close(close_connections=True)
                    self.http.close_all()
                    with anyio.move_on_after(10):
                        await server.wait_closed()
                    http_server.shutdown()
                tg.cancel_scope.cancel()

    # -- the gate ------------------------------------------------------------------------------------
    def _gate_policy(self) -> ws_gate.Policy:
        assert self._policy is not None
        return self._policy

    def _has_room(self) -> bool:
        return len(self._active) + len(self.http.connections) < self.options.max_connections

    def _process_response(self, ws: ServerConnection, request: Request, response: Response) -> None:
        if response.status_code == HTTPStatus.SWITCHING_PROTOCOLS:
            # The RFD names every connection on the 101; a WebSocket needs no id afterwards
            # (the socket is the connection), so it is only reported, never looked up.
            response.headers["Acp-Connection-Id"] = secrets.token_urlsafe(18)

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        assert self._policy is not None
        self.handshakes.done(ws)  # its request is here: no longer an idle handshake
        refusal = ws_gate.check(self._policy, request.path, list(request.headers.raw_items()))
        if refusal is None and not self._has_room():
            refusal = ws_gate.Refusal(
                HTTPStatus.SERVICE_UNAVAILABLE, f"too many connections (limit {self.options.max_connections})"
            )
        peer = _peer(ws)
        if refusal is None:
            self.accepted += 1
            observer = ws_gate.granted(self._policy, list(request.headers.raw_items())) == "observer"
            if observer:
                self._observers.add(ws)
            log.info("WebSocket connection from %s accepted%s", peer, " (observer, read-only)" if observer else "")
            return None
        self.refused += 1
        logged, skipped = self._refusal_log.allow()
        if logged:
            log.info(
                "WebSocket handshake from %s refused: %d %s (origin=%s host=%s)%s",
                peer,
                refusal.status,
                refusal.reason,
                _shown(request.headers.get_all("Origin")),
                _shown(request.headers.get_all("Host")),
                ws_limits.suffix(skipped),
            )
        response = ws.respond(refusal.status, refusal.body)
        if refusal.status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="agent-bridge"'
        return response

    # -- one connection --------------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        """The library's task for a connection: hands it to our task group and waits, so the
        ACP work runs under the daemon's structured concurrency."""
        if len(self._active) >= self.options.max_connections:
            await ws.close(CloseCode.TRY_AGAIN_LATER, "too many connections")
            return
        assert self._tg is not None
        done = anyio.Event()
        self._active.add(ws)
        try:
            self._tg.start_soon(self._serve_one, ws, done)
            await done.wait()
        finally:
            self._active.discard(ws)
            self._observers.discard(ws)

    async def _serve_one(self, ws: ServerConnection, done: anyio.Event) -> None:
        peer = _peer(ws)
        code, reason = CloseCode.NORMAL_CLOSURE, ""
        try:
            try:
                conn = await self._serve(
                    self._incoming(ws),
                    self._writer(ws),
                    transport="websocket",
                    outbox_limit=self.options.queue_limit,
                    read_only=ws in self._observers,
                )
            except* ClientTooSlow:
                code = CloseCode.POLICY_VIOLATION
                reason = f"client too slow: it read nothing for {self.options.send_timeout:g} s"
            except* Exception:
                # A failure of ours on one connection ends that connection, never the listener
                # and the other clients' sessions.
                log.exception("WebSocket connection from %s failed", peer)
                code, reason = CloseCode.INTERNAL_ERROR, "internal error"
            else:
                if conn.outbox.overflowed:
                    code = CloseCode.POLICY_VIOLATION
                    reason = f"client too slow: outgoing queue over {self.options.queue_limit} bytes"
            if code != CloseCode.NORMAL_CLOSURE:
                log.warning("disconnecting WebSocket client %s (close %d): %s", peer, code, reason)
            else:
                log.info("WebSocket connection from %s closed", peer)
            await ws.close(code, reason)
        finally:
            done.set()

    async def _incoming(self, ws: ServerConnection) -> AsyncIterator[list[bytes | Oversize]]:
        limit = self.options.max_message
        while True:
            try:
                message = await ws.recv()
            except ConnectionClosed:
                return
            if isinstance(message, bytes):
                log.debug("binary frame of %d bytes ignored (ACP uses text frames)", len(message))
                continue
            data = message.encode()
            if len(data) > limit:
                yield [Oversize(data[:_HEAD], len(data))]
            else:
                yield [data]

    def _writer(self, ws: ServerConnection) -> Callable[[list[bytes]], Awaitable[None]]:
        timeout = self.options.send_timeout
        protocol = ws.protocol

        async def write(frames: list[bytes]) -> None:
            # The hot path: frames are encoded by the library's sans-I/O protocol and written
            # a slice at a time in one transport call (not one `send()` and one syscall per
            # message), then flow control (`drain`, above the write limit) waits for the client.
            # The deadline moves on with every slice the client takes: only a client that takes
            # nothing for `timeout` seconds is cut off, however long the batch.
            with anyio.CancelScope() as scope:
                start = 0
                try:
                    while start < len(frames):
                        if protocol.state is not State.OPEN:
                            return  # closing: the receive side sees it and ends the connection
                        size = 0
                        end = start
                        while end < len(frames) and size < WRITE_SLICE:
                            protocol.send_text(frames[end])
                            size += len(frames[end])
                            end += 1
                        ws.transport.writelines([chunk for chunk in protocol.data_to_send() if chunk])
                        start = end
                        scope.deadline = anyio.current_time() + timeout
                        await ws.drain()
                except (ConnectionClosed, OSError):
                    return
            if scope.cancelled_caught:
                raise ClientTooSlow()

        return write


def _peer(ws: ServerConnection) -> str:
    try:
        addr = ws.remote_address
        return f"{addr[0]}:{addr[1]}"
    except Exception:
        return "?"


def _shown(values: list[str]) -> str:
    # Attacker-controlled: quoted and cut short; repeated headers joined.
    return "-" if not values else repr(", ".join(values)[:200])
