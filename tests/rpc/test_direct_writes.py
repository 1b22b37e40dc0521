"""Answers and requests written by their own task (`Outbox.send`), and the endpoint's own
request tasks (plain asyncio tasks): frames still leave in the order they were put or sent,
behind whatever is queued or being written, after the log commit (`before_write`); a failed
write ends the writer as before; and however the endpoint stops, no request task outlives
it."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import orjson
import pytest

from bridge.rpc.endpoint import Endpoint
from bridge.rpc.outbox import Outbox
from bridge.wire import jsonrpc

pytestmark = pytest.mark.anyio


class Wire:
    """A write function that records each call's frames and can be held mid-write."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.hold: anyio.Event | None = None
        self.entered = anyio.Event()
        self.fail: Exception | None = None

    async def write(self, frames: list[bytes]) -> None:
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        self.calls.append(frames)

    @property
    def frames(self) -> list[bytes]:
        return [f for call in self.calls for f in call]


async def test_send_with_nothing_queued_commits_then_writes_in_the_callers_turn() -> None:
    wire = Wire()
    order: list[str] = []

    async def commit() -> None:
        order.append("commit")

    outbox = Outbox(wire.write, before_write=commit)
    # No writer task running: only the caller can have written it.
    await outbox.send(b"a")
    assert wire.calls == [[b"a"]] and order == ["commit"]


async def test_send_goes_behind_queued_frames_and_a_write_in_progress() -> None:
    wire = Wire()
    outbox = Outbox(wire.write)
    async with anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        outbox.put(b"note-1")
        await outbox.send(b"answer-1")  # queued behind note-1: not written ahead of it
        assert wire.frames == []
        wire.hold = anyio.Event()
        await wire.entered.wait()  # the writer holds [note-1, answer-1] mid-write
        outbox.put(b"note-2")
        await outbox.send(b"answer-2")
        wire.hold.set()
        wire.hold = None
        outbox.close()
    assert wire.frames == [b"note-1", b"answer-1", b"note-2", b"answer-2"]


async def test_frames_put_while_a_send_commits_wait_for_it() -> None:
    wire = Wire()
    committing = anyio.Event()
    go_on = anyio.Event()

    async def commit() -> None:
        committing.set()
        await go_on.wait()  # a commit that yields (the log's worker thread, say)

    outbox = Outbox(wire.write, before_write=commit)
    async with anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        tg.start_soon(outbox.send, b"answer")
        await committing.wait()
        outbox.put(b"note")
        await outbox.send(b"answer-2")
        go_on.set()
        outbox.close()
    assert wire.frames == [b"answer", b"note", b"answer-2"]


async def test_a_send_cancelled_in_its_commit_is_still_written_in_order() -> None:
    wire = Wire()
    committing = anyio.Event()
    blocked = True

    async def commit() -> None:
        if blocked:
            committing.set()
            await anyio.sleep_forever()

    outbox = Outbox(wire.write, before_write=commit)
    async with anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        async with anyio.create_task_group() as inner:
            inner.start_soon(outbox.send, b"answer")
            await committing.wait()
            outbox.put(b"note")
            blocked = False  # the writer's own commit goes through
            inner.cancel_scope.cancel()
        outbox.close()
    assert wire.frames == [b"answer", b"note"]


async def test_a_failed_send_ends_the_writer_with_its_error() -> None:
    wire = Wire()
    wire.fail = BrokenPipeError()
    outbox = Outbox(wire.write)
    with pytest.raises(BaseExceptionGroup) as caught:
        async with anyio.create_task_group() as tg:
            await tg.start(outbox.run)
            await outbox.send(b"answer")  # the sender is not the one who fails
    assert caught.group_contains(BrokenPipeError)


async def test_a_send_cancelled_before_it_starts_still_hands_its_frame_over() -> None:
    # A request cancelled at once still reaches the peer before the `$/cancel_request` naming it.
    wire = Wire()
    outbox = Outbox(wire.write)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await outbox.send(b"request")
    assert scope.cancelled_caught and outbox.queued_bytes == len(b"request")
    async with anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        outbox.close()
    assert wire.frames == [b"request"]


# -- the endpoint's request tasks ---------------------------------------------------------------
def _own_tasks() -> set[asyncio.Task[Any]]:
    me = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not me and "_serve_request" in repr(t.get_coro())}


class Peer:
    def __init__(self) -> None:
        self.wire = Wire()
        self.outbox = Outbox(self.wire.write)
        self.started = anyio.Event()
        self.cancelled: list[Any] = []
        self.endpoint = Endpoint("peer", self.outbox, self.on_request, self.on_notification)

    async def on_request(self, req: jsonrpc.Request) -> Any:
        if req.method == "slow":
            self.started.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                self.cancelled.append(req.id)
                raise
        if req.method == "x":
            self.endpoint.notify("note", {"before": req.id})
        return {"echo": req.id}

    async def on_notification(self, note: jsonrpc.Notification) -> None:
        return None

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [orjson.loads(f) for f in self.wire.frames]


def _req(rid: Any, method: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method})


async def test_a_handlers_notifications_reach_the_peer_before_its_answer() -> None:
    peer = Peer()

    async def incoming() -> Any:
        yield [_req(1, "x"), _req(2, "x")]

    async with anyio.create_task_group() as tg:
        await tg.start(peer.outbox.run)
        await peer.endpoint.run(incoming(), drain=5)
        peer.outbox.close()
    for rid in (1, 2):
        note = next(i for i, m in enumerate(peer.sent) if m.get("params") == {"before": rid})
        answer = next(i for i, m in enumerate(peer.sent) if m.get("id") == rid)
        assert note < answer
    assert not _own_tasks()


async def test_end_of_input_cancels_requests_in_flight_and_leaves_no_task() -> None:
    peer = Peer()

    async def incoming() -> Any:
        yield [_req("a", "slow"), _req("b", "slow")]
        await peer.started.wait()

    async with anyio.create_task_group() as tg:
        await tg.start(peer.outbox.run)
        await peer.endpoint.run(incoming())
        # Returned only once both had ended (cancelled), unanswered: the connection is over.
        assert sorted(peer.cancelled) == ["a", "b"]
        assert not _own_tasks()
        peer.outbox.close()
    assert peer.sent == []


async def test_cancelling_the_endpoint_from_outside_leaves_no_task() -> None:
    peer = Peer()

    async def incoming() -> Any:
        yield [_req("a", "slow")]
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        await tg.start(peer.outbox.run)
        async with anyio.create_task_group() as inner:
            inner.start_soon(peer.endpoint.run, incoming())
            await peer.started.wait()
            inner.cancel_scope.cancel()
        assert peer.cancelled == ["a"]
        assert not _own_tasks()
        peer.outbox.close()


async def test_an_answer_stuck_in_its_write_is_cancelled_with_the_endpoint() -> None:
    peer = Peer()
    peer.wire.hold = anyio.Event()  # a peer that stopped reading

    async def incoming() -> Any:
        yield [_req(1, "quiet")]  # no notification queued ahead: the answer's task writes it
        await anyio.sleep_forever()

    async with anyio.create_task_group() as inner:
        inner.start_soon(peer.endpoint.run, incoming())
        await peer.wire.entered.wait()  # the answer's task is in its write
        inner.cancel_scope.cancel()
    assert not _own_tasks()


async def test_cancelling_the_endpoint_lets_a_shielded_commit_of_an_answer_finish() -> None:
    # The answer's log commit runs on a worker thread behind a shield (anyio's to_thread):
    # stopping the endpoint must wait for it, not abandon it while the thread still commits
    # (the batch would be queued again and logged twice).
    peer = Peer()
    committing = anyio.Event()
    release = anyio.Event()
    committed: list[str] = []

    async def commit() -> None:
        committing.set()
        with anyio.CancelScope(shield=True):
            await release.wait()
        committed.append("done")

    peer.outbox = Outbox(peer.wire.write, before_write=commit)
    peer.endpoint = Endpoint("peer", peer.outbox, peer.on_request, peer.on_notification)

    async def incoming() -> Any:
        yield [_req(1, "quiet")]
        await anyio.sleep_forever()

    stop = anyio.CancelScope()

    async def serve() -> None:
        with stop:
            await peer.endpoint.run(incoming())

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        await committing.wait()  # the answer's task is inside the shielded commit
        stop.cancel()
        await anyio.wait_all_tasks_blocked()
        assert committed == []  # the endpoint waits for the shielded part
        release.set()
    assert committed == ["done"]
    assert not _own_tasks()


async def test_lines_the_hook_takes_or_declines_keep_their_order_and_a_failing_hook_costs_one_line() -> None:
    # Endpoint.receive_batch: the `on_line` hook (the fast path of text chunks) sees each line
    # first; what it declines goes through the parse; a bug in it drops only that line.
    seen: list[str] = []
    notes: list[Any] = []

    def hook(line: bytes) -> bool:
        if b'"boom"' in line:
            raise RuntimeError("a bug of ours")
        if b'"fast"' in line:
            seen.append(orjson.loads(line)["params"]["n"])
            return True
        return False

    async def on_notification(note: jsonrpc.Notification) -> None:
        seen.append(note.params["n"])
        notes.append(note.params)

    async def on_request(req: jsonrpc.Request) -> Any:
        return None

    endpoint = Endpoint("agent", Outbox(Wire().write), on_request, on_notification, on_line=hook)

    def line(method: str, n: str) -> bytes:
        return orjson.dumps({"jsonrpc": "2.0", "method": method, "params": {"n": n}})

    await endpoint.receive_batch(
        [line("fast", "1"), line("slow", "2"), line("boom", "3"), line("fast", "4"), line("slow", "5")]
    )
    assert seen == ["1", "2", "4", "5"]
    assert notes == [{"n": "2"}, {"n": "5"}]  # declined lines were parsed once, not twice
