"""Session stores. `open_store` picks the backend from the configured location."""

from __future__ import annotations

import os

from bridge.store.base import Store


def open_store(location: str | None, state_dir: str) -> Store:
    """The store for `store = …` / `--store` (a `postgresql://` URL), else SQLite at
    `<state-dir>/sessions.db`. Not opened yet: call `await store.open()`."""
    if location and location.startswith(("postgresql://", "postgres://")):
        import importlib

        # psycopg is imported only when a PostgreSQL store is asked for.
        postgres = importlib.import_module("bridge.store.postgres")
        store: Store = postgres.PostgresStore(location)
        return store
    from bridge.store.sqlite import SqliteStore

    return SqliteStore(location or os.path.join(state_dir, "sessions.db"))


def secure_state_dir(path: str) -> str | None:
    """Create the state dir 0700, or tighten an existing looser one (it holds the session
    store and the WebSocket token). Returns a problem to report when it cannot be made private."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as exc:
        return (
            f"the state dir {path} cannot be made private (0700): {exc.strerror}; run `agent-bridge doctor`"
        )
    return None
