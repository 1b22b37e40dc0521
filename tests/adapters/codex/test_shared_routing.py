"""The shared app-server's routing of notifications that arrive before a session's
`thread/start` is answered (adapters/codex/shared.py): they are held, then delivered to the
session whose thread they name, and only to it."""

from __future__ import annotations

from typing import Any

from adapters.codex.shared import SharedServer


class Opening:
    """What SharedServer uses of a CodexSession while it routes."""

    def __init__(self) -> None:
        self.thread_id = ""
        self.on_thread: Any = None
        self.got: list[tuple[str, Any]] = []

    def notification(self, method: str, params: Any) -> None:
        self.got.append((method, params))

    def has_child(self, thread: str) -> bool:
        return False

    def started(self, thread: str) -> None:  # what CodexSession does at thread/start's answer
        self.thread_id = thread
        self.on_thread(self)


def _note(thread: str, n: int) -> tuple[str, dict[str, Any]]:
    return "item/agentMessage/delta", {"threadId": thread, "delta": str(n)}


def test_what_came_early_reaches_a_session_opening_alone() -> None:
    shared = SharedServer("codex", object(), {})
    a = Opening()
    shared.attach(a)  # type: ignore[arg-type]
    shared.notification(*_note("t-a", 1))
    shared.notification(*_note("t-a", 2))
    a.started("t-a")
    assert a.got == [_note("t-a", 1), _note("t-a", 2)]
    shared.notification(*_note("t-a", 3))  # routed directly from now on
    assert a.got[-1] == _note("t-a", 3)


def test_early_notifications_go_to_their_own_session_when_several_open() -> None:
    shared = SharedServer("codex", object(), {})
    a, b = Opening(), Opening()
    shared.attach(a)  # type: ignore[arg-type]
    shared.attach(b)  # type: ignore[arg-type]
    shared.notification(*_note("t-a", 1))
    shared.notification(*_note("t-b", 1))
    a.started("t-a")  # b still opening: its notification stays held for it
    assert a.got == [_note("t-a", 1)]
    b.started("t-b")
    assert b.got == [_note("t-b", 1)]
    shared.notification(*_note("t-x", 9))  # nobody opening and no holder: not kept
    assert a.got == [_note("t-a", 1)] and b.got == [_note("t-b", 1)]
