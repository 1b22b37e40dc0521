"""The command line of `agent-bridge prompt` (what `bridge/cli/prompt.py` runs): its
arguments, kept apart from the turn they drive."""

from __future__ import annotations

import argparse

from bridge.cli.client_common import add_connection_arguments


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    parser.add_argument("text", nargs="*", help="the prompt (read from stdin when absent or '-')")
    parser.add_argument("--cwd", default=None, help="the session's working directory (default: .)")
    parser.add_argument("--session", default=None, metavar="ID", help="continue this session")
    parser.add_argument(
        "--no-continue",
        dest="continue_lost",
        action="store_false",
        help="with --session: fail when the agent no longer has the session, instead of continuing "
        "in a new agent session seeded with the bridge's transcript",
    )
    parser.add_argument("--model", default=None, help="set the model (config option of category model)")
    parser.add_argument("--mode", default=None, help="set the mode (e.g. plan)")
    parser.add_argument("--thought-level", default=None, help="set the thought level (e.g. high)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="ID=VALUE", help="set any config option (repeatable)"
    )
    parser.add_argument("--title", default=None, help="title of a new session")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--allow-once",
        dest="permission_policy",
        action="store_const",
        const="allow_once",
        help="allow every permission request, once each",
    )
    group.add_argument(
        "--allow-always",
        dest="permission_policy",
        action="store_const",
        const="allow_always",
        help="allow every permission request and let the agent remember it",
    )
    group.add_argument(
        "--deny",
        dest="permission_policy",
        action="store_const",
        const="reject",
        help="reject every permission request",
    )
    group.add_argument(
        "--permission-policy",
        dest="permission_policy",
        choices=("ask", "allow_once", "allow_always", "reject"),
        help="ask (on a terminal), allow_once, allow_always or reject (default: ask on a terminal, else reject)",
    )
    add_connection_arguments(parser, sub=sub)
