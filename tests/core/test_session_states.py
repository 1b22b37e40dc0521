"""The session state machine: the table itself, row by row, and a real session (the daemon in
process, the fake ACP agent) walking through it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.core.session import Session
from bridge.core.session_states import (
    IN_TURN,
    STATUS,
    TRANSITIONS,
    Event,
    IllegalTransition,
    State,
    advance,
)
from tests.conftest import in_process
from tests.faults.support import fault_config

S, E = State, Event

# The machine as specified: (state, event) → next state. Every pair not listed is illegal.
EXPECTED = {
    (S.IDLE, E.PROMPT): S.RUNNING,
    (S.IDLE, E.AGENT_EXIT): S.FAILED,
    (S.IDLE, E.TAKEN_OVER): S.LOST,
    (S.IDLE, E.CLOSE): S.CLOSED,
    (S.RUNNING, E.CANCEL): S.CANCELLING,
    (S.RUNNING, E.TURN_END): S.IDLE,
    (S.RUNNING, E.AGENT_EXIT): S.FAILING,
    (S.RUNNING, E.TAKEN_OVER): S.LOST,
    (S.RUNNING, E.CLOSE): S.CLOSED,
    (S.CANCELLING, E.TURN_END): S.IDLE,
    (S.CANCELLING, E.AGENT_EXIT): S.FAILING,
    (S.CANCELLING, E.TAKEN_OVER): S.LOST,
    (S.CANCELLING, E.CLOSE): S.CLOSED,
    (S.FAILING, E.TURN_END): S.FAILED,
    (S.FAILING, E.AGENT_EXIT): S.FAILING,
    (S.FAILING, E.TAKEN_OVER): S.LOST,
    (S.FAILING, E.CLOSE): S.CLOSED,
    (S.FAILED, E.PROMPT): S.RUNNING,
    (S.FAILED, E.AGENT_EXIT): S.FAILED,
    (S.FAILED, E.TAKEN_OVER): S.LOST,
    (S.FAILED, E.CLOSE): S.CLOSED,
    (S.LOST, E.TURN_END): S.LOST,
    (S.LOST, E.AGENT_EXIT): S.LOST,
    (S.LOST, E.TAKEN_OVER): S.LOST,
    (S.LOST, E.CLOSE): S.CLOSED,
    (S.CLOSED, E.TURN_END): S.CLOSED,
    (S.CLOSED, E.AGENT_EXIT): S.CLOSED,
    (S.CLOSED, E.TAKEN_OVER): S.CLOSED,
    (S.CLOSED, E.CLOSE): S.CLOSED,
}


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
@pytest.mark.parametrize("event", list(Event), ids=lambda e: e.value)
def test_every_state_and_event(state: State, event: Event) -> None:
    if (state, event) in EXPECTED:
        assert advance(state, event) is EXPECTED[(state, event)]
    else:
        with pytest.raises(IllegalTransition, match=f"{state.value} cannot take event {event.value}"):
            advance(state, event)


def test_the_table_has_a_row_for_every_state_and_nothing_else() -> None:
    assert set(TRANSITIONS) == set(State)
    assert {(s, e): n for s, row in TRANSITIONS.items() for e, n in row.items()} == EXPECTED


def test_what_each_state_reports() -> None:
    assert set(STATUS) == set(State)
    assert {s for s in State if STATUS[s] == "busy"} == {S.RUNNING, S.CANCELLING}
    # A turn runs exactly in the states that a turn's end leaves.
    assert {s for s, e in EXPECTED if e is E.TURN_END and s not in (S.LOST, S.CLOSED)} == IN_TURN
    # Terminal states: no event leads out of CLOSED; only CLOSE leads out of LOST.
    assert {n for (s, _), n in EXPECTED.items() if s is S.CLOSED} == {S.CLOSED}
    assert {n for (s, _), n in EXPECTED.items() if s is S.LOST} == {S.LOST, S.CLOSED}


@pytest.mark.anyio
async def test_a_real_session_walks_the_table(tmp_path: Path) -> None:
    async with in_process(tmp_path, fault_config(tmp_path), cancel_grace=30.0) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        session: Session = d.bridge.manager.sessions[sid]
        assert session.state is S.IDLE and session.status == "idle"

        await c.send_request("p1", "session/prompt", _params(sid, "slow 1000 0.02"))
        await c.wait_for(lambda m: "slow 1 " in json.dumps(m))
        assert session.state is S.RUNNING and session.status == "busy" and session.turn_active
        await c.notify("session/cancel", {"sessionId": sid})
        assert (await c.wait_response("p1"))["result"]["stopReason"] == "cancelled"
        assert session.state is S.IDLE

        crashed = await c.request_raw("session/prompt", _params(sid, "crash"))
        assert "exit code 3" in json.dumps(crashed["error"])
        assert session.state is S.FAILED and session.status == "error"
        # The next prompt restarts the agent: FAILED → RUNNING → IDLE.
        assert (await c.prompt(sid, "echo again"))["stopReason"] == "end_turn"
        assert session.state is S.IDLE

        with pytest.raises(ValueError, match="follows its state"):
            session.status = "busy"
        await c.request("session/close", {"sessionId": sid})
        assert session.state is S.CLOSED and session.closed


def _params(sid: str, text: str) -> dict[str, object]:
    return {"sessionId": sid, "prompt": [{"type": "text", "text": text}]}
