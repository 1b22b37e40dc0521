"""`agent-bridge serve`: ACP on stdio, or on WebSocket with `--listen`."""

from __future__ import annotations

import argparse
import sys

import anyio

from bridge.config import ConfigFile, agent_table


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    d = argparse.SUPPRESS if sub else None
    parser.add_argument("--listen", default=d, help="serve WebSocket at ws://HOST:PORT (path /acp)")
    parser.add_argument("--token-file", default=d, help="WebSocket bearer token file")
    parser.add_argument("--allow-origin", action="append", default=d, help="allowed Origin (repeatable)")
    parser.add_argument("--allow-host", action="append", default=d, help="allowed Host header (repeatable)")
    parser.add_argument(
        "--allow-remote", action="store_true", default=d if sub else False, help="allow a non-loopback bind"
    )


def run(args: argparse.Namespace, config: ConfigFile, state_dir: str) -> int:
    from bridge.app import Settings, serve_stdio

    known = sorted(agent_table(config))
    if args.agent is not None and args.agent not in known:
        sys.stderr.write(f"agent-bridge: unknown agent {args.agent!r}; known: {', '.join(known)}\n")
        return 2
    settings = Settings(state_dir=state_dir, config=config, default_agent=args.agent, listen=args.listen)
    if args.listen:
        from bridge.transports.websocket import serve_websocket_main

        return serve_websocket_main(settings, args)
    try:
        return anyio.run(serve_stdio, settings)
    except KeyboardInterrupt:
        return 0
