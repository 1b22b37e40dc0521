"""One listening socket, two servers: WebSocket upgrades go to the `websockets` library, every
other HTTP request to an ASGI server (uvicorn's h11 protocol serving `http_acp`).

Why not one ASGI stack for both: the WebSocket profile's hot path (`websocket.py`) writes
frames through the `websockets` sans-I/O protocol a slice at a time, and its limits (handshake
table, close codes, keepalive) are built and tested on that library; moving it under an ASGI
server would rewrite all of it for no gain on the wire. So the request head decides, before
either server sees a byte: the connection object `websockets` creates for each accepted socket
holds back its start until the head (up to the blank line) has arrived; a head without
`Upgrade: websocket` hands the socket — buffered bytes included — to the HTTP protocol
instead, and the `websockets` side never starts for it.

A socket still sending its head counts as a handshake in progress (`ws_limits.Handshakes`:
the oldest is evicted past the limit) and is aborted after `head_timeout` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection

from bridge.transports.ws_limits import Handshakes

MAX_HEAD = 16 * 1024  # past this without a blank line: the `websockets` parser refuses it


def is_upgrade(head: bytes) -> bool:
    """Whether a request head asks for a WebSocket (`Upgrade: websocket`, any case, any
    position in a comma list). Only decides where the bytes go; each server checks the rest."""
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if (
            sep
            and name.strip().lower() == b"upgrade"
            and b"websocket" in [v.strip().lower() for v in value.split(b",")]
        ):
            return True
    return False


def connection_class(
    table: Handshakes, http_protocol: Callable[[], asyncio.Protocol], head_timeout: float
) -> type[ServerConnection]:
    """The `create_connection` for `websockets.serve`: the library's connection, started only
    for upgrades, counted in `table` until its request is in."""

    class FrontDoor(ServerConnection):
        _held: bytearray | None = None  # the head so far, until the socket is routed
        _timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            # Not the library's start yet: that would begin a WebSocket handshake.
            self.transport = transport
            self._held = bytearray()
            table.opened(self)
            self._timer = asyncio.get_running_loop().call_later(head_timeout, self._too_slow)

        def data_received(self, data: bytes) -> None:
            held = self._held
            if held is None:
                super().data_received(data)
                return
            held.extend(data)
            end = held.find(b"\r\n\r\n")
            if end < 0 and len(held) < MAX_HEAD:
                return
            self._held = None
            if self._timer is not None:
                self._timer.cancel()
            buffered = bytes(held)
            if end >= 0 and not is_upgrade(buffered[:end]):
                table.done(self)
                protocol = http_protocol()
                self.transport.set_protocol(protocol)
                protocol.connection_made(self.transport)
                protocol.data_received(buffered)
                return
            super().connection_made(self.transport)
            super().data_received(buffered)

        def connection_lost(self, exc: Exception | None) -> None:
            table.done(self)
            if self._held is not None:
                # Closed before its head was in: the library never started, nothing to end.
                self._held = None
                if self._timer is not None:
                    self._timer.cancel()
                return
            super().connection_lost(exc)

        def eof_received(self) -> None:
            # Half-closed before its head: returning None closes the socket.
            if self._held is None:
                super().eof_received()

        def _too_slow(self) -> None:
            if self._held is not None:
                self.transport.abort()

    return FrontDoor
