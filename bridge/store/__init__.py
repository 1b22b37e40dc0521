"""Session stores. `open_store` picks the backend from the configured location."""

from __future__ import annotations

import os

from bridge.store.base import Store


def open_store(location: str | None, state_dir: str) -> Store:
    """The store for `store = …` / `--store` (a `postgresql://` URL), else SQLite at
    `<state-dir>/sessions.db`. Not opened yet: call `await store.open()`."""
    if location and location.startswith(("postgresql://", "postgres://")):
        from bridge.store.postgres import PostgresStore  # psycopg only when asked for

        return PostgresStore(location)
    from bridge.store.sqlite import SqliteStore

    return SqliteStore(location or os.path.join(state_dir, "sessions.db"))
