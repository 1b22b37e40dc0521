"""The correlation table every peer of the bridge shares (`bridge.rpc.correlation`): ids in
order, answers reach their own waiter only, late answers are told from foreign ones, and a
peer going away fails everyone still waiting, once."""

from __future__ import annotations

import anyio
import pytest

from bridge.errors import INTERNAL_ERROR, RpcError
from bridge.rpc.correlation import Correlator

pytestmark = pytest.mark.anyio


async def test_each_answer_reaches_its_own_request() -> None:
    table = Correlator()
    (one, first), (two, second) = table.open("a"), table.open("b")
    assert (one, two) == (1, 2) and (first.method, second.method) == ("a", "b")
    table.get(2).resolve({"for": "b"})  # type: ignore[union-attr]
    with anyio.fail_after(5):
        await second.done.wait()
    assert second.outcome() == {"for": "b"} and not first.done.is_set()


async def test_a_late_answer_is_known_as_ours_and_a_foreign_one_is_not() -> None:
    table = Correlator()
    rid, _ = table.open("a")
    table.forget(rid)
    assert table.get(rid) is None and table.was_sent(rid)
    assert not table.was_sent(rid + 1) and not table.was_sent(0) and not table.was_sent("1")
    assert len(table) == 0


async def test_the_peer_going_away_fails_every_waiter_and_keeps_answers_given() -> None:
    table = Correlator()
    _, answered = table.open("a")
    _, waiting = table.open("b")
    answered.resolve(7)
    gone = RpcError(INTERNAL_ERROR, "gone")
    table.fail_all(gone)
    table.fail_all(RpcError(INTERNAL_ERROR, "second reason"))  # the first reason stays
    assert answered.outcome() == 7
    with pytest.raises(RpcError) as raised:
        waiting.outcome()
    assert raised.value is gone
