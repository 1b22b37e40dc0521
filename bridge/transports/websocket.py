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

import argparse
import contextlib
import hmac
import logging
import os
import secrets
import socket
import stat
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import anyio
from anyio.abc import TaskGroup, TaskStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

if TYPE_CHECKING:
    from bridge.transports.http_acp import HttpAcp

from bridge.acp.connection import ClientConnection
from bridge.rpc.outbox import HIGH_WATER
from bridge.transports import ws_gate, ws_limits
from bridge.wire.framing import DEFAULT_MAX_LINE, Oversize

log = logging.getLogger(__name__)
# The library's own logger, never below INFO: at DEBUG it would log every request header,
# Authorization included.
_lib_log = logging.getLogger("bridge.transports.websocket.lib")
_lib_log.setLevel(logging.INFO)
# It logs every refused or broken handshake: at most a few a minute (ws_limits).
_lib_log.addFilter(ws_limits.BudgetFilter())

TOKEN_FILE = "ws-token"
MIN_TOKEN_CHARS = 32
MAX_MESSAGE = DEFAULT_MAX_LINE  # over it: -32600 and the connection keeps serving
ABSURD_FACTOR = 4  # over MAX_MESSAGE * this: close 1009 without reading it
MAX_CONNECTIONS = 32
QUEUE_LIMIT = 16 * 1024 * 1024  # per-connection outgoing queue (Outbox hard limit)
MIN_QUEUE_LIMIT = HIGH_WATER + 1024 * 1024
SEND_TIMEOUT = 30.0  # a client that takes no data for this long is disconnected
PING_INTERVAL = 20.0
HANDSHAKE_TIMEOUT = 10.0  # a connection that has not upgraded by then is closed
_HEAD = 4096
WRITE_SLICE = 64 * 1024  # bytes of frames handed to the socket per transport write


class WsConfigError(Exception):
    """A bad --listen / --token-file / --allow-* value: one line for stderr, exit 2."""


@dataclass(frozen=True)
class WsOptions:
    host: str  # as given on the command line (for the `listening` line)
    bind: str  # the address bound
    port: int  # the bound port (0 asks the system for a free one)
    token: str
    token_path: str
    origins: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    max_message: int = MAX_MESSAGE
    max_connections: int = MAX_CONNECTIONS
    queue_limit: int = QUEUE_LIMIT
    send_timeout: float = SEND_TIMEOUT
    ping_interval: float = PING_INTERVAL
    max_handshakes: int = ws_limits.MAX_HANDSHAKES
    sock: socket.socket | None = None  # bound and listening, when prepared by parse_options
    observer_token: str | None = None  # `--observer-token-file`: read-only connections
    observer_token_path: str | None = None

    def __repr__(self) -> str:  # keeps the token out of any log or traceback
        return f"WsOptions(host={self.host!r}, port={self.port}, token=<redacted>)"


# -- command line ----------------------------------------------------------------------------------
def parse_options(args: argparse.Namespace, state_dir: str) -> WsOptions:
    """Validate the WebSocket options, bind the listening socket, prepare the token (raises
    WsConfigError: one line for stderr, exit 2)."""
    host, bind, port = _parse_listen(args.listen)
    if not ws_gate.is_loopback(bind) and not getattr(args, "allow_remote", False):
        raise WsConfigError(
            f"refusing to listen on {host}: not a loopback address, so anyone who can reach it could "
            "try to drive your agents; use an SSH tunnel (ssh -L 8765:127.0.0.1:8765 host) or pass --allow-remote"
        )
    try:
        origins = tuple(ws_gate.check_origin_option(o) for o in getattr(args, "allow_origin", None) or ())
        hosts = [ws_gate.check_host_option(h) for h in getattr(args, "allow_host", None) or ()]
    except ws_gate.GateConfigError as exc:
        raise WsConfigError(str(exc)) from None
    if not ws_gate.is_loopback(bind) and bind not in ("0.0.0.0", "::"):
        # The bound address itself cannot be rebound by DNS: clients may name it.
        hosts.append(f"[{bind}]" if ":" in bind else bind)
    max_message = int(_positive(args, "ws_max_message", int) or MAX_MESSAGE)
    max_connections = int(_positive(args, "ws_max_connections", int) or MAX_CONNECTIONS)
    queue_limit = int(_positive(args, "ws_queue_limit", int) or QUEUE_LIMIT)
    if queue_limit < MIN_QUEUE_LIMIT:
        # Below the pacing level, a session's own client would be cut off instead of paced.
        raise WsConfigError(
            f"--ws-queue-limit must be at least {MIN_QUEUE_LIMIT} bytes (the daemon paces an agent "
            f"once {HIGH_WATER} bytes are queued for its client)"
        )
    send_timeout = float(_positive(args, "ws_send_timeout", float) or SEND_TIMEOUT)
    ping_interval = float(_positive(args, "ws_ping_interval", float) or PING_INTERVAL)
    token_file = getattr(args, "token_file", None)
    token = _read_token(token_file) if token_file else ""
    observer_file = getattr(args, "observer_token_file", None)
    observer_path = os.path.abspath(observer_file) if observer_file else None
    observer = (
        _read_token(observer_path, "--observer-token-file")
        if observer_path is not None and os.path.lexists(observer_path)
        else None
    )
    # Bind before writing a token: a second daemon started on a busy port must fail (exit 2)
    # without replacing the running one's token file.
    sock = _bind(host, bind, port)
    try:
        if token_file:
            token_path = os.path.abspath(token_file)
        else:
            token, token_path = _generate_token(state_dir)
        if observer_path is not None and observer is None:
            # Given a file that does not exist yet: a fresh observer token is written there.
            observer = _write_new_token(observer_path)
        if observer is not None and hmac.compare_digest(observer.encode(), token.encode()):
            raise WsConfigError("--observer-token-file holds the same token as the full-access one")
    except BaseException:
        sock.close()
        raise
    return WsOptions(
        host,
        bind,
        int(sock.getsockname()[1]),
        token,
        token_path,
        origins,
        tuple(hosts),
        max_message=max_message,
        max_connections=max_connections,
        queue_limit=queue_limit,
        send_timeout=send_timeout,
        ping_interval=ping_interval,
        sock=sock,
        observer_token=observer,
        observer_token_path=observer_path,
    )


def _bind(host: str, bind: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            bind, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise WsConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise WsConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _positive(args: argparse.Namespace, name: str, kind: type[int] | type[float]) -> int | float | None:
    raw = getattr(args, name, None)
    if raw is None:
        return None
    flag = "--" + name.replace("_", "-")
    try:
        value = kind(raw)
    except ValueError:
        raise WsConfigError(f"{flag} {raw!r} is not a number") from None
    if value <= 0:
        raise WsConfigError(f"{flag} must be greater than 0")
    return value


def _parse_listen(listen: str) -> tuple[str, str, int]:
    try:
        url = urlsplit(listen)
        port = url.port
    except ValueError:
        raise WsConfigError(f"--listen {listen!r}: not ws://HOST:PORT") from None
    if url.scheme == "wss":
        raise WsConfigError(
            "--listen wss:// is not built in: bind loopback and put a TLS proxy in front, or use an SSH tunnel"
        )
    if url.scheme != "ws" or not url.hostname or port is None:
        raise WsConfigError(f"--listen {listen!r}: expected ws://HOST:PORT (e.g. ws://127.0.0.1:8765)")
    if url.username or url.password or url.query or url.fragment or url.path not in ("", "/", ws_gate.PATH):
        raise WsConfigError(
            f"--listen {listen!r}: expected ws://HOST:PORT (the path is always {ws_gate.PATH})"
        )
    name = url.hostname
    host = f"[{name}]" if ":" in name else name
    # "localhost" binds the IPv4 loopback: one socket, so port 0 gives one port.
    bind = "127.0.0.1" if name.lower() == "localhost" else name
    return host, bind, port


def _read_token(path: str, flag: str = "--token-file") -> str:
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise WsConfigError(f"{flag} {path}: cannot read it ({exc.__class__.__name__})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise WsConfigError(
            f"{flag} {path} is accessible to other users (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it"
        )
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() or not c.isprintable() for c in token):
        raise WsConfigError(
            f"{flag} {path}: the token must be one word of at least {MIN_TOKEN_CHARS} printable characters"
        )
    return token


def _generate_token(state_dir: str) -> tuple[str, str]:
    """A fresh 256-bit token, written 0600 (atomically) to `<state-dir>/ws-token`."""
    path = os.path.join(os.path.abspath(state_dir), TOKEN_FILE)
    return _write_new_token(path), path


def _write_new_token(path: str) -> str:
    """A fresh 256-bit token, written 0600 (atomically) to `path`."""
    token = secrets.token_urlsafe(32)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, (token + "\n").encode())
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise WsConfigError(f"cannot write the WebSocket token to {path}: {exc.strerror}") from None
    return token


# -- serving ---------------------------------------------------------------------------------------
class ServeFn(Protocol):
    def __call__(
        self,
        incoming: AsyncIterator[list[bytes | Oversize]],
        write: Callable[[list[bytes]], Awaitable[None]],
        *,
        transport: str,
        outbox_limit: int | None = None,
        read_only: bool = False,
    ) -> Awaitable[ClientConnection]: ...


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
