"""`agent-bridge inspect`: a one-time login link for the session inspector of a running
`serve --listen` daemon (spec/inspector.md).

The token goes to the daemon in an `Authorization` header, never in the link: the printed
link carries a one-time code, good for two minutes, which the browser exchanges for an
HttpOnly, SameSite=Strict cookie."""

from __future__ import annotations

import argparse
import json
import os
import sys
from urllib.parse import urlsplit

import anyio

from bridge.config import ConfigFile


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    d = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--connect",
        metavar="URL",
        default=d,
        help="the daemon (ws://127.0.0.1:PORT/acp; default: the one on this state dir)",
    )
    parser.add_argument(
        "--token-file",
        default=d,
        help="its token file (default: <state-dir>/ws-token, or $AGENT_BRIDGE_TOKEN)",
    )
    parser.add_argument(
        "--read-only", action="store_true", help="a link that can only look (no cancel, no answers)"
    )


def run(args: argparse.Namespace, config: ConfigFile, state_dir: str) -> int:
    url = getattr(args, "connect", None)
    if not url:
        from bridge.cli.serve import _running_listener

        running = anyio.run(_running_listener, config, state_dir)
        if running is None or not running.ws_url:
            sys.stderr.write(
                "agent-bridge inspect: no `serve --listen` daemon runs on this state dir; start one, or pass --connect\n"
            )
            return 1
        url = running.ws_url
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "http") or not parts.netloc:
        sys.stderr.write(f"agent-bridge inspect: {url!r} is not ws://HOST:PORT/acp\n")
        return 2
    try:
        token = _token(args, state_dir)
    except OSError as exc:
        sys.stderr.write(f"agent-bridge inspect: cannot read the token: {exc}\n")
        return 1
    # urllib.request pulls in http.client, email and ssl (~50 ms): only this command needs them,
    # and every start of the daemon imports this module to build its command line.
    import urllib.error
    import urllib.request

    base = f"http://{parts.netloc}"
    request = urllib.request.Request(
        base + "/inspector/links" + ("?read_only=1" if args.read_only else ""),
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    # The daemon is local (or tunnelled): never through an HTTP proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        sys.stderr.write(
            f"agent-bridge inspect: the daemon refused: {exc.code} {exc.read().decode(errors='replace').strip()}\n"
        )
        return 1
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"agent-bridge inspect: cannot reach {base}: {exc}\n")
        return 1
    link = base + answer["path"]
    if getattr(args, "json", False):
        sys.stdout.write(
            json.dumps({"url": link, "access": answer["access"], "expiresIn": answer["expiresIn"]}) + "\n"
        )
    else:
        sys.stdout.write(link + "\n")
        sys.stderr.write(
            f"open it in a browser on this machine within {int(answer['expiresIn'])} s; it works once ({answer['access']} access)\n"
        )
    return 0


def _token(args: argparse.Namespace, state_dir: str) -> str:
    path = getattr(args, "token_file", None)
    if not path:
        env = os.environ.get("AGENT_BRIDGE_TOKEN")
        if env:
            return env.strip()
        path = os.path.join(state_dir, "ws-token")
    with open(path, encoding="utf-8") as f:
        return f.read().strip()
