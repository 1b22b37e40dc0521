"""How the session core sees a client connection (implemented by the ACP layer)."""

from __future__ import annotations

from typing import Any, Protocol


class ClientLink(Protocol):
    @property
    def link_id(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def send_frame(self, frame: bytes) -> None:
        """Queue an encoded message for this client (ordered, batched)."""

    async def request(self, method: str, params: Any) -> Any:
        """An agent→client request; raises RpcError."""

    async def wait_writable(self) -> None:
        """Wait while this client's outgoing queue is above its high-water mark."""
