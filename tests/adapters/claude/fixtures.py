"""Loading the recorded Claude Code transcripts (tests/fixtures/claude, see record.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.claude.options import ClaudeConfig
from adapters.claude.translate import Translator
from bridge.core import to_acp
from bridge.core.events import CoreEvent
from tests.acp_schema import check

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "claude"
TRANSCRIPTS = sorted(p.stem for p in FIXTURES.glob("*.jsonl") if not p.stem.endswith(".session"))


def load(name: str) -> list[tuple[str, dict[str, Any]]]:
    lines = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    return [(d["dir"], d["msg"]) for d in map(json.loads, lines)]


def out_messages(name: str) -> list[dict[str, Any]]:
    """What the CLI wrote that the translator sees (the control channel is the adapter's)."""
    return [m for d, m in load(name) if d == "out" and not m["type"].startswith("control_")]


def init_response(name: str) -> dict[str, Any]:
    for d, m in load(name):
        if d == "out" and m["type"] == "control_response" and m["response"]["request_id"].startswith("req_init"):
            return dict(m["response"]["response"])
    raise LookupError(name)


def events(name: str, config: ClaudeConfig | None = None) -> tuple[Translator, list[CoreEvent]]:
    """The core events the translator makes of a transcript."""
    tr = Translator(config)
    return tr, [e for m in out_messages(name) for e in tr.feed(m)]


def translate(name: str, config: ClaudeConfig | None = None) -> tuple[Translator, list[dict[str, Any]]]:
    """The ACP updates a client gets for a transcript (events through bridge/core/to_acp),
    each checked against the ACP schema."""
    tr, evs = events(name, config)
    return tr, acp(evs)


def acp(evs: list[CoreEvent]) -> list[dict[str, Any]]:
    """Events as the validated `session/update` payloads a client gets."""
    return [valid(to_acp.update(e)) for e in evs]


def valid(update: dict[str, Any]) -> dict[str, Any]:
    check("SessionNotification", {"sessionId": "s", "update": update})
    return update


def kinds(updates: list[dict[str, Any]]) -> list[str]:
    return [u["sessionUpdate"] for u in updates]


def text_of(updates: list[dict[str, Any]], kind: str) -> str:
    return "".join(u["content"]["text"] for u in updates if u["sessionUpdate"] == kind)


def result_of(name: str) -> dict[str, Any]:
    return [m for m in out_messages(name) if m["type"] == "result"][-1]
