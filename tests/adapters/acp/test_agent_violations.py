"""An agent that breaks JSON-RPC costs its own turn, at once and with a clear error — not the
daemon, not another session, and not a wait for the stall timeout. The agent is the fake ACP
agent, a real process, told to print hostile lines mid-turn (`inject`); lines that are not
JSON at all (banners) stay harmless noise."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given

from bridge.errors import AGENT_PROTOCOL_ERROR
from tests.acp_client import AcpClient, RpcFailure
from tests.acp_schema import check_message
from tests.conftest import InProcess, in_process
from tests.hostile import FUZZ, agent_lines, chunks_seen, inject, nested

pytestmark = pytest.mark.anyio

# Far below the daemon's stall timeout (600 s): a violation must end the turn at once.
FAST = 15.0


def _lines(*lines: str) -> str:
    return "inject " + base64.b64encode("".join(line + "\n" for line in lines).encode()).decode()


VIOLATIONS = [
    ("an unhashable id", _lines('{"jsonrpc":"2.0","id":[1],"result":null}'), "id"),
    (
        "an object id with a string code",
        _lines('{"jsonrpc":"2.0","id":{},"error":{"code":"x","message":"m"}}'),
        "id",
    ),
    ("an answer to a request never made", _lines('{"jsonrpc":"2.0","id":"zz","result":{}}'), "never sent"),
    ("a truncated message", _lines('{"jsonrpc":"2.0","id":'), "invalid JSON"),
    (
        "a notification nested 300 deep",
        _lines('{"jsonrpc":"2.0","method":"x","params":' + nested(300) + "}"),
        "deeper",
    ),
    ("a JSON array", _lines("[1,2,3]"), "JSON object"),
]


@pytest.mark.parametrize(("what", "prompt", "said"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
async def test_a_protocol_violation_fails_the_turn_fast_and_the_session_goes_on(
    daemon: InProcess, what: str, prompt: str, said: str
) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    with anyio.fail_after(FAST):
        with pytest.raises(RpcFailure) as failed:
            await c.prompt(sid, prompt)
    assert failed.value.code == AGENT_PROTOCOL_ERROR
    assert "broke the protocol" in str(failed.value.message) and said in str(failed.value.message)
    assert failed.value.data["agent"] == "fake"
    # The agent and its session are still there for the next turn.
    with anyio.fail_after(FAST):
        assert (await c.prompt(sid, "echo again"))["stopReason"] == "end_turn"
    assert "again" in c.text(sid)


async def test_a_line_over_the_size_limit_fails_the_turn_fast(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    with anyio.fail_after(FAST):
        with pytest.raises(RpcFailure) as failed:
            await c.prompt(sid, f"inject_big {17 << 20}")
    assert failed.value.code == AGENT_PROTOCOL_ERROR
    assert "over the size limit" in str(failed.value.message)
    with anyio.fail_after(FAST):
        assert (await c.prompt(sid, "echo after"))["stopReason"] == "end_turn"


async def test_noise_lines_are_skipped_and_the_turn_ends_normally(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    with anyio.fail_after(FAST):
        result = await c.prompt(sid, _lines("Welcome to the agent!", "", "  see https://example.invalid"))
    assert result["stopReason"] == "end_turn"
    assert "injected" in c.text(sid)


@contextmanager
def _portal_daemon(tmp_path: Path) -> Iterator[tuple[BlockingPortal, InProcess]]:
    with ExitStack() as stack:
        portal = stack.enter_context(start_blocking_portal("asyncio"))
        d = stack.enter_context(portal.wrap_async_context_manager(in_process(tmp_path)))
        portal.call(d.client.initialize)
        yield portal, d


async def _turn_resolves(client: AcpClient, sid: str, lines: bytes) -> None:
    start = len(client.received)
    with anyio.fail_after(FAST):
        try:
            result = await client.prompt(sid, inject(lines))
        except RpcFailure as exc:
            assert exc.code == AGENT_PROTOCOL_ERROR, (lines[:300], exc.code, exc.message)
        else:
            assert result["stopReason"] == "end_turn", result
    for msg in client.received[start:]:
        check_message(msg, client._method_of)


async def _refuse(method: str, params: dict[str, Any]) -> Any:
    raise RpcFailure({"code": -32601, "message": f"the test client does not serve {method}"})


def test_fuzzed_agent_output_costs_at_most_its_own_turn(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with _portal_daemon(tmp_path) as (portal, d):
        c = d.client
        c.validate = False  # checked per example, with a readable failure
        c.handler = _refuse
        other = portal.call(c.new_session, d.cwd)
        turn = portal.start_task_soon(c.prompt, other, f"gate 40 {gate}")
        portal.call(chunks_seen, c, other, 20)
        victim = portal.call(c.new_session, d.cwd)

        @FUZZ
        @given(agent_lines())
        def costs_one_turn(lines: bytes) -> None:
            portal.call(_turn_resolves, c, victim, lines)

        costs_one_turn()
        assert not turn.done()
        gate.touch()
        assert turn.result(timeout=60)["stopReason"] == "end_turn"
        assert c.text(other).count("chunk ") == 40
