"""`agent-bridge events ID`: a session's durable history, one event per line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from bridge.cli.client_common import Style, add_connection_arguments, open_client
from bridge.config import ConfigFile


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    parser.add_argument("session_id", metavar="ID", help="the session")
    parser.add_argument("--after", type=int, default=0, help="only events after this seq")
    parser.add_argument("--limit", type=int, default=None, help="at most this many events")
    add_connection_arguments(parser, sub=sub)


def run(args: argparse.Namespace, config: ConfigFile, state_dir: str) -> int:
    from bridge.client import ClientError

    try:
        return anyio.run(_print, args, state_dir)
    except ClientError as exc:
        sys.stderr.write(f"agent-bridge events: {exc}\n")
        return 1


async def _print(args: argparse.Namespace, state_dir: str) -> int:
    s = Style(sys.stdout, args.color)
    count = 0
    async with open_client(args, state_dir) as client:
        async for event in client.iter_events(args.session_id, after=args.after):
            if args.limit is not None and count >= args.limit:
                break
            count += 1
            if args.json:
                line = {
                    "seq": event.seq,
                    "at": event.at,
                    "direction": event.direction,
                    "message": event.message,
                }
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
                continue
            color = {"client": "cyan", "agent": "green", "bridge": "yellow"}.get(event.direction, "")
            when = event.at[11:23] if len(event.at) >= 23 else event.at
            sys.stdout.write(
                f"{event.seq:>6} {s(when, 'dim')} {s(f'{event.direction:<6}', color)} {summarize(event.message)}\n"
            )
    if count == 0 and not args.json:
        sys.stderr.write("no events\n")
    return 0


def summarize(msg: dict[str, Any]) -> str:
    """One line for a logged message."""
    method = msg.get("method")
    params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
    assert isinstance(params, dict)
    if method == "session/update":
        update = params.get("update") if isinstance(params.get("update"), dict) else {}
        assert isinstance(update, dict)
        kind = str(update.get("sessionUpdate"))
        content = update.get("content")
        if isinstance(content, dict) and content.get("type") == "text":
            return f"{kind} {_quote(content.get('text', ''))}"
        if kind in ("tool_call", "tool_call_update"):
            bits = [update.get("toolCallId"), update.get("title"), update.get("status")]
            return f"{kind} " + " ".join(str(b) for b in bits if b)
        if kind == "plan":
            return f"plan ({len(update.get('entries') or [])} entries)"
        return kind
    if method == "session/prompt":
        text = " ".join(str(b.get("text", "")) for b in params.get("prompt") or [] if isinstance(b, dict))
        return f"session/prompt {_quote(text)}"
    if method == "session/request_permission":
        call = params.get("toolCall") if isinstance(params.get("toolCall"), dict) else {}
        assert isinstance(call, dict)
        return f"session/request_permission {call.get('title') or call.get('toolCallId', '')}"
    if isinstance(method, str):
        keys = ", ".join(k for k in params if k not in ("sessionId", "_meta"))
        return f"{method}" + (f" ({keys})" if keys else "")
    if "result" in msg:
        result = msg["result"]
        if isinstance(result, dict) and "stopReason" in result:
            return f"→ stopReason {result['stopReason']}"
        if isinstance(result, dict) and isinstance(result.get("outcome"), dict):
            outcome = result["outcome"]
            return f"→ permission {outcome.get('optionId') or outcome.get('outcome')}"
        return "→ result" + (f" ({', '.join(result)})" if isinstance(result, dict) and result else "")
    if "error" in msg and isinstance(msg["error"], dict):
        return f"→ error {msg['error'].get('code')}: {msg['error'].get('message')}"
    if "bridge" in msg:
        record = msg["bridge"]
        return "bridge: " + (str(record.get("type")) if isinstance(record, dict) else str(record))
    return json.dumps(msg)[:200]


def _quote(text: str, limit: int = 80) -> str:
    text = text.replace("\n", "⏎")
    return json.dumps(text[:limit] + ("…" if len(text) > limit else ""), ensure_ascii=False)
