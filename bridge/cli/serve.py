"""`agent-bridge serve`: ACP on stdio, or on WebSocket with `--listen`."""

from __future__ import annotations

import argparse
import sys

import anyio

from bridge.config import ConfigFile, agent_table


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    d = argparse.SUPPRESS if sub else None
    parser.add_argument("--listen", default=d, help="serve WebSocket at ws://HOST:PORT (path /acp)")
    parser.add_argument(
        "--parent-pid", type=int, default=d, help="exit when this process (the editor) exits, like LSP processId"
    )
    parser.add_argument("--token-file", default=d, help="WebSocket bearer token file")
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
        from bridge.transports.websocket import WsConfigError, parse_options

        try:
            options = parse_options(args, state_dir)
        except WsConfigError as exc:
            sys.stderr.write(f"agent-bridge: {exc}\n")
            return 2
        try:
            return anyio.run(serve_websocket, settings, options)
        except KeyboardInterrupt:
            return 0
    try:
        return anyio.run(serve_stdio, settings)
    except KeyboardInterrupt:
        return 0
