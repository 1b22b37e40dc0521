"""The one JSON-RPC peer (`bridge.rpc.endpoint`) and its envelopes (`bridge.wire.jsonrpc`),
in process: whatever arrives, nothing raises, only valid envelopes come out, every request
with a readable id is answered exactly once; agents' violations fail what waits on them;
the end of input drains; handler errors keep their meaning."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError
from bridge.rpc.dispatch import Dispatcher
from bridge.rpc.endpoint import Endpoint
from bridge.rpc.outbox import Outbox
from bridge.wire import jsonrpc
from bridge.wire.framing import Oversize
from tests.hostile import FUZZ, KNOWN_BAD, dump, envelopes, json_values, nested

pytestmark = pytest.mark.anyio


class Peer:
    """An endpoint over a list: what it wrote is in `sent` (decoded)."""

    def __init__(self, **options: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        self.outbox = Outbox(self._write)
        self.notes: list[jsonrpc.Notification] = []
        self.endpoint = Endpoint("peer", self.outbox, self.on_request, self.on_notification, **options)
        self.written = anyio.Event()

    async def _write(self, frames: list[bytes]) -> None:
        self.sent += [orjson.loads(f) for f in frames]
        self.written.set()
        self.written = anyio.Event()

    async def on_request(self, req: jsonrpc.Request) -> Any:
        if req.method == "boom":
            raise ValueError("a bug")
        if req.method == "slow":
            await anyio.sleep_forever()
        if req.method == "wait":
            await self.release.wait()
        return {"echo": req.method}

    release = anyio.Event()

    async def on_notification(self, note: jsonrpc.Notification) -> None:
        if note.method == "boom":
            raise ValueError("a bug")
        self.notes.append(note)


def _valid_out(msg: dict[str, Any]) -> None:
    assert msg.get("jsonrpc") == "2.0"
    assert jsonrpc.valid_id(msg.get("id"))
    if "error" in msg:
        assert type(msg["error"]["code"]) is int and isinstance(msg["error"]["message"], str)


# -- envelopes -------------------------------------------------------------------------------------
@FUZZ
@given(
    st.one_of(
        json_values.map(dump),
        st.builds(nested, st.integers(1, 1100)),
        envelopes(["s"], "/tmp").map(lambda f: f.data.decode()),
    )
)
def test_whatever_decodes_is_usable_and_re_encodable(text: str) -> None:
    msg = jsonrpc.decode(text.encode())
    if isinstance(msg, jsonrpc.Invalid):
        assert type(msg.error.code) is int
        hash(msg.id)
        return
    orjson.dumps(msg.raw)  # nothing accepted is beyond what the daemon can write back
    if isinstance(msg, jsonrpc.Request | jsonrpc.Response):
        hash(msg.id)
        assert jsonrpc.valid_id(msg.id)
    if isinstance(msg, jsonrpc.Response) and msg.error is not None:
        assert type(msg.error["code"]) is int and isinstance(msg.error["message"], str)


def test_integers_past_int64_are_refused_for_clients_only() -> None:
    line = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"after":18446744073709551615}}'
    refused = jsonrpc.decode(line, int64=True)
    assert isinstance(refused, jsonrpc.Invalid) and refused.error.code == INVALID_PARAMS
    assert isinstance(jsonrpc.decode(line), jsonrpc.Request)  # an agent's, relayed as it is
    edge = (
        b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":9223372036854775807,"t":"12345678901234567890"}}'
    )
    assert isinstance(jsonrpc.decode(edge, int64=True), jsonrpc.Request)


def test_depth_is_refused_past_the_limit_only() -> None:
    ok = dump({"jsonrpc": "2.0", "id": 1, "method": "m", "params": nested(jsonrpc.MAX_DEPTH - 1)})
    assert isinstance(jsonrpc.decode(ok.encode()), jsonrpc.Request)
    deep = dump({"jsonrpc": "2.0", "id": 1, "method": "m", "params": nested(jsonrpc.MAX_DEPTH)})
    refused = jsonrpc.decode(deep.encode())
    assert isinstance(refused, jsonrpc.Invalid) and refused.error.code == INVALID_PARAMS and refused.id == 1
    # Brackets inside strings only cost a walk, never a refusal.
    text = dump({"jsonrpc": "2.0", "method": "m", "params": {"t": "{[" * 500}})
    assert isinstance(jsonrpc.decode(text.encode()), jsonrpc.Notification)


# -- the client side ---------------------------------------------------------------------------
async def _serve(peer: Peer, lines: list[bytes | Oversize], *, drain: float = 0.0) -> None:
    async def incoming() -> Any:
        yield lines

    async with anyio.create_task_group() as tg:
        await tg.start(peer.outbox.run)
        await peer.endpoint.run(incoming(), drain=drain)
        peer.outbox.close()


async def test_the_known_bad_frames_get_answers_and_break_nothing() -> None:
    peer = Peer()
    frames = [f.data for _, f in KNOWN_BAD] + [b'{"jsonrpc":"2.0","id":"after","method":"ping"}']
    frames.insert(0, b'{"jsonrpc":"2.0","method":"boom"}')  # a handler bug on a notification
    await _serve(peer, list(frames), drain=5)
    for msg in peer.sent:
        _valid_out(msg)
    by_id = {m["id"]: m for m in peer.sent}
    assert by_id["after"]["result"] == {"echo": "ping"}
    assert by_id["deep-meta"]["error"]["code"] == INVALID_PARAMS
    assert by_id["deep-unknown"]["error"]["code"] == INVALID_PARAMS
    assert "never-asked" not in by_id  # a response is never answered


def _carried_id(data: bytes) -> Any:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    rid = obj.get("id") if isinstance(obj, dict) else None
    return rid if jsonrpc.valid_id(rid) else None


@FUZZ
@given(st.lists(envelopes(["s"], "/tmp"), max_size=8))
def test_any_frames_every_readable_request_answered_once(frames: list[Any]) -> None:
    async def main() -> None:
        peer = Peer()
        await _serve(peer, [f.data for f in frames], drain=5)
        for msg in peer.sent:
            _valid_out(msg)
        for f in frames:
            # Only ids no other frame carries: an error answer to an invalid message echoes
            # its id too, and a reused id may overlap itself (answered "already in use").
            if f.expect is not None and sum(1 for f2 in frames if _carried_id(f2.data) == f.expect) == 1:
                assert sum(1 for m in peer.sent if m.get("id") == f.expect) == 1, (f, peer.sent)

    anyio.run(main, backend="asyncio")


async def test_a_handler_bug_is_an_internal_error_and_the_loop_goes_on() -> None:
    peer = Peer()
    await _serve(
        peer, [b'{"jsonrpc":"2.0","id":1,"method":"boom"}', b'{"jsonrpc":"2.0","id":2,"method":"x"}'], drain=5
    )
    by_id = {m["id"]: m for m in peer.sent}
    assert by_id[1]["error"]["code"] == INTERNAL_ERROR and "a bug" in by_id[1]["error"]["message"]
    assert by_id[2]["result"] == {"echo": "x"}


async def test_end_of_input_drains_requests_in_progress_within_the_grace() -> None:
    peer = Peer()
    peer.release = anyio.Event()

    async def release_soon() -> None:
        await anyio.lowlevel.checkpoint()
        peer.release.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_soon)
        await _serve(
            peer,
            [b'{"jsonrpc":"2.0","id":"w","method":"wait"}', b'{"jsonrpc":"2.0","id":"s","method":"slow"}'],
            drain=0.5,
        )
    ids = [m["id"] for m in peer.sent]
    assert ids == ["w"]  # answered; the one that never ends was cancelled at the grace's end


async def test_cancel_request_with_odd_params_is_ignored_and_a_real_one_cancels() -> None:
    peer = Peer()
    lines = [
        b'{"jsonrpc":"2.0","id":"s","method":"slow"}',
        b'{"jsonrpc":"2.0","method":"$/cancel_request","params":{"requestId":{}}}',
        b'{"jsonrpc":"2.0","method":"$/cancel_request","params":[1]}',
        b'{"jsonrpc":"2.0","method":"$/cancel_request","params":{"requestId":"s"}}',
    ]
    await _serve(peer, list(lines), drain=5)
    assert [(m["id"], m["error"]["code"]) for m in peer.sent] == [("s", -32800)]


# -- the agent side ----------------------------------------------------------------------------
async def test_violations_fail_what_waits_and_late_answers_do_not() -> None:
    reasons: list[str] = []

    def violation(what: str) -> RpcError:
        reasons.append(what)
        return RpcError(-32015, f"broke: {what}")

    peer = Peer(on_violation=violation, on_noise=lambda line: None)
    inbox_send, inbox = anyio.create_memory_object_stream[list[bytes | Oversize]](10)
    failures: list[RpcError] = []
    failed = anyio.Event()

    async def ask(method: str) -> None:
        try:
            await peer.endpoint.request(method, {})
        except RpcError as exc:
            failures.append(exc)
            failed.set()

    async with anyio.create_task_group() as tg:
        await tg.start(peer.outbox.run)
        await tg.start(peer.endpoint.run, inbox)
        with anyio.move_on_after(0.01):  # request 1: given up on, as a timeout would
            await peer.endpoint.request("first", {})
        tg.start_soon(ask, "second")
        while len(peer.sent) < 3:
            await peer.written.wait()
        await inbox_send.send([b"Welcome banner", b'{"jsonrpc":"2.0","id":1,"result":{}}'])  # noise, late
        await inbox_send.send([b'{"jsonrpc":"2.0","id":99,"result":{}}'])  # never sent
        with anyio.fail_after(5):
            await failed.wait()
        await inbox_send.aclose()
        peer.outbox.close()
    assert reasons == ["answered a request it was never sent (id 99)"]
    assert failures[0].code == -32015
    assert [m.get("method") for m in peer.sent] == ["first", "$/cancel_request", "second"]


async def test_without_the_jsonrpc_member_and_with_a_peer_error_mapping() -> None:
    """Codex's app-server dialect: no `"jsonrpc"` either way, no `$/cancel_request`."""
    peer = Peer(
        require_jsonrpc=False,
        cancel_method=None,
        peer_error=lambda method, error: RpcError(1, f"{method}: {error['message']}"),
    )
    inbox_send, inbox = anyio.create_memory_object_stream[list[bytes | Oversize]](10)
    async with anyio.create_task_group() as tg:
        await tg.start(peer.outbox.run)
        await tg.start(peer.endpoint.run, inbox)
        with anyio.move_on_after(0.01):
            await peer.endpoint.request("turn/start", {})
        await inbox_send.send([b'{"id":7,"method":"x","params":{}}'])
        tg.start_soon(inbox_send.send, [b'{"id":2,"error":{"code":5,"message":"no"}}'])
        with pytest.raises(RpcError, match="thread/start: no"):
            await peer.endpoint.request("thread/start", {})
        await inbox_send.aclose()
        peer.outbox.close()
    assert all("jsonrpc" not in m for m in peer.sent)
    assert [m.get("method") for m in peer.sent if "method" in m] == ["turn/start", "thread/start"]
    assert {"id": 7, "result": {"echo": "x"}} in peer.sent


# -- dispatch ------------------------------------------------------------------------------------
async def test_dispatch_keeps_error_messages_and_passes_any_param_name() -> None:
    async def fork(ctx: Any, params: dict[str, Any]) -> Any:
        raise RpcError(METHOD_NOT_FOUND, "agent 'x' cannot fork sessions")

    async def echo(ctx: Any, params: dict[str, Any]) -> Any:
        return params

    async def bug(ctx: Any, params: dict[str, Any]) -> Any:
        raise KeyError("k")

    d = Dispatcher({"session/fork": fork, "echo": echo, "bug": bug})

    def req(method: str, params: Any) -> jsonrpc.Request:
        msg = jsonrpc.classify({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert isinstance(msg, jsonrpc.Request)
        return msg

    with pytest.raises(RpcError, match="cannot fork sessions"):
        await d(None, req("session/fork", {}))
    with pytest.raises(RpcError, match="unknown method: nope"):
        await d(None, req("nope", {}))
    assert await d(None, req("echo", {"context": 1, "a-b": 2})) == {"context": 1, "a-b": 2}
    with pytest.raises(KeyError):  # raised as it is: the endpoint is where it becomes -32603
        await d(None, req("bug", {}))


async def test_direct_methods_answer_as_jsonrpcserver_does() -> None:
    """`direct` methods (the server's `initialize`) skip jsonrpcserver; every params shape
    gets the same result or error on both paths."""

    async def echo(ctx: Any, params: dict[str, Any]) -> Any:
        return {"ctx": ctx, "params": params}

    via_library = Dispatcher({"echo": echo})
    direct = Dispatcher({"echo": echo}, direct=frozenset({"echo", "absent"}))

    async def outcome(d: Dispatcher, raw: dict[str, Any]) -> Any:
        msg = jsonrpc.classify({"jsonrpc": "2.0", "id": 1, "method": "echo", **raw})
        assert isinstance(msg, jsonrpc.Request)
        try:
            return await d("c", msg)
        except RpcError as exc:
            return ("error", exc.code, exc.message, exc.data)

    shapes: list[dict[str, Any]] = [
        {},
        {"params": {}},
        {"params": {"context": 1, "a": [2]}},
        {"params": []},
        {"params": [1]},
    ]
    for raw in shapes:
        assert await outcome(direct, raw) == await outcome(via_library, raw), raw
    assert await outcome(direct, {"params": [1]}) == (
        "error",
        -32602,
        "params must be an object, not an array",
        None,
    )
    assert not direct.has("absent")
