"""Per-session settings for Codex, kept as ACP config options. Pure: no I/O.

- `mode`: the three Codex approval presets (as Codex's own TUI and the ACP adapters name
  them) — read-only (on-request + read-only sandbox), auto (on-request + workspace-write),
  full-access (never + no sandbox). The session starts in whatever Codex resolved from the
  user's config.toml; when that matches no preset it shows as a fourth mode, "config", so a
  user's policy is never replaced behind their back (codex-acp #310 sent a preset on every
  turn). A preset is sent only once the user picks one, and picking "config" sends back the
  policy Codex started with.
- `model`: from `model/list`; `thought_level`: the reasoning efforts the current model supports.

Changes become `turn/start` overrides for the next turn (Codex keeps them for the turns after).
They are never written to the user's files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bridge.core.config_options import choice, mode_state, select
from bridge.errors import invalid_params
from bridge.wire.types import JsonObj

CONFIG_MODE = "config"

# id → (name, description, approval policy, sandbox policy type)
PRESETS: dict[str, tuple[str, str, str, str]] = {
    "read-only": (
        "Read Only",
        "Codex can read files in the workspace. Approval is required to edit files, "
        "run commands outside the sandbox or access the network.",
        "on-request",
        "readOnly",
    ),
    "auto": (
        "Default",
        "Codex can read and edit files in the workspace and run commands in the sandbox. "
        "Approval is required to leave the workspace or access the network.",
        "on-request",
        "workspaceWrite",
    ),
    "full-access": (
        "Full Access",
        "Codex can edit files anywhere, run any command and access the network without asking. "
        "Use with care.",
        "never",
        "dangerFullAccess",
    ),
}


def preset_of(approval: Any, sandbox: Any) -> str | None:
    kind = sandbox.get("type") if isinstance(sandbox, dict) else None
    for preset_id, (_, _, policy, sandbox_type) in PRESETS.items():
        if approval == policy and kind == sandbox_type:
            return preset_id
    return None


def sandbox_policy(sandbox_type: str, extra_roots: list[str]) -> JsonObj:
    if sandbox_type == "workspaceWrite":
        return {"type": "workspaceWrite", "writableRoots": list(extra_roots), "networkAccess": False}
    return {"type": sandbox_type}


def _describe_policy(approval: Any, sandbox: Any) -> str:
    kind = sandbox.get("type") if isinstance(sandbox, dict) else sandbox
    return f"approval policy {approval if isinstance(approval, str) else 'granular'}, sandbox {kind}"


@dataclass
class Settings:
    """The session's model / effort / policy as Codex reported them, plus pending changes."""

    model: str
    effort: str | None
    approval: Any  # Codex AskForApproval, as reported by thread/start or thread/resume
    sandbox: JsonObj  # Codex SandboxPolicy, as reported
    models: list[JsonObj] = field(default_factory=list)  # `model/list` data
    configured: JsonObj = field(default_factory=dict)  # user config: approval_policy, sandbox_mode
    extra_roots: list[str] = field(default_factory=list)
    pending: JsonObj = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.initial = (self.approval, self.sandbox)
        self.mode = preset_of(self.approval, self.sandbox) or CONFIG_MODE

    # -- what the client sees -------------------------------------------------------------
    def modes(self) -> JsonObj:
        available = [(mid, name, desc) for mid, (name, desc, _, _) in PRESETS.items()]
        if preset_of(*self.initial) is None:
            described = "As configured for Codex: " + _describe_policy(*self.initial)
            available.append((CONFIG_MODE, "From config.toml", described))
        return mode_state(self.mode, available)

    def config_options(self) -> list[JsonObj]:
        modes = self.modes()
        mode_desc = "Approval and sandbox preset"
        user_set = {k: v for k, v in self.configured.items() if v is not None}
        if user_set:
            settings = ", ".join(f"{k} = {v}" for k, v in sorted(user_set.items()))
            mode_desc += (
                f". Your Codex config sets {settings}; another mode overrides it for this session only"
            )
        mode_choices = [choice(m["id"], m["name"], m.get("description")) for m in modes["availableModes"]]
        options = [
            select("mode", "Mode", "mode", self.mode, mode_choices, description=mode_desc),
            select(
                "model", "Model", "model", self.model, self._model_choices(), description="Model Codex uses"
            ),
        ]
        efforts = self._effort_choices()
        if efforts:
            current = self.effort or str(
                self._model_info().get("defaultReasoningEffort") or efforts[0]["value"]
            )
            if current not in {e["value"] for e in efforts}:
                efforts.append(choice(current, current.capitalize()))
            options.append(
                select(
                    "thought_level",
                    "Reasoning effort",
                    "thought_level",
                    current,
                    efforts,
                    description="How hard the model thinks",
                )
            )
        return options

    def _model_info(self, model: str | None = None) -> JsonObj:
        wanted = model or self.model
        return next((m for m in self.models if wanted in (m.get("id"), m.get("model"))), {})

    def _model_choices(self) -> list[JsonObj]:
        choices = [
            choice(str(m.get("id")), str(m.get("displayName") or m.get("id")), m.get("description"))
            for m in self.models
            if not m.get("hidden") or m.get("id") == self.model
        ]
        if self.model not in {c["value"] for c in choices}:
            choices.insert(0, choice(self.model, self.model))
        return choices

    def _effort_choices(self, model: str | None = None) -> list[JsonObj]:
        return [
            choice(
                str(e.get("reasoningEffort")),
                str(e.get("reasoningEffort")).capitalize(),
                e.get("description"),
            )
            for e in self._model_info(model).get("supportedReasoningEfforts") or []
        ]

    # -- changes ------------------------------------------------------------------------------
    def set_option(self, config_id: str, value: Any) -> None:
        if not isinstance(value, str):
            raise invalid_params(f"config option {config_id!r} takes a string value", "value")
        if config_id == "mode":
            self.set_mode(value)
        elif config_id == "model":
            self._set_model(value)
        elif config_id == "thought_level":
            allowed = {e["value"] for e in self._effort_choices()}
            if value not in allowed:
                raise invalid_params(
                    f"unknown reasoning effort {value!r} for {self.model}; one of {sorted(allowed)}", "value"
                )
            self.effort = self.pending["effort"] = value
        else:
            raise invalid_params(
                f"unknown config option {config_id!r}; known: mode, model, thought_level", "configId"
            )

    def set_mode(self, mode_id: str) -> None:
        if mode_id in PRESETS:
            _, _, policy, sandbox_type = PRESETS[mode_id]
            approval, sandbox = policy, sandbox_policy(sandbox_type, self.extra_roots)
        elif mode_id == CONFIG_MODE and preset_of(*self.initial) is None:
            approval, sandbox = self.initial
        else:
            known = [m["id"] for m in self.modes()["availableModes"]]
            raise invalid_params(f"unknown mode {mode_id!r}; one of {known}", "modeId")
        self.mode, self.approval, self.sandbox = mode_id, approval, sandbox
        self.pending.update(approvalPolicy=approval, sandboxPolicy=sandbox)

    def _set_model(self, model: str) -> None:
        if model not in {c["value"] for c in self._model_choices()}:
            raise invalid_params(
                f"unknown model {model!r}; see the options of config option 'model'", "value"
            )
        self.model = self.pending["model"] = model
        efforts = {e["value"] for e in self._effort_choices(model)}
        if efforts and self.effort not in efforts:
            # The new model cannot think at the old level: take its default, and say so.
            default = self._model_info(model).get("defaultReasoningEffort")
            self.effort = str(default) if default in efforts else sorted(efforts)[0]
            self.pending["effort"] = self.effort

    def take_overrides(self) -> JsonObj:
        """The `turn/start` overrides to send with the next turn (then forgotten)."""
        out, self.pending = self.pending, {}
        return out


# -- MCP servers --------------------------------------------------------------------------------
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def mcp_servers(servers: list[JsonObj]) -> JsonObj:
    """ACP `McpServer`s as Codex `mcp_servers` config (stdio and streamable HTTP). SSE is
    refused: Codex has no SSE transport, and dropping a server silently hides a broken setup."""
    out: JsonObj = {}
    for server in servers:
        name = _NAME.sub("_", str(server.get("name") or "mcp")) or "mcp"
        while name in out:
            name += "_"
        kind = server.get("type")
        if kind in (None, "stdio"):
            entry: JsonObj = {
                "command": server.get("command"),
                "args": [str(a) for a in server.get("args") or []],
                "env": {str(e.get("name")): str(e.get("value")) for e in server.get("env") or []},
            }
        elif kind == "http":
            headers = {str(h.get("name")): str(h.get("value")) for h in server.get("headers") or []}
            entry = {"url": server.get("url"), "http_headers": headers}
        elif kind == "sse":
            raise invalid_params(
                f"MCP server {server.get('name')!r} uses SSE, which Codex does not support; "
                "configure it as a stdio or streamable HTTP server",
                "mcpServers",
            )
        else:
            raise invalid_params(
                f"MCP server {server.get('name')!r}: transport {kind!r} is not supported", "mcpServers"
            )
        entry["enabled"] = True  # explicit: a user config may disable a server of the same name
        out[name] = entry
    return out


# -- prompts ---------------------------------------------------------------------------------------
def user_input(prompt: list[JsonObj]) -> list[JsonObj]:
    """ACP prompt content blocks as Codex `UserInput` items."""
    out: list[JsonObj] = []
    for block in prompt:
        kind = block.get("type")
        if kind == "text":
            out.append(_text(str(block.get("text", ""))))
        elif kind == "image":
            if block.get("data"):
                out.append({"type": "image", "url": f"data:{block.get('mimeType')};base64,{block['data']}"})
            elif block.get("uri"):
                out.append({"type": "image", "url": str(block["uri"])})
        elif kind == "resource_link":
            out.append(_text(f"[{block.get('name') or block.get('uri')}]({block.get('uri')})"))
        elif kind == "resource":
            out.append(_resource(block.get("resource") or {}))
        else:
            raise invalid_params(f"prompt content of type {kind!r} is not supported by Codex", "prompt")
    return out


def _text(text: str) -> JsonObj:
    return {"type": "text", "text": text, "text_elements": []}


def _resource(resource: JsonObj) -> JsonObj:
    uri = str(resource.get("uri", ""))
    if "text" in resource:
        return _text(f'<context ref="{uri}">\n{resource["text"]}\n</context>')
    mime = str(resource.get("mimeType") or "")
    if mime.startswith("image/") and resource.get("blob"):
        return {"type": "image", "url": f"data:{mime};base64,{resource['blob']}"}
    return _text(f'<context ref="{uri}">(binary content of type {mime or "unknown"} omitted)</context>')
