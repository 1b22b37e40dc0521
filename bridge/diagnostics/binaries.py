"""Where each agent's binary is and which version it is, with the environment agents
really get (`bridge.envsetup`); recorded in the session catalog for every session
(`agent_path`, `agent_version`) by `RecordingAdapter`, and shown by `doctor`.

Versions are read once per binary file (path, size and mtime) per daemon: `--version` of a
Node CLI costs hundreds of milliseconds, and it runs after the agent has started, never
before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from bridge.core.adapter import AgentAdapter, AgentProbe, AgentSession, AgentSpec, StartRequest
from bridge.process.environment import started_env
from bridge.process.lookup import locate
from bridge.process.versions import cached_version, version_of
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

VERSION_TIMEOUT = 10.0


def agent_env(spec: AgentSpec) -> dict[str, str]:
    """The environment `spec`'s agent would be started with."""
    return started_env(spec.env)


Record = Callable[[str, dict[str, Any]], None]


class RecordingAdapter:
    """Wraps an adapter so that each session's catalog row gets the agent's resolved path and
    version (and its event log an `agent_started` record), and the protocol trace knows which
    session an agent process serves. Composed in `bridge.app`; adapters know nothing of it."""

    def __init__(self, inner: AgentAdapter, spec: AgentSpec, record: Record) -> None:
        self.inner = inner
        self.spec = spec
        self._record = record
        self.static_capabilities = getattr(inner, "static_capabilities", None)
        self.client_tools = getattr(inner, "client_tools", False)
        # The optional daemon-start hook (a shared agent process): the manager looks for it here.
        self.prewarm = getattr(inner, "prewarm", None)

    async def probe(self, authenticate: JsonObj | None = None) -> AgentProbe:
        return await self.inner.probe(authenticate)

    async def run(self, host: Any, request: StartRequest, *, task_status: TaskStatus[AgentSession]) -> None:
        from bridge import trace

        spec, save = self.spec, self._save
        need_version = anyio.Event()
        found: list[tuple[int | None, str]] = []

        class _Relay:
            def started(self, value: AgentSession | None = None) -> None:
                task_status.started(value)  # type: ignore[arg-type]
                pid = value.pid() if value is not None else None
                tracer = trace.current()
                if tracer is not None and pid is not None:
                    tracer.bind(pid, host.session_id, spec.name)
                # The path now (the session's answer carries it to the catalog in order);
                # the version too when this binary's is known, else once it is.
                path = locate(spec.command, agent_env(spec)).path
                if path is not None:
                    found.append((pid, path))
                    version = cached_version(path)
                    save(host, pid, path, version, final=version is not None)
                    if version is None:
                        need_version.set()

        async def note() -> None:
            await need_version.wait()
            pid, path = found[0]
            save(host, pid, path, (await version_of(path, agent_env(spec))).version, final=True)

        # The adapter's own error leaves unwrapped (a task group would make it a group).
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(note)
            try:
                await self.inner.run(host, request, task_status=_Relay())  # type: ignore[arg-type]
            except Exception as exc:
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    def _save(self, host: Any, pid: int | None, path: str, version: str | None, *, final: bool) -> None:
        try:
            self._record(host.session_id, {"agent_path": path, "agent_version": version})
        except Exception as exc:  # the catalog is best effort: never fail a session for it
            log.warning("could not record the agent's path and version: %s", exc)
        if final:
            host.record_event({"type": "agent_started", "pid": pid, "path": path, "version": version})
