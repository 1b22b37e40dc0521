"""One client connection: its endpoint, what it negotiated, the sessions it owns and follows.
Implements `ClientLink` for the session core."""

from __future__ import annotations

import itertools
from typing import Any

from bridge.rpc.endpoint import Endpoint
from bridge.rpc.outbox import Outbox
from bridge.wire.types import JsonObj

_ids = itertools.count(1)


class ClientConnection:
    def __init__(self, outbox: Outbox, transport: str, *, read_only: bool = False) -> None:
        self.outbox = outbox
        self.transport = transport
        # Connected with the observer token: may read and follow, never act (spec/multi-client.md).
        self.read_only = read_only
        self._link_id = f"conn-{next(_ids)}"
        self.endpoint: Endpoint | None = None
        self.initialized = False
        self.protocol_version = 1
        self.client_capabilities: JsonObj = {}
        self.client_info: JsonObj | None = None
        self.auth: dict[str, JsonObj] = {}
        self.owned: set[str] = set()
        self.following: set[str] = set()
        self.gone = False

    @property
    def link_id(self) -> str:
        return self._link_id

    @property
    def closed(self) -> bool:
        return self.gone or self.outbox.closed

    def send_frame(self, frame: bytes) -> None:
        self.outbox.put(frame)

    async def request(self, method: str, params: Any) -> Any:
        assert self.endpoint is not None
        return await self.endpoint.request(method, params)

    async def wait_writable(self) -> None:
        await self.outbox.wait_writable()

    @property
    def queued_bytes(self) -> int:
        return self.outbox.queued_bytes
