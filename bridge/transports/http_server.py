"""uvicorn's HTTP/1.1 protocol (h11) for the sockets `front_door` hands over, without
uvicorn's own server loop: the listening socket, signals and shutdown stay the daemon's.

HTTP/1.1 only. The RFD asks for HTTP/2, which in practice means TLS with ALPN; the daemon has
no TLS (loopback, SSH tunnel, or a TLS proxy in front — which may speak HTTP/2 to clients),
and an HTTP/1.1 client simply opens one TCP connection per open stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp
from uvicorn.server import ServerState

from bridge.transports import ws_limits

KEEP_ALIVE = 5.0  # an idle keep-alive socket between requests is closed after this

_error_log = logging.getLogger("uvicorn.error")
_error_log.addFilter(ws_limits.BudgetFilter())
# One line per request otherwise (path and peer, never headers): off, the daemon logs its own.
logging.getLogger("uvicorn.access").disabled = True


class HttpServer:
    def __init__(self, app: ASGIApp, *, max_requests: int, max_head: int) -> None:
        self.config = uvicorn.Config(
            app,
            http="h11",
            ws="none",  # upgrades never reach it (front_door sends them to `websockets`)
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            date_header=False,
            headers=[("Server", "agent-bridge")],
            timeout_keep_alive=int(KEEP_ALIVE),
            limit_concurrency=max_requests,
            h11_max_incomplete_event_size=max_head,
        )
        self.config.load()
        self.state = ServerState()
        self.state.default_headers = list(self.config.encoded_headers)

    def protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        config, state = self.config, self.state

        def create() -> asyncio.Protocol:
            return config.http_protocol_class(config=config, server_state=state, app_state={})  # type: ignore[call-arg]

        return create

    def shutdown(self) -> None:
        """Close every open HTTP connection once its response is done, and end the responses
        still running (SSE streams): the daemon is exiting, its ACP connections are ending."""
        for connection in list(self.state.connections):
            connection.shutdown()
        for task in list(self.state.tasks):
            task.cancel()
