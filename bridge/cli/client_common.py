"""What the client subcommands (`prompt`, `sessions`, `events`) share: reaching a daemon
(spawning one on the same config and state directory, or `--connect` to a running one) and
terminal styling."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import AbstractAsyncContextManager
from typing import IO, Any

from bridge.config import ConfigError, agent_table, load_config


def add_connection_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    d = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--connect",
        metavar="URL",
        default=d,
        help="use a running daemon (ws://127.0.0.1:PORT/acp) instead of spawning one",
    )
    parser.add_argument(
        "--token-file",
        default=d,
        help="WebSocket token file for --connect (default: <state-dir>/ws-token, or $AGENT_BRIDGE_TOKEN)",
    )
    parser.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="colour on a terminal (auto)"
    )


def config_path(args: argparse.Namespace) -> str | None:
    path = getattr(args, "config", None) or os.environ.get("AGENT_BRIDGE_CONFIG") or None
    return str(path) if path else None


def check_agent(args: argparse.Namespace) -> str | None:
    """An error line when `--agent` names no agent of the config the spawned daemon will use."""
    if getattr(args, "connect", None) or not getattr(args, "agent", None):
        return None
    try:
        known = agent_table(load_config(config_path(args)))
    except ConfigError as exc:
        return str(exc)
    if args.agent not in known:
        return f"unknown agent {args.agent!r}; known: {', '.join(sorted(known))}"
    return None


def open_client(args: argparse.Namespace, state_dir: str, **options: Any) -> AbstractAsyncContextManager[Any]:
    from bridge.client import BridgeClient

    url = getattr(args, "connect", None)
    if url:
        token = os.environ.get("AGENT_BRIDGE_TOKEN") or None
        return BridgeClient.connect(
            url, token=token, token_file=getattr(args, "token_file", None), state_dir=state_dir, **options
        )
    store = getattr(args, "store", None)
    return BridgeClient.spawn(
        agent=getattr(args, "agent", None),
        # The store URL may hold a password: the spawned daemon gets it in its environment,
        # never in its argv (which `ps` shows to every user).
        env={"AGENT_BRIDGE_STORE": store} if store else None,
        config=config_path(args),
        state_dir=state_dir,
        log_level=getattr(args, "log_level", None),
        args=["--trace", args.trace] if getattr(args, "trace", None) else [],
        stderr=sys.stderr.buffer,
        **options,
    )


class Style:
    """ANSI styling, only when the stream is a terminal (or `--color always`), honouring
    NO_COLOR and TERM=dumb."""

    CODES = {
        "bold": "1",
        "dim": "2",
        "red": "31",
        "green": "32",
        "yellow": "33",
        "blue": "34",
        "magenta": "35",
        "cyan": "36",
    }

    def __init__(self, stream: IO[str], mode: str = "auto") -> None:
        if mode == "always":
            self.on = True
        elif mode == "never":
            self.on = False
        else:
            self.on = (
                _isatty(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM", "") != "dumb"
            )

    def __call__(self, text: str, *styles: str) -> str:
        if not self.on or not styles:
            return text
        codes = ";".join(self.CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
