"""Command line: `agent-bridge [serve] [options]` and the other subcommands.

Options are accepted before and after the subcommand. Exit codes: 0 clean shutdown,
2 bad command line or config (one clear line on stderr). Each subcommand lives in its own
module under `bridge/cli/` and is listed in `COMMANDS`; heavy imports happen inside them."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from bridge import __version__
from bridge.config import ConfigError, default_state_dir, load_config

# name → (module with `add_arguments(parser)` and `run(args, config, state_dir) -> int`, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("bridge.cli.serve", "serve ACP on stdio (default) or WebSocket"),
    "agents": ("bridge.cli.agents", "list the known agents, installed or not"),
}


def _common(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    # On subparsers, SUPPRESS keeps a value given before the subcommand.
    d = argparse.SUPPRESS if sub else None
    parser.add_argument("--agent", default=d, help="default agent for new sessions")
    parser.add_argument("--config", default=d, help="TOML config file")
    parser.add_argument("--state-dir", default=d, help="state directory (store, token, logs)")
    parser.add_argument("--log-level", default=d, help="debug, info, warning (default), error")
    parser.add_argument("--json", action="store_true", default=d if sub else False, help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-bridge", description="ACP v1 daemon in front of coding agents")
    parser.add_argument("--version", action="version", version=f"agent-bridge {__version__}")
    _common(parser, sub=False)
    serve = importlib.import_module(COMMANDS["serve"][0])
    # `agent-bridge --listen ...` with no subcommand is `serve`: its options live on the top level too.
    serve.add_arguments(parser, sub=False)
    subs = parser.add_subparsers(dest="command")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subs.add_parser(name, help=help_text)
        _common(sub, sub=True)
        importlib.import_module(module_name).add_arguments(sub, sub=True)
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
    module_name = COMMANDS[args.command or "serve"][0]
    code: int = importlib.import_module(module_name).run(args, config, state_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
