"""Validates every message the daemon emits against the pinned ACP v1 schema (the unstable
schema for unstable methods). Responses are checked against the result type of the method
they answer."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC = Path(__file__).resolve().parent.parent / "spec" / "acp" / "v1"

RESULTS = {
    "initialize": "InitializeResponse",
    "authenticate": "AuthenticateResponse",
    "logout": "LogoutResponse",
    "session/new": "NewSessionResponse",
    "session/load": "LoadSessionResponse",
    "session/resume": "ResumeSessionResponse",
    "session/close": "CloseSessionResponse",
    "session/list": "ListSessionsResponse",
    "session/delete": "DeleteSessionResponse",
    "session/set_mode": "SetSessionModeResponse",
    "session/set_config_option": "SetSessionConfigOptionResponse",
    "session/prompt": "PromptResponse",
    "session/fork": "ForkSessionResponse",
}
REQUESTS = {
    "session/request_permission": "RequestPermissionRequest",
    "fs/read_text_file": "ReadTextFileRequest",
    "fs/write_text_file": "WriteTextFileRequest",
    "terminal/create": "CreateTerminalRequest",
    "terminal/output": "TerminalOutputRequest",
    "terminal/release": "ReleaseTerminalRequest",
    "terminal/wait_for_exit": "WaitForTerminalExitRequest",
    "terminal/kill": "KillTerminalRequest",
    "elicitation/create": "CreateElicitationRequest",
}
NOTIFICATIONS = {
    "session/update": "SessionNotification",
    "$/cancel_request": "CancelRequestNotification",
    "elicitation/complete": "CompleteElicitationNotification",
}
UNSTABLE_ONLY = {"ForkSessionResponse"}
# Not in ACP v1: the multi-client attach RFD's methods, specified in bridge-extensions.schema.json.
RFD_METHODS = {"session/attach", "session/detach"}


@cache
def _schema(unstable: bool) -> dict[str, Any]:
    return json.loads((SPEC / ("schema.unstable.json" if unstable else "schema.json")).read_text())


@cache
def _validator(defn: str, unstable: bool) -> Any:
    root = _schema(unstable)
    schema = {"$schema": root.get("$schema"), "$defs": root["$defs"], "$ref": f"#/$defs/{defn}"}
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


BRIDGE_SPEC = SPEC.parent.parent / "bridge-extensions.schema.json"


@cache
def _bridge_validator(defn: str) -> Any:
    root = json.loads(BRIDGE_SPEC.read_text())
    schema = {"$schema": root["$schema"], "$defs": root["$defs"], "$ref": f"#/$defs/{defn}"}
    return jsonschema.validators.validator_for(schema)(schema)


def check_bridge_def(defn: str, value: Any) -> None:
    """`value` against one of bridge-extensions.schema.json's definitions (its `meta` table
    names those for `_meta.bridge` fields and error data)."""
    errors = list(_bridge_validator(defn).iter_errors(value))
    if errors:
        raise SchemaError(f"{defn} invalid at {list(errors[0].absolute_path)}: {errors[0].message}")


def check_bridge_result(method: str, result: Any) -> None:
    methods = json.loads(BRIDGE_SPEC.read_text())["methods"]
    errors = list(_bridge_validator(methods[method]["result"]).iter_errors(result))
    if errors:
        raise SchemaError(f"{method} result invalid at {list(errors[0].absolute_path)}: {errors[0].message}")


def check_bridge_notification(method: str, params: Any) -> None:
    notifications = json.loads(BRIDGE_SPEC.read_text()).get("notifications", {})
    assert method in notifications, f"the daemon sent {method}, which spec/bridge-extensions.schema.json lacks"
    errors = list(_bridge_validator(notifications[method]).iter_errors(params))
    if errors:
        raise SchemaError(f"{method} params invalid at {list(errors[0].absolute_path)}: {errors[0].message}")


def known_update_kinds() -> set[str]:
    defs = _schema(True)["$defs"]["SessionUpdate"]
    kinds: set[str] = set()
    for variant in defs.get("oneOf", defs.get("anyOf", [])):
        const = variant.get("properties", {}).get("sessionUpdate", {}).get("const")
        if const:
            kinds.add(const)
    return kinds


class SchemaError(AssertionError):
    pass


def check(defn: str, value: Any) -> None:
    unstable = defn in UNSTABLE_ONLY
    errors = sorted(_validator(defn, unstable).iter_errors(value), key=lambda e: e.path)
    if errors and not unstable:
        # Unstable parts (e.g. fork capability, unstable update kinds) validate against the unstable schema.
        errors = sorted(_validator(defn, True).iter_errors(value), key=lambda e: e.path)
    if errors:
        e = errors[0]
        raise SchemaError(
            f"{defn} invalid at {list(e.absolute_path)}: {e.message}\n{json.dumps(value)[:2000]}"
        )


def check_message(
    msg: dict[str, Any], method_of: dict[Any, str], *, passthrough_unknown: bool = True
) -> None:
    """Validate one message the daemon sent. `method_of` maps our request ids to methods."""
    assert msg.get("jsonrpc") == "2.0", msg
    if "method" in msg:
        method = msg["method"]
        if method.startswith("_"):
            if "id" not in msg and method.startswith("_bridge/"):
                check_bridge_notification(method, msg.get("params"))
            return
        if "id" in msg:
            check(REQUESTS[method], msg.get("params"))
        else:
            params = msg.get("params")
            if (
                method == "session/update"
                and passthrough_unknown
                and params["update"].get("sessionUpdate") not in known_update_kinds()
            ):
                # Unknown kinds from an agent are passed through untouched, by design.
                assert isinstance(params.get("sessionId"), str)
                return
            check(NOTIFICATIONS[method], params)
        return
    if "error" in msg:
        check("Error", msg["error"])
        return
    method = method_of.get(msg.get("id"))
    if method in RESULTS:
        check(RESULTS[method], msg["result"])
    elif method is not None and (method.startswith("_bridge/") or method in RFD_METHODS):
        check_bridge_result(method, msg["result"])


def stable_root_keys(defn: str) -> set[str]:
    """The root fields `$defs/<defn>` of the *stable* schema allows (its `properties`,
    through `$ref` / `allOf` / `anyOf` / `oneOf`), plus `_meta`."""
    defs = _schema(False)["$defs"]
    keys = {"_meta"}
    seen: set[str] = set()

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref not in seen:
            seen.add(ref)
            walk(defs.get(ref.removeprefix("#/$defs/")))
        keys.update((node.get("properties") or {}).keys())
        for branch in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(branch) or []:
                walk(sub)

    walk(defs[defn])
    return keys


def unstable_root_keys(defn: str, value: Any) -> list[str]:
    """Root fields of `value` that the stable `$defs/<defn>` does not have (ACP: custom data
    goes in `_meta`; unstable fields only for clients that asked for them)."""
    if not isinstance(value, dict):
        return []
    return sorted(set(value) - stable_root_keys(defn))
