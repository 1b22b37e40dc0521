"""Request/response correlation, the one table of requests we sent and still wait on.

Every peer of the bridge that answers our requests goes through it: the JSON-RPC `Endpoint`
(the client connection, ACP agents, Codex's app-server) and Claude Code's control protocol
(`control_request`/`control_response`, matched by `request_id`), so numbering, late answers
and failing every waiter when the peer goes away behave the same everywhere.
"""

from __future__ import annotations

from typing import Any

import anyio


class Pending:
    """One request waiting for its answer: the result, or the error its caller gets."""

    __slots__ = ("done", "error", "method", "result")

    def __init__(self, method: str) -> None:
        self.method = method
        self.done = anyio.Event()
        self.result: Any = None
        self.error: Exception | None = None

    def resolve(self, result: Any) -> None:
        if not self.done.is_set():
            self.result = result
            self.done.set()

    def fail(self, error: Exception) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class Correlator:
    """Numbers our requests 1, 2, 3… and keeps a `Pending` for each until its caller stops
    waiting (answered, failed, cancelled, timed out)."""

    def __init__(self) -> None:
        self._last = 0
        self._pending: dict[int, Pending] = {}

    def open(self, method: str) -> tuple[int, Pending]:
        self._last += 1
        slot = self._pending[self._last] = Pending(method)
        return self._last, slot

    def forget(self, rid: int) -> None:
        self._pending.pop(rid, None)

    def get(self, rid: object) -> Pending | None:
        return self._pending.get(rid) if isinstance(rid, int) else None

    def was_sent(self, rid: object) -> bool:
        """An id we used, whether or not anyone still waits on it (a late answer)."""
        return isinstance(rid, int) and 0 < rid <= self._last

    def fail_all(self, error: Exception) -> None:
        for slot in self._pending.values():
            slot.fail(error)

    def __len__(self) -> int:
        return len(self._pending)
