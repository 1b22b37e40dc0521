"""No input takes the daemon down. The frames that once made it exit, and `hypothesis`-made
envelopes and params of every method, go to a real daemon process — over stdio with
`--trace` on, and over WebSocket from a second client — while a first client's 40-chunk turn
is provably in progress (the fake agent holds it half-way until the test lets it go). The
daemon stays up, every message it sends validates against ACP v1, every request with a
readable id gets exactly one answer, the turn ends `end_turn` with all its chunks, and a new
client can connect.

Hypothesis is synchronous; the daemon's clients live on an event loop in a helper thread
(anyio's blocking portal), and each example is one call into it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given

from tests.acp_client import AcpClient
from tests.conftest import bridge_cmd, fake_agent_config, subprocess_env
from tests.daemon_proc import daemon_process
from tests.e2e.ws_support import ws_client, ws_daemon
from tests.hostile import FUZZ, KNOWN_BAD, chunks_seen, envelopes, frame, send_checked

CHUNKS = 40


@contextmanager
def _turn(portal: BlockingPortal, client: AcpClient, cwd: str, gate: Path) -> Iterator[Future[Any]]:
    """A 40-chunk turn of `client`, held after its 20th chunk until the block ends."""
    sid = portal.call(client.new_session, cwd)
    turn = portal.start_task_soon(client.prompt, sid, f"gate {CHUNKS} {gate}")
    portal.call(chunks_seen, client, sid, CHUNKS // 2)
    yield turn
    assert not turn.done(), "the turn must still be running while the hostile input arrives"
    gate.touch()
    result = turn.result(timeout=60)
    assert result["stopReason"] == "end_turn", result
    assert client.text(sid).count("chunk ") == CHUNKS


def _hostile_then_fuzz(portal: BlockingPortal, client: AcpClient, cwd: str) -> None:
    client.validate = False  # checked per frame by send_checked, with a readable failure
    own = portal.call(client.new_session, cwd)
    past_int64 = frame(
        {
            "jsonrpc": "2.0",
            "id": "events-past-int64",
            "method": "_bridge/session/events",
            "params": {"sessionId": own, "after": 2**64 - 1},
        }
    )
    for name, f in [*KNOWN_BAD, ("an integer a store column cannot hold", past_int64)]:
        try:
            portal.call(send_checked, client, f)
        except BaseException as exc:
            raise AssertionError(f"after {name!r}") from exc

    @FUZZ
    @given(envelopes([own], cwd))
    def survives(f: Any) -> None:
        portal.call(send_checked, client, f)

    survives()


def test_hostile_frames_over_stdio_with_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    args = ["--config", str(fake_agent_config(tmp_path)), "--state-dir", str(tmp_path / "state")]
    cwd = str(tmp_path)
    with ExitStack() as stack:
        portal = stack.enter_context(start_blocking_portal("asyncio"))
        d = stack.enter_context(
            portal.wrap_async_context_manager(daemon_process([*args, "--trace", str(trace)]))
        )
        portal.call(d.client.initialize)
        with _turn(portal, d.client, cwd, tmp_path / "gate"):
            _hostile_then_fuzz(portal, d.client, cwd)
        assert d.process.returncode is None
        assert portal.call(d.client.initialize)["protocolVersion"] == 1
    assert d.process.returncode == 0, d.stderr.decode()[-3000:]
    assert b"Traceback" not in d.stderr, d.stderr.decode()[-3000:]
    records = [json.loads(line) for line in trace.read_text().split("\n") if line]
    assert any(r.get("dir") == "client>bridge" and "raw" in r for r in records)  # the 300-deep ones


def test_hostile_frames_over_websocket_from_a_second_client(tmp_path: Path) -> None:
    cwd = str(tmp_path)
    with ExitStack() as stack:
        portal = stack.enter_context(start_blocking_portal("asyncio"))
        d = stack.enter_context(portal.wrap_async_context_manager(ws_daemon(tmp_path)))
        first = stack.enter_context(portal.wrap_async_context_manager(ws_client(d))).acp
        portal.call(first.initialize)
        with (
            _turn(portal, first, cwd, tmp_path / "gate"),
            portal.wrap_async_context_manager(ws_client(d)) as second,
        ):
            portal.call(second.acp.initialize)
            _hostile_then_fuzz(portal, second.acp, cwd)
        assert d.process.returncode is None
        with portal.wrap_async_context_manager(ws_client(d)) as third:
            portal.call(third.acp.initialize)
            sid = portal.call(third.acp.new_session, cwd)
            assert portal.call(third.acp.prompt, sid, "echo still here")["stopReason"] == "end_turn"
        assert "Traceback" not in d.stderr.text(), d.stderr.text()[-3000:]


def test_piped_initialize_is_answered_though_stdin_closes_at_once(tmp_path: Path) -> None:
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": 1, "clientCapabilities": {}},
    }
    args = ["--config", str(fake_agent_config(tmp_path)), "--state-dir", str(tmp_path / "state")]
    done = subprocess.run(
        [*bridge_cmd(), *args],
        input=json.dumps(request).encode() + b"\n",  # written, then stdin closed
        capture_output=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    [answer] = [json.loads(line) for line in done.stdout.splitlines()]
    assert answer["id"] == 1 and answer["result"]["protocolVersion"] == 1, answer


def test_eof_drain_is_bounded(tmp_path: Path) -> None:
    """A request that cannot finish (a turn the agent never ends) does not hold the exit."""
    args = ["--config", str(fake_agent_config(tmp_path)), "--state-dir", str(tmp_path / "state")]

    async def main() -> None:
        async with daemon_process(args) as d:
            await d.client.initialize()
            sid = await d.client.new_session(str(tmp_path))
            await d.client.send_raw(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": "hang",
                        "method": "session/prompt",
                        "params": {"sessionId": sid, "prompt": [{"type": "text", "text": "hang"}]},
                    }
                ).encode()
            )
            await d.client.send_raw(b'{"jsonrpc":"2.0","id":"last","method":"session/list","params":{}}')
            assert "result" in await d.client.wait_response("last")
            started = anyio.current_time()
            assert d.process.stdin is not None
            await d.process.stdin.aclose()
            with anyio.fail_after(30):
                await d.process.wait()
            assert d.process.returncode == 0
            assert anyio.current_time() - started < 20

    anyio.run(main, backend="asyncio")
