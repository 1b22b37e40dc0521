"""Where each agent's binary is and which version it is, with the environment agents
really get (`bridge.envsetup`); recorded in the session catalog for every session
(`agent_path`, `agent_version`) by `RecordingAdapter`, and shown by `doctor`.

Versions are read once per binary file (path, size and mtime) per daemon: `--version` of a
Node CLI costs hundreds of milliseconds, and it runs after the agent has started, never
before.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus

from bridge import envsetup
from bridge.core.adapter import AgentAdapter, AgentProbe, AgentSession, AgentSpec, JsonObj, StartRequest

log = logging.getLogger(__name__)

VERSION_TIMEOUT = 10.0


@dataclass(frozen=True)
class Located:
    command: str
    path: str | None  # the resolved binary, None when missing or unusable
    problem: str | None = None  # "not_found" | "not_executable"
    searched: list[str] = field(default_factory=list)


def locate(command: str, env: Mapping[str, str]) -> Located:
    path_var = envsetup.lookup_path(env.get("PATH", os.defpath))
    searched = list(dict.fromkeys(p for p in path_var.split(os.pathsep) if p))
    if os.sep in command:
        if not os.path.exists(command):
            return Located(command, None, "not_found")
        if os.path.isdir(command) or not os.access(command, os.X_OK):
            return Located(command, None, "not_executable")
        return Located(command, command)
    found = shutil.which(command, path=path_var)
    if found is not None:
        return Located(command, found, searched=searched)
    for d in searched:
        if os.path.isfile(os.path.join(d, command)):
            return Located(command, None, "not_executable", searched)
    return Located(command, None, "not_found", searched)


@dataclass(frozen=True)
class VersionResult:
    version: str | None
    exit_code: int | None = None
    output: str = ""  # stderr/stdout tail when it failed
    timed_out: bool = False


_versions: dict[tuple[str, int, int], VersionResult] = {}


def _key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


async def version_of(path: str, env: Mapping[str, str], seconds: float = VERSION_TIMEOUT) -> VersionResult:
    """`path --version`, first line. Cached per binary file."""
    key = _key(path)
    if key is not None and key in _versions:
        return _versions[key]
    # An npm-installed CLI: its package.json says it at no cost (`claude --version` is a
    # second full start of Claude Code, beside the session's own).
    from bridge.agents import npm_version

    packaged = npm_version(path)
    result = VersionResult(packaged) if packaged else await _run_version(path, env, seconds)
    if key is not None and not result.timed_out:
        _versions[key] = result
    return result


async def _run_version(path: str, env: Mapping[str, str], seconds: float) -> VersionResult:
    try:
        with anyio.fail_after(seconds):
            done = await anyio.run_process(
                [path, "--version"],
                check=False,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                start_new_session=True,
            )
    except TimeoutError:
        return VersionResult(None, timed_out=True)
    except OSError as exc:
        return VersionResult(None, output=str(exc.strerror or exc))
    out = (done.stdout or b"").decode("utf-8", "replace").strip()
    err = (done.stderr or b"").decode("utf-8", "replace").strip()
    if done.returncode == 0 and (out or err):
        first = (out or err).splitlines()[0].strip()
        return VersionResult(first[:200], 0)
    return VersionResult(None, done.returncode, (err or out)[-2000:])


def cached_version(path: str) -> str | None:
    key = _key(path)
    result = _versions.get(key) if key is not None else None
    return result.version if result is not None else None


def agent_env(spec: AgentSpec) -> dict[str, str]:
    """The environment `spec`'s agent would be started with."""
    env = {**os.environ, **spec.env}
    environment = envsetup.current()
    return environment.complete(env) if environment is not None else env


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
