"""Replaying the recorded app-server transcripts (tests/fixtures/codex/*.jsonl)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from adapters.codex.translate import Translator
from bridge.core import to_acp
from bridge.core.events import CoreEvent
from bridge.wire.types import JsonObj
from tests.adapters.codex.support import FIXTURES, ROOT, validate_update


def messages(name: str) -> list[tuple[str, JsonObj]]:
    lines = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    return [(entry["dir"], entry["msg"]) for entry in map(json.loads, lines)]


def notifications(name: str) -> list[tuple[str, JsonObj]]:
    return [
        (m["method"], m.get("params") or {})
        for d, m in messages(name)
        if d == "out" and "method" in m and "id" not in m
    ]


def server_requests(name: str) -> list[JsonObj]:
    return [m for d, m in messages(name) if d == "out" and "method" in m and "id" in m]


def result_of(name: str, method: str) -> JsonObj:
    """The result Codex gave to our (first) request of `method` (ids restart per process)."""
    log = messages(name)
    at = next(i for i, (d, m) in enumerate(log) if d == "in" and m.get("method") == method)
    request_id = log[at][1]["id"]
    return next(
        m["result"] for d, m in log[at:] if d == "out" and m.get("id") == request_id and "result" in m
    )


def translate(name: str, translator: Translator | None = None, upto: str | None = None) -> list[JsonObj]:
    """The ACP updates a client gets for a transcript (its events through bridge/core/to_acp),
    each checked against the ACP schema."""
    return acp(events(name, translator, upto))


def acp(evs: list[CoreEvent]) -> list[JsonObj]:
    """Events as the validated `session/update` payloads a client gets."""
    updates = [to_acp.update(e) for e in evs]
    for update in updates:
        validate_update(update)
    return updates


def events(name: str, translator: Translator | None = None, upto: str | None = None) -> list[CoreEvent]:
    """Feed a transcript's notifications through a translator, one batch per message (a
    flush after each), optionally stopping before the first server request `upto`."""
    translator = translator or Translator()
    updates: list[CoreEvent] = []
    for direction, msg in messages(name):
        if direction != "out" or "method" not in msg:
            continue
        if "id" in msg:
            if msg["method"] == upto:
                break
            continue
        updates += translator.notification(msg["method"], msg.get("params") or {})
        updates += translator.flush()
    return updates


@cache
def _codex_schema() -> JsonObj:
    return json.loads((ROOT / "spec/codex/app-server-protocol.schema.json").read_text())


def validate_codex(definition: str, instance: Any) -> None:
    """Validate what we send Codex against the pinned app-server schema (draft-07)."""
    root = _codex_schema()
    defs = root["definitions"]
    path = f"#/definitions/{definition}" if definition in defs else f"#/definitions/v2/{definition}"
    schema = {"$schema": root["$schema"], "definitions": defs, "$ref": path}
    jsonschema.Draft7Validator(schema).validate(instance)
