"""One `codex app-server` serving many bridge sessions, one thread each
(spec/codex-shared-server.md).

App-server serves many threads; everything thread-scoped it sends carries the thread's id
(`threadId`, `conversationId` in the legacy approvals). `SharedServer` is the app-server's
`Handler`: it routes each notification and server request to the session whose thread (or
sub-agent thread) it names, and nothing else reaches a session: a session never sees another's
updates, approvals or stall-watchdog touches. A notification for a thread not yet known (sent
while a `thread/start` is still unanswered) waits until its session learns its thread id.

The process is spawned and handshaken once, at the first session (or at daemon start: the
adapter's `prewarm`), and runs in the daemon's task group (`AdapterEnv.tasks`) until the
daemon stops or the process dies. A session that ends interrupts its running turn and
unsubscribes its thread; the process goes on serving the others. When the process dies,
every session it held fails as with a private process (`closed` → `AgentExitedError`), and
the next session (or restart) starts a new one. A protocol violation cannot be pinned on one
thread: it fails every running turn on the process, and the sessions stay open.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from adapters.codex import approvals
from adapters.codex.rpc import AppServer, method_not_found
from adapters.codex.session import CodexSession
from bridge.core.adapter import AdapterEnv
from bridge.errors import INTERNAL_ERROR, AgentError, AgentExitedError, AgentStartError
from bridge.process.agent_process import open_agent_process
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

# Notifications kept for a thread whose `thread/start` is still unanswered (bounded: a
# misbehaving process must not grow it without end).
MAX_EARLY = 1000
# Why the daemon logs these itself: they name no thread (and so no session).
LOGGED = ("warning", "configWarning", "deprecationNotice")


class SharedServer:
    """The app-server process several sessions share, and its `Handler`."""

    def __init__(self, agent: str, key: object, pool: dict[object, Any]) -> None:
        self.agent = agent
        self._key = key
        self._pool = pool
        self.server: AppServer | None = None
        self.ready = anyio.Event()
        self.start_error: BaseException | None = None
        self._threads: dict[str, CodexSession] = {}
        self._sessions: set[CodexSession] = set()
        self._opening: set[CodexSession] = set()
        self._early: list[tuple[str, JsonObj]] = []
        self._touched: set[CodexSession] = set()
        self._draining: list[CodexSession] = []

    # -- the process ------------------------------------------------------------------------------
    async def run(self, argv: list[str], environ: dict[str, str], env: AdapterEnv, hello: Any) -> None:
        """Spawn, handshake (`hello(server)`), serve until the process ends or the daemon stops.
        Never raises: it runs in the daemon's task group, whose other tasks must not fail with it."""
        try:
            async with open_agent_process(self.agent, argv, env=environ, stop_grace=env.stop_grace) as proc:
                server = AppServer(proc, self.agent, self, env.stop_grace)
                async with anyio.create_task_group() as tg:
                    await tg.start(server.run)
                    await hello(server)
                    self.server = server
                    self.ready.set()
                    log.info("%s: shared app-server started (pid %s)", self.agent, proc.pid)
                    await server.exited.wait()
                    tg.cancel_scope.cancel()
        except Exception as exc:
            if not self.ready.is_set():
                self.start_error = exc
            else:
                log.warning("%s: shared app-server failed: %r", self.agent, exc)
        finally:
            self._forget()
            if not self.ready.is_set() and self.start_error is None:
                self.start_error = AgentStartError(self.agent, "the daemon stopped while codex was starting")
            self.ready.set()

    def alive(self) -> bool:
        return self.start_error is None and (self.server is None or self.server.exit_error is None)

    def _forget(self) -> None:
        # The next session starts a new process; this one's sessions fail with its exit.
        if self._pool.get(self._key) is self:
            del self._pool[self._key]

    # -- sessions ---------------------------------------------------------------------------------
    def attach(self, session: CodexSession) -> None:
        self._sessions.add(session)
        self._opening.add(session)
        session.on_thread = self._claim

    def _claim(self, session: CodexSession) -> None:
        """The session's thread is known: route it there, with what came for it meanwhile."""
        held = self._threads.get(session.thread_id)
        if held is not None and held is not session:
            raise AgentError(
                INTERNAL_ERROR,
                f"codex thread {session.thread_id} is already open in another session of this process",
                {"agent": self.agent},
            )
        self._threads[session.thread_id] = session
        # Taken before `_opened`, which empties the held list once no session is opening.
        early, self._early = self._early, []
        self._opened(session)
        for method, params in early:
            if _thread_of(params) == session.thread_id:
                self._deliver(session, method, params)
            elif self._opening:
                self._early.append((method, params))

    def _opened(self, session: CodexSession) -> None:
        self._opening.discard(session)
        if not self._opening:
            self._early.clear()

    async def detach(self, session: CodexSession, grace: float) -> None:
        """The session ended (closed, restarted, or the process died): stop routing to it and
        leave Codex nothing running for it — its turn interrupted, its thread unsubscribed."""
        self._sessions.discard(session)
        self._opened(session)
        self._touched.discard(session)
        thread = session.thread_id
        if self._threads.get(thread) is session:
            del self._threads[thread]
        server = self.server
        if not thread or server is None or server.exit_error is not None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(grace):
            try:
                await session.interrupt_running()
                await server.request("thread/unsubscribe", {"threadId": thread})
            except Exception as exc:  # the process is going, or the thread already was
                log.debug("%s: unsubscribing %s: %r", self.agent, thread, exc)

    def _route(self, thread: Any) -> CodexSession | None:
        if not isinstance(thread, str):
            return None
        session = self._threads.get(thread)
        if session is None:  # a sub-agent's thread, shown under the session that spawned it
            session = next((s for s in self._sessions if s.has_child(thread)), None)
        return session

    # -- Handler ----------------------------------------------------------------------------------
    def notification(self, method: str, params: JsonObj) -> None:
        thread = _thread_of(params)
        session = self._route(thread)
        if session is not None:
            self._deliver(session, method, params)
        elif thread is not None:
            if self._opening and len(self._early) < MAX_EARLY:
                self._early.append((method, params))
            else:
                log.debug("%s: %s for thread %s, which no session holds", self.agent, method, thread)
        elif method == "mcpServer/startupStatus/updated":
            # No thread named: the sessions waiting for a server of that name.
            for waiting in [s for s in self._sessions if s.awaits_mcp(params.get("name"))]:
                self._deliver(waiting, method, params)
        elif method in LOGGED:
            log.info("%s: codex %s: %s", self.agent, method, params)

    def _deliver(self, session: CodexSession, method: str, params: JsonObj) -> None:
        session.notification(method, params)
        self._touched.add(session)

    def batch_done(self) -> None:
        self._draining = list(self._touched)
        self._touched.clear()
        for session in self._draining:
            session.batch_done()

    async def drain(self) -> None:
        # Backpressure from the sessions this batch fed; one lagging client slows the reading
        # for every session on the process (spec/codex-shared-server.md).
        for session in self._draining:
            await session.drain()

    def closed(self, error: AgentExitedError) -> None:
        self._forget()
        for session in list(self._sessions):
            session.closed(error)

    def violation(self, error: AgentError) -> None:
        for session in list(self._sessions):
            session.violation(error)

    async def server_request(self, request_id: Any, method: str, params: JsonObj) -> Any:
        session = self._route(_thread_of(params))
        if session is not None:
            return await session.server_request(request_id, method, params)
        log.info("%s: %s names no thread of a live session: refused", self.agent, method)
        refusal = approvals.refusal(method)
        if refusal is None:
            raise method_not_found(method)
        return refusal


def _thread_of(params: JsonObj) -> Any:
    thread = params.get("threadId")
    return thread if thread is not None else params.get("conversationId")


async def get(pool: dict[object, Any], key: object, start: Any, agent: str) -> SharedServer:
    """The live shared server under `key`, started (in the daemon's task group) if none is.
    Raises what its start raised (every session waiting for it gets the same error)."""
    shared = pool.get(key)
    if not isinstance(shared, SharedServer) or not shared.alive():
        shared = pool[key] = SharedServer(agent, key, pool)
        start(shared)
    await shared.ready.wait()
    if shared.start_error is not None:
        raise shared.start_error
    if shared.server is None:
        raise AgentStartError(agent, "codex did not start")
    if shared.server.exit_error is not None:
        raise shared.server.exit_error
    return shared
