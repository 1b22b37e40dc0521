"""The store interface: a session catalog and an append-only, per-session event log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Direction = Literal["client", "agent", "bridge"]


@dataclass
class SessionRecord:
    id: str
    agent: str
    cwd: str
    created_at: str
    updated_at: str
    agent_session_id: str | None = None
    additional_directories: list[str] | None = None
    mcp_servers: list[dict[str, Any]] = field(default_factory=list)
    title: str | None = None
    archived: bool = False
    status: str = "idle"
    parent_id: str | None = None
    deleted: bool = False
    agent_path: str | None = None
    agent_version: str | None = None


@dataclass(frozen=True)
class Event:
    seq: int
    at: str
    direction: Direction
    message: bytes  # the JSON message as sent on


class Store(Protocol):
    # Set when the log can no longer be written (the daemon keeps serving and says so).
    failed: Any
    def create_session(self, rec: SessionRecord) -> None: ...

    def get_session(self, session_id: str) -> SessionRecord | None: ...

    def update_session(self, session_id: str, *, touch: bool = True, **fields: Any) -> None: ...

    def list_sessions(
        self, *, cwd: str | None, offset: int, limit: int, include_archived: bool = True
    ) -> list[SessionRecord]: ...

    def sessions_with_status(self, statuses: tuple[str, ...]) -> list[SessionRecord]: ...

    def append(self, session_id: str, direction: Direction, message: bytes) -> int:
        """Give the message the session's next seq and queue it for the writer; returns the seq."""

    async def flush(self) -> None:
        """Return once everything appended so far is committed."""

    def events(self, session_id: str, after: int, limit: int) -> list[Event]: ...

    async def purge_session(self, session_id: str) -> None:
        """Erase what the session's log and catalog entry hold (`session/delete`): its event
        rows go, and its MCP servers (their `env` and `headers` may be secrets) are cleared.
        The catalog row stays, marked deleted, so the id keeps answering as deleted."""

    def close(self) -> None: ...
