"""`doctor` warns when an installed CLI is outside the tested range (bridge.agents.PACKAGES)
and says what may break; the range agrees with the pins the suite installs."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.agents import PACKAGES, outside_range, package_named
from bridge.core.adapter import AgentSpec
from bridge.diagnostics.doctor import version_check
from bridge.process.versions import VersionResult

ROOT = Path(__file__).resolve().parents[2]


def test_newest_tested_is_the_pin() -> None:
    pins = json.loads((ROOT / "tools" / "agents" / "package.json").read_text())["dependencies"]
    # Besides the agents, the pins hold the TypeScript ACP SDK and `ws` for the interop test.
    libraries = {"@agentclientprotocol/sdk", "ws"}
    assert libraries <= set(pins)
    assert {p.package: p.newest for p in PACKAGES.values()} == {
        k: v for k, v in pins.items() if k not in libraries
    }


def test_versions_outside_the_range_warn_with_what_may_break() -> None:
    claude = AgentSpec("claude", "claude", "claude")
    inside = version_check(claude, VersionResult("2.1.300 (Claude Code)"))
    assert inside.status == "ok"
    old = version_check(claude, VersionResult("2.0.5 (Claude Code)"))
    assert old.status == "warn" and "older than" in old.summary and "2.1.197..2.1.332" in old.summary
    assert "stream-json" in old.summary and "agent-bridge install claude" in (old.fix or "")
    new = version_check(
        AgentSpec("codex", "codex", "codex", ("app-server",)), VersionResult("codex-cli 0.180.1")
    )
    assert new.status == "warn" and "newer than" in new.summary


def test_a_configured_agent_is_judged_by_its_binary() -> None:
    # Named otherwise, but it runs claude-agent-acp: the adapter's range applies, not Claude Code's.
    spec = AgentSpec("my-claude", "acp", "/opt/bin/claude-agent-acp")
    assert version_check(spec, VersionResult("0.50.0")).status == "ok"
    assert package_named("@zed-industries/claude-agent-acp") is PACKAGES["claude-acp"]
    assert outside_range("gemini", "0.61.0") is None and outside_range("nope", "1.0.0") is None


def test_codex_acp_range_spans_both_package_names() -> None:
    # 0.16.0 shipped as @zed-industries/codex-acp, 2.x as @agentclientprotocol/codex-acp:
    # one agent, one range, found by either name.
    assert package_named("@zed-industries/codex-acp") is PACKAGES["codex-acp"]
    assert package_named("@agentclientprotocol/codex-acp") is PACKAGES["codex-acp"]
    assert outside_range("codex-acp", "0.16.0") is None and outside_range("codex-acp", "2.6.0") is None
    assert outside_range("codex-acp", "1.4.2") is None
    assert "older than" in (outside_range("codex-acp", "0.15.3") or "")
    assert "newer than" in (outside_range("codex-acp", "2.7.0") or "")
