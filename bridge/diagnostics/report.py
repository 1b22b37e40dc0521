"""What `agent-bridge doctor` found: checks and agent reports, their worst status, and the
report as JSON or as the text the command prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bridge import __version__
from bridge.diagnostics.redact import default as default_redactor

STATUS_ORDER = {"skip": 0, "ok": 1, "warn": 2, "error": 3}


@dataclass
class Check:
    name: str
    status: str  # ok | warn | error | skip
    summary: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentReport:
    name: str
    protocol: str
    command: str
    required: bool
    path: str | None = None
    version: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks) if self.checks else "ok"


@dataclass
class Report:
    checks: list[Check]
    agents: list[AgentReport]

    @property
    def ok(self) -> bool:
        return all(c.status != "error" for c in self.checks) and all(a.status != "error" for a in self.agents)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "version": __version__,
            "checks": [asdict(c) for c in self.checks],
            "agents": [
                {
                    "name": a.name,
                    "protocol": a.protocol,
                    "command": a.command,
                    "required": a.required,
                    "status": a.status,
                    "path": a.path,
                    "version": a.version,
                    "checks": [asdict(c) for c in a.checks],
                }
                for a in self.agents
            ],
        }


def worst(statuses: Any) -> str:
    return max(statuses, key=lambda s: STATUS_ORDER[s], default="ok")


# -- output -------------------------------------------------------------------------------------------
MARK = {"ok": "ok", "warn": "WARN", "error": "FAIL", "skip": "--"}


def render(report: Report) -> str:
    redact = default_redactor().text
    lines = [f"agent-bridge {__version__} doctor", ""]
    width = max(len(c.name) for c in report.checks)
    for c in report.checks:
        lines.append(f"  {MARK[c.status]:<4}  {c.name:<{width}}  {redact(c.summary)}")
        if c.fix and c.status in ("warn", "error"):
            lines.append(f"        {'':<{width}}  fix: {redact(c.fix)}")
    lines += ["", "agents:"]
    name_width = max((len(a.name) for a in report.agents), default=4)
    for a in report.agents:
        head = a.version or ""
        command = " ".join(a.command.split())  # one line, whatever the args hold
        command = command if len(command) <= 70 else command[:67] + "..."
        lines.append(
            f"  {MARK[a.status]:<4}  {a.name:<{name_width}}  {a.protocol:<6} {command}  {head}".rstrip()
        )
        for c in a.checks:
            if c.status == "ok" and c.name in ("version",):
                continue
            lines.append(f"        {'':<{name_width}}  {c.name}: {redact(c.summary)}")
            if c.fix and c.status in ("warn", "error"):
                lines.append(f"        {'':<{name_width}}    fix: {redact(c.fix)}")
    problems = sum(c.status == "error" for c in report.checks) + sum(
        c.status == "error" for a in report.agents for c in a.checks
    )
    warnings = sum(c.status == "warn" for c in report.checks) + sum(
        c.status == "warn" for a in report.agents for c in a.checks
    )
    lines.append("")
    if problems:
        lines.append(
            f"{problems} problem{'s' * (problems != 1)} found"
            + (f", {warnings} warning{'s' * (warnings != 1)}" if warnings else "")
            + "."
        )
    else:
        lines.append(
            "No problems found" + (f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else "") + "."
        )
    return "\n".join(lines) + "\n"
