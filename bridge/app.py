"""Composition root: config, store, adapter registry, session manager, ACP server and the
transport, under one root task group. The only module that imports `adapters`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from bridge import __version__, envsetup, trace
from bridge.acp.server import AcpServer
from bridge.config import ConfigFile, Policy, agent_table
from bridge.core.adapter import AdapterEnv, AdapterFactory, AgentAdapter, AgentSpec, DaemonTasks
from bridge.core.manager import SessionManager
from bridge.diagnostics import redact
from bridge.errors import StoreError
from bridge.mcp.config import ConfiguredServers
from bridge.process import agent_process, supervise
from bridge.store import open_store, secure_state_dir
from bridge.store.sqlite import SqliteStore
from bridge.trace import Tracer
from bridge.wire.types import JsonObj

if TYPE_CHECKING:
    from bridge.transports.ws_options import WsOptions

log = logging.getLogger(__name__)

# Agents' stderr tails reach errors, logs and the event log: mask secrets in them.
agent_process.stderr_filter = redact.redact


@dataclass
class Settings:
    state_dir: str
    config: ConfigFile = field(default_factory=ConfigFile)
    default_agent: str | None = None
    listen: str | None = None
    # Exit when this process (the editor that started us) exits: LSP `processId` style.
    parent_pid: int | None = None


class Bridge:
    """A running daemon: everything but the transport."""

    def __init__(self, settings: Settings) -> None:
        from adapters.registry import registry

        self.settings = settings
        cfg = settings.config
        self.agents: dict[str, AgentSpec] = agent_table(cfg)
        # The agents' environment (login shell, [env], path_prepend), resolved in the background at start.
        self.environment = envsetup.Environment(
            settings.state_dir, login_shell=cfg.login_shell_env, extra=cfg.env, path_prepend=cfg.path_prepend
        )
        self.tracer = _open_trace(cfg, self.agents)
        problem = secure_state_dir(settings.state_dir)
        if problem:
            log.warning("%s", problem)
        self.store = open_store(getattr(cfg, "store", None), settings.state_dir)
        env = AdapterEnv(
            state_dir=settings.state_dir, handshake_timeout=cfg.handshake_timeout, tasks=DaemonTasks()
        )
        mcp = configured_mcp_servers(cfg)
        self.manager = SessionManager(
            self.store,
            self.agents,
            _recording(registry(), lambda sid, fields: self.manager.save_soon(sid, fields)),
            env,
            settings.default_agent or cfg.default_agent,
            stall_timeout=cfg.stall_timeout,
            cancel_grace=cfg.cancel_grace,
            lease_seconds=cfg.lease_timeout,
            transport="websocket" if settings.listen else "stdio",
            mcp=mcp,
        )
        self.server = AcpServer(
            self.manager,
            self.store,
            version=__version__,
            agents_table=self.agents_table,
            disconnect_grace=cfg.disconnect_grace,
        )
        self.server.tracer = self.tracer
        self.server.policy = Policy.of(cfg)

    async def agents_table(self) -> list[JsonObj]:
        from bridge.agents import describe_agents

        return await describe_agents(self.agents)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Bridge]:
        """Start the manager and server; on exit, stop every agent (bounded) and close the store."""
        envsetup.install(self.environment)
        trace.install(self.tracer)
        if isinstance(self.store, SqliteStore):
            await self.store.open_or_degrade()
        else:
            await self.store.open()
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.manager.run)
                await tg.start(self.server.run)
                # Ask the login shell for the agents' environment now, in the background,
                # so that the first session rarely waits for it.
                tg.start_soon(self.environment.resolve)
                try:
                    yield self
                finally:
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                # This daemon's sessions are free for the next one (a busy one is recorded
                # as interrupted by whoever recovers it).
                try:
                    await self.store.unregister()
                except StoreError as exc:
                    log.warning("could not release this daemon's sessions: %s", exc.message)
                await self.store.close()
            envsetup.install(None)
            trace.install(None)
            if self.tracer is not None:
                self.tracer.close()


async def serve_stdio(settings: Settings) -> int:
    from bridge.transports import stdio

    async with supervise.supervised():
        bridge = Bridge(settings)
        async with bridge.running(), anyio.create_task_group() as tg:
            _watch_for_exit(tg, settings)
            with stdio.nonblocking(0, 1):
                try:
                    await bridge.server.serve(
                        stdio.read_batches(0), stdio.writer(1), transport="stdio", drain=stdio.EOF_DRAIN
                    )
                except* stdio.BrokenOutput:
                    log.info("stdout closed by the client; shutting down")
                finally:
                    # stdin EOF, a signal or the parent's death: the agents are stopped next.
                    supervise.arm_exit_deadline()
            tg.cancel_scope.cancel()
    supervise.disarm_exit_deadline()
    return 0


async def serve_websocket(settings: Settings, options: WsOptions) -> int:
    """`serve --listen ws://...`: many connections, each served like stdio, until a signal."""
    from bridge.inspector.app import Inspector
    from bridge.transports.websocket import WebSocketTransport

    async with supervise.supervised():
        bridge = Bridge(settings)
        manager = bridge.manager
        transport = WebSocketTransport(
            bridge.server.serve, options, inspector=lambda policy: Inspector(manager, policy)
        )
        async with bridge.running(), anyio.create_task_group() as tg:
            _watch_for_exit(tg, settings)
            port = await tg.start(transport.run)
            # Other daemons on this store name this URL for the sessions this one owns.
            await bridge.manager.register(ws_url=f"ws://{options.host}:{port}/acp")
            # The one line clients wait for (the token is in `options.token_path`, never here).
            sys.stderr.write(f"listening ws://{options.host}:{port}/acp\n")
            sys.stderr.flush()
    supervise.disarm_exit_deadline()
    return 0


def configured_mcp_servers(cfg: ConfigFile) -> ConfiguredServers:
    """The config's MCP servers with `${VAR}` expanded from the daemon's environment (checked
    at load: nothing unset here); their secrets are masked wherever the daemon writes."""
    servers = ConfiguredServers.build(
        cfg.mcp_servers, {name: entry.mcp_servers for name, entry in cfg.agents.items()}, os.environ
    )
    redact.default().add(servers.secrets)
    return servers


def _open_trace(cfg: ConfigFile, agents: dict[str, AgentSpec]) -> Tracer | None:
    """The protocol trace, when `--trace` / config `trace` asks for one. Every secret the
    daemon knows of is masked in it (and in logs and errors): agents' configured values too."""
    redactor = redact.default()
    redactor.add_env(cfg.env)
    for spec in agents.values():
        redactor.add_env(spec.env)
    if not cfg.trace:
        return None
    try:
        tracer = Tracer(cfg.trace)
    except OSError as exc:
        log.error("no protocol trace: cannot open %s: %s", cfg.trace, exc)
        return None
    log.warning("protocol trace on: every message, secrets masked, goes to %s", tracer.path)
    return tracer


def _recording(
    factories: dict[str, AdapterFactory], save: Callable[[str, dict[str, Any]], None]
) -> dict[str, AdapterFactory]:
    """Adapters that record each session's agent path and version in the catalog."""
    from bridge.diagnostics.binaries import RecordingAdapter

    def wrap(factory: AdapterFactory) -> AdapterFactory:
        def create(spec: AgentSpec, env: AdapterEnv) -> AgentAdapter:
            return RecordingAdapter(factory(spec, env), spec, save)

        # Kept for `initialize` (bridge/acp/server.py `_probe`: no adapter created for it).
        create.static_capabilities = getattr(factory, "static_capabilities", None)  # type: ignore[attr-defined]
        return create

    return {protocol: wrap(factory) for protocol, factory in factories.items()}


def _watch_for_exit(tg: anyio.abc.TaskGroup, settings: Settings) -> None:
    """SIGTERM / SIGINT, and the parent's death when `--parent-pid` is given, end `tg`."""
    tg.start_soon(_exit_on_signal, tg.cancel_scope)
    if settings.parent_pid:
        scope = tg.cancel_scope

        def parent_gone() -> None:
            supervise.arm_exit_deadline()
            scope.cancel()

        tg.start_soon(supervise.watch_parent, settings.parent_pid, parent_gone)


async def _exit_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal %s: shutting down", signum)
            # Bound the shutdown. A second signal meanwhile ends the process without the
            # ladder (default handling is back); the lifeline watchdog then kills the agents.
            supervise.arm_exit_deadline()
            scope.cancel()
            return
