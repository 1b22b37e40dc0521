"""`agent-bridge doctor`: checks the agents, the state dir, the environment and the config,
and prints what is wrong with a fix for each (`--json` for tools). Exit code 1 when
something is broken, 0 otherwise (warnings included)."""

from __future__ import annotations

import argparse
import json
import sys

import anyio

from bridge.config import ConfigFile


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    if not sub:
        return
    parser.add_argument("agents", nargs="*", help="check only these agents (default: all)")
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=None,
        help="seconds to wait for each ACP agent's handshake (default: the config's handshake_timeout)",
    )


def run(args: argparse.Namespace, config: ConfigFile | None, state_dir: str) -> int:
    from bridge.diagnostics import doctor
    from bridge.diagnostics import report as doctor_report

    opts = doctor.Options(
        state_dir=state_dir,
        config=config,
        config_path=args.config,
        config_error=getattr(args, "config_error", None),
        required=[args.agent] if args.agent else [],
        handshake_timeout=args.handshake_timeout,
        only=args.agents,
    )
    report = anyio.run(doctor.run, opts)
    if args.json:
        from bridge.diagnostics.redact import default

        sys.stdout.write(json.dumps(default().value(report.to_json()), indent=2) + "\n")
    else:
        sys.stdout.write(doctor_report.render(report))
    return 0 if report.ok else 1
