"""What the adapter sends to Claude Code: its command line, the MCP servers in its
`--mcp-config` form (written to a private file: never on the command line, where any local
user reads it in /proc), and ACP prompt blocks as Messages API content.

The command line only adds what the protocol needs and what the session asks for (ids,
MCP servers, extra directories). The user's own choices stay theirs: their settings files
are read by the CLI as usual, their configured `args` come first, and nothing that relaxes
the CLI's safety checks (skip-permission flags, a permission mode) is ever added here.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from bridge.core.adapter import AgentSpec, StartRequest
from bridge.errors import invalid_params
from bridge.wire.types import JsonObj

PROTOCOL_FLAGS = (
    "--output-format", "stream-json",
    "--input-format", "stream-json",
    "--verbose",
    # Permission prompts come to us as `can_use_tool` control requests.
    "--permission-prompt-tool", "stdio",
    # Token deltas as `stream_event` lines, so clients see text as it is produced.
    "--include-partial-messages",
)
# Flags by which the user lets the CLI enter bypassPermissions; we only ever read them.
BYPASS_FLAGS = ("--allow-dangerously-skip-permissions", "--dangerously-skip-permissions")


def session_flags(mode: str, session_id: str, source_id: str | None) -> list[str]:
    """`--session-id` for a new session (the id is ours, so it is known before any turn),
    `--resume` for load/resume, `--resume --fork-session --session-id` for a fork. Equals
    form on purpose: an id can never be read as a flag."""
    if mode == "new":
        return [f"--session-id={session_id}"]
    assert source_id is not None
    if mode == "fork":
        return [f"--resume={source_id}", "--fork-session", f"--session-id={session_id}"]
    return [f"--resume={source_id}"]


def argv(
    spec: AgentSpec, request: StartRequest | None, flags: Sequence[str], mcp_file: str | None = None
) -> list[str]:
    """`mcp_file`: the session's MCP servers, written by `mcp_config_file`."""
    out = [spec.command, *spec.args, *PROTOCOL_FLAGS, *flags]
    if mcp_file is not None:
        out += ["--mcp-config", mcp_file]
    if request is not None:
        for directory in request.additional_directories or []:
            out += ["--add-dir", directory]
    return out


@contextlib.contextmanager
def mcp_config_file(state_dir: str, servers: list[JsonObj]) -> Iterator[str | None]:
    """The session's MCP servers as a `--mcp-config` file, readable by the user only (their
    `env` and `headers` are often API keys), removed when the CLI is done with it. None when
    there are no servers."""
    if not servers:
        yield None
        return
    config = json.dumps({"mcpServers": mcp_config(servers)})
    directory = os.path.join(state_dir, "mcp")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    _remove_orphans(directory)
    # The daemon's pid in the name: a later daemon removes what a killed one left behind.
    fd, path = tempfile.mkstemp(prefix=f"claude-mcp-{os.getpid()}-", suffix=".json", dir=directory)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(config)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _remove_orphans(directory: str) -> None:
    """MCP config files of daemons that are gone (SIGKILLed before they could remove them)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            parts = name.split("-")
            if len(parts) < 4 or not parts[2].isdigit() or _alive(int(parts[2])):
                continue
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def bypass_allowed(spec: AgentSpec) -> bool:
    return any(a in BYPASS_FLAGS or a == "--permission-mode=bypassPermissions" for a in spec.args) or any(
        a == "--permission-mode" and b == "bypassPermissions" for a, b in zip(spec.args, spec.args[1:], strict=False)
    )


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value the user gave `flag` in their configured args (`--flag v` or `--flag=v`)."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def check_session_id(value: Any) -> str:
    """Claude session ids are UUIDs; anything else would be passed to a flag, so refuse it."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise invalid_params(f"not a Claude Code session id: {value!r}", "sessionId") from None


def mcp_config(servers: list[JsonObj]) -> JsonObj:
    """ACP `McpServer`s → Claude's `mcpServers` object (name → config)."""
    out: JsonObj = {}
    for s in servers:
        name = s.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_params("every MCP server needs a name", "mcpServers")
        kind = s.get("type", "stdio")
        if kind == "stdio":
            env = {e["name"]: e["value"] for e in s.get("env") or [] if isinstance(e, dict) and "name" in e}
            out[name] = {"type": "stdio", "command": s.get("command"), "args": list(s.get("args") or []),
                         "env": env}
        elif kind in ("http", "sse"):
            headers = {h["name"]: h["value"] for h in s.get("headers") or [] if isinstance(h, dict) and "name" in h}
            out[name] = {"type": kind, "url": s.get("url"), "headers": headers}
        else:
            raise invalid_params(f"MCP server {name!r}: unsupported transport {kind!r}", "mcpServers")
    return out


def user_message(blocks: list[Any]) -> JsonObj:
    """An ACP prompt as one stream-json user line."""
    content = [c for b in blocks for c in _content(b)]
    return {"type": "user", "session_id": "", "parent_tool_use_id": None,
            "message": {"role": "user", "content": content}}


def _content(b: Any) -> list[JsonObj]:
    if not isinstance(b, dict):
        raise invalid_params("prompt blocks must be objects", "prompt")
    kind = b.get("type")
    if kind == "text":
        return [{"type": "text", "text": str(b.get("text", ""))}]
    if kind == "image":
        if b.get("data"):
            return [_image(str(b.get("mimeType", "image/png")), str(b["data"]))]
        if str(b.get("uri", "")).startswith(("http://", "https://")):
            return [{"type": "image", "source": {"type": "url", "url": b["uri"]}}]
        raise invalid_params("an image needs data or an http(s) uri", "prompt")
    if kind == "resource_link":
        return [{"type": "text", "text": f"[{b.get('name') or b.get('uri')}]({b.get('uri')})"}]
    if kind == "resource" and isinstance(b.get("resource"), dict):
        r = b["resource"]
        if isinstance(r.get("text"), str):
            # Embedded context: the text itself, marked with where it comes from.
            return [{"type": "text", "text": f'<context ref="{r.get("uri")}">\n{r["text"]}\n</context>'}]
        if isinstance(r.get("blob"), str) and str(r.get("mimeType", "")).startswith("image/"):
            return [_image(str(r["mimeType"]), r["blob"])]
        return [{"type": "text", "text": f"[{r.get('uri')}]({r.get('uri')})"}]
    raise invalid_params(f"Claude Code cannot take {kind!r} prompt content", "prompt")


def _image(mime: str, data: str) -> JsonObj:
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}


def control(request_id: str, subtype: str, **fields: Any) -> JsonObj:
    return {"type": "control_request", "request_id": request_id, "request": {"subtype": subtype, **fields}}


def control_reply(request_id: str, response: JsonObj | None = None, error: str | None = None) -> JsonObj:
    if error is not None:
        return {"type": "control_response", "response": {"subtype": "error", "request_id": request_id,
                                                         "error": error}}
    return {"type": "control_response", "response": {"subtype": "success", "request_id": request_id,
                                                     "response": response or {}}}
