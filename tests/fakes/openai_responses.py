"""The OpenAI Responses dialect of the fake model server, as Codex (0.169) consumes it.

Codex POSTs `{base_url}/responses` with `stream: true` and parses the SSE `data:` JSON by
its `type` (the `event:` line is cosmetic). A turn must end with `response.completed`,
or Codex reports "stream closed before response.completed" (and retries, unless the
provider sets `stream_max_retries = 0`, which our configs do).

Tool names differ between CLI versions and model families, so a `ToolUse` names a tool
loosely and the dialect resolves it against the request's own `tools`:
- shell: `exec_command {cmd}` (unified exec, 0.169) or `shell_command {command}` or
  `shell {command: [argv]}`; `shell_call()` builds a ToolUse that fits whichever is offered;
- `apply_patch` is a *custom* (freeform) tool: the call is a `custom_tool_call` whose
  `input` is the patch text (`ToolUse.input["input"]`);
- MCP tools arrive inside a `namespace` tool (`mcp__<server>`); they are listed here as
  `mcp__<server>__<tool>` and called as `{name: <tool>, namespace: mcp__<server>}`.

codex-acp 2.x names each new session after its first turn with a helper request of its own
(an ephemeral thread whose structured output is `{title}`): `is_title_request` spots it so
it takes no scripted reply.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.fakes.model_server import FakeModelServer, Reply, Request, ToolUse, paced, pick_tool, split_text

_ids = itertools.count(1)

SHELL_TOOLS = ("exec_command", "shell_command", "shell")


def _event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def _offered(body: Any) -> dict[str, dict[str, Any]]:
    """Flat tool name → {"kind": function|custom|..., "name", "namespace"?}."""
    out: dict[str, dict[str, Any]] = {}
    tools = body.get("tools") if isinstance(body, dict) else None
    for tool in tools or []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace":
            ns = str(tool.get("name", ""))
            for inner in tool.get("tools") or []:
                name = str(inner.get("name", ""))
                out[f"{ns}__{name}"] = {"kind": inner.get("type", "function"), "name": name, "namespace": ns}
        elif "name" in tool:
            out[str(tool["name"])] = {"kind": tool.get("type", "function"), "name": str(tool["name"])}
    return out


def pick_shell(offered: list[str]) -> str:
    for name in SHELL_TOOLS:
        if name in offered:
            return name
    raise AssertionError(f"no shell tool offered; tools were {offered}")


def shell_call(cmd: str, call_id: str = "call_shell", *, escalate: bool = False) -> ToolUse:
    """Run `cmd` through whichever shell tool Codex offered. `escalate` asks to run outside
    the sandbox, which makes Codex ask for approval under the `on-request` policy."""
    extra = (
        {"sandbox_permissions": "require_escalated", "justification": "needs to write"} if escalate else {}
    )
    return ToolUse(name=pick_shell, input={"cmd": cmd, **extra}, id=call_id)


def patch_call(patch: str, call_id: str = "call_patch") -> ToolUse:
    return ToolUse(name="apply_patch", input={"input": patch}, id=call_id)


def mcp_call(server: str, tool: str, args: dict[str, Any], call_id: str = "call_mcp") -> ToolUse:
    return ToolUse(name=f"mcp__{server}__{tool}", input=args, id=call_id)


def _shell_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in args.items() if k != "cmd"}
    if name == "shell_command":
        return {"command": args["cmd"], **rest}
    if name == "shell":
        return {"command": ["bash", "-lc", args["cmd"]], **rest}
    return dict(args)


def is_title_request(body: Any) -> bool:
    """codex-acp's session-title helper call: its structured output is a lone `title`."""
    if not isinstance(body, dict):
        return False
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    return isinstance(schema, dict) and schema.get("required") == ["title"]


class ResponsesDialect:
    def consumes(self, req: Request) -> bool:
        return not is_title_request(req.body)

    def matches(self, method: str, path: str) -> bool:
        p = path.split("?")[0]
        return (method == "POST" and p.endswith("/responses")) or (method == "GET" and p.endswith("/models"))

    def usage(self, reply: Reply) -> dict[str, Any]:
        """What `response.completed` reports, with the reply's overrides (e.g. reasoning
        tokens in `output_tokens_details`)."""
        usage: dict[str, Any] = {
            "input_tokens": 42,
            "input_tokens_details": None,
            "output_tokens": 7,
            "output_tokens_details": None,
            "total_tokens": 49,
        }
        return {**usage, **(reply.usage or {})}

    def tool_names(self, body: Any) -> list[str]:
        return list(_offered(body))

    def respond(self, req: Request, reply: Reply, tool_names: list[str]) -> tuple[int, str, Iterator[bytes]]:
        if req.path.split("?")[0].endswith("/models"):
            return 200, "application/json", iter([b'{"object":"list","data":[],"models":[]}'])
        offered = _offered(req.body)
        n = next(_ids)
        events: list[bytes] = [_event({"type": "response.created", "response": {"id": f"resp_{n}"}})]
        if reply.thinking:
            events += self._reasoning(n, reply)
        if reply.text:
            events += self._message(n, reply)
        try:
            calls = [self._call(use, offered) for use in reply.tools]
        except AssertionError as exc:
            # A scripted tool Codex did not offer: answer a non-retryable 400 so the turn fails
            # at once with the reason (a dropped connection would be retried forever).
            error = {"error": {"type": "invalid_request_error", "code": "fake_script", "message": str(exc)}}
            return 400, "application/json", iter([json.dumps(error).encode()])
        events += [_event({"type": "response.output_item.done", "item": call}) for call in calls]
        if reply.stop == "failed":
            failed = {"id": f"resp_{n}", "error": {"code": "server_error", "message": "scripted failure"}}
            events.append(_event({"type": "response.failed", "response": failed}))
        else:
            usage = self.usage(reply)
            events.append(
                _event({"type": "response.completed", "response": {"id": f"resp_{n}", "usage": usage}})
            )
        # Pacing applies to every event after the first, so a slow reply stays "in flight".
        return 200, "text/event-stream", paced(events, reply.delay)

    def _reasoning(self, n: int, reply: Reply) -> list[bytes]:
        item_id = f"rs_{n}"
        added = {
            "type": "reasoning",
            "id": item_id,
            "summary": [],
            "content": None,
            "encrypted_content": None,
        }
        out = [
            _event({"type": "response.output_item.added", "item": added}),
            _event({"type": "response.reasoning_summary_part.added", "item_id": item_id, "summary_index": 0}),
        ]
        for part in split_text(reply.thinking, reply.chunks):
            out.append(
                _event(
                    {
                        "type": "response.reasoning_summary_text.delta",
                        "item_id": item_id,
                        "summary_index": 0,
                        "delta": part,
                    }
                )
            )
        done = dict(added, summary=[{"type": "summary_text", "text": reply.thinking}])
        out.append(_event({"type": "response.output_item.done", "item": done}))
        return out

    def _message(self, n: int, reply: Reply) -> list[bytes]:
        item_id = f"msg_{n}"

        def item(text: str) -> dict[str, Any]:
            content = [{"type": "output_text", "text": text, "annotations": []}]
            return {"type": "message", "role": "assistant", "id": item_id, "content": content}

        out = [_event({"type": "response.output_item.added", "item": item("")})]
        for part in split_text(reply.text, reply.chunks):
            out.append(_event({"type": "response.output_text.delta", "item_id": item_id, "delta": part}))
        out.append(_event({"type": "response.output_item.done", "item": item(reply.text)}))
        return out

    def _call(self, use: ToolUse, offered: dict[str, dict[str, Any]]) -> dict[str, Any]:
        name = pick_tool(use.name, list(offered))
        spec = offered.get(name)
        if spec is None:
            raise AssertionError(f"tool {name!r} not offered; tools were {sorted(offered)}")
        if spec["kind"] == "custom":
            return {"type": "custom_tool_call", "call_id": use.id, "name": name, "input": use.input["input"]}
        args = _shell_args(name, use.input) if name in SHELL_TOOLS else use.input
        call: dict[str, Any] = {
            "type": "function_call",
            "call_id": use.id,
            "name": spec["name"],
            "arguments": json.dumps(args),
        }
        if "namespace" in spec:
            call["namespace"] = spec["namespace"]
        return call


def responses_server(default: Reply | None = None) -> FakeModelServer:
    """A fake server speaking the Responses dialect (start it with `.start()` or `with`)."""
    return FakeModelServer([ResponsesDialect()], default=default)


def _catalog_entry(slug: str, name: str, efforts: list[str], default: str) -> dict[str, Any]:
    return {
        "slug": slug,
        "display_name": name,
        "description": f"{name} (fake, for tests)",
        "base_instructions": "You are a coding agent under test.",
        "supported_reasoning_levels": [{"effort": e, "description": f"{e} effort"} for e in efforts],
        "default_reasoning_level": default,
        "shell_type": "unified_exec",
        "visibility": "list",
        "supported_in_api": True,
        "priority": 1,
        "apply_patch_tool_type": "freeform",
        "truncation_policy": {"mode": "tokens", "limit": 10000},
        "context_window": 128000,
        "experimental_supported_tools": [],
        "input_modalities": ["text", "image"],
        # False keeps MCP tools in the request (as a namespace tool) instead of deferring
        # them behind `tool_search`.
        "supports_search_tool": False,
        "support_verbosity": False,
    }


def codex_catalog() -> dict[str, Any]:
    """A `model_catalog_json` for the fake models, so Codex offers its full tool set
    (`apply_patch`, `update_plan`) and `model/list` has two models with different efforts.
    An unknown slug would get fallback metadata: no apply_patch, and a warning each turn."""
    return {
        "models": [
            _catalog_entry("mock-model", "Mock Model", ["low", "medium", "high"], "medium"),
            _catalog_entry("mock-model-mini", "Mock Mini", ["low", "medium"], "low"),
        ]
    }


def codex_config(
    base_url: str, *, catalog: str | None = None, model: str = "mock-model", extra: str = ""
) -> str:
    """A `config.toml` for a temp CODEX_HOME pointing Codex at the fake server, offline
    (analytics, plugins and remote features off: no outside connection attempts).
    `catalog` is the path of a file holding `json.dumps(codex_catalog())`."""
    catalog_line = f"model_catalog_json = {json.dumps(catalog)}\n" if catalog else ""
    return f"""model = "{model}"
model_provider = "fake"
check_for_update_on_startup = false
{catalog_line}{extra}
[model_providers.fake]
name = "Fake"
base_url = "{base_url}/v1"
env_key = "FAKE_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[features]
plugins = false
apps = false
remote_plugin = false
goals = false

[tools.update_plan]
enabled = true
"""


def write_codex_home(home: str | Path, base_url: str, *, extra: str = "") -> None:
    """Fill the directory `home` (a CODEX_HOME) with the catalog and config for the fake server."""
    root = Path(home)
    root.mkdir(parents=True, exist_ok=True)
    catalog = root / "catalog.json"
    catalog.write_text(json.dumps(codex_catalog()))
    (root / "config.toml").write_text(codex_config(base_url, catalog=str(catalog), extra=extra))


def last_tool_output(req: Request) -> str | None:
    """The output of the last tool call Codex sent back to the model in this request."""
    items = req.body.get("input", []) if isinstance(req.body, dict) else []
    for item in reversed(items):
        if isinstance(item, dict) and item.get("type") in ("function_call_output", "custom_tool_call_output"):
            out = item.get("output")
            return out if isinstance(out, str) else json.dumps(out)
    return None
