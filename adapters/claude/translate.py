"""Claude Code stream-json → core events (bridge/core/events.py; pure, no I/O).

One `Translator` per CLI process. `feed` takes each parsed stdout line that is not part of
the control channel and returns the events to publish, in order (`bridge/core/to_acp.py`
gives their ACP form).

Why it keeps state: with `--include-partial-messages` the CLI sends every model message
twice, first as raw SSE deltas (`stream_event`) and then whole (`assistant`). Text and
thinking are taken from the deltas (so the client sees tokens as they come) and skipped in
the whole message; messages that were never streamed (slash command output, API error
notices, replays) are taken whole. Tool calls are announced at their first delta (input
still empty) and completed from the whole message (full input: title, diff, locations).

Subagents (the Agent/Task tool): the CLI runs them in the same process and tags their
messages with `parent_tool_use_id`, the id of the Agent call that started them. Their
updates carry `_meta.bridge.parentToolCallId` (spec/bridge-extensions.md, "Subagents") so a
client can nest them under that call; `parent_of` gives the link for a subagent's
permission requests too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from adapters.claude import tools
from adapters.claude.jsonutil import obj
from adapters.claude.options import ClaudeConfig
from bridge.core import events as ev
from bridge.errors import AUTH_REQUIRED, INTERNAL_ERROR, RpcError
from bridge.mcp import status as mcp_status_
from bridge.wire.types import JsonObj

# Result subtypes that mean "a limit stopped the turn", not "the agent broke".
_LIMITS = ("error_max_turns", "error_max_budget_usd", "error_max_structured_output_retries")
PLAN_TOOLS = ("TodoWrite",)
TASK_TOOLS = ("TaskCreate", "TaskUpdate")


@dataclass
class _Tool:
    name: str
    input: JsonObj


class Translator:
    def __init__(self, config: ClaudeConfig | None = None, *, compaction: bool = False) -> None:
        self.config = config or ClaudeConfig()
        # The client advertised ACP's unstable `session.compaction`: a compaction is a
        # `compaction_update` entity for it; for any other client, a "Compact" tool call.
        self.compaction = compaction
        self._compacting: str | None = None  # the running (or just finished) compaction's id
        self._summary_due = False  # after compact_boundary: the CLI's next synthetic line is the summary
        self._streamed: set[str] = set()  # message ids seen as stream_event deltas
        self._current: dict[str | None, str] = {}  # parent tool use → message being streamed
        self._tools: dict[str, _Tool] = {}
        self._tasks: dict[str, JsonObj] = {}  # TaskCreate/TaskUpdate list, shown as a plan
        self._parents: dict[str, str] = {}  # a subagent's tool call → the Agent call it runs under
        self._agents: dict[str, str] = {}  # a subagent's task id (`agent_id`) → its Agent call
        self._mcp: list[JsonObj] | None = None
        self._input_tokens = 0
        # The model's last stop reason in this turn: the CLI's `result` hides max_tokens
        # (after its own retries) behind a generic API error.
        self.model_stop: str | None = None
        self.used = 0
        self.size = 0

    def feed(self, msg: JsonObj) -> list[ev.CoreEvent]:
        kind = msg.get("type")
        parent = msg.get("parent_tool_use_id") if isinstance(msg.get("parent_tool_use_id"), str) else None
        if kind == "stream_event" and isinstance(msg.get("event"), dict):
            out = self._event(msg["event"], parent)
        elif kind == "assistant" and isinstance(msg.get("message"), dict):
            out = self._assistant(msg["message"])
        elif kind == "user" and self._summary_due and msg.get("isSynthetic"):
            out = self._compact_summary(obj(msg.get("message")).get("content"))
        elif kind == "user" and isinstance(msg.get("message"), dict) and not msg.get("isReplay"):
            out = self._user(msg["message"], msg.get("tool_use_result"))
        elif kind == "system":
            out = self._system(msg)
        elif kind == "result":
            out = self._result(msg)
        else:
            out = []
        if parent is not None:
            # Subagent traffic: same session, tagged so a client can nest it under its Agent call.
            for u in out:
                if (tid := ev.tool_call_id(u)) is not None and tid != parent:
                    self._parents[tid] = parent
            return [ev.with_meta(u, claudeCode={"parentToolUseId": parent}, bridge={"parentToolCallId": parent})
                    for u in out]
        return out

    def parent_of(self, tool_use_id: str, agent_id: Any = None) -> str | None:
        """The Agent call a subagent's tool call runs under (None: the main agent's own).
        `agent_id`: the subagent's id, as a `can_use_tool` names it."""
        return self._parents.get(tool_use_id) or (
            self._agents.get(agent_id) if isinstance(agent_id, str) else None
        )

    def running_mcp_call(self, server: str) -> str | None:
        """The newest unfinished call of a tool of MCP server `server` (what its elicitation is for)."""
        prefix = f"mcp__{server}__"
        return next((tid for tid, t in reversed(self._tools.items()) if t.name.startswith(prefix)), None)

    def _link(self, tool_use_id: str) -> JsonObj | None:
        parent = self._parents.get(tool_use_id)
        return None if parent is None else {"bridge": {"parentToolCallId": parent}}

    # -- stream_event ------------------------------------------------------------------------
    def _event(self, event: JsonObj, parent: str | None) -> list[ev.CoreEvent]:
        t = event.get("type")
        if t == "message_start" and isinstance(event.get("message"), dict):
            mid = str(event["message"].get("id"))
            self._streamed.add(mid)
            self._current[parent] = mid
            if parent is None:
                self._input_tokens = _context_tokens(event["message"].get("usage"))
            return []
        if t == "content_block_start" and isinstance(event.get("content_block"), dict):
            block = event["content_block"]
            if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                return self._announce(block["id"], str(block.get("name")), {}, partial=True)
            return []
        if t == "content_block_delta" and isinstance(event.get("delta"), dict):
            d = event["delta"]
            mid = self._current.get(parent, "")
            if d.get("type") == "text_delta" and d.get("text"):
                return [_chunk("agent", d["text"], mid)]
            if d.get("type") == "thinking_delta" and d.get("thinking"):
                return [_chunk("thought", d["thinking"], mid)]
            return []
        if t == "message_delta" and parent is None:
            stop = obj(event.get("delta")).get("stop_reason")
            self.model_stop = stop if isinstance(stop, str) else self.model_stop
            if isinstance(event.get("usage"), dict):
                self.used = self._input_tokens + int(event["usage"].get("output_tokens") or 0)
                return [self._usage()] if self.size else []
        return []

    # -- whole messages ------------------------------------------------------------------------
    def _assistant(self, message: JsonObj) -> list[ev.CoreEvent]:
        mid = str(message.get("id"))
        streamed = mid in self._streamed
        out: list[ev.CoreEvent] = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            bt = block.get("type")
            if bt == "text" and not streamed and block.get("text"):
                out.append(_chunk("agent", block["text"], mid))
            elif bt == "thinking" and not streamed and block.get("thinking"):
                out.append(_chunk("thought", block["thinking"], mid))
            elif bt == "tool_use" and isinstance(block.get("id"), str):
                out += self._announce(block["id"], str(block.get("name")), obj(block.get("input")), partial=False)
        return out

    def _announce(self, tid: str, name: str, tool_input: JsonObj, *, partial: bool) -> list[ev.CoreEvent]:
        known = tid in self._tools
        self._tools[tid] = _Tool(name, tool_input)
        if name in PLAN_TOOLS:
            # TodoWrite *is* the plan: show it as one, not as a tool call.
            return [] if partial else [plan_update(tool_input.get("todos"))]
        info = tools.describe(name, tool_input)
        if not known:
            return [ev.ToolCallStart(tid, status="pending", raw_input=tool_input, **info)]
        return [ev.ToolCallUpdate(tid, raw_input=tool_input, **info)]

    def _user(self, message: JsonObj, structured: Any) -> list[ev.CoreEvent]:
        content = message.get("content")
        if not isinstance(content, list):
            return []
        results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        out: list[ev.CoreEvent] = []
        for block in results:
            tid = str(block.get("tool_use_id"))
            tool = self._tools.pop(tid, None) or _Tool("", {})
            extra = structured if len(results) == 1 else None
            if tool.name in PLAN_TOOLS:
                continue
            out.append(ev.ToolCallUpdate(tid, **tools.result(tool.name, tool.input, block, extra)))
            if tool.name in TASK_TOOLS and not block.get("is_error"):
                out += self._task_change(tool, extra)
        return out

    def _task_change(self, tool: _Tool, structured: Any) -> list[ev.CoreEvent]:
        i = tool.input
        if tool.name == "TaskCreate" and isinstance(structured, dict) and isinstance(structured.get("task"), dict):
            tid = str(structured["task"].get("id"))
            self._tasks[tid] = {"content": str(i.get("subject") or ""), "status": "pending"}
        elif tool.name == "TaskUpdate" and str(i.get("taskId")) in self._tasks:
            task = self._tasks[str(i["taskId"])]
            if i.get("status") == "deleted":
                del self._tasks[str(i["taskId"])]
            elif i.get("status") in ("pending", "in_progress", "completed"):
                task["status"] = i["status"]
            if isinstance(i.get("subject"), str):
                task["content"] = i["subject"]
        else:
            return []
        return [plan_update(list(self._tasks.values()))]

    # -- system / result -----------------------------------------------------------------------
    def _system(self, msg: JsonObj) -> list[ev.CoreEvent]:
        out: list[ev.CoreEvent] = []
        sub = msg.get("subtype")
        if sub == "task_started" and isinstance(tid := msg.get("tool_use_id"), str) and tid in self._tools:
            if isinstance(msg.get("task_id"), str):
                self._agents[msg["task_id"]] = tid
            # The Agent call's subagent started: from here on it is running, not waiting.
            subagent = {k: msg[k] for k in ("task_id", "subagent_type", "description") if isinstance(msg.get(k), str)}
            out.append(ev.ToolCallUpdate(tid, status="in_progress", meta={"bridge": {"subagent": subagent}}))
        if sub == "status" and (msg.get("status") == "compacting" or "compact_result" in msg):
            out += self._compact_status(msg)
        elif sub == "compact_boundary" and self._compacting is not None:
            self._summary_due = True
            if not self.compaction:
                out.append(ev.ToolCallUpdate(self._compacting, raw_output=obj(msg.get("compact_metadata"))))
        if isinstance(msg.get("permissionMode"), str) and sub in ("init", "status"):
            out += self.mode_changed(msg["permissionMode"])
        if sub == "init":
            if isinstance(msg.get("model"), str):
                if not self.size:
                    self.size = context_window(msg["model"])
                if self.config.observe_model(msg["model"]):
                    out.append(self.options_update())
            servers = msg.get("mcp_servers")
            if isinstance(servers, list) and servers != self._mcp:
                self._mcp = servers
                report = mcp_report(servers, msg.get("tools"))
                out.append(ev.with_meta(report, claudeCode={"mcpServers": mcp_status(servers)}))
        return out

    # -- compaction (`/compact`, or the CLI's own when the context fills up) ---------------------
    def _compact_status(self, msg: JsonObj) -> list[ev.CoreEvent]:
        if msg.get("status") == "compacting":
            self._compacting = f"compact-{msg.get('uuid') or len(self._tools)}"
            self._summary_due = False
            if self.compaction:
                return [ev.Compaction(self._compacting, "in_progress")]
            return [ev.ToolCallStart(self._compacting, "Compact the conversation", kind="think",
                                     status="in_progress", meta={"bridge": {"toolName": "compact"}})]
        if self._compacting is None:
            return []
        ok = msg.get("compact_result") == "success"
        status = "completed" if ok else "failed"
        if self.compaction:
            error = None if ok else str(msg.get("compact_error") or msg.get("compact_result") or "compaction failed")
            return [ev.Compaction(self._compacting, status, error=error)]
        return [ev.ToolCallUpdate(self._compacting, status=status)]

    def _compact_summary(self, content: Any) -> list[ev.CoreEvent]:
        self._summary_due = False
        text = content if isinstance(content, str) else "".join(
            b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")
        if not text or self._compacting is None:
            return []
        block = {"type": "text", "text": text}
        if self.compaction:
            return [ev.Compaction(self._compacting, "completed", summary=[block])]
        return [ev.ToolCallUpdate(self._compacting, content=[{"type": "content", "content": block}])]

    def mode_changed(self, mode: str) -> list[ev.CoreEvent]:
        if not self.config.observe_mode(mode):
            return []
        return [ev.ModeChange(mode), self.options_update()]

    def options_update(self) -> ev.ConfigOptionsChange:
        return ev.ConfigOptionsChange(self.config.config_options())

    def _result(self, msg: JsonObj) -> list[ev.CoreEvent]:
        """End of a turn. Per-turn state is dropped here (`model_stop` after it is read)."""
        self._streamed.clear()
        self._current.clear()
        # Calls cut off (interrupt, error) never get a result: do not leave them pending.
        out: list[ev.CoreEvent] = [ev.ToolCallUpdate(tid, status="failed", meta=self._link(tid))
                                   for tid, tool in self._tools.items() if tool.name not in PLAN_TOOLS]
        self._tools.clear()
        self._parents.clear()
        self._agents.clear()
        windows = [w for m in obj(msg.get("modelUsage")).values()
                   if isinstance(w := obj(m).get("contextWindow"), int) and w > 0]
        if windows:
            self.size = max(windows)
        cost = msg.get("total_cost_usd")
        if not self.size:
            return out
        spent = ev.Cost(float(cost), "USD") if isinstance(cost, (int, float)) else None
        return [*out, self._usage(spent)]

    def _usage(self, cost: ev.Cost | None = None) -> ev.Usage:
        return ev.Usage(min(self.used, self.size), self.size, cost)


def prompt_response(result: JsonObj, cancelled: bool, model_stop: str | None = None) -> JsonObj:
    """The ACP `PromptResponse` for a `result` line, or the error the turn really ended with.
    `model_stop`: the model's last stop reason (`Translator.model_stop`)."""
    stops = (result.get("stop_reason"), model_stop)
    if cancelled:
        reason = "cancelled"
    elif result.get("subtype") in _LIMITS:
        reason = "max_turn_requests"
    elif "refusal" in stops:
        reason = "refusal"
    elif "max_tokens" in stops:
        reason = "max_tokens"
    elif result.get("is_error"):
        raise turn_error(result)
    else:
        reason = "end_turn"
    return {"stopReason": reason, **_usage_field(result)}


def turn_error(result: JsonObj) -> RpcError:
    """A failed turn (API error, bad credentials, internal failure) as a JSON-RPC error that
    says what the CLI said. Credentials problems use ACP's auth_required code."""
    errors = [e for e in result.get("errors") or [] if isinstance(e, str)]
    text = str(result.get("result") or "; ".join(errors) or result.get("subtype") or "unknown error")
    status = result.get("api_error_status")
    auth = status in (401, 403) or "/login" in text or "authentication" in text.lower()
    data = {"subtype": result.get("subtype"), "apiErrorStatus": status, "errors": errors or None}
    return RpcError(AUTH_REQUIRED if auth else INTERNAL_ERROR, f"Claude Code: {text}",
                    {k: v for k, v in data.items() if v is not None})


def _usage_field(result: JsonObj) -> JsonObj:
    u = result.get("usage")
    if not isinstance(u, dict):
        return {}
    n = {k: int(u.get(k) or 0) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                          "cache_creation_input_tokens")}
    return {"usage": {"inputTokens": n["input_tokens"], "outputTokens": n["output_tokens"],
                      "cachedReadTokens": n["cache_read_input_tokens"],
                      "cachedWriteTokens": n["cache_creation_input_tokens"], "totalTokens": sum(n.values())}}


def plan_update(items: Any) -> ev.Plan:
    entries = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        status = item.get("status") if item.get("status") in ("pending", "in_progress", "completed") else "pending"
        entries.append(ev.PlanEntry(str(item.get("content") or ""), str(status)))
    return ev.Plan(tuple(entries))


def mcp_status(servers: list[Any]) -> list[JsonObj]:
    """MCP servers as the CLI reports them, without their config (it may hold secrets)."""
    keep = ("name", "status", "error", "serverInfo", "scope")
    return [{k: s[k] for k in keep if k in s} for s in servers if isinstance(s, dict)]


def mcp_report(servers: list[Any], tool_names: Any = None) -> ev.SessionInfo:
    """The bridge's MCP status update (bridge/mcp/status.py) from the CLI's `mcp_servers` /
    `mcp_status` list; tools from the status entry, else from the init's `mcp__S__T` names."""
    by_server = mcp_status_.tools_by_server(tool_names) if isinstance(tool_names, list) else {}
    reports = []
    for s in servers:
        if not isinstance(s, dict) or not isinstance(s.get("name"), str):
            continue
        r: JsonObj = {"name": s["name"], "status": s.get("status")}
        if s.get("error"):
            r["error"] = str(s["error"])
        listed = s.get("tools")
        if isinstance(listed, list):
            r["tools"] = [str(t.get("name") if isinstance(t, dict) else t) for t in listed]
        elif s["name"] in by_server:
            r["tools"] = by_server[s["name"]]
        reports.append(r)
    return ev.mcp_report(reports)


def context_window(model: str) -> int:
    """The CLI names 1M-context variants with a `[1m]` suffix; the rest have 200k."""
    return 1_000_000 if model.endswith("[1m]") else 200_000


def _context_tokens(usage: Any) -> int:
    if not isinstance(usage, dict):
        return 0
    keys = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return sum(int(usage.get(k) or 0) for k in keys)


def _chunk(role: Literal["agent", "thought"], text: str, message_id: str | None) -> ev.MessageChunk:
    return ev.MessageChunk(role, {"type": "text", "text": text}, message_id or None)
