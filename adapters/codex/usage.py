"""Token usage as ACP reports it, from Codex's running thread totals."""

from __future__ import annotations

from typing import Any

from bridge.wire.types import JsonObj


def minus(total: Any, last: Any) -> JsonObj | None:
    if not isinstance(total, dict):
        return None
    last = last if isinstance(last, dict) else {}
    return {k: int(v or 0) - int(last.get(k) or 0) for k, v in total.items() if isinstance(v, int | None)}


def delta(before: JsonObj | None, after: JsonObj | None) -> JsonObj | None:
    """This turn's tokens as ACP `Usage`, from Codex's running thread totals."""
    if not after:
        return None

    def took(key: str) -> int:
        return int(after.get(key) or 0) - int((before or {}).get(key) or 0)

    return {
        "totalTokens": took("totalTokens"),
        "inputTokens": took("inputTokens"),
        "outputTokens": took("outputTokens"),
        "thoughtTokens": took("reasoningOutputTokens"),
        "cachedReadTokens": took("cachedInputTokens"),
        "cachedWriteTokens": took("cacheWriteInputTokens"),
    }
