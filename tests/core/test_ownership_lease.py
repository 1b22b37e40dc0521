"""A daemon's registration is its lease on every session it runs (bridge/core/ownership.py):
it must be live from the moment it is written until the heartbeat takes over, however long
the daemon took to start and to recover, or another daemon would take its new sessions."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import anyio
import pytest

from bridge.core.ownership import Ownership
from bridge.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


async def _store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(str(tmp_path / "sessions.db"))
    await store.open()
    return store


async def test_the_registration_runs_from_its_write_not_from_the_daemons_start(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        own = Ownership(store, {}, 2.0, "stdio", on_lost=lambda session, owner: None)
        # Built when the daemon began to start, longer ago than its lease (a slow start).
        past = time.time() - 5
        own.instance = dataclasses.replace(own.instance, heartbeat_at=past, expires_at=past + 2.0)
        await own.register()
        live = [i for i in await store.instances() if i.id == own.instance.id]
        assert live and live[0].expires_at > time.time() + 1.0
    finally:
        await store.close()


async def test_the_heartbeat_renews_at_once_then_every_third_of_the_lease(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    renewed = anyio.Event()
    real = store.heartbeat

    async def heartbeat(lease_seconds: float) -> float:
        expires = await real(lease_seconds)
        renewed.set()
        return expires

    store.heartbeat = heartbeat  # type: ignore[method-assign]
    try:
        own = Ownership(store, {}, 30.0, "stdio", on_lost=lambda session, owner: None)
        await own.register()
        async with anyio.create_task_group() as tg:
            tg.start_soon(own.heartbeat)
            # Recovery ran between the registration and this loop: no waiting 10 s for it.
            with anyio.fail_after(5):
                await renewed.wait()
            tg.cancel_scope.cancel()
    finally:
        await store.close()
