"""What a peer without the token can cost the WebSocket listener: a bounded number of
descriptors and a bounded number of log lines.

- **Handshakes in progress.** A TCP connection that has not yet sent its whole upgrade
  request holds a descriptor and a task until `open_timeout`. At most `limit` are kept:
  a new one pushes the oldest out (its socket is aborted). Evicting the oldest rather than
  refusing the newest is what keeps the daemon usable under a flood: a real client sends
  its request as soon as it connects, so it is never the oldest for long, while idle
  sockets opened earlier are the first to go. Authenticated connections are not counted
  here (they have their own cap, `max_connections`).
- **Log lines.** Refused handshakes, evictions and the `websockets` library's own records
  are logged at most `burst` times per `window` seconds; the next line allowed says how
  many were left out. A flood fills neither the daily log nor stderr.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection

MAX_HANDSHAKES = 64
LOG_BURST = 20
LOG_WINDOW = 60.0


class LogBudget:
    """At most `burst` lines per `window` seconds."""

    def __init__(
        self, burst: int = LOG_BURST, window: float = LOG_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.window = window
        self._clock = clock
        self._start = -window
        self._used = 0
        self.skipped = 0  # lines left out since the last one allowed

    def allow(self) -> tuple[bool, int]:
        """(whether to log this line, how many were left out before it)."""
        now = self._clock()
        if now - self._start >= self.window:
            self._start, self._used = now, 0
        if self._used >= self.burst:
            self.skipped += 1
            return False, 0
        self._used += 1
        skipped, self.skipped = self.skipped, 0
        return True, skipped


def suffix(skipped: int) -> str:
    return f" ({skipped} similar lines left out before this one)" if skipped else ""


class BudgetFilter(logging.Filter):
    """A rate limit on a logger's records (the `websockets` library's: one per refused or
    broken handshake otherwise, some with a traceback)."""

    def __init__(self, budget: LogBudget | None = None) -> None:
        super().__init__()
        self.budget = budget or LogBudget()

    def filter(self, record: logging.LogRecord) -> bool:
        ok, skipped = self.budget.allow()
        if ok and skipped:
            record.msg = record.getMessage() + suffix(skipped)
            record.args = None
        return ok


class Handshakes:
    """The connections whose upgrade request has not arrived yet, oldest first."""

    def __init__(self, limit: int, log: logging.Logger) -> None:
        self.limit = limit
        self._log = log
        self._pending: dict[ServerConnection, None] = {}
        self._budget = LogBudget()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._pending)

    def opened(self, conn: ServerConnection) -> None:
        self._pending[conn] = None
        while len(self._pending) > self.limit:
            oldest = next(iter(self._pending))
            del self._pending[oldest]
            self.evicted += 1
            oldest.transport.abort()
            ok, skipped = self._budget.allow()
            if ok:
                self._log.warning(
                    "more than %d WebSocket handshakes in progress: closed the oldest (%d so far)%s",
                    self.limit,
                    self.evicted,
                    suffix(skipped),
                )

    def done(self, conn: ServerConnection) -> None:
        self._pending.pop(conn, None)

    def connection_class(self) -> type[ServerConnection]:
        """The library's connection, reporting to this table when it starts and ends."""
        table = self

        class Counted(ServerConnection):
            def connection_made(self, transport: Any) -> None:
                super().connection_made(transport)
                table.opened(self)

            def connection_lost(self, exc: Exception | None) -> None:
                table.done(self)
                super().connection_lost(exc)

        return Counted
