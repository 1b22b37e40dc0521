"""Replay a Claude Code session file as ACP `session/update`s (for `session/load`).

The CLI keeps each session in `$CLAUDE_CONFIG_DIR/projects/<cwd slug>/<session id>.jsonl`
(`~/.claude` when the variable is unset): one JSON object per line, conversation entries
(`user` / `assistant`, each holding a Messages API message) between bookkeeping lines.
Only what the user saw is replayed: their prompts, the answers, thinking, tool calls and
their results. Side-chains (subagent internals), meta entries and local-command chatter
are skipped. The slug rule is the CLI's business, so the file is found by its name.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from adapters.claude.translate import Translator
from bridge.core import events as ev
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

_COMMAND = re.compile(r"<command-name>(.*?)</command-name>.*?<command-args>(.*?)</command-args>", re.S)


def config_dir(env: Mapping[str, str]) -> Path:
    if env.get("CLAUDE_CONFIG_DIR"):
        return Path(env["CLAUDE_CONFIG_DIR"])
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".claude"


def find_session(env: Mapping[str, str], session_id: str) -> Path | None:
    projects = config_dir(env) / "projects"
    return next(iter(sorted(projects.glob(f"*/{session_id}.jsonl"))), None)


def session_cwd(path: Path) -> str | None:
    """The working directory the session was recorded in (the CLI files sessions by it)."""
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("cwd"), str):
                return str(entry["cwd"])
    return None


def read_entries(path: Path) -> list[JsonObj]:
    out = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            try:
                entry = json.loads(line)
            except ValueError:
                log.warning("%s:%d is not JSON (skipped)", path, n)
                continue
            if isinstance(entry, dict):
                out.append(entry)
    return out


def replay(entries: Iterable[JsonObj]) -> list[ev.CoreEvent]:
    """The events that show this conversation again, in order."""
    tr = Translator()
    out: list[ev.CoreEvent] = []
    for e in entries:
        message = e.get("message")
        if e.get("isSidechain") or e.get("isMeta") or not isinstance(message, dict):
            continue
        if e.get("type") == "assistant":
            out += tr.feed({"type": "assistant", "message": message})
        elif e.get("type") == "user":
            out += _user(tr, e, message)
    return out


def _user(tr: Translator, e: JsonObj, message: JsonObj) -> list[ev.CoreEvent]:
    content = message.get("content")
    if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
        return tr.feed({"type": "user", "message": message, "tool_use_result": e.get("toolUseResult")})
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    out: list[ev.CoreEvent] = []
    mid = str(e["uuid"]) if isinstance(e.get("uuid"), str) else None
    for b in blocks if isinstance(blocks, list) else []:
        acp = _prompt_block(b)
        if acp is not None:
            out.append(ev.MessageChunk("user", acp, mid or None))
    return out


def _prompt_block(b: Any) -> JsonObj | None:
    if not isinstance(b, dict):
        return None
    if b.get("type") == "text" and isinstance(b.get("text"), str):
        text = b["text"]
        cmd = _COMMAND.search(text)
        if cmd:  # a slash command the user typed, stored in the CLI's markup
            return {"type": "text", "text": f"{cmd.group(1)} {cmd.group(2)}".strip()}
        if text.startswith(("<local-command-", "<system-reminder>")) or not text.strip():
            return None
        return {"type": "text", "text": text}
    src = b.get("source")
    if b.get("type") == "image" and isinstance(src, dict) and src.get("type") == "base64":
        return {"type": "image", "data": src.get("data", ""), "mimeType": src.get("media_type", "image/png")}
    return None
