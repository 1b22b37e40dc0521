"""Command line: `agent-bridge [serve] [options]`, `agent-bridge agents`.

Options are accepted before and after the subcommand. Exit codes: 0 clean shutdown,
2 bad command line or config (one clear line on stderr)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import anyio

from bridge import __version__
from bridge.config import ConfigError, default_state_dir, load_config

log = logging.getLogger("bridge")


def _common(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    d = argparse.SUPPRESS if sub else None
    parser.add_argument("--agent", default=d, help="default agent for new sessions")
    parser.add_argument("--config", default=d, help="TOML config file")
    parser.add_argument("--state-dir", default=d, help="state directory (store, token, logs)")
    parser.add_argument("--log-level", default=d, help="debug, info, warning (default), error")
    parser.add_argument("--listen", default=d, help="serve WebSocket at ws://HOST:PORT (path /acp)")
    parser.add_argument("--token-file", default=d, help="WebSocket bearer token file")
    parser.add_argument("--allow-origin", action="append", default=d, help="allowed Origin (repeatable)")
    parser.add_argument("--allow-host", action="append", default=d, help="allowed Host header (repeatable)")
    parser.add_argument("--allow-remote", action="store_true", default=d, help="allow a non-loopback bind")
    parser.add_argument("--json", action="store_true", default=d, help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-bridge", description="ACP v1 daemon in front of coding agents")
    parser.add_argument("--version", action="version", version=f"agent-bridge {__version__}")
    _common(parser, sub=False)
    subs = parser.add_subparsers(dest="command")
    for name, help_text in (("serve", "serve ACP on stdio (default) or WebSocket"), ("agents", "list known agents")):
        _common(subs.add_parser(name, help=help_text), sub=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(
        stream=sys.stderr,
        level=(args.log_level or os.environ.get("AGENT_BRIDGE_LOG_LEVEL") or "warning").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"agent-bridge: {exc}\n")
        return 2
    state_dir = args.state_dir or default_state_dir()
    command = args.command or "serve"
    if command == "agents":
        from bridge.cli.agents import run_agents

        return run_agents(config, json_output=bool(args.json))
    from bridge.app import Settings, serve_stdio

    settings = Settings(state_dir=state_dir, config=config, default_agent=args.agent, listen=args.listen)
    if args.agent is not None and args.agent not in _agent_names(config):
        sys.stderr.write(f"agent-bridge: unknown agent {args.agent!r}; known: {', '.join(_agent_names(config))}\n")
        return 2
    if args.listen:
        from bridge.transports.websocket import serve_websocket_main

        return serve_websocket_main(settings, args)
    try:
        return anyio.run(serve_stdio, settings)
    except KeyboardInterrupt:
        return 0


def _agent_names(config: object) -> list[str]:
    from bridge.config import ConfigFile, agent_table

    assert isinstance(config, ConfigFile)
    return sorted(agent_table(config))


if __name__ == "__main__":
    sys.exit(main())
