"""Reading untrusted JSON from the CLI without type noise."""

from __future__ import annotations

from typing import Any

from bridge.wire.types import JsonObj


def obj(value: Any) -> JsonObj:
    """`value` if it is a JSON object, else an empty one (a missing or odd field)."""
    return value if isinstance(value, dict) else {}
