"""`agent-bridge serve`: ACP on stdio, or on WebSocket with `--listen`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from bridge.config import ConfigFile, agent_table

if TYPE_CHECKING:
    from bridge.store.base import Instance


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    d = argparse.SUPPRESS if sub else None
    parser.add_argument("--listen", default=d, help="serve ACP remotely at ws://HOST:PORT: WebSocket and Streamable HTTP, path /acp")
    parser.add_argument(
        "--parent-pid", type=int, default=d, help="exit when this process (the editor) exits, like LSP processId"
    )
    parser.add_argument("--token-file", default=d, help="WebSocket bearer token file")
    parser.add_argument(
        "--observer-token-file",
        default=d,
        help="read-only WebSocket token file (written with a new token if it does not exist)",
    )
    parser.add_argument(
        "--login", default=d, metavar="AGENT", help="log AGENT in interactively instead of serving (ACP terminal auth)"
    )
    parser.add_argument("--allow-origin", action="append", default=d, help="allowed Origin (repeatable)")
    parser.add_argument("--allow-host", action="append", default=d, help="allowed Host header (repeatable)")
    parser.add_argument(
        "--allow-remote", action="store_true", default=d if sub else False, help="allow a non-loopback bind"
    )
    # WebSocket limits (spec/websocket.md has the defaults).
    parser.add_argument("--ws-max-message", default=d, help="largest accepted message in bytes")
    parser.add_argument("--ws-max-connections", default=d, help="most simultaneous connections")
    parser.add_argument("--ws-queue-limit", default=d, help="per-connection outgoing queue bound in bytes")
    parser.add_argument("--ws-send-timeout", default=d, help="seconds a client may read nothing")
    parser.add_argument("--ws-ping-interval", default=d, help="keepalive ping interval and timeout (s)")


def run(args: argparse.Namespace, config: ConfigFile, state_dir: str) -> int:
    from bridge.app import Settings, serve_stdio

    if getattr(args, "login", None):
        from bridge.cli.login import login

        return login(args.login, config)
    known = sorted(agent_table(config))
    if args.agent is not None and args.agent not in known:
        sys.stderr.write(f"agent-bridge: unknown agent {args.agent!r}; known: {', '.join(known)}\n")
        return 2
    settings = Settings(
        state_dir=state_dir,
        config=config,
        default_agent=args.agent,
        listen=args.listen,
        parent_pid=getattr(args, "parent_pid", None),
    )
    if args.listen:
        from bridge.app import serve_websocket
        from bridge.transports.ws_options import TOKEN_FILE, WsConfigError, parse_options

        running = None if getattr(args, "token_file", None) else anyio.run(_running_listener, config, state_dir)
        if running is not None:
            # Its clients read <state-dir>/ws-token: a second listener must not replace it.
            sys.stderr.write(
                f"agent-bridge: a daemon already listens on this state dir (pid {running.pid}, {running.ws_url}; "
                f"token in {os.path.join(state_dir, TOKEN_FILE)}): connect to it, or give this one "
                "its own --token-file\n"
            )
            return 2
        try:
            options = parse_options(args, state_dir)
        except WsConfigError as exc:
            sys.stderr.write(f"agent-bridge: {exc}\n")
            return 2
        return _run(serve_websocket, settings, options)
    return _run(serve_stdio, settings)


def _run(main: Callable[..., Awaitable[int]], *args: Any) -> int:
    try:
        return anyio.run(main, *args)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        # A store that cannot be used at start (unreachable, a newer schema): one line, exit 2.
        fatal = _fatal_store_error(exc)
        if fatal is None:
            raise
        sys.stderr.write(f"agent-bridge: {fatal}\n")
        return 2


def _fatal_store_error(exc: BaseException) -> str | None:
    from bridge.errors import leaves
    from bridge.store.base import SchemaTooNew, UpgradeBlocked
    from bridge.store.pg_url import StoreUnavailable

    fatal = StoreUnavailable | SchemaTooNew | UpgradeBlocked
    return next((e.message for e in leaves(exc) if isinstance(e, fatal)), None)


async def _running_listener(config: ConfigFile, state_dir: str) -> Instance | None:
    """A live `serve --listen` daemon registered in this state dir's store, if any."""
    from bridge.errors import StoreError
    from bridge.store import open_store
    from bridge.store.base import this_host

    store = open_store(getattr(config, "store", None), state_dir)
    try:
        await store.open()
        # A shared PostgreSQL store lists the listeners of every machine: only one on this
        # host can be using this state dir's token file.
        return next(
            (
                i
                for i in await store.instances()
                if i.transport == "websocket" and i.ws_url and i.host == this_host()
            ),
            None,
        )
    except StoreError:
        return None  # the daemon itself reports an unusable store
    finally:
        await store.close()
