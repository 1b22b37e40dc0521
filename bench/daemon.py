"""`python -m bench.daemon OFF|NORMAL|FULL <agent-bridge args>`: the daemon unchanged except
for SQLite's `synchronous` pragma, to measure what the durability policy costs end to end."""

from __future__ import annotations

import sys

from bridge.__main__ import main as bridge_main
from bridge.store import sqlite


def _with_synchronous(level: str) -> None:
    original = sqlite.SqliteStore.__init__

    def init(self: sqlite.SqliteStore, path: str, *, synchronous: str = level) -> None:
        original(self, path, synchronous=synchronous)

    sqlite.SqliteStore.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    level = sys.argv[1].upper()
    if level not in ("OFF", "NORMAL", "FULL"):
        sys.exit(f"bench.daemon: synchronous must be OFF, NORMAL or FULL, not {level!r}")
    _with_synchronous(level)
    sys.exit(bridge_main(sys.argv[2:]))
