"""A bridge session: its subscribers, its log, one turn at a time, and the host side of
the adapter contract (`SessionHost`).

Everything an agent says for a session goes through `_publish`: appended to the durable
log first (the client writers commit the log before writing), then queued to the owner
and every attached follower, in the agent's order.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio

from bridge import timeouts
from bridge.core import to_acp
from bridge.core.adapter import AgentSession, AgentSpec, SessionSetup
from bridge.core.events import CoreEvent
from bridge.core.metrics import Metrics
from bridge.core.permissions import CANCELLED_OUTCOME, ask_first
from bridge.core.session_links import SessionLinks
from bridge.core.session_states import IN_TURN, STATUS, Event, State, advance
from bridge.errors import INVALID_PARAMS, SESSION_BUSY, TURN_STALLED, AgentError, AgentExitedError, RpcError
from bridge.mcp.status import McpStatus
from bridge.rpc import arrival
from bridge.rpc.endpoint import ConnectionClosed
from bridge.store.base import Direction, SessionRecord, Store
from bridge.wire import jsonrpc
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

# `anyio.current_time()` on the asyncio backend is `loop.time()`, i.e. `time.monotonic()`;
# reading it directly skips ~1.5 µs of backend lookup on every published message.
_clock = time.monotonic
# How long a turn whose agent connection broke waits for the agent's exit status.
EXIT_REPORT_WAIT = 5.0
# How long `session/close` lets the agent end a running turn itself (flushing its last
# updates) before the bridge ends it: the agent is stopped right after, so waiting for the
# full `cancel_grace` would only delay the close.
CLOSE_GRACE = 1.0


class Session(SessionLinks):
    """Implements `SessionHost` for its adapter."""

    def __init__(self, record: SessionRecord, spec: AgentSpec, store: Store) -> None:
        self.record = record
        self.spec = spec
        self.store = store
        SessionLinks.__init__(self)
        self.pending_permissions: list[JsonObj] = []  # asked, not answered yet
        # Answers given in the inspector, by `id()` of the pending request's params.
        self.inspector_answers: dict[int, JsonObj] = {}
        # Set by `changed()` when something was logged or a permission came or went: the
        # inspector's live views wait on them (and read the log) instead of polling.
        self.watchers: set[anyio.Event] = set()
        # How long a request for a client that is gone waits for one to reattach (set by
        # the server when the owner disconnects).
        self.disconnect_grace = 60.0
        self.agent: AgentSession | None = None
        self.state = State.IDLE  # moved only by `_advance` (bridge/core/session_states.py)
        self._in_turn = False  # `state in IN_TURN`, kept by `_advance`: asked for every chunk
        # Counted from where the catalog left them (bridge/core/metrics.py).
        self.metrics = Metrics.from_json(record.metrics)
        self.run_scope: anyio.CancelScope | None = None
        # Set when the agent task (the process and what the adapter holds for it) has ended.
        self.agent_stopped: anyio.Event | None = None
        self.agent_error: AgentError | None = None
        self._turn_scope: anyio.CancelScope | None = None
        # Arrival numbers (`bridge.rpc.arrival`): of the running turn's prompt, and of the
        # latest `session/cancel`, which ends every prompt received before it.
        self._turn_arrival = 0
        self._cancel_arrival = 0
        self._permission_scopes: set[anyio.CancelScope] = set()
        self.last_activity = anyio.current_time()
        self.restarts = 0
        self.restart_times: list[float] = []
        self.restart_lock = anyio.Lock()
        self.restart_params: Any = None
        # Set when the agent lost its session and a new one continues it (bridge/core/continuation.py):
        # what to announce, and the transcript block the next prompt carries to the agent.
        self.continued: JsonObj | None = None
        self.seed: list[JsonObj] | None = None
        self.setup: SessionSetup | None = None
        # The MCP servers of the current agent run and their state (bridge/mcp/status.py).
        self.mcp: McpStatus | None = None
        self.stall_timeout = timeouts.STALL_TIMEOUT
        self.cancel_grace = timeouts.CANCEL_GRACE
        self._wake = anyio.Event()
        self._cancel_at: float | None = None
        self._end_reason: str | None = None
        self._close_grace = CLOSE_GRACE
        # Requests to the client in flight: the agent waits on the user, not stalled.
        self._client_waits = 0
        # Set (and replaced) when a turn starts or an agent restart ends.
        self._turn_changed = anyio.Event()
        self.restarting = 0  # agent restarts in progress (`SessionManager.ensure_agent`)
        # Set when another daemon took the session over: every later request gets it.
        self.lost: RpcError | None = None
        # Set when a turn ends (replaced when the next one starts).
        self._turn_over = anyio.Event()
        self._turn_over.set()
        # `session/prompt` requests not answered yet (`answering`).
        self._answering = 0
        self._answered = anyio.Event()

    # -- state ---------------------------------------------------------------------------------
    def _advance(self, event: Event) -> None:
        self.state = advance(self.state, event)
        self._in_turn = self.state in IN_TURN

    @property
    def status(self) -> str:
        return STATUS[self.state]

    @status.setter
    def status(self, value: str) -> None:
        # Only the manager sets it, to "closed" once `close_turn` has closed the session.
        if value != "closed":
            raise ValueError(f"a session's status follows its state; it cannot be set to {value!r}")
        self._advance(Event.CLOSE)

    @property
    def closed(self) -> bool:
        """`session/close` has ended the session: nothing more of it reaches a client."""
        return self.state is State.CLOSED

    @property
    def _turn_active(self) -> bool:
        return self._in_turn

    @property
    def _cancelling(self) -> bool:
        return self.state is State.CANCELLING

    # -- SessionHost ---------------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.record.id

    def emit_event(self, event: CoreEvent) -> None:
        self.emit_params({"sessionId": self.record.id, "update": to_acp.update(event)})

    def emit(self, update: JsonObj) -> None:
        self.emit_params({"sessionId": self.record.id, "update": update})

    def emit_params(self, params: JsonObj) -> None:
        update = params.get("update")
        if isinstance(update, dict):
            self.metrics.observe(update, in_turn=self._turn_active)
            if self.mcp is not None and update.get("sessionUpdate") == "session_info_update":
                self.mcp.observe(update)
        self.publish(jsonrpc.notification_frame("session/update", params), "agent")

    def emit_frame(self, frame: bytes, kind: str) -> None:
        # What `emit_params` does for a chunk kind: count it, publish it.
        if self._turn_active:
            self.metrics.messages += 1
        self.publish(frame, "agent")

    def touch(self) -> None:
        self.last_activity = anyio.current_time()

    async def request_client(self, method: str, params: JsonObj) -> Any:
        params = {**params, "sessionId": self.record.id}
        is_permission = method == "session/request_permission"
        self.log("agent", jsonrpc.notification_frame(method, params))
        if self.closed:
            if is_permission:
                return CANCELLED_OUTCOME
            raise RpcError(INVALID_PARAMS, f"session {self.record.id} is closed")
        if is_permission and self._cancelling:
            return CANCELLED_OUTCOME
        with anyio.CancelScope() as scope:
            if is_permission:
                self._permission_scopes.add(scope)
            self._client_waits += 1
            try:
                if is_permission:
                    # The owner, or everyone it shares the session with: first valid answer
                    # wins; nobody able to answer within the grace → refused (fail closed).
                    return await ask_first(self, method, params)
                link = self.owner
                if link is None or link.closed:
                    raise RpcError(INVALID_PARAMS, f"no client is attached to session {self.record.id}")
                result = await link.request(method, params)
                self.log("client", jsonrpc.encode({"method": method, "result": result}))
                return result
            finally:
                self._permission_scopes.discard(scope)
                self._client_waits -= 1
                # The stall clock restarts from the client's answer.
                self.touch()
                self._wake.set()
        return CANCELLED_OUTCOME

    def notify_client(self, method: str, params: JsonObj) -> None:
        self.publish(jsonrpc.notification_frame(method, params), "agent")

    def record_event(self, event: JsonObj) -> None:
        self.log("bridge", jsonrpc.encode({"bridge": event}))

    # -- publishing ----------------------------------------------------------------------------
    def log(self, direction: Direction, frame: bytes) -> None:
        self.store.append(self.record.id, direction, frame)
        if self.watchers:
            self.changed()

    def changed(self) -> None:
        for watcher in self.watchers:
            watcher.set()

    @property
    def last_seq(self) -> int:
        """The seq a reader of the log must have reached to have everything this daemon
        wrote for the session: the last one committed, or beyond any seq while rows wait
        for their commit (their seqs are allocated then), so a replay reads on."""
        tail = self.store.tail(self.record.id)
        return sys.maxsize if tail.pending else tail.committed

    def publish(self, frame: bytes, direction: Direction) -> None:
        self.log(direction, frame)
        self.last_activity = _clock()
        if self.closed:
            # What a stopping agent still says after the close was answered is kept in the
            # log only: a closed session sends nothing more.
            return
        owner = self.owner
        if owner is not None and not owner.closed:
            owner.send_frame(frame)
        for follower in self.followers:
            if not follower.closed:
                follower.send_frame(frame)

    async def wait_writable(self) -> None:
        owner = self.owner
        if owner is not None and not owner.closed:
            await owner.wait_writable()
        else:
            # No client is writing (and so committing the log) for this session — its owner
            # went away mid-turn: commit here, so the turn runs on at the pace of the log
            # rather than piling up in memory.
            await self.store.flush()

    # -- turns ---------------------------------------------------------------------------------
    async def prompt(self, params: JsonObj, received: int | None = None) -> JsonObj:
        """Run one turn. `received`: the prompt's arrival number; a `session/cancel` received
        after it and before its turn starts (an agent restart in between) cancels the turn as
        soon as the agent has it."""
        received = arrival.stamp() if received is None else received
        if self.lost is not None:
            raise self.lost
        if self._turn_active:
            raise RpcError(
                SESSION_BUSY,
                f"session {self.record.id} is already running a prompt; wait for it or send session/cancel",
            )
        agent = self.agent
        if agent is None:
            raise self.agent_error or RpcError(SESSION_BUSY, f"session {self.record.id} has no running agent")
        self._advance(Event.PROMPT)
        self._turn_arrival = received
        self._turn_over = anyio.Event()
        self._cancel_at = None
        self._end_reason = None
        self.turn_changed()
        self.metrics.turns += 1
        self.last_activity = anyio.current_time()
        try:
            with anyio.CancelScope() as scope:
                self._turn_scope = scope
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watchdog, scope)
                    if self._cancel_arrival > received:
                        # Runs once `agent.prompt` below has sent the prompt and waits.
                        tg.start_soon(self._cancel_turn)
                    try:
                        seed = self.seed
                        if seed:
                            params = {**params, "prompt": [*seed, *(params.get("prompt") or [])]}
                            self.record_event({"type": "transcript_sent", "blocks": len(seed)})
                        result: JsonObj = await agent.prompt(params)
                        if seed is self.seed:
                            self.seed = None  # the agent has it now
                    except (ConnectionClosed, AgentExitedError):
                        # The agent's pipe closed under the turn: it is dying. Its exit is
                        # reported through `agent_exited` (status `error`, the log record, the
                        # restart on the next prompt), which cancels this scope; answer with
                        # that report rather than a bare "connection closed".
                        with anyio.move_on_after(EXIT_REPORT_WAIT):
                            await anyio.sleep_forever()
                        raise
                    tg.cancel_scope.cancel()
                self.metrics.absorb_usage(result)
                return result
            return self._ended_by_bridge()
        finally:
            self._turn_scope = None
            self._advance(Event.TURN_END)
            self._turn_over.set()

    def _ended_by_bridge(self) -> JsonObj:
        """The turn scope was cancelled from outside: agent death, forced cancel or stall."""
        if self._end_reason in ("cancel", "close"):
            if self._end_reason == "close":
                self.record_event({"type": "cancel_forced", "by": "close", "graceSeconds": self._close_grace})
            else:
                self.record_event({"type": "cancel_forced", "graceSeconds": self.cancel_grace})
            self._stop_agent()
            return {"stopReason": "cancelled"}
        if self._end_reason == "stall":
            self.record_event({"type": "turn_stalled", "timeoutSeconds": self.stall_timeout})
            self._stop_agent()
            raise RpcError(
                TURN_STALLED,
                f"agent {self.spec.name!r} sent nothing for {self.stall_timeout:g} s; the turn was ended "
                "and the agent will be restarted on the next prompt",
                {"agent": self.spec.name, "timeoutSeconds": self.stall_timeout},
            )
        raise self.lost or self.agent_error or RpcError(SESSION_BUSY, "the turn was interrupted")

    def _stop_agent(self) -> None:
        """Stop the agent process; the next prompt restarts it and resumes its session."""
        self.agent = None
        if self.run_scope is not None:
            self.run_scope.cancel()

    async def _watchdog(self, turn: anyio.CancelScope) -> None:
        # Sleeps until the nearest deadline (stall, or cancel grace) and re-checks: no polling.
        while True:
            now = anyio.current_time()
            stall_at = self.last_activity + self.stall_timeout if not self._client_waits else float("inf")
            cancel_at = self._cancel_at + self.cancel_grace if self._cancel_at is not None else float("inf")
            if now >= cancel_at:
                self._end_reason = "cancel"
                turn.cancel()
                return
            if now >= stall_at:
                self._end_reason = "stall"
                turn.cancel()
                return
            with anyio.move_on_after(min(stall_at, cancel_at) - now):
                await self._wake.wait()
            self._wake = anyio.Event()

    @property
    def turn_active(self) -> bool:
        return self._turn_active

    async def cancel(self, received: int | None = None) -> None:
        """`session/cancel`, received as arrival number `received` (now if None): ends the turn
        of a prompt received before it — running, or as soon as it starts — and nothing later."""
        received = arrival.stamp() if received is None else received
        self._cancel_arrival = max(self._cancel_arrival, received)
        if self._turn_active and self._turn_arrival < received:
            await self._cancel_turn()

    async def _cancel_turn(self) -> None:
        if self.state is not State.RUNNING:
            return  # cancelled already, or its agent is gone
        self._advance(Event.CANCEL)
        self._cancel_at = anyio.current_time()
        self._wake.set()
        for scope in list(self._permission_scopes):
            scope.cancel()
        if self.agent is not None:
            try:
                await self.agent.cancel()
            except Exception:
                # The watchdog ends the turn after `cancel_grace` whatever the agent does.
                log.warning("session %s: the agent's cancel failed", self.record.id, exc_info=True)

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around a `session/prompt` request until its answer is handed to the endpoint (which
        queues it in the same step, with no await in between): `close_turn` waits for this, so
        a prompt's answer always precedes the answer to the `session/close` that ended it."""
        self._answering += 1
        try:
            yield
        finally:
            self._answering -= 1
            if not self._answering:
                self._answered.set()
                self._answered = anyio.Event()

    async def close_turn(self, grace: float = CLOSE_GRACE) -> None:
        """`session/close`: end a running turn as if `session/cancel` had been sent — it
        resolves `stopReason: "cancelled"` — and return once the turn is over and its prompt
        answered. The agent gets `grace` seconds to end the turn itself; then the bridge ends
        it (still `cancelled`). From then on nothing of this session reaches a client (the
        caller stops the agent)."""
        if self._turn_active:
            with anyio.move_on_after(grace):
                await self.cancel()
                await self._turn_over.wait()
            if self._turn_active and self._turn_scope is not None:
                self._end_reason = "close"
                self._close_grace = grace
                self._turn_scope.cancel()
            # Bounded: a prompt whose scope does not unwind must not hold the close forever.
            with anyio.move_on_after(grace):
                await self._turn_over.wait()
        with anyio.move_on_after(grace):
            while self._answering:
                await self._answered.wait()
        self._advance(Event.CLOSE)

    def turn_changed(self) -> None:
        self._turn_changed.set()
        self._turn_changed = anyio.Event()

    def taken_over(self, error: RpcError) -> None:
        """Another daemon owns the session now (this one was paused past its lease): a
        running turn ends with `error`, and so does every later request here."""
        self.lost = error
        self.agent = None
        self._advance(Event.TAKEN_OVER)
        if self._turn_scope is not None:
            self._turn_scope.cancel()

    def agent_exited(self, error: AgentError) -> None:
        """The agent process is gone: fail the running turn at once."""
        self.agent_error = error
        self.agent = None
        self._advance(Event.AGENT_EXIT)
        self.record_event({"type": "agent_exited", "error": error.to_dict()})
        if self._turn_scope is not None:
            self._turn_scope.cancel()
