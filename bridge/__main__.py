"""Command line: `agent-bridge [serve] [options]` and the other subcommands.

Options are accepted before and after the subcommand. Exit codes: 0 clean shutdown,
2 bad command line or config (one clear line on stderr). Each subcommand lives in its own
module under `bridge/cli/` and is listed in `COMMANDS`; heavy imports happen inside them."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from bridge import __version__, logsetup
from bridge.config import ConfigError, ConfigFile, load_config
from bridge.paths import default_state_dir
from bridge.store import pg_url

# name → (module with `add_arguments(parser)` and `run(args, config, state_dir) -> int`, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("bridge.cli.serve", "serve ACP on stdio (default) or WebSocket"),
    "agents": ("bridge.cli.agents", "list the known agents, installed or not"),
    "doctor": ("bridge.cli.doctor", "check agents, logins, environment, state dir and config"),
    "prompt": ("bridge.cli.prompt", "send one prompt to an agent and stream the answer"),
    "sessions": ("bridge.cli.sessions", "list sessions"),
    "events": ("bridge.cli.events", "print a session's event history"),
    "inspect": ("bridge.cli.inspect", "a one-time login link for a running daemon's session inspector"),
    "install": ("bridge.cli.install", "install a built-in agent's CLI into the bridge's own prefix"),
    "uninstall": ("bridge.cli.uninstall", "remove an agent installed with `install`"),
    "mcp": ("bridge.cli.mcp", "list the MCP servers wired in the config, or start and check them"),
    "login": ("bridge.cli.login", "log an agent in, interactively (what an editor's terminal login runs)"),
}


def _common(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    # On subparsers, SUPPRESS keeps a value given before the subcommand.
    d = argparse.SUPPRESS if sub else None
    parser.add_argument("--agent", default=d, help="default agent for new sessions")
    parser.add_argument("--config", default=d, help="TOML config file")
    parser.add_argument("--state-dir", default=d, help="state directory (store, token, logs)")
    parser.add_argument(
        "--store",
        default=d,
        metavar="URL",
        help="session store: postgresql://user@host:port/db (env AGENT_BRIDGE_STORE; default SQLite in the state dir)",
    )
    parser.add_argument("--log-level", default=d, help="stderr log level: debug, info, warning (default), error")
    parser.add_argument("--trace", default=d, metavar="FILE", help="write a redacted JSONL trace of every message")
    parser.add_argument("--json", action="store_true", default=d if sub else False, help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    # No abbreviations: `--allow` of a subcommand must not be taken for serve's `--allow-origin`.
    parser = argparse.ArgumentParser(
        prog="agent-bridge", description="ACP v1 daemon in front of coding agents", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"agent-bridge {__version__}")
    _common(parser, sub=False)
    serve = importlib.import_module(COMMANDS["serve"][0])
    # `agent-bridge --listen ...` with no subcommand is `serve`: its options live on the top level too.
    serve.add_arguments(parser, sub=False)
    subs = parser.add_subparsers(dest="command")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subs.add_parser(name, help=help_text, allow_abbrev=False)
        _common(sub, sub=True)
        importlib.import_module(module_name).add_arguments(sub, sub=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logsetup.configure_stderr(args.log_level)
    try:
        args.config = args.config or os.environ.get("AGENT_BRIDGE_CONFIG") or None
        config: ConfigFile | None = load_config(args.config)
    except ConfigError as exc:
        if args.command != "doctor":
            sys.stderr.write(f"agent-bridge: {exc}\n")
            return 2
        config, args.config_error = None, str(exc)  # doctor reports it with the rest
    state_dir = args.state_dir or default_state_dir()
    if config is not None:
        # --store, then $AGENT_BRIDGE_STORE (keeps a password out of argv), then the config's.
        # Taken out of the environment: agents inherit it, and the URL may hold a password.
        from_env = os.environ.pop("AGENT_BRIDGE_STORE", None)
        store = getattr(args, "store", None) or from_env or None
        if store is not None:
            if problem := pg_url.check(store):
                sys.stderr.write(f"agent-bridge: {problem}\n")
                return 2
            config.store = store
        if config.store and pg_url.is_postgres(config.store):
            config.store = pg_url.take_env_password(config.store, os.environ)
            args.store = config.store  # a daemon the client commands spawn gets it (in its env)
        if args.trace:
            config.trace = args.trace
        if config.trace:
            config.trace = os.path.abspath(os.path.expanduser(config.trace))
        if (args.command or "serve") == "serve":
            logsetup.configure_file(state_dir, config.log_level, config.log_keep_days)
    module_name = COMMANDS[args.command or "serve"][0]
    code: int = importlib.import_module(module_name).run(args, config, state_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
