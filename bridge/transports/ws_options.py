"""The WebSocket transport's options: `--listen`, the token files, the limits — validated,
the listening socket bound and the token prepared before anything is served
(`parse_options`); and the shape of the function that serves one connection (`ServeFn`),
which the WebSocket and the HTTP transports share."""

from __future__ import annotations

import argparse
import contextlib
import hmac
import os
import secrets
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from bridge.acp.connection import ClientConnection
from bridge.paths import WS_TOKEN_FILE
from bridge.rpc.outbox import HIGH_WATER
from bridge.transports import ws_gate, ws_limits
from bridge.wire.framing import DEFAULT_MAX_LINE, Oversize

TOKEN_FILE = WS_TOKEN_FILE
MIN_TOKEN_CHARS = 32
MAX_MESSAGE = DEFAULT_MAX_LINE  # over it: -32600 and the connection keeps serving
MAX_CONNECTIONS = 32
QUEUE_LIMIT = 16 * 1024 * 1024  # per-connection outgoing queue (Outbox hard limit)
MIN_QUEUE_LIMIT = HIGH_WATER + 1024 * 1024
SEND_TIMEOUT = 30.0  # a client that takes no data for this long is disconnected
PING_INTERVAL = 20.0


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
