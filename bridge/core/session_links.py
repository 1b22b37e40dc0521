"""Who a session talks to: its owner (the client that opened or took it), the followers
attached to it, and which of them may answer a permission request.

A base of `Session` (bridge/core/session.py), split from it by job: the session's turns and
log stay there, the set of clients it publishes to and asks lives here.
"""

from __future__ import annotations

import anyio

from bridge.core.links import ClientLink


class SessionLinks:
    def __init__(self) -> None:
        self._owner: ClientLink | None = None
        # Set (and replaced) whenever who may answer for the session changes: the owner, a
        # follower attaching or leaving, sharing turned on or off.
        self._owner_changed = anyio.Event()
        self.followers: list[ClientLink] = []
        # Followers attached as controllers (link ids): asked permissions while `shared`.
        self.controllers: set[str] = set()
        self.shared = False
        self.owner_epoch = 0  # +1 at every change of owner (grace timers check it)

    @property
    def owner(self) -> ClientLink | None:
        return self._owner

    @owner.setter
    def owner(self, link: ClientLink | None) -> None:
        self._owner = link
        self.owner_epoch += 1
        if link is not None:
            self.remove_follower(link)
        self.links_changed()

    def links_changed(self) -> None:
        self._owner_changed.set()
        self._owner_changed = anyio.Event()

    async def wait_links_changed(self) -> None:
        await self._owner_changed.wait()

    def add_follower(self, link: ClientLink, *, controller: bool) -> None:
        if link is self._owner:
            return
        if link not in self.followers:
            self.followers.append(link)
        if controller:
            self.controllers.add(link.link_id)
        else:
            self.controllers.discard(link.link_id)
        self.links_changed()

    def remove_follower(self, link: ClientLink) -> None:
        if link in self.followers:
            self.followers.remove(link)
        self.controllers.discard(link.link_id)
        self.links_changed()

    def permission_targets(self) -> list[ClientLink]:
        """Who may answer a permission request now: the connected owner, and, while the owner
        shares the session, every connected follower attached as a controller."""
        owner = self._owner
        targets = [owner] if owner is not None and not owner.closed else []
        if self.shared:
            targets += [f for f in self.followers if f.link_id in self.controllers and not f.closed]
        return targets
