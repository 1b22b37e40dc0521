"""`agent-bridge sessions`: the sessions the daemon knows, most recent first."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio

from bridge.cli.client_common import Style, add_connection_arguments, open_client
from bridge.config import ConfigFile


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    parser.add_argument("--cwd", default=None, help="only sessions in this directory")
    parser.add_argument("--limit", type=int, default=None, help="at most this many")
    parser.add_argument("--all", action="store_true", help="include archived sessions")
    add_connection_arguments(parser, sub=sub)


def run(args: argparse.Namespace, config: ConfigFile, state_dir: str) -> int:
    from bridge.client import ClientError

    try:
        rows = anyio.run(_list, args, state_dir)
    except ClientError as exc:
        sys.stderr.write(f"agent-bridge sessions: {exc}\n")
        return 1
    if args.json:
        for row in rows:
            sys.stdout.write(
                json.dumps(row.model_dump(by_alias=True, exclude_none=True, exclude={"meta"})) + "\n"
            )
        return 0
    if not rows:
        sys.stderr.write("no sessions\n")
        return 0
    s = Style(sys.stdout, args.color)
    head = f"{'ID':<37} {'AGENT':<10} {'STATUS':<7} {'UPDATED':<20} TITLE / CWD"
    sys.stdout.write(s(head, "bold") + "\n")
    for r in rows:
        updated = (r.updated_at or "")[:19].replace("T", " ")
        status = r.status or ""
        color = {"busy": "yellow", "error": "red", "idle": "green"}.get(status, "dim")
        label = r.title or ""
        where = _home(r.cwd)
        tail = f"{label}  {s(where, 'dim')}" if label else where
        if r.archived:
            tail += s("  (archived)", "dim")
        sys.stdout.write(
            f"{r.session_id:<37} {(r.agent or ''):<10} {s(f'{status:<7}', color)} {updated:<20} {tail}\n"
        )
    return 0


async def _list(args: argparse.Namespace, state_dir: str) -> list[Any]:
    async with open_client(args, state_dir) as client:
        rows: list[Any] = await client.list_sessions(
            cwd=args.cwd, limit=args.limit, include_archived=bool(args.all)
        )
        return rows


def _home(path: str) -> str:
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if home != "/" and (path == home or path.startswith(home + "/")) else path
