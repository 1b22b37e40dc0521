"""`agent-bridge uninstall AGENT`: removes what `agent-bridge install` put in the bridge's prefix."""

from __future__ import annotations

import argparse

from bridge.cli import install
from bridge.config import ConfigFile


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    if sub:
        parser.add_argument("agent", nargs="?", help="built-in agent (e.g. claude, codex, gemini, qwen)")


def run(args: argparse.Namespace, config: ConfigFile | None, state_dir: str) -> int:
    return install.run_uninstall(args, config, state_dir)
