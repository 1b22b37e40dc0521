"""The order in which the daemon received its peers' messages.

The receive loop stamps every inbound message with the next number of one daemon-wide
counter the moment it reads it, before any handler task runs; the handler reads its message's
number with `current()`. Numbers order messages across connections and tasks, which is what
`session/cancel` needs: it applies to the prompts received before it and to none received
after it, however long either takes to reach the session (a handler task not scheduled yet,
an agent restart in between). No clock is involved.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_counter = itertools.count(1)
# 0: no inbound message is being handled in this context.
_current: ContextVar[int] = ContextVar("arrival", default=0)


def stamp() -> int:
    """The next number: later than every message received so far."""
    return next(_counter)


def current() -> int:
    """The number of the inbound message this task is handling; outside a handler, a fresh
    one (what happens now comes after everything received so far)."""
    return _current.get() or stamp()


@contextmanager
def handling(number: int) -> Iterator[None]:
    """Run a message's handler (and the tasks it starts) as the handling of message `number`."""
    token = _current.set(number)
    try:
        yield
    finally:
        _current.reset(token)
