"""Running one agent process for a session: the task that owns it (client tools offered,
exits recorded, failures turned into the session's error) and the bounded start around it.

Split from the manager (bridge/core/manager.py), which decides *when* an agent runs; this
module is *how* one runs and how its end is told apart (a crash, a start failure, a stop).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup, TaskStatus

from bridge.core import tool_server
from bridge.core.adapter import AgentAdapter, AgentSession, StartRequest
from bridge.core.session import Session
from bridge.errors import AgentError, AgentExitedError, AgentStartError, find_rpc_error
from bridge.process.agent_process import ExitRecord, recording_exits
from bridge.rpc.endpoint import ConnectionClosed

# The manager's logger: these records read as the session manager's, as before the split.
log = logging.getLogger("bridge.core.manager")

Save = Callable[..., Awaitable[None]]


async def start_bounded(
    host: TaskGroup,
    session: Session,
    adapter: AgentAdapter,
    request: StartRequest,
    *,
    limit: float,
    save: Save,
) -> AgentSession:
    """Start the agent task in `host`; fail if the agent goes silent for `limit` seconds while
    starting (it answered initialize but never session/new, say). Anything it emits resets the clock."""
    session.touch()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def watchdog() -> None:
                while True:
                    left = session.last_activity + limit - anyio.current_time()
                    if left <= 0:
                        scope.cancel()
                        return
                    await anyio.sleep(left)

            tg.start_soon(watchdog)
            agent: AgentSession = await host.start(run_agent, session, adapter, request, save)
            tg.cancel_scope.cancel()
        return agent
    raise AgentStartError(
        session.spec.name,
        f"it sent nothing for {limit:g} s while opening the session ({request.mode})",
        {"timeoutSeconds": limit},
    )


async def run_agent(
    session: Session,
    adapter: AgentAdapter,
    request: StartRequest,
    save: Save,
    *,
    task_status: TaskStatus[AgentSession],
) -> None:
    started = False

    class _Relay:
        def started(self, value: AgentSession) -> None:
            nonlocal started
            started = True
            session.agent = value
            session.agent_error = None
            task_status.started(value)

    stopped = session.agent_stopped = anyio.Event()
    with anyio.CancelScope() as scope, recording_exits() as exits:
        session.run_scope = scope
        try:
            # Client tools (the client's fs/terminal as an MCP server), for this process only.
            tools = tool_server.wanted(session.spec.client_tools, adapter, request)
            async with tool_server.offered(session, request, tools) as with_tools:
                await adapter.run(session, with_tools, task_status=_Relay())  # type: ignore[arg-type]
            if started and not scope.cancel_called:
                session.agent_exited(
                    exit_error(session.spec.name, exits, started=True)
                    if exits.ended
                    else AgentExitedError(session.spec.name, None, "agent ended the session")
                )
        except Exception as exc:
            found = find_rpc_error(exc)
            if exits.on_its_own and (found is None or isinstance(found, ConnectionClosed)):
                # The adapter only saw the pipe close; the process's exit says why.
                found = exit_error(session.spec.name, exits, started=started)
            if not started:
                if found is not None:
                    raise found from exc
                raise
            if isinstance(found, AgentError):
                session.agent_exited(found)
            else:
                log.exception("agent task of session %s failed", session.session_id)
                session.agent_exited(AgentExitedError(session.spec.name, None, f"adapter failure: {exc!r}"))
        finally:
            stopped.set()
    if session.status == "error":
        with anyio.CancelScope(shield=True):
            await save(session.session_id, status="error", touch=False)


def exit_error(agent: str, exits: ExitRecord, *, started: bool) -> AgentError:
    if started:
        return AgentExitedError(agent, exits.returncode, exits.stderr_tail)
    rc = exits.returncode
    how = (
        f"exit code {rc}"
        if rc is not None and rc >= 0
        else f"signal {-rc}"
        if rc is not None
        else "no status"
    )
    tail = exits.stderr_tail.strip()
    last = tail.splitlines()[-1][:300] if tail else "nothing on stderr"
    return AgentStartError(
        agent, f"it exited while starting ({how}): {last}", {"exitCode": rc, "stderrTail": exits.stderr_tail}
    )
