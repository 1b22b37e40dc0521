"""`agent-bridge prompt`: one prompt turn from the command line.

    agent-bridge prompt --agent codex --cwd . "fix the failing test"

The answer streams to stdout; tool calls, plans, permission questions and the closing
summary go to stderr (so `> answer.txt` keeps just the answer). Permission requests are
asked on the terminal when stdin is one, else rejected, unless `--allow-once`, `--allow-always`,
`--deny` or `--permission-policy` decides. `--json` prints newline-delimited JSON events
instead. The exit code reflects the stop reason (see EXIT_CODES; docs/client.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import anyio

from bridge.cli.client_common import Style, check_agent, open_client
from bridge.cli.prompt_args import add_arguments
from bridge.config import ConfigFile

if TYPE_CHECKING:
    from bridge.client import PermissionRequest, SendResult, Session, Turn, Update

EXIT_CODES = {
    "end_turn": 0,
    "refusal": 3,
    "max_tokens": 4,
    "max_turn_requests": 5,
    "cancelled": 130,
}
EXIT_ERROR = 1  # the turn failed: agent died, daemon unreachable, a JSON-RPC error
EXIT_USAGE = 2  # bad command line or config
EXIT_OTHER_STOP = 6  # a stop reason this client does not know

__all__ = ["EXIT_CODES", "add_arguments", "run"]


def run(args: argparse.Namespace, config: ConfigFile, state_dir: str) -> int:
    problem = check_agent(args)
    text = " ".join(args.text).strip()
    if not text or text == "-":
        text = "" if sys.stdin.isatty() else sys.stdin.read().strip()
    if not problem and not text:
        problem = "no prompt: give it as arguments, or on stdin"
    options: dict[str, str | bool] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            problem = problem or f"--set {item!r}: expected ID=VALUE"
        options[key] = {"true": True, "false": False}.get(value, value)
    if problem:
        sys.stderr.write(f"agent-bridge prompt: {problem}\n")
        return EXIT_USAGE
    cli = PromptCommand(args, state_dir, text, options)
    try:
        return anyio.run(cli.main)
    except KeyboardInterrupt:
        return EXIT_CODES["cancelled"]


class PromptCommand:
    def __init__(
        self, args: argparse.Namespace, state_dir: str, text: str, options: dict[str, str | bool]
    ) -> None:
        self.args = args
        self.state_dir = state_dir
        self.text = text
        self.options = options
        self.json = bool(args.json)
        self.interactive = sys.stdin.isatty()
        self.policy = args.permission_policy or ("ask" if self.interactive else "reject")
        self.out = sys.stdout
        self.err = sys.stderr
        self.ostyle = Style(self.out, args.color)
        self.style = Style(self.err, args.color)
        self.mid_line = False  # stdout has text not ended by a newline
        self.ended_newline = True
        self.thinking = False
        self.session: Session | None = None
        self.turn: Turn | None = None
        self.cancelling = False
        self.code = 0
        self.scope: anyio.CancelScope | None = None
        self.mcp_line = ""

    # -- the turn ----------------------------------------------------------------------------------
    async def main(self) -> int:
        self.code = EXIT_CODES["cancelled"]  # what a second Ctrl-C leaves
        async with anyio.create_task_group() as tg:
            self.scope = tg.cancel_scope
            tg.start_soon(self._on_sigint)
            self.code = await self._run()
            tg.cancel_scope.cancel()
        return self.code

    async def _run(self) -> int:
        from bridge.client import ClientError, TurnFailed

        try:
            async with open_client(self.args, self.state_dir, permissions=self.decide) as client:
                session = await self._open(client)
                self.session = session
                self.emit_json(
                    {"type": "session", "sessionId": session.id, "agent": session.agent, "cwd": session.cwd}
                )
                self.note(f"session {session.id} ({session.agent}, {session.cwd})", "dim")
                self.mcp_status((await session.info()).mcp_servers)
                turn = self.turn = session.stream(self.text)
                try:
                    async for update in turn:
                        self.render(update)  # type: ignore[arg-type]
                except TurnFailed as exc:
                    return self.failed(exc.error)
                finally:
                    self.turn = None
                return self.finish(session, turn.result)
        except ClientError as exc:
            return self.failed(exc)

    async def _open(self, client: Any) -> Session:
        a = self.args
        if a.session:
            session: Session = await client.resume_session(
                a.session, cwd=_abs(a.cwd) if a.cwd else None, continue_lost=a.continue_lost
            )
            self.continued(session)
            await session.configure(
                model=a.model, mode=a.mode, thought_level=a.thought_level, options=self.options
            )
            if a.title:
                await session.update(title=a.title)
            return session
        created: Session = await client.create_session(
            agent=a.agent,
            cwd=_abs(a.cwd or "."),
            model=a.model,
            mode=a.mode,
            thought_level=a.thought_level,
            config=self.options,
            title=a.title,
        )
        return created

    def continued(self, session: Session) -> None:
        """Never silent: the agent had lost the session, and a new agent session continues it."""
        meta = session.setup.get("_meta") if isinstance(session.setup, dict) else None
        bridge_meta = meta.get("bridge") if isinstance(meta, dict) else None
        info = bridge_meta.get("continued") if isinstance(bridge_meta, dict) else None
        if not isinstance(info, dict):
            return
        turns, omitted = info.get("turns", 0), info.get("omittedTurns", 0)
        carried = f"{turns} earlier turn{'s' if turns != 1 else ''}" + (
            f", {omitted} of the oldest left out" if omitted else ""
        )
        self.emit_json({"type": "continued", "sessionId": session.id, **info})
        # On stderr in both modes: with --json, stdout carries the events.
        self.err.write(
            self.style(
                f"agent-bridge prompt: agent {session.agent!r} no longer had session {session.id} "
                f"(its session {info.get('previousAgentSessionId')}: {info.get('agentError')}); continuing in "
                f"a new agent session with the bridge's transcript ({carried}). --no-continue refuses.",
                "yellow",
            )
            + "\n"
        )
        self.err.flush()

    async def _on_sigint(self) -> None:
        # First Ctrl-C during a turn cancels it (the agent answers "cancelled"); another quits.
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                if self.session is not None and self.turn is not None and not self.cancelling:
                    self.cancelling = True
                    self.note("cancelling… (Ctrl-C again to quit)", "yellow")
                    await self.session.cancel()
                else:
                    self.note("interrupted", "yellow")
                    assert self.scope is not None
                    self.scope.cancel()
                    return

    # -- permissions -------------------------------------------------------------------------------
    async def decide(self, req: PermissionRequest) -> str | None:
        from bridge.client.permissions import select_for_policy

        if self.policy == "ask" and self.interactive:
            choice = await self.ask(req)
        else:
            option = select_for_policy(req.options, self.policy if self.policy != "ask" else "reject")
            choice = option.option_id if option is not None else None
            label = option.name if option is not None else "cancelled"
            how = (
                f"--permission-policy {self.policy}"
                if self.args.permission_policy
                else "no terminal to ask on"
            )
            self.note(f"? {req.title}: {label} ({how})", "yellow")
        if choice is None:
            req.cancel("cli")
        self.emit_json(
            {
                "type": "permission",
                "toolCallId": req.tool_call.tool_call_id,
                "title": req.title,
                "options": [o.to_wire() for o in req.options],
                "optionId": choice,
                "policy": self.policy,
            }
        )
        return choice

    async def ask(self, req: PermissionRequest) -> str | None:
        s = self.style
        self.break_line()
        kind = f" ({req.kind})" if req.kind else ""
        self.err.write(s("? ", "yellow", "bold") + s(f"Allow {req.title}{kind}?", "bold") + "\n")
        for i, option in enumerate(req.options, 1):
            color = "green" if option.kind.startswith("allow") else "red"
            self.err.write(f"  {s(str(i), 'bold')}) {s(option.name, color)}  {s(option.kind, 'dim')}\n")
        while True:
            self.err.write(s(f"choose 1-{len(req.options)} (y = allow once, n = reject): ", "bold"))
            self.err.flush()
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                return None  # EOF: reject
            answer = line.strip().lower()
            if answer.isdigit() and 1 <= int(answer) <= len(req.options):
                return req.options[int(answer) - 1].option_id
            wanted = {
                "y": "allow_once",
                "yes": "allow_once",
                "a": "allow_always",
                "always": "allow_always",
            }.get(answer, "reject_once" if answer in ("n", "no", "") else None)
            for kind_name in [wanted, "reject_always"] if wanted == "reject_once" else [wanted]:
                for option in req.options:
                    if option.kind == kind_name:
                        return option.option_id
            if wanted == "reject_once":
                return None
            self.err.write(s("  not one of the choices\n", "red"))

    # -- rendering ---------------------------------------------------------------------------------
    def emit_json(self, obj: dict[str, Any]) -> None:
        if self.json:
            self.out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self.out.flush()

    def note(self, text: str, *styles: str) -> None:
        if self.json:
            return
        self.break_line()
        self.err.write(self.style(text, *styles) + "\n")
        self.err.flush()

    def break_line(self) -> None:
        """Before a line on stderr: end the answer's current line when both share a terminal."""
        if self.thinking:
            self.err.write("\n")
            self.thinking = False
        if self.mid_line and self.out.isatty() and self.err.isatty():
            self.out.write("\n")
            self.out.flush()
            self.mid_line = False

    def render(self, update: Update) -> None:
        from bridge.client import (
            AgentMessageChunk,
            AgentThoughtChunk,
            CurrentModeUpdate,
            Plan,
            SessionInfoUpdate,
            ToolCall,
            ToolCallUpdate,
        )

        if self.json:
            # An agent sends its command list whenever it likes (often just after session/new),
            # so whether one lands inside the turn is timing; it is session state, not turn output.
            if update.raw.get("sessionUpdate") != "available_commands_update":
                self.emit_json({"type": "update", "sessionId": update.session_id, "update": update.raw})
            return
        s = self.style
        if isinstance(update, AgentMessageChunk):
            if self.thinking:
                self.err.write("\n")
                self.thinking = False
            if update.text:
                self.out.write(update.text)
                self.out.flush()
                self.mid_line = not update.text.endswith("\n")
                self.ended_newline = not self.mid_line
        elif isinstance(update, AgentThoughtChunk):
            if update.text:
                if not self.thinking:
                    self.break_line()
                    self.err.write(s("thinking: ", "dim", "magenta"))
                    self.thinking = True
                self.err.write(s(update.text, "dim"))
                self.err.flush()
        elif isinstance(update, ToolCall):
            self.note(f"⏺ {update.title}" + s(f"  {update.kind}", "dim"), "cyan")
        elif isinstance(update, ToolCallUpdate):
            self.render_tool_update(update)
        elif isinstance(update, Plan):
            marks = {"completed": s("[x]", "green"), "in_progress": s("[~]", "yellow")}
            lines = [s("plan:", "blue", "bold")] + [
                f"  {marks.get(e.status, '[ ]')} {e.content}" for e in update.entries
            ]
            self.note("\n".join(lines))
        elif isinstance(update, CurrentModeUpdate):
            self.note(f"mode: {update.current_mode_id}", "dim")
        elif isinstance(update, SessionInfoUpdate):
            if update.title:
                self.note(f"title: {update.title}", "dim")
            bridge_meta = (update.meta or {}).get("bridge")
            if isinstance(bridge_meta, dict) and isinstance(bridge_meta.get("mcpServers"), list):
                self.mcp_status(bridge_meta["mcpServers"])

    def mcp_status(self, servers: list[Any] | None) -> None:
        """One stderr line with the session's MCP servers, again whenever it changes."""
        from bridge.mcp.status import summary

        if not servers:
            return
        line = summary(servers)
        if line != self.mcp_line:
            self.mcp_line = line
            self.emit_json({"type": "mcp", "mcpServers": servers})
            failed = any(isinstance(s, dict) and s.get("status") == "failed" for s in servers)
            self.note(line, "yellow" if failed else "dim")

    def render_tool_update(self, update: Any) -> None:
        from bridge.client.updates import Diff

        assert self.session is not None
        state = self.session.tool_calls.get(update.tool_call_id)
        title = state.title if state is not None and state.title else update.tool_call_id
        s = self.style
        for item in update.content or []:
            if isinstance(item, Diff):
                old = len((item.old_text or "").splitlines())
                new = len(item.new_text.splitlines())
                what = "new file" if item.old_text is None else f"{old} → {new} lines"
                self.note(f"  ~ {item.path} ({what})", "dim")
        if update.status == "completed":
            self.note("  " + s("✓", "green") + f" {title}")
        elif update.status == "failed":
            self.note("  " + s("✗", "red") + f" {title} " + s("failed", "red"))

    # -- the end -----------------------------------------------------------------------------------
    def finish(self, session: Session, result: SendResult) -> int:
        code = EXIT_CODES.get(result.stop_reason, EXIT_OTHER_STOP)
        usage = result.usage.to_wire() if result.usage is not None else None
        cost = result.cost.to_wire() if result.cost is not None else None
        self.emit_json(
            {
                "type": "result",
                "sessionId": session.id,
                "stopReason": result.stop_reason,
                "usage": usage,
                "cost": cost,
                "exitCode": code,
            }
        )
        if not self.json:
            if self.mid_line:
                self.out.write("\n")
                self.out.flush()
                self.mid_line = False
            bits = [result.stop_reason]
            if result.tool_calls:
                bits.append(f"{len(result.tool_calls)} tool call{'s' if len(result.tool_calls) != 1 else ''}")
            if result.usage is not None:
                bits.append(f"{result.usage.total_tokens} tokens")
            if result.cost is not None:
                bits.append(f"{result.cost.amount:.4f} {result.cost.currency} so far")
            color = "dim" if code == 0 else "yellow"
            self.note(f"[{' · '.join(bits)}] continue with: --session {session.id}", color)
        return code

    def failed(self, error: Exception) -> int:
        from bridge.client import RequestError

        if self.json:
            body: dict[str, Any] = {"message": str(error)}
            if isinstance(error, RequestError):
                body = {"code": error.code, "message": error.message, "data": error.data}
            self.emit_json({"type": "error", "error": body, "exitCode": EXIT_ERROR})
        else:
            if self.mid_line:
                self.out.write("\n")
                self.mid_line = False
            self.note(f"agent-bridge prompt: {error}", "red")
            tail = getattr(error, "data", None)
            if isinstance(tail, dict) and tail.get("stderrTail"):
                self.note(str(tail["stderrTail"]).rstrip()[-2000:], "dim")
        return EXIT_ERROR


def _abs(path: str) -> str:
    return os.path.abspath(path)
