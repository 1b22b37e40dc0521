"""The states of a bridge session and every transition between them, in one table.

`Session` (bridge/core/session.py) keeps only a `State` and moves it with `advance`; whether
a turn runs, whether it is being cancelled, the `status` stored and shown (`idle`, `busy`,
`error`, `closed`) are all read off the state. An event a state has no row for is a bug of
ours, raised as `IllegalTransition` rather than papered over.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    IDLE = "idle"  # no turn; a missing agent is started by the next prompt
    RUNNING = "running"  # a turn runs
    CANCELLING = "cancelling"  # a `session/cancel` applies to the running turn
    FAILING = "failing"  # the agent exited under the running turn, which unwinds
    FAILED = "failed"  # the agent exited; the next prompt restarts it
    LOST = "lost"  # another daemon took the session over: every request gets that error
    CLOSED = "closed"  # `session/close` ended it: nothing more reaches a client


class Event(Enum):
    PROMPT = "prompt"  # a turn starts (its agent is running)
    CANCEL = "cancel"  # a cancel reaches the running turn
    TURN_END = "turn_end"  # the turn is over, however it ended
    AGENT_EXIT = "agent_exit"  # the agent process is gone
    TAKEN_OVER = "taken_over"  # another daemon owns the session now
    CLOSE = "close"  # `session/close`, once its turn is over


S, E = State, Event
# state → event → next state. Absent: cannot happen (`IllegalTransition`).
TRANSITIONS: dict[State, dict[Event, State]] = {
    S.IDLE: {E.PROMPT: S.RUNNING, E.AGENT_EXIT: S.FAILED, E.TAKEN_OVER: S.LOST, E.CLOSE: S.CLOSED},
    S.RUNNING: {
        E.CANCEL: S.CANCELLING,
        E.TURN_END: S.IDLE,
        E.AGENT_EXIT: S.FAILING,
        E.TAKEN_OVER: S.LOST,
        E.CLOSE: S.CLOSED,  # a turn that did not unwind within the close's grace
    },
    S.CANCELLING: {
        E.TURN_END: S.IDLE,
        E.AGENT_EXIT: S.FAILING,
        E.TAKEN_OVER: S.LOST,
        E.CLOSE: S.CLOSED,
    },
    S.FAILING: {
        E.TURN_END: S.FAILED,
        E.AGENT_EXIT: S.FAILING,
        E.TAKEN_OVER: S.LOST,
        E.CLOSE: S.CLOSED,
    },
    # The prompt that follows restarted the agent first (`SessionManager.ensure_agent`).
    S.FAILED: {E.PROMPT: S.RUNNING, E.AGENT_EXIT: S.FAILED, E.TAKEN_OVER: S.LOST, E.CLOSE: S.CLOSED},
    # Terminal. What a stopping agent or an unwinding turn still reports changes nothing.
    S.LOST: {E.TURN_END: S.LOST, E.AGENT_EXIT: S.LOST, E.TAKEN_OVER: S.LOST, E.CLOSE: S.CLOSED},
    S.CLOSED: {E.TURN_END: S.CLOSED, E.AGENT_EXIT: S.CLOSED, E.TAKEN_OVER: S.CLOSED, E.CLOSE: S.CLOSED},
}

# The states in which a turn runs (a second prompt is refused as busy).
IN_TURN = frozenset({S.RUNNING, S.CANCELLING, S.FAILING})

# What the store keeps and clients are shown (`status` of session records and `_bridge/*`).
STATUS: dict[State, str] = {
    S.IDLE: "idle",
    S.RUNNING: "busy",
    S.CANCELLING: "busy",
    S.FAILING: "error",
    S.FAILED: "error",
    S.LOST: "closed",
    S.CLOSED: "closed",
}


class IllegalTransition(RuntimeError):
    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"session in state {state.value} cannot take event {event.value}")


def advance(state: State, event: Event) -> State:
    following = TRANSITIONS[state].get(event)
    if following is None:
        raise IllegalTransition(state, event)
    return following
