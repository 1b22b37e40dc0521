"""Session ownership for one daemon: its registration (the lease on every session it runs),
the heartbeat that renews it, start-up recovery of sessions whose daemon is gone, taking a
session over, and catalog writes that never fail a turn. The rules are the store's
(bridge/store/base.py); this is where the session manager applies them."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from bridge.errors import StoreError
from bridge.store.base import (
    LIVE_STATUSES,
    Instance,
    LeaseHeld,
    SessionRecord,
    Store,
    Transport,
    new_instance,
    owner_gone,
)

if TYPE_CHECKING:
    from bridge.core.session import Session

log = logging.getLogger(__name__)


class Ownership:
    def __init__(
        self,
        store: Store,
        sessions: Mapping[str, Session],
        lease_seconds: float,
        transport: Transport,
        *,
        on_lost: Callable[[Session, Instance | None], None],
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.lease_seconds = lease_seconds
        # This daemon's registration in the store: the lease on every session it runs.
        self.instance: Instance = new_instance(transport, lease_seconds)
        self._on_lost = on_lost
        # Catalog fields asked for from synchronous code (`save_soon`), not written yet.
        self._unsaved: dict[str, dict[str, Any]] = {}
        self._unsaved_added = anyio.Event()

    async def register(self, ws_url: str | None = None) -> None:
        """(Re-)register this daemon, e.g. with its WebSocket URL once the listener is bound."""
        # The lease runs from this write, not from when the daemon began to start: a slow
        # start (the store's open, a loaded machine) must not leave the row expired before
        # its first renewal, when another daemon would take this one's new sessions.
        now = time.time()
        self.instance = dataclasses.replace(
            self.instance,
            heartbeat_at=now,
            expires_at=now + self.lease_seconds,
            ws_url=self.instance.ws_url if ws_url is None else ws_url,
        )
        try:
            await self.store.register(self.instance)
        except StoreError as exc:
            log.warning("could not register this daemon in the session store: %s", exc.message)

    async def heartbeat(self) -> None:
        """Renew this daemon's lease (all its sessions at once) at a third of its length,
        so that two missed renewals still leave it owned; then let go of any session that
        another daemon took over meanwhile (this one was paused past its lease)."""
        while True:
            # Renewed first, then every third: start-up recovery runs between the
            # registration and this loop, and may take a good part of the lease.
            try:
                await self.store.heartbeat(self.lease_seconds)
                await self._check_owned()
            except StoreError as exc:
                log.warning("could not renew this daemon's session lease: %s", exc.message)
            await anyio.sleep(self.lease_seconds / 3)

    async def _check_owned(self) -> None:
        # One read for all sessions (not one per session: with 200 open, that was ~70 ms of
        # the daemon's CPU every heartbeat); the rare lost one is then looked at alone.
        taken = await self.store.taken_over()
        for sid, owner in taken.items():
            session = self.sessions.get(sid)
            if session is None:
                continue
            holder = await self.store.instance(owner)
            if self.sessions.get(sid) is session:
                self._on_lost(session, holder)

    async def catalog_writer(self) -> None:
        while True:
            await self._unsaved_added.wait()
            self._unsaved_added = anyio.Event()
            while self._unsaved:
                await self.save(next(iter(self._unsaved)), touch=False)

    async def recover(self) -> None:
        """Sessions whose daemon is gone (lease expired, or its pid dead on this host):
        record how they ended. Sessions of live daemons are never touched."""
        try:
            await self.store.forget_instances()
            orphans = await self.store.orphaned_sessions()
        except StoreError as exc:
            log.warning("start-up recovery skipped: %s", exc.message)
            return
        for rec in orphans:
            try:
                if await self.store.acquire(rec.id) is None:
                    await self._close_orphan(rec)
                    await self.store.release(rec.id)
            except StoreError as exc:
                log.warning("could not recover session %s: %s", rec.id, exc.message)

    async def _close_orphan(self, rec: SessionRecord) -> None:
        """A session whose daemon died (its lease is ours now): a turn it was running is
        recorded as interrupted, and nothing runs for it until it is loaded or resumed."""
        if rec.status == "busy":
            self.store.append(rec.id, "bridge", b'{"bridge":{"type":"turn_interrupted","reason":"restart"}}')
            await self.store.flush()
        if rec.status != "closed":
            await self.store.update_session(rec.id, status="closed", touch=False)
            rec.status = "closed"

    # -- the catalog, failure-tolerant -----------------------------------------------------------
    async def save(self, session_id: str, *, touch: bool = True, **fields: Any) -> None:
        """A catalog write that never fails a turn: a store that cannot be written (full disk,
        a lock held too long) costs a warning, and the session keeps running."""
        # Fields `save_soon` queued for the session go with this write, in order.
        fields = {**self._unsaved.pop(session_id, {}), **fields}
        try:
            await self.store.update_session(session_id, touch=touch, **fields)
        except StoreError as exc:
            log.warning("session %s: catalog not updated (%s): %s", session_id, sorted(fields), exc.message)

    def save_soon(self, session_id: str, fields: dict[str, Any]) -> None:
        """`save` from synchronous code: written by the manager's catalog writer, or with
        the session's next `save`, whichever comes first."""
        self._unsaved.setdefault(session_id, {}).update(fields)
        self._unsaved_added.set()

    async def owners(self) -> dict[str, Instance]:
        """Every live daemon on the store by instance id (this one included)."""
        try:
            return {inst.id: inst for inst in await self.store.instances()}
        except StoreError as exc:
            log.warning("could not read the daemons sharing the store: %s", exc.message)
            return {self.instance.id: self.instance}

    async def live_owner(self, rec: SessionRecord) -> Instance | None:
        """The other live daemon that owns `rec`, if any."""
        if rec.owner is None or rec.owner == self.instance.id:
            return None
        try:
            inst = await self.store.instance(rec.owner)
        except StoreError:
            return None
        return None if owner_gone(inst) else inst


    async def take(self, rec: SessionRecord) -> None:
        """Take the session's lease for this daemon, or refuse (`LeaseHeld`, naming the
        owner) while another live daemon runs it. A session whose daemon died is closed
        first, as start-up recovery would have."""
        try:
            holder = await self.store.acquire(rec.id)
        except StoreError as exc:
            # No lease can be taken (store failing): run the session anyway, unrecorded.
            log.warning("session %s: lease not taken (%s); running it anyway", rec.id, exc.message)
            return
        if holder is not None:
            raise LeaseHeld(rec.id, holder)
        if rec.status in LIVE_STATUSES:
            try:
                await self._close_orphan(rec)
            except StoreError as exc:
                log.warning("session %s: %s", rec.id, exc.message)
        rec.owner = self.instance.id

    async def release(self, session_id: str) -> None:
        try:
            await self.store.flush()
            await self.store.release(session_id)
        except StoreError as exc:
            log.warning("session %s: lease not released (%s); it expires on its own", session_id, exc.message)
